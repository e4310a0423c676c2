import { describe, expect, it } from "vitest";
import { parse as parseToml } from "smol-toml";
import { compileKohya } from "@loraspec/core/compile/kohya/compile-kohya.js";
import { KOHYA_SCRIPT_FLAGS } from "@loraspec/core/trainers/pins.js";
import { KOHYA_IGNORED_TOGETHER } from "@loraspec/core/compile/kohya/kohya-profiles.js";
import { BASE_MODEL_IDS, type BaseModelId } from "@loraspec/core/knowledge/base-models.js";
import { isLoraspecError } from "@loraspec/core/errors.js";
import { makeContract, PATHS, TARGETS } from "./contract-fixture.js";
import { expectGolden } from "./golden.js";

const BASES: Array<{ base: BaseModelId; path?: string }> = [
  { base: "sdxl" },
  { base: "flux1-dev", path: "/models/flux1-dev" },
  { base: "flux1-schnell", path: "/models/flux1-schnell/flux1-schnell.safetensors" },
];

function flatten(toml: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(parseToml(toml))) {
    if (v && typeof v === "object" && !Array.isArray(v)) Object.assign(out, v);
    else out[k] = v;
  }
  return out;
}

describe("compileKohya goldens", () => {
  for (const { base, path } of BASES) {
    for (const target of TARGETS) {
      it(`${base} x ${target}`, () => {
        const contract = makeContract({ base, target, trainer: "kohya", path });
        const out = compileKohya(contract, {}, PATHS);
        const name = `kohya/${base}-${target}`;
        expectGolden(`${name}.dataset.toml`, out.datasetToml);
        expectGolden(`${name}.args.toml`, out.argsToml);
        expectGolden(`${name}.command.json`, `${JSON.stringify(out.command, null, 2)}\n`);
      });
    }
  }
});

