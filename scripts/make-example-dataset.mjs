// Makes the example character dataset: 20 procedural 1024x1024 PNGs of one made-up character
// ("txcl": a round orange creature with a teal scarf) in varied poses, scales, backgrounds and
// lighting, each with a natural-language caption that starts with the trigger.
// Usage: node scripts/make-example-dataset.mjs [outDir]   (default examples/character/dataset)
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import sharp from "sharp";

const SIZE = 1024;
const SCENES = [
  ["#9fd3f0", "#6aa84f", "in a sunny meadow"],
  ["#1d2440", "#2f3a5a", "at night under a dark blue sky"],
  ["#f6d7a7", "#c9a27c", "on a sandy beach"],
  ["#d9d9d9", "#8a8a8a", "in a grey studio"],
  ["#f4b6c2", "#c77d8e", "in front of a pink wall"],
];
const POSES = ["standing", "waving one arm", "jumping", "sitting", "leaning to the left"];
const MOODS = [
  ["smiling", "M -40 30 Q 0 70 40 30"],
  ["looking surprised", "M -15 40 A 15 15 0 1 0 15 40 A 15 15 0 1 0 -15 40"],
  ["frowning", "M -40 55 Q 0 20 40 55"],
  ["grinning widely", "M -55 25 Q 0 95 55 25 Z"],
];

/**
 * Image `i` of the set as SVG text. `vary` overrides one attribute (scene, pose, mood, light
 * parity, x position) so the dedupe bench can make "same subject, one thing changed" pairs.
 */
export function svg(i, vary = {}) {
  const [sky, ground, where] = SCENES[vary.scene ?? i % SCENES.length];
  const pose = POSES[vary.pose ?? (i * 3) % POSES.length];
  const [mood, mouth] = MOODS[vary.mood ?? (i * 7) % MOODS.length];
  const scale = 0.7 + ((i * 37) % 50) / 100;
  const cx = vary.cx ?? 300 + ((i * 131) % 420);
  const cy = 560 + (pose === "jumping" ? -160 : pose === "sitting" ? 80 : 0);
  const tilt = pose === "leaning to the left" ? -18 : pose === "waving one arm" ? 6 : 0;
  const left = (vary.light ?? i) % 2 === 0;
  const light = left ? "soft light from the left" : "warm light from the right";
  const lx = left ? "0%" : "100%";
  const arm = pose === "waving one arm" ? `<path d="M 110 -40 L 200 -190" stroke="#e07b24" stroke-width="34" stroke-linecap="round"/>` : `<path d="M 110 20 L 170 110" stroke="#e07b24" stroke-width="34" stroke-linecap="round"/>`;
  const image = `<svg xmlns="http://www.w3.org/2000/svg" width="${SIZE}" height="${SIZE}">
  <defs><radialGradient id="l" cx="${lx}" cy="20%" r="90%"><stop offset="0" stop-color="#fff" stop-opacity="0.45"/><stop offset="1" stop-color="#000" stop-opacity="0.25"/></radialGradient></defs>
  <rect width="${SIZE}" height="${SIZE}" fill="${sky}"/>
  <rect y="${SIZE * 0.72}" width="${SIZE}" height="${SIZE * 0.28}" fill="${ground}"/>
  <g transform="translate(${cx} ${cy}) rotate(${tilt}) scale(${scale})">
    <ellipse cx="0" cy="250" rx="150" ry="30" fill="#000" opacity="0.2"/>
    <path d="M -110 20 L -170 110" stroke="#e07b24" stroke-width="34" stroke-linecap="round"/>${arm}
    <ellipse cx="0" cy="60" rx="130" ry="170" fill="#f39a3b"/>
    <rect x="-120" y="-40" width="240" height="44" rx="20" fill="#1f9e9a"/>
    <rect x="60" y="-10" width="44" height="110" rx="18" fill="#1f9e9a"/>
    <circle cx="-45" cy="-90" r="22" fill="#fff"/><circle cx="45" cy="-90" r="22" fill="#fff"/>
    <circle cx="-40" cy="-86" r="10" fill="#222"/><circle cx="50" cy="-86" r="10" fill="#222"/>
    <g transform="translate(0 -70)"><path d="${mouth}" stroke="#5a2a0a" stroke-width="8" fill="${mouth.endsWith("Z") ? "#7a2a10" : "none"}"/></g>
    <path d="M -60 -200 Q -40 -260 -10 -205 M 10 -205 Q 40 -260 60 -200" stroke="#f39a3b" stroke-width="26" fill="none" stroke-linecap="round"/>
  </g>
  <rect width="${SIZE}" height="${SIZE}" fill="url(#l)"/>
</svg>`;
  const caption = `txcl, a round orange creature with a teal scarf, ${pose}, ${mood}, ${where}, ${light}`;
  return { image, caption };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const out = process.argv[2] ?? fileURLToPath(new URL("../examples/character/dataset", import.meta.url));
  await mkdir(out, { recursive: true });
  for (let i = 0; i < 20; i++) {
    const { image, caption } = svg(i);
    const name = `txcl_${String(i + 1).padStart(2, "0")}`;
    await sharp(Buffer.from(image)).png({ compressionLevel: 9, palette: true, colours: 64 }).toFile(join(out, `${name}.png`));
    await writeFile(join(out, `${name}.txt`), `${caption}\n`);
  }
  console.log(`wrote 20 images and captions to ${out}`);
}
