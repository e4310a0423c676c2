import type { Contract } from "../contract/schema.js";
import { LoraspecError } from "../errors.js";
import { BUILTIN_TRAINER } from "../knowledge/builtin-trainer.js";
import { DEFAULT_TARGETS, isTargetArch, knownModulePatterns, LORA_TARGETS, type TargetArch, type TargetPreset } from "../knowledge/lora-targets.js";
import type { Sourced } from "../knowledge/types.js";
import { compareVersions } from "../knowledge/versions.js";

/**
 * `network.targets` / `network.modules` per trainer: what each trainer is told (the built-in
 * trainer's peft patterns, Kohya's network_args, ai-toolkit's network options) and what none of
 * them can express (lint/network-rules.ts names those). Pure.
 */

/** The worker arch whose module table a base uses (FLUX.2 [dev] shares klein's names). */
export function targetArchOf(base: Contract["base"]["model"]): TargetArch | undefined {
  const arch = BUILTIN_TRAINER.bases[base].arch;
  if (arch === "flux2-dev") return "flux2-klein";
  return isTargetArch(arch) ? arch : undefined;
}

export interface ResolvedTargets {
  /** The preset trained, or "custom" for an explicit network.modules list. */
  preset: TargetPreset | "custom";
  /** diffusers module-name patterns (knowledge/lora-targets.ts). */
  patterns: string[];
  /** True when the contract names neither field: the built-in trainer's default. */
  defaulted: boolean;
  why: string;
}

/** network.modules entries the base's architecture does not have (empty when all are known). */
export function unknownModules(c: Contract): string[] {
  const arch = targetArchOf(c.base.model);
  if (!arch || !c.network.modules) return [];
  const known = new Set(knownModulePatterns(arch));
  return c.network.modules.filter((m) => !known.has(m));
}

/** The built-in trainer's targets for a contract (throws on a module the arch lacks). */
export function resolveBuiltinTargets(c: Contract, fallback: readonly string[]): ResolvedTargets {
  const arch = targetArchOf(c.base.model);
  if (c.network.modules) {
    const bad = unknownModules(c);
    if (bad.length > 0 || !arch) {
      throw new LoraspecError("E_CONTRACT_INVALID", `network.modules names ${bad.join(", ") || "modules"} that ${c.base.model} does not have.`, {
        field: "network.modules",
        hint: arch ? `Use names from: ${knownModulePatterns(arch).join(", ")}.` : "Use network.targets instead.",
      });
    }
    return { preset: "custom", patterns: [...c.network.modules], defaulted: false, why: "network.modules (an explicit list)" };
  }
  if (c.network.targets && arch) {
    return { preset: c.network.targets, patterns: [...LORA_TARGETS[arch].presets[c.network.targets]], defaulted: false, why: "network.targets" };
  }
  return { preset: DEFAULT_TARGETS.preset, patterns: [...fallback], defaulted: true, why: DEFAULT_TARGETS.why };
}

/**
 * resolveBuiltinTargets for estimates (plan, VRAM): undefined where network.modules names what the base lacks, so a
 * plan reads on and lint's network-modules-unknown says what is wrong (only compiling the request refuses).
 */
export function builtinTargetsIfKnown(c: Contract, fallback: readonly string[]): ResolvedTargets | undefined {
  if (c.network.modules && (!targetArchOf(c.base.model) || unknownModules(c).length > 0)) return undefined;
  return resolveBuiltinTargets(c, fallback);
}

/** What a trainer trains when the contract leaves network.targets out (its own default). */
export const TRAINER_DEFAULT_TARGETS: Readonly<Record<Contract["trainer"]["name"], Sourced & { preset: TargetPreset | "trainer-default" }>> = {
  diffusers: { preset: "attention", source: DEFAULT_TARGETS.source, asOf: DEFAULT_TARGETS.asOf },
  kohya: { preset: "all-linear", source: "kohya-ss/sd-scripts@v0.10.1 networks/lora.py L867, networks/lora_flux.py L709-710 (every Linear of the blocks unless network_args say otherwise)", asOf: "2026-12-02" },
  // SDXL: every Linear and 1x1 conv of the whole UNet (none of the presets); FLUX-class: the blocks' linears (all-linear).
  "ai-toolkit": { preset: "trainer-default", source: "ostris/ai-toolkit@27a03a9 toolkit/lora_special.py L281 (UNet2DConditionModel), L531-560 (transformer_only: the blocks), config_modules.py L202 (transformer_only default true)", asOf: "2026-12-02" },
  fal: { preset: "trainer-default", source: "shared/reference/trainers.md §4.1 (fal trainer inputs: no target-module field)", asOf: "2026-12-02" },
};

