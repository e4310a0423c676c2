// Creates the Python worker's venv (worker/.venv) and installs its pinned requirements.
// Idempotent: a venv whose requirements stamp matches is left alone.
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { fileURLToPath } from "node:url";
import { join } from "node:path";

const root = fileURLToPath(new URL("..", import.meta.url));
const venv = join(root, "worker", ".venv");
const python = join(venv, "bin", "python");
const requirements = join(root, "worker", "requirements.txt");
const stamp = join(venv, ".loraspec-requirements");
const dataRequirements = join(root, "worker", "requirements-data.txt");
const want = createHash("sha256").update(readFileSync(requirements)).update(readFileSync(dataRequirements)).update(readFileSync(join(root, "worker", "pyproject.toml"))).digest("hex");

function run(cmd, args) {
  console.log(`$ ${cmd} ${args.join(" ")}`);
  const status = spawnSync(cmd, args, { stdio: "inherit" }).status;
  if (status !== 0) {
    console.error(`setup-worker: \`${cmd} ${args.join(" ")}\` failed with exit code ${status}`);
    process.exit(status ?? 1);
  }
}

// --print-stamp: the hash only (a test keeps it equal to the engine's workerStamp, which
// `loraspec doctor` compares with the venv's stamp).
if (process.argv.includes("--print-stamp")) {
  console.log(want);
  process.exit(0);
}
if (existsSync(stamp) && readFileSync(stamp, "utf8").trim() === want) {
  console.log("worker venv is up to date");
  process.exit(0);
}
const basePython = process.env.LORASPEC_PYTHON ?? "python3";
if (!existsSync(python)) run(basePython, ["-m", "venv", venv]);
run(python, ["-m", "pip", "install", "--disable-pip-version-check", "-q", "-r", requirements]);
run(python, ["-m", "pip", "install", "--disable-pip-version-check", "-q", "--no-deps", "-r", dataRequirements]);
run(python, ["-m", "pip", "install", "--disable-pip-version-check", "-q", "--no-deps", "-e", join(root, "worker")]);
writeFileSync(stamp, `${want}\n`);
console.log("worker venv ready");
