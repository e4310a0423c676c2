import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { InitChoices } from "@loraspec/core/contract/recommend-contract.js";
import { isLoraspecError } from "@loraspec/core/errors.js";
import { initProject } from "@loraspec/engine/project/init-project.js";
import { checkProject } from "@loraspec/engine/project/check-project.js";
import { photoLike } from "../dataset/make-images.js";

// init is held to check on real folders: what init writes, check (its dataset scan and preflight, not only the lint)
// passes with no error, or init refuses with the reason and what to do. The core property test
// (core/test/contract/init-holds-to-check.spec.ts) covers the flag space with an image count; this one covers what only
// a scan sees: images too small for the resolution init writes (twenty 64x64 images and an SDXL base wrote
// `resolution: 1024`, which check's scan keeps none of).

let tmp: string;
const FOLDERS: Record<string, Array<{ side: number; n: number }>> = {
  "20 at 64x64 (the toy world's)": [{ side: 64, n: 20 }],
  "20 at 320x320 (upscaled at 1024, kept)": [{ side: 320, n: 20 }],
  "12 at 600x600 and 10 at 64x64 (enough only below 1024)": [
    { side: 600, n: 12 },
    { side: 64, n: 10 },
  ],
};
const env = () => ({ ...process.env, HF_HUB_CACHE: join(tmp, "hf-cache") });

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), "loraspec-init-check-"));
  let seed = 1;
  for (const [name, groups] of Object.entries(FOLDERS)) {
    const ds = join(tmp, slug(name), "dataset");
    await mkdir(ds, { recursive: true });
    for (const { side, n } of groups) {
      for (let i = 0; i < n; i++, seed++) {
        await photoLike(side, side, seed * 7919).png().toFile(join(ds, `${side}-${i}.png`));
        await writeFile(join(ds, `${side}-${i}.txt`), "txcl, a photo of a subject in a room");
      }
    }
  }
});
afterAll(() => rm(tmp, { recursive: true, force: true }));

function slug(s: string): string {
  return s.replace(/[^a-z0-9]+/gi, "-");
}

type Outcome = { refused: string; message: string; hint: string } | { errors: string[] };

async function initThenCheck(folder: string, choices: InitChoices): Promise<Outcome> {
  const cwd = join(tmp, slug(folder));
  const out = `lora-${Math.random().toString(36).slice(2)}.yaml`;
  try {
    await initProject({ choices, cwd, path: out });
  } catch (error) {
    if (!isLoraspecError(error)) throw error;
    expect(existsSync(join(cwd, out)), "a refusal writes nothing").toBe(false);
    return { refused: error.code, message: error.message, hint: error.hint ?? "" };
  }
  try {
    const r = await checkProject({ cwd, path: out, env: env() });
    return { errors: r.findings.filter((f) => f.severity === "error").map((f) => `${f.rule}: ${f.message}`) };
  } finally {
    await rm(join(cwd, out), { force: true });
  }
}

const BASES = ["sdxl", "flux1-dev", "qwen-image"] as const;
const TARGETS = ["character", "product", "style"] as const; // style needs 20-30 images: refused more often here
const RESOLUTIONS = [undefined, 64, 512, 1024];

describe("init is held to check's dataset scan (images below the resolution)", () => {
  const space = Object.keys(FOLDERS).flatMap((folder) =>
    BASES.flatMap((base, i) => RESOLUTIONS.map((resolution, j) => ({ folder, choices: { base, target: TARGETS[(i + j) % TARGETS.length]!, trigger: "txcl", resolution } as InitChoices }))),
  );

  it(`every contract init writes passes check, or init refuses saying why and what to pass (${space.length} folders x flags)`, async () => {
    const bad: string[] = [];
    let written = 0;
    for (const { folder, choices } of space) {
      const out = await initThenCheck(folder, choices);
      if ("errors" in out) {
        written++;
        if (out.errors.length > 0) bad.push(`${folder} ${JSON.stringify(choices)} -> ${out.errors.join("; ")}`);
      } else {
        expect(out.hint, `${folder} ${JSON.stringify(choices)}: a refusal says what to do`).not.toBe("");
      }
    }
    expect(bad.slice(0, 6)).toEqual([]);
    // Not a test that passes by refusing everything.
    expect(written).toBeGreaterThan(space.length / 3);
  });

  it.each(Object.keys(FOLDERS))("images too small for the native resolution (%s): refused with check's reason, and the --resolution it names writes a clean contract", async (folder) => {
    for (const base of BASES) {
      const choices: InitChoices = { base, target: "character", trigger: "txcl" };
      const out = await initThenCheck(folder, choices);
      if ("errors" in out) {
        expect(out.errors).toEqual([]);
        continue;
      }
      expect(out.message).toMatch(/usable images in the folder/);
      expect(out.message).toMatch(/too small for the \d+ px training resolution \(the base's native one\): \S+\.png: \d+x\d+ is far below/);
      const suggested = /Pass --resolution (\d+)/.exec(out.hint);
      expect(suggested, out.hint).not.toBeNull();
      const again = await initThenCheck(folder, { ...choices, resolution: Number(suggested![1]) });
      expect(again).toEqual({ errors: [] });
    }
  });

  it("the toy world's case: twenty 64x64 images and SDXL name --resolution 128, and 64 as the size with no upscaling", async () => {
    const out = await initThenCheck("20 at 64x64 (the toy world's)", { base: "sdxl", target: "character", trigger: "txcl" });
    expect(out).toMatchObject({ refused: "E_USAGE" });
    expect((out as { hint: string }).hint).toMatch(/^Pass --resolution 128 \(the largest that keeps 20 images; --resolution 64 trains them without upscaling\), or use images at least 512 px on the short side/);
  });
});
