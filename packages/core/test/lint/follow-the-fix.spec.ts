import { describe, expect, it } from "vitest";
import { ContractSchema, type Contract, type ContractInput } from "@loraspec/core/contract/schema.js";
import { TRAINER_IDS, type TrainerId } from "@loraspec/core/contract/ids.js";
import { BASE_MODEL_IDS, type BaseModelId } from "@loraspec/core/knowledge/base-models.js";
import { lintContract } from "@loraspec/core/lint/lint-contract.js";
import { isLoraspecError } from "@loraspec/core/errors.js";
import { compileAiToolkit } from "@loraspec/core/compile/ai-toolkit/compile-ai-toolkit.js";
import { compileKohya } from "@loraspec/core/compile/kohya/compile-kohya.js";
import { compileDiffusers } from "@loraspec/core/compile/diffusers.js";

/**
 * A refusal's fix must name something that works: following it (each trainer or value it names, one at a time)
 * gives a contract without that finding. SD3.5 Large's fixes sent the user in a circle (Kohya: use diffusers;
 * diffusers: use kohya; ai-toolkit: either; all refuse it) and network-targets-unsupported said "Use
 * network.targets, or the built-in trainer." Table: trainer x base x network setting; every error finding whose
 * fix names a trainer.name, a base.model or a field to remove is followed. The compilers' hints are the same text.
 */
const NETWORK: Array<[string, ContractInput["network"]]> = [
  ["no network fields", undefined],
  ["targets attention", { targets: "attention" }],
  ["targets all-linear", { targets: "all-linear" }],
  ["modules [to_q, to_v]", { modules: ["to_q", "to_v"] }],
  ["type dora", { type: "dora" }],
  ["type loha", { type: "loha" }],
  ["type lokr + targets attention", { type: "lokr", targets: "attention" }],
];
const RULES = ["trainer-unsupported-base", "network-targets-unsupported", "network-type-unsupported", "network-type-fp8-base"];

function contractOf(trainer: TrainerId, base: BaseModelId, network: ContractInput["network"], over: Partial<ContractInput> = {}): Contract | undefined {
  const input: ContractInput = {
    version: 1,
    name: "txcl",
    base: { model: base, path: "/models/base.safetensors" },
    trainer: { name: trainer },
    hardware: trainer === "fal" ? { kind: "fal" } : { kind: "local", gpu: "H200", vram_gb: 141 },
    target: "character",
    dataset: { path: "./dataset", expected_images: 20 },
    captions: { style: "natural" },
    trigger: { word: "txcl" },
    hyperparameters: { learning_rate: 1e-4, steps: 2000, save_every: 250 },
    ...(network ? { network } : {}),
    ...over,
  };
  const r = ContractSchema.safeParse(input);
  return r.success ? r.data : undefined;
}

/** Each way to follow a fix, as a new contract (undefined: the fix names nothing to follow mechanically). */
function follow(c: Contract, fix: string): Array<{ how: string; c: Contract | undefined }> {
  const out: Array<{ how: string; c: Contract | undefined }> = [];
  for (const m of fix.matchAll(/trainer\.name: ([a-z-]+)(?: \(with hardware\.kind: (local|fal)\))?/g)) {
    const t = m[1] as TrainerId;
    const kind = (m[2] as "local" | "fal" | undefined) ?? c.hardware.kind;
    const hardware = kind === "fal" ? { kind: "fal" as const } : { kind: "local" as const, gpu: "H200", vram_gb: 141 };
    out.push({ how: m[0], c: contractOf(t, c.base.model, c.network, { hardware, base: c.base }) });
  }
  for (const m of fix.matchAll(/base\.model: ([a-z0-9.-]+)/g)) {
    out.push({ how: m[0], c: contractOf(c.trainer.name, m[1] as BaseModelId, undefined, { base: { model: m[1] as BaseModelId, path: "/models/base.safetensors" } }) });
  }
  for (const m of fix.matchAll(/(?:Remove|Leave) (network\.targets|network\.modules)/g)) {
    const { targets: _t, modules: _m, ...rest } = c.network;
    out.push({ how: m[0], c: contractOf(c.trainer.name, c.base.model, rest, { base: c.base }) });
  }
  for (const m of fix.matchAll(/network\.type: lora/g)) out.push({ how: m[0], c: contractOf(c.trainer.name, c.base.model, { ...c.network, type: "lora" }, { base: c.base }) });
  for (const m of fix.matchAll(/base\.quantize: none/g)) out.push({ how: m[0], c: contractOf(c.trainer.name, c.base.model, c.network, { base: { ...c.base, quantize: "none" } }) });
  return out;
}

