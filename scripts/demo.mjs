// The README's main job (`npm run demo`): on a copy of the example project, write a contract with
// `loraspec init`, lint it with `loraspec check`, and print the plan with `loraspec plan`.
// Later issues extend this chain (prep -> caption -> train -> validate).
import { spawnSync } from "node:child_process";
import { cp, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const bin = join(root, "bin", "loraspec.mjs");
const keep = process.argv.includes("--keep");
const project = await mkdtemp(join(tmpdir(), "loraspec-demo-"));

function step(title, args) {
  console.log(`\n\x1b[1m$ loraspec ${args.map((a) => (/\s/.test(a) ? `'${a}'` : a)).join(" ")}\x1b[0m   # ${title}`);
  const r = spawnSync(process.execPath, [bin, ...args], { cwd: project, stdio: "inherit" });
  return r.status ?? 1;
}

let failed = false;
try {
  await cp(join(root, "examples", "character", "dataset"), join(project, "dataset"), { recursive: true });
  console.log(`demo project: ${project} (20 example images of the character 'txcl', with captions)`);
  const init = step("write lora.yaml from the knowledge base", [
    "init",
    "--base", "flux1-dev",
    "--target", "character",
    "--trigger", "txcl",
    "--gpu", "RTX 4090",
    "--price-per-hour", "0.7",
    "--max-cost", "5",
  ]);
  const check = init === 0 ? step("lint the contract and the dataset", ["check"]) : 1;
  const plan = check === 0 ? step("resolve steps, LR, VRAM, time and cost", ["plan"]) : 1;
  failed = init !== 0 || check !== 0 || plan !== 0;
} finally {
  if (keep) console.log(`\nkept ${project}`);
  else await rm(project, { recursive: true, force: true });
}
if (failed) {
  console.error("\ndemo failed");
  process.exit(1);
}
console.log("\ndemo ok: init -> check -> plan");
