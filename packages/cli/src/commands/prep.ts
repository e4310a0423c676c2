import { FLATTEN_BACKGROUND } from "@loraspec/core/knowledge/image-formats.js";
import type { Command } from "commander";
import pc from "picocolors";
import { LoraspecError } from "@loraspec/core/errors.js";
import type { PrepSummary } from "@loraspec/engine/dataset/prepare-dataset.js";
import type { LoraspecEvent } from "@loraspec/core/events.js";
import type { Finding } from "@loraspec/core/lint/finding.js";
import { printJson, table } from "../output.js";

interface PrepOptions {
  dataset?: string;
  out?: string;
  resolution?: string;
  aspect?: "square" | "buckets";
  crop?: "center" | "attention";
  format?: "png" | "jpeg";
  background?: string;
  maxPixels?: string;
  nearThreshold?: string;
  pin?: string[];
  concurrency?: string;
  embed?: boolean;
  embedModel?: string;
  json?: boolean;
}

/** `loraspec prep [lora.yaml]`: validate, dedupe, crop and resize the dataset into its prepared folder under .loraspec/. */
export function registerPrep(program: Command): void {
  program
    .command("prep")
    .description("Prepare the dataset: validate every image, drop duplicates, crop and resize into a new folder (originals are never modified; re-runs are incremental).")
    .argument("[contract]", "the contract file (optional when --dataset and --resolution are given)")
    .option("--dataset <dir>", "image folder (default: the contract's dataset.path)")
    .option("--out <dir>", "prepared folder (default: the dataset's own under <project>/.loraspec/: prepared, or prepared-<name>-<hash> when another dataset has that one)")
    .option("--resolution <px>", "training resolution (default: dataset.resolution, else the base model's native one)")
    .option("--aspect <policy>", "square | buckets (default: the contract's dataset.aspect)")
    .option("--crop <strategy>", "center | attention (default: the contract's dataset.crop)")
    .option("--format <fmt>", "png | jpeg (high quality)", "png")
    .option("--background <colour>", "colour transparent pixels are flattened onto", FLATTEN_BACKGROUND.value)
    .option("--max-pixels <n>", "decompression-bomb limit on width x height (default: sharp's 268402689)")
    .option("--near-threshold <distance>", "pixel distance (0-441) tolerated between two images whose hashes match exactly; less as the hashes differ (default: NEAR_DUPLICATE.pixelAtZero; 0 turns near-duplicate search off)")
    .option("--pin <file...>", "keep these sources over their duplicates (paths relative to the dataset)")
    .option("--concurrency <n>", "images in flight (default: CPU count)")
    .option("--no-embed", "decide near duplicates by hash and pixels only (default: confirmed by the worker's CLIP embeddings when it is installed)")
    .option("--embed-model <id>", "CLIP model (Hugging Face id or folder) that confirms near duplicates (default: the one validate uses)")
    .option("--json", "print events as JSON lines and the summary as JSON")
    .action(async (contractPath: string | undefined, opts: PrepOptions) => {
      const { resolve } = await import("node:path");
      const { resolveProjectDataset } = await import("@loraspec/engine/dataset/project-dataset.js");
      const { prepareDataset } = await import("@loraspec/engine/dataset/prepare-dataset.js");
      const { renderEvents } = await import("../render-events.js");
      // Every flag's syntax first, then its meaning (prep-params.ts): a bad value is E_USAGE before any file is read or written.
      const flags = parseFlags(opts);
      const project = await resolveProjectDataset({ contractPath });
      const datasetDir = opts.dataset ? resolve(opts.dataset) : project.datasetDir;
      const resolution = flags.resolution ?? project.resolution;
      if (!datasetDir || !resolution) {
        throw new LoraspecError("E_USAGE", "no contract here, so prep needs --dataset and --resolution", {
          hint: "run it next to lora.yaml, or pass `loraspec prep --dataset ./photos --resolution 1024`",
        });
      }
      const aspect = flags.aspect ?? project.contract?.dataset.aspect;
      const crop = flags.crop ?? project.contract?.dataset.crop;
      const { checkPrepSettings, checkOutDir } = await import("@loraspec/engine/dataset/prep-params.js");
      checkPrepSettings({ ...flags, resolution, aspect, crop }, { ...FLAG_NAMES, resolution: flags.resolution ? "--resolution" : "dataset.resolution" });
      // How the contract's trainer shapes each image (core's shapeRule, what the plan uses): prep crops each image to the
      // shape that trainer trains it at (largest resolution). No contract, or one that does not bucket: core's default set.
      const { prepShapes } = await import("@loraspec/engine/dataset/prep-shapes.js");
      const shapes = prepShapes({ contract: project.contract, aspect, resolution });
      // A prepared folder belongs to one dataset (prepared-folder.ts): this dataset's, else a free one.
      const { choosePreparedDir } = await import("@loraspec/engine/dataset/prepared-folder.js");
      const chosen = opts.out ? undefined : await choosePreparedDir({ projectDir: project.projectDir, datasetDir });
      const outDir = opts.out ? resolve(opts.out) : chosen!.dir;
      await checkOutDir(outDir, opts.out ? "--out" : "prepared folder");
      // --pin names images of this dataset (a typo is E_USAGE); they win over the page's stored choices for this
      // dataset (.loraspec/dataset-pins.json, each dataset its own) and are recorded there once prep succeeds.
      // A bad pins file is a warning (as in check): prep goes on with --pin alone.
      const { resolvePinArgs, recordPins } = await import("@loraspec/engine/dataset/prep-pins.js");
      const cliPins = await resolvePinArgs({ datasetDir, outDir, pins: opts.pin ?? [], captionExtension: project.contract?.captions.extension });
      const { mergePins } = await import("@loraspec/engine/dataset/dataset-pins.js");
      const { readStoredPins } = await import("@loraspec/engine/dataset/stored-pins.js");
      const stored = await readStoredPins({ projectDir: project.projectDir, datasetDir });
      const pins = mergePins(stored?.pins, cliPins);
      if (chosen && !chosen.existing && chosen.others.length && !opts.json) {
        const others = chosen.others.map((o) => `${o.dir} holds ${o.dataset ?? "another dataset"}'s images`).join("; ");
        process.stderr.write(`${pc.dim(`note: ${others}; ${datasetDir} is prepared into ${outDir}`)}\n`);
      }
      const controller = new AbortController();
      const onSigint = () => controller.abort();
      process.once("SIGINT", onSigint);
      try {
        const result = (await renderEvents(
          withWarning(stored?.finding, prepareDataset({
            ...flags,
            datasetDir,
            outDir,
            resolution,
            aspect,
            shapes,
            crop,
            pinned: pins.keep,
            preferred: cliPins,
            distinct: pins.distinct,
            captionExtension: project.contract?.captions.extension,
            embed: opts.embed === false ? undefined : async (paths) => (await import("@loraspec/engine/dataset/worker-embedder.js")).embedWithWorker(paths, { model: opts.embedModel, signal: controller.signal }),
            signal: controller.signal,
          })),
          { json: opts.json },
        )) as unknown as PrepSummary | undefined;
        if (!result) return;
        if (cliPins.length) {
          await recordPins({ projectDir: project.projectDir, datasetDir, pins: cliPins, duplicates: result.duplicates }).catch((error: unknown) => {
            process.stderr.write(`${pc.yellow(`warning: --pin was applied to this prep but not saved, so check and the next prep will not know it: ${(error as Error).message}`)}\n`);
          });
        }
        if (opts.json) {
          printJson(result);
          return;
        }
        const { nameFew } = await import("@loraspec/engine/dataset/name-few.js");
        const { describeOrphan } = await import("@loraspec/engine/dataset/caption-sidecar.js");
        process.stdout.write(`${renderSummary(result, { nameFew, describeOrphan })}\n`);
      } finally {
        process.off("SIGINT", onSigint);
      }
    });
}

