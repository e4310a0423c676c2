import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { LoraspecEvent } from "@loraspec/core/events.js";
import { checkCostLimit, createFalRunner, type FalOutcome, type FalRunParams } from "@loraspec/engine/fal/create-fal-runner.js";
import { costUncheckedError } from "@loraspec/engine/run/cost-guard.js";
import { openRunStore, type RunStore } from "@loraspec/engine/run/run-store.js";
import { startFalEmulator, type FalEmulator } from "../emulators/fal-emulator.js";

const KEY = "test-key-id:test-key-secret-DO-NOT-LEAK";
const ENDPOINT = "fal-ai/flux-lora-fast-training";

let emulator: FalEmulator;
let dir: string;
let store: RunStore;
beforeEach(async () => {
  emulator = await startFalEmulator();
  dir = mkdtempSync(join(tmpdir(), "loraspec-fal-"));
  store = openRunStore({ projectDir: dir });
});
afterEach(async () => {
  store.close();
  await emulator.close();
  rmSync(dir, { recursive: true, force: true });
});

function newRun(): { runId: string; runDir: string; zip: string } {
  const run = store.create({ trainer: "fal", base: "flux1-dev" });
  store.transition(run.id, "starting");
  const zip = join(dir, "dataset.zip");
  writeFileSync(zip, Buffer.from("PK\u0003\u0004 not really a zip, the emulator stores bytes"));
  return { runId: run.id, runDir: run.runDir, zip };
}

async function drive(gen: AsyncGenerator<LoraspecEvent, FalOutcome>, onEvent?: (e: LoraspecEvent) => void) {
  const events: LoraspecEvent[] = [];
  let next = await gen.next();
  while (!next.done) {
    events.push(next.value);
    onEvent?.(next.value);
    next = await gen.next();
  }
  return { outcome: next.value, events };
}

function params(r: { runId: string; runDir: string; zip: string }, extra: Partial<FalRunParams> = {}): FalRunParams {
  return {
    store,
    runId: r.runId,
    runDir: r.runDir,
    endpoint: ENDPOINT,
    input: { trigger_word: "txcl", steps: 1000 },
    archive: { path: r.zip, field: "images_data_url" },
    ...extra,
  };
}

