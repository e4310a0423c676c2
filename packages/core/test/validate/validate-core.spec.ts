import { describe, expect, it } from "vitest";
import {
  adapterName,
  buildScoreRequest,
  judgeValidation,
  planValidation,
  rate,
  setId,
  withoutTrigger,
  withTrigger,
  variationPrompts,
  type RubricSpec,
  type ScoreResult,
} from "@loraspec/core/validate/index.js";
import { contractJsonSchema } from "@loraspec/core/contract/json-schema.js";
import { VALIDATION_THRESHOLDS, validationThreshold, type ValidationThresholdId } from "@loraspec/core/knowledge/validation-thresholds.js";
import { adviceOf, type CheckId, type ValidationVerdicts } from "@loraspec/core/validate/judge-validation.js";

const rubric: RubricSpec = {
  seeds: [1, 2],
  trigger_prompts: ["a photo of {trigger}"],
  pose_variations: 10,
  novel_scenes: ["{trigger} on the moon"],
  stack: [],
  self_weight: 0.5,
  weight_sweep: [0.6, 1.0],
};

/** The first weight's check `check` and its measure `id`. */
function measureOf(v: ValidationVerdicts, check: CheckId, id: string) {
  const c = v.weights[0]!.checks.find((x) => x.check === check)!;
  return { check: c, m: c.measures.find((x) => x.id === id)! };
}

describe("trigger on/off prompts", () => {
  it.each([
    ["a photo of {trigger}", "a photo of txcl", "a photo of"],
    ["{trigger} on the moon", "txcl on the moon", "on the moon"],
    ["{trigger}, portrait, studio light", "txcl, portrait, studio light", "portrait, studio light"],
    ["portrait of a man", "txcl, portrait of a man", "portrait of a man"],
  ])("%s", (prompt, on, off) => {
    expect(withTrigger(prompt, "txcl")).toBe(on);
    expect(withoutTrigger(prompt, "txcl")).toBe(off);
  });
});

describe("adapterName", () => {
  it.each([
    ["/x/my-lora.safetensors", "my_lora"],
    ["C:\\x\\1st.safetensors", "l_1st"],
    ["https://host/a/b.c.safetensors", "b_c"],
  ])("%s -> %s", (path, name) => expect(adapterName(path)).toBe(name));
  it("keeps names unique", () => expect(adapterName("/a/x.safetensors", new Set(["x"]))).toBe("x_2"));
});

