import { describe, expect, it } from "vitest";
import { parse as parseToml } from "smol-toml";
import { architecture, type ArchId, type ModuleSpec } from "@loraspec/core/lora/architectures.js";
import { LORA_TARGETS, TARGET_PRESETS, matchesPattern, type TargetArch, type TargetPreset } from "@loraspec/core/knowledge/lora-targets.js";
import { AI_TOOLKIT_TARGETS, aiToolkitTargets } from "@loraspec/core/compile/network-targets.js";
import { compileKohya } from "@loraspec/core/compile/kohya/compile-kohya.js";
import { compileAiToolkit } from "@loraspec/core/compile/ai-toolkit/compile-ai-toolkit.js";
import { compileDiffusers } from "@loraspec/core/compile/diffusers.js";
import { lintContract } from "@loraspec/core/lint/lint-contract.js";
import type { ContractInput } from "@loraspec/core/contract/schema.js";
import { BASE_MODEL_IDS, type BaseModelId } from "@loraspec/core/knowledge/base-models.js";
import { makeContract, PATHS } from "./contract-fixture.js";

/**
 * The presets on the full-size architectures (lora/architectures.ts: every module of each model,
 * native and diffusers names), and what each trainer is told for them. The tiny-base twin of this
 * test is worker/tests/test_targets.py (peft on the real diffusers classes).
 */

const ARCH_OF: Record<TargetArch, ArchId[]> = {
  sdxl: ["sdxl"],
  flux1: ["flux1"],
  "flux2-klein": ["flux2-klein-4b", "flux2-klein-9b"],
  "qwen-image": ["qwen-image"],
  zimage: ["zimage"],
};

const denoiser = (a: ArchId) => architecture(a).modules.filter((m) => m.component === "unet" || m.component === "transformer");
const adaptable = (m: ModuleSpec) => m.shape.length === 2 || (m.shape[2] === 1 && m.shape[3] === 1);
/** diffusers module names of the denoiser's linears and 1x1 convs (a fused native module gives each part). */
const diffusersNames = (a: ArchId) => denoiser(a).filter(adaptable).flatMap((m) => m.parts.map((p) => p.name));
const presetNames = (arch: TargetArch, a: ArchId, preset: TargetPreset) => new Set(diffusersNames(a).filter((n) => matchesPattern(n, LORA_TARGETS[arch].presets[preset])));

describe("presets on the full-size architectures", () => {
  it("SDXL: 560 attention, 700 with the MLPs, Kohya's 722 for all-linear", () => {
    expect(TARGET_PRESETS.map((p) => presetNames("sdxl", "sdxl", p).size)).toEqual([560, 700, 722]);
  });

  it("FLUX.1: 266 / 418 / 494 diffusers modules; all-linear is Kohya's 304 fused modules", () => {
    expect(TARGET_PRESETS.map((p) => presetNames("flux1", "flux1", p).size)).toEqual([266, 418, 494]);
    const all = presetNames("flux1", "flux1", "all-linear");
    const fused = denoiser("flux1").filter((m) => /^(double|single)_blocks\./.test(m.native));
    expect(fused).toHaveLength(304);
    expect(new Set(fused.flatMap((m) => m.parts.map((p) => p.name)))).toEqual(all);
  });

  for (const arch of Object.keys(LORA_TARGETS) as TargetArch[]) {
    for (const a of ARCH_OF[arch]) {
      it(`${a}: all-linear is every linear of the transformer blocks, the presets nest, none reaches outside`, () => {
        const blocks = new RegExp(LORA_TARGETS[arch].blocks);
        const inBlocks = new Set(diffusersNames(a).filter((n) => blocks.test(n)));
        const [att, mlp, all] = [presetNames(arch, a, "attention"), presetNames(arch, a, "attention-mlp"), presetNames(arch, a, "all-linear")];
        expect(all).toEqual(inBlocks);
        expect([...mlp].every((n) => all.has(n)) && [...att].every((n) => mlp.has(n))).toBe(true);
        expect(att.size).toBeLessThan(mlp.size);
        for (const p of LORA_TARGETS[arch].presets["all-linear"]) expect(diffusersNames(a).some((n) => matchesPattern(n, [p])), p).toBe(true);
      });
    }
  }
});

