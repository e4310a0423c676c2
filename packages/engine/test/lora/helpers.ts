import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { prng } from "../dataset/make-images.js";
import { tempDirsPerFile } from "../test-helpers.js";

export const REPO = fileURLToPath(new URL("../../../../", import.meta.url));
export const PYTHON = join(REPO, "worker/.venv/bin/python");
export const HAS_PYTHON = existsSync(PYTHON);

const loraDir = tempDirsPerFile("loraspec-lora-");

/** A fresh temp folder, removed when the spec file's tests are done. */
export async function tempDir(): Promise<string> {
  return loraDir();
}

/** Runs a Python oracle script from worker/tests/oracle and parses its JSON stdout. */
export function oracle(script: string, args: string[]): any {
  const r = spawnSync(PYTHON, [join(REPO, "worker/tests/oracle", script), ...args], { encoding: "utf8", maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`${script} failed (${r.status}):\n${r.stderr}`);
  return JSON.parse(r.stdout);
}

/** A small seeded PRNG (mulberry32) so fixtures are reproducible: the dataset fixtures' one. */
export const rng = prng;

export function randomF32(n: number, next: () => number, scale = 1): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (next() * 2 - 1) * scale;
  return out;
}

import { architecture, type ArchId, type ModuleSpec } from "@loraspec/core/lora/architectures.js";
import { encodeFromF32, type Dtype } from "@loraspec/core/lora/dtype.js";
import { writeSafetensors, type OutputTensor } from "@loraspec/engine/lora/write-safetensors.js";

/**
 * Writes a synthetic LoRA with real key names and real shapes for the chosen modules of an
 * architecture: kohya (lora_unet_/lora_te*_ + native names, lora_down/up + alpha) or diffusers
 * (prefix + diffusers names, lora_A/B, fused modules split). Values are seeded random.
 */
export async function buildLora(params: {
  path: string;
  arch: ArchId;
  format: "kohya" | "diffusers" | "ai-toolkit-flux2";
  pick: (m: ModuleSpec) => boolean;
  rank: number | ((m: ModuleSpec, i: number) => number);
  alpha?: (m: ModuleSpec, rank: number, i: number) => number | undefined;
  dtype?: Dtype;
  seed?: number;
  sparse?: (m: ModuleSpec) => boolean;
  metadata?: Record<string, string>;
  extra?: OutputTensor[];
}): Promise<void> {
  const arch = architecture(params.arch);
  const next = rng(params.seed ?? 1);
  const dtype = params.dtype ?? "F32";
  const tensors: OutputTensor[] = [...(params.extra ?? [])];
  // A format with no prefix for a component (diffusers FLUX.1 has no T5 LoRA keys) skips it.
  const mods = arch.modules.filter((m) => params.pick(m) && (params.format !== "diffusers" || arch.diffusersPrefix[m.component] !== undefined));
  mods.forEach((m, i) => {
    const rank = typeof params.rank === "number" ? params.rank : params.rank(m, i);
    const inner = m.shape.slice(1).reduce((a, b) => a * b, 1);
    const downShape = [rank, ...m.shape.slice(1)];
    const upTail = m.shape.slice(2).map(() => 1);
    if (params.format === "kohya") {
      const stem = arch.kohyaPrefix[m.component]! + m.native.replace(/\./g, "_");
      const up = randomF32(m.shape[0]! * rank, next, 0.05);
      if (params.sparse?.(m) && rank % m.parts.length === 0) {
        const k = rank / m.parts.length;
        m.parts.forEach((part, j) => {
          for (let r = part.start; r < part.end; r++) for (let c = 0; c < rank; c++) if (Math.floor(c / k) !== j) up[r * rank + c] = 0;
        });
      }
      tensors.push({ name: `${stem}.lora_down.weight`, dtype, shape: downShape, data: encodeFromF32(dtype, randomF32(rank * inner, next, 0.05)) });
      tensors.push({ name: `${stem}.lora_up.weight`, dtype, shape: [m.shape[0]!, rank, ...upTail], data: encodeFromF32(dtype, up) });
      const alpha = params.alpha?.(m, rank, i);
      if (alpha !== undefined) tensors.push({ name: `${stem}.alpha`, dtype, shape: [], data: encodeFromF32(dtype, new Float32Array([alpha])) });
    } else {
      const prefix = params.format === "diffusers" ? arch.diffusersPrefix[m.component]! : "diffusion_model.";
      const names = params.format === "diffusers" ? m.parts.map((p) => ({ name: p.name, rows: p.end - p.start })) : [{ name: m.native, rows: m.shape[0]! }];
      for (const p of names) {
        tensors.push({ name: `${prefix}${p.name}.lora_A.weight`, dtype, shape: downShape, data: encodeFromF32(dtype, randomF32(rank * inner, next, 0.05)) });
        tensors.push({ name: `${prefix}${p.name}.lora_B.weight`, dtype, shape: [p.rows, rank, ...upTail], data: encodeFromF32(dtype, randomF32(p.rows * rank, next, 0.05)) });
      }
    }
  });
  await writeSafetensors({ path: params.path, tensors, metadata: params.metadata });
}

/** FLUX.1 subset with every module kind: double blocks 0 and 18, single 0 and 37, top level, CLIP layer 0. */
export const fluxSubset = (m: ModuleSpec) =>
  /^(double_blocks\.(0|18)\.|single_blocks\.(0|37)\.)/.test(m.native) ||
  (m.component === "transformer" && !/blocks/.test(m.native)) ||
  (m.component === "te1" && m.native.startsWith("text_model.encoder.layers.0."));
