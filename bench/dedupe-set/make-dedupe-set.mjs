// Makes the labelled near-duplicate set that calibrates dedupe (bench/dedupe-bench.ts).
// True near-duplicates of each base: a re-encode, a resize, a small crop, a colour tweak, a
// watermark and an EXIF-rotated copy. Distinct: the same character in another pose, scene,
// lighting or place in the frame, other characters, noise photos, flat and transparent images.
// Images with the same `group` in labels.json are near-duplicates; any other pair is distinct.
// Usage: node bench/dedupe-set/make-dedupe-set.mjs   (rewrites bench/dedupe-set/images)
import { mkdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import sharp from "sharp";
import { svg } from "../../scripts/make-example-dataset.mjs";

const out = fileURLToPath(new URL("./images", import.meta.url));
const SIZE = 256;
const labels = [];
const add = async (file, group, kind, pipeline) => {
  await pipeline.toFile(join(out, file));
  labels.push({ file, group, kind });
};
const character = (i, vary) => sharp(Buffer.from(svg(i, vary).image)).resize(SIZE, SIZE);

function noisePhoto(seed) {
  // Deterministic "photo": blurred value noise with a few discs (no Math.random).
  let a = seed >>> 0;
  const rand = () => ((a = (Math.imul(a ^ (a >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0) / 4294967296);
  const data = Buffer.alloc(64 * 64 * 3);
  for (let i = 0; i < data.length; i++) data[i] = Math.floor(rand() * 256);
  const discs = Array.from({ length: 5 }, () => `<circle cx="${rand() * SIZE}" cy="${rand() * SIZE}" r="${20 + rand() * 50}" fill="rgb(${[rand(), rand(), rand()].map((c) => Math.floor(c * 255)).join(",")})"/>`);
  const overlay = Buffer.from(`<svg xmlns="http://www.w3.org/2000/svg" width="${SIZE}" height="${SIZE}">${discs.join("")}</svg>`);
  return sharp(data, { raw: { width: 64, height: 64, channels: 3 } }).resize(SIZE, SIZE, { kernel: "cubic" }).blur(2).composite([{ input: overlay }]);
}

/** The six edits a near-duplicate is made of, each from the base's PNG bytes. */
const EDITS = {
  reencode: (png) => sharp(png).jpeg({ quality: 35 }),
  resize: (png) => sharp(png).resize(160, 160).jpeg({ quality: 90 }),
  crop: (png) => sharp(png).extract({ left: 14, top: 10, width: SIZE - 28, height: SIZE - 22 }).resize(SIZE, SIZE).jpeg({ quality: 90 }),
  colour: (png) => sharp(png).modulate({ brightness: 1.1, saturation: 1.2 }).jpeg({ quality: 90 }),
  watermark: (png) =>
    sharp(png)
      .composite([{ input: Buffer.from(`<svg xmlns="http://www.w3.org/2000/svg" width="${SIZE}" height="${SIZE}"><text x="${SIZE - 8}" y="${SIZE - 12}" font-size="22" font-family="sans-serif" text-anchor="end" fill="#fff" fill-opacity="0.7" stroke="#000" stroke-opacity="0.4">© studio 2026</text></svg>`) }])
      .jpeg({ quality: 90 }),
  // Pixels stored rotated, EXIF orientation 6 turns them back upright for display and training.
  exif: (png) => sharp(png).rotate(270).withMetadata({ orientation: 6 }).jpeg({ quality: 90 }),
};

async function withEdits(name, base) {
  const png = await base.png().toBuffer();
  await add(`${name}.png`, name, "base", sharp(png).png({ palette: true, colours: 128 }));
  for (const [edit, make] of Object.entries(EDITS)) await add(`${name}-${edit}.jpg`, name, edit, make(png));
}

await rm(out, { recursive: true, force: true });
await mkdir(out, { recursive: true });
// Ten characters in varied scenes, each with its six near-duplicates ...
for (let i = 0; i < 10; i++) await withEdits(`char${i}`, character(i));
// ... and, for five of them, the same character with one thing changed: distinct images.
const changes = [
  ["pose", (i) => ({ pose: (i * 3 + 2) % 5 })],
  ["scene", (i) => ({ scene: (i + 2) % 5 })],
  ["light", (i) => ({ light: i + 1 })],
  ["moved", (i) => ({ cx: 300 + (((i * 131) % 420) + 210) % 420 })],
];
for (let i = 0; i < 5; i++) {
  for (const [what, vary] of changes) await add(`char${i}-other-${what}.png`, `char${i}-other-${what}`, `distinct-${what}`, character(i, vary(i)).png({ palette: true, colours: 128 }));
}
for (let s = 0; s < 3; s++) await withEdits(`photo${s}`, noisePhoto(1000 + s));
// Flat and transparent images: nothing to see, so only exact copies may ever match them.
const flat = (file, channels, background) => add(file, file.replace(/\..*$/, ""), "flat", sharp({ create: { width: SIZE, height: SIZE, channels, background } }).png());
await flat("flat-white.png", 3, "#ffffff");
await flat("flat-black.png", 3, "#000000");
await flat("flat-grey.png", 3, "#808080");
await flat("flat-teal.png", 3, "#1f9e9a");
await flat("transparent.png", 4, { r: 0, g: 0, b: 0, alpha: 0 });
await add("transparent-dot.png", "transparent-dot", "flat", sharp({ create: { width: SIZE, height: SIZE, channels: 4, background: { r: 0, g: 0, b: 0, alpha: 0 } } }).composite([{ input: Buffer.from(`<svg xmlns="http://www.w3.org/2000/svg" width="${SIZE}" height="${SIZE}"><circle cx="128" cy="128" r="30" fill="#e07b24"/></svg>`) }]).png());
await add("gradient.png", "gradient", "flat", sharp(Buffer.from(`<svg xmlns="http://www.w3.org/2000/svg" width="${SIZE}" height="${SIZE}"><defs><linearGradient id="g"><stop offset="0" stop-color="#203060"/><stop offset="1" stop-color="#a0c0f0"/></linearGradient></defs><rect width="${SIZE}" height="${SIZE}" fill="url(#g)"/></svg>`)).png());
labels.sort((a, b) => (a.file < b.file ? -1 : 1));
await writeFile(fileURLToPath(new URL("./labels.json", import.meta.url)), `${JSON.stringify({ note: "same group = near-duplicates; any other pair is distinct", images: labels }, null, 1)}\n`);
console.log(`wrote ${labels.length} images to ${out}`);
