/**
 * The validation rubric as data: which images to generate (prompts x seeds x adapter sets) and
 * how they pair up into checks. Pure: the engine renders the jobs with a sampler, the worker
 * scores them, and judge-validation.ts turns the scores into verdicts.
 */

export type ValidationTarget = "character" | "style" | "product";

/** The contract's validation block (snake_case as in lora.yaml), defaults already filled in. */
export interface RubricSpec {
  seeds: number[];
  trigger_prompts: string[];
  pose_variations: number;
  /** The contract's own variation prompts, instead of the built-in list for the target. */
  variation_prompts?: string[];
  novel_scenes: string[];
  stack: { lora: string; weight: number }[];
  self_weight: number;
  weight_sweep: number[];
}

/** A LoRA at a weight, as the sampler applies it (diffusers `set_adapters(names, weights)`). */
export interface AdapterRef {
  /** Adapter name: letters, digits and underscore (a valid PEFT adapter name). */
  name: string;
  path: string;
  weight: number;
}

/** One image to render. */
export interface SampleJob {
  id: string;
  prompt: string;
  seed: number;
  adapters: AdapterRef[];
  /** Which check first asked for it (for file names and the report). */
  label: string;
}

export interface TriggerPair {
  prompt: string;
  seed: number;
  with: string;
  without: string;
  baseWith: string;
  baseWithout: string;
}

export interface SceneItem {
  /** Which novel_scenes prompt (index), for per-scene measures. */
  scene: number;
  job: string;
  base: string;
  /** The prompt CLIP-T scores against: the scene with the trigger token removed (DreamBooth scores with the class noun, not the identifier). */
  text: string;
}

/** Checks 1-3 for one LoRA (a file or a checkpoint) at one weight. */
export interface WeightChecks {
  key: string;
  candidate: string;
  step?: number;
  weight: number;
  trigger: TriggerPair[];
  variations: string[];
  scenes: SceneItem[];
  /**
   * The texts a novel-scene image is matched against, zero-shot (the scene-swap measure): every
   * novel scene and every trigger prompt (the dataset's own scenes), trigger removed, once each.
   */
  sceneCandidates: string[];
}

export interface StackItem {
  prompt: string;
  seed: number;
  stack: string;
  base: string;
  /** Adapter name -> the job with that adapter alone at its stack weight. */
  alone: Record<string, string>;
}

export interface StackCheck {
  adapters: AdapterRef[];
  combinedWeight: number;
  items: StackItem[];
}

export interface ValidationPlan {
  jobs: SampleJob[];
  weights: WeightChecks[];
  baseVariations: string[];
  stack?: StackCheck;
  /** Problems with the rubric itself (stack weight above 1.0, too many adapters, ...). */
  warnings: { code: string; message: string }[];
}

export interface Candidate {
  /** Shown in the report: the file name or `step 500`. */
  name: string;
  path: string;
  step?: number;
}

export interface PlanValidationParams {
  rubric: RubricSpec;
  trigger: string;
  target: ValidationTarget;
  /** The LoRA under test; several for a checkpoint comparison (the stack check uses the last). */
  candidates: Candidate[];
  /** Weights to sweep; defaults to the rubric's weight_sweep. */
  weights?: number[];
  /** Include the stacking check (off for checkpoint comparisons). */
  stack?: boolean;
}

/** Pose, lighting and framing variations per target (check 2: at least ten). */
const VARIATIONS: Record<ValidationTarget, string[]> = {
  character: [
    "full body, standing, front view",
    "profile view, neutral background",
    "close-up portrait, soft window light",
    "sitting on a chair, three-quarter view",
    "looking over the shoulder",
    "laughing, candid photo",
    "seen from above, high angle",
    "seen from below, low angle",
    "walking, motion blur",
    "dramatic side lighting at night",
    "wearing a winter coat, snow",
    "back lit, golden hour",
  ],
  style: [
    "a lighthouse on a cliff",
    "a portrait of an old man",
    "a bowl of fruit on a table",
    "a city street at night",
    "a cat sleeping on a sofa",
    "a mountain lake at dawn",
    "a vintage car",
    "a crowded market",
    "a spaceship in orbit",
    "a forest path in autumn",
    "a cup of coffee, close-up",
    "a dancer on a stage",
  ],
  product: [
    "front view on a white background",
    "three-quarter view on a wooden table",
    "top-down view, flat lay",
    "close-up detail shot",
    "held in a hand",
    "on a shelf in a shop",
    "outdoors on grass, daylight",
    "studio lighting, dark background",
    "side view, soft shadow",
    "in use, lifestyle photo",
    "on a marble counter",
    "back view",
  ],
};

