import { LoraspecError } from "../errors.js";
import type { Architecture } from "./architectures.js";
import { isDecodable, writableDtype } from "./dtype.js";
import { groupKeys, type ModuleKeys } from "./parse-lora.js";
import { checkPlannable, type PlanInput, type Plan, type PlannedTensor, unknownBaseError } from "./plan.js";
import { lycorisArch } from "./plan-lycoris.js";

/**
 * `loraspec merge X:S -o out` with one input: the same LoRA with its delta scaled by S, every key
 * kept (same names, shapes, rank, alpha), one factor per module multiplied by S, every other tensor a
 * byte copy. The rule per module kind, each exact because the delta is linear in that one factor:
 *
 * - plain LoRA, every key format (Kohya/A1111 `lora_up`/`lora_down`/`.alpha`, diffusers/peft/ai-toolkit
 *   `lora_B`/`lora_A`, ComfyUI, XLabs, OneTrainer): the up factor (B) x S. delta = (alpha / rank) B A,
 *   so scaling B gives S x delta and the stored alpha is left as the trainer wrote it (alpha / rank is
 *   still the scale it trained at, `ss_network_alpha` still agrees, a negative S never makes a negative
 *   alpha). peft's `lora_adapter_metadata` alpha is kept for the same reason. A peft `lora_B.bias` is part
 *   of the delta (peft multiplies lora_B's output, bias included, by the scale): x S too. A LoCon
 *   `lora_mid` (Tucker core) sits between down and up: only up is scaled.
 * - LoHa (`hada_w1_a/b`, `hada_w2_a/b`, optional Tucker `hada_t1/t2`): delta = (w1a w1b) o (w2a w2b) x
 *   scale, linear in hada_w1_a: hada_w1_a x S.
 * - LoKr (`lokr_w1` or `lokr_w1_a/b`, `lokr_w2` or `lokr_w2_a/b`, optional `lokr_t2`): delta =
 *   kron(w1, w2) x scale, linear in w1 (and in w1_a when w1 is factored): that one x S.
 * - full difference (`diff`, optional `diff_b`): both x S.
 *
 * Refused (E_NOT_SUPPORTED, naming the module): DoRA (W' = m (W + delta) / ||W + delta|| depends on the
 * base weights: no factor of the file scales the change to the model by S), OFT/BOFT (a rotation, not
 * additive), GLoRA, IA3 and LyCORIS norm modules (no rule checked here). Plain modules must be placed on
 * the base model as for any merge (E_LORA_UNUSED_KEYS otherwise), keys that fit no LoRA pattern too. Pure.
 */

export interface ScalePlan extends Plan {
  arch: Architecture;
  /** The keys multiplied by the scale (one per module, two for a full diff or a peft bias). */
  scaled: string[];
  /** Modules per kind: { lora: 120, lokr: 4 }. */
  kinds: Record<string, number>;
}

const LOHA = new Set(["hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b", "hada_t1", "hada_t2"]);
const LOKR = new Set(["lokr_w1", "lokr_w1_a", "lokr_w1_b", "lokr_w2", "lokr_w2_a", "lokr_w2_b", "lokr_t1", "lokr_t2"]);
const FULL = new Set(["diff", "diff_b"]);

const param = (m: ModuleKeys, key: string) => key.slice(m.base.length + 1);
const own = (m: ModuleKeys, p: string) => `${m.base}.${p}`;

/** Why a module kind has no exact scale, by one of its parameters. */
function notExact(m: ModuleKeys, params: string[], file?: string): LoraspecError {
  const dora = params.find((p) => p === "dora_scale" || p === "lora_magnitude_vector");
  const kind = dora ? "DoRA" : params.includes("oft_blocks") ? "OFT/BOFT" : params.some((p) => /^[ab][12m]\.weight$/.test(p)) ? "GLoRA" : params.some((p) => p === "w_norm" || p === "b_norm") ? "LyCORIS norm" : "this LyCORIS";
  const why = dora
    ? "DoRA renormalises W + delta by its column norms and rescales by a magnitude vector, so the change it makes to the model depends on the base weights: no factor of the file scales that change by S exactly"
    : kind === "OFT/BOFT"
      ? "OFT/BOFT rotates the base weights (a multiplicative change): scaling a factor does not scale the change by S"
      : "loraspec knows no factor of it that scales the change exactly";
  return new LoraspecError("E_NOT_SUPPORTED", `cannot scale module "${m.base}" (${kind}): ${why}`, {
    file,
    field: `tensor "${dora ? own(m, dora) : m.extra[0]}"`,
    hint: "Apply this LoRA at the strength you want in the loader instead; only plain LoRA, LoCon, LoHa, LoKr and full-diff modules can be scaled in the file.",
    details: { module: m.base, kind, parameters: params },
  });
}

/**
 * Plans the scaled copy of one LoRA file. `scale` must be finite and not 0 (checkMergeOptions refuses
 * both before any file is read; checked again here).
 */
