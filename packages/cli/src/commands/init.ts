import type { Command } from "commander";
import pc from "picocolors";
import { relative } from "node:path";
import { LoraspecError } from "@loraspec/core/errors.js";
import { BASE_MODEL_IDS, type BaseModelId } from "@loraspec/core/knowledge/base-models.js";
import { TARGETS, TRAINER_IDS, type Target, type TrainerId } from "@loraspec/core/contract/ids.js";
import { parseResolutionFlag } from "@loraspec/core/contract/training-resolution.js";
import type { InitProjectResult } from "@loraspec/engine/project/init-project.js";

interface InitFlags {
  base?: string;
  target?: string;
  trigger?: string;
  trainer?: string;
  dataset?: string;
  basePath?: string;
  resolution?: string;
  hardware?: string;
  gpu?: string;
  vram?: string;
  pricePerHour?: string;
  maxCost?: string;
  name?: string;
  out: string;
  force?: boolean;
  json?: boolean;
}

/** `loraspec init`: write lora.yaml with values chosen from the knowledge base, each with why and source. */
export function registerInit(program: Command): void {
  program
    .command("init")
    .description("Write lora.yaml with values chosen for your base model and target, each commented with why and its source.")
    .option("--base <id>", `base model: ${BASE_MODEL_IDS.join(", ")}`)
    .option("--target <kind>", `what the LoRA learns: ${TARGETS.join(", ")}`)
    .option("--trigger <word>", "trigger token (rare, not an English word), e.g. txcl")
    .option("--trainer <name>", `trainer: ${TRAINER_IDS.join(", ")} (default: the best one for the base)`)
    .option("--dataset <folder>", "dataset folder, relative to the contract", "./dataset")
    .option("--base-path <path>", "the base's weights: a Hugging Face id or a local folder/file (kohya's FLUX.1 needs the BFL single files' folder)")
    .option("--resolution <px>", "training resolution, the square side in px: a multiple of 16 (default: the base's native one, if the images are big enough)")
    .option("--hardware <kind>", "local or fal (default: fal for --trainer fal, else local)")
    .option("--gpu <name>", "GPU model, e.g. 'RTX 4090'")
    .option("--vram <gb>", "VRAM of the GPU in GB")
    .option("--price-per-hour <usd>", "what the GPU costs per hour")
    .option("--max-cost <usd>", "cost limit in USD")
    .option("--name <name>", "LoRA name (default: <trigger>-<target>)")
    .option("-o, --out <file>", "where to write the contract", "lora.yaml")
    .option("-f, --force", "overwrite an existing file")
    .option("--json", "print the result as JSON: the contract written and each choice with its reason and source")
    .action(async (flags: InitFlags) => {
      // --json is for scripts: never prompt, missing flags are an error as without a terminal.
      const interactive = Boolean(process.stdin.isTTY && process.stdout.isTTY) && !flags.json;
      if (interactive && (!flags.base || !flags.target || !flags.trigger)) await promptMissing(flags);
      const missing = (["base", "target", "trigger"] as const).filter((k) => !flags[k]);
      if (missing.length > 0) {
        throw new LoraspecError("E_USAGE", `missing ${missing.map((m) => `--${m}`).join(", ")}`, {
          hint: "e.g. loraspec init --base flux1-dev --target character --trigger txcl --gpu 'RTX 4090'",
        });
      }
      const choices = {
        base: oneOf("base", flags.base!, BASE_MODEL_IDS) as BaseModelId,
        target: oneOf("target", flags.target!, TARGETS) as Target,
        trigger: flags.trigger!,
        trainer: flags.trainer ? (oneOf("trainer", flags.trainer, TRAINER_IDS) as TrainerId) : undefined,
        dataset: flags.dataset,
        basePath: flags.basePath,
        resolution: parseResolutionFlag(flags.resolution),
        hardware: flags.hardware ? (oneOf("hardware", flags.hardware, ["local", "fal"] as const) as "local" | "fal") : undefined,
        gpu: flags.gpu,
        vramGb: num("vram", flags.vram),
        pricePerHour: num("price-per-hour", flags.pricePerHour),
        maxCostUsd: num("max-cost", flags.maxCost),
        name: flags.name,
      };
      const { initProject } = await import("@loraspec/engine/project/init-project.js");
      const result = await initProject({ choices, path: flags.out, force: flags.force });
      // The file written: -o naming a folder writes lora.yaml inside it.
      const written = relative(process.cwd(), result.file) || result.file;
      const c = result.contract;
      if (flags.json) {
        const { printJson } = await import("../output.js");
        printJson(initJson(result, written));
        return;
      }
      process.stdout.write(
        `${pc.green("wrote")} ${written}: ${c.base.model} ${c.target} LoRA, trigger '${c.trigger.word}', ${c.trainer.name}${c.trainer.version ? ` ${c.trainer.version}` : ""}, ${initLrText(c.hyperparameters?.learning_rate, c.trainer.name)}, ${c.hyperparameters?.steps} steps\n` +
          (result.imageCount
            ? `next: run ${pc.bold(`loraspec check ${written}`)} (${result.imageCount} image${result.imageCount === 1 ? "" : "s"} in ${c.dataset.path}; the steps count them)\n`
            : `next: put images and captions in ${c.dataset.path}, then run ${pc.bold(`loraspec check ${written}`)}\n`),
      );
      // What prep will do with the folder's images by size, for this contract (the scan and rule check and prep use).
      if (result.sizes) {
        const { nameFew } = await import("@loraspec/engine/dataset/name-few.js");
        const byCode = (rows: Array<{ file: string; code: string }>) => {
          const groups = new Map<string, string[]>();
          for (const r of rows) groups.set(r.code, [...(groups.get(r.code) ?? []), r.file]);
          return [...groups].map(([code, files]) => `${code}: ${nameFew(files)}`).join("; ");
        };
        const { skipped, warnings } = result.sizes;
        if (skipped.length) process.stdout.write(`${pc.yellow("note")}: prep will leave out ${skipped.length} image${skipped.length === 1 ? "" : "s"} by size (${byCode(skipped)})\n`);
        if (warnings.length) process.stdout.write(`${pc.dim(`note: prep keeps ${warnings.length} image${warnings.length === 1 ? "" : "s"} with a size warning (${byCode(warnings)}); check lists why`)}\n`);
      }
    });
}

