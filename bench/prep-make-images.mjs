// Makes the prep benchmark's input once: N photo-like 4000x3000 JPEGs (smooth colour fields from
// an upscaled random grid, gaussian noise, random shapes; every 4th has EXIF orientation 6) in
// bench/out/prep-src/ (git-ignored). Deterministic per index. Run: node bench/prep-make-images.mjs [N]
import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import sharp from "sharp";
import { prng } from "../scripts/lib/prng.mjs";

export const SRC = fileURLToPath(new URL("./out/prep-src/", import.meta.url));
const W = 4000;
const H = 3000;


// Sensor-like grain, made once and shared: per-image content comes from the grid and the shapes.
let noise;
function noiseLayer() {
  noise ??= sharp({ create: { width: W, height: H, channels: 3, noise: { type: "gaussian", mean: 128, sigma: 30 } } }).raw().toBuffer();
  return noise;
}

async function makeOne(i) {
  const rand = prng(i + 1);
  const grid = Buffer.alloc(16 * 12 * 3);
  for (let k = 0; k < grid.length; k++) grid[k] = Math.floor(rand() * 256);
  const base = await sharp(grid, { raw: { width: 16, height: 12, channels: 3 } }).resize(W, H, { kernel: "cubic" }).raw().toBuffer();
  const shapes = Array.from({ length: 12 }, () => {
    const [x, y, r] = [rand() * W, rand() * H, 80 + rand() * 600];
    const fill = `rgb(${Math.floor(rand() * 256)},${Math.floor(rand() * 256)},${Math.floor(rand() * 256)})`;
    return rand() < 0.5
      ? `<circle cx="${x.toFixed(0)}" cy="${y.toFixed(0)}" r="${r.toFixed(0)}" fill="${fill}" fill-opacity="0.8"/>`
      : `<rect x="${x.toFixed(0)}" y="${y.toFixed(0)}" width="${(r * 1.5).toFixed(0)}" height="${r.toFixed(0)}" fill="${fill}" fill-opacity="0.8" transform="rotate(${(rand() * 90).toFixed(0)} ${x.toFixed(0)} ${y.toFixed(0)})"/>`;
  });
  const svg = Buffer.from(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}">${shapes.join("")}</svg>`);
  const layered = await sharp(base, { raw: { width: W, height: H, channels: 3 } })
    .composite([{ input: svg }, { input: await noiseLayer(), raw: { width: W, height: H, channels: 3 }, blend: "soft-light" }])
    .removeAlpha()
    .raw()
    .toBuffer({ resolveWithObject: true });
  let img = sharp(layered.data, { raw: { width: W, height: H, channels: layered.info.channels } }).jpeg({ quality: 90 });
  if (i % 4 === 3) img = img.withMetadata({ orientation: 6 });
  await img.toFile(join(SRC, `photo_${String(i).padStart(3, "0")}.jpg`));
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const n = Number(process.argv[2] ?? 200);
  await mkdir(SRC, { recursive: true });
  const todo = Array.from({ length: n }, (_, i) => i).filter((i) => !existsSync(join(SRC, `photo_${String(i).padStart(3, "0")}.jpg`)));
  const t0 = Date.now();
  for (let k = 0; k < todo.length; k += 2) await Promise.all(todo.slice(k, k + 2).map(makeOne));
  console.log(`made ${todo.length} images in ${((Date.now() - t0) / 1000).toFixed(1)} s -> ${SRC}`);
}
