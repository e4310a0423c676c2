import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join, resolve } from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { judgeValidation } from "@loraspec/core/validate/judge-validation.js";
import { planValidation } from "@loraspec/core/validate/plan-validation.js";
import { buildScoreRequest, type ScoreResult } from "@loraspec/core/validate/score-request.js";
import { renderReport } from "@loraspec/engine/report/render-report.js";
import { defaultDeps } from "@loraspec/engine/server/default-deps.js";
import { readLossCurve } from "@loraspec/engine/validate/read-loss-curve.js";
import type { ValidationResult } from "@loraspec/engine/validate/validate-lora.js";
import { createRunsService } from "@loraspec/engine/server/runs-service.js";
import { startServer, type RunningServer } from "@loraspec/engine/server/start-server.js";

/**
 * End to end in headless Chromium (Debian's, driven by playwright-core): the page, the API and
 * the real engine behind it, down to a training run of the built-in trainer on a tiny SDXL
 * made here with random weights. Screenshots of every page go to test-output/screenshots/.
 */
const root = resolve(import.meta.dirname, "../../..");
const CHROMIUM = process.env.LORASPEC_CHROMIUM ?? "/usr/bin/chromium";
const PYTHON = join(root, "worker/.venv/bin/python");
const SHOTS = join(root, "test-output/screenshots");
const TRIGGER = "zxqv";
/** UI updates are immediate; the allowance is for a busy 2-core machine. */
const POLL = { timeout: 20_000, interval: 100 };

let work: string;
let project: string;
let server: RunningServer;
let runs: ReturnType<typeof createRunsService>;
let browser: Browser;
let page: Page;

async function shot(name: string) {
  await page.screenshot({ path: join(SHOTS, `${name}.png`) });
}

