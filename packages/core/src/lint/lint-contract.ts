import type { Contract } from "../contract/schema.js";
import type { DatasetSummary } from "../contract/dataset-summary.js";
import { getBaseModel, type BaseModelRecord } from "../knowledge/base-models.js";
import { getDefect } from "../knowledge/defects.js";
import {
  CAPTION_RULES,
  getDatasetSize,
  getLrRange,
  getSteps,
  LR_RANGES,
  MIXED_ASPECT_TOLERANCE,
  STACKING,
  STEPS_PASSES_TOLERANCE,
  TAG_CAPTION_HEURISTIC,
} from "../knowledge/recipes.js";
import { getCompatibility, PINNED_TRAINER_VERSIONS } from "../knowledge/trainers.js";
import type { Range } from "../knowledge/types.js";
import { compareVersions } from "../knowledge/versions.js";
import { planRun, type Plan, type PlanOptions } from "../plan/plan-run.js";
import { clipPretokenize, splitIntoWords, type WordLookup } from "./clip-pretokenize.js";
import { isTagCluster } from "../captions/caption-rules.js";
import type { Finding } from "./finding.js";
import { lintTrainerTraps } from "./trainer-rules.js";
import { lintPromises } from "./promise-rules.js";
import { lintNetwork } from "./network-rules.js";
import { lintRegularisers } from "./regulariser-rules.js";
import { lintNetworkKind } from "./network-kind-rules.js";
import { lintBuckets } from "./bucket-rules.js";
import { lintSamples } from "./sample-rules.js";
import { LR_ERROR_FACTOR, TRIGGER_PLACEMENT_SEVERITY } from "../knowledge/lint-severity.js";
import { fitVram } from "../plan/fit-vram.js";

export interface LintOptions extends PlanOptions {
  /** What the quick dataset scan found; dataset rules are skipped without it. */
  dataset?: DatasetSummary;
  /** English word list (engine: loadEnglishWords); the trigger word rule is skipped without it. */
  words?: WordLookup;
  /** CLIP's real tokenizer (engine: loadClipTokenizer); without it the pre-tokenization is shown. */
  tokenizer?: (text: string) => string[];
}

interface Ctx {
  c: Contract;
  model: BaseModelRecord;
  plan: Plan;
  opts: LintOptions;
}

type Rule = (ctx: Ctx) => Finding[];

/** Lints a contract (and optionally the dataset scan) against the knowledge base. Pure. */
export function lintContract(contract: Contract, options: LintOptions = {}): Finding[] {
  const model = getBaseModel(contract.base.model);
  if (!model) throw new Error(`unknown base model ${contract.base.model}`); // the loader rejects these first
  const plan = planRun(contract, options.dataset, options);
  const ctx: Ctx = { c: contract, model, plan, opts: options };
  const order = { error: 0, warning: 1, info: 2 } as const;
  const findings = [...RULE_FUNCTIONS.flatMap((rule) => rule(ctx)), ...lintPromises({ c: contract, model, plan, words: options.words })].map((f) => accepted(f, contract));
  return findings.sort((a, b) => order[a.severity] - order[b.severity]);
}

/** A finding the contract accepts (lint.accept) becomes a note carrying the contract's reason. */
function accepted(f: Finding, c: Contract): Finding {
  const ok = c.lint.accept.find((a) => a.rule === f.rule);
  return ok ? { ...f, severity: "info", message: `accepted (lint.accept: ${ok.why}): ${f.message}` } : f;
}

/** 0.0001 -> "1e-4", 0.00015 -> "1.5e-4". */
const fmt = (x: number) => (x >= 0.01 || x === 0 ? String(x) : x.toExponential().replace(/\.?0+e/, "e"));
const inRange = (x: number, r: Range) => x >= r.min && x <= r.max;
const rangeText = (r: Range, f: (x: number) => string = String) => `${f(r.min)} to ${f(r.max)}`;