/** ai-toolkit's choice (lora_special.py L524-572): Linear/1x1 conv, transformer_only's blocks, ignore_if_contains, only_if_contains, as substrings. */
function aiToolkitPicks(arch: TargetArch, a: ArchId, preset: TargetPreset): Set<string> {
  const opts = AI_TOOLKIT_TARGETS[arch][preset];
  const bfl = arch === "flux2-klein"; // ai-toolkit runs BFL's FLUX.2 model
  const blockNames: Record<TargetArch, string[]> = {
    sdxl: [""],
    flux1: ["transformer_blocks"],
    "flux2-klein": ["double_blocks", "single_blocks"],
    "qwen-image": ["transformer_blocks"],
    zimage: ["layers"],
  };
  const out = new Set<string>();
  // BFL's model has the fused native modules; diffusers' has one module per part.
  const modules = denoiser(a)
    .filter(adaptable)
    .flatMap((m) => (bfl ? [{ name: m.native, parts: m.parts.map((p) => p.name) }] : m.parts.map((p) => ({ name: p.name, parts: [p.name] }))));
  for (const m of modules) {
    const name = `${arch === "sdxl" ? "lora_unet" : "transformer"}.${m.name}`;
    if (opts.network_kwargs?.ignore_if_contains?.some((w) => name.includes(w))) continue;
    if (opts.transformer_only !== false && !blockNames[arch].some((b) => name.includes(b))) continue;
    const only = opts.network_kwargs?.only_if_contains;
    if (only && !only.some((w) => name.includes(w))) continue;
    for (const p of m.parts) out.add(p);
  }
  return out;
}

describe("ai-toolkit's network options train exactly each preset", () => {
  for (const arch of Object.keys(LORA_TARGETS) as TargetArch[]) {
    for (const preset of TARGET_PRESETS) {
      it(`${arch} ${preset}`, () => {
        const a = ARCH_OF[arch][0]!;
        expect(aiToolkitPicks(arch, a, preset)).toEqual(presetNames(arch, a, preset));
      });
    }
  }
});

const contract = (base: BaseModelId, trainer: "kohya" | "ai-toolkit" | "fal", network: ContractInput["network"], path?: string) =>
  makeContract({ base, target: "character", trainer, path, overrides: { network } });
const kohyaArgs = (toml: string) => (parseToml(toml) as { network_arguments: Record<string, unknown> }).network_arguments;

