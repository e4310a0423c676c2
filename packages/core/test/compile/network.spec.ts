import { describe, expect, it } from "vitest";
import { compileKohya } from "@loraspec/core/compile/kohya/compile-kohya.js";
import { compileAiToolkit } from "@loraspec/core/compile/ai-toolkit/compile-ai-toolkit.js";
import { compileFal } from "@loraspec/core/compile/fal/compile-fal.js";
import { compileDiffusers } from "@loraspec/core/compile/diffusers.js";
import { lintContract } from "@loraspec/core/lint/lint-contract.js";
import { KOHYA_PIN } from "@loraspec/core/trainers/pins.js";
import { LYCORIS_PIN } from "@loraspec/core/knowledge/network-types.js";
import type { NetworkType } from "@loraspec/core/contract/ids.js";
import { makeContract, PATHS } from "./contract-fixture.js";

/** network.type and network.factor as each trainer is told them (knowledge/network-types.ts). */
const net = (type: NetworkType, factor?: number) => ({ network: { type, ...(factor !== undefined ? { factor } : {}) } });

describe("network.type per trainer", () => {
  it("the built-in trainer's request carries the kind and LoKr's factor (-1 by default)", () => {
    const req = (type: NetworkType, factor?: number) =>
      compileDiffusers(makeContract({ base: "sdxl", target: "character", trainer: "kohya", overrides: { ...net(type, factor), trainer: { name: "diffusers" } } }), {}, PATHS).request;
    expect(req("lora")).toMatchObject({ network_type: "lora", network_factor: -1 });
    expect(req("lokr")).toMatchObject({ network_type: "lokr", network_factor: -1 });
    expect(req("lokr", 8)).toMatchObject({ network_type: "lokr", network_factor: 8 });
    expect(req("loha")).toMatchObject({ network_type: "loha" });
  });

  it("kohya: LyCORIS's kohya module with algo, factor and dora_wd; plain LoRA keeps the script's module", () => {
    const args = (type: NetworkType, factor?: number, base: "sdxl" | "flux1-dev" = "sdxl") =>
      compileKohya(makeContract({ base, target: "character", trainer: "kohya", path: base === "sdxl" ? undefined : "/models/flux", overrides: net(type, factor) }), {}, PATHS).argsToml;
    expect(args("lora")).toContain('network_module = "networks.lora"');
    expect(args("lora", undefined, "flux1-dev")).toContain('network_module = "networks.lora_flux"');
    expect(args("lokr", 4)).toContain('network_module = "lycoris.kohya"');
    expect(args("lokr", 4)).toMatch(/network_args = \[\s*"algo=lokr",\s*"factor=4"\s*\]/);
    expect(args("lokr", undefined, "flux1-dev")).toMatch(/"algo=lokr",\s*"factor=-1"/);
    expect(args("dora")).toMatch(/"algo=lora",\s*"dora_wd=True"/);
    expect(args("loha")).toMatch(/network_args = \[\s*"algo=loha"\s*\]/);
    expect(KOHYA_PIN.extraPackages).toContain(LYCORIS_PIN.package);
  });

  it("ai-toolkit: type lora/dora/lokr (lokr_factor, the contract's rank kept); LoHa refused naming network.type", () => {
    const network = (type: NetworkType, factor?: number) => {
      const out = compileAiToolkit(makeContract({ base: "flux1-dev", target: "character", trainer: "ai-toolkit", overrides: net(type, factor) }), {}, PATHS);
      return (out.job as { config: { process: Array<{ network: Record<string, unknown> }> } }).config.process[0]!.network;
    };
    expect(network("lora")).toEqual({ type: "lora", linear: 16, linear_alpha: 16 });
    expect(network("dora")).toMatchObject({ type: "dora", linear: 16 });
    expect(network("lokr", 8)).toEqual({ type: "lokr", linear: 16, linear_alpha: 16, lokr_full_rank: false, lokr_factor: 8 });
    expect(() => network("loha")).toThrow(expect.objectContaining({ code: "E_TRAINER_UNSUPPORTED", field: "network.type" }));
  });

  it("fal: LoRA only, refused by the compiler and by lint naming network.type", () => {
    const c = makeContract({ base: "flux1-dev", target: "character", trainer: "fal", overrides: net("dora") });
    expect(() => compileFal(c, {}, { zipUrl: "https://x/zip" })).toThrow(expect.objectContaining({ code: "E_TRAINER_UNSUPPORTED", field: "network.type" }));
    expect(lintContract(c).filter((f) => f.rule === "network-type-unsupported").map((f) => [f.severity, f.field])).toEqual([["error", "network.type"]]);
  });

  it("a factor with a kind other than lokr is a warning naming network.factor", () => {
    const findings = (type: NetworkType) => lintContract(makeContract({ base: "sdxl", target: "character", trainer: "kohya", overrides: net(type, 4) })).filter((f) => f.rule === "network-factor-unused");
    expect(findings("lora").map((f) => f.field)).toEqual(["network.factor"]);
    expect(findings("lokr")).toEqual([]);
  });
});