/** The flag each prep setting comes from (errors name it). */
const FLAG_NAMES = {
  resolution: "--resolution",
  aspect: "--aspect",
  crop: "--crop",
  format: "--format",
  background: "--background",
  maxPixels: "--max-pixels",
  concurrency: "--concurrency",
  nearThreshold: "--near-threshold",
} as const;

/** The flags' syntax: numbers are plain decimal integers, choices one of their values (their meaning: prep-params.ts). */
function parseFlags(opts: PrepOptions) {
  return {
    resolution: opts.resolution === undefined ? undefined : positiveInt(opts.resolution, "--resolution"),
    aspect: opts.aspect === undefined ? undefined : oneOf(opts.aspect, ["square", "buckets"] as const, "--aspect"),
    crop: opts.crop === undefined ? undefined : oneOf(opts.crop, ["center", "attention"] as const, "--crop"),
    format: oneOf(opts.format ?? "png", ["png", "jpeg"] as const, "--format"),
    background: opts.background,
    maxPixels: opts.maxPixels === undefined ? undefined : positiveInt(opts.maxPixels, "--max-pixels"),
    nearDuplicate: opts.nearThreshold === undefined ? undefined : { pixelAtZero: positiveInt(opts.nearThreshold, "--near-threshold", true) },
    concurrency: opts.concurrency === undefined ? undefined : positiveInt(opts.concurrency, "--concurrency"),
  };
}