describe("each trainer is told the preset or refuses it by name", () => {
  it("Kohya FLUX.1: attention-mlp drops the modulation dims (exact); all-linear and left out pass nothing", () => {
    const path = "/models/flux1-dev";
    expect(kohyaArgs(compileKohya(contract("flux1-dev", "kohya", { targets: "attention-mlp" }, path), {}, PATHS).argsToml).network_args).toEqual([
      "img_mod_dim=0",
      "txt_mod_dim=0",
      "single_mod_dim=0",
    ]);
    expect(kohyaArgs(compileKohya(contract("flux1-dev", "kohya", { targets: "all-linear" }, path), {}, PATHS).argsToml).network_args).toBeUndefined();
    expect(kohyaArgs(compileKohya(contract("flux1-dev", "kohya", {}, path), {}, PATHS).argsToml).network_args).toBeUndefined();
    const approx = lintContract(contract("flux1-dev", "kohya", { targets: "attention" }, path)).filter((f) => f.rule === "network-targets-approximate");
    expect(approx.map((f) => f.field)).toEqual(["network.targets"]);
    const accepted = lintContract(makeContract({ base: "flux1-dev", target: "character", trainer: "kohya", path, overrides: { network: { targets: "attention" }, lint: { accept: [{ rule: "network-targets-approximate", why: "close enough to the built-in run we compare with" }] } } }));
    expect(accepted.find((f) => f.rule === "network-targets-approximate")?.severity).toBe("info");
  });

  it("Kohya FLUX.1: lora_flux.py's type dims (L854-869) on the fused modules give exactly attention-mlp; attention keeps the single blocks whole", () => {
    const ids: Array<[string[], string]> = [[["img_attn"], "img_attn_dim"], [["txt_attn"], "txt_attn_dim"], [["img_mlp"], "img_mlp_dim"], [["txt_mlp"], "txt_mlp_dim"], [["img_mod"], "img_mod_dim"], [["txt_mod"], "txt_mod_dim"], [["single_blocks", "linear"], "single_dim"], [["modulation"], "single_mod_dim"]];
    const trained = (args: string[]) => {
      const zero = new Set(args.map((a) => a.replace(/=0$/, "")));
      const parts = new Set<string>();
      for (const m of denoiser("flux1").filter((x) => /^(double|single)_blocks\./.test(x.native))) {
        const name = `lora_unet_${m.native.replace(/\./g, "_")}`;
        const hit = ids.find(([words]) => words.every((w) => name.includes(w)));
        if (hit && zero.has(hit[1])) continue;
        for (const p of m.parts) parts.add(p.name);
      }
      return parts;
    };
    expect(trained(["img_mod_dim=0", "txt_mod_dim=0", "single_mod_dim=0"])).toEqual(presetNames("flux1", "flux1", "attention-mlp"));
    const att = trained(["img_mlp_dim=0", "txt_mlp_dim=0", "img_mod_dim=0", "txt_mod_dim=0", "single_mod_dim=0"]);
    expect([...presetNames("flux1", "flux1", "attention")].every((n) => att.has(n))).toBe(true);
    expect(att.has("single_transformer_blocks.0.proj_mlp")).toBe(true); // the approximation lint names
  });

  it("Kohya before v0.10.0 has no type dims: a FLUX.1 preset other than all-linear is refused", () => {
    const c = makeContract({ base: "flux1-dev", target: "character", trainer: "kohya", path: "/models/flux1-dev", overrides: { trainer: { name: "kohya", version: "v0.9.1" }, network: { targets: "attention-mlp" } } });
    expect(() => compileKohya(c, {}, PATHS)).toThrow(expect.objectContaining({ field: "network.targets" }));
  });

  it("Kohya SDXL trains all-linear only: attention is refused naming network.targets", () => {
    const c = contract("sdxl", "kohya", { targets: "attention" });
    expect(() => compileKohya(c, {}, PATHS)).toThrow(expect.objectContaining({ code: "E_TRAINER_UNSUPPORTED", field: "network.targets" }));
    expect(lintContract(c).find((f) => f.rule === "network-targets-unsupported")).toMatchObject({ severity: "error", field: "network.targets" });
    expect(lintContract(contract("sdxl", "kohya", { targets: "all-linear" })).some((f) => f.rule.startsWith("network-"))).toBe(false);
  });

  it("ai-toolkit gets only_if_contains / ignore_if_contains in its network section", () => {
    const job = compileAiToolkit(contract("flux1-dev", "ai-toolkit", { targets: "attention" }), {}, PATHS).jobYaml;
    expect(job).toContain("only_if_contains");
    expect(job).toContain(".attn.");
  });

  it("fal has no choice: a preset is an error finding", () => {
    const f = lintContract(contract("flux1-dev", "fal", { targets: "all-linear" })).find((x) => x.rule === "network-targets-unsupported");
    expect(f).toMatchObject({ severity: "error", field: "network.targets" });
  });

  it("the built-in trainer's request carries the preset's patterns, network.modules, or attention when left out", () => {
    const req = (network: ContractInput["network"]) =>
      compileDiffusers(makeContract({ base: "flux1-dev", target: "character", trainer: "kohya", overrides: { trainer: { name: "diffusers" }, network } }), {}, PATHS).request.targets;
    expect(req({})).toEqual(LORA_TARGETS.flux1.presets.attention);
    expect(req({ targets: "all-linear" })).toEqual(LORA_TARGETS.flux1.presets["all-linear"]);
    expect(req({ modules: ["to_q", "to_v"] })).toEqual(["to_q", "to_v"]);
    expect(() => req({ modules: ["to_qq"] })).toThrow(expect.objectContaining({ code: "E_CONTRACT_INVALID", field: "network.modules" }));
    const bad = makeContract({ base: "flux1-dev", target: "character", trainer: "kohya", overrides: { trainer: { name: "diffusers" }, network: { modules: ["to_qq"] } } });
    expect(lintContract(bad).find((f) => f.rule === "network-modules-unknown")?.field).toBe("network.modules");
  });
});

