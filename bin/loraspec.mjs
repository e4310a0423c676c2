#!/usr/bin/env node
// The `loraspec` command: runs the bundled CLI: dist/ in a checkout (built by `npm run build`),
// lib/ in the npm package (built by `npm pack`, scripts/prepack.mjs).
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const bundle = ["../dist/cli.mjs", "../lib/cli.mjs"].map((rel) => fileURLToPath(new URL(rel, import.meta.url))).find((path) => existsSync(path));
if (!bundle) {
  process.stderr.write("loraspec: the CLI is not built yet; run `npm run build` in the loraspec folder.\n");
  process.exit(2);
}
const { main } = await import(bundle);
process.exitCode = await main(process.argv.slice(2));
