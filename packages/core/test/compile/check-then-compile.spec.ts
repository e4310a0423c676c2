import { describe, expect, it } from "vitest";
import { z } from "zod";
import { compileAiToolkit } from "@loraspec/core/compile/ai-toolkit/compile-ai-toolkit.js";
import { compileDiffusers } from "@loraspec/core/compile/diffusers.js";
import { TrainRequestSchema } from "@loraspec/core/compile/worker-request.js";
import { compileFal } from "@loraspec/core/compile/fal/compile-fal.js";
import { compileKohya } from "@loraspec/core/compile/kohya/compile-kohya.js";
import { LR_SCHEDULERS, NETWORK_TYPES, OPTIMIZERS, PRECISIONS, QUANTIZATIONS, TARGETS, TRAINER_IDS, type TrainerId } from "@loraspec/core/contract/ids.js";
import { TARGET_PRESETS } from "@loraspec/core/knowledge/lora-targets.js";
import type { Contract, ContractInput } from "@loraspec/core/contract/schema.js";
import { isLoraspecError } from "@loraspec/core/errors.js";
import { BASE_MODEL_IDS, type BaseModelId } from "@loraspec/core/knowledge/base-models.js";
import { lintContract } from "@loraspec/core/lint/lint-contract.js";
import { makeContract, PATHS } from "./contract-fixture.js";
import { parse as parseToml } from "smol-toml";
import { getBaseModel } from "@loraspec/core/knowledge/base-models.js";
import { getTrainerSide } from "@loraspec/core/knowledge/trainer-resolution.js";
import { sideVerdict } from "@loraspec/core/lint/resolution-rules.js";

/**
 * The promise of `check`: a contract it passes (no error) is one the trainer's compiler accepts, so
 * `train` starts. Run over base x trainer x base.path x quantize, then each other dimension the compilers
 * refuse on (optimizer, precision, network type, VRAM) one at a time. A refusal check does not predict
 * (kohya's FLUX.1 single files, found by `train` after a clean check) fails here with the contract.
 */
const BASE_PATHS = [undefined, "org/some-model", "/models/base", "./weights/base.safetensors"] as const;

function contract(base: BaseModelId, trainer: TrainerId, path: string | undefined, overrides: Partial<ContractInput> = {}): Contract | undefined {
  try {
    return makeContract({ base, target: "character", trainer: trainer === "diffusers" ? "kohya" : trainer, path, overrides: { ...(trainer === "diffusers" ? { trainer: { name: "diffusers" } } : {}), ...overrides } });
  } catch {
    return undefined; // the schema refuses it: the loader's E_CONTRACT_INVALID, before check
  }
}

function compileError(c: Contract): string | undefined {
  try {
    // the request the worker validates against its JSON Schema (generated from TrainRequestSchema): parsed here too
    if (c.trainer.name === "diffusers") TrainRequestSchema.parse(compileDiffusers(c, {}, PATHS).request);
    else if (c.trainer.name === "kohya") compileKohya(c, {}, PATHS);
    else if (c.trainer.name === "ai-toolkit") compileAiToolkit(c, {}, PATHS);
    else compileFal(c, {}, { zipUrl: "https://example.com/d.zip" });
    return undefined;
  } catch (error) {
    if (isLoraspecError(error)) return `${error.code}: ${error.message}`;
    if (error instanceof z.ZodError) return `the worker's request schema: ${error.issues.map((i) => `${i.path.join(".")} ${i.message}`).join("; ")}`;
    throw error;
  }
}

/** Contracts check passes whose compile throws, as "trainer base ...: error". */
function brokenPromises(cases: Array<{ label: string; c: Contract | undefined }>): string[] {
  const out: string[] = [];
  for (const { label, c } of cases) {
    if (!c || lintContract(c).some((f) => f.severity === "error")) continue;
    const error = compileError(c);
    if (error) out.push(`${label}: ${error}`);
  }
  return out;
}

const base = (b: BaseModelId, t: TrainerId, path: string | undefined, o: Partial<ContractInput>, what: string) => ({ label: `${t} ${b} path=${path ?? "-"} ${what}`, c: contract(b, t, path, o) });