const trainerSupport: Rule = ({ c, model }) => {
  const rec = getCompatibility(c.trainer.name, model.id);
  const out: Finding[] = [];
  if (!rec || !rec.supported) {
    out.push({
      rule: "trainer-unsupported-base",
      severity: "error",
      message: `${c.trainer.name} does not train ${model.label}.`,
      fix: `Use ${rec?.instead ?? "a trainer that supports it"} (trainer.name), or pick a base model ${c.trainer.name} supports.`,
      source: rec?.source ?? "shared/reference/trainers.md §7",
      field: "trainer.name",
    });
    return out;
  }
  if (rec.compiles === false) {
    const fix = `Use trainer.name: diffusers or another trainer loraspec compiles for ${model.label}.`;
    return [{ rule: "trainer-unsupported-base", severity: "error", message: `loraspec does not compile ${c.trainer.name} configs for ${model.label} yet.`, fix, source: rec.source, field: "trainer.name" }];
  }
  const version = c.trainer.version;
  if (!version) {
    if (c.trainer.name === "kohya" || c.trainer.name === "ai-toolkit") {
      const pin = PINNED_TRAINER_VERSIONS[c.trainer.name];
      out.push({
        rule: "trainer-version-unpinned",
        severity: "warning",
        message: `No ${c.trainer.name} version pinned: results and flags change between versions.`,
        fix: `Set trainer.version (loraspec's compiler targets ${pin.version}).`,
        source: pin.source,
        field: "trainer.version",
      });
    }
    return out;
  }
  if (rec.minVersion) {
    const cmp = compareVersions(version, rec.minVersion);
    if (cmp === undefined) {
      out.push({
        rule: "trainer-version-unchecked",
        severity: "info",
        message: `trainer.version '${version}' is not a version tag; cannot check it against ${rec.minVersion} for ${model.label}.`,
        fix: `Pin a release tag (${rec.minVersion} or later).`,
        source: rec.source,
        field: "trainer.version",
      });
    } else if (cmp < 0) {
      out.push({
        rule: "trainer-version-too-old",
        severity: rec.belowMin ?? "error",
        message: `${c.trainer.name} ${version} is older than ${rec.minVersion}, the first version known to ${rec.belowMin === "warning" ? "work well with" : "support"} ${model.label}.${rec.note ? ` ${rec.note}` : ""}`,
        fix: `Set trainer.version to ${rec.minVersion} or later.`,
        source: rec.source,
        field: "trainer.version",
      });
    }
  }
  return out;
};

const learningRate: Rule = ({ c, model, plan }) => {
  const lr = plan.learningRate;
  const range = getLrRange(model.family, c.target);
  if (!range) return [];
  if (model.family !== "sdxl" && lr > range.range.max) {
    const sdxl = LR_RANGES.filter((r) => r.families.includes("sdxl"));
    const fromSdxl = sdxl.some((r) => inRange(lr, r.range));
    return [
      {
        rule: "lr-sdxl-on-flux",
        severity: "error",
        message: `learning_rate ${fmt(lr)} is above ${fmt(range.range.max)}, the top of the ${model.label} range${fromSdxl ? " (it is an SDXL value)" : ""}; Flux-class models overcook at SDXL rates.`,
        fix: `Set hyperparameters.learning_rate within ${rangeText(range.range, fmt)} (e.g. ${fmt(range.recommended)}).`,
        source: range.source,
        field: "hyperparameters.learning_rate",
      },
    ];
  }
  // An LR that is another target's recipe is reported once, by recipe-target-mismatch.
  const otherTarget = c.target === "style" ? "character" : c.target === "character" ? "style" : undefined;
  const other = otherTarget ? getLrRange(model.family, otherTarget) : undefined;
  if (other && other !== range && inRange(lr, other.range)) return [];
  if (!inRange(lr, range.range)) {
    const factor = lr > range.range.max ? lr / range.range.max : range.range.min / lr;
    const far = factor >= LR_ERROR_FACTOR.factor;
    return [
      {
        rule: "lr-out-of-range",
        severity: far ? "error" : "warning",
        message: `learning_rate ${fmt(lr)} is ${factor.toFixed(1)}x ${lr > range.range.max ? "above the top" : "below the bottom"} of ${rangeText(range.range, fmt)} for a ${c.target} LoRA on ${model.label}${far ? ` (${LR_ERROR_FACTOR.factor}x or more out is an error)` : ""}.`,
        fix: `Use a value in ${rangeText(range.range, fmt)} (e.g. ${fmt(range.recommended)}).`,
        source: far ? `${range.source}; ${LR_ERROR_FACTOR.source}` : range.source,
        field: "hyperparameters.learning_rate",
      },
    ];
  }
  return [];
};

