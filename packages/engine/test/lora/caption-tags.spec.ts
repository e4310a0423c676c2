import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { captionTagsFrom } from "@loraspec/core/lora/caption-tags.js";
import { inspectLora } from "@loraspec/engine/lora/inspect-lora.js";
import { writeSafetensors } from "@loraspec/engine/lora/write-safetensors.js";
import { buildLora, REPO, tempDir } from "./helpers.js";

const cli = (args: string[]) => spawnSync(process.execPath, [join(REPO, "bin/loraspec.mjs"), ...args], { encoding: "utf8", env: { ...process.env, NO_COLOR: "1" } });

/** What sd-scripts writes for one folder: the tag histogram and the folder's image count. */
const kohya = (folder: string, tags: Record<string, unknown>, images?: number): Record<string, string> => ({
  ss_tag_frequency: JSON.stringify({ [folder]: tags }),
  ...(images !== undefined ? { ss_dataset_dirs: JSON.stringify({ [folder]: { n_repeats: 10, img_count: images } }) } : {}),
});

// 20 natural-language captions: each comma phrase in one or two captions, the trigger in all 20.
const natural = { txcl: 20, small: 2, large: 2, "in the center on a grass background": 1, "a woman standing in a park": 1, "wearing a red coat": 1 };

describe("caption tags: a trigger is a tag in nearly every caption of its folder", () => {
  it.each<[string, Record<string, string>, string[], string | RegExp | undefined]>([
    ["natural-language captions with a trigger in all 20", kohya("10_txcl", natural, 20), ["txcl"], undefined],
    ["natural-language captions, no trigger", kohya("10_woman", { ...natural, txcl: 1 }, 20), [], undefined],
    ["tag captions: trigger in every caption, a frequent tag at 18/20 (90%)", kohya("10_txcl", { txcl: 20, "1girl": 18, smile: 17, outdoors: 5 }, 20), ["txcl", "1girl"], undefined],
    ["no ss_dataset_dirs, single folder: ss_num_train_images over the repeats prefix", { ...kohya("10_txcl", { txcl: 20, smile: 3 }), ss_num_train_images: "200" }, ["txcl"], undefined],
    ["no caption count anywhere", kohya("txcl", { txcl: 20, smile: 3 }), [], /does not say how many captions the folder had/],
    ["two folders, one without a count", { ss_tag_frequency: JSON.stringify({ "10_a": { a: 4 }, "5_b": { b: 9 } }), ss_dataset_dirs: JSON.stringify({ "10_a": { img_count: 4 } }) }, ["a"], /1 of 2 folders/],
    ["modelspec.trigger_phrase only", { "modelspec.trigger_phrase": "ohwx man" }, ["ohwx man"], undefined],
    ["ss_tag_frequency not JSON", { ss_tag_frequency: "{not json" }, [], /not a JSON object/],
    ["ss_tag_frequency a JSON array", { ss_tag_frequency: "[1,2]" }, [], /not a JSON object/],
    ["counts not numbers", kohya("10_x", { x: "20", y: null, z: { n: 1 }, w: -3, v: 1.5, u: 20 }, 20), ["u"], /5 count\(s\) .* not whole numbers/],
    ["ss_dataset_dirs not JSON", { ...kohya("10_x", { x: 20 }), ss_dataset_dirs: "nope" }, [], /does not say/],
    ["img_count not a number", kohya("10_x", { x: 20 }, "20" as unknown as number), [], /does not say/],
  ])("%s", (_, metadata, triggers, note) => {
    const r = captionTagsFrom(metadata);
    expect(r.triggerWords).toEqual(triggers);
    if (note === undefined) expect(r.note).toBeUndefined();
    else expect(r.note).toMatch(note);
  });

  it("keeps the whole histogram's top beside the triggers", () => {
    const r = captionTagsFrom(kohya("10_txcl", natural, 20));
    expect(r.top).toEqual([
      { tag: "txcl", count: 20 },
      { tag: "large", count: 2 },
      { tag: "small", count: 2 },
      { tag: "a woman standing in a park", count: 1 },
      { tag: "in the center on a grass background", count: 1 },
    ]);
    expect([r.tags, r.captions]).toEqual([6, 20]);
  });

  it("reads a huge histogram (200,000 tags) in one pass", () => {
    const tags: Record<string, number> = { trig: 1000 };
    for (let i = 0; i < 200_000; i++) tags[`phrase number ${i}`] = 1 + (i % 7);
    const t0 = performance.now();
    const r = captionTagsFrom(kohya("1_trig", tags, 1000));
    expect(r.triggerWords).toEqual(["trig"]);
    expect(r.top).toHaveLength(5);
    expect(r.tags).toBe(200_001);
    expect(performance.now() - t0).toBeLessThan(5000);
  });
});