describe("planValidation", () => {
  const plan = planValidation({ rubric, trigger: "txcl", target: "character", candidates: [{ name: "me", path: "/l/me.safetensors" }] });

  it("pairs every trigger prompt x seed with and without the trigger, for the LoRA and the base", () => {
    expect(plan.weights.map((w) => w.weight)).toEqual([0.6, 1.0]);
    const w = plan.weights[0]!;
    expect(w.trigger).toHaveLength(2);
    const byId = new Map(plan.jobs.map((j) => [j.id, j]));
    const t = w.trigger[0]!;
    expect(byId.get(t.with)).toMatchObject({ prompt: "a photo of txcl", seed: 1, adapters: [{ weight: 0.6 }] });
    expect(byId.get(t.without)).toMatchObject({ prompt: "a photo of", seed: 1 });
    expect(byId.get(t.baseWith)!.adapters).toEqual([]);
  });

  it("shares base images between weights (no duplicate renders)", () => {
    const keys = plan.jobs.map((j) => JSON.stringify([j.prompt, j.seed, j.adapters]));
    expect(new Set(keys).size).toBe(keys.length);
    expect(plan.weights[0]!.trigger[0]!.baseWith).toBe(plan.weights[1]!.trigger[0]!.baseWith);
    // 2 weights x (2 on + 2 off + 10 variations + 2 scenes) + base (2 + 2 + 10 + 2)
    expect(plan.jobs).toHaveLength(2 * 16 + 16);
  });

  it("at least ten distinct variation prompts", () => {
    const prompts = plan.weights[0]!.variations.map((id) => plan.jobs.find((j) => j.id === id)!.prompt);
    expect(new Set(prompts).size).toBe(10);
    expect(prompts.every((p) => p.includes("txcl"))).toBe(true);
  });

  it.each([
    [[{ lora: "/o/style.safetensors", weight: 0.3 }], 0.5, []],
    [[{ lora: "/o/style.safetensors", weight: 0.6 }], 0.5, ["W_STACK_WEIGHT"]],
    [[{ lora: "/o/a.safetensors", weight: 0.1 }, { lora: "/o/b.safetensors", weight: 0.1 }], 0.5, ["W_STACK_COUNT"]],
  ])("stack %j at self %s warns %j", (stack, self, codes) => {
    const p = planValidation({ rubric: { ...rubric, stack, self_weight: self }, trigger: "txcl", target: "style", candidates: [{ name: "me", path: "/l/me.safetensors" }] });
    expect(p.warnings.map((w) => w.code)).toEqual(codes);
    expect(p.stack!.adapters[0]).toMatchObject({ name: "me", weight: self });
    const stackJob = p.jobs.find((j) => j.id === p.stack!.items[0]!.stack)!;
    expect(stackJob.adapters.map((a) => a.weight).reduce((a, b) => a + b)).toBeCloseTo(p.stack!.combinedWeight);
  });

  it("compares checkpoints at one weight", () => {
    const p = planValidation({
      rubric,
      trigger: "txcl",
      target: "character",
      candidates: [
        { name: "step 2", path: "/r/ck-2.safetensors", step: 2 },
        { name: "step 4", path: "/r/ck-4.safetensors", step: 4 },
      ],
      weights: [1],
    });
    expect(p.weights.map((w) => [w.step, w.weight])).toEqual([[2, 1], [4, 1]]);
  });
});

describe("thresholds", () => {
  it("every record has a source and a date, and pass is on the better side of warn", () => {
    for (const t of VALIDATION_THRESHOLDS) {
      expect(t.source.length).toBeGreaterThan(10);
      expect(t.asOf).toMatch(/^\d{4}-\d{2}/);
      expect(t.better === "higher" ? t.pass >= t.warn : t.pass <= t.warn).toBe(true);
    }
  });
  it.each([
    ["trigger_effect", 0, "fail"],
    ["trigger_effect", 0.03, "warn"],
    ["trigger_effect", 0.2, "pass"],
    ["mode_collapse_share", 0.9, "fail"],
    ["mode_collapse_share", 0.5, "pass"],
    ["stack_combined_weight", 1.0, "pass"],
    ["stack_combined_weight", 1.1, "fail"],
    ["stack_adapter_count", 3, "warn"],
    ["subject_fidelity_ratio", null, "skip"],
  ] as const)("%s = %s -> %s", (id, value, status) => expect(rate(id, value).status).toBe(status));
});