describe.runIf(existsSync(CHROMIUM))("loraspec ui in Chromium", () => {
  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), "loraspec-ui-e2e-"));
    project = join(work, "project");
    const examples = join(work, "examples");
    await mkdir(join(examples, "dataset"), { recursive: true });
    await mkdir(project, { recursive: true });
    await mkdir(SHOTS, { recursive: true });

    // The page, built the way `npm run build:web` builds it.
    const { build } = await import("vite");
    await build({ configFile: join(root, "packages/web/vite.config.ts"), logLevel: "error" });

    // A tiny SDXL (random weights, tokenizers made in code) for a real run on the CPU.
    const base = join(work, "tiny-sdxl");
    const made = spawnSync(PYTHON, ["-m", "loraspec_worker", "make-tiny-base", "--arch", "sdxl", "--out", base], {
      cwd: join(root, "worker"),
      encoding: "utf8",
    });
    if (made.status !== 0) throw new Error(`make-tiny-base failed: ${made.stderr}`);

    // The example: six small images, captions without the trigger on two of them, and a lint
    // error the form will fix (a stacked LoRA at 0.5 plus this one at 1.0 is over 1.0).
    const colors = [
      [200, 40, 40],
      [40, 160, 60],
      [40, 60, 200],
      [220, 180, 40],
      [120, 40, 160],
      [30, 150, 160],
    ];
    for (const [i, [r, g, b]] of colors.entries()) {
      const svg = `<svg width="96" height="80" xmlns="http://www.w3.org/2000/svg"><rect width="96" height="80" fill="rgb(${r},${g},${b})"/><circle cx="${30 + i * 8}" cy="40" r="18" fill="white"/></svg>`;
      await writeFile(join(examples, "dataset", `img-${i}.png`), await sharp(Buffer.from(svg)).png().toBuffer());
      if (i < 4) await writeFile(join(examples, "dataset", `img-${i}.txt`), `${TRIGGER}, a white disc on a coloured card, photo ${i}\n`);
    }
    await writeFile(
      join(examples, "e2e.yaml"),
      [
        "version: 1",
        "name: e2e-demo",
        `base: { model: sdxl, path: ${JSON.stringify(base)} }`,
        "trainer: { name: diffusers }",
        'hardware: { kind: local, gpu: "RTX 4090", vram_gb: 24 }',
        "target: character",
        "dataset: { path: ./dataset, resolution: 64 }",
        `trigger: { word: ${TRIGGER} }`,
        "hyperparameters: { learning_rate: 1e-4, steps: 12, rank: 4, optimizer: adamw, precision: fp32, save_every: 4, gradient_checkpointing: false }",
        "failure: { on_divergence: stop, on_oom: fail }",
        'lint: { accept: [{ rule: dataset-below-minimum, why: "a browser test of the chain on a few images" }] }',
        "validation:",
        "  stack:",
        "    - { lora: other.safetensors, weight: 0.5 }",
        "",
      ].join("\n"),
    );

    // The tiny run takes under a second on an idle machine: pace it so its progress can be seen
    // and stopped mid-way (the worker inherits this process's environment).
    process.env.LORASPEC_TEST_STEP_DELAY_S = "0.5";
    runs = createRunsService({ projectDir: project });
    server = await startServer({ ...defaultDeps(), runs, projectDir: project, examplesDir: examples, webDist: join(root, "packages/web/dist"), port: 0 });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    });
    page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  }, 240_000);

  afterAll(async () => {
    delete process.env.LORASPEC_TEST_STEP_DELAY_S;
    await browser?.close();
    runs?.close();
    await server?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it("without the token the page says how to get in", async () => {
    const res = await page.goto(server.url);
    expect(res?.status()).toBe(401);
    await expect.poll(() => page.textContent("body"), POLL).toContain("needs the access token");
  });

  it("creates a project from the example", async () => {
    await page.goto(server.openUrl);
    await page.getByRole("button", { name: "Create from e2e.yaml" }).click();
    await page.waitForSelector("[data-testid=findings]");
    expect(await readFile(join(project, "lora.yaml"), "utf8")).toContain("name: e2e-demo");
    expect(existsSync(join(project, "dataset", "img-0.png"))).toBe(true);
    // The token left the address bar once the cookie was set.
    expect(page.url()).not.toContain("token=");
  });

  it("fixes a lint error in the form and sees it clear", async () => {
    const findings = page.getByTestId("findings");
    await expect.poll(() => findings.textContent(), POLL).toContain("stack-over-limit");
    expect(await page.getByTestId("contract-state").textContent()).toMatch(/problem/);
    await page.fill("#f-validation-self_weight", "0.5");
    await expect.poll(() => findings.textContent(), POLL).not.toContain("stack-over-limit");
    // The YAML beside the form follows the edit, and the plan is there.
    expect(await page.inputValue("textarea[aria-label='contract YAML']")).toMatch(/self_weight: 0\.5/);
    expect(await page.getByTestId("plan").textContent()).toContain("12");
    await shot("project");
    await page.getByRole("button", { name: "Save", exact: true }).click();
    await expect.poll(() => readFile(join(project, "lora.yaml"), "utf8"), POLL).toMatch(/self_weight: 0\.5/);
  });

  it("edits a caption and finds it on disk, with the trigger put first", async () => {
    await page.click("a[href='#/dataset']");
    await page.waitForSelector("[data-path='img-5.png']");
    // The uncaptioned images are marked.
    expect(await page.locator("[data-path='img-5.png']").textContent()).toMatch(/caption/);
    await page.click("[data-path='img-5.png']");
    await page.fill("#caption-text", "a white disc on a teal card");
    await expect.poll(() => page.getByTestId("trigger-preview").textContent(), POLL).toContain("not at the start");
    await shot("dataset");
    await page.getByRole("button", { name: "Save caption" }).click();
    await expect.poll(() => readFile(join(project, "dataset", "img-5.txt"), "utf8").catch(() => ""), POLL).toBe(`${TRIGGER}, a white disc on a teal card\n`);
  });

  it("shows a duplicate pair side by side and stores 'keep this one', then 'keep both', where prep reads them, and forgets them", async () => {
    const copy = join(project, "dataset", "img-0-copy.png");
    await writeFile(copy, await readFile(join(project, "dataset", "img-0.png")));
    try {
      await page.reload();
      await page.click("a[href='#/dataset']");
      const clusters = page.getByTestId("duplicate-clusters");
      const figure = (cls: string) => clusters.locator(`figure.${cls}`);
      await expect.poll(() => figure("drop").textContent(), POLL).toContain("img-0-copy.png");
      await shot("dataset-duplicates");
      await figure("drop").getByRole("button", { name: "Keep this one" }).click();
      await expect.poll(() => figure("keep").textContent(), POLL).toContain("img-0-copy.png");
      await figure("drop").getByRole("button", { name: "Keep both (not a duplicate)" }).click();
      await expect.poll(() => clusters.locator("figure").count(), POLL).toBe(0);
      const pins = async () => JSON.parse(await readFile(join(project, ".loraspec", "dataset-pins.json"), "utf8"));
      // Stored for this contract's dataset (an entry naming it, absolute and relative to the project).
      expect(await pins()).toEqual({ version: 2, datasets: [expect.objectContaining({ dataset: expect.any(String), keep: ["img-0-copy.png"], distinct: [["img-0-copy.png", "img-0.png"]] })] });
      // Undo: forgetting the choices brings the cluster back as dedupe alone forms it.
      await page.getByTestId("stored-pins").getByRole("button", { name: "Forget my choices" }).click();
      await expect.poll(() => figure("drop").textContent(), POLL).toContain("img-0-copy.png");
      expect(await pins()).toEqual({ version: 2, datasets: [] });
    } finally {
      await rm(copy, { force: true });
    }
  });

  it("starts a run on a tiny base, sees the loss chart and progress move, stops and resumes it", async () => {
    await page.click("a[href='#/runs']");
    // A start the server refuses stays on screen: the contract stacks other.safetensors, which is not there yet
    // (check's validation-stack-missing). The list's refresh every 2 s used to clear the message at once.
    await page.getByRole("button", { name: "Start run" }).click();
    const refused = page.getByTestId("start-error");
    await expect.poll(() => refused.textContent().catch(() => ""), POLL).toContain("validation-stack-missing");
    await page.waitForTimeout(2500);
    expect(await refused.textContent()).toContain("validation-stack-missing");
    await copyFile(join(root, "examples/pitfalls/other/detail.safetensors"), join(project, "other.safetensors"));
    await page.getByRole("button", { name: "Start run" }).click();
    await page.waitForSelector("[data-testid=run-progress]");
    expect(await page.getByTestId("start-error").count()).toBe(0);
    const progress = page.getByTestId("run-progress");
    const chart = page.getByTestId("loss-chart");
    await expect.poll(async () => Number(await progress.getAttribute("data-step")), { timeout: 180_000, interval: 500 }).toBeGreaterThan(0);
    const firstStep = Number(await progress.getAttribute("data-step"));
    await expect.poll(async () => Number(await chart.getAttribute("data-points")), { timeout: 180_000, interval: 500 }).toBeGreaterThan(1);
    await expect.poll(async () => Number(await progress.getAttribute("data-step")), { timeout: 180_000, interval: 500 }).toBeGreaterThan(firstStep);
    await shot("runs-live");
    // Stop after the first checkpoint (save_every 4), then resume from it.
    await expect.poll(async () => Number(await progress.getAttribute("data-step")), { timeout: 180_000, interval: 500 }).toBeGreaterThanOrEqual(5);
    await page.getByRole("button", { name: "Stop" }).click();
    const state = page.locator(".run-title .state");
    await expect.poll(() => state.textContent(), { timeout: 120_000, interval: 500 }).toMatch(/cancelled|interrupted/);
    const before = Number(await chart.getAttribute("data-points"));
    expect(before).toBeGreaterThanOrEqual(5);
    await page.getByRole("button", { name: "Resume" }).click();
    await expect.poll(() => page.locator(".run-title").textContent(), { timeout: 60_000, interval: 500 }).toContain("attempt 2");
    await expect.poll(() => state.textContent(), { timeout: 240_000, interval: 1000 }).toBe("succeeded");
    // The chart kept the first attempt's points: never fewer than before the stop.
    expect(Number(await chart.getAttribute("data-points"))).toBeGreaterThanOrEqual(before);
    expect(Number(await chart.getAttribute("data-points"))).toBeGreaterThanOrEqual(12);
    // The output link names the LoRA file the store recorded for the run.
    const output = (await runs.list())[0]!.outputPath!;
    expect(output).toMatch(/\.safetensors$/);
    await expect.poll(() => page.locator(".stats").textContent(), POLL).toContain(basename(output));
    // Speed and ETA belong to the attempt running now: a finished run shows neither, never a stale value.
    for (const label of ["it/s", "ETA"]) {
      expect(await page.locator(".stat", { has: page.locator(".stat-label", { hasText: label }) }).locator(".stat-value").textContent()).toBe("—");
    }
    await shot("runs");
  }, 400_000);

  it("the log tail is the run's own log, not a validation log beside it, and has no terminal escapes", async () => {
    const run = (await runs.list())[0]!;
    await mkdir(join(run.runDir, "validation"), { recursive: true });
    await writeFile(join(run.runDir, "validation", "worker.log"), "VALIDATION-NOISE \x1b[2K\n");
    await page.reload();
    const tail = page.getByTestId("log-tail");
    await expect.poll(async () => (await tail.textContent())?.length ?? 0, POLL).toBeGreaterThan(0);
    const text = (await tail.textContent()) ?? "";
    expect(text).not.toContain("VALIDATION-NOISE");
    expect(text).not.toMatch(/\x1b/);
  });

  it("opens the validation report", async () => {
    // Sampling and scoring need CLIP/DINO weights that cannot be downloaded here, so the scores
    // are stand-ins; everything else is real: the rubric plan, the verdicts judged from the
    // scores, the report renderer, the run's own loss curve, images linked relative to the report.
    const run = (await runs.list())[0]!;
    const dir = join(run.runDir, "validation");
    await mkdir(join(dir, "images"), { recursive: true });
    const plan = planValidation({
      rubric: { seeds: [1], trigger_prompts: ["a photo of {trigger}"], pose_variations: 2, novel_scenes: ["{trigger} on the moon"], stack: [], self_weight: 1, weight_sweep: [0.8, 1.0] },
      trigger: TRIGGER,
      target: "character",
      candidates: [{ name: "final", path: run.outputPath!, step: 12 }],
    });
    const request = buildScoreRequest({ plan, image: (id) => id, reference: ["img-0.png", "img-1.png"] });
    const scores: ScoreResult = {
      embedder: { clip: "stand-in" },
      reference: { count: 2, pairwise_clip: 0.85 },
      trigger: Object.fromEntries(request.trigger.map((t, i) => [t.id, { distance: 0.2 + 0.05 * i, base_distance: 0.05, effect: 0.15 + 0.05 * i }])),
      sets: Object.fromEntries(request.sets.map((x) => [x.id, { count: x.images.length, fidelity_clip: 0.8, diversity: 0.3, collapse_share: 0.2, near_duplicate_share: 0, clip_t: 0.3 }])),
      stack: {},
    };
    for (const [i, job] of plan.jobs.entries()) {
      const png = await sharp({ create: { width: 64, height: 64, channels: 3, background: { r: (i * 37) % 256, g: (i * 91) % 256, b: 128 } } }).png().toBuffer();
      await writeFile(join(dir, "images", `${job.id}.png`), png);
    }
    const result: ValidationResult = {
      name: "e2e-demo",
      createdAt: new Date().toISOString(),
      settings: { width: 64, height: 64, steps: 4 },
      sampler: "worker",
      plan,
      scores,
      verdicts: judgeValidation({ plan, scores }),
      images: Object.fromEntries(plan.jobs.map((j) => [j.id, `images/${j.id}.png`])),
      reference: ["img-0.png", "img-1.png"],
    };
    const loss = await readLossCurve(join(run.runDir, "events.jsonl"));
    await writeFile(join(dir, "validation.json"), JSON.stringify(result));
    await writeFile(join(dir, "report.html"), renderReport({ result, loss, imageSrc: (id) => result.images[id]! }));

    await page.click("a[href='#/validation']");
    const frame = page.frameLocator("[data-testid=report-frame]");
    await expect.poll(() => frame.locator("h1").textContent(), POLL).toContain("Validation: e2e-demo");
    // The report's images load through /files/ (relative links resolve inside the project);
    // they are lazy, so the first one is scrolled into view.
    const img = frame.locator("img").first();
    await img.scrollIntoViewIfNeeded();
    await expect.poll(() => img.evaluate((i) => (i as HTMLImageElement).naturalWidth), POLL).toBe(64);
    expect(await frame.locator("#loss-curve").count()).toBe(1);
    expect(await page.locator(".verdicts-panel").textContent()).toContain(result.verdicts.status);
    await shot("validation");
  });

  it("inspects the trained LoRA with every key accounted for", async () => {
    await page.click("a[href='#/lora']");
    const output = (await runs.list())[0]!.outputPath!;
    const row = page.locator("tr", { hasText: `/output/${basename(output)}` });
    await row.first().click();
    // A tiny base is not a real SDXL, so its keys do not place on the SDXL map: what matters
    // here is that every tensor is listed somewhere (placed, unplaced or non-LoRA).
    const accounting = page.getByTestId("key-accounting");
    await expect.poll(() => accounting.textContent(), { timeout: 30_000 }).toMatch(/\d+ tensors: \d+ modules placed · \d+ unplaced · \d+ non-LoRA/);
    const [, placed, unplaced] = (await accounting.textContent())!.match(/(\d+) modules placed · (\d+) unplaced/)!;
    expect(Number(placed) + Number(unplaced)).toBeGreaterThan(0);
    expect(await page.locator(".keylist li").count()).toBe(Math.min(200, Number(unplaced)));
    await shot("lora");
  });
});
