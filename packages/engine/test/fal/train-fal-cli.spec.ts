import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import sharp from "sharp";
import { stringify } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startFalEmulator, type FalEmulator } from "../emulators/fal-emulator.js";

/**
 * `loraspec train` on a fal contract through the built CLI, against the local emulator (the
 * queue and REST hosts are pointed at it with LORASPEC_FAL_QUEUE_URL / LORASPEC_FAL_REST_URL):
 * the cost limit refuses without --yes (a ceiling no price checks, without --accept-unpriced), a loraspec killed while the job trains leaves the run
 * interrupted, and `train --resume` re-attaches to the same request and downloads the LoRA.
 */
const root = fileURLToPath(new URL("../../../..", import.meta.url));
const bin = join(root, "bin", "loraspec.mjs");
const KEY = "fal-test-key:SECRET-THAT-MUST-NOT-LEAK";

let emulator: FalEmulator;
let project: string;
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  emulator = await startFalEmulator();
  project = mkdtempSync(join(tmpdir(), "loraspec-fal-cli-"));
  mkdirSync(join(project, "dataset"));
  for (let i = 0; i < 3; i++) {
    await sharp({ create: { width: 64, height: 64, channels: 3, background: { r: 60 * i, g: 90, b: 30 } } }).png().toFile(join(project, "dataset", `p${i}.png`));
    writeFileSync(join(project, "dataset", `p${i}.txt`), `txcl, a portrait ${i}`);
  }
  env = {
    ...process.env,
    CI: "1",
    NO_COLOR: "1",
    FAL_KEY: KEY,
    LORASPEC_FAL_QUEUE_URL: `${emulator.url}/queue`,
    LORASPEC_FAL_REST_URL: `${emulator.url}/rest`,
    LORASPEC_FAL_API_URL: `${emulator.url}/api`,
    LORASPEC_FAL_POLL_MS: "20",
  };
});
afterAll(async () => {
  await emulator.close();
  rmSync(project, { recursive: true, force: true });
});

function writeContract(maxCost: number | undefined, base = "flux1-dev"): void {
  const contract = {
    version: 1,
    name: "txcl-fal",
    base: { model: base },
    trainer: { name: "fal" },
    hardware: { kind: "fal" },
    target: "character",
    dataset: { path: "./dataset" },
    captions: { style: "natural" },
    trigger: { word: "txcl" },
    hyperparameters: { learning_rate: 1e-4, steps: 1000 },
    limits: maxCost === undefined ? {} : { max_cost_usd: maxCost },
    // a handful of images keeps the test fast; check would refuse fewer than 15 for a character
    lint: { accept: [{ rule: "dataset-below-minimum", why: "a test of the train machinery on a few images" }] },
  };
  writeFileSync(join(project, "lora.yaml"), stringify(contract));
}

/** Runs the CLI without blocking this process: the emulator it talks to lives in this event loop. */
function cli(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [bin, ...args], { cwd: project, env, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d) => (stdout += d));
  child.stderr.on("data", (d) => (stderr += d));
  return new Promise((resolve) => child.once("close", (status) => resolve({ status, stdout, stderr })));
}

