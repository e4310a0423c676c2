// The README's main job (`npm run demo`), in two parts:
//  1. the spec: on a copy of examples/character, write a FLUX.1 contract with `loraspec init`,
//     lint it with `loraspec check`, and print the plan with `loraspec plan`;
//  2. the whole chain, for real on this CPU: the toy world's `txcl` character (examples/toyworld)
//     on the toy SDXL base trained here (models/toy-sdxl): check -> prep -> train (built-in
//     trainer) -> sample with and without the trigger -> validate (the toy judge scores) -> report.
// The projects are kept in .demo/ (git-ignored) so the report, samples and run folder can be opened.
import { spawnSync } from "node:child_process";
import { cp, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const bin = join(root, "bin", "loraspec.mjs");
const demoDir = join(root, ".demo");
const specOnly = process.argv.includes("--spec-only");

function step(cwd, title, args, { capture = false } = {}) {
  console.log(`\n\x1b[1m$ loraspec ${args.map((a) => (/\s/.test(a) ? `'${a}'` : a)).join(" ")}\x1b[0m   # ${title}`);
  const r = spawnSync(process.execPath, [bin, ...args], { cwd, stdio: capture ? ["ignore", "pipe", "inherit"] : "inherit", encoding: "utf8" });
  if (r.status !== 0) {
    console.error(`\ndemo failed at: loraspec ${args.join(" ")} (exit ${r.status})`);
    process.exit(1);
  }
  return r.stdout;
}

await rm(demoDir, { recursive: true, force: true });

// 1. The spec: contract, lint, plan for a FLUX.1 character LoRA on a 24 GB card.
const spec = join(demoDir, "flux-character");
await mkdir(spec, { recursive: true });
await cp(join(root, "examples", "character", "dataset"), join(spec, "dataset"), { recursive: true });
console.log(`\n== 1. The contract: ${spec} (20 example images of the character 'txcl', with captions)`);
step(spec, "write lora.yaml from the knowledge base", ["init", "--base", "flux1-dev", "--target", "character", "--trigger", "txcl", "--gpu", "RTX 4090", "--price-per-hour", "0.7", "--max-cost", "5"]);
step(spec, "lint the contract and the dataset", ["check"]);
step(spec, "resolve steps, LR, VRAM, time and cost", ["plan"]);
if (specOnly) {
  console.log("\ndemo ok (--spec-only): init -> check -> plan");
  process.exit(0);
}

// 2. The chain on the toy world, trained and validated on this CPU.
const toy = join(demoDir, "toy-character");
await mkdir(toy, { recursive: true });
await cp(join(root, "examples", "toyworld", "character"), join(toy, "dataset"), { recursive: true });
await cp(join(root, "examples", "toyworld", "prior"), join(toy, "prior"), { recursive: true });
const contract = (await readFile(join(root, "examples", "toyworld", "lora.yaml"), "utf8"))
  .replace(/path: \.\.\/\.\.\/models\/toy-sdxl/, `path: ${join(root, "models", "toy-sdxl")}`)
  .replace(/path: \.\/character/, "path: ./dataset")
  .replace("../../schema/", `${join(root, "schema")}/`);
await writeFile(join(toy, "lora.yaml"), contract);
const judge = join(root, "models", "toy-judge");
const render = ["--width", "64", "--height", "64", "--steps", "20", "--guidance", "5"];
console.log(`\n== 2. The chain on the toy world: ${toy} ('txcl' is a cyan cross the toy base never saw)`);
step(toy, "lint", ["check"]);
// The toy scenes are 64 px with one small object on a plain background: at the default dHash
// threshold (8 of 64 bits, tuned for photos) some differ only by the object's place and would be
// dropped as near duplicates.
step(toy, "validate, dedupe, crop and resize into .loraspec/prepared", ["prep", "--near-threshold", "4"]);
step(toy, "train with the built-in diffusers trainer (CPU, a few minutes)", ["train", "--yes"]);
const runs = JSON.parse(step(toy, "the run's row", ["runs", "--json"], { capture: true }));
const run = (Array.isArray(runs) ? runs : runs.runs)[0];
console.log(`run ${run.id}: ${run.state}, LoRA ${run.outputPath}`);
step(toy, "the same seeds with and without the trigger", [
  "sample", "--base", join(root, "models", "toy-sdxl"), "--lora", `${run.outputPath}:1.0`,
  "--prompt", "txcl, medium, in the center on a night background",
  "--prompt", "a medium red circle in the center on a night background",
  "--seed", "1", "--seed", "2", "--out", join(toy, "samples"), ...render,
]);
step(toy, "run the contract's validation rubric, scored by the toy judge", ["validate", "--run", run.id, "--score-model", judge, ...render]);
console.log(`\ndemo ok: init -> check -> plan, then check -> prep -> train -> sample -> validate.`);
console.log(`Open the report: ${join(toy, ".loraspec", "runs", run.id, "validation", "report.html")}`);
