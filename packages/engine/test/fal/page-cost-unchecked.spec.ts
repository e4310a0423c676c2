import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { stringify } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApp } from "@loraspec/engine/server/create-app.js";
import { createRunsService } from "@loraspec/engine/server/runs-service.js";
import { startFalEmulator, type FalEmulator } from "../emulators/fal-emulator.js";

/**
 * The page starts a run with no flags: a fal contract whose limits.max_cost_usd no price can check (Qwen-Image's
 * endpoint has no price record, and the emulator's pricing API lists none) is refused with E_COST_UNKNOWN naming the
 * field, and the fix names the command that can override it (`loraspec train --accept-unpriced`), not a flag the page
 * lacks. Refused before anything is uploaded. fal is the local emulator (LORASPEC_FAL_*_URL), never fal.ai.
 */
let project: string;
const TOKEN = "page-cost-token-0123456789abcdef";
const ENV_KEYS = ["FAL_KEY", "LORASPEC_FAL_QUEUE_URL", "LORASPEC_FAL_REST_URL", "LORASPEC_FAL_API_URL"] as const;
const saved: Partial<Record<(typeof ENV_KEYS)[number], string>> = {};
let emulator: FalEmulator;

beforeAll(async () => {
  emulator = await startFalEmulator();
  emulator.prices = [];
  for (const k of ENV_KEYS) saved[k] = process.env[k];
  Object.assign(process.env, {
    FAL_KEY: "fal-test-key:page",
    LORASPEC_FAL_QUEUE_URL: `${emulator.url}/queue`,
    LORASPEC_FAL_REST_URL: `${emulator.url}/rest`,
    LORASPEC_FAL_API_URL: `${emulator.url}/api`,
  });
  project = mkdtempSync(join(tmpdir(), "loraspec-page-cost-"));
  mkdirSync(join(project, "dataset"));
  for (let i = 0; i < 3; i++) {
    await sharp({ create: { width: 64, height: 64, channels: 3, background: { r: 60 * i, g: 90, b: 30 } } }).png().toFile(join(project, "dataset", `p${i}.png`));
    writeFileSync(join(project, "dataset", `p${i}.txt`), `txcl, a portrait ${i}`);
  }
  const contract = {
    version: 1,
    name: "txcl-fal",
    base: { model: "qwen-image" },
    trainer: { name: "fal" },
    hardware: { kind: "fal" },
    target: "character",
    dataset: { path: "./dataset" },
    captions: { style: "natural" },
    trigger: { word: "txcl" },
    hyperparameters: { learning_rate: 1e-4, steps: 1000 },
    limits: { max_cost_usd: 100 },
    lint: { accept: [{ rule: "dataset-below-minimum", why: "a test of the page's refusal on a few images" }] },
  };
  writeFileSync(join(project, "lora.yaml"), stringify(contract));
});
afterAll(async () => {
  for (const k of ENV_KEYS) {
    if (saved[k] === undefined) delete process.env[k];
    else process.env[k] = saved[k];
  }
  await emulator.close();
  rmSync(project, { recursive: true, force: true });
});

describe("the page refuses a fal ceiling no price can check", () => {
  it("POST /api/runs: 422 E_COST_UNKNOWN on limits.max_cost_usd, the fix naming `loraspec train --accept-unpriced`", async () => {
    const runs = createRunsService({ projectDir: project });
    try {
      const app = createApp({ projectDir: project, token: TOKEN, runs });
      const res = await app.request("/api/runs", { method: "POST", headers: { Host: "127.0.0.1:4747", Authorization: `Bearer ${TOKEN}`, "Content-Type": "application/json" }, body: "{}" });
      const body = (await res.json()) as { error?: { code: string; field?: string; message: string; hint?: string } };
      expect([res.status, body.error?.code, body.error?.field]).toEqual([422, "E_COST_UNKNOWN", "limits.max_cost_usd"]);
      expect(body.error?.hint).toMatch(/`loraspec train --accept-unpriced`/);
      expect(body.error?.hint).not.toMatch(/--yes|pass --accept-unpriced/);
      expect(await runs.list()).toEqual([]);
      expect([emulator.jobs.length, emulator.uploads.size]).toEqual([0, 0]);
    } finally {
      runs.close();
    }
  });
});
