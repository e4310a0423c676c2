import { spawnSync } from "node:child_process";
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { photoLike } from "../../engine/test/dataset/make-images.js";

/** `loraspec prep` reads the page's stored choices (.loraspec/dataset-pins.json) and merges --pin into them. */
const bin = join(fileURLToPath(new URL("../../..", import.meta.url)), "bin", "loraspec.mjs");
let project: string;

beforeAll(async () => {
  project = await mkdtemp(join(tmpdir(), "loraspec-cli-pins-"));
  await mkdir(join(project, "photos"));
  await photoLike(320, 240, 1).jpeg({ quality: 90 }).toFile(join(project, "photos", "a.jpg"));
  await photoLike(320, 240, 1).resize(288, 216).jpeg({ quality: 70 }).toFile(join(project, "photos", "a-small.jpg"));
  await photoLike(300, 300, 2).png().toFile(join(project, "photos", "b.png"));
  await writeFile(
    join(project, "lora.yaml"),
    "version: 1\nname: cli-pins\nbase: { model: sdxl }\ntrainer: { name: diffusers }\ntarget: character\ndataset: { path: ./photos, resolution: 128 }\ntrigger: { word: zxqv }\n",
  );
});
afterAll(async () => {
  await rm(project, { recursive: true, force: true });
});

async function prep(pins: unknown, args: string[] = []): Promise<{ code: number | null; kept: string[]; stderr: string; stdout: string }> {
  await mkdir(join(project, ".loraspec"), { recursive: true });
  await writeFile(join(project, ".loraspec", "dataset-pins.json"), typeof pins === "string" ? pins : JSON.stringify(pins));
  const r = spawnSync(process.execPath, [bin, "prep", "--json", "--no-embed", ...args], { cwd: project, encoding: "utf8", env: { ...process.env, NO_COLOR: "1", CI: "1" } });
  const last = r.stdout.trim().split("\n").at(-1) ?? "{}";
  let kept: string[] = [];
  try {
    const summary = JSON.parse(last) as { duplicates?: Array<{ drop: string[] }> };
    const dropped = new Set((summary.duplicates ?? []).flatMap((c) => c.drop));
    kept = ["a-small.jpg", "a.jpg", "b.png"].filter((f) => !dropped.has(f));
  } catch {
    kept = [];
  }
  return { code: r.status, kept, stderr: r.stderr, stdout: r.stdout };
}

describe("loraspec prep with stored pins", () => {
  it("keeps both images of a 'keep both' pair, a stored pin, and a --pin on top of the stored ones", async () => {
    expect((await prep({ version: 1 })).kept).toEqual(["a.jpg", "b.png"]);
    expect((await prep({ version: 1, distinct: [["a.jpg", "a-small.jpg"]] })).kept).toEqual(["a-small.jpg", "a.jpg", "b.png"]);
    expect((await prep({ version: 1, keep: ["a-small.jpg"] })).kept).toEqual(["a-small.jpg", "b.png"]);
    expect((await prep({ version: 1 }, ["--pin", "a-small.jpg"])).kept).toEqual(["a-small.jpg", "b.png"]);
  });

  it("a hostile pins file is one coded warning naming the file and field; prep goes on without it (--pin still applies), no stack trace", async () => {
    const r = await prep({ version: 1, keep: ["../../etc/passwd"] });
    expect(r.code).toBe(0);
    expect(r.kept).toEqual(["a.jpg", "b.png"]);
    const warnings = r.stdout.split("\n").filter((l) => l.includes('"code":"dataset-pins-invalid"')).map((l) => JSON.parse(l) as { code: string; message: string });
    expect(warnings).toEqual([expect.objectContaining({ code: "dataset-pins-invalid", message: expect.stringMatching(/dataset-pins\.json: keep\.0: .*E_DATASET_PINS_INVALID/) })]);
    expect(r.stdout + r.stderr).not.toMatch(/^\s+at /m);
    expect((await prep("{not json", ["--pin", "a-small.jpg"])).kept).toEqual(["a-small.jpg", "b.png"]);
  });

  it("pins belong to their dataset: ./photos's pins never change ./d2's dedupe (same file names), by its contract or by --dataset", async () => {
    await cp(join(project, "photos"), join(project, "d2"), { recursive: true });
    await writeFile(join(project, "two.yaml"), (await readFile(join(project, "lora.yaml"), "utf8")).replace("./photos", "./d2"));
    try {
      const pins = { version: 2, datasets: [{ datasetRelative: "photos", keep: ["a-small.jpg"] }] };
      expect((await prep(pins)).kept).toEqual(["a-small.jpg", "b.png"]);
      expect((await prep(pins, ["two.yaml"])).kept).toEqual(["a.jpg", "b.png"]);
      expect((await prep(pins, ["--dataset", "d2", "--out", "d2-out"])).kept).toEqual(["a.jpg", "b.png"]);
      // d2's own pins apply to d2, whichever contract names it.
      const both = { version: 2, datasets: [...pins.datasets, { datasetRelative: "d2", distinct: [["a.jpg", "a-small.jpg"]] }] };
      expect((await prep(both, ["--dataset", "d2", "--out", "d2-out"])).kept).toEqual(["a-small.jpg", "a.jpg", "b.png"]);
      // An old file, with two contracts on two datasets, is neither's (a warning says so).
      const old = await prep({ version: 1, keep: ["a-small.jpg"] });
      expect(old.kept).toEqual(["a.jpg", "b.png"]);
      expect(old.stdout).toMatch(/written before they named their dataset/);
    } finally {
      await rm(join(project, "two.yaml"));
      await rm(join(project, "d2"), { recursive: true, force: true });
      await rm(join(project, "d2-out"), { recursive: true, force: true });
    }
  });
});
