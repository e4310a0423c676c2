import type { PlannedTensor, TargetFormat } from "./plan.js";

/**
 * Kohya's `ss_network_alpha` and `ss_network_dim` describe the file's alphas and ranks; a convert
 * can change both (a diffusers target bakes every alpha in, a Kohya/ComfyUI target from diffusers
 * writes alpha = rank, a fused join sums ranks, a block-sparse split divides them). So after a
 * convert they say what the written file holds, when they were there:
 * - `ss_network_alpha`: the one alpha every written module has (the original text kept when the
 *   value did not change), or removed when the modules' alphas differ or the target has none (diffusers).
 * - `ss_network_dim`: the one rank every written plain-LoRA module has, or removed when they differ.
 *   Left as is for a file with no plain-LoRA module (LoKr/LoHa keep their factors' shapes).
 * Keys that were absent are not added, and a key is left as it was when the convert wrote the same
 * set of alphas (ranks) as the source held. Returns the names changed or removed. Pure.
 */
export function refreshNetworkMetadata(
  metadata: Record<string, string>,
  tensors: readonly PlannedTensor[],
  target: TargetFormat,
  /** The source's plain-LoRA alphas and ranks: when the written ones are the same set, the keys are left as the trainer wrote them (a LoCon's conv_alpha modules beside ss_network_alpha stay as they were). */
  source: { alphas: readonly number[]; ranks: readonly number[] },
): { updated: string[]; removed: string[] } {
  const alphas = new Set<number>();
  const ranks = new Set<number>();
  for (const t of tensors) {
    if (t.name.endsWith(".alpha") && t.op.op === "scalar") alphas.add(t.op.value);
    if (/\.(lora_down|lora_A)\.weight$/.test(t.name)) ranks.add(t.shape[0]!);
  }
  const updated: string[] = [];
  const removed: string[] = [];
  const same = (a: Set<number>, b: readonly number[]) => a.size === new Set(b).size && b.every((x) => a.has(x));
  const set = (key: string, values: Set<number>, keep: boolean) => {
    const old = metadata[key];
    if (old === undefined || !keep) return;
    if (key === "ss_network_alpha" && target !== "diffusers" && same(values, source.alphas)) return;
    if (key === "ss_network_dim" && same(values, source.ranks)) return;
    if (values.size === 1) {
      const v = [...values][0]!;
      if (Number(old) !== v) {
        metadata[key] = String(v);
        updated.push(key);
      }
    } else {
      delete metadata[key];
      removed.push(key);
    }
  };
  // A diffusers file has no alpha at all: the key describes nothing in it.
  set("ss_network_alpha", target === "diffusers" ? new Set() : alphas, true);
  set("ss_network_dim", ranks, ranks.size > 0);
  return { updated, removed };
}