export function planScale(params: { input: PlanInput; scale: number; file?: string }): ScalePlan {
  const { input, scale, file } = params;
  if (!Number.isFinite(scale) || scale === 0) {
    throw new LoraspecError("E_USAGE", `scale ${scale} ${scale === 0 ? "would erase the LoRA (its delta x 0 is nothing)" : "is not a finite number"}`, { file, field: `weight of ${file ?? "the input"}` });
  }
  const arch = input.parsed.arch ?? lycorisArch(input);
  if (!arch) throw unknownBaseError(input.parsed, file);
  const { modules, unknown } = groupKeys(input.tensors.map((t) => t.name));
  const placedDown = new Set(input.parsed.placed.map((m) => m.keys.down));
  const factor = new Map<string, number>();
  const group = new Map<string, string>();
  const unusable: string[] = [...unknown];
  const kinds: Record<string, number> = {};
  const count = (k: string) => (kinds[k] = (kinds[k] ?? 0) + 1);
  for (const m of modules) {
    const params = m.extra.map((k) => param(m, k));
    if (params.some((p) => p === "dora_scale" || p === "lora_magnitude_vector")) throw notExact(m, params, file);
    if (m.keys.down !== undefined && m.keys.up !== undefined) {
      // Plain LoRA (a LoCon Tucker core in between is left as is).
      if (params.some((p) => p !== "lora_mid.weight")) throw notExact(m, params, file);
      if (!placedDown.has(m.keys.down)) {
        unusable.push(...[m.keys.down, m.keys.up, m.keys.alpha, m.keys.bias, ...m.extra].filter((k): k is string => k !== undefined));
        continue;
      }
      factor.set(m.keys.up, scale);
      // down and up multiply: a scale that does not fit the up factor's dtype may move to down (plan-fit.ts).
      // A Tucker core multiplies too, but stays a byte copy; a bias is added, so it keeps the whole scale.
      for (const k of [m.keys.down, m.keys.up]) group.set(k, m.base);
      if (m.keys.bias) factor.set(m.keys.bias, scale);
      count(params.length > 0 ? "locon-tucker" : "lora");
      continue;
    }
    if (m.keys.down !== undefined || m.keys.up !== undefined || m.keys.bias !== undefined || params.length === 0) {
      // Half a LoRA, or an alpha with nothing to scale.
      unusable.push(...Object.values(m.keys).filter((k): k is string => k !== undefined), ...m.extra);
      continue;
    }
    const has = (p: string) => params.includes(p);
    // Every LoHa/LoKr factor multiplies into the delta: one group (plan-fit.ts).
    if (params.every((p) => LOHA.has(p) || LOKR.has(p))) for (const k of m.extra) group.set(k, m.base);
    if (params.every((p) => LOHA.has(p)) && ["hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b"].every(has)) {
      factor.set(own(m, "hada_w1_a"), scale);
      count("loha");
    } else if (params.every((p) => LOKR.has(p)) && (has("lokr_w1") || (has("lokr_w1_a") && has("lokr_w1_b"))) && (has("lokr_w2") || (has("lokr_w2_a") && has("lokr_w2_b")))) {
      factor.set(own(m, has("lokr_w1") ? "lokr_w1" : "lokr_w1_a"), scale);
      count("lokr");
    } else if (params.every((p) => FULL.has(p)) && has("diff")) {
      for (const p of params) factor.set(own(m, p), scale);
      count("full");
    } else {
      throw notExact(m, params, file);
    }
  }
  if (unusable.length > 0) {
    throw new LoraspecError("E_LORA_UNUSED_KEYS", `${unusable.length} key(s) cannot be scaled: ${unusable.slice(0, 8).join(", ")}${unusable.length > 8 ? ", ..." : ""}`, {
      file,
      hint: "Only LoRA modules of a known base model (plain, LoCon, LoHa, LoKr, full diff) can be scaled; `loraspec inspect` lists these keys.",
      details: { keys: unusable, misfits: input.parsed.misfits },
    });
  }
  // Factors and alphas hold real numbers, alphas are one finite number (the same check as every merge).
  checkPlannable(input, file);
  const tensors: PlannedTensor[] = input.tensors.map((t) => {
    const f = factor.get(t.name) ?? 1;
    if (f !== 1 && !isDecodable(t.dtype)) {
      throw new LoraspecError("E_NOT_SUPPORTED", `${t.dtype} tensor: a factor to scale must hold real numbers`, {
        file,
        field: `tensor "${t.name}"`,
        hint: "Re-export the LoRA with float tensors.",
        details: { tensor: t.name, dtype: t.dtype },
      });
    }
    return { name: t.name, dtype: f === 1 ? t.dtype : writableDtype(t.dtype), shape: t.shape, op: { op: "place", parts: [{ src: { input: 0, key: t.name }, factor: f, row: 0, col: 0, group: group.get(t.name) }] } };
  });
  return { tensors, dropped: [], arch, scaled: [...factor.keys()], kinds };
}
