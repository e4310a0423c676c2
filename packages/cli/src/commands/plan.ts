import type { Command } from "commander";
import pc from "picocolors";
import type { TrainingShapes } from "@loraspec/core/plan/trainer-buckets.js";
import type { Plan } from "@loraspec/core/plan/plan-run.js";
import { regShareText } from "@loraspec/core/plan/epoch.js";
import { printJson, table } from "../output.js";

/** Shapes listed before "(+N more)": enough to see the range, short enough for one row. */
const SHAPES_SHOWN = 4;

/** `loraspec plan [lora.yaml] [--json]`: resolve the contract into steps, LR, VRAM, time and cost. */
export function registerPlan(program: Command): void {
  program
    .command("plan")
    .description("Resolve lora.yaml into a plan: steps, epochs, repeats, batch, LR, estimated VRAM, walltime per GPU and cost.")
    .argument("[contract]", "the contract file", "lora.yaml")
    .option("--json", "print the plan as JSON")
    .option("--no-scan", "do not scan the dataset folder (use dataset.expected_images)")
    .action(async (path: string, opts: { json?: boolean; scan?: boolean }) => {
      const { checkProject } = await import("@loraspec/engine/project/check-project.js");
      const result = await checkProject({ path, falKey: process.env.FAL_KEY, skipDataset: opts.scan === false });
      const p = result.plan;
      if (opts.json) {
        printJson({ file: result.loaded.displayName, plan: p, notes: result.notes });
        return;
      }
      const rows = planRows(p);
      const out = [pc.bold(`Plan for ${p.name}`), table(rows)];
      if (p.receives.settings.gpu) {
        out.push("", pc.bold("Walltime per GPU class"));
        out.push(
          table(
            p.walltime.map((w) => [w.label, `${w.secondsPerStep}`, `${w.hours}`, w.basis]),
            ["GPU", "s/step", "hours", "basis"],
          ),
        );
      }
      for (const note of [...p.notes, ...result.notes]) out.push(pc.dim(`note: ${note}`));
      const errors = result.findings.filter((f) => f.severity === "error").length;
      if (errors > 0) out.push(pc.yellow(`\n${errors} error(s) in the contract: run \`loraspec check\` before training.`));
      process.stdout.write(`${out.join("\n")}\n`);
    });
}

/** How each trainer mixes regularisation images into an epoch (knowledge/trainer-epochs.ts). */
const REG_RULE_TEXT: Record<NonNullable<Plan["reg"]>["rule"], (perEpoch: number) => string> = {
  pad: (n) => `padded to the dataset's entries, ${n} reg entries per epoch`,
  alternate: (n) => `taken on alternate steps, ${n} reg steps per epoch`,
  pool: (n) => `pooled with the dataset, ${n} reg entries per epoch`,
};

/**
 * The plan's rows as `loraspec plan` prints them: a setting only where the trainer is handed it
 * (plan.receives, compile/trainer-receives.ts); fal's hosted endpoints pick their own GPU, rank and batch.
 */
