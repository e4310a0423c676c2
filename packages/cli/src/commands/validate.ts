import type { Command } from "commander";
import pc from "picocolors";
import { LoraspecError } from "@loraspec/core/errors.js";
import { parseRenderFlag } from "@loraspec/core/validate/render-flags.js";
import { printJson, table } from "../output.js";

interface ValidateOptions {
  lora?: string;
  run?: string;
  checkpoints?: boolean;
  trigger?: string;
  target?: "character" | "style" | "product";
  sampler?: "worker" | "fal" | "comfyui";
  base?: string;
  width?: string;
  height?: string;
  steps?: string;
  guidance?: string;
  maxSequenceLength?: string;
  scoreModel?: string;
  dinoModel?: string;
  device?: string;
  falEndpoint?: string;
  comfyUrl?: string;
  comfyCheckpoint?: string;
  out?: string;
  inlineImages?: boolean;
  json?: boolean;
}

const paint = (s: string) => (s === "pass" ? pc.green(s) : s === "warn" ? pc.yellow(s) : s === "fail" ? pc.red(s) : pc.dim(s));

/** `loraspec validate [lora.yaml] --lora FILE | --run ID [--checkpoints] [--json]`: the contract's rubric, scored, with a report. */
export function registerValidate(program: Command): void {
  program
    .command("validate")
    .description(
      "Check a LoRA against the contract's validation rubric (trigger on/off, pose variations, novel scenes, stacking, weight sweep; checkpoints of a run) and write report.html (exit 0 pass/warn, 1 fail)",
    )
    .argument("[contract]", "the contract file", "lora.yaml")
    .option("--lora <file>", "the LoRA file to validate")
    .option("--run <id>", "validate a run's LoRA (its validation folder gets the report)")
    .option("--checkpoints", "with --run: compare every checkpoint of the run and pick the best step")
    .option("--trigger <word>", "the trigger word when there is no contract")
    .option("--target <kind>", "character | style | product when there is no contract")
    .option("--sampler <kind>", "worker | fal | comfyui (default: the contract's validation.sampler)")
    .option("--base <model>", "base model override: a diffusers folder or Hugging Face id (worker sampler)")
    .option("--width <px>", "image width (default: the contract's dataset.resolution, what the LoRA trained at; else the base's native one)")
    .option("--height <px>", "image height")
    .option("--steps <n>", "denoising steps (default: the base's sampling steps, as its training samples; 28 without a base)")
    .option("--guidance <x>", "guidance scale (default: the base's, as its training samples; else the pipeline's)")
    .option("--max-sequence-length <n>", "prompt token length for T5/LLM text encoders (FLUX, Qwen-Image, Z-Image; default the pipeline's, 512 for FLUX)")
    .option("--score-model <id>", "CLIP model for scores (Hugging Face id or folder; default openai/clip-vit-large-patch14)")
    .option("--dino-model <id>", "optional DINOv2 model for DINO subject fidelity (e.g. facebook/dinov2-base)")
    .option("--device <name>", "cpu | cuda (default: cuda when available)")
    .option("--fal-endpoint <id>", "fal LoRA inference endpoint (default by base: fal-ai/flux-lora, fal-ai/flux-2/lora); key from FAL_KEY")
    .option("--comfy-url <url>", "ComfyUI server (default http://127.0.0.1:8188)")
    .option("--comfy-checkpoint <name>", "the base checkpoint's file name in ComfyUI's models/checkpoints")
    .option("--out <dir>", "validation folder (default: the run's validation/ or .loraspec/validations/<name>/)")
    .option("--inline-images", "embed images in report.html as data URIs (one file to share)")
    .option("--json", "print events as JSON lines, then the verdicts as JSON")
    .action(async (contractPath: string, opts: ValidateOptions, command: Command) => {
      if (!opts.lora && !opts.run) throw new LoraspecError("E_USAGE", "validate needs --lora FILE or --run ID", { hint: "loraspec validate --lora out/txcl.safetensors" });
      if (opts.lora && opts.run) throw new LoraspecError("E_USAGE", "pass --lora or --run, not both");
      if (opts.checkpoints && !opts.run) throw new LoraspecError("E_USAGE", "--checkpoints needs --run ID");
      if (opts.sampler && !["worker", "fal", "comfyui"].includes(opts.sampler)) throw new LoraspecError("E_USAGE", `--sampler must be worker, fal or comfyui, got '${opts.sampler}'`);
      const { validateProject } = await import("@loraspec/engine/validate/validate-project.js");
      const { renderEvents } = await import("../render-events.js");
      const explicitContract = command.args.length > 0;
      const controller = new AbortController();
      const onSigint = () => controller.abort();
      process.once("SIGINT", onSigint);
      let result: Record<string, unknown> | undefined;
      try {
        result = await renderEvents(
          validateProject({
            contractPath: explicitContract ? contractPath : undefined,
            lora: opts.lora,
            runId: opts.run,
            checkpoints: opts.checkpoints,
            trigger: opts.trigger,
            target: opts.target,
            sampler: opts.sampler,
            base: opts.base,
            width: parseRenderFlag(opts.width, "--width", "side"),
            height: parseRenderFlag(opts.height, "--height", "side"),
            steps: parseRenderFlag(opts.steps, "--steps", "count"),
            guidance: parseRenderFlag(opts.guidance, "--guidance", "scale"),
            maxSequenceLength: parseRenderFlag(opts.maxSequenceLength, "--max-sequence-length", "count"),
            scoreModel: opts.scoreModel,
            dinoModel: opts.dinoModel,
            device: opts.device,
            falKey: process.env.FAL_KEY,
            falEndpoint: opts.falEndpoint,
            comfyUrl: opts.comfyUrl,
            comfyCheckpoint: opts.comfyCheckpoint,
            outDir: opts.out,
            inlineImages: opts.inlineImages,
            signal: controller.signal,
          }),
          { json: opts.json },
        );
      } finally {
        process.off("SIGINT", onSigint);
      }
      const status = String(result?.status ?? "skip");
      process.exitCode = status === "fail" ? 1 : 0;
      if (opts.json) {
        printJson(result ?? {});
        return;
      }
      const weights = (result?.weights as { key: string; step?: number; weight: number; status: string; checks: Record<string, string> }[] | undefined) ?? [];
      const rows = weights.map((w) => [
        w.step === undefined ? "" : String(w.step),
        String(w.weight),
        paint(w.checks.trigger ?? "skip"),
        paint(w.checks.consistency ?? "skip"),
        paint(w.checks.composition ?? "skip"),
        paint(w.status),
      ]);
      const out = [table(rows, ["step", "weight", "1 trigger", "2 consistency", "3 composition", "overall"])];
      if (result?.stack) out.push(`4 stacking: ${paint(String(result.stack))}`);
      for (const a of (result?.advice as { measure: string; text: string }[] | undefined) ?? []) out.push(`${pc.yellow("what to try")} (${a.measure}): ${a.text}`);
      const best = result?.best as { weight: number; step?: number } | undefined;
      if (best) out.push(`best: ${best.step === undefined ? "" : `step ${best.step}, `}weight ${best.weight}`);
      out.push(`${status === "fail" ? pc.red("✗") : pc.green("✓")} ${paint(status)}: ${result?.report}`);
      process.stdout.write(`${out.join("\n")}\n`);
    });
}
