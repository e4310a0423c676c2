/**
 * LoRA file speed: `convert` (kohya -> diffusers) of a full-size FLUX.1 rank-32 kohya LoRA (bf16,
 * every double/single-block module, ~300 MB) and a `cat` merge of three such files, each against
 * (a) Python doing the same file-to-file job (diffusers' own conversion; a torch cat merge) and
 * (b) a plain copy of the same bytes (read + write + fsync), in the same run. In-process figures
 * exclude module loading on both sides; a separate table times whole commands (process start,
 * imports and all), since that is what a user waits for.
 * Run: npm run build && npx tsx bench/lora-bench.ts   (writes the "LoRA files" section of bench/RESULTS.md)
 */
import { spawnSync } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { mkdir, open, readFile, rm, stat, writeFile } from "node:fs/promises";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { collectEvents } from "../packages/core/src/events.js";
import { architecture } from "../packages/core/src/lora/architectures.js";
import { encodeFromF32 } from "../packages/core/src/lora/dtype.js";
import { convertLora } from "../packages/engine/src/lora/convert-lora.js";
import { mergeLora } from "../packages/engine/src/lora/merge-lora.js";
import { writeSafetensors, type OutputTensor } from "../packages/engine/src/lora/write-safetensors.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const PYTHON = join(ROOT, "worker/.venv/bin/python");
const RUNS = Number(process.env.LORA_BENCH_RUNS ?? 5);
const dir = join(tmpdir(), `loraspec-lora-bench-${process.pid}`);

async function buildFlux(path: string, seed: number, hashKeys = true): Promise<number> {
  const arch = architecture("flux1");
  let s = seed;
  const rand = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32 - 0.5) * 0.02;
  const tensors: OutputTensor[] = [];
  for (const m of arch.modules.filter((x) => x.component === "transformer" && x.defaultTarget)) {
    const stem = `lora_unet_${m.native.replace(/\./g, "_")}`;
    const r = 32;
    const fill = (n: number) => () => {
      const v = new Float32Array(n);
      for (let i = 0; i < n; i++) v[i] = rand();
      return encodeFromF32("BF16", v);
    };
    tensors.push({ name: `${stem}.lora_down.weight`, dtype: "BF16", shape: [r, m.shape[1]!], data: fill(r * m.shape[1]!) });
    tensors.push({ name: `${stem}.lora_up.weight`, dtype: "BF16", shape: [m.shape[0]!, r], data: fill(m.shape[0]! * r) });
    tensors.push({ name: `${stem}.alpha`, dtype: "BF16", shape: [], data: encodeFromF32("BF16", new Float32Array([16])) });
  }
  const metadata: Record<string, string> = { ss_network_dim: "32", ss_network_alpha: "16", ss_base_model_version: "flux1" };
  if (hashKeys) Object.assign(metadata, { sshs_model_hash: "", sshs_legacy_hash: "" });
  const r = await writeSafetensors({ path, tensors, metadata });
  return r.bytes;
}

async function plainCopy(inputs: string[], out: string): Promise<void> {
  const h = await open(out, "w");
  let pos = 0;
  for (const p of inputs) {
    const bytes = await readFile(p);
    await h.write(bytes, 0, bytes.length, pos);
    pos += bytes.length;
  }
  await h.sync();
  await h.close();
}