/** The engine's list formatters (loaded with prep, so the CLI's start stays lazy). */
interface ListFormat {
  nameFew: (names: readonly string[]) => string;
  describeOrphan: (orphan: string, hints: Readonly<Record<string, string>>) => string;
}

function renderSummary(s: PrepSummary, { nameFew, describeOrphan }: ListFormat): string {
  const lines: string[] = [];
  lines.push(
    table(
      [
        ["images found", String(s.candidates)],
        ["prepared now", String(s.processed.length)],
        ["unchanged", String(s.unchanged)],
        ["skipped", String(s.skipped.length)],
        ["outputs removed", String(s.removed.length)],
        ["in prepared folder", String(s.outputs)],
        ["captions copied / missing", `${s.captionsCopied} / ${s.captionsMissing}`],
      ],
      ["", "count"],
    ),
  );
  if (s.skipped.length) {
    lines.push("", pc.bold("Skipped"), table(s.skipped.map((k) => [k.source, k.code, k.message]), ["file", "reason", "detail"]));
  }
  if (s.warnings.length) {
    lines.push("", pc.bold("Used, with warnings"), table(s.warnings.map((k) => [k.source, k.code, k.message]), ["file", "warning", "detail"]));
  }
  if (s.otherFiles.length) lines.push("", pc.dim(`not images (ignored): ${s.otherFiles.join(", ")}`));
  if (s.orphanCaptions.length) lines.push("", pc.yellow(`captions with no image (ignored): ${s.orphanCaptions.map((c) => describeOrphan(c, s.orphanHints)).join(", ")}`));
  if (s.hidden.length) lines.push("", pc.dim(`hidden, names starting with "." (left out): ${nameFew(s.hidden)}`));
  if (s.staleCaptions.length) {
    lines.push("", pc.yellow(`captions set aside, their image changed (copy back any that still fits): ${s.staleCaptions.map((c) => `${c.source} -> ${c.parked}`).join(", ")}`));
  }
  lines.push("", pc.green(`✓ ${s.outputs} images in ${s.outDir}`) + pc.dim(` (manifest: ${s.manifest})`));
  if (s.captionsMissing > 0) lines.push(pc.dim(`  ${s.captionsMissing} without a caption: run \`loraspec caption\``));
  return lines.join("\n");
}

function positiveInt(value: string, flag: string, allowZero = false): number {
  // Digits only: Number() would take "", " 5", "1e3" and "0x10".
  const n = /^[0-9]{1,16}$/.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n) || n < (allowZero ? 0 : 1)) throw usage(`${flag} must be a ${allowZero ? "non-negative" : "positive"} integer, got "${value}"`, flag);
  return n;
}

function oneOf<T extends string>(value: string, allowed: readonly T[], flag: string): T {
  if (!(allowed as readonly string[]).includes(value)) throw usage(`${flag} must be one of ${allowed.join(", ")}, got "${value}"`, flag);
  return value as T;
}

function usage(message: string, flag: string): LoraspecError {
  return new LoraspecError("E_USAGE", message, { field: flag, hint: "nothing was read or written; fix the flag and run prep again" });
}

/** The stream with a finding first, as a coded warning event (prep's stored pins that cannot be used). */
async function* withWarning(finding: Finding | undefined, stream: AsyncIterable<LoraspecEvent>): AsyncIterable<LoraspecEvent> {
  if (finding) yield { type: "warning", code: finding.rule, message: `${finding.message} ${finding.fix}` };
  yield* stream;
}
