import type { Sourced } from "./types.js";

/**
 * Which modules of the denoiser a LoRA trains: the contract's `network.targets` presets, per worker
 * architecture, as diffusers module-name patterns (the names peft, the built-in trainer and
 * ai-toolkit's diffusers models use).
 *
 * A pattern is a peft suffix (`to_q` matches `...attn.to_q`, as peft's `target_modules` list does),
 * or a block-scoped pattern with `*` for one block index (`single_transformer_blocks.*.proj_out`)
 * where a bare suffix would also match a module outside the transformer blocks (FLUX.1's final
 * `proj_out`, FLUX.2's double-block `attn.to_out` ModuleList). The worker turns a list holding such
 * a pattern into one regex (train/targets.py); `matchesPattern` below is the same rule.
 *
 * Presets grow: attention ⊂ attention-mlp ⊂ all-linear. all-linear is every nn.Linear (and 1x1
 * conv) inside the transformer blocks (`blocks`), what Kohya's networks/lora.py
 * (UNET_TARGET_REPLACE_MODULE = ["Transformer2DModel"], Linear + Conv2d 1x1) and lora_flux.py
 * (DoubleStreamBlock + SingleStreamBlock) train by default. worker/tests/test_targets.py builds each
 * tiny base and checks peft's matched modules against these lists; test/knowledge/lora-targets.spec.ts
 * counts them on the full-size architectures (SDXL 560 / 700 / 722, FLUX.1 266 / 418 / 494).
 */
export const TARGET_PRESETS = ["attention", "attention-mlp", "all-linear"] as const;
export type TargetPreset = (typeof TARGET_PRESETS)[number];

export interface ArchTargets extends Sourced {
  /** Regex (JavaScript and Python syntax alike) a module name inside the transformer blocks matches. */
  blocks: string;
  presets: Record<TargetPreset, string[]>;
  /**
   * Finer patterns `network.modules` may name besides the presets' own: parts of a preset a known recipe trains
   * alone (SDXL's self-attention `attn1` and cross-attention `attn2` projections apart), with where the recipe is from.
   */
  named?: { patterns: readonly string[]; why: string; source: string };
}

const AS_OF = "2026-12-02";
const KOHYA = "kohya-ss/sd-scripts@v0.10.1";
const ATTN = ["to_q", "to_k", "to_v", "to_out.0"];
const JOINT = [...ATTN, "add_q_proj", "add_k_proj", "add_v_proj", "to_add_out"];