describe("judgeValidation", () => {
  const plan = planValidation({ rubric, trigger: "txcl", target: "character", candidates: [{ name: "me", path: "/l/me.safetensors" }] });
  const request = buildScoreRequest({ plan, image: (id) => `/img/${id}.png`, reference: ["/d/1.png", "/d/2.png", "/d/3.png"] });

  function scores(effect: (key: string) => number): ScoreResult {
    const sets: ScoreResult["sets"] = {};
    // The LoRA's images look like the training set, the base's and its trigger-less ones less so.
    const fidelity = (id: string) => (id.endsWith(":base") || id.startsWith("trigger-off:") ? 0.7 : 0.8);
    for (const s of request.sets) sets[s.id] = { count: s.images.length, fidelity_clip: fidelity(s.id), diversity: 0.3, collapse_share: 0.4, near_duplicate_share: 0, clip_t: 0.3 };
    return {
      embedder: { clip: "tiny" },
      reference: { count: 3, pairwise_clip: 0.85 },
      trigger: Object.fromEntries(request.trigger.map((t) => [t.id, { distance: 0.1 + effect(t.id), base_distance: 0.1, effect: effect(t.id) }])),
      sets,
      stack: {},
    };
  }

  it("an untrained LoRA (no effect beyond the base) fails the trigger check", () => {
    const v = judgeValidation({ plan, scores: scores(() => 0) });
    for (const w of v.weights) expect(w.checks.find((c) => c.check === "trigger")!.status).toBe("fail");
    expect(v.status).toBe("fail");
  });

  it("picks the weight that best satisfies checks 1-3", () => {
    const v = judgeValidation({ plan, scores: scores((key) => (key.endsWith("@0.6") ? 0.01 : 0.3)) });
    expect(v.best).toMatchObject({ weight: 1 });
    expect(v.status).toBe("pass");
    expect(v.weights.find((w) => w.weight === 0.6)!.status).toBe("fail");
  });

  it("asks for every image set the judge reads", () => {
    expect(request.sets.map((s) => s.id)).toEqual(
      expect.arrayContaining([setId.baseVariations, setId.baseScenes, setId.variations("me@0.6"), setId.scenes("me@1")]),
    );
  });
});

describe("mode collapse is judged against the base model", () => {
  const plan = planValidation({ rubric, trigger: "txcl", target: "character", candidates: [{ name: "me", path: "/l/me.safetensors" }] });
  const request = buildScoreRequest({ plan, image: (id) => id, reference: ["a", "b", "c"] });
  it.each([
    [1.0, 1.0, "pass"],
    [1.0, 0.25, "fail"],
    [0.7, 0.25, "warn"],
    [0.25, 0.25, "pass"],
  ])("LoRA share %s, base share %s -> %s", (share, baseShare, status) => {
    const sets: ScoreResult["sets"] = {};
    for (const s of request.sets) sets[s.id] = { count: 4, diversity: 0.3, collapse_share: s.id === setId.baseVariations ? baseShare : share };
    const v = judgeValidation({
      plan,
      scores: { embedder: { clip: "x" }, reference: { count: 3 }, trigger: {}, sets, stack: {} },
    });
    expect(measureOf(v, "consistency", "mode_collapse_share").m.status).toBe(status);
  });
});