const triggerWord: Rule = ({ c, opts }) => {
  if (!opts.words) return [];
  const words = opts.words;
  const trigger = c.trigger.word;
  // English words are found on CLIP's pre-tokenized words; the split shown is the real BPE one
  // when the engine has CLIP's merges table, else the pre-tokenization.
  const tokens = clipPretokenize(trigger);
  const shown = opts.tokenizer ? `CLIP tokenizes it as [${opts.tokenizer(trigger).join(" ")}]` : `CLIP pre-tokenizes it as [${tokens.join(" ")}]`;
  const bare = tokens.map((t) => t.replace(/<\/w>$/, ""));
  const english = bare.filter((t) => /^\p{L}+$/u.test(t) && t.length >= 3 && words.has(t));
  const whole = words.has(trigger.toLowerCase());
  const compound = !whole && english.length === 0 && /^\p{L}+$/u.test(trigger) ? splitIntoWords(trigger.toLowerCase(), words) : undefined;
  if (!whole && english.length === 0 && !(compound && compound.length > 1)) {
    if (!opts.tokenizer) return [];
    const split = opts.tokenizer(trigger);
    return [
      {
        rule: "trigger-tokens",
        severity: "info",
        message: `'${trigger}' is not an English word; CLIP tokenizes it as [${split.join(" ")}] (${split.length} token${split.length === 1 ? "" : "s"}).`,
        fix: "Nothing to do; a rare token that CLIP splits into few pieces binds fastest.",
        source: `${CAPTION_RULES.triggerAtStart.source}; tokenizer: CLIP BPE merges (open_clip bpe_simple_vocab_16e6)`,
        field: "trigger.word",
      },
    ];
  }
  const why = whole
    ? `'${trigger}' is an English word`
    : english.length > 0
      ? `'${trigger}' contains the English word${english.length > 1 ? "s" : ""} ${english.map((w) => `'${w}'`).join(", ")}`
      : `'${trigger}' is made of English words (${compound!.join(" + ")})`;
  return [
    {
      rule: "trigger-english-word",
      severity: "error",
      message: `${why}: the model already has a meaning for it, so the LoRA fights that prior. ${shown}.`,
      fix: "Use a rare made-up token that is not an English word, such as 'txcl' or 'ohwx', at the start of each caption.",
      source: `${CAPTION_RULES.triggerAtStart.source}; word list: npm word-list 4.1.0`,
      field: "trigger.word",
    },
  ];
};

const captionStyle: Rule = ({ c, model, opts }) => {
  if (model.captionEncoder === "clip") return [];
  const captions = (opts.dataset?.images ?? []).map((i) => i.caption).filter((x): x is string => !!x);
  const tagged = captions.filter(isTagCluster);
  const scanSaysTags = captions.length > 0 && tagged.length / captions.length >= TAG_CAPTION_HEURISTIC.minTagShare;
  if (c.captions.style !== "tags" && !scanSaysTags) return [];
  const encoder = model.textEncoders.find((t) => t.kind === model.captionEncoder)?.name ?? model.captionEncoder;
  return [
    {
      rule: "captions-tags-on-t5",
      severity: "error",
      message:
        c.captions.style === "tags"
          ? `captions.style is 'tags' but ${model.label} reads captions with ${encoder}, which expects natural language.`
          : `${tagged.length} of ${captions.length} captions are tag clusters ("${tagged[0]!.slice(0, 60)}") but ${model.label} reads captions with ${encoder}.`,
      fix: "Write captions as sentences (e.g. 'txcl, a woman with short red hair smiling in a park') and set captions.style: natural; `loraspec caption` can rewrite them.",
      source: CAPTION_RULES.naturalForT5.source,
      field: "captions.style",
      files: scanSaysTags ? (opts.dataset?.images ?? []).filter((i) => i.caption && isTagCluster(i.caption)).slice(0, 5).map((i) => i.file) : undefined,
    },
  ];
};

