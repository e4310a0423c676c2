// `npm pack` / `npm publish` run this first (the `prepack` script): it makes the real files the
// package ships (package.json `files`), none of which the checkout's dev flow uses:
//   lib/                 the bundled CLI (the checkout runs dist/, a symlink npm pack would skip)
//   packages/web/dist/   the web page's built assets (LORASPEC_PACK_REUSE_WEB=1 keeps a built one)
//   worker/loraspec_worker-<version>-py3-none-any.whl
//                        the Python worker, built from worker/ (pyproject.toml), which
//                        `loraspec setup worker` installs into the user-cache venv
import { spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { fileURLToPath } from "node:url";
import { bundleCli } from "./build.mjs";

const root = fileURLToPath(new URL("..", import.meta.url));
const WHEEL = /^loraspec_worker-[^-]+-py3-none-any\.whl$/;
// What never goes into the wheel's build tree: the dev venv, tests, build leftovers.
const NOT_IN_WHEEL = new Set([".venv", "tests", "build", "dist", "__pycache__", ".pytest_cache"]);

function run(cmd, args, options = {}) {
  // Output to stderr: `npm pack --json` owns stdout.
  const r = spawnSync(cmd, args, { stdio: ["ignore", 2, 2], ...options });
  if (r.status !== 0) {
    console.error(`prepack: \`${cmd} ${args.join(" ")}\` failed (exit ${r.status ?? r.signal})`);
    process.exit(1);
  }
}

async function buildLib() {
  const lib = join(root, "lib");
  const next = join(root, `lib.${process.pid}.tmp`);
  rmSync(next, { recursive: true, force: true });
  await bundleCli({ outdir: next, quiet: true, sourcemap: false });
  rmSync(lib, { recursive: true, force: true });
  renameSync(next, lib);
}

function buildWeb() {
  const index = join(root, "packages", "web", "dist", "index.html");
  if (process.env.LORASPEC_PACK_REUSE_WEB === "1" && existsSync(index)) return;
  run(process.execPath, [join(root, "node_modules", "vite", "bin", "vite.js"), "build", "--config", "packages/web/vite.config.ts"], { cwd: root });
}

function buildWheel() {
  const workerDir = join(root, "worker");
  const src = mkdtempSync(join(tmpdir(), "loraspec-wheel-src-"));
  const out = mkdtempSync(join(tmpdir(), "loraspec-wheel-"));
  try {
    cpSync(workerDir, src, {
      recursive: true,
      filter: (path) => !NOT_IN_WHEEL.has(basename(path)) && !path.endsWith(".egg-info") && !WHEEL.test(basename(path)),
    });
    // The dev venv has setuptools (pyproject's build requirement): no download. Otherwise pip
    // fetches setuptools into an isolated build environment.
    const venvPython = join(workerDir, ".venv", "bin", "python");
    const python = existsSync(venvPython) ? venvPython : (process.env.LORASPEC_PYTHON ?? "python3");
    const isolation = python === venvPython ? ["--no-build-isolation"] : [];
    run(python, ["-m", "pip", "wheel", "-q", "--disable-pip-version-check", "--no-deps", ...isolation, src, "-w", out], {
      env: { ...process.env, PYTHONDONTWRITEBYTECODE: "1" },
    });
    const wheels = readdirSync(out).filter((name) => WHEEL.test(name));
    if (wheels.length !== 1) throw new Error(`prepack: expected one worker wheel, got ${wheels.join(", ") || "none"}`);
    for (const old of readdirSync(workerDir).filter((name) => WHEEL.test(name))) rmSync(join(workerDir, old));
    cpSync(join(out, wheels[0]), join(workerDir, wheels[0]));
    return wheels[0];
  } finally {
    rmSync(src, { recursive: true, force: true });
    rmSync(out, { recursive: true, force: true });
  }
}

const version = JSON.parse(readFileSync(join(root, "package.json"), "utf8")).version;
await buildLib();
buildWeb();
const wheel = buildWheel();
if (!wheel.startsWith(`loraspec_worker-${version}-`)) {
  console.error(`prepack: the worker wheel is ${wheel}, but package.json says ${version}; keep worker/pyproject.toml's version in step`);
  process.exit(1);
}
console.error(`prepack: lib/, packages/web/dist/ and worker/${wheel} are ready`);
