import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readStoredPins } from "../../engine/src/dataset/stored-pins.js";
import { photoLike } from "../../engine/test/dataset/make-images.js";

/**
 * Every `loraspec prep` flag is checked before a file is touched: a bad value is E_USAGE naming the
 * flag, and the prepared folder (outputs, captions, manifest, .removed/) is byte-identical afterwards.
 */
const bin = join(fileURLToPath(new URL("../../..", import.meta.url)), "bin", "loraspec.mjs");
let root: string;
let project: string;
let prepared: string;

function prep(args: string[], cwd = project) {
  const r = spawnSync(process.execPath, [bin, "prep", "--json", "--no-embed", ...args], { cwd, encoding: "utf8", env: { ...process.env, NO_COLOR: "1", CI: "1" } });
  const last = r.stdout.trim().split("\n").at(-1) ?? "{}";
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, json: JSON.parse(last.startsWith("{") ? last : "{}") as Record<string, unknown> };
}

async function tree(dir: string): Promise<Record<string, string>> {
  const found: Record<string, string> = {};
  for (const name of (await readdir(dir, { recursive: true })).sort()) {
    const path = join(dir, name);
    found[name] = (await stat(path)).isDirectory() ? "dir" : createHash("sha256").update(await readFile(path)).digest("hex");
  }
  return found;
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "loraspec-cli-prep-flags-"));
  project = join(root, "project");
  prepared = join(project, ".loraspec", "prepared");
  await mkdir(join(project, "photos"), { recursive: true });
  await mkdir(join(root, "other", "dataset"), { recursive: true });
  for (let i = 0; i < 3; i++) await photoLike(240, 200, 60 + i).png().toFile(join(project, "photos", `img0${i}.png`));
  await photoLike(240, 200, 60).png().toFile(join(root, "other", "dataset", "img00.png"));
  await writeFile(join(project, "photos", "img01.txt"), "txcl, from the dataset");
  await writeFile(join(project, "notes.md"), "a file, not a folder");
  await writeFile(
    join(project, "lora.yaml"),
    "version: 1\nname: flags\nbase: { model: sdxl }\ntrainer: { name: diffusers }\ntarget: character\ndataset: { path: ./photos, resolution: 128 }\ntrigger: { word: txcl }\n",
  );
  expect(prep([]).code).toBe(0);
  await writeFile(join(prepared, "img00.txt"), "txcl, a caption");
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe("loraspec prep: a bad flag touches nothing", () => {
  it.each<[string[], string]>([
    [["--background", "notacolor"], "--background"],
    [["--background", "#12345"], "--background"],
    [["--background", ""], "--background"],
    [["--max-pixels", "1"], "--max-pixels"],
    [["--max-pixels", "0"], "--max-pixels"],
    [["--max-pixels", "1e9"], "--max-pixels"],
    [["--max-pixels", "lots"], "--max-pixels"],
    [["--resolution", "0"], "--resolution"],
    [["--resolution", "-5"], "--resolution"],
    [["--resolution", "1.5"], "--resolution"],
    [["--resolution", "0x80"], "--resolution"],
    [["--resolution", "99999"], "--resolution"],
    [["--concurrency", "0"], "--concurrency"],
    [["--concurrency", "100000"], "--concurrency"],
    [["--concurrency", " 2"], "--concurrency"],
    [["--near-threshold", "-1"], "--near-threshold"],
    [["--near-threshold", "442"], "--near-threshold"],
    [["--near-threshold", "x"], "--near-threshold"],
    [["--format", "gif"], "--format"],
    [["--aspect", "wide"], "--aspect"],
    [["--crop", "left"], "--crop"],
    [["--pin", "nonexistent.png"], "--pin"],
    [["--pin", "../other/dataset/img00.png"], "--pin"],
    [["--pin", "img00.png", "--pin", "img0.png"], "--pin"],
    [["--pin", "img01.txt"], "--pin"],
    [["--out", "notes.md"], "--out"],
  ])("prep %j: E_USAGE naming %s, the prepared folder byte-identical", async (args, flag) => {
    const before = await tree(prepared);
    const r = prep(args);
    expect(r.code).toBe(2);
    expect(r.json).toMatchObject({ ok: false, error: { code: "E_USAGE", field: flag } });
    expect((r.json.error as { message: string }).message).toContain(flag);
    expect(r.stdout + r.stderr).not.toMatch(/^\s+at /m);
    expect(await tree(prepared)).toEqual(before);
  });

  it("the next good prep keeps the hand caption where it was (nothing parked in .removed/)", async () => {
    const r = prep([]);
    expect(r.code).toBe(0);
    expect(await readFile(join(prepared, "img00.txt"), "utf8")).toBe("txcl, a caption");
    expect(Object.keys(await tree(prepared)).filter((n) => n.startsWith(".removed") || n.startsWith(".prep-staging"))).toEqual([]);
  });

  it("--pin given from the project folder (photos/img00.png) names the same dataset image", () => {
    expect(prep(["--pin", "photos/img00.png"]).code).toBe(0);
  });
});

describe("loraspec prep --pin is recorded where check reads it", () => {
  it("a near duplicate pinned on the command line stays kept by the next plain prep, and check's stored pins say so", async () => {
    await photoLike(240, 200, 62).resize(216, 180).png({ compressionLevel: 1 }).toFile(join(project, "photos", "img02-small.png"));
    await rm(join(project, ".loraspec", "dataset-pins.json"), { force: true });
    try {
      const first = prep(["--pin", "img02-small.png"]);
      expect(first.code).toBe(0);
      const cluster = (first.json.duplicates as Array<{ keep: string; drop: string[] }>).find((c) => c.drop.includes("img02.png") || c.keep === "img02-small.png");
      expect(cluster).toMatchObject({ keep: "img02-small.png", drop: ["img02.png"] });
      const stored = await readStoredPins({ projectDir: project, datasetDir: join(project, "photos") });
      expect(stored.pins.keep).toEqual(["img02-small.png"]);
      // The next prep with no --pin decides the same way, as check (which reads the same stored pins) does.
      const again = prep([]);
      expect((again.json.duplicates as Array<{ keep: string }>).map((c) => c.keep)).toEqual(["img02-small.png"]);
      // A --pin over a stored choice of the same cluster wins, and replaces it in the file.
      const back = prep(["--pin", "img02.png"]);
      expect((back.json.duplicates as Array<{ keep: string }>).map((c) => c.keep)).toEqual(["img02.png"]);
      expect((await readStoredPins({ projectDir: project, datasetDir: join(project, "photos") })).pins.keep).toEqual(["img02.png"]);
    } finally {
      await rm(join(project, "photos", "img02-small.png"), { force: true });
      await rm(join(project, ".loraspec", "dataset-pins.json"), { force: true });
    }
  });
});
