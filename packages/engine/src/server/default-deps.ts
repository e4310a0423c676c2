import { join } from "node:path";
import { parseContractText } from "@loraspec/core/contract/parse-contract.js";
import type { Contract } from "@loraspec/core/contract/schema.js";
import type { DatasetSummary } from "@loraspec/core/contract/dataset-summary.js";
import type { LoraspecEvent } from "@loraspec/core/events.js";
import { lintContract } from "@loraspec/core/lint/lint-contract.js";
import type { WordLookup } from "@loraspec/core/lint/clip-pretokenize.js";
import { planFrom, type PlanSources } from "@loraspec/core/plan/plan-inputs.js";
import type { DatasetScan, LoraService, ServerDeps } from "./deps.js";
import { SERVER_LIMITS } from "./limits.js";

/**
 * The real capabilities behind `loraspec ui`: the same core and engine functions the CLI uses.
 * Heavy modules load on first use so the server starts fast.
 */
export function defaultDeps(): ServerDeps {
  let words: Promise<WordLookup | undefined> | undefined;
  const englishWords = () =>
    (words ??= import("../contract/english-words.js").then(
      (m) => m.loadEnglishWords(),
      () => undefined,
    ));

  return {
    parseContract: ({ text, file }) => parseContractText({ text, file }),
    // The server lints with the English word list too (too big to ship to the browser).
    // Lint and plan from the same sources as check (core plan/plan-inputs.ts): the dataset's scan and the reg folder's.
    lint: async ({ contract, dataset, regDataset }) =>
      lintContract(contract as Contract, { ...sourcesOf(dataset, regDataset), words: await englishWords() }),
    plan: ({ contract, dataset, regDataset }) => planFrom(contract as Contract, sourcesOf(dataset, regDataset)),
    scanDataset: scanWithProblems,
    autoCaption,
    validation: {
      validate: ({ contractFile, runId, checkpoints, signal }) => ({
        async *[Symbol.asyncIterator]() {
          const { validateProject } = await import("../validate/validate-project.js");
          yield* validateProject({ contractPath: contractFile, runId, checkpoints, falKey: process.env.FAL_KEY, signal });
        },
      }),
    },
    lora: loraService,
  };
}

/** The server's scans as the plan's sources. */
function sourcesOf(dataset: unknown, regDataset: unknown): PlanSources {
  return { dataset: dataset as DatasetSummary | undefined, ...(regDataset ? { regDataset: regDataset as DatasetSummary } : {}) };
}

type AutoCaption = NonNullable<ServerDeps["autoCaption"]>;
type CaptionResult = Awaited<ReturnType<AutoCaption>>;

/** The dataset scan, with each image's problems (skipped, warned, dropped as a duplicate, named by a lint finding) keyed by its path. */
async function scanWithProblems({ dir, contract, pins }: Parameters<NonNullable<ServerDeps["scanDataset"]>>[0]): Promise<DatasetScan> {
  const c = contract as Contract | undefined;
  const { scanDataset } = await import("../dataset/scan-dataset.js");
  const { getBaseModel } = await import("@loraspec/core/knowledge/base-models.js");
  // The scan check and prep use: the same probe, skips and duplicate clusters; `images` is what trains.
  const resolution = c ? (c.dataset.resolution ?? getBaseModel(c.base.model)?.nativeResolution) : undefined;
  const { scanShapes } = await import("../dataset/prep-shapes.js");
  const summary = await scanDataset({ dir, captionExtension: c?.captions.extension ?? ".txt", resolution, shapes: c ? scanShapes(c, resolution) : undefined, maxPixels: SERVER_LIMITS.maxInputPixels, pinned: pins?.keep, distinct: pins?.distinct });
  const problems: DatasetScan["problems"] = {};
  const add = (file: string, code: string, message: string) => {
    const list = (problems[file] ??= []);
    if (!list.some((p) => p.code === code)) list.push({ code, message });
  };
  for (const s of summary.skipped) add(s.file, s.code, s.message);
  for (const w of summary.warnings) add(w.file, w.code, w.message);
  for (const cluster of summary.duplicates) {
    for (const dropped of cluster.drop) add(dropped, cluster.evidence[dropped] ? "near-duplicate" : "duplicate", `duplicates ${cluster.keep}; prep keeps only one (pin one to choose)`);
  }
  if (c) {
    // Lint findings that name files mark those images too (missing caption, trigger not first).
    for (const f of lintContract(c, { dataset: summary })) {
      for (const file of f.files ?? []) add(file.split("\\").join("/"), f.rule, f.message);
    }
  }
  return { problems, summary };
}