describe("loraspec inspect: trigger words and frequent tags", () => {
  it("shows only real triggers, the frequent tags apart, and a sentence for an unknown base", async () => {
    const dir = await tempDir();
    const pick = (m: { native: string }) => m.native.startsWith("double_blocks.0.img_attn.qkv");
    const files = {
      natural: join(dir, "natural.safetensors"),
      tagged: join(dir, "tagged.safetensors"),
      hostile: join(dir, "hostile.safetensors"),
      unknown: join(dir, "unknown.safetensors"),
    };
    await buildLora({ path: files.natural, arch: "flux1", format: "kohya", pick, rank: 2, metadata: kohya("10_woman", { ...natural, txcl: 1 }, 20) });
    await buildLora({ path: files.tagged, arch: "flux1", format: "kohya", pick, rank: 2, metadata: kohya("10_txcl", { txcl: 20, "1girl": 12, smile: 7 }, 20) });
    await buildLora({ path: files.hostile, arch: "flux1", format: "kohya", pick, rank: 2, metadata: { ss_tag_frequency: "{\"10_x\": {\"a\": \"many\"", ss_dataset_dirs: "[]" } });
    await writeSafetensors({
      path: files.unknown,
      tensors: [
        { name: "lora_unet_mystery_block.lora_down.weight", dtype: "F32", shape: [2, 4], data: new Uint8Array(32) },
        { name: "lora_unet_mystery_block.lora_up.weight", dtype: "F32", shape: [4, 2], data: new Uint8Array(32) },
      ],
    });

    const out = Object.fromEntries(Object.entries(files).map(([k, f]) => [k, cli(["inspect", f])]));
    for (const r of Object.values(out)) {
      expect(r.status).toBe(0);
      expect(r.stderr).not.toContain("    at ");
    }
    const lines = (k: keyof typeof files) => out[k]!.stdout.split("\n").filter((l) => /^(trigger words|frequent tags|modules) /.test(l));
    expect(lines("natural")).toEqual([
      "modules       1  ranks 2x1  scales 1.000x1",
      "trigger words none: no caption tag is in 90% or more of its folder's captions (natural-language captions have none)",
      "frequent tags large x2, small x2, a woman standing in a park x1, in the center on a grass background x1, txcl x1 (5 most frequent of 6 tag(s) in 20 caption(s))",
    ]);
    expect(lines("tagged")).toEqual([
      "modules       1  ranks 2x1  scales 1.000x1",
      "trigger words txcl",
      "frequent tags txcl x20, 1girl x12, smile x7 (3 most frequent of 3 tag(s) in 20 caption(s))",
    ]);
    expect(lines("hostile")).toEqual(["modules       1  ranks 2x1  scales 1.000x1", "trigger words none: ss_tag_frequency is not a JSON object of folders: not read"]);
    expect(lines("unknown")).toEqual(["modules       none: no key matched a module of a known base model"]);
    expect(out.unknown!.stdout).toContain("base model    unknown");

    const report = await inspectLora({ path: files.tagged });
    expect(report.triggerWords).toEqual(["txcl"]);
    expect(report.captionTags).toMatchObject({ tags: 3, captions: 20, top: [{ tag: "txcl", count: 20 }, { tag: "1girl", count: 12 }, { tag: "smile", count: 7 }] });
  });
});
