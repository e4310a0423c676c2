import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { aiToolkitBucket } from "@loraspec/core/plan/ai-toolkit-bucket.js";
import { photoLike } from "../../engine/test/dataset/make-images.js";

const root = fileURLToPath(new URL("../../..", import.meta.url));
const bin = join(root, "bin", "loraspec.mjs");
const SIZES = [
  { width: 600, height: 400 },
  { width: 300, height: 470 },
  { width: 333, height: 333 },
];

let project: string;
beforeAll(async () => {
  project = mkdtempSync(join(tmpdir(), "loraspec-cli-prepshapes-"));
  mkdirSync(join(project, "photos"));
  for (const [k, s] of SIZES.entries()) await photoLike(s.width, s.height, 40 + k).png().toFile(join(project, "photos", `p${k}.png`));
});
afterAll(() => rmSync(project, { recursive: true, force: true }));

const prep = (trainer: string) => {
  writeFileSync(
    join(project, "lora.yaml"),
    `version: 1\nname: cli-test\nbase: { model: flux1-dev }\ntrainer: { name: ${trainer} }\ntarget: character\ndataset: { path: ./photos, resolution: 384, aspect: buckets, buckets: { min_side: 128, max_side: 768, step: 64 } }\ntrigger: { word: txcl }\n`,
  );
  execFileSync(process.execPath, [bin, "prep", "--json", "--no-embed"], { cwd: project, env: { ...process.env, NO_COLOR: "1", CI: "1" } });
  const manifest = JSON.parse(readFileSync(join(project, ".loraspec", "prepared", "manifest.json"), "utf8")) as { settings: Record<string, unknown>; entries: Array<{ source: string; outputWidth: number; outputHeight: number }> };
  return { settings: manifest.settings, sizes: Object.fromEntries(manifest.entries.map((e) => [e.source, `${e.outputWidth}x${e.outputHeight}`])) };
};

describe("loraspec prep cuts each image to the shape the contract's trainer trains it at", () => {
  it("ai-toolkit FLUX.1: its own pick on 32 px (not core's set on dataset.buckets.step); Kohya: core's set", () => {
    const at = prep("ai-toolkit");
    expect(at.settings.shapes).toBe("ai-toolkit, divisibility 32");
    expect(at.sizes).toEqual(Object.fromEntries(SIZES.map((s, k) => [`p${k}.png`, ((b) => `${b.width}x${b.height}`)(aiToolkitBucket(s.width, s.height, 384, 32))])));
    const kohya = prep("kohya");
    expect(kohya.settings.shapes).toBeUndefined();
    expect((kohya.settings.buckets as string[]).length).toBeGreaterThan(1);
    for (const size of Object.values(kohya.sizes)) expect(kohya.settings.buckets).toContain(size);
    // The two differ for these sizes: the fix is visible at the command.
    expect(at.sizes).not.toEqual(kohya.sizes);
  });
});