/**
 * init's --json document: the contract written (absolute and as given), and every choice init made with its value,
 * why and source (the comments the YAML carries), in the contract's field order of the reasons.
 */
export function initJson(result: InitProjectResult, written: string): Record<string, unknown> {
  return {
    ok: true,
    file: result.file,
    path: written,
    choices: Object.entries(result.reasons).map(([field, reason]) => ({ field, value: valueAt(result.contract, field), why: reason.why, source: reason.source })),
    imageCount: result.imageCount,
    ...(result.sizes ? { sizes: result.sizes } : {}),
  };
}

function valueAt(root: unknown, field: string): unknown {
  let at: unknown = root;
  for (const key of field.split(".")) at = at !== null && typeof at === "object" ? (at as Record<string, unknown>)[key] : undefined;
  return at;
}

function oneOf<T extends string>(flag: string, value: string, allowed: readonly T[]): T {
  if ((allowed as readonly string[]).includes(value)) return value as T;
  throw new LoraspecError(flag === "base" ? "E_UNKNOWN_BASE_MODEL" : flag === "trainer" ? "E_UNKNOWN_TRAINER" : "E_USAGE", `--${flag}: got '${value}', expected one of ${allowed.join(", ")}`);
}

/** A numeric init flag (--vram, --price-per-hour, --max-cost): a finite number of 0 or more. */
export function num(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = value.trim() === "" ? NaN : Number(value);
  if (!Number.isFinite(n)) throw new LoraspecError("E_USAGE", `--${flag}: got '${value}', expected a number`);
  // '-3' is a number: say what is wrong with it (it said "expected a number").
  if (n < 0) throw new LoraspecError("E_USAGE", `--${flag}: got ${value}, expected a number of 0 or more`);
  return n;
}

async function promptMissing(flags: InitFlags): Promise<void> {
  const p = await import("@clack/prompts");
  const cancelled = (v: unknown) => {
    if (p.isCancel(v)) throw new LoraspecError("E_CANCELLED", "init cancelled");
    return v as string;
  };
  p.intro("loraspec init");
  flags.base ??= cancelled(await p.select({ message: "Base model", options: BASE_MODEL_IDS.map((id) => ({ value: id, label: id })) }));
  flags.target ??= cancelled(await p.select({ message: "What should the LoRA learn?", options: TARGETS.map((t) => ({ value: t, label: t })) }));
  flags.trigger ??= cancelled(
    await p.text({ message: "Trigger word (rare, not an English word)", placeholder: "txcl", validate: (v) => (v && /^\S+$/.test(v) ? undefined : "one token, no spaces") }),
  );
  if (!flags.gpu && flags.hardware !== "fal") {
    const gpu = cancelled(await p.text({ message: "GPU (blank to skip)", placeholder: "RTX 4090", defaultValue: "" }));
    if (gpu) flags.gpu = gpu;
  }
  p.outro(`writing ${flags.out}`);
}

/**
 * The summary's learning rate: the contract's, or what sets it when init leaves it out (a fal endpoint that
 * takes none, e.g. flux-lora-fast-training: it printed "LR undefined").
 */
export function initLrText(lr: number | undefined, trainer: string): string {
  if (lr !== undefined) return `LR ${lr.toExponential().replace(/\.?0+e/, "e")}`;
  return trainer === "fal" ? "LR set by the fal endpoint (it takes none)" : "LR from the plan's recipe";
}
