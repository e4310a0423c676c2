import { spawnSync } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { photoLike } from "../../engine/test/dataset/make-images.js";

const bin = join(fileURLToPath(new URL("../../..", import.meta.url)), "bin", "loraspec.mjs");
let project: string;
const latin1 = Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x0a]); // "café" in Latin-1
const huge = "a ".repeat(50_000); // 100 KB: more than a caption can be

beforeAll(async () => {
  project = await mkdtemp(join(tmpdir(), "loraspec-fix-unread-"));
  await mkdir(join(project, "ds"));
  for (let i = 0; i < 3; i++) await photoLike(96, 96, 300 + i).png().toFile(join(project, "ds", `p${i}.png`));
  await writeFile(join(project, "ds", "p0.txt"), latin1);
  await writeFile(join(project, "ds", "p1.txt"), huge);
  await writeFile(join(project, "ds", "p2.txt"), "a photo of txcl\n");
  await writeFile(join(project, "lora.yaml"), "version: 1\nname: t\nbase: { model: sdxl }\ntrainer: { name: kohya, version: v0.10.1 }\ntarget: character\ndataset: { path: ./ds, resolution: 256 }\ntrigger: { word: txcl }\n");
});
afterAll(() => rm(project, { recursive: true, force: true }));

describe("caption --fix with captions it cannot read", () => {
  it("names each one's reason and counts them as not read (not all as 'not UTF-8'); their bytes stay", async () => {
    const r = spawnSync(process.execPath, [bin, "caption", "--fix"], { cwd: project, encoding: "utf8", env: { ...process.env, NO_COLOR: "1", CI: "1" } });
    expect(r.status).toBe(0);
    expect(r.stderr).toMatch(/p0\.txt: not UTF-8 text/);
    expect(r.stderr).toMatch(/p1\.txt: .*more than a caption can be/);
    expect(r.stdout).toContain("✓ trigger first in 1 caption(s)");
    expect(r.stdout).toContain("2 not read (not UTF-8 or too large: each named above), left as they are");
    expect(r.stdout).not.toContain("2 not UTF-8");
    expect(await readFile(join(project, "ds", "p0.txt"))).toEqual(latin1);
    expect(await readFile(join(project, "ds", "p1.txt"), "utf8")).toBe(huge);
  });
});