/** The target-module table, per worker arch that trains (knowledge/builtin-trainer.ts `arches`). */
export const LORA_TARGETS = {
  sdxl: {
    // Transformer2DModel lives at down_blocks.N.attentions.M, mid_block.attentions.M, up_blocks.N.attentions.M.
    blocks: "^(?:down_blocks\\.\\d+|mid_block|up_blocks\\.\\d+)\\.attentions\\.\\d+\\.",
    presets: {
      attention: ATTN,
      "attention-mlp": [...ATTN, "ff.net.0.proj", "ff.net.2"],
      "all-linear": [...ATTN, "ff.net.0.proj", "ff.net.2", "proj_in", "proj_out"],
    },
    named: {
      patterns: ["attn1.to_q", "attn1.to_k", "attn1.to_v", "attn1.to_out.0", "attn2.to_q", "attn2.to_k", "attn2.to_v", "attn2.to_out.0"],
      why: "self-attention (attn1) and cross-attention (attn2) apart: Custom Diffusion trains only the cross-attention keys and values (attn2.to_k, attn2.to_v), the layers the prompt's tokens enter the image through",
      source: "Kumari et al. 2023, Multi-Concept Customization of Text-to-Image Diffusion (Custom Diffusion) §3.2; diffusers examples/custom_diffusion/train_custom_diffusion.py (attn2 to_k/to_v); diffusers attention.py BasicTransformerBlock (attn1 self, attn2 cross)",
    },
    source: `diffusers train_dreambooth_lora_sdxl.py target_modules (attention); ${KOHYA} networks/lora.py L867 UNET_TARGET_REPLACE_MODULE = ["Transformer2DModel"] (Linear and 1x1 conv: 722 modules); diffusers attention.py BasicTransformerBlock (attn1, attn2, ff.net.0.proj, ff.net.2)`,
    asOf: AS_OF,
  },
  flux1: {
    blocks: "^(?:single_)?transformer_blocks\\.\\d+\\.",
    presets: {
      attention: JOINT,
      "attention-mlp": [...JOINT, "ff.net.0.proj", "ff.net.2", "ff_context.net.0.proj", "ff_context.net.2", "proj_mlp", "single_transformer_blocks.*.proj_out"],
      "all-linear": [
        ...JOINT, "ff.net.0.proj", "ff.net.2", "ff_context.net.0.proj", "ff_context.net.2", "proj_mlp", "single_transformer_blocks.*.proj_out",
        "norm1.linear", "norm1_context.linear", "norm.linear",
      ],
    },
    source: `diffusers train_dreambooth_lora_flux.py target_modules (attention); ${KOHYA} networks/lora_flux.py L709-710 (DoubleStreamBlock, SingleStreamBlock: every Linear, 304 fused = 494 diffusers modules); diffusers transformer_flux.py (norm1.linear / norm.linear are the AdaLayerNorm modulation)`,
    asOf: AS_OF,
  },
  "flux2-klein": {
    blocks: "^(?:single_)?transformer_blocks\\.\\d+\\.",
    presets: {
      attention: [...JOINT, "to_qkv_mlp_proj"],
      "attention-mlp": [...JOINT, "to_qkv_mlp_proj", "ff.linear_in", "ff.linear_out", "ff_context.linear_in", "ff_context.linear_out", "single_transformer_blocks.*.attn.to_out"],
      // FLUX.2 shares its modulation across blocks (double_stream_modulation_img/txt, single_stream_modulation sit outside them).
      "all-linear": [...JOINT, "to_qkv_mlp_proj", "ff.linear_in", "ff.linear_out", "ff_context.linear_in", "ff_context.linear_out", "single_transformer_blocks.*.attn.to_out"],
    },
    source: "diffusers train_dreambooth_lora_flux2_klein.py target_modules (attention); diffusers transformer_flux2.py (Flux2TransformerBlock, Flux2SingleTransformerBlock; modulation shared outside the blocks); ai-toolkit@27a03a9 flux2_model.py get_transformer_block_names",
    asOf: AS_OF,
  },
  "qwen-image": {
    blocks: "^transformer_blocks\\.\\d+\\.",
    presets: {
      attention: JOINT,
      "attention-mlp": [...JOINT, "img_mlp.net.0.proj", "img_mlp.net.2", "txt_mlp.net.0.proj", "txt_mlp.net.2"],
      "all-linear": [...JOINT, "img_mlp.net.0.proj", "img_mlp.net.2", "txt_mlp.net.0.proj", "txt_mlp.net.2", "img_mod.1", "txt_mod.1"],
    },
    source: "diffusers train_dreambooth_lora_qwen_image.py target_modules (attention); diffusers transformer_qwenimage.py QwenImageTransformerBlock (img_mod/txt_mod, img_mlp/txt_mlp); ai-toolkit@27a03a9 qwen_image.py get_transformer_block_names",
    asOf: AS_OF,
  },
  zimage: {
    // The main layers and both refiners (noise_refiner, context_refiner) are transformer blocks.
    blocks: "^(?:layers|noise_refiner|context_refiner)\\.\\d+\\.",
    presets: {
      attention: ATTN,
      "attention-mlp": [...ATTN, "feed_forward.w1", "feed_forward.w2", "feed_forward.w3"],
      // Scoped: the final layer's adaLN_modulation.0 is a SiLU (its Linear is .1).
      "all-linear": [...ATTN, "feed_forward.w1", "feed_forward.w2", "feed_forward.w3", "layers.*.adaLN_modulation.0", "noise_refiner.*.adaLN_modulation.0"],
    },
    source: "diffusers train_dreambooth_lora_z_image.py target_modules (attention); diffusers transformer_z_image.py ZImageTransformerBlock (attention, feed_forward w1/w2/w3, adaLN_modulation)",
    asOf: AS_OF,
  },
} as const satisfies Record<string, ArchTargets>;

export type TargetArch = keyof typeof LORA_TARGETS;

/** Why the built-in trainer's default is `attention` (shown by plan, init and check). */
export const DEFAULT_TARGETS: Sourced & { preset: TargetPreset; why: string } = {
  preset: "attention",
  why: "the attention projections, as diffusers' train_dreambooth_lora_* scripts train them: the fewest modules, the fastest step (Kohya's all-linear SDXL set is 1.26x slower per step on an H200)",
  source: "diffusers examples/dreambooth train_dreambooth_lora_*.py target_modules; bench rows of issue 22 (knowledge/target-speed.ts)",
  asOf: AS_OF,
};

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** One pattern as a regex source: `(?:.*\.)?` + the pattern, `*` one block index (worker/train/targets.py builds the same). */
export function patternRegex(pattern: string): string {
  return `(?:.*\\.)?${pattern.split("*").map(escape).join("\\d+")}`;
}

/** Does a module name match one of `patterns` (peft's suffix rule, `*` a block index)? */
export function matchesPattern(name: string, patterns: readonly string[]): boolean {
  return patterns.some((p) => new RegExp(`^${patternRegex(p)}$`).test(name));
}

/** Every pattern an arch's presets use, and its finer named parts: what `network.modules` may name. */
export function knownModulePatterns(arch: TargetArch): string[] {
  const t: ArchTargets = LORA_TARGETS[arch];
  return [...new Set([...t.presets["all-linear"], ...(t.named?.patterns ?? [])])];
}

export function isTargetArch(arch: string): arch is TargetArch {
  return arch in LORA_TARGETS;
}
