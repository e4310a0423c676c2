/**
 * Near-duplicate calibration: the labelled set in bench/dedupe-set (make-dedupe-set.mjs), plus the
 * 20 distinct images of examples/character, through
 * the same functions prep and check use (signatureFromBytes, nearEvidence, dedupeImages).
 * Pair level: precision and recall of "near duplicate" over every labelled pair, per pixel
 * threshold. Set level: what dedupeImages keeps (a distinct image dropped is the failure that
 * matters; a near duplicate kept only costs a little training time).
 * Run: npx tsx bench/dedupe-bench.ts   (prints the markdown for bench/RESULTS.md)
 */
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { dedupeImages, hammingDistance, type DedupeImage } from "../packages/engine/src/dataset/dedupe.js";
import { signatureFromBytes } from "../packages/engine/src/dataset/image-signature.js";
import { pixelDistance } from "../packages/engine/src/dataset/pixel-distance.js";
import { NEAR_DUPLICATE } from "../packages/engine/src/dataset/prep-knowledge.js";

const dir = fileURLToPath(new URL("./dedupe-set", import.meta.url));
const { images: labels } = JSON.parse(await readFile(join(dir, "labels.json"), "utf8")) as { images: Array<{ file: string; group: string; kind: string }> };
// examples/character joins at full size: txcl_01..10 are char0..9 of the set at 1024 px (the
// same pictures, so near duplicates of them), txcl_11..20 are ten more distinct poses.
const example = fileURLToPath(new URL("../examples/character/dataset", import.meta.url));
for (const f of (await readdir(example)).filter((f) => f.endsWith(".png")).sort()) {
  const i = Number(/(\d+)/.exec(f)![1]) - 1;
  labels.push({ file: `example:${f}`, group: i < 10 ? `char${i}` : `example:${f}`, kind: "example" });
}
const images: DedupeImage[] = [];
for (const l of labels) {
  const bytes = await readFile(l.file.startsWith("example:") ? join(example, l.file.slice(8)) : join(dir, "images", l.file));
  const signature = await signatureFromBytes(bytes, { maxPixels: 1e8 });
  images.push({ source: l.file, sha256: l.file, width: 256, height: 256, size: bytes.byteLength, signature });
}
const group = new Map(labels.map((l) => [l.file, l.group]));
const t = NEAR_DUPLICATE.value;
const kind = new Map(labels.map((l) => [l.file, l.kind]));
const pairs: Array<{ near: boolean; phash: number; pixel: number; flat: boolean; kinds: string }> = [];
for (let i = 0; i < images.length; i++) {
  for (let j = i + 1; j < images.length; j++) {
    const a = images[i]!, b = images[j]!;
    const flat = a.signature!.contrast < t.flatContrast || b.signature!.contrast < t.flatContrast;
    const phash = hammingDistance(a.signature!.phash, b.signature!.phash);
    const pixel = flat || phash > t.phashMax ? Infinity : pixelDistance(a.signature!, b.signature!);
    pairs.push({ near: group.get(a.source) === group.get(b.source), phash, pixel, flat, kinds: [kind.get(a.source), kind.get(b.source)].sort().join("+") });
  }
}
const truePairs = pairs.filter((p) => p.near).length;
const lines = [
  `${labels.length} images, ${pairs.length} pairs, ${truePairs} of them near duplicates; candidate at phash Hamming <= ${t.phashMax}, confirmed at pixel distance <= pixelAtZero - ${t.pixelPerBit} x Hamming; flat below grey std ${t.flatContrast}.`,
  "",
  `| pixelAtZero (slope ${t.pixelPerBit}/bit) | pairs called near | true near found (recall) | distinct called near | precision |`,
  "|---:|---:|---:|---:|---:|",
];
const within = (p: { phash: number; pixel: number }, atZero: number) => p.pixel <= atZero - t.pixelPerBit * p.phash;
for (const pixelMax of [10, 12, 14, 15, 16, 17, 18, 20]) {
  const called = pairs.filter((p) => within(p, pixelMax));
  const tp = called.filter((p) => p.near).length;
  const mark = pixelMax === t.pixelAtZero ? " **(default)**" : "";
  lines.push(`| ${pixelMax}${mark} | ${called.length} | ${tp} / ${truePairs} (${((100 * tp) / truePairs).toFixed(1)}%) | ${called.length - tp} | ${called.length ? ((100 * tp) / called.length).toFixed(1) : "-"}% |`);
}
// Recall of each edit against its base, with the defaults.
const byEdit = new Map<string, [number, number]>();
for (const p of pairs.filter((x) => x.near && x.kinds.includes("base"))) {
  const edit = p.kinds.replace("base+", "").replace("+base", "");
  const [found, all] = byEdit.get(edit) ?? [0, 0];
  byEdit.set(edit, [found + (within(p, t.pixelAtZero) ? 1 : 0), all + 1]);
}
lines.push("", `Edit found against its base (defaults): ${[...byEdit].map(([e, [f, a]]) => `${e} ${f}/${a}`).join(", ")}.`);
// Set level with the defaults: what prep would keep.
const clusters = dedupeImages({ images });
const dropped = clusters.flatMap((c) => c.drop.map((d) => ({ d, keep: c.keep })));
const wrong = dropped.filter(({ d, keep }) => group.get(d) !== group.get(keep));
const groups = new Set(labels.map((l) => l.group));
const extra = groups.size;
const kept = images.length - dropped.length;
lines.push(
  "",
  `With the defaults, dedupeImages keeps ${kept} of ${images.length} images for ${extra} distinct pictures: ${wrong.length} distinct image(s) dropped${wrong.length ? ` (${wrong.map((w) => `${w.d} for ${w.keep}`).join(", ")})` : ""}, ${dropped.length - wrong.length} of ${images.length - extra} near duplicates dropped (${((100 * (dropped.length - wrong.length)) / (images.length - extra)).toFixed(1)}%).`,
);
console.log(lines.join("\n"));
