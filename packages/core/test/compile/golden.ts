import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { expect } from "vitest";

const goldenRoot = fileURLToPath(new URL("./golden", import.meta.url));

/**
 * Compares `actual` with golden/<rel>. UPDATE_GOLDEN=1 rewrites the file (then review the diff by
 * eye against trainers.md); without it a missing golden fails.
 */
export function expectGolden(rel: string, actual: string): void {
  const file = `${goldenRoot}/${rel}`;
  if (process.env.UPDATE_GOLDEN === "1") {
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, actual);
    return;
  }
  expect(existsSync(file), `golden file missing: ${rel} (run with UPDATE_GOLDEN=1 and review it)`).toBe(true);
  expect(actual).toBe(readFileSync(file, "utf8"));
}
