import { spawn } from "node:child_process";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { existsSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { listDatasetFiles } from "@loraspec/engine/dataset/list-dataset-files.js";
import { photoLike } from "../../engine/test/dataset/make-images.js";

/**
 * Fault injection: `loraspec prep` SIGKILLed while it decodes (nothing of it can clean up) leaves its staging folder
 * (.loraspec/prepared/.prep-staging) behind. What is on disk decides: check counts and says what it said before the
 * kill, never the leftover's images; caption's listing of the prepared folder does not see it; the next prep clears
 * it and ends with the prepared folder a clean run makes.
 */

const root = fileURLToPath(new URL("../../..", import.meta.url));
const bin = join(root, "bin", "loraspec.mjs");
const env = { ...process.env, NO_COLOR: "1", CI: "1", OMP_NUM_THREADS: "1" };

function run(args: string[], cwd: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((done) => {
    const child = spawn(process.execPath, [bin, ...args], { cwd, env });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    child.on("close", (code) => done({ code, stdout, stderr }));
  });
}

/** Spawns prep and SIGKILLs it as soon as its staging folder holds a decoded image; resolves once it is dead. */
function prepKilledMidRun(cwd: string, staging: string): Promise<{ signal: NodeJS.Signals | null; staged: string[] }> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [bin, "prep", "--no-embed", "--concurrency", "1"], { cwd, env, stdio: "ignore" });
    let staged: string[] = [];
    const poll = setInterval(() => {
      staged = existsSync(staging) ? readdirSafe(staging) : [];
      if (staged.some((f) => f.endsWith(".png"))) {
        clearInterval(poll);
        child.kill("SIGKILL");
      }
    }, 5);
    child.on("exit", (_code, signal) => {
      clearInterval(poll);
      if (signal !== "SIGKILL") fail(new Error(`prep ended (${_code}) before it was killed: make the dataset slower to prepare`));
      else done({ signal, staged });
    });
  });
}

function readdirSafe(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/** check --json without what changes run to run. */
async function check(cwd: string) {
  const r = await run(["check", "--json"], cwd);
  const json = JSON.parse(r.stdout) as { counts: Record<string, number>; images: number; findings: Array<{ rule: string; message: string; files?: string[] }> };
  return { code: r.code, counts: json.counts, images: json.images, findings: json.findings.map((f) => ({ rule: f.rule, message: f.message, files: f.files })) };
}

let tmp: string;
let project: string;
const prepared = () => join(project, ".loraspec", "prepared");

async function addImages(from: number, to: number): Promise<void> {
  // Small photo-like images scaled up: each one takes prep a real decode and resize, and no two are near duplicates.
  for (let i = from; i < to; i++) await photoLike(160, 120, 500 + i).resize(1600, 1200).jpeg({ quality: 90 }).toFile(join(project, "photos", `p${String(i).padStart(2, "0")}.jpg`));
}

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), "loraspec-prep-killed-"));
  project = join(tmp, "project");
  await mkdir(join(project, "photos"), { recursive: true });
  await addImages(0, 6);
  await writeFile(join(project, "photos", "p00.txt"), "a photo of txcl\n");
  await writeFile(
    join(project, "lora.yaml"),
    "version: 1\nname: killed\nbase: { model: sdxl }\ntrainer: { name: kohya, version: v0.10.1 }\ntarget: character\ndataset: { path: ./photos, resolution: 256 }\ntrigger: { word: txcl }\n",
  );
}, 120_000);
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe("prep SIGKILLed mid-run", () => {
  it("the first prep killed: check counts the dataset as before, and the next prep completes", async () => {
    const before = await check(project);
    const killed = await prepKilledMidRun(project, join(prepared(), ".prep-staging"));
    expect(killed.signal).toBe("SIGKILL");
    expect(existsSync(join(prepared(), "manifest.json"))).toBe(false);
    expect(await check(project)).toEqual(before);
    const again = await run(["prep", "--no-embed"], project);
    expect(again.code, again.stderr).toBe(0);
    expect((await readdir(prepared())).sort()).toEqual(["manifest.json", "p00.png", "p00.txt", "p01.png", "p02.png", "p03.png", "p04.png", "p05.png"]);
  }, 180_000);

  it("a re-prep killed after images were added: check says the same (stale, naming them), and the next prep makes what a clean run makes", async () => {
    await addImages(6, 18);
    const manifestBefore = await readFile(join(prepared(), "manifest.json"), "utf8");
    const before = await check(project);
    expect(before.findings.find((f) => f.rule === "dataset-prepared-stale")?.files).toHaveLength(12);
    const killed = await prepKilledMidRun(project, join(prepared(), ".prep-staging"));
    expect(killed.staged.length).toBeLessThan(12);
    // The kill left the staging folder; the prepared folder and its manifest are as they were.
    expect(existsSync(join(prepared(), ".prep-staging"))).toBe(true);
    expect(await readFile(join(prepared(), "manifest.json"), "utf8")).toBe(manifestBefore);
    const after = await check(project);
    expect(after).toEqual(before);
    expect(after.images).toBe(6);
    expect(JSON.stringify(after.findings)).not.toContain(".prep-staging");
    // The one listing the trainers' copies (kohya, ai-toolkit), fal's ZIP and caption read a folder by: the leftover is
    // not an image there, nor a hidden file to warn about (the built-in trainer lists the folder itself, names with "." left out).
    const listed = await listDatasetFiles({ dir: prepared() });
    expect(listed.images).toEqual(["p00.png", "p01.png", "p02.png", "p03.png", "p04.png", "p05.png"]);
    expect(listed.hidden).toEqual([]);

    const again = await run(["prep", "--no-embed", "--json"], project);
    expect(again.code, again.stderr).toBe(0);
    const clean = await run(["prep", "--no-embed", "--json", "--out", join(tmp, "clean")], project);
    expect(clean.code, clean.stderr).toBe(0);
    const listing = async (dir: string) => (await readdir(dir)).sort();
    expect(await listing(prepared())).toEqual(await listing(join(tmp, "clean")));
    expect(await listing(prepared())).not.toContain(".prep-staging");
    const entries = async (dir: string) => (JSON.parse(await readFile(join(dir, "manifest.json"), "utf8")) as { entries: unknown[] }).entries;
    expect(await entries(prepared())).toEqual(await entries(join(tmp, "clean")));
    for (const name of await listing(prepared())) {
      if (name.endsWith(".png")) expect(await readFile(join(prepared(), name))).toEqual(await readFile(join(tmp, "clean", name)));
    }
    const done = await check(project);
    expect(done.findings.map((f) => f.rule)).not.toContain("dataset-prepared-stale");
    expect(done.images).toBe(18);
  }, 300_000);
});
