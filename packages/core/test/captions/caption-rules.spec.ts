import { describe, expect, it } from "vitest";
import { captionPrompt, finalizeCaption } from "@loraspec/core/captions/caption-prompts.js";
import { checkCaption, fixCaption, isTagCluster, mentionedVariations, startsWithTrigger } from "@loraspec/core/captions/caption-rules.js";

describe("startsWithTrigger", () => {
  it.each([
    ["txcl, a man standing", "txcl", true],
    ["TXCL a man", "txcl", true],
    ["txclx, a man", "txcl", false],
    ["a photo of txcl", "txcl", false],
    ["\uFEFF  txcl  smiling", "txcl", true],
    ["ohwx-man, in a park", "ohwx-man", true],
  ])("%j with %j -> %j", (caption, trigger, expected) => {
    expect(startsWithTrigger(caption, trigger)).toBe(expected);
  });
});

describe("isTagCluster", () => {
  it.each([
    ["1girl, red hair, smiling, outdoors, upper body", true],
    ["txcl, solo, looking at viewer, studio lighting", true],
    ["a photo of a man standing in a park, smiling at the camera", false],
    ["txcl, a woman with red hair sits on a bench in the park while the sun sets", false],
    ["red hair, smiling", false],
    ["", false],
  ])("%j -> %j", (caption, expected) => {
    expect(isTagCluster(caption)).toBe(expected);
  });
});

describe("mentionedVariations", () => {
  it.each([
    ["txcl, close-up portrait, smiling, soft daylight, in a kitchen", ["lighting", "background", "framing", "expression"]],
    ["txcl standing, wearing a red jacket", ["pose", "clothing"]],
    ["txcl", []],
  ])("%j -> %j", (caption, expected) => {
    expect(mentionedVariations(caption).sort()).toEqual([...expected].sort());
  });
});

describe("checkCaption", () => {
  const codes = (p: Parameters<typeof checkCaption>[0]) => checkCaption(p).map((f) => f.code);
  it.each([
    [{ caption: undefined, trigger: "txcl", style: "natural" as const }, ["caption-empty"]],
    [{ caption: "   ", trigger: "txcl", style: "natural" as const }, ["caption-empty"]],
    [{ caption: "txcl, a man standing outdoors", trigger: "txcl", style: "natural" as const, target: "character" as const }, []],
    [{ caption: "a man standing outdoors with txcl", trigger: "txcl", style: "natural" as const }, ["trigger-not-first"]],
    [{ caption: "a man standing outdoors", trigger: "txcl", style: "natural" as const }, ["trigger-missing"]],
    [{ caption: "a man standing outdoors with txcl", trigger: "txcl", style: "natural" as const, triggerPlacement: "anywhere" as const }, []],
    [{ caption: "a man standing outdoors", trigger: "txcl", style: "natural" as const, triggerPlacement: "anywhere" as const }, ["trigger-missing"]],
    [{ caption: "txcl, 1boy, solo, outdoors, smiling", trigger: "txcl", style: "natural" as const }, ["tags-on-natural-base"]],
    [{ caption: "txcl, 1boy, solo, outdoors, smiling", trigger: "txcl", style: "tags" as const }, []],
    [{ caption: "txcl, 1boy, solo, outdoors, smiling", trigger: "txcl", style: "tags" as const, naturalLanguageEncoder: true }, ["tags-on-natural-base"]],
    [{ caption: "txcl, a man", trigger: "txcl", style: "natural" as const, target: "character" as const }, ["no-variation-mentioned"]],
    [{ caption: "txcl, a man", trigger: "txcl", style: "natural" as const, target: "style" as const }, []],
  ])("%j -> %j", (params, expected) => {
    expect(codes(params)).toEqual(expected);
  });
});

describe("fixCaption", () => {
  it.each([
    ["a photo of a man", "txcl", "natural", "txcl, a photo of a man"],
    ["TXCL, a photo", "txcl", "natural", "txcl, a photo"],
    ["txcl, already first", "txcl", "natural", "txcl, already first"],
    // The trigger moves to the front (README): its other occurrence goes; a possessive stays.
    ["a photo of txcl in a park", "txcl", "natural", "txcl, a photo of in a park"],
    ["a photo of txcl sitting on txcl's chair", "txcl", "natural", "txcl, a photo of sitting on txcl's chair"],
    ["1girl, txcl, red hair, smiling", "txcl", "tags", "txcl, 1girl, red hair, smiling"],
    ["1girl, txcl, red hair, smiling", "txcl", "natural", "txcl, 1girl, red hair, smiling"],
    ["", "txcl", "natural", "txcl"],
  ] as const)("%j -> %j", (caption, trigger, style, expected) => {
    expect(fixCaption(caption, trigger, style)).toBe(expected);
    // Idempotent: fixing a fixed caption changes nothing.
    expect(fixCaption(fixCaption(caption, trigger, style), trigger, style)).toBe(expected);
  });
});

describe("finalizeCaption and captionPrompt", () => {
  it.each([
    ["The image shows a man standing in a park.", "txcl, a man standing in a park."],
    ['"A photo of a man smiling."', "txcl, a man smiling."],
    ["Here is a caption: txcl sits on a bench", "txcl sits on a bench"],
    ["Caption: a dog", "txcl, a dog"],
  ])("%j -> %j", (raw, expected) => {
    expect(finalizeCaption(raw, "txcl", "natural")).toBe(expected);
  });

  it("joins tag lines and puts the trigger tag first", () => {
    expect(finalizeCaption("solo\nsmiling\ntxcl", "txcl", "tags")).toBe("txcl, solo, smiling");
  });

  it("names the trigger in prompts for characters and products, not styles", () => {
    expect(captionPrompt("natural", "character", "txcl")).toContain('"txcl"');
    expect(captionPrompt("natural", "product", "txcl")).toContain('"txcl"');
    expect(captionPrompt("natural", "style", "txcl")).not.toContain("txcl");
    expect(captionPrompt("tags", "character", "txcl")).toMatch(/tags/i);
  });
});