describe("fal runner against the local emulator", () => {
  it("uploads the ZIP, submits once, streams status and logs, downloads and verifies the LoRA", async () => {
    const runner = createFalRunner({ credentials: KEY, fetch: emulator.fetch, pollIntervalMs: 5 });
    const r = newRun();
    const { outcome, events } = await drive(runner.run(params(r)));
    expect(outcome.state).toBe("succeeded");
    expect(emulator.jobs).toHaveLength(1);
    const job = emulator.jobs[0]!;
    expect(job.endpoint).toBe(ENDPOINT);
    expect(job.input.images_data_url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/files\//);
    expect(job.input.trigger_word).toBe("txcl");
    expect(job.authorization).toBe(`Key ${KEY}`);
    // The dataset (the user's photos) is uploaded with a short lifecycle.
    expect(JSON.parse(emulator.uploadLifecycles[0]!)).toMatchObject({ expiration_duration_seconds: 86400 });
    expect(store.get(r.runId).remoteRequestId).toBe(job.id);
    expect(events.map((e) => (e.type === "phase" ? e.name : undefined)).filter(Boolean)).toEqual(["upload", "submit", "queued", "train", "download"]);
    const progress = events.filter((e) => e.type === "progress").map((e) => (e as { current: number }).current);
    expect(progress).toEqual([1, 2, 3]);
    expect(events.filter((e) => e.type === "loss")).toHaveLength(3);
    if (outcome.state !== "succeeded") throw new Error("unreachable");
    expect(outcome.lora.loraTensors).toBe(2);
    expect(readFileSync(outcome.loraPath)).toEqual(emulator.loraBytes);
    expect(JSON.parse(readFileSync(outcome.configPath!, "utf8"))).toMatchObject({ endpoint: ENDPOINT });
  });

  it("rides out a 5xx storm on status polls without submitting twice", async () => {
    const runner = createFalRunner({ credentials: KEY, fetch: emulator.fetch, pollIntervalMs: 5 });
    const r = newRun();
    emulator.failNext({ count: 2, status: 502, match: /\/status$/ });
    const { outcome } = await drive(runner.run(params(r)));
    expect(outcome.state).toBe("succeeded");
    expect(emulator.jobs).toHaveLength(1);
  }, 60_000);

  // Every way a submit can end without a clear answer, before and after fal made the job. The
  // submit is never retried; `--resume` (a second run() here) looks the request up and either
  // re-attaches or submits once: exactly one job in every case, without --resubmit.
  const SUBMIT = /^\/queue\/fal-ai\/flux-lora-fast-training$/;
  const faults: { name: string; inject: () => void; jobExists: boolean }[] = [
    { name: "connection dropped before the job exists", inject: () => emulator.dropNext(SUBMIT), jobExists: false },
    { name: "connection dropped after the job exists", inject: () => emulator.loseNextSubmitResponse(), jobExists: true },
    { name: "503 before the job exists", inject: () => emulator.failNext({ count: 1, status: 503, match: SUBMIT }), jobExists: false },
    { name: "504 after the job exists", inject: () => emulator.failNextSubmitAfterCreate(504), jobExists: true },
    { name: "502 after the job exists", inject: () => emulator.failNextSubmitAfterCreate(502), jobExists: true },
    { name: "429 (rate limited, no job)", inject: () => emulator.failNext({ count: 1, status: 429, match: SUBMIT }), jobExists: false },
  ];
  it.each(faults)("submit fault: $name -> E_SUBMIT_UNKNOWN, no retry; --resume resolves it to exactly one job", async ({ inject, jobExists }) => {
    const runner = createFalRunner({ credentials: KEY, fetch: emulator.fetch, pollIntervalMs: 5, lookupSettleMs: 0 });
    const r = newRun();
    inject();
    await expect(drive(runner.run(params(r)))).rejects.toMatchObject({ code: "E_SUBMIT_UNKNOWN", retryable: false, hint: expect.stringMatching(/--resume .*--resubmit/s) });
    expect(emulator.jobs).toHaveLength(jobExists ? 1 : 0);
    const journal = JSON.parse(readFileSync(join(r.runDir, "fal-submission.json"), "utf8"));
    expect(journal).toMatchObject({ state: "unknown", endpoint: ENDPOINT, input: { trigger_word: "txcl" } });
    const { outcome, events } = await drive(runner.run(params(r)));
    expect(outcome.state).toBe("succeeded");
    expect(emulator.jobs).toHaveLength(1);
    expect(emulator.lookups).toBe(1);
    const code = events.find((e) => e.type === "warning")?.code;
    expect(code).toBe(jobExists ? "FAL_REATTACH" : "FAL_NO_JOB");
    expect(store.get(r.runId).remoteRequestId).toBe(emulator.jobs[0]!.id);
  });

  it("a lookup that cannot tell (inputs not listed) or comes too early keeps the outcome unknown; --resubmit sends again", async () => {
    const runner = createFalRunner({ credentials: KEY, fetch: emulator.fetch, pollIntervalMs: 5, lookupSettleMs: 0 });
    const r = newRun();
    emulator.loseNextSubmitResponse();
    await expect(drive(runner.run(params(r)))).rejects.toMatchObject({ code: "E_SUBMIT_UNKNOWN" });
    emulator.listShowsInputs = false;
    await expect(drive(runner.run(params(r)))).rejects.toMatchObject({ code: "E_SUBMIT_UNKNOWN", message: expect.stringMatching(/candidates: req-/) });
    expect(emulator.jobs).toHaveLength(1);
    const { outcome } = await drive(runner.run(params(r, { resubmit: true })));
    expect(outcome.state).toBe("succeeded");
    expect(emulator.jobs).toHaveLength(2);

    const patient = createFalRunner({ credentials: KEY, fetch: emulator.fetch, pollIntervalMs: 5 });
    const r2 = newRun();
    emulator.dropNext(/^\/queue\/fal-ai\/flux-lora-fast-training$/);
    emulator.listShowsInputs = true;
    await expect(drive(patient.run(params(r2)))).rejects.toMatchObject({ code: "E_SUBMIT_UNKNOWN" });
    await expect(drive(patient.run(params(r2)))).rejects.toMatchObject({ code: "E_SUBMIT_UNKNOWN", message: expect.stringMatching(/may lag/) });
    expect(emulator.jobs).toHaveLength(2);
  });

  it("a definite refusal (422) is no job: the journal says rejected and a resume submits without a lookup", async () => {
    const runner = createFalRunner({ credentials: KEY, fetch: emulator.fetch, pollIntervalMs: 5 });
    const r = newRun();
    emulator.failNext({ count: 1, status: 422, match: /^\/queue\/fal-ai\/flux-lora-fast-training$/ });
    await expect(drive(runner.run(params(r)))).rejects.toMatchObject({ code: "E_REMOTE", message: expect.stringMatching(/422/) });
    expect(JSON.parse(readFileSync(join(r.runDir, "fal-submission.json"), "utf8")).state).toBe("rejected");
    const { outcome } = await drive(runner.run(params(r)));
    expect(outcome.state).toBe("succeeded");
    expect(emulator.lookups).toBe(0);
    expect(emulator.jobs).toHaveLength(1);
  });

  it("a restarted loraspec re-attaches to the in-flight request instead of paying twice", async () => {
    const first = createFalRunner({ credentials: KEY, fetch: emulator.fetch, pollIntervalMs: 5 });
    const r = newRun();
    const controller = new AbortController();
    // The first process dies while the job is training on fal.
    const { outcome: detached } = await drive(first.run(params(r, { signal: controller.signal })), (e) => {
      if (e.type === "phase" && e.name === "train") controller.abort();
    });
    expect(detached.state).toBe("detached");
    expect(store.get(r.runId).remoteRequestId).toBe(emulator.jobs[0]!.id);
    const second = createFalRunner({ credentials: KEY, fetch: emulator.fetch, pollIntervalMs: 5 });
    const { outcome, events } = await drive(second.run(params(r)));
    expect(outcome.state).toBe("succeeded");
    expect(emulator.jobs).toHaveLength(1);
    expect(events[0]).toMatchObject({ type: "phase", name: "attach" });
  });

  it("a job cancelled while it runs ends as cancelled, with nothing downloaded", async () => {
    const runner = createFalRunner({ credentials: KEY, fetch: emulator.fetch, pollIntervalMs: 5 });
    emulator.progressPolls = 50;
    const r = newRun();
    let cancelled = false;
    const { outcome } = await drive(runner.run(params(r)), (e) => {
      if (e.type === "progress" && e.current === 2 && !cancelled) {
        cancelled = true;
        void runner.cancel({ endpoint: ENDPOINT, requestId: store.get(r.runId).remoteRequestId!, runDir: r.runDir });
      }
    });
    expect(outcome.state).toBe("cancelled");
    expect(emulator.jobs[0]!.cancelled).toBe(true);
    expect(readdirSync(r.runDir)).not.toContain("lora.safetensors");
  });

  it("refuses to submit over limits.max_cost_usd unless --yes", async () => {
    const runner = createFalRunner({ credentials: KEY, fetch: emulator.fetch, pollIntervalMs: 5 });
    const r = newRun();
    await expect(drive(runner.run(params(r, { cost: { estimateUsd: 8, maxCostUsd: 5 } })))).rejects.toMatchObject({ code: "E_COST_LIMIT", field: "limits.max_cost_usd" });
    expect(emulator.jobs).toHaveLength(0);
    expect(emulator.uploads.size).toBe(0);
    expect(() => checkCostLimit({ estimateUsd: 8, maxCostUsd: 5, yes: true })).not.toThrow();
    expect(() => checkCostLimit({ estimateUsd: 4, maxCostUsd: 5 })).not.toThrow();
  });

  it("a ceiling with no estimate is refused, not skipped: E_COST_UNKNOWN naming limits.max_cost_usd, before uploading; only --accept-unpriced submits", async () => {
    const runner = createFalRunner({ credentials: KEY, fetch: emulator.fetch, pollIntervalMs: 5 });
    const r = newRun();
    // --yes (every scripted run passes it to skip the prompt) is not the override for a ceiling no price can check
    for (const cost of [{ maxCostUsd: 5 }, { maxCostUsd: 5, yes: true }]) {
      await expect(drive(runner.run(params(r, { cost })))).rejects.toMatchObject({ code: "E_COST_UNKNOWN", field: "limits.max_cost_usd", hint: expect.stringMatching(/--accept-unpriced/) });
    }
    expect(emulator.jobs).toHaveLength(0);
    expect(emulator.uploads.size).toBe(0);
    expect(() => checkCostLimit({ maxCostUsd: 5, acceptUnpriced: true })).not.toThrow();
    // ... nor is --accept-unpriced the override for a priced cost over the ceiling
    expect(() => checkCostLimit({ estimateUsd: 8, maxCostUsd: 5, acceptUnpriced: true })).toThrow(expect.objectContaining({ code: "E_COST_LIMIT" }));
    expect(() => checkCostLimit({})).not.toThrow(); // no ceiling, nothing to hold
  });

  it("the page's refusal of an unpriced ceiling names the command that can override it (the page has no flags)", () => {
    const page = costUncheckedError({ maxUsd: 5, basis: "no price record" }, "lora.yaml", "page");
    expect(page).toMatchObject({ code: "E_COST_UNKNOWN", field: "limits.max_cost_usd", file: "lora.yaml" });
    expect(page.hint).toMatch(/`loraspec train --accept-unpriced`.*page never submits/);
    expect(costUncheckedError({ maxUsd: 5, basis: "no price record" }).hint).toMatch(/pass --accept-unpriced to submit without the ceiling/);
  });

  it("without a key it says how to set FAL_KEY and sends nothing", async () => {
    const runner = createFalRunner({ credentials: "", fetch: emulator.fetch, pollIntervalMs: 5 });
    const r = newRun();
    await expect(drive(runner.run(params(r)))).rejects.toMatchObject({ code: "E_REMOTE_AUTH", hint: expect.stringMatching(/FAL_KEY/) });
    expect(emulator.authorizations).toHaveLength(0);
  });

  it("never writes the key to the run folder or the run store", async () => {
    const runner = createFalRunner({ credentials: KEY, fetch: emulator.fetch, pollIntervalMs: 5 });
    const r = newRun();
    emulator.failNext({ count: 1, status: 503, match: /\/status$/ });
    await drive(runner.run(params(r)));
    store.close();
    const files = walk(dir);
    expect(files.length).toBeGreaterThan(3);
    for (const file of files) {
      const bytes = readFileSync(file);
      expect(bytes.includes(Buffer.from("DO-NOT-LEAK")), file).toBe(false);
    }
    store = openRunStore({ projectDir: dir });
  }, 30_000);
});

function walk(root: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(root)) {
    const path = join(root, name);
    if (statSync(path).isDirectory()) out.push(...walk(path));
    else out.push(path);
  }
  return out;
}