describe("compileKohya", () => {
  // sd-scripts logs a warning and ignores min/max_bucket_reso when bucket_no_upscale is set (train_util.py L1020-1034).
  it.each(BASES.flatMap(({ base, path }) => TARGETS.map((target) => ({ base, path, target }))))(
    "$base x $target: no dataset option that sd-scripts would ignore because of another",
    ({ base, path, target }) => {
      const out = compileKohya(makeContract({ base, target, trainer: "kohya", path }), {}, PATHS);
      const ds = (parseToml(out.datasetToml) as { datasets: Array<Record<string, unknown>> }).datasets[0]!;
      for (const rule of KOHYA_IGNORED_TOGETHER.rules) {
        if (ds[rule.when] === true) expect(rule.ignores.filter((k) => k in ds)).toEqual([]);
      }
    },
  );

  it.each(BASES)("writes only options $base's pinned script accepts", ({ base, path }) => {
    const out = compileKohya(makeContract({ base, target: "character", trainer: "kohya", path }), {}, PATHS);
    const flags = KOHYA_SCRIPT_FLAGS.scripts[out.script];
    const keys = Object.keys(flatten(out.argsToml));
    expect(keys.filter((k) => !(k in flags))).toEqual([]);
    expect(keys).not.toContain("text_encoder_lr1");
    expect(keys).not.toContain("text_encoder_lr2");
  });

  it("sets FLUX dev guidance 1.0, the lora_flux module and the three extra model files", () => {
    const out = compileKohya(makeContract({ base: "flux1-dev", target: "character", trainer: "kohya", path: "/m/flux" }), {}, PATHS);
    const args = flatten(out.argsToml);
    expect(out.script).toBe("flux_train_network.py");
    expect(args).toMatchObject({
      guidance_scale: 1,
      network_module: "networks.lora_flux",
      pretrained_model_name_or_path: "/m/flux/flux1-dev.safetensors",
      ae: "/m/flux/ae.safetensors",
      clip_l: "/m/flux/clip_l.safetensors",
      t5xxl: "/m/flux/t5xxl_fp16.safetensors",
      save_every_n_steps: 250,
      save_state: true,
      max_train_steps: 1500,
    });
  });

  it("puts caption_extension .txt explicitly into the dataset subset", () => {
    const out = compileKohya(makeContract({ base: "sdxl", target: "style", trainer: "kohya" }), {}, PATHS);
    const ds = parseToml(out.datasetToml) as { datasets: Array<{ subsets: Array<Record<string, unknown>>; enable_bucket: boolean }> };
    expect(ds.datasets[0]?.subsets[0]).toMatchObject({ caption_extension: ".txt", image_dir: PATHS.datasetDir, class_tokens: "txcl" });
    expect(ds.datasets[0]?.enable_bucket).toBe(true);
  });

  it.each([
    { vram: 24, swap: undefined },
    { vram: 12, swap: 16 },
    { vram: 10, swap: 22 },
    { vram: 8, swap: 28 },
  ])("FLUX on $vram GB swaps $swap blocks", ({ vram, swap }) => {
    const contract = makeContract({ base: "flux1-dev", target: "character", trainer: "kohya", path: "/m/f", overrides: { hardware: { vram_gb: vram } } });
    expect(flatten(compileKohya(contract, {}, PATHS).argsToml).blocks_to_swap).toBe(swap);
  });

  it.each([
    { vram: 24, blockSwap: 28, swap: 28 },
    { vram: 8, blockSwap: 10, swap: 10 },
    { vram: 8, blockSwap: 0, swap: undefined },
  ])("hardware.block_swap $blockSwap wins over the by-VRAM table ($vram GB) -> $swap", ({ vram, blockSwap, swap }) => {
    const contract = makeContract({ base: "flux1-dev", target: "character", trainer: "kohya", path: "/m/f", overrides: { hardware: { kind: "local", vram_gb: vram, block_swap: blockSwap } } });
    expect(flatten(compileKohya(contract, {}, PATHS).argsToml).blocks_to_swap).toBe(swap);
  });

  it("refuses hardware.block_swap for SDXL, naming the field", () => {
    const contract = makeContract({ base: "sdxl", target: "character", trainer: "kohya", overrides: { hardware: { kind: "local", block_swap: 8 } } });
    expect(() => compileKohya(contract, {}, PATHS)).toThrow(expect.objectContaining({ field: "hardware.block_swap" }));
  });

  it("refuses --blocks_to_swap for SDXL (not an option of sdxl_train_network.py)", () => {
    const contract = makeContract({ base: "sdxl", target: "character", trainer: "kohya" });
    expect(() => compileKohya(contract, { blocksToSwap: 8 }, PATHS)).toThrow(/blocks_to_swap/);
  });

  it("refuses a FLUX.1 Hugging Face id (sd-scripts needs BFL single files)", () => {
    const contract = makeContract({ base: "flux1-dev", target: "character", trainer: "kohya" });
    expect(() => compileKohya(contract, {}, PATHS)).toThrow(/single files/);
  });

  it("uses the plan's steps and learning rate over the contract's", () => {
    const contract = makeContract({ base: "sdxl", target: "character", trainer: "kohya" });
    const args = flatten(compileKohya(contract, { steps: 900, learningRate: 3e-4 }, PATHS).argsToml);
    expect(args).toMatchObject({ max_train_steps: 900, learning_rate: 3e-4 });
  });

  it("launches the script through accelerate with the args TOML", () => {
    const out = compileKohya(makeContract({ base: "sdxl", target: "character", trainer: "kohya" }), {}, PATHS);
    expect(out.command.slice(0, 2)).toEqual([`${PATHS.venvDir}/bin/accelerate`, "launch"]);
    expect(out.command.slice(-3)).toEqual([`${PATHS.trainerDir}/sdxl_train_network.py`, "--config_file", `${PATHS.configDir}/args.toml`]);
    expect(out.outputs.lora).toBe(`${PATHS.outputDir}/txcl-character.safetensors`);
  });

  it("launches every GPU of every host from the same contract fields (accelerate counts processes over all machines)", () => {
    const launch = (hardware: Record<string, unknown>) =>
      compileKohya(makeContract({ base: "sdxl", target: "character", trainer: "kohya", overrides: { hardware: { kind: "local", ...hardware } } }), {}, PATHS).command.join(" ");
    expect(launch({})).toContain("--num_processes 1 --num_machines 1 --dynamo_backend");
    expect(launch({ gpus: 4 })).toContain("--multi_gpu --num_processes 4 --num_machines 1 --dynamo_backend");
    expect(launch({ gpus: 4, nodes: 2, rendezvous: "10.0.0.1:29500", node_rank: 1 })).toContain(
      "--multi_gpu --num_processes 8 --num_machines 2 --machine_rank 1 --main_process_ip 10.0.0.1 --main_process_port 29500 --dynamo_backend",
    );
  });

  const unsupported = BASE_MODEL_IDS.filter((b) => !["sdxl", "flux1-dev", "flux1-schnell"].includes(b));
  it.each(unsupported)("refuses %s with E_TRAINER_UNSUPPORTED", (base) => {
    try {
      compileKohya(makeContract({ base, target: "character", trainer: "kohya" }), {}, PATHS);
      expect.unreachable();
    } catch (error) {
      expect(isLoraspecError(error) && error.code).toBe("E_TRAINER_UNSUPPORTED");
    }
  });
});