/** Suggested captions from the captioner makeCaptioner picks: all at once where it can, else one image at a time. */
async function autoCaption({ dir, images: asked, trigger, style, target, signal }: Parameters<AutoCaption>[0]): Promise<CaptionResult> {
  const { captionPrompt, finalizeCaption } = await import("@loraspec/core/captions/caption-prompts.js");
  const { imageSizeProblem } = await import("../dataset/read-image-file.js");
  const result: CaptionResult = { captions: {}, failed: [] };
  // An image over FILE_LIMITS.image is left out unread, as `loraspec caption` leaves it out.
  const images: string[] = [];
  for (const name of asked) {
    const problem = await imageSizeProblem(join(dir, name));
    if (problem) result.failed.push({ image: name, message: `${problem.code}: ${problem.message}` });
    else images.push(name);
  }
  if (images.length === 0) return result;
  const captioner = await makeCaptioner();
  const prompt = captionPrompt(style, target, trigger);
  const finalize = (raw: string) => finalizeCaption(raw, trigger, style);
  try {
    if (captioner.captionMany) {
      const results = await captioner.captionMany({ images: images.map((name) => ({ path: join(dir, name), name })), prompt, signal });
      for (const name of images) {
        const r = results.get(join(dir, name));
        if (typeof r === "string") result.captions[name] = finalize(r);
        else result.failed.push({ image: name, message: r?.message ?? "no caption returned" });
      }
    } else {
      await captionOneByOne({ captioner, dir, images, prompt, signal, finalize, result });
    }
  } finally {
    await captioner.close?.();
  }
  return result;
}

/** Captions each image as a small JPEG (what hosted VLMs accept and bill least for); a failure is that image's alone. */
async function captionOneByOne(params: {
  captioner: Awaited<ReturnType<typeof makeCaptioner>>;
  dir: string;
  images: string[];
  prompt: string;
  signal: AbortSignal | undefined;
  finalize: (raw: string) => string;
  result: CaptionResult;
}): Promise<void> {
  const { captioner, dir, images, prompt, signal, finalize, result } = params;
  const sharp = (await import("sharp")).default;
  for (const name of images) {
    try {
      const image = await sharp(join(dir, name), { limitInputPixels: SERVER_LIMITS.maxInputPixels })
        .rotate()
        .resize(768, 768, { fit: "inside", withoutEnlargement: true })
        .jpeg({ quality: 85 })
        .toBuffer();
      const raw = await captioner.caption({ image: new Uint8Array(image), mimeType: "image/jpeg", prompt, name, signal });
      result.captions[name] = finalize(raw);
    } catch (error) {
      result.failed.push({ image: name, message: error instanceof Error ? error.message : String(error) });
    }
  }
}

/** LoRA files for the page: inspect, convert and merge through the CLI's functions. */
const loraService: LoraService = {
  inspect: async ({ path }) => (await import("../lora/inspect-lora.js")).inspectLora({ path }),
  convert: async ({ path, to, out }) => {
    const { convertLora } = await import("../lora/convert-lora.js");
    return lastResult(convertLora({ input: path, output: out, to: to as "diffusers" | "kohya" | "comfy" }));
  },
  merge: async ({ inputs, out, method, to }) => {
    const { mergeLora } = await import("../lora/merge-lora.js");
    return lastResult(
      mergeLora({ inputs, output: out, method: method as "cat" | "linear" | "ties" | "dare" | "svd", to: to as "diffusers" | "kohya" | "comfy" | undefined }),
    );
  },
};

/** Drains an event stream and returns its `done` result (warnings included). */
async function lastResult(stream: AsyncIterable<LoraspecEvent>): Promise<unknown> {
  const warnings: string[] = [];
  let result: unknown;
  for await (const e of stream) {
    if (e.type === "warning") warnings.push(e.message);
    if (e.type === "done") result = e.result;
  }
  return { ...(result as object), warnings };
}

/**
 * The captioner the page uses, chosen like `loraspec caption`'s --backend but from the
 * environment: LORASPEC_CAPTION_BACKEND=worker (local Florence-2, default) | openai | fal,
 * LORASPEC_CAPTION_MODEL, LORASPEC_CAPTION_BASE_URL / OPENAI_BASE_URL, OPENAI_API_KEY.
 */
async function makeCaptioner() {
  const backend = process.env.LORASPEC_CAPTION_BACKEND ?? "worker";
  const model = process.env.LORASPEC_CAPTION_MODEL;
  if (backend === "openai") {
    const { createOpenAICaptioner } = await import("../caption/openai-captioner.js");
    if (!model) {
      const { LoraspecError } = await import("@loraspec/core/errors.js");
      throw new LoraspecError("E_USAGE", "The openai caption backend needs LORASPEC_CAPTION_MODEL.");
    }
    const baseUrl = process.env.LORASPEC_CAPTION_BASE_URL ?? process.env.OPENAI_BASE_URL ?? "https://api.openai.com/v1";
    return createOpenAICaptioner({ baseUrl, model, apiKey: process.env.OPENAI_API_KEY });
  }
  if (backend === "fal") {
    const { createFalCaptioner } = await import("../caption/fal-captioner.js");
    return createFalCaptioner({ model });
  }
  const { createWorkerCaptioner } = await import("../caption/worker-captioner.js");
  return createWorkerCaptioner({ model });
}
