import { describe, expect, it } from "vitest";
import { parseLora } from "@loraspec/core/lora/parse-lora.js";

/**
 * `diffusion_model.` + lora_A/B is ai-toolkit only for FLUX.2 / Qwen-Image / Z-Image; a FLUX.1 file of
 * BFL names with that prefix is ComfyUI style (shared/reference/lora-formats.md §2b, §2f). inspect
 * called it "ai-toolkit". ai-toolkit's FLUX.2 files stay "ai-toolkit" (convert.spec.ts builds them).
 */
const R = 4;
const ab = (base: string, rows: number, cols: number) => [
  { name: `${base}.lora_A.weight`, dtype: "F32" as const, shape: [R, cols] },
  { name: `${base}.lora_B.weight`, dtype: "F32" as const, shape: [rows, R] },
];

describe("FLUX.1 with diffusion_model. BFL names and lora_A/B", () => {
  it("is ComfyUI style, placed on FLUX.1", () => {
    const tensors = [...ab("diffusion_model.double_blocks.18.img_attn.qkv", 9216, 3072), ...ab("diffusion_model.single_blocks.37.linear1", 21504, 3072)];
    const p = parseLora({ tensors });
    expect([p.format, p.arch?.id, p.placed.length]).toEqual(["comfy", "flux1", 2]);
  });

  it("ai-toolkit's own FLUX.1 layout (transformer. + diffusers names) is still ai-toolkit", () => {
    const tensors = [...ab("transformer.transformer_blocks.18.attn.to_q", 3072, 3072), ...ab("transformer.single_transformer_blocks.37.proj_mlp", 12288, 3072)];
    const p = parseLora({ tensors, metadata: { software: "ai-toolkit" } });
    expect([p.format, p.arch?.id]).toEqual(["ai-toolkit", "flux1"]);
  });
});
