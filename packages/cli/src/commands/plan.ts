import type { Command } from "commander";
import pc from "picocolors";
import { printJson, table } from "../output.js";

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
      const lr = p.learningRate.toExponential().replace(/\.?0+e/, "e");
      const rows: string[][] = [
        ["base", `${p.base.label} (${p.base.path})`],
        ["trainer", `${p.trainer.name}${p.trainer.version ? ` ${p.trainer.version}` : ""}${p.trainer.endpoint ? ` -> ${p.trainer.endpoint}` : ""}`],
        ["target", p.target],
        ["images", `${p.images.count} (${p.images.source}) at ${p.resolution} px`],
        ["steps", `${p.steps} (${p.stepsSource})`],
        ["passes per image", String(p.passesPerImage)],
        ["repeats x epochs", `${p.repeats} x ${p.epochs} (${p.stepsPerEpoch} steps/epoch)`],
        ["batch", `${p.batchSize} x accumulation ${p.gradientAccumulation} x ${p.gpus} GPU = ${p.effectiveBatch}`],
        ["learning rate", `${lr} (${p.learningRateSource})`],
        ["rank / alpha", `${p.rank} / ${p.alpha}`],
        ["checkpoints", p.saveEvery ? `every ${p.saveEvery} steps (${p.checkpoints})` : "final only"],
        [
          "VRAM (peak)",
          `~${p.vram.totalGb} GB = weights ${p.vram.parts.weights} + TE ${p.vram.parts.textEncoders} + VAE ${p.vram.parts.vae} + LoRA ${p.vram.parts.lora} + activations ${p.vram.parts.activations} + overhead ${p.vram.parts.overhead}`,
        ],
        ["cost", p.cost.usd !== undefined ? `$${p.cost.usd.toFixed(2)} (${p.cost.basis})` : p.cost.basis],
      ];
      rows.push(["network targets", `${p.networkTargets.preset} (${p.networkTargets.why}; source: ${p.networkTargets.source})`]);
      if (p.networkCost.type !== "lora") rows.push(["network type", `${p.networkCost.label} (source: ${p.networkCost.source})`]);
      for (const c of p.trainSettings.choices) rows.push([c.setting, `${String(c.value)} (${c.why}; source: ${c.source})`]);
      if (p.selected) {
        const config = p.selected.config ? `; ${p.selected.config}` : "";
        const sampling = p.selected.samplingSeconds !== undefined ? `; samples ${p.selected.samplingSeconds} s of it` : "";
        rows.push(["walltime", `${p.selected.hours} h on ${p.selected.label} (${p.selected.secondsPerStep} s/step, ${p.selected.basis}${config}${sampling})`]);
        // the run's parts (plan/walltime-parts.ts), each with why; sources in --json
        for (const part of p.selected.parts) rows.push([`  ${part.part}`, `${part.seconds} s (${part.why})`]);
        if (p.selected.omitted) rows.push(["  left out", p.selected.omitted]);
      }
      const out = [pc.bold(`Plan for ${p.name}`), table(rows), "", pc.bold("Walltime per GPU class")];
      out.push(
        table(
          p.walltime.map((w) => [w.label, `${w.secondsPerStep}`, `${w.hours}`, w.basis]),
          ["GPU", "s/step", "hours", "basis"],
        ),
      );
      for (const note of [...p.notes, ...result.notes]) out.push(pc.dim(`note: ${note}`));
      const errors = result.findings.filter((f) => f.severity === "error").length;
      if (errors > 0) out.push(pc.yellow(`\n${errors} error(s) in the contract: run \`loraspec check\` before training.`));
      process.stdout.write(`${out.join("\n")}\n`);
    });
}