const KOHYA_FLUX = "kohya-ss/sd-scripts@v0.10.1 networks/lora_flux.py L466-490 (img_attn_dim ... single_mod_dim; 0 skips the module type, L854-869)";

/**
 * sd-scripts' network_args for a preset, or why it cannot express it. SDXL's networks/lora.py has
 * no per-module-type option (block_dims selects blocks): only its default, all-linear. FLUX.1's
 * lora_flux.py drops module types by a 0 dim; its single blocks' linear1 fuses q, k, v with the
 * MLP input, so attention keeps them whole (approximate, said by lint).
 */
export function kohyaNetworkArgs(c: Contract): { args: string[]; exact: boolean; refusal?: string; source: string } {
  const flux = targetArchOf(c.base.model) === "flux1";
  if (c.network.modules) {
    return { args: [], exact: false, refusal: "sd-scripts selects modules by type and block, not by name: network.modules cannot be passed", source: KOHYA_FLUX };
  }
  const preset = c.network.targets ?? "all-linear";
  if (preset === "all-linear") return { args: [], exact: true, source: TRAINER_DEFAULT_TARGETS.kohya.source };
  if (!flux) {
    return {
      args: [],
      exact: false,
      refusal: `sd-scripts' networks/lora.py trains every linear of SDXL's transformer blocks (all-linear) and has no option to train only ${preset === "attention" ? "the attention projections" : "attention and MLP"}`,
      source: "kohya-ss/sd-scripts@v0.10.1 networks/lora.py L435-500 (network_args: conv_dim, block_dims, dropouts, loraplus; no module-type filter)",
    };
  }
  // The type dims arrived in v0.10.0 (v0.9.1's lora_flux.py has none and ignores unknown network_args).
  const v = c.trainer.version;
  if (v && (compareVersions(v, "v0.10.0") ?? 0) < 0) {
    return { args: [], exact: false, refusal: `sd-scripts ${v}'s networks/lora_flux.py has no per-module-type dims (img_mod_dim ... arrived in v0.10.0): it would train all-linear`, source: `${KOHYA_FLUX}; v0.9.1 networks/lora_flux.py (none)` };
  }
  const mod = ["img_mod_dim=0", "txt_mod_dim=0", "single_mod_dim=0"];
  if (preset === "attention-mlp") return { args: mod, exact: true, source: KOHYA_FLUX };
  return { args: ["img_mlp_dim=0", "txt_mlp_dim=0", ...mod], exact: false, source: KOHYA_FLUX };
}

/** ai-toolkit's `network` options for a preset (network_kwargs only_if_contains / ignore_if_contains, transformer_only). */
export interface AiToolkitTargets {
  network_kwargs?: { only_if_contains?: string[]; ignore_if_contains?: string[] };
  transformer_only?: boolean;
}

const AIT = "ostris/ai-toolkit@27a03a9 toolkit/lora_special.py L524 (ignore_if_contains), L571 (only_if_contains: a substring of the module's dotted name), L531 (transformer_only), README 'Training Specific Layers'";

/**
 * Substrings of ai-toolkit's module names (diffusers names; FLUX.2 runs BFL's model: double_blocks.N.img_attn.qkv,
 * single_blocks.N.linear1). ai-toolkit's transformer_only keeps FLUX-class LoRAs inside the blocks; Z-Image's block list
 * is `layers` only (z_image.py get_transformer_block_names), so its presets switch it off and name the modules.
 */
