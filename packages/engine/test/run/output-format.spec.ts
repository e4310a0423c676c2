import { existsSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { collectEvents } from "@loraspec/core/events.js";
import { OUTPUT_FORMATS } from "@loraspec/core/contract/ids.js";
import { TARGET_FORMATS } from "@loraspec/core/lora/options.js";
import { inspectLora } from "@loraspec/engine/lora/inspect-lora.js";
import { convertRunOutput } from "@loraspec/engine/run/output-format.js";
import { buildLora, tempDir } from "../lora/helpers.js";

const sdxlPick = (m: { native: string; defaultTarget?: boolean; shape: number[] }) => /(^|\.)(0|1)\./.test(m.native) && !!m.defaultTarget && m.shape.length === 2;

async function finish(path: string, format?: "diffusers" | "kohya" | "comfy") {
  const gen = convertRunOutput({ path, format });
  const events = [];
  let next = await gen.next();
  while (!next.done) {
    events.push(next.value);
    next = await gen.next();
  }
  return { output: next.value, events };
}

describe("output.format: the run's LoRA in the contract's key format", () => {
  it("is the converter's own list of formats", () => {
    expect([...OUTPUT_FORMATS]).toEqual([...TARGET_FORMATS]);
  });

  it("converts a diffusers SDXL LoRA to kohya names beside the trainer's file, metadata kept", async () => {
    const dir = await tempDir();
    const p = join(dir, "txcl.safetensors");
    await buildLora({ path: p, arch: "sdxl", format: "diffusers", pick: sdxlPick, rank: 4, metadata: { ss_output_name: "txcl", "modelspec.trigger_phrase": "txcl" } });
    const { output, events } = await finish(p, "kohya");
    expect(output).toBe(join(dir, "txcl.kohya.safetensors"));
    expect(events.map((e) => e.type)).toContain("phase");
    const r = await inspectLora({ path: output });
    expect([r.format, r.architecture?.id, r.unplaced, r.metadata.ss.ss_output_name, r.metadata.modelspec["modelspec.trigger_phrase"]]).toEqual(["kohya", "sdxl", [], "txcl", "txcl"]);
    expect(existsSync(p)).toBe(true);
  });

  it("leaves a file alone when the format is absent or already the one asked for", async () => {
    const dir = await tempDir();
    const p = join(dir, "k.safetensors");
    await buildLora({ path: p, arch: "sdxl", format: "kohya", pick: sdxlPick, rank: 4 });
    expect((await finish(p)).output).toBe(p);
    expect(await finish(p, "kohya")).toEqual({ output: p, events: [] });
    // Kohya's LyCORIS output is in Kohya names already
    const ly = join(dir, "ly.safetensors");
    await buildLora({ path: ly, arch: "sdxl", format: "kohya", pick: sdxlPick, rank: 4, extra: [{ name: "lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q.lokr_w1", dtype: "F32", shape: [8, 8], data: new Uint8Array(256) }] });
    expect(await finish(ly, "kohya")).toEqual({ output: ly, events: [] });
  });

  it("a module the converter cannot place (a LoKr without its second factor) is refused with its code, naming output.format and the trainer's file", async () => {
    const dir = await tempDir();
    const p = join(dir, "lokr.safetensors");
    await buildLora({
      path: p, arch: "sdxl", format: "diffusers", pick: sdxlPick, rank: 4,
      extra: [{ name: "unet.down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q.lokr_w1", dtype: "F32", shape: [2, 2], data: new Uint8Array(16) }],
    });
    const err = await collectEvents(convertRunOutput({ path: p, format: "kohya" })).catch((e: unknown) => e);
    expect(err).toMatchObject({ field: "output.format" });
    expect((err as { code: string }).code).toMatch(/^E_LORA_/);
    expect((err as { hint: string }).hint).toContain(p);
  });
});
