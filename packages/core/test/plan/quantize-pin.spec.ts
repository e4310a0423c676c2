import { describe, expect, it } from "vitest";
import { compileAiToolkit } from "@loraspec/core/compile/ai-toolkit/compile-ai-toolkit.js";
import { compileDiffusers } from "@loraspec/core/compile/diffusers.js";
import { compileFal } from "@loraspec/core/compile/fal/compile-fal.js";
import { compileKohya } from "@loraspec/core/compile/kohya/compile-kohya.js";
import { ContractSchema, type Contract, type ContractInput } from "@loraspec/core/contract/schema.js";
import { isLoraspecError } from "@loraspec/core/errors.js";
import { BASE_MODEL_IDS, type BaseModelId } from "@loraspec/core/knowledge/base-models.js";
import { BUILTIN_TRAINER, builtinArchOf } from "@loraspec/core/knowledge/builtin-trainer.js";
import { lintContract } from "@loraspec/core/lint/lint-contract.js";
import { planRun } from "@loraspec/core/plan/plan-run.js";

/**
 * base.quantize written (none included) is the contract's pin; left out, the plan decides. The built-in
 * trainer's plan picked an fp8 base for a contract that wrote `quantize: none` ("none" was the schema
 * default, so written and left out read the same). Checked against what the worker is sent: the compiled
 * request's quantize.
 */
const PATHS = { datasetDir: "/p/.loraspec/runs/r1/dataset", outputDir: "/p/.loraspec/runs/r1/out", configDir: "/p/.loraspec/runs/r1", trainerDir: "/t" };

function contractOf(base: BaseModelId, trainer: Contract["trainer"]["name"], quantize: "omitted" | "none" | "fp8", vramGb?: number): Contract {
  const input: ContractInput = {
    version: 1,
    name: "txcl-character",
    base: { model: base, path: "/models/base", ...(quantize === "omitted" ? {} : { quantize }) },
    trainer: { name: trainer },
    hardware: trainer === "fal" ? { kind: "fal" } : { kind: "local", gpu: "RTX 4090", ...(vramGb ? { vram_gb: vramGb } : {}) },
    target: "character",
    dataset: { path: "./dataset", expected_images: 20 },
    captions: { style: "natural" },
    trigger: { word: "txcl" },
    hyperparameters: { learning_rate: 1e-4, steps: 1500, save_every: 250 },
  };
  return ContractSchema.parse(input);
}

// Every base the built-in trainer trains (flux2-dev and sd35-large it refuses: check's trainer-unsupported-base).
const BUILTIN_BASES = BASE_MODEL_IDS.filter((b) => b in BUILTIN_TRAINER.bases && builtinArchOf(b).record.trains);
const CEILINGS = [undefined, 16, 24, 48] as const;

describe("base.quantize: a written none is kept by the built-in trainer's plan, left out the plan decides", () => {
  let fp8WhenOmitted = 0;
  let pinOverCeiling = 0;
  const cases = BUILTIN_BASES.flatMap((base) => CEILINGS.map((gb) => [base, gb] as const));
  it.each(cases)("%s, VRAM %s GB", (base, gb) => {
    const run = (q: "omitted" | "none" | "fp8") => {
      const c = contractOf(base, "diffusers", q, gb);
      const plan = planRun(c);
      const request = compileDiffusers(c, { steps: plan.steps, learningRate: plan.learningRate, resolution: plan.resolution }, PATHS).request;
      // what the plan says is what the worker is sent
      expect(request.quantize).toBe(plan.trainSettings.quantize);
      return { c, plan, quantize: request.quantize };
    };
    const pinned = run("none");
    expect(pinned.quantize).toBe("none");
    expect(pinned.plan.trainSettings.choices.find((x) => x.setting === "quantize")).toMatchObject({ value: "none", source: "contract: base.quantize" });

    const omitted = run("omitted");
    expect(["none", "fp8"]).toContain(omitted.quantize);
    const ceiling = gb;
    const bf16Fits = ceiling === undefined || pinned.plan.vram.totalGb <= ceiling;
    // left out, the plan takes fp8 only where the bf16 base does not fit: where it fits, the two read the same
    if (bf16Fits) expect(omitted.quantize).toBe("none");
    if (omitted.quantize === "fp8") fp8WhenOmitted++;

    if (!bf16Fits) {
      // the pin over the ceiling: a coded finding says so, and names the pin, rather than a silent switch
      pinOverCeiling++;
      const finding = lintContract(pinned.c).find((f) => f.rule === "vram-below-profile");
      expect(finding?.severity).toBe("error");
      if (omitted.quantize === "fp8") expect(finding?.message).toMatch(/base\.quantize: none is written, so the plan keeps it/);
      expect(pinned.plan.trainSettings.choices.find((x) => x.setting === "quantize")?.why).toMatch(/over .*check reports vram-below-profile/);
    }

    const fp8 = contractOf(base, "diffusers", "fp8", gb);
    if (base !== "sdxl") expect(planRun(fp8).trainSettings.quantize).toBe("fp8");
  });

  it("the table holds both kinds of case", () => {
    expect(fp8WhenOmitted, "a base the plan puts in fp8 when left out").toBeGreaterThan(0);
    expect(pinOverCeiling, "a written none over the ceiling").toBeGreaterThan(0);
  });
});

/** What each other trainer is handed, as compiled: left out and written none must compile the same (a bf16 base, as before). */
function compiled(c: Contract): unknown {
  const plan = planRun(c);
  const p = { steps: plan.steps, learningRate: plan.learningRate, repeats: plan.repeats, resolution: plan.resolution };
  try {
    if (c.trainer.name === "kohya") return compileKohya(c, p, PATHS).argsToml;
    if (c.trainer.name === "ai-toolkit") return compileAiToolkit(c, p, PATHS).jobYaml;
    return compileFal(c, p, { zipUrl: "https://example.com/d.zip" }).input;
  } catch (error) {
    if (isLoraspecError(error)) return error.code;
    throw error;
  }
}

describe("base.quantize left out reads as none for kohya, ai-toolkit and fal (compiled files and check's findings)", () => {
  const cases = (["kohya", "ai-toolkit", "fal"] as const).flatMap((t) => BASE_MODEL_IDS.map((b) => [t, b] as const));
  it.each(cases)("%s, %s", (trainer, base) => {
    const omitted = contractOf(base, trainer, "omitted", 24);
    const none = contractOf(base, trainer, "none", 24);
    expect(compiled(omitted)).toEqual(compiled(none));
    const rules = (c: Contract) => lintContract(c).map((f) => `${f.rule} ${f.field ?? ""}`);
    expect(rules(omitted)).toEqual(rules(none));
  });
});
