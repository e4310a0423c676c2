import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { collectEvents } from "@loraspec/core/events.js";
import { isLoraspecError } from "@loraspec/core/errors.js";
import { convertLora } from "@loraspec/engine/lora/convert-lora.js";
import { inspectLora } from "@loraspec/engine/lora/inspect-lora.js";
import { mergeLora } from "@loraspec/engine/lora/merge-lora.js";
import { openSafetensors } from "@loraspec/engine/lora/safetensors-file.js";
import { buildLora, HAS_PYTHON, oracle, rng, tempDir } from "./helpers.js";

/**
 * Seeded mutants of a real FLUX.1 LoRA through inspect, convert and a cat merge, judged by the
 * reference reader (the `safetensors` Python package): the same verdict on every file, coded
 * errors only, no run over 10 s.
 */
const N = Number(process.env.LORA_FUZZ_MUTANTS ?? 3000);
const MAX_RUN_MS = 10_000;

// Hostile replacements for a number or a string token of the header.
const TOKENS = [
  "0", "1", "-1", "-0", "1.0", "4e0", "1e400", "99999999999999999999", "18446744073709551615", "18446744073709551616", "4611686018427387904",
  '"F64"', '"X9"', '"I64"', '"F8_E8M0"', '"C64"', '"\\ud800"', '"\\udc00x"', '"\\ud83d\\ude00"', "[]", "{}", "null", '"', ",", "]", "}", "[[[[[[[[[[]]]]]]]]]]",
];

function withHeader(original: Uint8Array, headerLen: number, text: string): Uint8Array {
  const t = new TextEncoder().encode(text);
  const out = new Uint8Array(8 + t.length + original.length - 8 - headerLen);
  new DataView(out.buffer).setBigUint64(0, BigInt(t.length), true);
  out.set(t, 8);
  out.set(original.subarray(8 + headerLen), 8 + t.length);
  return out;
}

function mutate(original: Uint8Array, headerLen: number, headerText: string, next: () => number): Uint8Array {
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(next() * xs.length)]!;
  const kind = Math.floor(next() * 8);
  if (kind === 0) return original.slice(0, Math.floor(next() * original.length));
  if (kind === 1) {
    const b = original.slice();
    new DataView(b.buffer).setBigUint64(0, BigInt(Math.floor(next() * 2 ** 53)) >> BigInt(Math.floor(next() * 53)), true);
    return b;
  }
  if (kind === 2) {
    const b = original.slice();
    for (let k = 0; k < 1 + Math.floor(next() * 4); k++) b[8 + Math.floor(next() * headerLen)] = Math.floor(next() * 256);
    return b;
  }
  if (kind === 3 || kind === 4) {
    const parts = headerText.split(/(\d+|"[A-Za-z0-9_.]+")/);
    for (let k = 0; k < 1 + (kind === 4 ? Math.floor(next() * 3) : 0); k++) parts[Math.floor(next() * parts.length)] = pick(TOKENS);
    return withHeader(original, headerLen, parts.join(""));
  }
  if (kind === 5) return new Uint8Array([...original, ...new Uint8Array(1 + Math.floor(next() * 16))]);
  if (kind === 6) {
    // A shape with a zero and a huge dimension, or a float spelling of a dimension.
    const forms = [`[0,${2n ** 62n}]`, `[${2n ** 62n},0]`, `[${2n ** 62n},8,0]`, "[2.0,64]", "[2e0,64]", "[-0,64]"];
    return withHeader(original, headerLen, headerText.replace(/"shape":\[[^\]]*\]/, `"shape":${pick(forms)}`));
  }
  // An unknown field nested near the recursion limit.
  const d = 124 + Math.floor(next() * 4);
  return withHeader(original, headerLen, headerText.replace(/"data_offsets"/, `"x":${"[".repeat(d)}${"]".repeat(d)},"data_offsets"`));
}

async function timed<T>(what: string, run: () => Promise<T>): Promise<{ outcome: string; ms: number }> {
  const t0 = performance.now();
  let outcome = "ok";
  try {
    await run();
  } catch (error) {
    if (!isLoraspecError(error)) throw new Error(`${what}: uncoded error ${String((error as Error)?.stack ?? error)}`);
    outcome = error.code;
  }
  return { outcome, ms: performance.now() - t0 };
}

describe.runIf(HAS_PYTHON)("mutation fuzz against the reference reader: inspect, convert, merge", () => {
  it(`${N} seeded mutants get the reference verdict and coded errors only, each run under 10 s`, async () => {
    const dir = await tempDir();
    const src = join(dir, "src.safetensors");
    await buildLora({
      path: src, arch: "flux1", format: "kohya", dtype: "BF16", rank: 2, alpha: () => 1, seed: 5,
      pick: (m) => m.native === "img_in" || m.native === "double_blocks.0.img_attn.proj",
      metadata: { ss_network_dim: "2", ss_tag_frequency: '{"a":{"b":1}}' },
    });
    const original = new Uint8Array(await readFile(src));
    const headerLen = Number(new DataView(original.buffer).getBigUint64(0, true));
    const headerText = new TextDecoder().decode(original.subarray(8, 8 + headerLen));
    const next = rng(2026);
    const mutants = join(dir, "mutants");
    await import("node:fs/promises").then((fs) => fs.mkdir(mutants));
    const paths: string[] = [];
    for (let i = 0; i < N; i++) {
      const p = join(mutants, `${String(i).padStart(5, "0")}.safetensors`);
      await writeFile(p, mutate(original, headerLen, headerText, next));
      paths.push(p);
    }
    const verdicts = oracle("safetensors_verdict.py", [mutants]) as Record<string, string>;
    const tally = new Map<string, number>();
    let slowest = 0;
    for (const p of paths) {
      const refOk = verdicts[p] === "ok";
      const open = await timed(`open ${p}`, async () => (await openSafetensors({ path: p })).close());
      expect(open.outcome === "ok", `${p}: reference says ${verdicts[p]}`).toBe(refOk);
      const runs = [
        open,
        await timed(`inspect ${p}`, () => inspectLora({ path: p })),
        await timed(`convert ${p}`, () => collectEvents(convertLora({ input: p, output: join(dir, "c.safetensors"), to: "diffusers", overwrite: true }))),
        await timed(`merge ${p}`, () => collectEvents(mergeLora({ inputs: [{ path: p, weight: 0.5 }, { path: src, weight: -0.5 }], output: join(dir, "m.safetensors"), method: "cat", overwrite: true }))),
      ];
      if (!refOk) for (const r of runs) expect(r.outcome, p).toBe("E_SAFETENSORS_INVALID");
      for (const r of runs) slowest = Math.max(slowest, r.ms);
      const key = `${refOk ? "valid" : "invalid"}:${runs.map((r) => r.outcome).join("/")}`;
      tally.set(key, (tally.get(key) ?? 0) + 1);
    }
    expect(slowest).toBeLessThan(MAX_RUN_MS);
    // Both verdicts occur in numbers, and some valid mutants convert and merge all the way.
    const valid = [...tally].filter(([k]) => k.startsWith("valid")).reduce((s, [, n]) => s + n, 0);
    expect(valid).toBeGreaterThan(N / 20);
    expect(N - valid).toBeGreaterThan(N / 4);
    expect(tally.get("valid:ok/ok/ok/ok") ?? 0).toBeGreaterThan(0);
  }, 300_000);
});
