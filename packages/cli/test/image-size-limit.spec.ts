import { spawn } from "node:child_process";
import { mkdir, mkdtemp, readdir, rm, stat, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { collectEvents } from "@loraspec/core/events.js";
import { captionDataset } from "@loraspec/engine/caption/caption-dataset.js";
import type { Captioner } from "@loraspec/engine/caption/captioner.js";
import { FILE_LIMITS } from "@loraspec/engine/fs/file-limits.js";
import { photoLike } from "../../engine/test/dataset/make-images.js";

/**
 * An image is read whole to be probed (its pixel count is in the header, the header is in the file),
 * so a file over FILE_LIMITS.image is refused by its size before a byte is read: check names it,
 * prep reports it (`image-too-large`), caption leaves it out, and the file is untouched. Sparse files
 * (truncate) cost no disk; a reader that read one would need its size in memory.
 */
const root = fileURLToPath(new URL("../../..", import.meta.url));
const bin = join(root, "bin", "loraspec.mjs");
const GB2_5 = 2.5 * 1024 ** 3;
const JUST_OVER = FILE_LIMITS.image.bytes + 1;

function run(args: string[], cwd: string): Promise<{ code: number | null; stdout: string; stderr: string; ms: number }> {
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [bin, ...args], { cwd, env: { ...process.env, NO_COLOR: "1", CI: "1", FAL_KEY: "" } });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    child.on("close", (code) => resolve({ code, stdout, stderr, ms: Date.now() - started }));
  });
}

let tmp: string;
let project: string;
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), "loraspec-bigimage-"));
  project = join(tmp, "project");
  await mkdir(join(project, "photos"), { recursive: true });
  for (let i = 0; i < 4; i++) await photoLike(400, 300, 200 + i).jpeg().toFile(join(project, "photos", `p${i}.jpg`));
  // A real JPEG's first bytes, then nothing stored: 2.5 GB on paper, past readFile's own 2 GiB refusal.
  await photoLike(64, 64, 9).jpeg().toFile(join(project, "photos", "x.jpg"));
  await truncate(join(project, "photos", "x.jpg"), GB2_5);
  // One byte over the limit: under 2 GiB, which readFile would have read whole.
  await photoLike(64, 64, 10).png().toFile(join(project, "photos", "y.png"));
  await truncate(join(project, "photos", "y.png"), JUST_OVER);
  await writeFile(
    join(project, "lora.yaml"),
    "version: 1\nname: big-image\nbase: { model: sdxl }\ntrainer: { name: kohya, version: v0.10.1 }\ntarget: character\ndataset: { path: ./photos, resolution: 256 }\ntrigger: { word: txcl }\n",
  );
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

const noStack = (s: string) => expect(s).not.toMatch(/^\s+at /m);
const untouched = async () => {
  expect((await stat(join(project, "photos", "x.jpg"))).size).toBe(GB2_5);
  expect((await stat(join(project, "photos", "y.png"))).size).toBe(JUST_OVER);
};

describe("an image file over FILE_LIMITS.image", () => {
  it("check names it in dataset-skipped (image-too-large), promptly", async () => {
    const r = await run(["check", "--json"], project);
    noStack(r.stderr);
    expect(r.ms).toBeLessThan(30_000);
    const findings = r.stdout
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .flatMap((l) => (JSON.parse(l) as { findings?: Array<{ rule: string; message: string; files?: string[] }> }).findings ?? []);
    const skipped = findings.find((f) => f.rule === "dataset-skipped");
    expect(skipped?.files).toEqual(["x.jpg", "y.png"]);
    expect(skipped?.message).toContain("x.jpg (image-too-large: 2.5 GiB, more than a training image can be (at most 512.0 MiB): left out unread)");
    expect(skipped?.message).toContain("y.png (image-too-large: 512.0 MiB, more than a training image can be (at most 512.0 MiB): left out unread)");
    await untouched();
  });

  it("prep reports it in its summary and goes on with the others; nothing of it is written", async () => {
    const r = await run(["prep"], project);
    noStack(r.stderr);
    expect(r.code).toBe(0);
    expect(r.ms).toBeLessThan(60_000);
    expect(r.stdout).toMatch(/prepared now\s+4/);
    expect(r.stdout).toMatch(/x\.jpg\s+image-too-large\s+2\.5 GiB, more than a training image can be/);
    expect(r.stdout).toMatch(/y\.png\s+image-too-large/);
    expect((await readdir(join(project, ".loraspec", "prepared"))).filter((f) => /^[xy]\./.test(f))).toEqual([]);
    await untouched();
  });

  it("caption leaves it out unread (image-too-large) and captions the rest", async () => {
    const asked: string[] = [];
    const captioner: Captioner = {
      backend: "openai",
      caption: async ({ name }) => {
        asked.push(name);
        return "a photo";
      },
    };
    const dir = join(tmp, "caption");
    await mkdir(dir, { recursive: true });
    await photoLike(64, 64, 3).jpeg().toFile(join(dir, "a.jpg"));
    await photoLike(64, 64, 4).jpeg().toFile(join(dir, "x.jpg"));
    await truncate(join(dir, "x.jpg"), GB2_5);
    const events = await collectEvents(captionDataset({ dir, captioner, trigger: "txcl", style: "natural", target: "character" }));
    expect(asked).toEqual(["a.jpg"]);
    const done = events.find((e) => e.type === "done");
    expect((done as unknown as { result: { failed: unknown[] } }).result.failed).toEqual([
      { image: "x.jpg", code: "image-too-large", message: "2.5 GiB, more than a training image can be (at most 512.0 MiB): left out unread" },
    ]);
    expect(events).toContainEqual(expect.objectContaining({ type: "warning", code: "image-too-large", file: "x.jpg" }));
    expect((await stat(join(dir, "x.jpg"))).size).toBe(GB2_5);
  });
});