describe("leak: the concept without the trigger, against the base model's trigger-less images", () => {
  const plan = planValidation({ rubric, trigger: "txcl", target: "character", candidates: [{ name: "me", path: "/l/me.safetensors" }] });
  const request = buildScoreRequest({ plan, image: (id) => id, reference: ["a", "b", "c"] });

  it("asks for the trigger-off images of the LoRA and of the base as sets", () => {
    const byId = new Map(request.sets.map((s) => [s.id, s.images]));
    const w = plan.weights.find((x) => x.weight === 1)!;
    expect(byId.get(setId.triggerOff(w.key))).toEqual(w.trigger.map((t) => t.without));
    expect(byId.get(setId.triggerOn(w.key))).toEqual(w.trigger.map((t) => t.with));
    expect(byId.get(setId.baseTriggerOff)).toEqual(w.trigger.map((t) => t.baseWithout));
  });

  // reference pairwise 0.9, base trigger-less 0.5 (the gap is 0.4), LoRA with trigger 0.85 (pull 0.35)
  function verdictFor(p: { off: number; on?: number; base?: number; pairwise?: number; count?: number }) {
    const sets: ScoreResult["sets"] = {};
    for (const s of request.sets) sets[s.id] = { count: 2, diversity: 0.3, fidelity_clip: 0.85 };
    sets[setId.baseTriggerOff] = { count: 2, diversity: 0.3, fidelity_clip: p.base ?? 0.5 };
    for (const w of plan.weights) {
      sets[setId.triggerOff(w.key)] = { count: 2, diversity: 0.3, fidelity_clip: p.off };
      sets[setId.triggerOn(w.key)] = { count: 2, diversity: 0.3, fidelity_clip: p.on ?? 0.85 };
    }
    const reference = { count: p.count ?? 3, pairwise_clip: p.pairwise ?? 0.9 };
    const v = judgeValidation({ plan, scores: { embedder: { clip: "x" }, reference, trigger: {}, sets, stack: {} } });
    return measureOf(v, "trigger", "trigger_leak");
  }

  it.each([
    [0.5, 0, "pass"],
    [0.57, 0.2, "pass"],
    [0.64, 0.4, "warn"],
    [0.85, 1, "fail"],
  ])("LoRA trigger-less fidelity %s -> leak %s, %s", (off, expected, status) => {
    const { check, m } = verdictFor({ off });
    expect(m.value).toBeCloseTo(expected, 6);
    expect(m.status).toBe(status);
    expect(m.detail?.pull_with_share).toBeCloseTo(0.875, 6);
    if (status === "fail") expect(check.status).toBe("fail");
    // only a failing leak carries what to try (class images, the trigger first), with its source
    if (status === "fail") {
      expect(m.advice?.text).toMatch(/^The trigger does not bind.*dataset\.reg_path.*toy evidence, not verified on real weights/);
      expect(m.advice?.source).toMatch(/2208\.12242.*bench\/RESULTS\.md/);
    } else expect(m.advice).toBeUndefined();
  });

  it("the verdicts' advice lists each failing measure's once", () => {
    const { m } = verdictFor({ off: 0.85 });
    const v = { status: "fail" as const, best: undefined, warnings: [], weights: [0, 1].map(() => ({ checks: [{ measures: [m, { ...m, id: "trigger_effect" as const, advice: undefined }] }] })) };
    expect(adviceOf(v as never)).toEqual([{ measure: "trigger_leak", text: m.advice!.text, source: m.advice!.source }]);
  });

  it.each([
    ["one training image", { off: 0.85, count: 1 }],
    ["the base already looks like the training set", { off: 0.85, base: 0.89 }],
    ["the LoRA barely shows its concept even with the trigger", { off: 0.52, on: 0.52 }],
  ])("is skipped when %s", (_, p) => {
    expect(verdictFor(p).m.status).toBe("skip");
  });
});

describe("the contract's own variation prompts", () => {
  it("replace the built-in list, get the trigger, and cycle to pose_variations", () => {
    expect(variationPrompts("character", "txcl", 3, ["{trigger}, small, in the top left", "large, at the bottom"])).toEqual([
      "txcl, small, in the top left",
      "txcl, large, at the bottom",
      "txcl, small, in the top left, variation 2",
    ]);
    expect(variationPrompts("character", "txcl", 1, [])).toEqual(["txcl, full body, standing, front view"]);
  });
});

