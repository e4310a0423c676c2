import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import type { LoraspecEvent } from "@loraspec/core/events.js";
import { diffResumeSettings, resumeSettings } from "@loraspec/engine/run/resume-changes.js";
import { runDurationSeconds } from "@loraspec/engine/run/run-duration.js";
import { openRunStore, type RunRecord } from "@loraspec/engine/run/run-store.js";
import { resumeRun, startRun } from "@loraspec/engine/run/run-training.js";
import type { LineParser } from "@loraspec/engine/run/supervise-process.js";
import type { ProcessJob } from "@loraspec/engine/run/train-job.js";

const fakeTrainer = fileURLToPath(new URL("./fixtures/fake-trainer.mjs", import.meta.url));
const kohya: LineParser = (line) => {
  const bar = /(\d+)\/(\d+) \[[^\]]*avr_loss=([^\],\s]+)\]/.exec(line);
  return bar ? [{ type: "progress", task: "train", current: Number(bar[1]), total: Number(bar[2]) }] : [];
};

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

const plan = (over: Record<string, unknown> = {}) => ({
  base: { id: "sdxl", label: "SDXL", path: "/models/sdxl" },
  trainer: { name: "kohya" },
  rank: 16,
  alpha: 16,
  learningRate: 1e-4,
  learningRateSource: "recipe",
  steps: 6,
  cost: { usd: 1 },
  ...over,
});

function job(dir: string, mode: string, lr: number): ProcessJob {
  const out = join(dir, "out");
  return {
    kind: "process",
    trainer: "kohya",
    command: process.execPath,
    args: [fakeTrainer, "--mode", mode, "--output_dir", out, "--output_name", "txcl", "--learning_rate", String(lr)],
    cwd: dir,
    parser: "kohya",
    output: join(out, "txcl.safetensors"),
    resume: { kind: "kohya-state", outputDir: out, outputName: "txcl" },
    totalSteps: 6,
  };
}

async function drive(gen: AsyncGenerator<LoraspecEvent, RunRecord>) {
  const events: LoraspecEvent[] = [];
  try {
    let next = await gen.next();
    while (!next.done) {
      events.push(next.value);
      next = await gen.next();
    }
    return { run: next.value, events };
  } catch (error) {
    return { error: error as { code: string; message: string; field?: string }, events };
  }
}

describe("diffResumeSettings", () => {
  const table: { name: string; after: Record<string, unknown>; field: string; refused: boolean }[] = [
    { name: "a new learning rate applies", after: { learningRate: 5e-5 }, field: "plan.learningRate", refused: false },
    { name: "more steps apply", after: { steps: 8 }, field: "plan.steps", refused: false },
    { name: "another rank is refused", after: { rank: 32 }, field: "plan.rank", refused: true },
    { name: "another base is refused", after: { base: { id: "flux1-dev", label: "FLUX.1", path: "/models/sdxl" } }, field: "plan.base.id", refused: true },
    { name: "another base file is refused", after: { base: { id: "sdxl", label: "SDXL", path: "/models/other" } }, field: "plan.base.path", refused: true },
  ];
  it.each(table)("$name", ({ after, field, refused }) => {
    const changes = diffResumeSettings(resumeSettings(plan(), undefined), resumeSettings(plan(after), undefined));
    expect(changes.map((c) => c.field)).toEqual([field]);
    expect(Boolean(changes[0]!.refused)).toBe(refused);
  });

  it("other target modules in the worker request are refused; estimates and sources are not changes", () => {
    const req = (over: Record<string, unknown>) => ({ kind: "process", files: { "worker-request.json": JSON.stringify({ arch: "sdxl", rank: 4, train_text_encoder: false, output_dir: "/a", ...over }) } }) as unknown as ProcessJob;
    const changes = diffResumeSettings(
      resumeSettings(plan(), req({})),
      resumeSettings(plan({ cost: { usd: 9 }, learningRateSource: "contract" }), req({ train_text_encoder: true, output_dir: "/b" })),
    );
    expect(changes).toEqual([{ field: "request.train_text_encoder", from: false, to: true, refused: expect.stringMatching(/target modules/) }]);
  });
});