const stacking: Rule = ({ c }) => {
  const v = c.validation;
  if (v.stack.length === 0) return [];
  const adapters = v.stack.length + 1;
  const combined = Math.round((v.self_weight + v.stack.reduce((s, e) => s + e.weight, 0)) * 1000) / 1000;
  if (adapters <= STACKING.maxAdapters && combined <= STACKING.maxCombinedWeight) return [];
  const problems = [
    adapters > STACKING.maxAdapters ? `${adapters} LoRAs stacked (practical ceiling ${STACKING.maxAdapters})` : "",
    combined > STACKING.maxCombinedWeight ? `combined weight ${combined} (keep <= ${STACKING.maxCombinedWeight})` : "",
  ].filter(Boolean);
  return [
    {
      rule: "stack-over-limit",
      severity: "error",
      message: `validation.stack: ${problems.join(" and ")}; stacked adapters at full weight fight each other and burn the image.`,
      fix: `Stack at most ${STACKING.maxAdapters} LoRAs and scale weights so self_weight + stack weights <= ${STACKING.maxCombinedWeight} (e.g. 0.5 + 0.3 + 0.2).`,
      source: STACKING.source,
      field: "validation.stack",
    },
  ];
};

function datasetCount(ctx: Ctx): number | undefined {
  return ctx.opts.dataset ? ctx.opts.dataset.images.length : ctx.c.dataset.expected_images;
}

const recipeTarget: Rule = (ctx) => {
  const { c, model, plan } = ctx;
  const own = c.target;
  const other = own === "style" ? "character" : own === "character" ? "style" : undefined;
  if (!other) return [];
  const reasons: string[] = [];
  let source = "";
  const ownLr = getLrRange(model.family, own);
  const otherLr = getLrRange(model.family, other);
  if (ownLr && otherLr && ownLr !== otherLr && inRange(plan.learningRate, otherLr.range) && !inRange(plan.learningRate, ownLr.range)) {
    reasons.push(`learning_rate ${fmt(plan.learningRate)} is the ${other} range (${rangeText(otherLr.range, fmt)}), not the ${own} range (${rangeText(ownLr.range, fmt)})`);
    source = `${ownLr.source}; ${otherLr.source}`;
  }
  const count = datasetCount(ctx);
  const ownSize = getDatasetSize(own, model.family);
  const otherSize = getDatasetSize(other, model.family);
  const ownSteps = getSteps(own);
  const otherSteps = getSteps(other);
  const sizeOther = count !== undefined && inRange(count, otherSize.images) && !inRange(count, ownSize.images);
  const stepsOther = inRange(plan.steps, otherSteps.steps) && !inRange(plan.steps, ownSteps.steps);
  if (sizeOther && stepsOther) {
    reasons.push(
      `${count} images and ${plan.steps} steps are a ${other} recipe (${rangeText(otherSize.images)} images, ${rangeText(otherSteps.steps)} steps), not ${own} (${rangeText(ownSize.images)} images, ${rangeText(ownSteps.steps)} steps)`,
    );
    source = [source, ownSize.source, otherSize.source, ownSteps.source].filter(Boolean).join("; ");
  }
  if (reasons.length === 0) return [];
  return [
    {
      rule: "recipe-target-mismatch",
      severity: "error",
      message: `target is '${own}' but ${reasons.join("; and ")}.`,
      fix: `Use the ${own} recipe: ${ownLr ? `learning_rate in ${rangeText(ownLr.range, fmt)}, ` : ""}${ownSize.advice}, ${rangeText(ownSteps.steps)} steps.`,
      source,
      field: ownLr && reasons[0]!.startsWith("learning_rate") ? "hyperparameters.learning_rate" : "target",
    },
  ];
};

const datasetSize: Rule = (ctx) => {
  const { c, model, opts } = ctx;
  const count = datasetCount(ctx);
  const out: Finding[] = [];
  const size = getDatasetSize(c.target, model.family);
  if (count !== undefined && count < size.images.min) {
    out.push({
      rule: "dataset-below-minimum",
      severity: "error",
      message: `${count} images${opts.dataset ? " in the folder" : " expected"}; a ${c.target} LoRA needs at least ${size.images.min} (${rangeText(size.images)}): fewer cannot show the ${c.target} in enough variety and the LoRA memorises them.`,
      fix: `Use ${size.advice}.`,
      source: size.source,
      field: opts.dataset ? "dataset.path" : "dataset.expected_images",
    });
  } else if (count !== undefined && !inRange(count, size.images)) {
    out.push({
      rule: "dataset-size-range",
      severity: "warning",
      message: `${count} images${opts.dataset ? " in the folder" : " expected"}; a ${c.target} LoRA wants ${rangeText(size.images)}.`,
      fix: `Use ${size.advice}.`,
      source: size.source,
      field: opts.dataset ? "dataset.path" : "dataset.expected_images",
    });
  }
  if (opts.dataset && c.dataset.expected_images !== undefined && c.dataset.expected_images !== opts.dataset.images.length) {
    out.push({
      rule: "dataset-count-mismatch",
      severity: "warning",
      message: `dataset.expected_images is ${c.dataset.expected_images} but the folder holds ${opts.dataset.images.length} images.`,
      fix: "Add or remove images, or update dataset.expected_images.",
      source: "ours: the contract states what the folder should hold",
      field: "dataset.expected_images",
    });
  }
  return out;
};

