import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { collectEvents } from "@loraspec/core/events.js";
import { captionDataset, type CaptionSummary } from "@loraspec/engine/caption/caption-dataset.js";
import { createWorkerCaptioner } from "@loraspec/engine/caption/worker-captioner.js";

// The real worker with a tiny random Florence-2 built by worker/tests/tiny_vlm.py: wiring only.
const repo = fileURLToPath(new URL("../../../../", import.meta.url));
const python = join(repo, "worker", ".venv", "bin", "python");
let root: string;
let model: string;

describe.skipIf(!existsSync(python))("worker captioner (real worker, tiny Florence-2)", () => {
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), "loraspec-wcap-"));
    model = join(root, "tiny-florence2");
    execFileSync(python, [join(repo, "worker", "tests", "tiny_vlm.py"), model], { stdio: "ignore" });
  });
  afterAll(() => rm(root, { recursive: true, force: true }));

  it("captions missing images in one worker call, trigger first, and reports a broken file", async () => {
    const dir = join(root, "images");
    await mkdir(dir, { recursive: true });
    for (const [name, colour] of [["a.png", "#cc2020"], ["b.png", "#20cc20"], ["c.png", "#2020cc"]] as const) {
      await sharp({ create: { width: 48, height: 32, channels: 3, background: colour } }).png().toFile(join(dir, name));
    }
    await writeFile(join(dir, "a.txt"), "txcl, kept as it is\n");
    await writeFile(join(dir, "broken.png"), "not a png");
    const captioner = createWorkerCaptioner({ model, python, device: "cpu", batchSize: 2, generation: { min_new_tokens: 3, max_new_tokens: 5, num_beams: 1 } });
    const events = await collectEvents(captionDataset({ dir, captioner, trigger: "txcl", style: "natural", target: "character" }));
    const summary = (events.find((e) => e.type === "done") as unknown as { result: CaptionSummary }).result;
    expect(summary.written).toEqual(["b.txt", "c.txt"]);
    const progress = events.filter((e) => e.type === "progress");
    expect(progress.length).toBeGreaterThan(1);
    expect(progress.at(-1)).toMatchObject({ task: "caption", current: 3, total: 3 });
    expect(summary.failed.map((f) => [f.image, f.code])).toEqual([["broken.png", "E_IMAGE_UNREADABLE"]]);
    expect(await readFile(join(dir, "a.txt"), "utf8")).toBe("txcl, kept as it is\n");
    for (const file of ["b.txt", "c.txt"]) expect(await readFile(join(dir, file), "utf8")).toMatch(/^txcl, \S/);
  });

  it("turns a model that is not there into a coded error", async () => {
    const dir = join(root, "images");
    const captioner = createWorkerCaptioner({ model: join(root, "missing-model"), python, device: "cpu" });
    await expect(collectEvents(captionDataset({ dir, captioner, trigger: "txcl", style: "natural", target: "character", overwrite: true }))).rejects.toMatchObject({
      code: "E_FILE_NOT_FOUND",
    });
  });
});