describe("a contract check passes, the trainer's compiler accepts", () => {
  it("over base x trainer x base.path x base.quantize", () => {
    const cases = BASE_MODEL_IDS.flatMap((b) =>
      TRAINER_IDS.flatMap((t) => BASE_PATHS.flatMap((p) => QUANTIZATIONS.map((q) => base(b, t, p, { base: { model: b, ...(p ? { path: p } : {}), quantize: q } }, `quantize=${q}`)))),
    );
    expect(cases.filter((x) => x.c && !lintContract(x.c).some((f) => f.severity === "error")).length).toBeGreaterThan(50); // the matrix is not all refused
    expect(brokenPromises(cases)).toEqual([]);
  });

  it("over base x trainer x (optimizer | precision | network type | targets | scheduler | target | aspect | resolution | VRAM), a local base path", () => {
    const hp = { learning_rate: 1e-4, steps: 1500, rank: 16, save_every: 250 };
    const cases = BASE_MODEL_IDS.flatMap((b) =>
      TRAINER_IDS.flatMap((t) => [
        ...OPTIMIZERS.map((o) => base(b, t, "/models/base", { hyperparameters: { ...hp, optimizer: o } }, `optimizer=${o}`)),
        ...PRECISIONS.map((p) => base(b, t, "/models/base", { hyperparameters: { ...hp, precision: p } }, `precision=${p}`)),
        ...NETWORK_TYPES.map((n) => base(b, t, "/models/base", { network: { type: n } }, `network.type=${n}`)),
        ...TARGET_PRESETS.map((x) => base(b, t, "/models/base", { network: { targets: x } }, `network.targets=${x}`)),
        ...LR_SCHEDULERS.map((x) => base(b, t, "/models/base", { hyperparameters: { ...hp, lr_scheduler: x } }, `lr_scheduler=${x}`)),
        ...TARGETS.map((x) => base(b, t, "/models/base", { target: x }, `target=${x}`)),
        ...(["square", "buckets"] as const).map((x) => base(b, t, "/models/base", { dataset: { path: "./dataset", expected_images: 20, aspect: x } }, `aspect=${x}`)),
        ...[64, 100, 200, 520, 1000, 1024, 1100, 1328].flatMap((r) =>
          (["square", "buckets"] as const).map((x) => base(b, t, "/models/base", { dataset: { path: "./dataset", expected_images: 20, resolution: r, aspect: x } }, `resolution=${r} aspect=${x}`)),
        ),
        ...[[512, 1000], [256, 520, 1024]].map((rs) =>
          base(b, t, "/models/base", { dataset: { path: "./dataset", expected_images: 20, resolution: 1024, aspect: "buckets", buckets: { resolutions: rs } } }, `buckets.resolutions=${rs}`),
        ),
        ...[8, 12, 16, 24, 48, 80].map((v) => base(b, t, "/models/base", { hardware: { kind: t === "fal" ? "fal" : "local", gpu: "RTX 4090", vram_gb: v } }, `vram=${v}`)),
      ]),
    );
    expect(brokenPromises(cases)).toEqual([]);
  });

  it("Kohya and ai-toolkit: a square run check passes has compiled sides its trainer's record says start (resolution-rules.ts)", () => {
    const out: string[] = [];
    let compiled = 0;
    for (const b of BASE_MODEL_IDS) {
      for (const t of ["kohya", "ai-toolkit"] as const) {
        const rec = getTrainerSide(t, getBaseModel(b)!.family);
        for (const r of [512, 520, 1000, 1008, 1024, 1030, 1040, 1056, 1328]) {
          const c = contract(b, t, "/models/base", { dataset: { path: "./dataset", expected_images: 20, resolution: r, aspect: "square" } });
          if (!c || !rec || lintContract(c).some((f) => f.severity === "error")) continue;
          const sides =
            t === "kohya"
              ? (parseToml(compileKohya(c, {}, PATHS).datasetToml) as { datasets: Array<{ resolution: number }> }).datasets.map((d) => d.resolution)
              : ((compileAiToolkit(c, {}, PATHS).job as { config: { process: Array<{ datasets: Array<{ resolution: number[] }> }> } }).config.process[0]!.datasets.flatMap((d) => d.resolution));
          compiled += sides.length;
          for (const side of sides) if (sideVerdict(rec, "square", side, 64).kind === "crash") out.push(`${t} ${b} resolution=${r}: compiled side ${side} fails at the first step`);
        }
      }
    }
    expect(compiled).toBeGreaterThan(20); // the matrix is not all refused
    expect(out).toEqual([]);
  });

  it("kohya's FLUX.1 without local single files is check's error, with the fix", () => {
    const c = contract("flux1-dev", "kohya", undefined)!;
    const hit = lintContract(c).find((f) => f.rule === "kohya-flux-single-files");
    expect(hit).toMatchObject({ severity: "error", field: "base.path" });
    expect(hit?.fix).toMatch(/ae\.safetensors.*as a local path/);
    expect(compileError(c)).toMatch(/^E_TRAINER_UNSUPPORTED: kohya sd-scripts loads FLUX\.1 only from BFL single files/);
    expect(lintContract(contract("flux1-dev", "kohya", "/models/flux")!).map((f) => f.rule)).not.toContain("kohya-flux-single-files");
  });
});
