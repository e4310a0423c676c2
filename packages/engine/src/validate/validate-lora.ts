import { readFile } from "node:fs/promises";
import { join, relative } from "node:path";
import type { LoraspecEvent } from "@loraspec/core/events.js";
import { adviceOf, judgeValidation, type ValidationVerdicts } from "@loraspec/core/validate/judge-validation.js";
import { planValidation, type PlanValidationParams, type ValidationPlan } from "@loraspec/core/validate/plan-validation.js";
import { buildScoreRequest, type ScoreResult } from "@loraspec/core/validate/score-request.js";
import { atomicWrite } from "../fs/atomic-write.js";
import { FILE_LIMITS } from "../fs/file-limits.js";
import { formatBytes } from "../fs/format-bytes.js";
import { shownRunFile } from "../run/run-files.js";
import { renderReport } from "../report/render-report.js";
import { imagePath, type Sampler, type SampleSettings } from "../samplers/sampler.js";
import { runWorker as defaultRunWorker } from "../worker/run-worker.js";
import type { RunWorkerFn } from "../samplers/worker-sampler.js";
import { readLossCurve, type SkippedLine } from "./read-loss-curve.js";
import { reportTrainingSamples } from "./report-training-samples.js";
import { runScore } from "./run-score.js";

/** What to validate (rubric, trigger, target, candidates, weights, stack: planValidation's params) and how. */
export interface ValidateLoraParams extends PlanValidationParams {
  /** Shown in the report (the contract's name or the LoRA's file name). */
  name: string;
  /** Training images: subject fidelity, mode collapse and near-duplicate checks need them. */
  reference: string[];
  /** The validation folder: images/, validation.json, report.html. */
  outDir: string;
  sampler: Sampler;
  settings: SampleSettings;
  scoreModel?: string;
  dinoModel?: string;
  device?: string;
  runWorker?: RunWorkerFn;
  /** The contract as the user wrote it, shown in the report. */
  contractText?: string;
  /** A run's events.jsonl, for the loss curve. */
  eventsFile?: string;
  /** Embed images as data URIs (one file to share) instead of relative links. */
  inlineImages?: boolean;
  signal?: AbortSignal;
}

export interface ValidationResult {
  name: string;
  createdAt: string;
  settings: SampleSettings;
  sampler: string;
  plan: ValidationPlan;
  scores: ScoreResult;
  verdicts: ValidationVerdicts;
  /** Job id -> image path relative to the validation folder. */
  images: Record<string, string>;
  reference: string[];
}

export const VALIDATION_FILES = { images: "images", json: "validation.json", report: "report.html" } as const;

/**
 * Checks a LoRA against the contract's rubric: renders every check's images with the sampler,
 * scores them in the worker, judges the scores against the threshold records, and writes
 * validation.json and a report.html that opens from disk. The `done` event carries the summary.
 */
export async function* validateLora(params: ValidateLoraParams): AsyncGenerator<LoraspecEvent> {
  const runWorker = params.runWorker ?? defaultRunWorker;
  const imagesDir = join(params.outDir, VALIDATION_FILES.images);
  const logFile = join(params.outDir, "worker.log");

  const plan = planValidation({
    rubric: params.rubric,
    trigger: params.trigger,
    target: params.target,
    candidates: params.candidates,
    weights: params.weights,
    stack: params.stack,
  });
  yield { type: "phase", name: "plan", message: `${plan.jobs.length} images over ${plan.weights.length} LoRA x weight combinations${plan.stack ? " + stack" : ""}` };
  for (const w of plan.warnings) yield { type: "warning", code: w.code, message: w.message };
  if (params.reference.length < 2) {
    yield { type: "warning", code: "W_NO_REFERENCE", message: "fewer than two training images found: subject fidelity, mode collapse and overfit checks are skipped" };
  }

  yield* params.sampler.render({ jobs: plan.jobs, outDir: imagesDir, settings: params.settings, signal: params.signal });

  const image = (id: string) => imagePath(imagesDir, id);
  const request = buildScoreRequest({ plan, image, reference: params.reference, model: params.scoreModel, dinoModel: params.dinoModel, device: params.device });
  let scores: ScoreResult | undefined;
  yield* runScore({ request, runWorker, signal: params.signal, logFile, onResult: (r) => (scores = r) });
  const scored = scores as ScoreResult;

  const verdicts = judgeValidation({ plan, scores: scored });
  const images = Object.fromEntries(plan.jobs.map((j) => [j.id, relative(params.outDir, image(j.id)).split("\\").join("/")]));
  const result: ValidationResult = {
    name: params.name,
    createdAt: new Date().toISOString(),
    settings: params.settings,
    sampler: params.sampler.name,
    plan,
    scores: scored,
    verdicts,
    images,
    reference: params.reference,
  };
  const jsonPath = join(params.outDir, VALIDATION_FILES.json);
  await atomicWrite(jsonPath, `${JSON.stringify(result, null, 2)}\n`);

  const skipped: SkippedLine[] = [];
  const loss = params.eventsFile ? await readLossCurve(params.eventsFile, (line) => skipped.push(line)) : [];
  for (const { line, bytes } of skipped) {
    // Skipped like a malformed line (never parsed, never held whole), but named: its length is no accident.
    const file = shownRunFile(params.eventsFile!);
    yield { type: "warning", code: "W_EVENT_LINE_TOO_LONG", message: `${file} line ${line} is ${formatBytes(bytes)}, more than an event line can be (at most ${formatBytes(FILE_LIMITS.eventLine.bytes)}): skipped unread`, file };
  }
  let inline: Record<string, string> | undefined;
  if (params.inlineImages) {
    inline = {};
    for (const j of plan.jobs) inline[j.id] = `data:image/png;base64,${(await readFile(image(j.id))).toString("base64")}`;
  }
  const reportPath = join(params.outDir, VALIDATION_FILES.report);
  const training = params.eventsFile ? await reportTrainingSamples(params.eventsFile, params.outDir, params.inlineImages === true) : undefined;
  await atomicWrite(reportPath, renderReport({ result, loss, contractText: params.contractText, imageSrc: inline ? (id) => inline[id] ?? "" : (id) => images[id] ?? "", trainingSamples: training }));
  yield { type: "phase", name: "report", message: reportPath };
  yield {
    type: "done",
    result: {
      status: verdicts.status,
      best: verdicts.best,
      report: reportPath,
      json: jsonPath,
      weights: verdicts.weights.map((w) => ({ key: w.key, step: w.step, weight: w.weight, status: w.status, checks: Object.fromEntries(w.checks.map((c) => [c.check, c.status])) })),
      stack: verdicts.stack?.status,
      warnings: verdicts.warnings,
      // What to try for each measure that failed at some weight (once per measure).
      advice: adviceOf(verdicts),
      // The numbers behind every verdict (value, thresholds, source) for --json.
      verdicts: verdicts as unknown as Record<string, unknown>,
    },
  };
}
