import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { chromium } from "playwright-core";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { judgeValidation } from "@loraspec/core/validate/judge-validation.js";
import { planValidation } from "@loraspec/core/validate/plan-validation.js";
import { buildScoreRequest, type ScoreResult } from "@loraspec/core/validate/score-request.js";
import { atomicWrite } from "@loraspec/engine/fs/atomic-write.js";
import { renderReport } from "@loraspec/engine/report/render-report.js";
import type { ValidationResult } from "@loraspec/engine/validate/validate-lora.js";

// Debian's chromium driven by playwright-core (ecosystem.md: no browser download here).
const CHROMIUM = "/usr/bin/chromium";
const ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"];
const repo = fileURLToPath(new URL("../../../../", import.meta.url));

let dir: string;
let reportPath: string;
let result: ValidationResult;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "loraspec-report-"));
  const plan = planValidation({
    rubric: {
      seeds: [1, 2],
      trigger_prompts: ["a photo of {trigger}", "{trigger} <script>alert(1)</script>"],
      pose_variations: 10,
      novel_scenes: ["{trigger} on the moon"],
      stack: [{ lora: "/loras/style.safetensors", weight: 0.3 }],
      self_weight: 0.5,
      weight_sweep: [0.6, 0.8, 1.0],
    },
    trigger: "txcl",
    target: "character",
    candidates: [{ name: "txcl.safetensors", path: "/loras/txcl.safetensors" }],
  });
  const request = buildScoreRequest({ plan, image: (id) => id, reference: ["a", "b", "c"] });
  const scores: ScoreResult = {
    embedder: { clip: "openai/clip-vit-large-patch14" },
    reference: { count: 3, pairwise_clip: 0.85 },
    trigger: Object.fromEntries(request.trigger.map((t, i) => [t.id, { distance: 0.1 + 0.05 * i, base_distance: 0.05, effect: 0.05 + 0.05 * i }])),
    sets: Object.fromEntries(request.sets.map((s) => [s.id, { count: s.images.length, fidelity_clip: 0.78, diversity: 0.3, collapse_share: 0.4, near_duplicate_share: 0, clip_t: 0.29 }])),
    stack: { stack: { retention: { txcl: 0.7, style: 0.2 }, shift: { txcl: 0.3, style: 0.2 } } },
  };
  mkdirSync(join(dir, "images"));
  for (const [i, job] of plan.jobs.entries()) {
    const png = await sharp({ create: { width: 64, height: 64, channels: 3, background: { r: (i * 37) % 256, g: (i * 91) % 256, b: 128 } } }).png().toBuffer();
    await atomicWrite(join(dir, "images", `${job.id}.png`), png);
  }
  result = {
    name: "txcl-character",
    createdAt: "2026-11-29T00:00:00.000Z",
    settings: { width: 64, height: 64, steps: 4 },
    sampler: "worker",
    plan,
    scores,
    verdicts: judgeValidation({ plan, scores }),
    images: Object.fromEntries(plan.jobs.map((j) => [j.id, `images/${j.id}.png`])),
    reference: ["a", "b", "c"],
  };
  reportPath = join(dir, "report.html");
  const loss = Array.from({ length: 200 }, (_, i) => ({ step: i + 1, loss: 0.3 * Math.exp(-i / 60) + 0.05 + 0.01 * Math.sin(i) }));
  await atomicWrite(reportPath, renderReport({ result, loss, contractText: "version: 1\nname: txcl-character\n", imageSrc: (id) => result.images[id]! }));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("report.html in headless Chromium", () => {
  it("opens from disk with no network, shows every check's grid with loaded images, and escapes prompts", async () => {
    expect(existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install -y chromium`).toBe(true);
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS });
    try {
      const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
      const requests: string[] = [];
      page.on("request", (r) => requests.push(r.url()));
      const dialogs: string[] = [];
      page.on("dialog", (d) => (dialogs.push(d.message()), void d.dismiss()));
      await page.goto(pathToFileURL(reportPath).href, { waitUntil: "load" });
      expect(requests.filter((u) => !u.startsWith("file:") && !u.startsWith("data:"))).toEqual([]);
      for (const id of ["check-trigger", "check-consistency", "check-composition", "check-stack", "check-sweep", "loss", "contract"]) {
        expect(await page.locator(`#${id}`).count(), id).toBe(1);
      }
      // Lazy images below the fold: scroll through, then every <img> must have decoded.
      await page.evaluate(async () => {
        for (const img of Array.from(document.images)) img.loading = "eager";
        await Promise.all(Array.from(document.images).map((img) => (img.complete ? Promise.resolve() : new Promise((r) => ((img.onload = r), (img.onerror = r))))));
      });
      const broken = await page.evaluate(() => Array.from(document.images).filter((img) => img.naturalWidth === 0).map((img) => img.src));
      expect(broken).toEqual([]);
      expect(await page.evaluate(() => document.images.length)).toBeGreaterThan(50);
      expect(dialogs).toEqual([]);
      expect(await page.locator("#best").innerText()).toMatch(/Best weight: \d/);
      expect(await page.locator("#loss-curve polyline").count()).toBe(1);
      expect(await page.locator("#summary tr").count()).toBe(1 + 3);
      mkdirSync(join(repo, "test-output"), { recursive: true });
      await page.screenshot({ path: join(repo, "test-output", "validation-report.png"), fullPage: true });
      expect(existsSync(join(repo, "test-output", "validation-report.png"))).toBe(true);
    } finally {
      await browser.close();
    }
  });
});
