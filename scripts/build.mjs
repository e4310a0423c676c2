// Bundles the CLI into ESM chunks: fast start-up (one module graph, no TS at run time, heavy
// commands split into lazily loaded chunks).
//
// Each build goes to a fresh folder under .build/ and `dist` is a symlink swapped atomically
// (rename over the link), so a test or a command running during a rebuild never loads a mix of
// old and new chunks. Old builds are removed once they are a few minutes old.
import { build } from "esbuild";
import { existsSync, lstatSync, mkdirSync, readdirSync, renameSync, rmSync, statSync, symlinkSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const buildsDir = join(root, ".build");
const dist = join(root, "dist");
// A build older than this can no longer be in use by a starting process (why: a CLI run loads
// all its chunks within its first seconds; lazily loaded chunks of long runs are the exception
// and ten minutes covers the test suite's longest command).
const KEEP_OLD_BUILDS_MS = 10 * 60 * 1000;

// Native or heavy packages stay external: they load from node_modules at run time.
const external = ["sharp", "sharp-phash", "better-sqlite3", "@fal-ai/client", "playwright-core", "vite", "word-list"];

export async function buildCli({ quiet = false } = {}) {
  mkdirSync(buildsDir, { recursive: true });
  const id = `${Date.now().toString(36)}-${process.pid}`;
  const outdir = join(buildsDir, id);
  await bundleCli({ outdir, quiet });
  swapLink(outdir);
  pruneOldBuilds(id);
}

/** Bundles the CLI into `outdir` (the checkout's .build/<id>, or the npm package's lib/). */
export async function bundleCli({ outdir, quiet = false, sourcemap = true }) {
  await build({
    absWorkingDir: root,
    entryPoints: { cli: "packages/cli/src/main.ts" },
    outdir,
    outExtension: { ".js": ".mjs" },
    bundle: true,
    splitting: true,
    format: "esm",
    platform: "node",
    target: "node20",
    sourcemap,
    external,
    tsconfig: "tsconfig.json",
    logLevel: quiet ? "error" : "info",
    banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
  });
}

function swapLink(target) {
  // A real folder left by an older build script is moved aside once.
  if (existsSync(dist) && !lstatSync(dist).isSymbolicLink()) rmSync(dist, { recursive: true, force: true });
  const tmp = `${dist}.${process.pid}.tmp`;
  rmSync(tmp, { force: true });
  symlinkSync(relative(root, target), tmp, "dir");
  renameSync(tmp, dist);
}

function pruneOldBuilds(current) {
  const now = Date.now();
  for (const name of readdirSync(buildsDir)) {
    if (name === current) continue;
    const path = join(buildsDir, name);
    try {
      if (now - statSync(path).mtimeMs > KEEP_OLD_BUILDS_MS) rmSync(path, { recursive: true, force: true });
    } catch {
      // Another build pruned it first.
    }
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  await buildCli();
}