describe("resume recompiles from the current contract", () => {
  it("a fixed learning rate is used, shown and recorded; a rank change is refused and leaves the run as it was", async () => {
    const dir = mkdtempSync(join(tmpdir(), "loraspec-resume-"));
    dirs.push(dir);
    const store = openRunStore({ projectDir: dir });
    const first = await drive(startRun({ projectDir: dir, store, plan: plan(), job: job(dir, "crash", 1e-4), textParsers: { kohya }, pollMs: 20 }));
    expect(first.error?.code).toBe("E_TRAINER_FAILED");
    // The fix is said once, naming this run; the trainer's error is not also streamed as an event.
    const hint = (first.error as { hint?: string }).hint ?? "";
    expect(hint.match(/--resume/g)).toHaveLength(1);
    expect(hint.match(/loraspec logs/g)).toHaveLength(1);
    expect(hint).not.toContain("<id>");
    expect(first.events.some((e) => e.type === "error")).toBe(false);
    const [failed] = store.list();
    expect(failed!.state).toBe("failed");

    const refused = await drive(
      resumeRun({ projectDir: dir, store, runId: failed!.id, textParsers: { kohya }, pollMs: 20, recompile: async () => ({ plan: plan({ rank: 32 }), job: () => job(dir, "ok", 1e-4), contractFile: "lora.yaml" }) }),
    );
    expect(refused.error).toMatchObject({ code: "E_CONTRACT_INVALID", field: "rank", message: expect.stringMatching(/rank 16 -> 32 \(the checkpoint's LoRA matrices have the old rank\)/) });
    expect(store.get(failed!.id)).toMatchObject({ state: "failed", attempts: 1 });

    const resumed = await drive(
      resumeRun({ projectDir: dir, store, runId: failed!.id, textParsers: { kohya }, pollMs: 20, recompile: async () => ({ plan: plan({ learningRate: 5e-5 }), job: () => job(dir, "ok", 5e-5) }) }),
    );
    expect(resumed.error).toBeUndefined();
    expect(resumed.run).toMatchObject({ state: "succeeded", attempts: 2 });
    expect(resumed.events.find((e) => e.type === "warning" && e.code === "RESUME_CHANGES")).toMatchObject({ message: expect.stringMatching(/learningRate: 0\.0001 -> 0\.00005/) });
    const recorded = readFileSync(join(failed!.runDir, "resume-changes.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
    expect(recorded).toEqual([{ attempt: 2, at: expect.any(String), changes: [{ field: "plan.learningRate", from: 1e-4, to: 5e-5 }] }]);
    expect((JSON.parse(readFileSync(join(failed!.runDir, "job.json"), "utf8")) as ProcessJob).args).toContain("0.00005");
    expect(JSON.parse(readFileSync(join(failed!.runDir, "plan.json"), "utf8")).learningRate).toBe(1e-4);
    expect(existsSync(join(failed!.runDir, "job.original.json"))).toBe(true);
    // `runs` shows the time of both attempts, not the last one's only.
    const attempts = readFileSync(join(failed!.runDir, "attempts.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
    expect(attempts).toEqual([{ attempt: 1, startedAt: failed!.startedAt, endedAt: failed!.endedAt, state: "failed" }]);
    const done = store.get(failed!.id);
    const firstSpan = (Date.parse(failed!.endedAt!) - Date.parse(failed!.startedAt!)) / 1000;
    const lastSpan = (Date.parse(done.endedAt!) - Date.parse(done.startedAt!)) / 1000;
    expect(await runDurationSeconds(done)).toBeCloseTo(firstSpan + lastSpan, 3);
    store.close();
  });
});