describe("output.format with a non-LoRA kind", () => {
  const rule = (trainer: "diffusers" | "kohya" | "ai-toolkit", type: NetworkType, format?: "diffusers" | "kohya" | "comfy") =>
    lintContract(
      makeContract({ base: "flux1-dev", target: "character", trainer: trainer === "diffusers" ? "kohya" : trainer, path: "/models/flux", overrides: { ...net(type), trainer: { name: trainer }, ...(format ? { output: { format } } : {}) } }),
    ).filter((f) => f.rule === "output-format-unsupported");

  it("is an error naming output.format when the file would need converting", () => {
    expect(rule("diffusers", "lokr", "kohya").map((f) => [f.severity, f.field])).toEqual([["error", "output.format"]]);
    expect(rule("ai-toolkit", "dora", "diffusers")).toHaveLength(1);
  });

  it("is fine on a base whose modules are whole in both namings (SDXL: plan-lycoris renames them)", () => {
    const c = makeContract({ base: "sdxl", target: "character", trainer: "kohya", overrides: { ...net("lokr"), trainer: { name: "diffusers" }, output: { format: "kohya" } } });
    expect(lintContract(c).filter((f) => f.rule === "output-format-unsupported")).toEqual([]);
  });

  it("names the FLUX bases exactly: the lora architectures with fused (several-part) modules", async () => {
    const { architectures } = await import("@loraspec/core/lora/architectures.js");
    const { FUSED_PROJECTION_BASES } = await import("@loraspec/core/knowledge/network-types.js");
    const fused = architectures().filter((a) => a.modules.some((m) => m.parts.length > 1)).map((a) => a.id).sort();
    expect(fused).toEqual(["flux1", "flux2-dev", "flux2-klein-4b", "flux2-klein-9b"]);
    expect([...FUSED_PROJECTION_BASES.bases].sort()).toEqual(["flux1-dev", "flux1-schnell", "flux2-dev", "flux2-klein-4b", "flux2-klein-9b"]);
  });

  it("is fine when the trainer writes that format already, when it is left out, or for plain LoRA", () => {
    expect(rule("diffusers", "lokr", "diffusers")).toEqual([]);
    expect(rule("kohya", "loha", "kohya")).toEqual([]);
    expect(rule("diffusers", "lokr")).toEqual([]);
    expect(rule("diffusers", "lora", "comfy")).toEqual([]);
  });
});

describe("network.factor in the contract", () => {
  it("takes -1 or a factor of 1 or more; 0 is a schema error naming the field", () => {
    const parse = (factor: number) => {
      try {
        makeContract({ base: "sdxl", target: "character", trainer: "kohya", overrides: net("lokr", factor) });
        return "ok";
      } catch (error) {
        return String((error as Error).message).includes("factor") ? "factor refused" : String(error);
      }
    };
    expect([parse(-1), parse(1), parse(8), parse(0), parse(-2)]).toEqual(["ok", "ok", "ok", "factor refused", "factor refused"]);
  });
});

describe("the built-in trainer's file header", () => {
  it("names the sd-scripts module Kohya trains each base with (ss_network_module of a plain LoRA)", async () => {
    const { KOHYA_PROFILES } = await import("@loraspec/core/compile/kohya/kohya-profiles.js");
    const { BUILTIN_TRAINER } = await import("@loraspec/core/knowledge/builtin-trainer.js");
    expect(BUILTIN_TRAINER.fileMetadata.sdxl.networkModule).toBe(KOHYA_PROFILES.sdxl!.networkModule);
    expect(BUILTIN_TRAINER.fileMetadata.flux1.networkModule).toBe(KOHYA_PROFILES["flux1-dev"]!.networkModule);
  });
});

describe("DoRA/LoKr/LoHa and the built-in trainer's fp8 base", () => {
  const request = (type: NetworkType, vram: number, quantize: "none" | "fp8" = "none") =>
    compileDiffusers(
      makeContract({ base: "flux1-dev", target: "character", trainer: "kohya", path: "/models/flux", overrides: { ...net(type), trainer: { name: "diffusers" }, base: { model: "flux1-dev", quantize }, hardware: { kind: "local", gpu: "H100", vram_gb: vram } } }),
      {},
      PATHS,
    ).request;

  it("the plan never picks an fp8 base or fp8 GEMMs for them (peft reads the base layer's weight)", () => {
    for (const vram of [16, 24, 80]) {
      const r = request("lokr", vram);
      expect([r.quantize, r.fp8_matmul]).toEqual(["none", false]);
    }
  });

  it("base.quantize fp8 with them is a lint error naming base.quantize", () => {
    const c = makeContract({ base: "flux1-dev", target: "character", trainer: "kohya", path: "/models/flux", overrides: { ...net("dora"), trainer: { name: "diffusers" }, base: { model: "flux1-dev", quantize: "fp8" } } });
    expect(lintContract(c).filter((f) => f.rule === "network-type-fp8-base").map((f) => f.field)).toEqual(["base.quantize"]);
  });
});

describe("network.targets with a LyCORIS kind on Kohya", () => {
  it("is refused by the compiler and lint, naming the targets field (LyCORIS does not read networks.lora's arguments)", () => {
    const c = makeContract({ base: "sdxl", target: "character", trainer: "kohya", overrides: { network: { type: "lokr", targets: "attention-mlp" } } });
    expect(() => compileKohya(c, {}, PATHS)).toThrow(expect.objectContaining({ code: "E_TRAINER_UNSUPPORTED", field: "network.targets" }));
    expect(lintContract(c).filter((f) => f.rule === "network-type-unsupported").map((f) => f.field)).toEqual(["network.targets"]);
    const lora = makeContract({ base: "sdxl", target: "character", trainer: "kohya", overrides: { network: { type: "lora", targets: "attention-mlp" } } });
    expect(lintContract(lora).filter((f) => f.rule === "network-type-unsupported")).toEqual([]);
  });
});