export const AI_TOOLKIT_TARGETS: Readonly<Record<TargetArch, Readonly<Record<TargetPreset, AiToolkitTargets>>>> = {
  sdxl: {
    attention: { network_kwargs: { only_if_contains: [".attn1.", ".attn2."] } },
    "attention-mlp": { network_kwargs: { only_if_contains: [".attn1.", ".attn2.", ".ff.net."] } },
    "all-linear": { network_kwargs: { only_if_contains: [".attentions."] } },
  },
  flux1: {
    attention: { network_kwargs: { only_if_contains: [".attn."] } },
    "attention-mlp": { network_kwargs: { ignore_if_contains: ["norm1.linear", "norm1_context.linear", ".norm.linear"] } },
    "all-linear": {},
  },
  "flux2-klein": {
    attention: { network_kwargs: { only_if_contains: ["img_attn.", "txt_attn.", ".linear1"] } },
    "attention-mlp": {},
    "all-linear": {},
  },
  "qwen-image": {
    attention: { network_kwargs: { only_if_contains: [".attn."] } },
    "attention-mlp": { network_kwargs: { ignore_if_contains: ["img_mod.", "txt_mod."] } },
    "all-linear": {},
  },
  zimage: {
    attention: { transformer_only: false, network_kwargs: { only_if_contains: [".attention.to_q", ".attention.to_k", ".attention.to_v", ".attention.to_out.0"] } },
    "attention-mlp": { transformer_only: false, network_kwargs: { only_if_contains: [".attention.to_q", ".attention.to_k", ".attention.to_v", ".attention.to_out.0", ".feed_forward."] } },
    "all-linear": {
      transformer_only: false,
      network_kwargs: { only_if_contains: [".attention.to_q", ".attention.to_k", ".attention.to_v", ".attention.to_out.0", ".feed_forward.", ".adaLN_modulation.0"] },
    },
  },
};
export const AI_TOOLKIT_TARGETS_SOURCE = AIT;

/** ai-toolkit's network options for the contract, or why it cannot express them. */
export function aiToolkitTargets(c: Contract): { options: AiToolkitTargets; refusal?: string } {
  const arch = targetArchOf(c.base.model);
  if (c.network.modules) {
    // FLUX.2 runs BFL-named modules in ai-toolkit: diffusers names would match nothing.
    if (!arch || arch === "flux2-klein") return { options: {}, refusal: "ai-toolkit trains FLUX.2 with BFL's module names; network.modules (diffusers names) cannot be passed" };
    const scoped = c.network.modules.map((m) => `.${m.split("*.").pop()}`);
    return { options: { ...(arch === "zimage" ? { transformer_only: false } : {}), network_kwargs: { only_if_contains: scoped } } };
  }
  if (!c.network.targets) return { options: {} };
  if (!arch) return { options: {}, refusal: `loraspec has no module table for ${c.base.model}, so network.targets cannot be passed` };
  return { options: AI_TOOLKIT_TARGETS[arch][c.network.targets] };
}

/** What the LoRA trains for this contract and trainer, in words, with the reason (plan, init). */
export function describeTargets(c: Contract): { preset: TargetPreset | "custom" | "trainer-default"; why: string; source: string } {
  if (c.network.modules) return { preset: "custom", why: `network.modules: ${c.network.modules.join(", ")}`, source: "the contract" };
  if (c.network.targets) return { preset: c.network.targets, why: "network.targets", source: "the contract" };
  const d = TRAINER_DEFAULT_TARGETS[c.trainer.name];
  const arch = targetArchOf(c.base.model);
  switch (c.trainer.name) {
    case "diffusers":
      return { preset: "attention", why: `left out: the built-in trainer's default, ${DEFAULT_TARGETS.why}`, source: d.source };
    case "kohya":
      return { preset: "all-linear", why: "left out: Kohya's own default, every linear of the transformer blocks", source: d.source };
    case "ai-toolkit":
      if (arch === "sdxl") return { preset: "trainer-default", why: "left out: ai-toolkit's own default, every linear and 1x1 conv of the whole UNet (more than all-linear)", source: d.source };
      if (arch === "zimage") return { preset: "trainer-default", why: "left out: ai-toolkit's own default, every linear of the main layers (not the refiners)", source: `${d.source}; z_image.py get_transformer_block_names` };
      return { preset: "all-linear", why: "left out: ai-toolkit's own default, every linear of the transformer blocks", source: d.source };
    case "fal":
      return { preset: "trainer-default", why: "the fal endpoint decides (no input for it)", source: d.source };
  }
}