const stepsRules: Rule = ({ c, plan }) => {
  const hp = c.hyperparameters;
  const out: Finding[] = [];
  const rec = getSteps(c.target);
  if (hp.steps && hp.passes_per_image) {
    const implied = Math.ceil((hp.passes_per_image * plan.images.count) / plan.effectiveBatch);
    if (Math.abs(implied - hp.steps) / hp.steps > STEPS_PASSES_TOLERANCE.fraction) {
      out.push({
        rule: "steps-passes-mismatch",
        severity: "warning",
        message: `steps ${hp.steps} but passes_per_image ${hp.passes_per_image} x ${plan.images.count} images / batch ${plan.effectiveBatch} = ${implied} steps.`,
        fix: "Give one of steps or passes_per_image, or make them agree.",
        source: `${STEPS_PASSES_TOLERANCE.source}; ${rec.source}`,
        field: "hyperparameters.steps",
      });
    }
  }
  if (!inRange(plan.steps, rec.steps)) {
    out.push({
      rule: "steps-out-of-range",
      severity: "warning",
      message: `${plan.steps} steps; a ${c.target} LoRA usually needs ${rangeText(rec.steps)} (about ${rec.passesPerImage} passes per image).`,
      fix: `Set hyperparameters.steps within ${rangeText(rec.steps)}.`,
      source: rec.source,
      field: "hyperparameters.steps",
    });
  }
  return out;
};

const vram: Rule = ({ c, model, plan }) => {
  if (c.hardware.kind === "fal" || c.trainer.name === "fal") return [];
  const limits = [
    c.limits.vram_ceiling_gb !== undefined ? { gb: c.limits.vram_ceiling_gb, field: "limits.vram_ceiling_gb" } : undefined,
    c.hardware.vram_gb !== undefined ? { gb: c.hardware.vram_gb, field: "hardware.vram_gb" } : undefined,
  ].filter((x): x is { gb: number; field: string } => !!x);
  if (limits.length === 0) return [];
  const ceiling = limits.reduce((a, b) => (b.gb < a.gb ? b : a));
  const est = plan.vram;
  if (est.totalGb <= ceiling.gb) return [];
  const p = est.parts;
  const fit = fitVram(c, model, plan.resolution, ceiling.gb);
  const change = [
    fit.quantize !== c.base.quantize ? `base.quantize: ${fit.quantize}` : "",
    (fit.blockSwap ?? 0) !== (c.hardware.block_swap ?? 0) ? `hardware.block_swap: ${fit.blockSwap ?? 0}` : "",
  ].filter(Boolean);
  const suggestion =
    change.length === 0
      ? `no base precision or block swap ${c.trainer.name} offers brings it under ${ceiling.gb} GB`
      : fit.fits
        ? `with ${change.join(" and ")} the same model estimates ~${fit.estimate.totalGb} GB`
        : `even with ${change.join(" and ")} it estimates ~${fit.estimate.totalGb} GB`;
  return [
    {
      rule: "vram-below-profile",
      severity: "error",
      message: `${ceiling.field} is ${ceiling.gb} GB but this setup needs ~${est.totalGb} GB (weights ${p.weights} + text encoders ${p.textEncoders} + VAE ${p.vae} + LoRA ${p.lora} + activations ${p.activations} + overhead ${p.overhead}); ${suggestion}.`,
      fix: fit.fits
        ? `Set ${change.join(" and ")}${c.trainer.name === "diffusers" ? "" : ", keep gradient_checkpointing on"}; or use a bigger GPU / fal.`
        : `Lower batch_size or resolution, use a trainer with more low-VRAM options (base.quantize int8/nf4, hardware.block_swap), or a bigger GPU / fal.`,
      source: `${est.source}; ${model.vram.source}`,
      field: ceiling.field,
    },
  ];
};

