/**
 * Calibrates NEAR_DUPLICATE.embeddingMin on a machine that has real CLIP/DINOv2 weights (none
 * here): embeds every image of bench/dedupe-set plus examples/character with the worker's
 * `embed` command and prints, for the pairs the hash-and-pixel pass calls near, the cosine of
 * true near duplicates against distinct pairs, and the recall/precision per embeddingMin.
 * Run: npx tsx bench/dedupe-embed-bench.ts [model] [clip|dino]
 *   e.g. npx tsx bench/dedupe-embed-bench.ts openai/clip-vit-large-patch14 clip
 */
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { nearEvidence, type DedupeImage } from "../packages/engine/src/dataset/dedupe.js";
import { signatureFromBytes } from "../packages/engine/src/dataset/image-signature.js";
import { NEAR_DUPLICATE } from "../packages/engine/src/dataset/prep-knowledge.js";
import { embedWithWorker } from "../packages/engine/src/dataset/worker-embedder.js";

const model = process.argv[2];
const kind = (process.argv[3] ?? "clip") as "clip" | "dino";
const dir = fileURLToPath(new URL("./dedupe-set", import.meta.url));
const example = fileURLToPath(new URL("../examples/character/dataset", import.meta.url));
const { images: labels } = JSON.parse(await readFile(join(dir, "labels.json"), "utf8")) as { images: Array<{ file: string; group: string }> };
const entries = labels.map((l) => ({ path: join(dir, "images", l.file), group: l.group }));
for (const f of (await readdir(example)).filter((f) => f.endsWith(".png")).sort()) {
  const i = Number(/(\d+)/.exec(f)![1]) - 1;
  entries.push({ path: join(example, f), group: i < 10 ? `char${i}` : `example:${f}` });
}
const outcome = await embedWithWorker(entries.map((e) => e.path), { model, kind });
if (!outcome.embeddings) throw new Error(`no embeddings: ${outcome.reason}`);
const images: DedupeImage[] = [];
for (const e of entries) images.push({ source: e.path, sha256: e.path, width: 1, height: 1, size: 1, signature: await signatureFromBytes(await readFile(e.path), { maxPixels: 1e8 }) });
const t = { ...NEAR_DUPLICATE.value, embeddingMin: -1 };
const all: Array<{ near: boolean; cos: number; candidate: boolean }> = [];
for (let i = 0; i < images.length; i++) {
  for (let j = i + 1; j < images.length; j++) {
    const ev = nearEvidence(images[i]!, images[j]!, t, outcome.embeddings);
    const a = outcome.embeddings.get(entries[i]!.path)!, b = outcome.embeddings.get(entries[j]!.path)!;
    const cos = a.reduce((s, x, k) => s + x * b[k]!, 0);
    all.push({ near: entries[i]!.group === entries[j]!.group, cos, candidate: ev !== undefined });
  }
}
const near = all.filter((p) => p.near).map((p) => p.cos).sort((x, y) => x - y);
const distinct = all.filter((p) => !p.near).map((p) => p.cos).sort((x, y) => y - x);
console.log(`${outcome.model} (${kind}): ${images.length} images; cosine of true near pairs min ${near[0]?.toFixed(4)}, 5th pct ${near[Math.floor(near.length * 0.05)]?.toFixed(4)}; distinct pairs max ${distinct[0]?.toFixed(4)}, 99th pct ${distinct[Math.floor(distinct.length * 0.01)]?.toFixed(4)}`);
console.log("| embeddingMin | near found (hash+pixel+embedding) | distinct called near |\n|---:|---:|---:|");
for (const min of [0.8, 0.85, 0.9, 0.92, 0.94, 0.95, 0.96, 0.98]) {
  const called = all.filter((p) => p.candidate && p.cos >= min);
  console.log(`| ${min} | ${called.filter((p) => p.near).length} / ${near.length} | ${called.filter((p) => !p.near).length} |`);
}