describe("subject in novel scenes: the weakest scene, against the base model's images of it", () => {
  const plan = planValidation({
    rubric: { ...rubric, novel_scenes: ["{trigger} on the moon", "{trigger} underwater"], weight_sweep: [1] },
    trigger: "txcl",
    target: "character",
    candidates: [{ name: "me", path: "/l/me.safetensors" }],
  });
  const request = buildScoreRequest({ plan, image: (id) => id, reference: ["a", "b", "c"] });
  const key = plan.weights[0]!.key;

  it("asks for each scene's images apart, the LoRA's and the base's", () => {
    const ids = request.sets.map((s) => s.id);
    expect(ids).toEqual(expect.arrayContaining([setId.scene(key, 0), setId.scene(key, 1), setId.baseScene(0), setId.baseScene(1)]));
    expect(request.sets.find((s) => s.id === setId.scene(key, 1))!.images).toEqual(plan.weights[0]!.scenes.filter((s) => s.scene === 1).map((s) => s.job));
  });

  // reference pairwise 0.9, base 0.5 on both scenes (gap 0.4)
  it.each([
    [0.7, 0.8, 0.5, "pass"],
    [0.7, 0.56, 0.15, "warn"],
    [0.7, 0.46, -0.1, "fail"],
  ])("LoRA fidelity %s and %s -> weakest scene %s, %s", (a, b, expected, status) => {
    const sets: ScoreResult["sets"] = {};
    for (const s of request.sets) sets[s.id] = { count: 2, diversity: 0.3, fidelity_clip: 0.5 };
    sets[setId.scene(key, 0)] = { count: 2, diversity: 0.3, fidelity_clip: a };
    sets[setId.scene(key, 1)] = { count: 2, diversity: 0.3, fidelity_clip: b };
    const v = judgeValidation({ plan, scores: { embedder: { clip: "x" }, reference: { count: 3, pairwise_clip: 0.9 }, trigger: {}, sets, stack: {} } });
    const { m } = measureOf(v, "composition", "scene_subject_share");
    expect(m.value).toBeCloseTo(expected, 6);
    expect(m.status).toBe(status);
  });
});

describe("novel scene images, each with the base model's image of the same prompt and seed (clip_t_delta)", () => {
  const plan = planValidation({
    rubric: { ...rubric, novel_scenes: ["{trigger} on the moon", "{trigger} underwater"], weight_sweep: [1] },
    trigger: "txcl",
    target: "character",
    candidates: [{ name: "me", path: "/l/me.safetensors" }],
  });
  const request = buildScoreRequest({ plan, image: (id) => id, reference: ["a", "b", "c"] });
  const key = plan.weights[0]!.key;

  it("pairs each scene image with the base model's image of it, with the scene's text", () => {
    const set = request.sets.find((s) => s.id === setId.scene(key, 0))!;
    const items = plan.weights[0]!.scenes.filter((s) => s.scene === 0);
    expect(set.paired).toEqual(items.map((s) => s.base));
    expect(set.texts).toEqual(items.map((s) => s.text));
  });

});

describe("scenes swapped: novel-scene images matching another scene of the rubric better than their own", () => {
  const plan = planValidation({
    rubric: { ...rubric, trigger_prompts: ["{trigger} in a studio"], novel_scenes: ["{trigger} on the moon", "{trigger} underwater"], weight_sweep: [1] },
    trigger: "txcl",
    target: "character",
    candidates: [{ name: "me", path: "/l/me.safetensors" }],
  });
  const request = buildScoreRequest({ plan, image: (id) => id, reference: ["a", "b", "c"] });
  const key = plan.weights[0]!.key;

  it("asks the worker to match each scene image and its base image against every scene and trigger prompt, trigger removed", () => {
    const set = request.sets.find((s) => s.id === setId.scenes(key))!;
    expect(set.candidates).toEqual(["on the moon", "underwater", "in a studio"]);
    expect(set.paired).toEqual(plan.weights[0]!.scenes.map((s) => s.base));
    for (const t of set.texts!) expect(set.candidates).toContain(t);
  });

  it.each([
    // own text best per LoRA image, per base image -> share among images whose base image keeps its scene
    [[true, true, true, true], [true, true, true, true], 0, "pass"],
    [[false, true, true, true], [true, true, true, true], 0.25, "fail"],
    [[false, true, true, true, true, true], [true, true, true, true, true, true], 1 / 6, "warn"],
    [[false, false, true, true], [false, false, true, true], 0, "pass"], // the base swaps those too: not the LoRA's doing
    [[false, false], [false, false], null, "skip"],
  ])("own %j, base %j -> %s, %s", (own, base, expected, status) => {
    const sets: ScoreResult["sets"] = { [setId.scenes(key)]: { count: own.length, diversity: 0.3, own_text_best: own, paired_own_text_best: base } };
    const v = judgeValidation({ plan, scores: { embedder: { clip: "x" }, reference: { count: 3, pairwise_clip: 0.9 }, trigger: {}, sets, stack: {} } });
    const { m } = measureOf(v, "composition", "scene_swap_share");
    if (expected === null) expect(m.value).toBeNull();
    else expect(m.value).toBeCloseTo(expected, 6);
    expect(m.status).toBe(status);
  });
});