const costAndTime: Rule = ({ c, plan }) => {
  const out: Finding[] = [];
  const max = c.limits.max_cost_usd;
  if (max !== undefined) {
    if (plan.cost.usd === undefined) {
      out.push({
        rule: "cost-unknown",
        severity: "info",
        message: `limits.max_cost_usd is $${max} but there is no cost estimate: ${plan.cost.basis}.`,
        fix: "Set hardware.price_per_hour for a local GPU, or FAL_KEY for live fal prices.",
        source: plan.cost.source ?? "plan",
        field: "limits.max_cost_usd",
      });
    } else if (plan.cost.usd > max) {
      out.push({
        rule: "cost-over-limit",
        severity: "error",
        message: `estimated cost $${plan.cost.usd} is above limits.max_cost_usd $${max} (${plan.cost.basis}).`,
        fix: "Lower hyperparameters.steps, pick a cheaper endpoint or GPU, or raise limits.max_cost_usd.",
        source: plan.cost.source ?? plan.cost.basis,
        field: "limits.max_cost_usd",
      });
    }
  }
  const hours = c.limits.max_walltime_hours;
  if (hours !== undefined && plan.selected && plan.selected.hours > hours) {
    out.push({
      rule: "walltime-over-limit",
      severity: "warning",
      message: `estimated ${plan.selected.hours} h on ${plan.selected.label} is above limits.max_walltime_hours ${hours}.`,
      fix: "Lower steps or resolution, or use a faster GPU.",
      source: plan.selected.source,
      field: "limits.max_walltime_hours",
    });
  }
  return out;
};

const saveEvery: Rule = ({ c }) =>
  // fal's endpoints save once, at the end (trainer-ignores-field says so when save_every is set).
  c.hyperparameters.save_every || c.trainer.name === "fal"
    ? []
    : [
        {
          rule: "no-save-every",
          severity: "warning",
          message: "No hyperparameters.save_every: a crash or an overcooked run leaves no earlier LoRA to fall back on.",
          fix: "Set hyperparameters.save_every (e.g. 250).",
          source: "shared/reference/perf-reliability.md §4c (resume and failure handling in the trainers)",
          field: "hyperparameters.save_every",
        },
      ];

const datasetImages: Rule = ({ c, model, opts }) => {
  const ds = opts.dataset;
  if (!ds || ds.images.length === 0) return [];
  const out: Finding[] = [];
  const native = c.dataset.resolution ?? model.nativeResolution;
  const small = ds.images.filter((i) => Math.min(i.width, i.height) < native);
  if (small.length > 0) {
    out.push({
      rule: "image-below-native",
      severity: "warning",
      message: `${small.length} of ${ds.images.length} images have a side below ${native} px (${small[0]!.file}: ${small[0]!.width}x${small[0]!.height}); upscaled images train blur.`,
      fix: `Replace them with images at least ${native} px on the short side, or lower dataset.resolution.`,
      source: model.source,
      field: "dataset.path",
      files: small.slice(0, 5).map((i) => i.file),
    });
  }
  if (c.dataset.aspect === "square") {
    const distinct: number[] = [];
    for (const r of ds.images.map((i) => i.width / i.height)) {
      if (!distinct.some((d) => Math.max(d, r) / Math.min(d, r) <= MIXED_ASPECT_TOLERANCE.ratio)) distinct.push(r);
    }
    if (distinct.length > 1) {
      const odd = ds.images.filter((i) => i.width !== i.height);
      out.push({
        rule: "mixed-aspect-single-crop",
        severity: "warning",
        message: `the folder mixes ${distinct.length} aspect ratios but dataset.aspect is 'square': ${odd.length} image(s) will lose their edges to the crop.`,
        fix: "Set dataset.aspect: buckets, or crop the images yourself (`loraspec prep`).",
        source: "shared/reference/trainers.md §7 (crop/bucketing in the trainers); ours: single square crop",
        field: "dataset.aspect",
        files: odd.slice(0, 5).map((i) => i.file),
      });
    }
  }
  const missing = ds.images.filter((i) => i.caption === null || i.caption === "");
  if (missing.length > 0) {
    out.push({
      rule: "caption-missing",
      severity: "warning",
      message: `${missing.length} of ${ds.images.length} images have no ${c.captions.extension} caption (${missing[0]!.file}).`,
      fix: "Write captions, or run `loraspec caption`.",
      source: CAPTION_RULES.triggerAtStart.source,
      field: "captions.extension",
      files: missing.slice(0, 5).map((i) => i.file),
    });
  }
  if (c.trigger.placement === "start") {
    const trig = c.trigger.word.toLowerCase();
    const notStart = ds.images.filter((i) => i.caption && !i.caption.toLowerCase().startsWith(trig));
    if (notStart.length > 0) {
      out.push({
        rule: "trigger-not-at-start",
        severity: TRIGGER_PLACEMENT_SEVERITY.byTarget[c.target],
        message: `${notStart.length} caption(s) do not start with the trigger '${c.trigger.word}' (${notStart[0]!.file}: "${notStart[0]!.caption!.slice(0, 50)}").`,
        fix: `Start every caption with '${c.trigger.word}' (never mid-sentence: the trigger then does not bind).`,
        source: `${CAPTION_RULES.triggerAtStart.source}; ${TRIGGER_PLACEMENT_SEVERITY.source}`,
        field: "trigger.word",
        files: notStart.slice(0, 5).map((i) => i.file),
      });
    }
  }
  return out;
};

