import type { Sourced } from "./types.js";

/** Known tool defects that loraspec works around or warns about (lora-formats.md §2, §5). */
export interface DefectRecord extends Sourced {
  id: string;
  tool: string;
  title: string;
  consequence: string;
  workaround: string;
}

const LF = "shared/reference/lora-formats.md";

export const KNOWN_DEFECTS: readonly DefectRecord[] = [
  {
    id: "sd-scripts#1612",
    tool: "kohya sd-scripts networks/flux_merge_lora.py",
    title: "Flux merge tool does not properly handle LoRA keys from AI-Toolkit",
    consequence: "Every ai-toolkit (diffusers-key) FLUX LoRA key is reported unused and the model file is written unchanged.",
    workaround: "Merge with `loraspec merge`, which counts consumed keys and fails on any unplaced key.",
    source: `https://github.com/kohya-ss/sd-scripts/issues/1612; ${LF} "Issue summaries"`,
    asOf: "2026-08-23",
  },
  {
    id: "sd-scripts#1888",
    tool: "kohya sd-scripts flux_merge_lora.py (multi-LoRA)",
    title: "Merging Multiple Loras - Not working properly",
    consequence: "Multi-LoRA merges silently produce base-model output (checkpoint mode, unmapped names, fp8 arithmetic erasing deltas).",
    workaround: "Merge LoRA+LoRA in fp32 with `loraspec merge` and check the merged delta is non-zero.",
    source: `https://github.com/kohya-ss/sd-scripts/issues/1888; ${LF} "Issue summaries"`,
    asOf: "2026-08-23",
  },
  {
    id: "sd-scripts#2204",
    tool: "kohya sd-scripts networks/lora_flux.py (split_qkv)",
    title: "split_qkv re-fuses into rank n*r but keeps alpha",
    consequence: "Loaders compute alpha/(n*r): the fused qkv/linear1 layers come out 3-4x weaker.",
    workaround: "Do not train kohya FLUX LoRAs with split_qkv=True, or rescale alpha on conversion (`loraspec convert` does).",
    source: `https://github.com/kohya-ss/sd-scripts/issues/2204; ${LF} §2b`,
    asOf: "2026-08-23",
  },
];

export function getDefect(id: string): DefectRecord | undefined {
  return KNOWN_DEFECTS.find((d) => d.id === id);
}
