import { describe, expect, it } from "vitest";
import { describeNetwork } from "@loraspec/core/lora/network-kind.js";
import type { KeyInfo } from "@loraspec/core/lora/parse-lora.js";

const t = (name: string, shape: number[]): KeyInfo => ({ name, dtype: "F32", shape });
const K = "lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q";
const P = "unet.down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q";

describe("describeNetwork: the adapter kind of a file, in either naming", () => {
  it("kohya LoRA and DoRA (dora_scale), peft DoRA (lora_magnitude_vector)", () => {
    const lora = [t(`${K}.lora_down.weight`, [16, 640]), t(`${K}.lora_up.weight`, [640, 16]), t(`${K}.alpha`, [])];
    expect(describeNetwork(lora)).toEqual({ type: "lora", kinds: { lora: 1 }, ranks: { "16": 1 } });
    expect(describeNetwork([...lora, t(`${K}.dora_scale`, [640, 1])]).type).toBe("dora");
    const peft = [t(`${P}.lora_A.weight`, [8, 640]), t(`${P}.lora_B.weight`, [640, 8]), t(`${P}.lora_magnitude_vector`, [640])];
    expect(describeNetwork(peft)).toMatchObject({ type: "dora", ranks: { "8": 1 } });
  });

  it("LyCORIS LoKr: rank of the decomposed w2, factor from ss_network_args, w1 shape", () => {
    const lokr = [t(`${K}.lokr_w1`, [4, 4]), t(`${K}.lokr_w2_a`, [160, 8]), t(`${K}.lokr_w2_b`, [8, 160]), t(`${K}.alpha`, [])];
    expect(describeNetwork(lokr, { ss_network_args: '{"algo": "lokr", "factor": "4"}' })).toEqual({
      type: "lokr",
      kinds: { lokr: 1 },
      ranks: { "8": 1 },
      factor: 4,
      w1Shapes: { "4x4": 1 },
    });
  });

  it("peft LoKr with full factors (rank 'full', factor from lora_adapter_metadata) and LoHa", () => {
    const lokr = [t(`${P}.lokr_w1`, [8, 8]), t(`${P}.lokr_w2`, [80, 80])];
    expect(describeNetwork(lokr, { lora_adapter_metadata: JSON.stringify({ "unet.decompose_factor": -1, "unet.r": 4 }) })).toMatchObject({ ranks: { full: 1 }, factor: -1 });
    const loha = ["hada_w1_a", "hada_w2_a"].map((p) => t(`${K}.${p}`, [640, 4])).concat(["hada_w1_b", "hada_w2_b"].map((p) => t(`${K}.${p}`, [4, 640])));
    expect(describeNetwork(loha)).toEqual({ type: "loha", kinds: { loha: 1 }, ranks: { "4": 1 } });
  });

  it("a file mixing kinds says so", () => {
    const keys = [t(`${K}.lora_down.weight`, [4, 640]), t(`${K}.lora_up.weight`, [640, 4]), t(`${P}.lokr_w1`, [8, 8]), t(`${P}.lokr_w2`, [80, 80])];
    expect(describeNetwork(keys)).toMatchObject({ type: "mixed", kinds: { lora: 1, lokr: 1 } });
  });
});
