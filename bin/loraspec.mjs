#!/usr/bin/env node
// The `loraspec` command: runs the bundled CLI (built by `npm run build`).
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const bundle = fileURLToPath(new URL("../dist/cli.mjs", import.meta.url));
if (!existsSync(bundle)) {
  process.stderr.write("loraspec: the CLI is not built yet; run `npm run build` in the loraspec folder.\n");
  process.exit(2);
}
const { main } = await import(bundle);
process.exitCode = await main(process.argv.slice(2));