const cases = TRAINER_IDS.flatMap((t) => BASE_MODEL_IDS.flatMap((b) => NETWORK.map(([label, n]) => [t, b, label, n] as const)));
/** DoRA over an fp8 base (network-type-fp8-base on the built-in trainer). */
const fp8Cases = TRAINER_IDS.flatMap((t) => BASE_MODEL_IDS.map((b) => [t, b, "type dora, base.quantize fp8", { type: "dora" as const }] as const));

describe("following a refusal's fix clears it", () => {
  it("the table reaches both rules, SD3.5 Large on every trainer among them, and its fix leaves the circle", () => {
    const found = cases.flatMap(([t, b, , n]) => {
      const c = contractOf(t, b, n);
      return c ? lintContract(c).filter((x) => x.rule === "trainer-unsupported-base" || x.rule === "network-targets-unsupported").map((x) => ({ t, b, x })) : [];
    });
    expect(new Set(found.map((f) => f.x.rule))).toEqual(new Set(["trainer-unsupported-base", "network-targets-unsupported"]));
    const sd35 = found.filter((f) => f.b === "sd35-large" && f.x.rule === "trainer-unsupported-base");
    expect(new Set(sd35.map((f) => f.t))).toEqual(new Set(TRAINER_IDS));
    for (const f of sd35) expect(f.x.fix).toMatch(/^No trainer loraspec drives trains Stable Diffusion 3\.5 Large yet: pick another base\.model/);
    expect(found.length).toBeGreaterThan(40);
  });

  it.each([...cases, ...fp8Cases])("%s / %s / %s", (trainer, base, label, network) => {
    const c = contractOf(trainer, base, network, label.includes("fp8") ? { base: { model: base, path: "/models/base.safetensors", quantize: "fp8" } } : {});
    if (!c) return;
    for (const f of lintContract(c).filter((x) => x.severity === "error" && RULES.includes(x.rule))) {
      const ways = follow(c, f.fix);
      expect(ways.length, `${f.rule}: the fix names nothing that can be followed: ${f.fix}`).toBeGreaterThan(0);
      for (const way of ways) {
        expect(way.c, `${f.rule}: ${way.how} is not a valid contract`).toBeDefined();
        const again = lintContract(way.c!).filter((x) => x.rule === f.rule);
        expect(again, `${f.rule}: following '${way.how}' of '${f.fix}' still gives ${again.map((x) => x.message).join("; ")}`).toEqual([]);
      }
    }
  });

  it.each(cases.filter(([t]) => t !== "fal"))("the compiler's hint is the finding's fix: %s / %s / %s", (trainer, base, _label, network) => {
    const c = contractOf(trainer, base, network);
    if (!c) return;
    const finding = lintContract(c).find((x) => x.severity === "error" && (x.rule === "trainer-unsupported-base" || x.rule === "network-targets-unsupported"));
    if (!finding) return;
    const paths = { datasetDir: "/d", outputDir: "/o" };
    let hint: string | undefined;
    try {
      if (trainer === "kohya") compileKohya(c, {}, paths);
      else if (trainer === "ai-toolkit") compileAiToolkit(c, {}, paths);
      else compileDiffusers(c, {}, paths);
    } catch (error) {
      if (!isLoraspecError(error)) throw error;
      hint = error.hint;
    }
    expect(hint, "the compiler refuses it too").toBeDefined();
    expect(hint!.startsWith(finding.fix.replace(/\.$/, "").slice(0, 40))).toBe(true);
  });
});