async function time(fn: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await fn();
  return (performance.now() - t) / 1000;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const min = (xs: number[]) => Math.min(...xs);

/** Wall seconds of a whole command, as a user runs it. */
function wall(cmd: string, args: string[]): number {
  const t = performance.now();
  const r = spawnSync(cmd, args, { encoding: "utf8", env: { ...process.env, NO_COLOR: "1" } });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} failed:\n${r.stderr}`);
  return (performance.now() - t) / 1000;
}

/** The CLI runs the bundle in dist/: refuse to time a bundle older than the LoRA sources. */
function checkBuilt(): void {
  const bundle = join(ROOT, "dist/cli.mjs");
  const built = statSync(bundle, { throwIfNoEntry: false })?.mtimeMs ?? 0;
  for (const d of ["packages/engine/src/lora", "packages/core/src/lora"]) {
    for (const f of readdirSync(join(ROOT, d))) {
      if (statSync(join(ROOT, d, f)).mtimeMs > built) throw new Error(`dist/cli.mjs is older than ${d}/${f}: run npm run build first`);
    }
  }
}

function python(args: string[]): number {
  const r = spawnSync(PYTHON, [join(ROOT, "bench/lora-bench.py"), ...args], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(r.stderr);
  return JSON.parse(r.stdout.trim().split("\n").at(-1)!).seconds as number;
}

/** In-process seconds per run: convert (ours, ours on the file without sshs_* keys, Python, plain copy) and cat merge (m*). */
interface InProcessTimes {
  ours: number[];
  oursNoHash: number[];
  py: number[];
  copy: number[];
  mOurs: number[];
  mPy: number[];
  mCopy: number[];
}

/** Whole-command seconds per run (process start, imports, work, exit): convert and cat merge, ours and Python. */
interface WholeTimes {
  ours: number[];
  py: number[];
  mOurs: number[];
  mPy: number[];
}

/** What the report says besides the times: input and output sizes (bytes), load average before and after. */
interface RunFacts {
  bytes: number;
  converted: number;
  merged: number;
  loadStart: number;
  loadEnd: number;
}

async function main(): Promise<void> {
  checkBuilt();
  const loadStart = loadavg()[0]!;
  await rm(dir, { recursive: true, force: true });
  const files = [join(dir, "a.safetensors"), join(dir, "b.safetensors"), join(dir, "c.safetensors")];
  await mkdir(dir, { recursive: true });
  let bytes = 0;
  for (let i = 0; i < 3; i++) bytes = await buildFlux(files[i]!, i + 1);
  // The same weights without sshs_* keys: nothing to hash, like the Python side (which writes no metadata).
  const noHash = join(dir, "a-nohash.safetensors");
  await buildFlux(noHash, 1, false);
  const { t, w } = await measure(files, noHash);
  const merged = (await stat(join(dir, "merged.safetensors"))).size;
  const converted = (await stat(join(dir, "ours.safetensors"))).size;
  const section = report(t, w, { bytes, converted, merged, loadStart, loadEnd: loadavg()[0]! });
  process.stdout.write(`${section}\n`);
  await writeResults(section);
  await rm(dir, { recursive: true, force: true });
}

/** RUNS interleaved rounds of every contender, in process and as whole commands. */
async function measure(files: string[], noHash: string): Promise<{ t: InProcessTimes; w: WholeTimes }> {
  const t: InProcessTimes = { ours: [], oursNoHash: [], py: [], copy: [], mOurs: [], mPy: [], mCopy: [] };
  const w: WholeTimes = { ours: [], py: [], mOurs: [], mPy: [] };
  const cli = join(ROOT, "bin/loraspec.mjs");
  const script = join(ROOT, "bench/lora-bench.py");
  for (let run = 0; run < RUNS; run++) {
    // Interleaved so cache state and machine load hit every contender alike.
    t.copy.push(await time(() => plainCopy([files[0]!], join(dir, "copy.safetensors"))));
    t.ours.push(await time(() => collectEvents(convertLora({ input: files[0]!, output: join(dir, "ours.safetensors"), to: "diffusers", overwrite: true }))));
    t.py.push(python(["convert", files[0]!, join(dir, "py.safetensors")]));
    t.oursNoHash.push(await time(() => collectEvents(convertLora({ input: noHash, output: join(dir, "ours-nohash.safetensors"), to: "diffusers", overwrite: true }))));
    t.mCopy.push(await time(() => plainCopy(files, join(dir, "copy3.safetensors"))));
    t.mOurs.push(await time(() => collectEvents(mergeLora({ inputs: files.map((path) => ({ path, weight: 1 / 3 })), output: join(dir, "merged.safetensors"), method: "cat", to: "kohya", overwrite: true }))));
    t.mPy.push(python(["cat", join(dir, "pymerged.safetensors"), ...files]));
    // Whole commands: process start, imports, work, exit (--force: the CLI refuses to replace a file without it,
    // as the in-process calls' overwrite: true).
    w.ours.push(wall(process.execPath, [cli, "convert", files[0]!, "--to", "diffusers", "-o", join(dir, "cli.safetensors"), "--force"]));
    w.py.push(wall(PYTHON, [script, "convert", files[0]!, join(dir, "py.safetensors")]));
    w.mOurs.push(wall(process.execPath, [cli, "merge", ...files.map((f) => `${f}:${1 / 3}`), "--method", "cat", "--to", "kohya", "-o", join(dir, "climerged.safetensors"), "--force"]));
    w.mPy.push(wall(PYTHON, [script, "cat", join(dir, "pymerged.safetensors"), ...files]));
  }
  return { t, w };
}

const secs = (xs: number[]) => xs.map((x) => x.toFixed(2)).join(",");

/** The "LoRA files" section of bench/RESULTS.md, between its start and end markers. */
function report(t: InProcessTimes, w: WholeTimes, facts: RunFacts): string {
  return [
    "<!-- lora-bench:start (written by bench/lora-bench.ts) -->",
    ...setup(facts),
    "",
    ...inProcessTables(t, facts.merged),
    "",
    ...inProcessVerdict(t, facts),
    "",
    ...wholeCommandTable(w),
    `Per-run seconds, ours/python/copy: convert ${secs(t.ours)} / ${secs(t.py)} / ${secs(t.copy)} (ours without hash keys: ${secs(t.oursNoHash)}); merge ${secs(t.mOurs)} / ${secs(t.mPy)} / ${secs(t.mCopy)}. ` +
      `Whole commands, ours/python: convert ${secs(w.ours)} / ${secs(w.py)}; merge ${secs(w.mOurs)} / ${secs(w.mPy)}.`,
    "<!-- lora-bench:end -->",
  ].join("\n");
}

/** The heading, then the machine, the input and what each side does. */
function setup({ bytes, converted, loadStart, loadEnd }: RunFacts): string[] {
  return [
    "## LoRA files: `convert` and `cat` merge",
    "",
    `Machine: ${cpus().length}-core ${cpus()[0]?.model.trim() ?? "CPU"}, Node ${process.version}, ${process.platform}. Date: ${new Date().toISOString().slice(0, 10)}. Median of ${RUNS} interleaved runs, wall seconds, file to file (read, work, write, fsync).`,
    `Input: a full-size FLUX.1 rank-32 kohya LoRA made by the benchmark (bf16, ${(bytes / 1e6).toFixed(0)} MB, every double- and single-block module, alpha 16, with sshs_* hash keys). ` +
      `The diffusers output is ${(converted / 1e6).toFixed(0)} MB (lora_down is copied to each of q/k/v(/mlp), as diffusers does). ` +
      `Load average ${loadStart.toFixed(1)} at the start and ${loadEnd.toFixed(1)} at the end on ${cpus().length} cores (other work shares this machine; the ratios come from interleaved runs).`,
    `What each side does: loraspec keeps the metadata true, so it also recomputes sshs_model_hash/sshs_legacy_hash (sha256 of the ${(converted / 1e6).toFixed(0)} MB) on convert, and fsyncs the file and its folder; ` +
      "the Python scripts drop the metadata (no hash) and fsync the file. In-process times exclude imports on both sides (torch, safetensors and diffusers are imported before the Python clock starts).",
  ];
}

/** The in-process tables, convert then cat merge, each row against its plain copy. */
function inProcessTables(t: InProcessTimes, merged: number): string[] {
  const row = (name: string, xs: number[], base: number[]) =>
    `| ${name} | ${median(xs).toFixed(2)} | ${(median(xs) / median(base)).toFixed(2)} | ${min(xs).toFixed(2)} | ${(min(xs) / min(base)).toFixed(2)} |`;
  return [
    "| convert kohya -> diffusers | median s | ratio to copy | min s | ratio to copy (min) |",
    "|---|---|---|---|---|",
    row("plain copy of the same bytes (baseline)", t.copy, t.copy),
    row("`loraspec convert --to diffusers` (in process)", t.ours, t.copy),
    row("`loraspec convert --to diffusers`, same weights without sshs_* keys (no hash to recompute, in process)", t.oursNoHash, t.copy),
    row("diffusers `_convert_kohya_flux_lora_to_diffusers` (load_file + convert + save_file, in process)", t.py, t.copy),
    "",
    `| cat merge of three (output ${(merged / 1e6).toFixed(0)} MB, rank 96) | median s | ratio to copy | min s | ratio to copy (min) |`,
    "|---|---|---|---|---|",
    row("plain copy of the three files' bytes into one (baseline)", t.mCopy, t.mCopy),
    row("`loraspec merge --method cat` (in process)", t.mOurs, t.mCopy),
    row("torch cat merge in Python (load_file x3 + cat + save_file, in process)", t.mPy, t.mCopy),
  ];
}

/** Speed-ups over Python and ratios to the copy against their aims, whether 3x is possible at all, and a note on an overloaded run. */
function inProcessVerdict(t: InProcessTimes, { loadStart, loadEnd }: RunFacts): string[] {
  const c = median(t.copy), mc = median(t.mCopy);
  // 3x faster than Python means finishing in a third of its time; compare that with the copy.
  const feasibility = (name: string, py: number, copy: number) =>
    py / 3 < copy
      ? `${name}: 3x faster than Python (${py.toFixed(2)} s) means ${(py / 3).toFixed(2)} s, less than the plain copy takes (${copy.toFixed(2)} s): it would mean reading, converting, writing and fsyncing faster than reading, writing and fsyncing the bytes alone.`
      : `${name}: 3x faster than Python (${py.toFixed(2)} s) means ${(py / 3).toFixed(2)} s, above the plain copy (${copy.toFixed(2)} s): possible in principle.`;
  return [
    `Speed-up over Python (in process, medians; minimums in brackets): convert ${(median(t.py) / median(t.ours)).toFixed(2)}x (${(min(t.py) / min(t.ours)).toFixed(2)}x), ` +
      `without hash keys ${(median(t.py) / median(t.oursNoHash)).toFixed(2)}x (${(min(t.py) / min(t.oursNoHash)).toFixed(2)}x), cat merge ${(median(t.mPy) / median(t.mOurs)).toFixed(2)}x (${(min(t.mPy) / min(t.mOurs)).toFixed(2)}x) (aim >= 3x). ` +
      `Ratio to copy (medians): convert ${(median(t.ours) / c).toFixed(2)}, merge ${(median(t.mOurs) / mc).toFixed(2)} (aim <= 2).`,
    `From the least disturbed runs (minimums; load inflates the Python medians most): ${feasibility("Convert", min(t.py), min(t.copy))} ${feasibility("Merge", min(t.mPy), min(t.mCopy))}`,
    ...(Math.max(loadStart, loadEnd) > cpus().length
      ? [
          "",
          `**Overloaded run** (load above ${cpus().length}): the Python processes (several threads, gigabytes of fresh memory) slow down far more than loraspec under load, ` +
            "so the speed-ups over Python above overstate what an idle machine shows; the minimums (least disturbed runs) and the ratios to the copy are the steadier figures.",
        ]
      : []),
  ];
}

/** The whole-command table and its speed-ups over Python. */
function wholeCommandTable(w: WholeTimes): string[] {
  return [
    "Whole commands (a separate measure: process start, imports, work and exit, timed from outside; what a user waits for):",
    "",
    "| whole command | median s | min s |",
    "|---|---|---|",
    `| \`loraspec convert --to diffusers\` (node bin/loraspec.mjs) | ${median(w.ours).toFixed(2)} | ${min(w.ours).toFixed(2)} |`,
    `| \`python lora-bench.py convert\` (imports torch + diffusers) | ${median(w.py).toFixed(2)} | ${min(w.py).toFixed(2)} |`,
    `| \`loraspec merge --method cat\` of three | ${median(w.mOurs).toFixed(2)} | ${min(w.mOurs).toFixed(2)} |`,
    `| \`python lora-bench.py cat\` of three (imports torch) | ${median(w.mPy).toFixed(2)} | ${min(w.mPy).toFixed(2)} |`,
    "",
    `Whole-command speed-up over Python (medians): convert ${(median(w.py) / median(w.ours)).toFixed(2)}x, cat merge ${(median(w.mPy) / median(w.mOurs)).toFixed(2)}x.`,
  ];
}

/** Puts the section in bench/RESULTS.md: in place of the last one, else at the end. */
async function writeResults(section: string): Promise<void> {
  const resultsPath = join(ROOT, "bench/RESULTS.md");
  const old = await readFile(resultsPath, "utf8").catch(() => "# Benchmark results\n");
  const re = /<!-- lora-bench:start[\s\S]*?<!-- lora-bench:end -->/;
  await writeFile(resultsPath, re.test(old) ? old.replace(re, section) : `${old.trimEnd()}\n\n${section}\n`);
}

await main();