/** Replaces `{trigger}`; a prompt without the placeholder gets the trigger in front. */
export function withTrigger(prompt: string, trigger: string): string {
  return prompt.includes("{trigger}") ? tidy(prompt.replaceAll("{trigger}", trigger)) : tidy(`${trigger}, ${prompt}`);
}

/** The same prompt with the trigger removed (check 1's "without" side). */
export function withoutTrigger(prompt: string, trigger?: string): string {
  let out = prompt.replaceAll("{trigger}", "");
  if (trigger) out = out.split(/(\s+)/).filter((t) => t !== trigger && t !== `${trigger},`).join("");
  return tidy(out);
}

function tidy(text: string): string {
  return text
    .replace(/\s+/g, " ")
    .replace(/\s+([,.])/g, "$1")
    .replace(/,\s*,/g, ",")
    .replace(/^\s*,\s*/, "")
    .replace(/\b(a|an|the) (,|$)/gi, "$2")
    .trim();
}

/**
 * Check 2's prompts: `count` pose, lighting and framing variations for the target type, or the
 * contract's own prompts (`custom`, with `{trigger}` replaced) cycled to `count`.
 */
export function variationPrompts(target: ValidationTarget, trigger: string, count: number, custom?: readonly string[]): string[] {
  const own = custom !== undefined && custom.length > 0;
  const list = own ? custom : VARIATIONS[target];
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    const v = list[i % list.length] as string;
    const round = Math.floor(i / list.length);
    const base = own ? withTrigger(v, trigger) : target === "style" ? `${v}, in the style of ${trigger}` : `${trigger}, ${v}`;
    out.push(round === 0 ? base : `${base}, variation ${round + 1}`);
  }
  return out;
}

/** A PEFT-safe adapter name from a file name. */
export function adapterName(path: string, taken: ReadonlySet<string> = new Set()): string {
  const file = path.split(/[\\/]/).pop() ?? "lora";
  let name = file.replace(/\.(safetensors|bin|pt|ckpt)$/i, "").replace(/[^A-Za-z0-9_]/g, "_").replace(/^_+|_+$/g, "") || "lora";
  if (/^\d/.test(name)) name = `l_${name}`;
  let unique = name;
  for (let i = 2; taken.has(unique); i++) unique = `${name}_${i}`;
  return unique;
}

function fmtWeight(w: number): string {
  return Number(w.toFixed(3)).toString();
}