describe("sameness: the variations between the base model's variety and the training images' own sameness", () => {
  const plan = planValidation({ rubric: { ...rubric, weight_sweep: [1] }, trigger: "txcl", target: "character", candidates: [{ name: "me", path: "/l/me.safetensors" }] });
  const key = plan.weights[0]!.key;
  function verdictFor(p: { lora: number; base?: number; pairwise?: number; count?: number }) {
    const sets: ScoreResult["sets"] = {
      [setId.variations(key)]: { count: 6, diversity: 1 - p.lora, fidelity_clip: 0.8 },
      [setId.baseVariations]: { count: 6, diversity: 1 - (p.base ?? 0.7), fidelity_clip: 0.5 },
    };
    const reference = { count: p.count ?? 20, pairwise_clip: p.pairwise ?? 0.98 };
    const v = judgeValidation({ plan, scores: { embedder: { clip: "x" }, reference, trigger: {}, sets, stack: {} } });
    return measureOf(v, "consistency", "variation_sameness");
  }

  // base pairwise 0.7, training images 0.98: the way is 0.28
  it.each([
    [0.7, 0, "pass"],
    [0.826, 0.45, "pass"],
    [0.896, 0.7, "warn"],
    [0.98, 1, "fail"],
  ])("variations pairwise %s -> %s, %s", (lora, expected, status) => {
    const { check, m } = verdictFor({ lora });
    expect(m.value).toBeCloseTo(expected, 6);
    expect(m.status).toBe(status);
    if (status === "fail") expect(check.status).toBe("fail");
  });

  it.each([
    ["the training images are less alike than the base model's variations", { lora: 0.9, pairwise: 0.6 }],
    ["fewer than three training images", { lora: 0.98, count: 2 }],
  ])("is skipped when %s", (_, p) => {
    expect(verdictFor(p).m.status).toBe("skip");
  });
});

