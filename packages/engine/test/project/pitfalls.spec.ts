import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checkProject } from "@loraspec/engine/project/check-project.js";
import { exitCodeFor, isLoraspecError } from "@loraspec/core/errors.js";

const folder = fileURLToPath(new URL("../../../../examples/pitfalls", import.meta.url));
type Expect = { exit: number; errors: string[]; warnings: string[]; code?: string };
let emptyCache: string;
beforeAll(async () => {
  emptyCache = await mkdtemp(join(tmpdir(), "loraspec-pitfalls-cache-"));
});
afterAll(() => rm(emptyCache, { recursive: true, force: true }));

/** `loraspec check`'s exit code and findings, in process (the CLI maps them the same way: check.ts). */
async function check(file: string): Promise<{ exit: number; code?: string; errors: string[]; warnings: string[]; fixed: boolean }> {
  try {
    const r = await checkProject({ path: join(folder, file), env: { HF_HUB_CACHE: emptyCache } });
    const errors = r.findings.filter((f) => f.severity === "error");
    return {
      exit: errors.length > 0 ? 1 : 0,
      errors: errors.map((f) => f.rule).sort(),
      warnings: r.findings.filter((f) => f.severity === "warning").map((f) => f.rule),
      fixed: errors.every((f) => f.fix.length > 10 && f.source.length > 10),
    };
  } catch (error) {
    if (!isLoraspecError(error)) throw error;
    return { exit: exitCodeFor(error), code: error.code, errors: [], warnings: [], fixed: true };
  }
}

describe("examples/pitfalls: one contract per guide pitfall and per promise of check (good ones too)", async () => {
  const manifest = JSON.parse(await readFile(join(folder, "expected.json"), "utf8")) as { contracts: Record<string, Expect> };

  it("expected.json lists exactly the contracts in the folder", async () => {
    const files = (await readdir(folder)).filter((f) => f.endsWith(".yaml")).sort();
    expect(files).toEqual(Object.keys(manifest.contracts).sort());
  });

  it.each(Object.entries(manifest.contracts))("%s", async (file, want) => {
    const got = await check(file);
    expect(got.exit).toBe(want.exit);
    if (want.code) expect(got.code).toBe(want.code);
    expect(got.errors).toEqual([...want.errors].sort());
    for (const w of want.warnings) expect(got.warnings).toContain(w);
    expect(got.fixed, "every error has a fix and a source").toBe(true);
  });
});