describe("loraspec train on fal (emulated)", () => {
  it("refuses a plan over limits.max_cost_usd without --yes, before uploading anything", async () => {
    writeContract(0.01);
    const r = await cli(["train", "lora.yaml"]);
    expect(r.stderr).toContain("E_COST_LIMIT");
    expect(r.status).toBe(1);
    expect(emulator.jobs).toHaveLength(0);
    expect(emulator.uploads.size).toBe(0);
  });

  it("a killed loraspec leaves the run interrupted; --resume re-attaches and finishes without a second job", async () => {
    writeContract(100);
    emulator.progressPolls = 40;
    const child = spawn(process.execPath, [bin, "train", "lora.yaml", "--yes", "--json"], { cwd: project, env });
    const exit = new Promise((r) => child.once("exit", r));
    await new Promise<void>((resolve, reject) => {
      let out = "";
      child.stdout.on("data", (d) => {
        out += d;
        if (out.includes('"name":"train"')) resolve();
      });
      void exit.then(() => reject(new Error(`train exited early: ${out}`)));
    });
    child.kill("SIGKILL");
    await exit;
    const listed = JSON.parse((await cli(["runs", "--json"])).stdout).runs;
    expect(listed[0]).toMatchObject({ state: "interrupted", trainer: "fal", remoteRequestId: emulator.jobs[0]!.id });

    emulator.progressPolls = 3;
    const resumed = await cli(["train", "--resume", listed[0].id, "--yes"]);
    expect(resumed.status, resumed.stderr).toBe(0);
    expect(resumed.stderr).toMatch(/succeeded\. LoRA: .*lora\.safetensors/);
    expect(emulator.jobs).toHaveLength(1);
    const [done] = JSON.parse((await cli(["runs", "--json"])).stdout).runs;
    expect(done).toMatchObject({ state: "succeeded", attempts: 2 });
    expect(readFileSync(done.outputPath)).toEqual(emulator.loraBytes);
    // The dataset went up as a ZIP, and the key went only into the Authorization header.
    expect(emulator.jobs[0]!.input.images_data_url).toMatch(/\/files\//);
    expect(emulator.authorizations.every((a) => a === `Key ${KEY}`)).toBe(true);
    for (const file of walk(project)) {
      expect(readFileSync(file).includes(Buffer.from("SECRET-THAT-MUST-NOT-LEAK")), file).toBe(false);
    }
  });

  it("kill -9 during the submit: the run is interrupted with the journal; --resume finds the job on fal and re-attaches (one job)", async () => {
    writeContract(100);
    const before = emulator.jobs.length;
    emulator.holdNextSubmit();
    const child = spawn(process.execPath, [bin, "train", "lora.yaml", "--yes", "--json"], { cwd: project, env });
    const exit = new Promise((r) => child.once("exit", r));
    for (let i = 0; i < 300 && emulator.jobs.length === before; i++) await new Promise((r) => setTimeout(r, 50));
    expect(emulator.jobs).toHaveLength(before + 1);
    child.kill("SIGKILL");
    await exit;
    const [killed] = JSON.parse((await cli(["runs", "--json"])).stdout).runs;
    expect(killed).toMatchObject({ state: "interrupted", remoteRequestId: null });
    expect(JSON.parse(readFileSync(join(killed.runDir, "fal-submission.json"), "utf8")).state).toBe("submitting");
    const resumed = await cli(["train", "--resume", killed.id, "--yes", "--json"]);
    expect(resumed.status, resumed.stderr).toBe(0);
    expect(resumed.stdout).toContain("FAL_REATTACH");
    expect(emulator.jobs).toHaveLength(before + 1);
    const [done] = JSON.parse((await cli(["runs", "--json"])).stdout).runs;
    expect(done).toMatchObject({ id: killed.id, state: "succeeded", remoteRequestId: emulator.jobs.at(-1)!.id });
  });

  /**
   * check and train agree on a ceiling no price can check (Qwen-Image's endpoint has no price record): check's
   * error cost-limit-unchecked names limits.max_cost_usd and train refuses (E_COST_UNKNOWN) before uploading,
   * where it used to submit unchecked; each fix check's message gives (a live price in steps, no ceiling) passes check
   * (no error) and starts the job, and its override (the train flag check's fix names, --accept-unpriced) starts it
   * with the ceiling still unchecked. --yes alone, which every scripted run passes to skip the prompt, is refused like
   * no flag at all. Prices come from the emulator's pricing API, never fal.ai.
   */
  it("a ceiling no price can check: check errors, train refuses before uploading; each fix passes check and starts the job", async () => {
    const QWEN = "fal-ai/qwen-image-2512-trainer";
    let fix = "";
    const costErrors = async () => {
      const r = await cli(["check", "--json"]);
      const { findings } = JSON.parse(r.stdout) as { findings: Array<{ rule: string; severity: string; field?: string; fix: string }> };
      const errors = findings.filter((f) => f.severity === "error");
      fix = errors.find((f) => f.rule === "cost-limit-unchecked")?.fix ?? fix;
      return { status: r.status, errors: errors.map((f) => `${f.rule} [${f.field}]`) };
    };
    emulator.prices = [];
    writeContract(100, "qwen-image");
    const lookups = emulator.priceLookups;
    expect(await costErrors()).toEqual({ status: 1, errors: ["cost-limit-unchecked [limits.max_cost_usd]"] });
    expect(emulator.priceLookups).toBeGreaterThan(lookups);
    // the override check names: a train flag of its own
    const override = /`loraspec train (--[a-z-]+)`/.exec(fix)?.[1];
    expect(override).toBe("--accept-unpriced");
    const jobs = emulator.jobs.length;
    const uploads = emulator.uploads.size;
    // no flag, and --yes (the confirmation, needed off a terminal): refused before any upload, naming the override
    for (const args of [["train", "lora.yaml"], ["train", "lora.yaml", "--yes"]]) {
      const refused = await cli(args);
      expect(refused.status, args.join(" ")).toBe(1);
      expect(refused.stderr).toMatch(/E_COST_UNKNOWN.*limits\.max_cost_usd/s);
      expect(refused.stderr).toMatch(/fix:.*--accept-unpriced/);
      expect(refused.stderr).not.toMatch(/not checked/);
    }
    expect([emulator.jobs.length, emulator.uploads.size]).toEqual([jobs, uploads]);

    // fix 1: fal's live price, in steps
    emulator.prices = [{ endpoint_id: QWEN, unit_price: 0.002, unit: "step", currency: "USD" }];
    expect(await costErrors()).toEqual({ status: 0, errors: [] });
    const priced = await cli(["train", "lora.yaml", "--yes"]);
    expect(priced.status, priced.stderr).toBe(0);
    expect(emulator.jobs.at(-1)!.endpoint).toBe(QWEN);
    expect(emulator.jobs).toHaveLength(jobs + 1);

    // fix 2: no ceiling
    emulator.prices = [];
    writeContract(undefined, "qwen-image");
    expect(await costErrors()).toEqual({ status: 0, errors: [] });
    expect((await cli(["train", "lora.yaml", "--yes"])).status).toBe(0);
    expect(emulator.jobs).toHaveLength(jobs + 2);

    // the override: check's flag (with --yes for the prompt) submits without the ceiling, and says so
    writeContract(100, "qwen-image");
    const accepted = await cli(["train", "lora.yaml", "--yes", override!]);
    expect(accepted.status, accepted.stderr).toBe(0);
    expect(accepted.stderr).toMatch(/limits\.max_cost_usd \$100\.00 is not checked: .*because of --accept-unpriced/);
    expect(emulator.jobs).toHaveLength(jobs + 3);
  });
});

function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? walk(path) : [path];
  });
}
