import { describe, expect, it } from "vitest";
import { compileFal } from "@loraspec/core/compile/fal/compile-fal.js";
import { FAL_TRAINER_ENDPOINTS } from "@loraspec/core/compile/fal/fal-endpoints.js";
import type { BaseModelId } from "@loraspec/core/knowledge/base-models.js";
import { isLoraspecError } from "@loraspec/core/errors.js";
import { makeContract, TARGETS } from "./contract-fixture.js";
import { expectGolden } from "./golden.js";

const ZIP = "https://v3.fal.media/files/zip/dataset.zip";

describe("compileFal goldens", () => {
  for (const record of FAL_TRAINER_ENDPOINTS) {
    for (const target of TARGETS) {
      it(`${record.endpoint} x ${target}`, () => {
        const contract = makeContract({ base: record.base, target, trainer: "fal", overrides: { trainer: { name: "fal", endpoint: record.endpoint } } });
        const out = compileFal(contract, {}, { zipUrl: ZIP });
        expect(out.endpoint).toBe(record.endpoint);
        expectGolden(`fal/${record.endpoint.replace(/^fal-ai\//, "").replaceAll("/", "_")}-${target}.input.json`, `${JSON.stringify(out.input, null, 2)}\n`);
      });
    }
  }
});

describe("compileFal", () => {
  // The endpoints' crop switches default to on (face/subject); only a character keeps them on.
  it.each([
    ["fal-ai/turbo-flux-trainer", "face_crop", "character", true],
    ["fal-ai/turbo-flux-trainer", "face_crop", "style", false],
    ["fal-ai/turbo-flux-trainer", "face_crop", "product", false],
    ["fal-ai/flux-lora-portrait-trainer", "subject_crop", "character", true],
    ["fal-ai/flux-lora-portrait-trainer", "subject_crop", "style", false],
    ["fal-ai/flux-lora-portrait-trainer", "subject_crop", "product", false],
  ] as const)("%s writes %s for a %s: %s", (endpoint, flag, target, on) => {
    const contract = makeContract({ base: "flux1-dev", target, trainer: "fal", overrides: { trainer: { name: "fal", endpoint } } });
    expect(compileFal(contract, {}, { zipUrl: ZIP }).input[flag]).toBe(on);
  });

  it.each([
    ["flux1-dev", "fal-ai/flux-lora-fast-training", "images_data_url", "trigger_word"],
    ["flux2-dev", "fal-ai/flux-2-trainer", "image_data_url", "default_caption"],
    ["qwen-image", "fal-ai/qwen-image-2512-trainer", "image_data_url", "default_caption"],
    ["zimage-turbo", "fal-ai/z-image-turbo-trainer-v2", "image_data_url", "default_caption"],
    ["flux2-klein-9b", "fal-ai/flux-2-klein-9b-base-trainer", "image_data_url", "default_caption"],
  ] as Array<[BaseModelId, string, string, string]>)("%s defaults to %s with %s and %s", (base, endpoint, zipField, triggerField) => {
    const out = compileFal(makeContract({ base, target: "character", trainer: "fal" }), { steps: 1000 }, { zipUrl: ZIP });
    expect(out.endpoint).toBe(endpoint);
    expect(out.input[zipField]).toBe(ZIP);
    expect(out.input[triggerField]).toBe("txcl");
    expect(out.input.steps).toBe(1000);
  });

  it("uses trigger_phrase and learning_rate for the portrait trainer", () => {
    const contract = makeContract({ base: "flux1-dev", target: "character", trainer: "fal", overrides: { trainer: { name: "fal", endpoint: "fal-ai/flux-lora-portrait-trainer" } } });
    expect(compileFal(contract, { learningRate: 9e-5 }, { zipUrl: ZIP }).input).toEqual({
      images_data_url: ZIP,
      trigger_phrase: "txcl",
      learning_rate: 9e-5,
      steps: 1500,
      subject_crop: true,
    });
  });

  it.each(["sdxl", "flux1-schnell", "flux2-klein-4b", "sd35-large"] as BaseModelId[])("refuses %s (no fal trainer)", (base) => {
    try {
      compileFal(makeContract({ base, target: "character", trainer: "fal" }), {}, { zipUrl: ZIP });
      expect.unreachable();
    } catch (error) {
      expect(isLoraspecError(error) && error.code).toBe("E_TRAINER_UNSUPPORTED");
    }
  });

  it("refuses an endpoint that trains another base model", () => {
    const contract = makeContract({ base: "flux2-dev", target: "character", trainer: "fal", overrides: { trainer: { name: "fal", endpoint: "fal-ai/flux-lora-fast-training" } } });
    expect(() => compileFal(contract, {}, { zipUrl: ZIP })).toThrow(/trains flux1-dev/);
  });
});
