import { cp, mkdir, mkdtemp, readFile, rm, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ContractSchema, type Contract } from "@loraspec/core/contract/schema.js";
import { preflightBase } from "@loraspec/engine/project/preflight-base.js";
import { checkProject } from "@loraspec/engine/project/check-project.js";

const root = fileURLToPath(new URL("../../../..", import.meta.url));
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "loraspec-preflight-"));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

/** A .safetensors file with these tensor names (one bf16 element each): only the header matters. */
async function safetensors(path: string, names: string[]): Promise<void> {
  const header: Record<string, unknown> = {};
  names.forEach((n, i) => (header[n] = { dtype: "BF16", shape: [1], data_offsets: [i * 2, i * 2 + 2] }));
  const json = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  await writeFile(path, Buffer.concat([len, json, Buffer.alloc(names.length * 2)]));
}

async function folder(name: string, files: Record<string, string>): Promise<string> {
  const p = join(dir, name);
  await mkdir(p, { recursive: true });
  for (const [f, text] of Object.entries(files)) {
    await mkdir(join(p, f, ".."), { recursive: true });
    await writeFile(join(p, f), text);
  }
  return p;
}

const contractFor = (model: string, path?: string, trainer = "diffusers"): Contract =>
  ContractSchema.parse({ version: 1, name: "x", base: { model, path }, trainer: { name: trainer }, target: "character", dataset: { path: "./d" }, trigger: { word: "txcl" } });
const rules = async (model: string, path?: string, env: NodeJS.ProcessEnv = { HF_HUB_CACHE: join(dir, "empty-cache") }, trainer = "diffusers") =>
  (await preflightBase({ contract: contractFor(model, path, trainer), contractDir: dir, env })).map((f) => `${f.severity} ${f.rule}`);
/** The architecture's findings only (which trainer loads which form: base-load-forms.spec.ts). */
const archRules = async (model: string, path: string) => (await rules(model, path)).filter((r) => /base-(architecture|weights)/.test(r));

