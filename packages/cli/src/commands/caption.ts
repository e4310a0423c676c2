import type { Command } from "commander";
import pc from "picocolors";
import { LoraspecError } from "@loraspec/core/errors.js";
import { printJson, table } from "../output.js";

interface CaptionOptions {
  dir?: string;
  backend?: string;
  overwrite?: boolean;
  fix?: boolean;
  concurrency?: string;
  model?: string;
  baseUrl?: string;
  apiKeyEnv?: string;
  falEndpoint?: string;
  trigger?: string;
  style?: string;
  target?: string;
  timeout?: string;
  json?: boolean;
}

/** `loraspec caption [lora.yaml]`: auto-caption images that have none, trigger first; `--fix` puts the trigger first. */
export function registerCaption(program: Command): void {
  program
    .command("caption")
    .description("Write missing captions with a vision-language model (trigger first), or --fix existing ones. Existing captions are never replaced without --overwrite.")
    .argument("[contract]", "the contract file (optional when --dir and --trigger are given)")
    .option("--dir <dir>", "image folder (default: the dataset's prepared folder once prep has made it, else the dataset)")
    .option("--backend <name>", "openai (any OpenAI-compatible endpoint) | fal | worker (local Florence-2)", "worker")
    .option("--overwrite", "replace captions that already exist")
    .option("--fix", "only put the trigger first in existing captions (no model)")
    .option("--concurrency <n>", "requests in flight for openai/fal (default 4)")
    .option("--model <name>", "openai: model name (env LORASPEC_CAPTION_MODEL); worker: HF id or folder (default florence-community/Florence-2-base); fal: model for routers")
    .option("--base-url <url>", "openai: endpoint base incl. /v1 (env LORASPEC_CAPTION_BASE_URL or OPENAI_BASE_URL; default https://api.openai.com/v1)")
    .option("--api-key-env <name>", "openai: environment variable holding the key", "OPENAI_API_KEY")
    .option("--fal-endpoint <id>", "fal: captioning endpoint (default fal-ai/florence-2-large/more-detailed-caption)")
    .option("--trigger <word>", "trigger word (default: the contract's trigger.word)")
    .option("--style <style>", "natural | tags (default: the contract's captions.style)")
    .option("--target <target>", "character | style | product (default: the contract's target)")
    .option("--timeout <seconds>", "openai: give up on one request after this long (default 60; a timed-out request is retried once)")
    .option("--json", "print events as JSON lines and the summary as JSON")
    .action(async (contractPath: string | undefined, opts: CaptionOptions) => {
      const { resolve } = await import("node:path");
      const { resolveProjectDataset, defaultCaptionDir } = await import("@loraspec/engine/dataset/project-dataset.js");
      const { renderEvents } = await import("../render-events.js");
      const project = await resolveProjectDataset({ contractPath });
      const contract = project.contract;
      const dir = opts.dir ? resolve(opts.dir) : defaultCaptionDir(project);
      if (!opts.dir && !project.prepared && project.otherPrepared?.length && !opts.json) {
        // A prepared folder of another dataset (another contract's, or before dataset.path changed) is never captioned for this one.
        const others = project.otherPrepared.map((o) => `${o.dir} was prepared from ${o.dataset ?? "another dataset"}`).join("; ");
        process.stderr.write(`${pc.dim(`note: captioning ${dir} as it is (${others}, not from this dataset; \`loraspec prep${contractPath ? ` ${contractPath}` : ""}\` first to caption prepared images)`)}\n`);
      }
      const trigger = opts.trigger ?? contract?.trigger.word;
      if (!dir || !trigger) {
        throw new LoraspecError("E_USAGE", "no contract here, so caption needs --dir and --trigger", { hint: "run it next to lora.yaml, or pass --dir ./photos --trigger txcl" });
      }
      const style = oneOf(opts.style ?? contract?.captions.style ?? "natural", ["natural", "tags"] as const, "--style");
      const target = oneOf(opts.target ?? contract?.target ?? "character", ["character", "style", "product"] as const, "--target");
      const extension = contract?.captions.extension;
      const controller = new AbortController();
      const onSigint = () => controller.abort();
      process.once("SIGINT", onSigint);
      try {
        if (opts.fix) {
          const { fixCaptions } = await import("@loraspec/engine/caption/fix-captions.js");
          const result = await renderEvents(fixCaptions({ dir, trigger, style, captionExtension: extension }), { json: opts.json });
          if (!result) return;
          if (opts.json) printJson(result);
          else {
            const r = result as { fixed: string[]; unchanged: number; missing: string[]; unreadable: string[] };
            process.stdout.write(`${pc.green(`✓ trigger first in ${r.fixed.length} caption(s)`)}; ${r.unchanged} already fine; ${r.missing.length} image(s) without a caption${r.unreadable.length ? `; ${r.unreadable.length} not read (not UTF-8 or too large: each named above), left as they are` : ""}\n`);
          }
          return;
        }
        const backend = oneOf(opts.backend ?? "worker", ["openai", "fal", "worker"] as const, "--backend");
        const captioner = await makeCaptioner(backend, opts);
        const { captionDataset } = await import("@loraspec/engine/caption/caption-dataset.js");
        const result = await renderEvents(
          captionDataset({
            dir,
            captioner,
            trigger,
            style,
            target,
            captionExtension: extension,
            triggerPlacement: contract?.trigger.placement,
            naturalLanguageEncoder: project.naturalLanguageEncoder,
            overwrite: opts.overwrite,
            concurrency: opts.concurrency ? positiveInt(opts.concurrency, "--concurrency") : undefined,
            signal: controller.signal,
          }),
          { json: opts.json },
        );
        if (!result) return;
        if (opts.json) {
          printJson(result);
          return;
        }
        const r = result as { dir: string; written: string[]; kept: number; failed: Array<{ image: string; code: string; message: string }>; retries: number; findings: Array<{ caption: string; findings: Array<{ code: string; message: string }> }> };
        const lines = [table([["written", String(r.written.length)], ["kept (already captioned)", String(r.kept)], ["failed", String(r.failed.length)], ["retries", String(r.retries)]], ["", "count"])];
        if (r.failed.length) lines.push("", pc.bold("Failed"), table(r.failed.map((f) => [f.image, f.code, f.message]), ["image", "code", "detail"]));
        if (r.findings.length) {
          lines.push("", pc.bold(`Caption findings (${r.findings.length} file(s))`));
          lines.push(table(r.findings.flatMap((f) => f.findings.map((x) => [f.caption, x.code, x.message])), ["caption", "rule", "detail"]));
        }
        lines.push("", (r.failed.length ? pc.yellow : pc.green)(`${r.failed.length ? "!" : "✓"} captions in ${r.dir}`) + pc.dim(" (hand-edit them; re-runs never overwrite)"));
        if (r.failed.length) process.exitCode = 1;
        process.stdout.write(`${lines.join("\n")}\n`);
      } finally {
        process.off("SIGINT", onSigint);
      }
    });
}

async function makeCaptioner(backend: "openai" | "fal" | "worker", opts: CaptionOptions) {
  if (backend === "openai") {
    const { createOpenAICaptioner } = await import("@loraspec/engine/caption/openai-captioner.js");
    const model = opts.model ?? process.env.LORASPEC_CAPTION_MODEL;
    if (!model) throw new LoraspecError("E_USAGE", "the openai backend needs a model name", { hint: "pass --model (e.g. the vision model your server serves) or set LORASPEC_CAPTION_MODEL" });
    const baseUrl = opts.baseUrl ?? process.env.LORASPEC_CAPTION_BASE_URL ?? process.env.OPENAI_BASE_URL ?? "https://api.openai.com/v1";
    const timeoutMs = opts.timeout ? positiveInt(opts.timeout, "--timeout") * 1000 : undefined;
    return createOpenAICaptioner({ baseUrl, model, apiKey: process.env[opts.apiKeyEnv ?? "OPENAI_API_KEY"], timeoutMs });
  }
  if (backend === "fal") {
    const { createFalCaptioner } = await import("@loraspec/engine/caption/fal-captioner.js");
    return createFalCaptioner({ endpoint: opts.falEndpoint, model: opts.model });
  }
  const { createWorkerCaptioner } = await import("@loraspec/engine/caption/worker-captioner.js");
  return createWorkerCaptioner({ model: opts.model });
}

function oneOf<T extends string>(value: string, allowed: readonly T[], flag: string): T {
  if (!(allowed as readonly string[]).includes(value)) throw new LoraspecError("E_USAGE", `${flag} must be one of ${allowed.join(", ")}, got "${value}"`);
  return value as T;
}

function positiveInt(value: string, flag: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new LoraspecError("E_USAGE", `${flag} must be a positive integer, got "${value}"`);
  return n;
}