export function planRows(p: Plan): string[][] {
  const shown = p.receives.settings;
  const lr = p.learningRate.toExponential().replace(/\.?0+e/, "e");
  const rows: string[][] = [
    ["base", `${p.base.label} (${p.base.path})`],
    ["trainer", `${p.trainer.name}${p.trainer.version ? ` ${p.trainer.version}` : ""}${p.trainer.endpoint ? ` -> ${p.trainer.endpoint}` : ""}`],
    ["target", p.target],
    ["images", `${p.images.count} (${p.images.source})${shown.resolution ? ` at ${p.resolution} px` : ""}`],
    ["steps", `${p.steps} (${p.stepsSource})`],
    ["passes per image", `${p.passesPerImage}${p.trainShare < 1 ? ` (each training image; ${regShareText(p.trainShare)})` : ""}`],
  ];
  if (shown.repeats) rows.push(["repeats x epochs", `${p.repeats} x ${p.epochs} (${p.stepsPerEpoch} steps/epoch)`]);
  if (p.reg) rows.push(["regularisation images", `${p.reg.count} (${p.reg.counted}): ${REG_RULE_TEXT[p.reg.rule](p.reg.perEpoch)}; each training image trains ~${p.passesPerImage} times (source: ${p.reg.source})`]);
  if (shown.batch) rows.push(["batch", `${p.batchSize} x accumulation ${p.gradientAccumulation} x ${p.gpus} GPU = ${p.effectiveBatch}`]);
  if (shown.learningRate) rows.push(["learning rate", `${lr} (${p.learningRateSource})`]);
  if (shown.rank) rows.push(["rank / alpha", `${p.rank} / ${p.alpha}`]);
  if (shown.resolution && p.buckets) rows.push(["buckets", describeShapes(p.buckets, p.trainer.name)]);
  if (shown.checkpoints) rows.push(["checkpoints", p.saveEvery ? `every ${p.saveEvery} steps (${p.checkpoints})` : "final only"]);
  if (shown.gpu) {
    rows.push([
      "VRAM (peak)",
      `~${p.vram.totalGb} GB = weights ${p.vram.parts.weights} + TE ${p.vram.parts.textEncoders} + VAE ${p.vram.parts.vae} + LoRA ${p.vram.parts.lora} + activations ${p.vram.parts.activations} + overhead ${p.vram.parts.overhead}`,
    ]);
  }
  rows.push(["cost", p.cost.usd !== undefined ? `$${p.cost.usd.toFixed(2)} (${p.cost.basis})` : p.cost.basis]);
  if (shown.networkTargets) rows.push(["network targets", `${p.networkTargets.preset} (${p.networkTargets.why}; source: ${p.networkTargets.source})`]);
  if (p.networkCost.type !== "lora") rows.push(["network type", `${p.networkCost.label} (source: ${p.networkCost.source})`]);
  if (shown.trainSettings) for (const c of p.trainSettings.choices) rows.push([c.setting, `${String(c.value)} (${c.why}; source: ${c.source})`]);
  if (p.receives.why) rows.push(["not sent", `${p.receives.why} (source: ${p.receives.source})`]);
  if (p.selected) {
    const config = p.selected.config ? `; ${p.selected.config}` : "";
    const sampling = p.selected.samplingSeconds !== undefined ? `; samples ${p.selected.samplingSeconds} s of it` : "";
    rows.push(["walltime", `${p.selected.hours} h on ${p.selected.label} (${p.selected.secondsPerStep} s/step, ${p.selected.basis}${config}${sampling})`]);
    // the run's parts (plan/walltime-parts.ts), each with why; sources in --json
    for (const part of p.selected.parts) rows.push([`  ${part.part}`, `${part.seconds} s (${part.why})`]);
    if (p.selected.omitted) rows.push(["  left out", p.selected.omitted]);
  }
  return rows;
}

/**
 * The plan's training shapes in one row, with who picks them. ai-toolkit's (picked per image, usually few):
 * those at the largest resolution, the first SHAPES_SHOWN then a count. Core's set (Kohya, the built-in
 * trainer; many, one per aspect): its count and range. Smaller resolutions as counts.
 */
export function describeShapes(shapes: TrainingShapes, trainer: string): string {
  const top = Math.max(...shapes.buckets.map((b) => b.resolution));
  const atTop = shapes.buckets.filter((b) => b.resolution === top).map((b) => `${b.width}x${b.height}`);
  const lower = [...new Set(shapes.buckets.filter((b) => b.resolution < top).map((b) => b.resolution))];
  const others = lower.length ? `; also ${lower.map((r) => `${shapes.buckets.filter((b) => b.resolution === r).length} at ${r}`).join(", ")}` : "";
  if (shapes.picker === "ai-toolkit") {
    const more = atTop.length > SHAPES_SHOWN ? ` (+${atTop.length - SHAPES_SHOWN} more)` : "";
    return `${atTop.slice(0, SHAPES_SHOWN).join(", ")}${more}${others} (${trainer} picks per image: the largest area <= ${top}² on its divisibility, a smaller image at its own size; dataset.buckets is not used)`;
  }
  if (shapes.buckets.length === 1 && atTop[0] === `${top}x${top}`) return `${atTop[0]} (square crops)`;
  // A set's range: its tallest to its widest shape.
  const byAspect = shapes.buckets.filter((b) => b.resolution === top).sort((a, b) => a.width / a.height - b.width / b.height);
  const named = (b: (typeof byAspect)[number]) => `${b.width}x${b.height}`;
  const listed = atTop.length > SHAPES_SHOWN ? `${atTop.length} shapes, ${named(byAspect[0]!)} .. ${named(byAspect[byAspect.length - 1]!)}` : atTop.join(", ");
  return `${listed}${others} (core's set from dataset.buckets; ${trainer}: each image in the bucket nearest its aspect)`;
}
