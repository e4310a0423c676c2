import type { Contract } from "../../contract/schema.js";
import type { Sourced } from "../../knowledge/types.js";
import { joinPath, type CompiledFile } from "../../trainers/compile-input.js";
import type { SampleWatch } from "../../trainers/sample-files.js";
import { resolveSamples } from "../samples.js";

/**
 * sd-scripts' sampler for SDXL samples: Euler, the scheduler SDXL base ships with (the built-in
 * trainer samples with the pipeline's own scheduler, so both trainers draw alike). FLUX.1 samples
 * with sd-scripts' own flow sampler and reads no --sample_sampler (flux_train_utils.py L163).
 */
export const KOHYA_SDXL_SAMPLER: Sourced & { name: "euler" } = {
  name: "euler",
  source: "stabilityai/stable-diffusion-xl-base-1.0 scheduler/scheduler_config.json (EulerDiscreteScheduler); sd-scripts@48d368f train_util.py get_my_scheduler",
  asOf: "2026-12-02",
};

/**
 * The contract's `samples` as sd-scripts options and its `--sample_prompts` file: one line per
 * prompt x seed, with `--w --h --d --s` and the guidance as `--l` (CFG) or `--g` (FLUX's embedded
 * guidance) (trainers.md §2.5; train_util.py line_to_prompt_dict L6258-6320); `first` is --sample_at_first
 * (a render before training). Undefined when off.
 */
export function kohyaSamples(contract: Contract, resolution: number, configDir: string, isFlux: boolean): { options: Record<string, string | number | boolean>; file: CompiledFile; items: SampleWatch["items"] } | undefined {
  const s = resolveSamples(contract, resolution);
  if (!s) return undefined;
  const guidance = s.guidanceKind === "embedded" ? `--g ${s.guidance}` : `--l ${s.guidance}`;
  // One line per item, in this order: sd-scripts numbers its images by line (trainers/sample-files.ts).
  const items = s.prompts.flatMap((prompt) => s.seeds.map((seed) => ({ prompt, seed })));
  const lines = items.map(({ prompt, seed }) => `${prompt} --w ${s.width} --h ${s.height} --d ${seed} --s ${s.steps} ${guidance}`);
  const path = joinPath(configDir, "sample_prompts.txt");
  const content = `# Sample prompts for sd-scripts (--sample_prompts), written by loraspec from ${contract.name}\n${lines.join("\n")}\n`;
  return {
    options: { sample_every_n_steps: s.every, ...(s.first ? { sample_at_first: true } : {}), sample_prompts: path, ...(isFlux ? {} : { sample_sampler: KOHYA_SDXL_SAMPLER.name }) },
    file: { name: "sample_prompts.txt", path, content },
    items,
  };
}
