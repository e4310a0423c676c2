// Regenerates schema/lora-contract.schema.json from the zod contract schema: `npx tsx scripts/write-schema.ts`.
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { contractJsonSchema } from "../packages/core/src/contract/json-schema.js";

const out = fileURLToPath(new URL("../schema/lora-contract.schema.json", import.meta.url));
writeFileSync(out, `${JSON.stringify(contractJsonSchema(), null, 2)}\n`);
console.log(`wrote ${out}`);
