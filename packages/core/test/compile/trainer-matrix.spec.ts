import { execFileSync } from "node:child_process";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { compileAiToolkit } from "@loraspec/core/compile/ai-toolkit/compile-ai-toolkit.js";
import { compileDiffusers } from "@loraspec/core/compile/diffusers.js";
import { compileFal } from "@loraspec/core/compile/fal/compile-fal.js";
import { compileKohya } from "@loraspec/core/compile/kohya/compile-kohya.js";
import type { Contract } from "@loraspec/core/contract/schema.js";
import { isLoraspecError } from "@loraspec/core/errors.js";
import { BASE_MODEL_IDS, type BaseModelId } from "@loraspec/core/knowledge/base-models.js";
import { BUILTIN_TRAINER, builtinArchOf } from "@loraspec/core/knowledge/builtin-trainer.js";
import { lintContract } from "@loraspec/core/lint/lint-contract.js";
import { makeContract, PATHS } from "./contract-fixture.js";
import { tempDirsPerFile } from "../../../engine/test/test-helpers.js";

/**
 * For every base model x trainer: `check` passes (no error on trainer.name) <=> the trainer accepts
 * it (its compiler; for the built-in trainer also the worker's own parse_config).
 */
const TRAINERS = ["diffusers", "kohya", "ai-toolkit", "fal"] as const;
type Trainer = (typeof TRAINERS)[number];
const root = fileURLToPath(new URL("../../../../", import.meta.url));
const python = join(root, "worker/.venv/bin/python");
/** Temp folders, removed when this file's tests are done. */
const tempDir = tempDirsPerFile("loraspec-matrix-");

function contractFor(base: BaseModelId, trainer: Trainer): Contract {
  // kohya loads FLUX.1 from BFL single files only: a local path, as its goldens give it
  const path = trainer === "kohya" && base.startsWith("flux1") ? `/models/${base}` : undefined;
  return makeContract({ base, target: "character", trainer: trainer === "diffusers" ? "kohya" : trainer, path, overrides: trainer === "diffusers" ? { trainer: { name: "diffusers" } } : {} });
}

function checkPasses(c: Contract): boolean {
  return !lintContract(c).some((f) => f.severity === "error" && (f.rule === "trainer-unsupported-base" || f.field === "trainer.name"));
}

function compiles(c: Contract, trainer: Trainer): boolean {
  try {
    if (trainer === "diffusers") compileDiffusers(c, {}, PATHS);
    else if (trainer === "kohya") compileKohya(c, {}, PATHS);
    else if (trainer === "ai-toolkit") compileAiToolkit(c, {}, PATHS);
    else compileFal(c, {}, { zipUrl: "https://example.com/d.zip" });
    return true;
  } catch (error) {
    if (isLoraspecError(error) && error.code === "E_TRAINER_UNSUPPORTED") return false;
    throw error;
  }
}

/** The worker's parse_config on one request per base: the compiled request, or (where core refuses) a trained base's with the table's arch. */
function workerAccepts(): Record<string, { ok: boolean; code?: string }> {
  const template = compileDiffusers(contractFor("sdxl", "diffusers"), {}, PATHS).request;
  const requests = Object.fromEntries(
    BASE_MODEL_IDS.map((base) => {
      const c = contractFor(base, "diffusers");
      const request = compiles(c, "diffusers") ? compileDiffusers(c, {}, PATHS).request : { ...template, arch: builtinArchOf(base).arch };
      return [base, request];
    }),
  );
  const file = join(tempDir(), "requests.json");
  writeFileSync(file, JSON.stringify(requests));
  const code = `
import json, sys
from loraspec_worker.protocol import WorkerError
from loraspec_worker.train import parse_config
out = {}
for base, request in json.load(open(sys.argv[1])).items():
    try:
        parse_config(request)
        out[base] = {"ok": True}
    except WorkerError as e:
        out[base] = {"ok": False, "code": e.code}
print(json.dumps(out))
`;
  return JSON.parse(execFileSync(python, ["-c", code, file], { encoding: "utf8", env: { ...process.env, PYTHONPATH: join(root, "worker"), OMP_NUM_THREADS: "1" } }));
}

describe("trainer x base matrix: check passes <=> the trainer accepts", () => {
  for (const trainer of TRAINERS) {
    for (const base of BASE_MODEL_IDS) {
      it(`${trainer} x ${base}`, () => {
        const c = contractFor(base, trainer);
        expect(checkPasses(c)).toBe(compiles(c, trainer));
      });
    }
  }

  it.skipIf(!existsSync(python))("the worker's parse_config accepts exactly the bases the built-in trainer table trains", () => {
    const worker = workerAccepts();
    for (const base of BASE_MODEL_IDS) {
      const c = contractFor(base, "diffusers");
      const trains = builtinArchOf(base).record.trains;
      expect({ base, check: checkPasses(c), worker: worker[base]?.ok }).toEqual({ base, check: trains, worker: trains });
      if (!trains) expect(worker[base]?.code).toBe("E_NOT_SUPPORTED");
    }
    expect(Object.keys(BUILTIN_TRAINER.bases).sort()).toEqual([...BASE_MODEL_IDS].sort());
  });
});
