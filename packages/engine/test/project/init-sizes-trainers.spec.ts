import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { InitChoices } from "@loraspec/core/contract/recommend-contract.js";
import { ContractSchema } from "@loraspec/core/contract/schema.js";
import { getBaseModel } from "@loraspec/core/knowledge/base-models.js";
import { SIZE_PROBLEM_CODES } from "@loraspec/engine/dataset/probe-image.js";
import { SMALL_IMAGE_RATIO } from "@loraspec/engine/dataset/prep-knowledge.js";
import { scanShapes } from "@loraspec/engine/dataset/prep-shapes.js";
import { initProject } from "@loraspec/engine/project/init-project.js";
import { checkProject } from "@loraspec/engine/project/check-project.js";
import { photoLike } from "../dataset/make-images.js";
import { runPrep } from "../dataset/trainer-prep.js";

// init judges the folder's image sizes as prep and check will for the contract it writes: per trainer (Kohya, ai-toolkit,
// the built-in trainer, fal) and image size, what init says prep leaves out by size (result.sizes.skipped: too-small)
// and keeps with a size warning (upscaled, far-below-resolution, trains-at-own-size) is what `loraspec prep` of that
// contract leaves out and warns about, and what check's dataset-skipped finding names. init used to scan with no rule
// (a square) whatever the trainer; it now reads the rule from the contract it writes (scanShapes, check's own).

const BIG = 10; // product: at least 10 images (knowledge/recipes.ts), all at or above the resolution
const sizesAt = (r: number) => {
  const half = r * SMALL_IMAGE_RATIO.value.skip;
  return [
    ...Array.from({ length: BIG }, (_, i) => ({ name: `big-${i}`, width: r + 32 * (i % 3), height: r })),
    { name: "below-square", width: half - 1, height: half - 1 },
    { name: "below-tall", width: half - 1, height: half + 40 },
    { name: "at-half", width: half, height: half + 8 },
    { name: "mid", width: Math.round(r * 0.75), height: Math.round(r * 0.75) },
  ];
};
/** The images under half the resolution: prep upscales them over 2x where it scales an image up to its shape. */
const BELOW = ["below-square.png", "below-tall.png"];

const CASES: Array<{ label: string; choices: Omit<InitChoices, "target" | "trigger" | "dataset"> }> = [
  { label: "kohya sdxl 256", choices: { base: "sdxl", trainer: "kohya", resolution: 256 } },
  { label: "ai-toolkit flux1 256", choices: { base: "flux1-dev", trainer: "ai-toolkit", resolution: 256 } },
  { label: "ai-toolkit sdxl 256", choices: { base: "sdxl", trainer: "ai-toolkit", resolution: 256 } },
  { label: "ai-toolkit qwen-image 256", choices: { base: "qwen-image", trainer: "ai-toolkit", resolution: 256 } },
  { label: "built-in (diffusers) sdxl 256", choices: { base: "sdxl", trainer: "diffusers", resolution: 256 } },
  { label: "default trainer flux1 256", choices: { base: "flux1-dev", resolution: 256 } },
  // fal takes no resolution: check and prep judge at the base's native one.
  { label: "fal flux1 (native 1024)", choices: { base: "flux1-dev", trainer: "fal" } },
];

let tmp: string;
const folder = (r: number) => join(tmp, `d${r}`);
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), "loraspec-init-sizes-"));
  for (const r of [256, 1024]) {
    await mkdir(folder(r), { recursive: true });
    for (const [k, s] of sizesAt(r).entries()) {
      await photoLike(s.width, s.height, 9100 + 37 * k).png({ compressionLevel: 1 }).toFile(join(folder(r), `${s.name}.png`));
      await writeFile(join(folder(r), `${s.name}.txt`), "txcl, a product on a table");
    }
  }
});
afterAll(() => rm(tmp, { recursive: true, force: true }));

const bySize = (code: string) => (SIZE_PROBLEM_CODES as readonly string[]).includes(code);

describe("init judges image sizes as prep and check do for the contract it writes (trainer x size)", () => {
  it.each(CASES.map((c) => [c.label, c] as const))("%s", async (label, c) => {
    const cwd = join(tmp, label.replace(/\W+/g, "-"));
    await mkdir(cwd, { recursive: true });
    const r = c.choices.resolution ?? getBaseModel(c.choices.base)!.nativeResolution;
    const choices: InitChoices = { ...c.choices, target: "product", trigger: "txcl", dataset: `../d${r}` };
    const init = await initProject({ choices, cwd, path: "lora.yaml" });
    const contract = ContractSchema.parse(parse(await readFile(join(cwd, "lora.yaml"), "utf8")));
    const resolution = contract.dataset.resolution ?? getBaseModel(contract.base.model)!.nativeResolution;
    expect(resolution, label).toBe(r);

    // prep of the written contract, as the CLI runs it (prepShapes from the contract's own dataset.aspect).
    const prep = await runPrep({ datasetDir: folder(r), outDir: join(cwd, "prepared"), contract, aspect: contract.dataset.aspect, resolution });
    const rows = (xs: Array<{ file: string; code: string; message: string }>) => xs.map((x) => `${x.file} ${x.code}: ${x.message}`).sort();
    const prepSkipped = rows(prep.skipped.filter((s) => bySize(s.code)).map((s) => ({ ...s, file: s.source })));
    const prepWarned = rows(prep.warnings.filter((w) => bySize(w.code)).map((w) => ({ ...w, file: w.source })));
    expect(rows(init.sizes!.skipped), `${label}: init's left-out == prep's`).toEqual(prepSkipped);
    expect(rows(init.sizes!.warnings), `${label}: init's kept-with-warning == prep's`).toEqual(prepWarned);
    expect(init.imageCount, `${label}: init's count == prep's outputs`).toBe(prep.outputs);

    // check of the written contract: its dataset-skipped finding names the same files, its scan counts the same images.
    const checked = await checkProject({ cwd, path: "lora.yaml", env: { ...process.env, HF_HUB_CACHE: join(tmp, "hf-cache") } });
    const flagged = checked.findings.find((f) => f.rule === "dataset-skipped")?.files ?? [];
    expect([...flagged].sort(), `${label}: check's dataset-skipped == init's left-out`).toEqual(init.sizes!.skipped.map((s) => s.file).sort());
    expect(checked.dataset?.images.length, label).toBe(init.imageCount);

    // The table's expectation, from the rule the contract's trainer shapes by: only ai-toolkit's own picker (bucketed)
    // keeps an image under half the resolution. init writes dataset.aspect: square, where every trainer (ai-toolkit's
    // buckets: false included: CenterCrop then resize to resolution x resolution) scales it up over 2x: left out.
    const keepsSmall = scanShapes(contract, resolution)?.picker === "ai-toolkit";
    expect(contract.dataset.aspect, label).toBe("square");
    const left = init.sizes!.skipped.map((s) => s.file).sort();
    expect(left, label).toEqual(keepsSmall ? [] : BELOW);
    if (!keepsSmall) for (const s of init.sizes!.skipped) expect(s.code, label).toBe("too-small");
    const warned = init.sizes!.warnings.map((w) => `${w.file} ${w.code}`).sort();
    expect(warned, label).toEqual(
      keepsSmall
        ? [...BELOW.map((f) => `${f} far-below-resolution`), "at-half.png trains-at-own-size", "mid.png trains-at-own-size"].sort()
        : ["at-half.png upscaled", "mid.png upscaled"],
    );
  });
});
