import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const root = fileURLToPath(new URL("../../..", import.meta.url));
const bin = join(root, "bin", "loraspec.mjs");
const run = (args: string[], cwd: string) => {
  const r = spawnSync(process.execPath, [bin, ...args], { cwd, encoding: "utf8", env: { ...process.env, NO_COLOR: "1" }, input: "" });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
};

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "loraspec-init-"));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe("loraspec init", () => {
  it("writes a commented lora.yaml from flags, refuses to overwrite, and overwrites with --force", async () => {
    const args = ["init", "--base", "flux1-dev", "--target", "character", "--trigger", "txcl", "--gpu", "RTX 4090", "--price-per-hour", "0.7"];
    const first = run(args, dir);
    expect(first.stderr).toBe("");
    expect(first.code).toBe(0);
    expect(first.stdout).toMatch(/next: put images and captions in \.\/dataset, then run loraspec check lora\.yaml/);
    const yaml = await readFile(join(dir, "lora.yaml"), "utf8");
    expect(yaml).toMatch(/^# yaml-language-server: \$schema=.*schema\/lora-contract\.schema\.json/);
    expect(yaml).toMatch(/source: /);
    expect(yaml).toMatch(/quantize: fp8/);
    expect(yaml).toMatch(/price_per_hour: 0\.7/);

    const again = run(args, dir);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/\[E_FILE_EXISTS\] lora\.yaml/);

    const forced = run([...args.slice(0, -4), "--force", "--target", "style"], dir);
    expect(forced.code).toBe(0);
    expect(await readFile(join(dir, "lora.yaml"), "utf8")).toMatch(/target: style/);
  });

  it("says how many images the folder already holds instead of asking for them", async () => {
    const project = await mkdtemp(join(tmpdir(), "loraspec-init-ds-"));
    try {
      await mkdir(join(project, "dataset"));
      for (let i = 0; i < 16; i++) {
        let seed = 0x9e3779b9 ^ (i * 0x85ebca6b); // xorshift32 per image: distinct noise, never near-duplicates
        const noise = Buffer.from(Array.from({ length: 64 * 64 * 3 }, () => ((seed ^= seed << 13), (seed ^= seed >>> 17), (seed ^= seed << 5), seed & 255)));
        await sharp(noise, { raw: { width: 64, height: 64, channels: 3 } }).resize(1024, 1024, { kernel: "nearest" }).png().toFile(join(project, "dataset", `${i}.png`));
      }
      const r = run(["init", "--base", "sdxl", "--target", "character", "--trigger", "txcl", "--gpu", "RTX 4090"], project);
      expect(r.stderr).toBe("");
      expect(r.stdout).toMatch(/next: run loraspec check lora\.yaml \(16 images in \.\/dataset; the steps count them\)/);
    } finally {
      await rm(project, { recursive: true, force: true });
    }
  });

  it("images below the native resolution: refused with check's reason and the --resolution that keeps them; that one writes a contract check passes", async () => {
    const project = await mkdtemp(join(tmpdir(), "loraspec-init-small-"));
    try {
      await mkdir(join(project, "dataset"));
      for (let i = 0; i < 16; i++) {
        let seed = 0x9e3779b9 ^ (i * 0x85ebca6b);
        const noise = Buffer.from(Array.from({ length: 64 * 64 * 3 }, () => ((seed ^= seed << 13), (seed ^= seed >>> 17), (seed ^= seed << 5), seed & 255)));
        await sharp(noise, { raw: { width: 64, height: 64, channels: 3 } }).png().toFile(join(project, "dataset", `${i}.png`));
      }
      const args = ["init", "--base", "sdxl", "--target", "character", "--trigger", "txcl", "--base-path", "stabilityai/stable-diffusion-xl-base-1.0"];
      const refused = run(args, project);
      expect(refused.code).toBe(2);
      expect(refused.stderr).toMatch(/\[E_USAGE\] dataset\.path: init cannot write a contract that passes check: 0 usable images in the folder .* 16 image\(s\) are too small for the 1024 px training resolution \(the base's native one\): 0\.png: 64x64 is far below/);
      expect(refused.stderr).toMatch(/fix: Pass --resolution 128 \(the largest that keeps 16 images; --resolution 64 trains them without upscaling\)/);
      expect(existsSync(join(project, "lora.yaml"))).toBe(false);
      const written = run([...args, "--resolution", "64"], project);
      expect(written.stderr).toBe("");
      expect(await readFile(join(project, "lora.yaml"), "utf8")).toMatch(/your choice \(--resolution\), below Stable Diffusion XL 1\.0's native 1024 px[^\n]*\n(?:\s*#[^\n]*\n)*\s*resolution: 64\n/);
      const check = run(["check", "--json"], project);
      expect(JSON.parse(check.stdout.trim().split("\n").pop()!)).toMatchObject({ ok: true, counts: { error: 0 } });
    } finally {
      await rm(project, { recursive: true, force: true });
    }
  });

  it.each([
    [["init", "--target", "character"], "E_USAGE", /missing --base, --trigger/],
    [["init", "--base", "flux7", "--target", "character", "--trigger", "x"], "E_UNKNOWN_BASE_MODEL", /--base: got 'flux7'/],
    [["init", "--base", "flux2-dev", "--target", "character", "--trigger", "x", "--trainer", "kohya", "-o", "k.yaml"], "E_TRAINER_UNSUPPORTED", /kohya does not train FLUX\.2 \[dev\]/],
    [["init", "--base", "sdxl", "--target", "character", "--trigger", "txcl", "--base-path", "/nope", "-o", "n.yaml"], "E_FILE_NOT_FOUND", /base\.path: --base-path '\/nope' does not exist \(\/nope\)/],
    [["init", "--base", "sdxl", "--target", "character", "--trigger", "txcl", "--resolution", "60.5", "-o", "r.yaml"], "E_USAGE", /--resolution must be a positive whole number of pixels, got '60\.5'/],
    [["init", "--base", "sdxl", "--target", "character", "--trigger", "txcl", "--trainer", "kohya", "--resolution", "1040", "-o", "r.yaml"], "E_USAGE", /--resolution is 1040: Kohya sd-scripts .* fails at its first step/],
  ])("%j -> %s without prompting when stdin is not a terminal", (args, code, message) => {
    const r = run(args, dir);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`[${code}]`);
    expect(r.stderr).toMatch(message);
  });
});
