import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { schemaFiles } from "@loraspec/core/schema-files.js";

describe("schema/ files", () => {
  for (const [name, text] of Object.entries(schemaFiles())) {
    it(`the committed schema/${name} is current (regenerate: npx tsx scripts/write-schema.ts)`, () => {
      const file = fileURLToPath(new URL(`../../../schema/${name}`, import.meta.url));
      expect(readFileSync(file, "utf8")).toBe(text);
    });
  }
});