describe("what to try when a measure fails (validation-thresholds.ts ifFailing)", () => {
  /** Measures whose fail no source tells a user how to fix, with why (the record says so too). */
  const WITHOUT_ADVICE: Partial<Record<ValidationThresholdId, string>> = {
    stack_retention: "no source, and the toy world's search (bench/RESULTS.md, issue 23) found no recipe that restores it",
  };

  type SchemaNode = { properties?: Record<string, SchemaNode>; items?: SchemaNode; anyOf?: SchemaNode[]; oneOf?: SchemaNode[]; allOf?: SchemaNode[] };
  const schema = contractJsonSchema() as SchemaNode;
  const variants = (n: SchemaNode): SchemaNode[] => [n, ...[...(n.anyOf ?? []), ...(n.oneOf ?? []), ...(n.allOf ?? []), ...(n.items ? [n.items] : [])].flatMap(variants)];
  /** Whether a dotted path (hyperparameters.steps, validation.stack) is a field of the contract's JSON Schema. */
  function inSchema(path: string): boolean {
    let nodes = [schema];
    for (const part of path.split(".")) {
      nodes = nodes.flatMap(variants).flatMap((n) => (n.properties?.[part] ? [n.properties[part]] : []));
      if (nodes.length === 0) return false;
    }
    return true;
  }
  /** Contract field paths a text names: a top-level field of the schema followed by .field parts. */
  const fieldPattern = new RegExp(`\\b(?:${Object.keys(schema.properties!).join("|")})(?:\\.[a-z_]+)+`, "g");
  const fieldsIn = (text: string) => text.match(fieldPattern) ?? [];

  it("the field check reads the schema (hyperparameters.rank is a field, network.rank is not)", () => {
    expect(inSchema("hyperparameters.rank")).toBe(true);
    expect(inSchema("validation.stack.weight")).toBe(true);
    expect(inSchema("network.rank")).toBe(false);
    expect(fieldsIn("raise hyperparameters.steps, add dataset.reg_path.")).toEqual(["hyperparameters.steps", "dataset.reg_path"]);
  });

  it.each(VALIDATION_THRESHOLDS.map((t) => [t.id, t] as const))("%s: what to try, with a source, or why not", (id, t) => {
    if (WITHOUT_ADVICE[id]) {
      expect(t.ifFailing).toBeUndefined();
      return;
    }
    expect(t.ifFailing?.advice.length).toBeGreaterThan(60);
    // a URL, a reference document or a paper: something a reader can check
    expect(t.ifFailing!.source).toMatch(/https:\/\/|reference\/[a-z-]+\.md|arXiv \d{4}\.\d{4,5}/);
    // every contract field the advice names exists, so it cannot drift from the schema
    for (const field of fieldsIn(t.ifFailing!.advice)) expect(inSchema(field), `${id} names ${field}`).toBe(true);
  });

  it("the advice names the contract's levers: steps, learning rate, class images, checkpoints, the stack", () => {
    const named = new Set(VALIDATION_THRESHOLDS.flatMap((t) => fieldsIn(t.ifFailing?.advice ?? "")));
    for (const field of ["hyperparameters.steps", "hyperparameters.learning_rate", "hyperparameters.save_every", "dataset.reg_path", "validation.stack", "validation.self_weight"]) {
      expect(named).toContain(field);
    }
    expect(validationThreshold("mode_collapse_share").ifFailing!.advice).toMatch(/loraspec validate --run <id> --checkpoints/);
  });

  it("a failing verdict of the new measures yields their advice through adviceOf, once each, in check order", () => {
    const plan = planValidation({
      rubric: { ...rubric, weight_sweep: [1], stack: [{ lora: "/o/style.safetensors", weight: 0.6 }], self_weight: 0.5 },
      trigger: "txcl",
      target: "character",
      candidates: [{ name: "me", path: "/l/me.safetensors" }],
    });
    const request = buildScoreRequest({ plan, image: (id) => id, reference: ["a", "b", "c"] });
    const sets: ScoreResult["sets"] = {};
    // The LoRA's images look like the training set, the base's and the trigger-less ones less so; every
    // variation's nearest training image is one (the base's: a quarter); every scene image a near copy.
    const fidelity = (id: string) => (id.endsWith(":base") || id.startsWith("trigger-off:") ? 0.7 : 0.8);
    for (const s of request.sets) {
      sets[s.id] = { count: s.images.length, fidelity_clip: fidelity(s.id), diversity: 0.3, collapse_share: s.id === setId.baseVariations ? 0.25 : 1, near_duplicate_share: 1, clip_t: 0.3 };
    }
    const trigger = Object.fromEntries(request.trigger.map((t) => [t.id, { distance: 0.1, base_distance: 0.1, effect: 0 }]));
    const v = judgeValidation({ plan, scores: { embedder: { clip: "x" }, reference: { count: 3, pairwise_clip: 0.85 }, trigger, sets, stack: {} } });
    const failing = ["trigger_effect", "mode_collapse_share", "scene_near_duplicate_share", "stack_combined_weight"] as const;
    expect(adviceOf(v)).toEqual(failing.map((id) => ({ measure: id, text: validationThreshold(id).ifFailing!.advice, source: validationThreshold(id).ifFailing!.source })));
    // a passing measure with advice in its record says nothing
    const subject = measureOf(v, "consistency", "subject_fidelity_ratio").m;
    expect(subject.status).toBe("pass");
    expect(subject.advice).toBeUndefined();
  });
});