describe("network.modules may name SDXL's self- and cross-attention apart (Custom Diffusion's keys and values)", () => {
  const sdxlNames = diffusersNames("sdxl");
  const picked = (patterns: string[]) => new Set(sdxlNames.filter((n) => matchesPattern(n, patterns)));

  it("each named pattern picks one projection of every transformer block of the full-size UNet (70), attn1 or attn2 only", () => {
    const named = LORA_TARGETS.sdxl.named.patterns;
    for (const p of named) {
      const set = picked([p]);
      expect(set.size, p).toBe(70);
      expect([...set].every((n) => n.endsWith(`.${p}`)), p).toBe(true);
    }
    // the eight named patterns are the attention preset split in two, nothing more
    expect(picked([...named])).toEqual(presetNames("sdxl", "sdxl", "attention"));
    const kv = picked(["attn2.to_k", "attn2.to_v"]);
    expect(kv.size).toBe(140);
    expect([...kv].some((n) => n.includes(".attn1."))).toBe(false);
  });

  it("the built-in trainer gets the names, ai-toolkit picks exactly the same modules, Kohya refuses by name", () => {
    const network = { modules: ["attn2.to_k", "attn2.to_v"] };
    const sdxl = (trainer: "kohya" | "ai-toolkit") => makeContract({ base: "sdxl", target: "character", trainer, overrides: { network } });
    const builtin = makeContract({ base: "sdxl", target: "character", trainer: "kohya", overrides: { trainer: { name: "diffusers" }, network } });
    expect(compileDiffusers(builtin, {}, PATHS).request.targets).toEqual(["attn2.to_k", "attn2.to_v"]);
    expect(lintContract(builtin).filter((f) => f.field === "network.modules")).toEqual([]);
    const only = aiToolkitTargets(sdxl("ai-toolkit")).options.network_kwargs?.only_if_contains ?? [];
    expect(new Set(sdxlNames.filter((n) => only.some((w) => `lora_unet.${n}`.includes(w))))).toEqual(picked(["attn2.to_k", "attn2.to_v"]));
    expect(lintContract(sdxl("kohya")).some((f) => f.field === "network.modules" && f.severity === "error")).toBe(true);
  });

  it("the named parts exist only where the architecture has them: FLUX.1 refuses attn2", () => {
    const flux = makeContract({ base: "flux1-dev", target: "character", trainer: "kohya", overrides: { trainer: { name: "diffusers" }, network: { modules: ["attn2.to_k"] } } });
    expect(lintContract(flux).find((f) => f.rule === "network-modules-unknown")?.field).toBe("network.modules");
  });
});

describe("a network.modules name the base lacks is a lint finding, never a throw from the plan", () => {
  // the plan's estimates (VRAM extras for the bf16 LoRA path and the sample merge) resolve the built-in trainer's
  // targets; an unknown name used to throw out of lintContract (check would print a stack trace)
  for (const base of BASE_MODEL_IDS) {
    for (const trainer of ["diffusers", "kohya", "ai-toolkit"] as const) {
      for (const every of [0, 100]) {
        it(`${base} ${trainer}, samples every ${every}`, () => {
          const c = makeContract({
            base, target: "character", trainer: trainer === "diffusers" ? "kohya" : trainer,
            overrides: { trainer: { name: trainer }, network: { modules: ["no_such_module"] }, samples: { every } },
          });
          const findings = lintContract(c);
          // an error on the modules, or on the trainer where it does not train this base at all (sd35-large on Kohya)
          const errors = findings.filter((f) => f.severity === "error").map((f) => f.field);
          expect(errors.includes("network.modules") || errors.includes("trainer.name"), JSON.stringify(errors)).toBe(true);
        });
      }
    }
  }
});
