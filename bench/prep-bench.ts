/**
 * Dataset prep speed: 200 photo-like 4000x3000 JPEGs (bench/prep-make-images.mjs) prepared to
 * 1024x1024 PNG by `loraspec prep` (prepareDataset: scan + hash + dedupe + crop/resize + write +
 * manifest), against, in the same run and on the same files:
 *   (a) a Pillow script doing decode, EXIF-rotate, centre crop, Lanczos resize, PNG write
 *       (bench/prep_pillow.py), in one process and with a 2-process pool;
 *   (b) sharp's bare decode + EXIF-rotate + cover resize to raw pixels (no hashing, no encode, no write).
 * Files are split into chunks and the contenders interleaved chunk by chunk, so load from other
 * processes on this shared machine lands on all of them alike.
 * Run: node bench/prep-make-images.mjs && npx tsx bench/prep-bench.ts [images] [chunks]
 * (writes the "Dataset prep" section of bench/RESULTS.md)
 */
import { spawnSync } from "node:child_process";
import { link, mkdir, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { availableParallelism, cpus, loadavg } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import sharp from "sharp";
import { collectEvents } from "../packages/core/src/events.js";
import { prepareDataset } from "../packages/engine/src/dataset/prepare-dataset.js";
import { mapPool } from "../packages/engine/src/dataset/map-pool.js";

const root = fileURLToPath(new URL("..", import.meta.url));
const src = join(root, "bench", "out", "prep-src");
const work = join(root, "bench", "out", "prep-run");
const python = join(root, "worker", ".venv", "bin", "python");
const SIZE = 1024;
const count = Number(process.argv[2] ?? 200);
const chunks = Number(process.argv[3] ?? 4);
const inFlight = Number(process.env.PREP_CONCURRENCY ?? availableParallelism());
const PNG_LEVEL = 1; // loraspec's default (prep-knowledge.ts OUTPUT_ENCODING); Pillow gets the same

const files = (await readdir(src)).filter((f) => f.endsWith(".jpg")).sort().slice(0, count);
if (files.length < count) throw new Error(`only ${files.length} images in ${src}: run node bench/prep-make-images.mjs ${count}`);
await rm(work, { recursive: true, force: true });
const chunkDirs: string[][] = [];
for (let c = 0; c < chunks; c++) {
  const part = files.filter((_, i) => i % chunks === c);
  const dir = join(work, `chunk-${c}`, "src");
  await mkdir(dir, { recursive: true });
  for (const f of part) await link(join(src, f), join(dir, f));
  chunkDirs.push(part.map((f) => join(dir, f)));
}
// Warm the page cache so every contender reads from memory.
for (const f of files) await readFile(join(src, f));

const totals = { loraspec: 0, bare: 0, pillow1: 0, pillow2: 0 };
const seconds = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e9;

for (let c = 0; c < chunks; c++) {
  const paths = chunkDirs[c]!;
  const chunkRoot = join(work, `chunk-${c}`);

  let t0 = process.hrtime.bigint();
  for await (const _ of mapPool(paths, inFlight, (p) =>
    sharp(p).rotate().resize(SIZE, SIZE, { fit: "cover", kernel: "lanczos3" }).raw().toBuffer(),
  ));
  totals.bare += seconds(t0);

  t0 = process.hrtime.bigint();
  const events = await collectEvents(prepareDataset({ datasetDir: join(chunkRoot, "src"), outDir: join(chunkRoot, "loraspec"), resolution: SIZE, concurrency: inFlight }));
  totals.loraspec += seconds(t0);
  const done = events.find((e) => e.type === "done") as { result?: { outputs?: number; skipped?: unknown[] } } | undefined;
  if (done?.result?.outputs !== paths.length) throw new Error(`loraspec prepared ${done?.result?.outputs} of ${paths.length}: ${JSON.stringify(done?.result?.skipped)}`);

  for (const [key, procs] of [["pillow1", 1], ["pillow2", 2]] as const) {
    const r = spawnSync(python, [join(root, "bench", "prep_pillow.py"), join(chunkRoot, `pillow${procs}`), String(SIZE), String(procs), String(PNG_LEVEL), ...paths], { encoding: "utf8" });
    if (r.status !== 0) throw new Error(`prep_pillow.py failed: ${r.stderr}`);
    totals[key] += JSON.parse(r.stdout.trim().split("\n").at(-1)!).seconds;
  }
  process.stderr.write(`chunk ${c + 1}/${chunks}: ${JSON.stringify(Object.fromEntries(Object.entries(totals).map(([k, v]) => [k, v.toFixed(1)])))}\n`);
}

// Incremental re-run of the whole set: nothing changed, so only hashing and the manifest.
const all = join(work, "all");
await mkdir(join(all, "src"), { recursive: true });
for (const f of files) await link(join(src, f), join(all, "src", f));
await collectEvents(prepareDataset({ datasetDir: join(all, "src"), outDir: join(all, "out"), resolution: SIZE, concurrency: inFlight }));
let t0 = process.hrtime.bigint();
await collectEvents(prepareDataset({ datasetDir: join(all, "src"), outDir: join(all, "out"), resolution: SIZE, concurrency: inFlight }));
const rerun = seconds(t0);

// Output parity: loraspec's PNG vs Pillow's for the first image (both centre crops, Lanczos).
const first = files[0]!.replace(/\.jpg$/, ".png");
const [a, b] = await Promise.all([join(work, "chunk-0", "loraspec", first), join(work, "chunk-0", "pillow1", first)].map((p) => sharp(p).raw().toBuffer()));
let diff = 0;
for (let i = 0; i < a!.length; i++) diff += Math.abs(a![i]! - b![i]!);
const meanAbsDiff = diff / a!.length;

const n = files.length;
const rate = (s: number) => n / s;
const rows = [
  ["sharp bare decode + rotate + resize to raw (baseline)", totals.bare],
  ["**loraspec prep** (hash, dHash, dedupe, crop, resize, PNG, atomic write, manifest)", totals.loraspec],
  ["Pillow 13, 1 process (decode, exif_transpose, crop, LANCZOS, PNG)", totals.pillow1],
  ["Pillow 13, 2-process pool (same)", totals.pillow2],
] as const;
const load = loadavg().map((x) => x.toFixed(1)).join(" / ");
const date = new Date().toISOString().slice(0, 10);
const section = [
  "<!-- prep-bench:start (written by bench/prep-bench.ts) -->",
  "## Dataset prep",
  "",
  `Machine: ${cpus().length}-core ${cpus()[0]?.model.trim()}, Node ${process.version}, sharp ${sharp.versions.sharp} / libvips ${sharp.versions.vips}, linux. Date: ${date}.`,
  `Input: ${n} photo-like 4000x3000 JPEGs (q90, ~3.9 MB each, noise + colour fields + shapes, every 4th EXIF-rotated; bench/prep-make-images.mjs). Output: 1024x1024 PNG (zlib level ${PNG_LEVEL} for both loraspec and Pillow). ${chunks} chunks, contenders interleaved per chunk; page cache warm; ${inFlight} images in flight for sharp/loraspec.`,
  "",
  "| pipeline | seconds | images/s | loraspec speed-up |",
  "|---|---|---|---|",
  ...rows.map(([name, s]) => `| ${name} | ${s.toFixed(1)} | ${rate(s).toFixed(2)} | ${(s / totals.loraspec).toFixed(2)}x |`),
  "",
  `- loraspec vs Pillow (1 process): **${(totals.pillow1 / totals.loraspec).toFixed(2)}x**; vs Pillow (2 processes): **${(totals.pillow2 / totals.loraspec).toFixed(2)}x**. Aim >= 3x Pillow: ${totals.pillow1 / totals.loraspec >= 3 ? "met" : "NOT met"} against 1 process, ${totals.pillow2 / totals.loraspec >= 3 ? "met" : "NOT met"} against the 2-process pool.`,
  `- loraspec takes **${(totals.loraspec / totals.bare).toFixed(2)}x** the time of sharp's bare decode+resize. Aim within 1.5x: ${totals.loraspec / totals.bare <= 1.5 ? "met" : "NOT met"}.`,
  `- Re-running prep on the unchanged ${n} images (incremental: hash only, nothing decoded): ${rerun.toFixed(2)} s.`,
  `- loraspec vs Pillow output on the same image: mean absolute difference ${meanAbsDiff.toFixed(2)} of 255 per channel (both Lanczos3 centre crops; sharp uses JPEG shrink-on-load, Pillow decodes full size).`,
  `- Load average at the end: ${load} (1/5/15 min) on ${cpus().length} cores, shared with other work; ratios are what to compare.`,
  "<!-- prep-bench:end -->",
].join("\n");

const resultsPath = join(root, "bench", "RESULTS.md");
const current = await readFile(resultsPath, "utf8").catch(() => "# Benchmark results\n");
const re = /<!-- prep-bench:start[\s\S]*?<!-- prep-bench:end -->/;
await writeFile(resultsPath, re.test(current) ? current.replace(re, section) : `${current.trimEnd()}\n\n${section}\n`);
process.stdout.write(`${section}\n`);
await rm(work, { recursive: true, force: true });
