// Regenerates schema/*.json from core (the contract, the worker's train request, the event union,
// the built-in trainer table): `npx tsx scripts/write-schema.ts`.
import { writeFileSync, renameSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { schemaFiles } from "../packages/core/src/schema-files.js";

for (const [name, text] of Object.entries(schemaFiles())) {
  const out = fileURLToPath(new URL(`../schema/${name}`, import.meta.url));
  writeFileSync(`${out}.tmp`, text);
  renameSync(`${out}.tmp`, out);
  console.log(`wrote ${out}`);
}
