// Bundles the CLI into one ESM file: fast start-up (one module graph, no TS at run time).
import { build } from "esbuild";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));

// Native or heavy packages stay external: they load from node_modules at run time.
const external = ["sharp", "sharp-phash", "better-sqlite3", "@fal-ai/client", "playwright-core", "vite", "@huggingface/tokenizers", "word-list"];

export async function buildCli({ quiet = false } = {}) {
  await build({
    absWorkingDir: root,
    entryPoints: { cli: "packages/cli/src/main.ts" },
    outdir: "dist",
    outExtension: { ".js": ".mjs" },
    bundle: true,
    splitting: true,
    format: "esm",
    platform: "node",
    target: "node20",
    sourcemap: true,
    external,
    tsconfig: "tsconfig.json",
    logLevel: quiet ? "error" : "info",
    banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
  });
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  await buildCli();
}