describe("preflightBase", () => {
  it("a missing local path is an error naming base.path", async () => {
    expect(await rules("flux1-dev", "./nowhere")).toEqual(["error base-weights-missing"]);
  });

  it.each([
    ["FluxPipeline", "flux1-dev", []],
    ["FluxPipeline", "flux1-schnell", []],
    ["FluxPipeline", "flux2-dev", ["error base-architecture-mismatch"]],
    ["Flux2KleinPipeline", "flux2-klein-4b", []],
    ["Flux2KleinPipeline", "flux2-dev", ["error base-architecture-mismatch"]],
    ["StableDiffusionXLPipeline", "sdxl", []],
    ["StableDiffusionXLPipeline", "flux1-dev", ["error base-architecture-mismatch"]],
    ["QwenImagePipeline", "qwen-image", []],
    ["ZImagePipeline", "zimage-turbo", []],
    ["SomeOtherPipeline", "sdxl", ["info base-architecture-unknown"]],
  ])("a diffusers folder of %s as %s -> %j", async (cls, model, want) => {
    const p = await folder(`pipe-${cls}-${model}`, { "model_index.json": JSON.stringify({ _class_name: cls }) });
    expect(await rules(model, p)).toEqual(want);
  });

  it("reads the denoiser's config.json when there is no model_index.json", async () => {
    const p = await folder("transformer-only", { "transformer/config.json": JSON.stringify({ _class_name: "FluxTransformer2DModel" }), "transformer/diffusion_pytorch_model.safetensors": "" });
    expect(await rules("sdxl", p)).toEqual(["error base-architecture-mismatch"]);
    // ai-toolkit loads <folder>/transformer; the built-in trainer's loader needs model_index.json.
    // ... and its text encoders and VAE from the HF repo, as there is no text_encoder/.
    expect(await rules("flux1-dev", p, undefined, "ai-toolkit")).toEqual(["info base-weights-download", "warning validation-base-not-diffusers"]);
    expect(await rules("flux1-dev", p)).toEqual(["error base-load-form"]);
  });

  it.each([
    ["BFL FLUX.1", ["double_blocks.0.img_mod.lin.weight", "single_blocks.0.linear1.weight"], "flux1-dev", []],
    ["BFL FLUX.1", ["double_blocks.0.img_mod.lin.weight", "single_blocks.0.linear1.weight"], "sdxl", ["error base-architecture-mismatch"]],
    ["SDXL checkpoint", ["model.diffusion_model.input_blocks.0.0.weight", "conditioner.embedders.1.model.ln_final.weight"], "flux1-dev", ["error base-architecture-mismatch"]],
    ["SD3.5", ["model.diffusion_model.joint_blocks.0.x_block.attn.qkv.weight"], "sd35-large", []],
    ["unknown keys", ["foo.weight"], "flux1-dev", ["info base-architecture-unknown"]],
  ])("a single file (%s) as %s", async (name, keys, model, want) => {
    const p = join(dir, `${name.replaceAll(" ", "_")}-${model}.safetensors`);
    await safetensors(p, keys);
    expect(await archRules(model, p)).toEqual(want);
  });

  it("the built-in trainer refuses a single file without the pipeline's text encoders and VAE (a BFL transformer file)", async () => {
    const p = join(dir, "bfl-transformer.safetensors");
    await safetensors(p, ["double_blocks.0.img_mod.lin.weight", "single_blocks.0.linear1.weight"]);
    expect(await rules("flux1-dev", p)).toEqual(["error base-load-form"]);
  });

  it("an SDXL checkpoint holding the whole pipeline: the built-in trainer loads it, fetching the repo's configs (a note when not cached)", async () => {
    const p = join(dir, "sdxl-whole.safetensors");
    await safetensors(p, ["model.diffusion_model.input_blocks.0.0.weight", "first_stage_model.decoder.conv_in.weight", "conditioner.embedders.0.transformer.text_model.final_layer_norm.weight", "conditioner.embedders.1.model.ln_final.weight"]);
    expect(await rules("sdxl", p)).toEqual(["info base-weights-download"]);
    // Kohya's SDXL script reads the checkpoint itself.
    expect(await rules("sdxl", p, undefined, "kohya")).toEqual([]);
    const unet = join(dir, "sdxl-unet-only.safetensors");
    await safetensors(unet, ["model.diffusion_model.input_blocks.0.0.weight", "conditioner.embedders.1.model.ln_final.weight"]);
    expect(await rules("sdxl", unet)).toEqual(["error base-load-form"]);
  });

  it("a Kohya-style folder of single files: the largest is the denoiser", async () => {
    const p = await folder("kohya-flux", {});
    await safetensors(join(p, "flux1-dev.safetensors"), ["double_blocks.0.img_mod.lin.weight", ...Array.from({ length: 50 }, (_, i) => `single_blocks.${i}.linear1.weight`)]);
    await safetensors(join(p, "ae.safetensors"), ["decoder.conv_in.weight"]);
    expect(await archRules("flux1-dev", p)).toEqual([]);
    expect(await rules("flux2-klein-9b", p)).toEqual(["error base-architecture-mismatch"]);
    // kohya is handed each role's file: clip_l and t5xxl are not there.
    expect(await rules("flux1-dev", p, undefined, "kohya")).toEqual(["error base-files-missing", "warning validation-base-not-diffusers"]);
  });

  it("a 3 GB model_index.json (sparse) is an error naming it, not read", async () => {
    const p = await folder("huge-index", { "model_index.json": "{" });
    await truncate(join(p, "model_index.json"), 3 * 1024 ** 3);
    const [finding] = await preflightBase({ contract: contractFor("flux1-dev", p), contractDir: dir, env: { HF_HUB_CACHE: join(dir, "empty-cache") } });
    expect(finding).toMatchObject({ rule: "base-weights-unreadable", severity: "error", field: "base.path" });
    expect(finding!.message).toContain("model_index.json is 3.0 GiB, more than a model config can be (at most 1.0 MiB); it was not read");
  });

  it("a folder with nothing to read is an error, not a pass", async () => {
    const p = await folder("empty-base", { "README.md": "hi" });
    expect(await rules("flux1-dev", p)).toEqual(["error base-weights-unreadable"]);
  });

  it("an HF id: a note when not cached, the architecture checked when it is", async () => {
    expect(await rules("flux1-dev")).toEqual(["info base-weights-download"]);
    const cache = join(dir, "hf-cache");
    const repo = join(cache, "models--black-forest-labs--FLUX.1-dev");
    await mkdir(join(repo, "refs"), { recursive: true });
    await writeFile(join(repo, "refs", "main"), "abc123\n");
    await folder("hf-cache/models--black-forest-labs--FLUX.1-dev/snapshots/abc123", { "model_index.json": JSON.stringify({ _class_name: "FluxPipeline" }) });
    expect(await rules("flux1-dev", undefined, { HF_HUB_CACHE: cache })).toEqual([]);
    expect(await rules("flux2-dev", "black-forest-labs/FLUX.1-dev", { HF_HUB_CACHE: cache })).toEqual(["error base-architecture-mismatch"]);
    expect(await rules("flux1-dev", undefined, { HF_HOME: join(dir, "nohome") })).toEqual(["info base-weights-download"]);
  });

  it("fal: no note that a run downloads the base (fal trains on its own copy); validate's local worker sampler is named instead", async () => {
    const env = { HF_HUB_CACHE: join(dir, "empty-cache") };
    const fal = (sampler: string) =>
      ContractSchema.parse({ version: 1, name: "x", base: { model: "flux1-dev" }, trainer: { name: "fal" }, hardware: { kind: "fal" }, target: "character", dataset: { path: "./d" }, trigger: { word: "txcl" }, validation: { sampler } });
    const [note, ...rest] = await preflightBase({ contract: fal("worker"), contractDir: dir, env });
    expect(rest).toEqual([]);
    expect([note!.rule, note!.field]).toEqual(["base-weights-download", "validation.sampler"]);
    expect(note!.message).not.toMatch(/first run downloads/);
    expect(note!.message).toMatch(/fal trains on its own copy/);
    expect(await preflightBase({ contract: fal("fal"), contractDir: dir, env })).toEqual([]);
  });

  /**
   * fal with a local base.path that is not there (or holds another model): check said "the run would fail when the
   * trainer loads the base", untrue for a hosted trainer (fal trains on its own copy). It is a warning naming base.path
   * that says fal ignores it and only validate's local renders load it; nothing at all with validation.sampler: fal.
   * Lint says base.path is not used by fal either way, with a fix for each sampler.
   */
  it("fal with a local base.path: fal ignores it; only validate's worker sampler loads it (a warning naming base.path)", async () => {
    const env = { HF_HUB_CACHE: join(dir, "empty-cache") };
    const sdxl = await folder("fal-sdxl-pipe", { "model_index.json": JSON.stringify({ _class_name: "StableDiffusionXLPipeline" }) });
    const fal = (path: string, sampler: string) =>
      ContractSchema.parse({ version: 1, name: "x", base: { model: "flux1-dev", path }, trainer: { name: "fal" }, hardware: { kind: "fal" }, target: "character", dataset: { path: "./d" }, trigger: { word: "txcl" }, validation: { sampler } });
    for (const [path, rule] of [["./nowhere", "base-weights-missing"], [sdxl, "base-architecture-mismatch"]] as const) {
      const found = await preflightBase({ contract: fal(path, "worker"), contractDir: dir, env });
      expect(found.map((f) => [f.rule, f.severity, f.field])).toEqual([[rule, "warning", "base.path"]]);
      expect(found[0]!.message).not.toMatch(/the trainer|the run would fail/);
      expect(found[0]!.message).toMatch(rule === "base-weights-missing" ? /fal trains on its own copy of the base and ignores base\.path, but `loraspec validate` renders locally/ : /validate's local renders/);
      expect(await preflightBase({ contract: fal(path, "fal"), contractDir: dir, env })).toEqual([]);
    }
    const { lintContract } = await import("@loraspec/core/lint/lint-contract.js");
    for (const sampler of ["worker", "fal"]) {
      const ignored = lintContract(fal("./nowhere", sampler)).filter((f) => f.rule === "trainer-ignores-field" && f.field === "base.path");
      expect(ignored.map((f) => f.severity)).toEqual(["warning"]);
      expect(ignored[0]!.message).toMatch(sampler === "worker" ? /only `loraspec validate`'s local renders \(validation\.sampler: worker\) load base\.path/ : /nothing else loads base\.path/);
    }
  });
});

describe("check counts the images prep keeps", () => {
  it("twenty 8x8 images: every one skipped, an error before any run", async () => {
    const p = join(dir, "tiny-project");
    await mkdir(join(p, "dataset"), { recursive: true });
    const png = await sharp({ create: { width: 8, height: 8, channels: 3, background: "#888" } }).png().toBuffer();
    for (let i = 0; i < 20; i++) {
      await writeFile(join(p, "dataset", `img${i}.png`), png);
      await writeFile(join(p, "dataset", `img${i}.txt`), "txcl, a woman");
    }
    await writeFile(join(p, "lora.yaml"), await readFile(join(root, "examples", "character", "lora.yaml"), "utf8"));
    const r = await checkProject({ cwd: p, env: { HF_HUB_CACHE: join(dir, "empty-cache") } });
    const errs = r.findings.filter((f) => f.severity === "error").map((f) => f.rule);
    expect(errs).toContain("dataset-below-minimum");
    expect(r.findings.find((f) => f.rule === "dataset-skipped")?.message).toMatch(/prep will leave out 20 file\(s\)/);
  });

  it("the example dataset keeps all 20", async () => {
    const p = join(dir, "example");
    await cp(join(root, "examples", "character"), p, { recursive: true });
    const r = await checkProject({ cwd: p, env: { HF_HUB_CACHE: join(dir, "empty-cache") } });
    expect(r.findings.map((f) => f.rule)).not.toContain("dataset-skipped");
    expect(r.findings.filter((f) => f.severity === "error")).toEqual([]);
  });
});