describe("compileKohya refusals", () => {
  it.each([
    // the hint names only trainers loraspec runs for the base (trainers/support.ts trainerFix), never one that refuses it too
    ["flux2-dev", /kohya cannot train/, /^Use trainer\.name: ai-toolkit/],
    ["sd35-large", /does not compile kohya configs/, /^No trainer loraspec drives trains .*pick another base\.model/],
  ] as const)("%s: %s", (base, message, hint) => {
    try {
      compileKohya(makeContract({ base, target: "character", trainer: "kohya" }), {}, PATHS);
      expect.unreachable();
    } catch (error) {
      expect((error as Error).message).toMatch(message);
      expect(isLoraspecError(error) && error.hint).toMatch(hint);
    }
  });
});

describe("compileKohya and the user's dataset folder", () => {
  it.each([
    [false, [], undefined],
    [true, ["<image>.npz (latents)", "<image>_te_outputs.npz"], true],
  ] as const)("datasetWritable %s: caches to disk only into a folder loraspec owns", (writable, writes, toDisk) => {
    const out = compileKohya(makeContract({ base: "sdxl", target: "character", trainer: "kohya" }), {}, { ...PATHS, datasetWritable: writable });
    const args = flatten(out.argsToml);
    expect(args.cache_latents).toBe(true);
    expect(args.cache_latents_to_disk).toBe(toDisk);
    expect(args.cache_text_encoder_outputs_to_disk).toBe(toDisk);
    expect(out.writesIntoDataset).toEqual(writes);
  });
});

describe("compileKohya base paths", () => {
  it.each([
    ["sdxl", "./models/sdxl", { pretrained_model_name_or_path: "/proj/models/sdxl" }],
    ["sdxl", "~/models/sdxl", { pretrained_model_name_or_path: "/home/me/models/sdxl" }],
    ["sdxl", "stabilityai/stable-diffusion-xl-base-1.0", { pretrained_model_name_or_path: "stabilityai/stable-diffusion-xl-base-1.0" }],
    ["flux1-dev", "../models/flux", { pretrained_model_name_or_path: "/models/flux/flux1-dev.safetensors", ae: "/models/flux/ae.safetensors" }],
    ["flux1-dev", "~/flux", { pretrained_model_name_or_path: "/home/me/flux/flux1-dev.safetensors", ae: "/home/me/flux/ae.safetensors" }],
  ] as const)("%s %s is opened from the contract's folder (core contract/base-path.ts)", (base, path, expected) => {
    const contract = makeContract({ base, target: "character", trainer: "kohya", path });
    expect(flatten(compileKohya(contract, {}, { ...PATHS, contractDir: "/proj", home: "/home/me" }).argsToml)).toMatchObject(expected);
  });
});

describe("compileKohya trainer version", () => {
  it.each([
    [undefined, 0],
    ["v0.10.1", 0],
    ["0.10.1", 0],
    ["v0.9.1", 1],
  ])("contract version %s -> %i warnings", (version, count) => {
    const contract = makeContract({ base: "sdxl", target: "character", trainer: "kohya", overrides: { trainer: { name: "kohya", ...(version ? { version } : {}) } } });
    expect(compileKohya(contract, {}, PATHS).warnings).toHaveLength(count);
  });
});

describe("regularisation images (dataset.reg_path)", () => {
  it("become an is_reg subset beside the dataset's, captions from their own files", () => {
    const contract = makeContract({ base: "sdxl", target: "character", trainer: "kohya" });
    const out = compileKohya(contract, {}, { ...PATHS, regDir: "/project/.loraspec/runs/r1/reg" });
    const subsets = (parseToml(out.datasetToml) as { datasets: { subsets: Record<string, unknown>[] }[] }).datasets[0]!.subsets;
    expect(subsets).toHaveLength(2);
    expect(subsets[0]).not.toHaveProperty("is_reg");
    expect(subsets[1]).toEqual({ image_dir: "/project/.loraspec/runs/r1/reg", is_reg: true, num_repeats: 1, caption_extension: ".txt" });
    expect(compileKohya(contract, {}, PATHS).datasetToml).not.toContain("is_reg");
  });
});
