import { appendFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { LoraspecError } from "@loraspec/core/errors.js";
import type { LoraspecEvent } from "@loraspec/core/events.js";
import { atomicWrite } from "../fs/atomic-write.js";
import { readRunJsonSync, shownRunFile } from "./run-files.js";
import type { RunRecord } from "./run-store.js";
import type { TrainJob } from "./train-job.js";

/** One value that differs between the run's original plan/job and the one compiled at resume. */
export interface ResumeChange {
  field: string;
  from: unknown;
  to: unknown;
  /** Set when the change cannot apply to a resumed run: why. */
  refused?: string;
}

/**
 * What a resumed run cannot change, and why: the checkpoint's LoRA tensors are shaped by the base
 * model, the rank and the target modules, and the trainer writes the checkpoint format.
 */
const FIXED: { field: string; why: string }[] = [
  { field: "plan.base.id", why: "the checkpoint's LoRA was trained on another base model" },
  { field: "plan.base.path", why: "the checkpoint's LoRA was trained on another base model file" },
  { field: "plan.trainer.name", why: "another trainer cannot read this trainer's checkpoints" },
  { field: "plan.trainer.endpoint", why: "a fal job cannot move to another endpoint" },
  { field: "plan.rank", why: "the checkpoint's LoRA matrices have the old rank" },
  { field: "request.arch", why: "the checkpoint's LoRA was trained for another architecture" },
  { field: "request.base", why: "the checkpoint's LoRA was trained on another base model" },
  { field: "request.rank", why: "the checkpoint's LoRA matrices have the old rank" },
  { field: "request.target_modules", why: "the checkpoint holds LoRA weights for other target modules" },
  { field: "request.train_text_encoder", why: "the checkpoint holds LoRA weights for other target modules (text encoder on/off)" },
];

/** Plan fields that are estimates or explanations, not settings: never a "change". */
const IGNORED = /^plan\.(walltime|selected|cost|vram|notes|images\.source)|Source$|\.why$|\.reason$|\.label$/;

/** The settings of a run as comparable leaves: the plan, and the built-in worker's request. */
export function resumeSettings(plan: unknown, job: TrainJob | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  flatten("plan", plan, out);
  const request = job?.kind === "process" ? job.files?.["worker-request.json"] : undefined;
  if (request) {
    const parsed = JSON.parse(request) as Record<string, unknown>;
    // Paths inside the run folder, the run's name and its own resume marker are not settings.
    for (const key of ["output_dir", "dataset", "reg_dataset", "resume_from", "debug"]) delete parsed[key];
    flatten("request", parsed, out);
  }
  return out;
}

export function diffResumeSettings(before: Record<string, unknown>, after: Record<string, unknown>): ResumeChange[] {
  const changes: ResumeChange[] = [];
  for (const field of [...new Set([...Object.keys(before), ...Object.keys(after)])].sort()) {
    if (IGNORED.test(field)) continue;
    const from = before[field];
    const to = after[field];
    if (JSON.stringify(from) === JSON.stringify(to)) continue;
    const fixed = FIXED.find((f) => field === f.field || field.startsWith(`${f.field}.`));
    changes.push(fixed ? { field, from, to, refused: fixed.why } : { field, from, to });
  }
  return changes;
}

/** The refusal for changes a resumed run cannot take; undefined when every change can apply. */
export function refuseResumeChanges(runId: string, changes: ResumeChange[], contractFile?: string): LoraspecError | undefined {
  const refused = changes.filter((c) => c.refused);
  if (refused.length === 0) return undefined;
  const first = refused[0]!;
  return new LoraspecError(
    "E_CONTRACT_INVALID",
    `the contract changed in a way run ${runId} cannot resume with: ${refused.map((c) => `${c.field} ${fmt(c.from)} -> ${fmt(c.to)} (${c.refused})`).join("; ")}`,
    {
      file: contractFile,
      field: first.field.replace(/^(plan|request)\./, ""),
      hint: "put those values back to resume this run, or start a new run with `loraspec train` (the finished checkpoints stay in the old run's folder)",
      details: { changes: refused },
    },
  );
}

export function formatResumeChange(c: ResumeChange): string {
  return `${c.field.replace(/^(plan|request)\./, "")}: ${fmt(c.from)} -> ${fmt(c.to)}`;
}

function fmt(value: unknown): string {
  return value === undefined ? "(unset)" : JSON.stringify(value);
}

function flatten(prefix: string, value: unknown, out: Record<string, unknown>): void {
  if (value && typeof value === "object" && !Array.isArray(value)) {
    for (const [key, inner] of Object.entries(value as Record<string, unknown>)) flatten(`${prefix}.${key}`, inner, out);
    return;
  }
  out[prefix] = value;
}

/** A fal job already sent (or maybe sent): resume re-attaches to it, so a recompiled input cannot apply. */
export function falJobUnderway(run: RunRecord, job: TrainJob): boolean {
  if (job.kind !== "fal") return false;
  if (run.remoteRequestId) return true;
  const submission = readRunJsonSync(join(run.runDir, "fal-submission.json")) as { state?: string } | null | undefined;
  return typeof submission === "object" && submission !== null && submission.state !== "rejected";
}

/** Recompiles the run from the current contract; shows, records and checks the changes. */
export async function* recompileForResume(
  run: RunRecord,
  job: TrainJob,
  recompile: (run: RunRecord) => Promise<{ plan: unknown; job: (run: RunRecord) => TrainJob | Promise<TrainJob>; contractFile?: string }>,
): AsyncGenerator<LoraspecEvent, TrainJob> {
  const fresh = await recompile(run);
  const next = typeof fresh.job === "function" ? await fresh.job(run) : fresh.job;
  // The original plan and job stay the reference: a second resume is compared with the first start.
  const originalJobFile = join(run.runDir, "job.original.json");
  if (!existsSync(originalJobFile)) await atomicWrite(originalJobFile, `${JSON.stringify(job, null, 2)}\n`);
  const original = readRunJsonSync(originalJobFile) as TrainJob | undefined;
  if (!original) {
    throw new LoraspecError("E_RUN_STATE", `run ${run.id}: ${shownRunFile(originalJobFile)} is not readable JSON, so the resume cannot be compared with the first start`, {
      hint: "delete that file to compare with the job as it is now",
    });
  }
  // Undefined for runs started through the API without a plan: the job alone is compared.
  const originalPlan = readRunJsonSync(join(run.runDir, "plan.json"));
  const changes = diffResumeSettings(resumeSettings(originalPlan, original), resumeSettings(originalPlan === undefined ? undefined : fresh.plan, next));
  const refusal = refuseResumeChanges(run.id, changes, fresh.contractFile);
  if (refusal) throw refusal;
  if (changes.length > 0) {
    appendFileSync(join(run.runDir, "resume-changes.jsonl"), `${JSON.stringify({ attempt: run.attempts + 1, at: new Date().toISOString(), changes })}\n`);
    const event: LoraspecEvent = { type: "warning", code: "RESUME_CHANGES", message: `resuming with the contract as it is now: ${changes.map(formatResumeChange).join("; ")}` };
    appendFileSync(join(run.runDir, "events.jsonl"), `${JSON.stringify(event)}\n`);
    yield event;
  }
  await atomicWrite(join(run.runDir, "plan.resume.json"), `${JSON.stringify(fresh.plan, null, 2)}\n`);
  return next;
}
