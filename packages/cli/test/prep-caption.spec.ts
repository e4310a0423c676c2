import { spawn } from "node:child_process";
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { photoLike } from "../../engine/test/dataset/make-images.js";
import { startCaptionEmulator, type CaptionEmulator } from "../../engine/test/caption/caption-emulators.js";

const root = fileURLToPath(new URL("../../..", import.meta.url));
const bin = join(root, "bin", "loraspec.mjs");

// Async spawn: the caption emulator lives in this process and must keep answering.
function run(args: string[], cwd: string, env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [bin, ...args], { cwd, env: { ...process.env, NO_COLOR: "1", CI: "1", ...env } });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

let tmp: string;
let project: string;
let emulator: CaptionEmulator;

beforeAll(async () => {
  emulator = await startCaptionEmulator();
  tmp = await mkdtemp(join(tmpdir(), "loraspec-cli-prep-"));
  project = join(tmp, "project");
  await mkdir(join(project, "photos"), { recursive: true });
  for (let i = 0; i < 4; i++) await photoLike(400, 300, 100 + i).jpeg().toFile(join(project, "photos", `p${i}.jpg`));
  await writeFile(join(project, "photos", "broken.jpg"), "not a jpeg");
  await writeFile(join(project, "photos", "p0.txt"), "a photo of txcl outdoors\n");
  await writeFile(
    join(project, "lora.yaml"),
    "version: 1\nname: cli-test\nbase: { model: sdxl }\ntrainer: { name: kohya, version: v0.10.1 }\ntarget: character\ndataset: { path: ./photos, resolution: 256 }\ntrigger: { word: txcl }\n",
  );
});
afterAll(async () => {
  await emulator.close();
  await rm(tmp, { recursive: true, force: true });
});

const noStack = (s: string) => expect(s).not.toMatch(/^\s+at /m);

describe("loraspec prep and caption", () => {
  it("prep writes the prepared folder and a summary table; the bad file is reported, not fatal", async () => {
    const r = await run(["prep"], project);
    noStack(r.stderr);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/prepared now\s+4/);
    expect(r.stdout).toMatch(/broken\.jpg\s+not-an-image/);
    expect((await readdir(join(project, ".loraspec", "prepared"))).sort()).toEqual(["manifest.json", "p0.png", "p0.txt", "p1.png", "p2.png", "p3.png"]);
    const again = await run(["prep", "--json"], project);
    const done = again.stdout
      .split("\n")
      .filter((l) => l.startsWith('{"type"'))
      .map((l) => JSON.parse(l))
      .find((e) => e.type === "done");
    const summary = done.result;
    expect(summary.unchanged).toBe(4);
    expect(summary.processed).toEqual([]);
  });

  it("caption --fix puts the trigger first; caption fills the rest through the OpenAI-compatible emulator", async () => {
    const fix = await run(["caption", "--fix"], project);
    expect(fix.code).toBe(0);
    expect(await readFile(join(project, ".loraspec", "prepared", "p0.txt"), "utf8")).toBe("txcl, a photo of outdoors\n" /* the trigger moved, not repeated */);
    emulator.failEvery = 3;
    const r = await run(["caption", "--backend", "openai", "--base-url", `${emulator.url}/v1`, "--model", "tiny-vlm"], project, { OPENAI_API_KEY: "sk-cli" });
    noStack(r.stderr);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/written\s+3/);
    for (const name of ["p1", "p2", "p3"]) expect(await readFile(join(project, ".loraspec", "prepared", `${name}.txt`), "utf8")).toMatch(/^txcl, /);
    expect(emulator.requests.every((q) => q.authorization === "Bearer sk-cli")).toBe(true);
  });

  it("a second contract beside lora.yaml (c.yaml on ./d2) captions and prepares its own images, never lora.yaml's prepared folder", async () => {
    await mkdir(join(project, "d2"), { recursive: true });
    for (let i = 0; i < 2; i++) await photoLike(400, 300, 200 + i).jpeg().toFile(join(project, "d2", `q${i}.jpg`));
    await writeFile(join(project, "c.yaml"), (await readFile(join(project, "lora.yaml"), "utf8")).replace("./photos", "./d2"));
    const prepared = join(project, ".loraspec", "prepared");
    const before = (await readdir(prepared)).sort();
    const fix = await run(["caption", "c.yaml", "--fix"], project);
    expect(fix.code).toBe(0);
    expect(fix.stderr).toContain(`note: captioning ${join(project, "d2")} as it is (${prepared} was prepared from ${join(project, "photos")}, not from this dataset`);
    const r = await run(["prep", "c.yaml"], project);
    noStack(r.stderr);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(`note: ${prepared} holds ${join(project, "photos")}'s images`);
    const own = (await readdir(join(project, ".loraspec"))).filter((n) => n.startsWith("prepared-d2-"));
    expect(own).toHaveLength(1);
    expect(r.stdout).toContain(`2 images in ${join(project, ".loraspec", own[0]!)}`);
    expect((await readdir(join(project, ".loraspec", own[0]!))).sort()).toEqual(["manifest.json", "q0.png", "q1.png"]);
    expect((await readdir(prepared)).sort()).toEqual(before);
    const check = await run(["check", "c.yaml", "--json"], project);
    expect(JSON.parse(check.stdout).notes.join("\n")).not.toContain("not prepared");
  });

  it("usage mistakes exit 2 with one clear line", async () => {
    const r = await run(["prep", "--aspect", "round"], project);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--aspect must be one of square, buckets/);
    noStack(r.stderr);
    const nothing = await run(["caption", "--backend", "openai"], tmp);
    expect(nothing.code).toBe(2);
    expect(nothing.stderr).toMatch(/needs --dir and --trigger/);
  });
});