const knownDefects: Rule = ({ c, model }) => {
  if (c.trainer.name !== "kohya" || model.family !== "flux1" || c.validation.stack.length === 0) return [];
  const a = getDefect("sd-scripts#1612")!;
  const b = getDefect("sd-scripts#1888")!;
  return [
    {
      rule: "known-defect-kohya-merge",
      severity: "info",
      message: `Stacking Flux LoRAs: do not pre-merge them with kohya's flux_merge_lora.py. ${a.consequence} ${b.consequence}`,
      fix: `${a.workaround}`,
      source: `${a.source}; ${b.source}`,
      field: "validation.stack",
    },
  ];
};

const hardwareTrainer: Rule = ({ c }) => {
  const falTrainer = c.trainer.name === "fal";
  const falHardware = c.hardware.kind === "fal";
  if (falTrainer === falHardware) return [];
  return [
    {
      rule: "hardware-trainer-mismatch",
      severity: "error",
      message: falTrainer
        ? "trainer.name is 'fal' (a hosted trainer) but hardware.kind is 'local'."
        : `hardware.kind is 'fal' but trainer.name is '${c.trainer.name}', a local trainer.`,
      fix: falTrainer ? "Set hardware.kind: fal." : "Set trainer.name: fal, or hardware.kind: local.",
      source: "shared/reference/trainers.md §4 (fal trainers are hosted queue jobs)",
      field: "hardware.kind",
    },
  ];
};

/** dataset.reg_path: the built-in trainer, kohya (is_reg subsets) and ai-toolkit (is_reg datasets) take reg images; fal's trainers take one ZIP. */
const regImages: Rule = ({ c }) => {
  if (!c.dataset.reg_path || c.trainer.name !== "fal") return [];
  return [
    {
      rule: "reg-images-unsupported",
      severity: "error",
      message: "fal's LoRA trainers take one dataset ZIP and no regularisation images: dataset.reg_path would be ignored.",
      fix: "Remove dataset.reg_path, or train with diffusers, kohya or ai-toolkit.",
      source: "shared/reference/trainers.md §4.1 (fal trainer inputs: one images ZIP, no regularisation field)",
      field: "dataset.reg_path",
    },
  ];
};

const RULE_FUNCTIONS: readonly Rule[] = [
  trainerSupport,
  hardwareTrainer,
  regImages,
  learningRate,
  triggerWord,
  captionStyle,
  stacking,
  recipeTarget,
  datasetSize,
  stepsRules,
  vram,
  costAndTime,
  saveEvery,
  datasetImages,
  knownDefects,
  // Trainer traps (helper TRAINERS): schedule per trainer, fields a trainer never receives, fal endpoints.
  ({ c, plan }) => lintTrainerTraps(c, plan.steps),
  // network.targets / network.modules per trainer (lint/network-rules.ts).
  ({ c }) => lintNetwork(c),
  ({ c }) => lintRegularisers(c),
  ({ c }) => lintNetworkKind(c),
  // Aspect buckets (lint/bucket-rules.ts).
  ({ c, plan }) => lintBuckets(c, plan.resolution),
  // Sample images during training (samples.*): fal renders none.
  ({ c }) => lintSamples(c),
];