/** Builds the list of images and how they pair into checks 1-5. */
export function planValidation(params: PlanValidationParams): ValidationPlan {
  const { rubric, trigger, target, candidates } = params;
  const weights = [...new Set(params.weights ?? rubric.weight_sweep)];
  const seeds = rubric.seeds.length > 0 ? rubric.seeds : [1];
  const jobs: SampleJob[] = [];
  const byKey = new Map<string, string>();
  const warnings: ValidationPlan["warnings"] = [];

  const job = (prompt: string, seed: number, adapters: AdapterRef[], label: string): string => {
    const active = adapters.filter((a) => a.weight !== 0).sort((a, b) => a.name.localeCompare(b.name));
    const key = JSON.stringify([prompt, seed, active.map((a) => [a.path, a.weight])]);
    const known = byKey.get(key);
    if (known) return known;
    const id = `${String(jobs.length + 1).padStart(4, "0")}-${label}`.replace(/[^A-Za-z0-9._-]/g, "_");
    jobs.push({ id, prompt, seed, adapters: active, label });
    byKey.set(key, id);
    return id;
  };

  const triggerPrompts = rubric.trigger_prompts.length > 0 ? rubric.trigger_prompts : ["a photo of {trigger}"];
  const variations = variationPrompts(target, trigger, rubric.pose_variations, rubric.variation_prompts);
  const scenes = rubric.novel_scenes;

  const baseVariations = variations.map((p, i) => job(p, seeds[i % seeds.length] as number, [], "base-variation"));
  const taken = new Set<string>();
  const names = new Map<string, string>();
  for (const c of candidates) {
    const name = adapterName(c.path, taken);
    taken.add(name);
    names.set(c.path, name);
  }

  const weightChecks: WeightChecks[] = [];
  for (const c of candidates) {
    const name = names.get(c.path) as string;
    for (const w of weights) {
      const tag = `${c.step === undefined ? "" : `s${c.step}-`}w${fmtWeight(w)}`;
      const self: AdapterRef[] = [{ name, path: c.path, weight: w }];
      const trig: TriggerPair[] = [];
      for (const p of triggerPrompts) {
        const on = withTrigger(p, trigger);
        const off = withoutTrigger(p, trigger);
        for (const seed of seeds) {
          trig.push({
            prompt: p,
            seed,
            with: job(on, seed, self, `${tag}-trigger-on`),
            without: job(off, seed, self, `${tag}-trigger-off`),
            baseWith: job(on, seed, [], "base-trigger-on"),
            baseWithout: job(off, seed, [], "base-trigger-off"),
          });
        }
      }
      const vars = variations.map((p, i) => job(p, seeds[i % seeds.length] as number, self, `${tag}-variation`));
      const sc: SceneItem[] = [];
      for (const [i, p] of scenes.entries()) {
        const on = withTrigger(p, trigger);
        for (const seed of seeds) {
          sc.push({ scene: i, job: job(on, seed, self, `${tag}-scene`), base: job(on, seed, [], "base-scene"), text: withoutTrigger(p, trigger) });
        }
      }
      const sceneCandidates = [...new Set([...scenes, ...triggerPrompts].map((p) => withoutTrigger(p, trigger)))];
      weightChecks.push({ key: `${c.name}@${fmtWeight(w)}`, candidate: c.name, step: c.step, weight: w, trigger: trig, variations: vars, scenes: sc, sceneCandidates });
    }
  }

  let stack: StackCheck | undefined;
  const last = candidates[candidates.length - 1];
  if ((params.stack ?? true) && rubric.stack.length > 0 && last) {
    const adapters: AdapterRef[] = [{ name: names.get(last.path) as string, path: last.path, weight: rubric.self_weight }];
    for (const s of rubric.stack) {
      const name = adapterName(s.lora, taken);
      taken.add(name);
      adapters.push({ name, path: s.lora, weight: s.weight });
    }
    const combinedWeight = Number(adapters.reduce((sum, a) => sum + a.weight, 0).toFixed(6));
    const items: StackItem[] = [];
    for (const p of triggerPrompts) {
      const on = withTrigger(p, trigger);
      for (const seed of seeds) {
        const alone: Record<string, string> = {};
        for (const a of adapters) alone[a.name] = job(on, seed, [a], `stack-alone-${a.name}`);
        items.push({ prompt: p, seed, stack: job(on, seed, adapters, "stack"), base: job(on, seed, [], "base-trigger-on"), alone });
      }
    }
    stack = { adapters, combinedWeight, items };
    if (combinedWeight > 1.0) {
      warnings.push({ code: "W_STACK_WEIGHT", message: `stack weights add up to ${combinedWeight} (> 1.0): stacked LoRAs over 1.0 tend to burn or wash out each other` });
    }
    if (adapters.length > 2) {
      warnings.push({ code: "W_STACK_COUNT", message: `${adapters.length} adapters stacked: above 2-3 adapters, subjects and styles tend to disappear` });
    }
  }
  if (rubric.pose_variations < 10) {
    warnings.push({ code: "W_FEW_VARIATIONS", message: `pose_variations is ${rubric.pose_variations}; the rubric asks for at least ten to judge consistency` });
  }
  return { jobs, weights: weightChecks, baseVariations, stack, warnings };
}