/**
 * What `init` writes for network.targets, with its reason: the trainer's own default made explicit where the
 * trainer has a targets setting (built-in: attention; Kohya: all-linear; ai-toolkit: all-linear, its own default
 * on FLUX-class bases, the nearest preset to it on SDXL and Z-Image). `targets` undefined: nothing can be written
 * (fal has no input for the trained modules, or loraspec has no module table for the base) and `why` says so,
 * for init's comment on the trainer.
 */
export function initTargets(trainer: Contract["trainer"]["name"], base: Contract["base"]["model"]): { targets?: TargetPreset; why: string; source: string } {
  const arch = targetArchOf(base);
  if (trainer === "fal") return { why: "network.targets is not written: fal's trainer endpoints have no input for the trained modules (the endpoint decides)", source: TRAINER_DEFAULT_TARGETS.fal.source };
  if (!arch) return { why: `network.targets is not written: loraspec has no module table for ${base}, so the trainer trains its own default`, source: LORA_TARGETS.sdxl.source };
  if (trainer === "diffusers") return { targets: DEFAULT_TARGETS.preset, why: `${DEFAULT_TARGETS.why}; attention-mlp or all-linear train more modules (Kohya's set) at a longer step`, source: DEFAULT_TARGETS.source };
  if (trainer === "kohya") {
    if (arch !== "sdxl" && arch !== "flux1") return { why: `network.targets is not written: loraspec passes Kohya's module choice for SDXL and FLUX.1 only`, source: TRAINER_DEFAULT_TARGETS.kohya.source };
    return { targets: "all-linear", why: "what sd-scripts trains by default (every linear of the transformer blocks); for SDXL it has no narrower choice", source: TRAINER_DEFAULT_TARGETS.kohya.source };
  }
  const differs =
    arch === "sdxl"
      ? "; ai-toolkit's own default (the field left out) also trains the UNet's ResNet linears and 1x1 convs"
      : arch === "zimage"
        ? "; ai-toolkit's own default (the field left out) trains the main layers only, not the refiners"
        : " (ai-toolkit's own default: the same modules)";
  return { targets: "all-linear", why: `every linear of the transformer blocks${differs}; attention or attention-mlp train fewer modules`, source: `${TRAINER_DEFAULT_TARGETS["ai-toolkit"].source}; ${AIT}` };
}

/**
 * Why this contract's trainer cannot be told its network.targets / network.modules, or undefined when it can
 * (what lint's network-targets-unsupported and the compilers refuse). Kohya beyond SDXL/FLUX.1 is left to
 * trainer-unsupported-base.
 */
export function targetsRefusal(c: Contract): string | undefined {
  if (c.network.targets === undefined && c.network.modules === undefined) return undefined;
  const arch = targetArchOf(c.base.model);
  switch (c.trainer.name) {
    case "fal":
      return "fal's trainer endpoints have no input for the trained modules; the endpoint decides";
    case "kohya":
      return arch === "sdxl" || arch === "flux1" ? kohyaNetworkArgs(c).refusal : undefined;
    case "ai-toolkit":
      return aiToolkitTargets(c).refusal;
    case "diffusers":
      return arch ? undefined : `the built-in trainer has no module table for ${c.base.model}`;
  }
}

/**
 * The fix for a targets refusal, naming only what works: leave the field out (the trainer's own default), or a
 * trainer that trains this base and takes the same field (held by a test: following it clears the finding).
 */
export function targetsFix(c: Contract, runs: (trainer: Contract["trainer"]["name"]) => boolean): string {
  const field = c.network.modules ? "network.modules" : "network.targets";
  const own = c.trainer.name === "kohya" ? " (Kohya trains all-linear)" : c.trainer.name === "fal" ? " (the endpoint decides)" : " (the trainer trains its own default)";
  const others = (["diffusers", "ai-toolkit", "kohya"] as const).filter(
    (t) => t !== c.trainer.name && runs(t) && targetsRefusal({ ...c, trainer: { ...c.trainer, name: t } } as Contract) === undefined,
  );
  const alt = others.map((t) => `trainer.name: ${t}${c.hardware.kind === "fal" ? " (with hardware.kind: local)" : ""}`).join(" or ");
  return `Remove ${field}${own}${alt ? `, or use ${alt}, which ${others.length > 1 ? "take" : "takes"} it` : ""}.`;
}
