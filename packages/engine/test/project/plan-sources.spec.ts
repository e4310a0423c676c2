import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { ContractSchema } from "@loraspec/core/contract/schema.js";
import type { DatasetSummary } from "@loraspec/core/contract/dataset-summary.js";
import { lintContract } from "@loraspec/core/lint/lint-contract.js";
import { planFrom, planInputs } from "@loraspec/core/plan/plan-inputs.js";
import { defaultDeps } from "@loraspec/engine/server/default-deps.js";
import { checkContractText } from "../../../web/src/contract-live.js";

/**
 * Every caller of the plan builds its inputs with one builder (core plan/plan-inputs.ts PlanSources): check, the OOM
 * fallback's re-plan (run/prepare-training.ts, from check's `sources`), the server's lint and plan, the page. Before,
 * the fallback and the page planned with the dataset alone, so a contract with reg images got a guessed reg count.
 * Cheap: a source scan for hand-built inputs and pure calls, no CLI.
 */
const ROOT = fileURLToPath(new URL("../../../../", import.meta.url));

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const full = join(dir, name);
    if (statSync(full).isDirectory()) return sources(full);
    return /\.(ts|tsx)$/.test(name) && !name.endsWith(".d.ts") ? [full] : [];
  });
}

const image = (file: string) => ({ file, width: 1024, height: 1024, format: "png", caption: "txcl, a photo" });
const scan = (path: string, n: number): DatasetSummary => ({ path, images: Array.from({ length: n }, (_, i) => image(`${i}.png`)), unreadable: [] });

const YAML = `version: 1
name: reg
base: { model: sdxl }
trainer: { name: diffusers }
target: character
dataset: { path: ./dataset, reg_path: ./reg }
captions: { style: natural }
trigger: { word: txcl }
hyperparameters: { learning_rate: 1e-4, batch_size: 2, save_every: 250 }
failure: { on_divergence: stop, on_oom: fail }
`;

describe("every caller of the plan hands the same sources (core plan/plan-inputs.ts)", () => {
  it("no code outside core calls planRun, or hands lint or the plan a reg count by hand", () => {
    const offenders: string[] = [];
    for (const pkg of ["engine", "web", "cli"]) {
      for (const file of sources(join(ROOT, "packages", pkg, "src"))) {
        const text = readFileSync(file, "utf8");
        if (/\bplanRun\(/.test(text)) offenders.push(`${relative(ROOT, file)}: planRun( (use planFrom with PlanSources)`);
        if (pkg !== "cli" && /\bregImages\b/.test(text)) offenders.push(`${relative(ROOT, file)}: regImages (hand regDataset in PlanSources)`);
      }
    }
    expect(offenders).toEqual([]);
  });

  it("a contract with 7 reg images: the page, the server and lint plan with the reg folder's count", async () => {
    const contract = ContractSchema.parse((await import("yaml")).parse(YAML));
    const dataset = scan("./dataset", 20);
    const regDataset = scan("./reg", 7);
    expect(planInputs({ dataset, regDataset }).options).toEqual({ regImages: 7 });
    const want = planFrom(contract, { dataset, regDataset });
    // the built-in pools them: 20 of 27 entries are training images, so the steps for ~100 passes grow by 27/20
    expect(want.reg).toMatchObject({ count: 7, counted: "scan", rule: "pool" });
    expect(want.trainShare).toBeCloseTo(20 / 27, 6);
    const page = checkContractText(YAML, dataset, regDataset);
    expect(page.plan).toEqual(want);
    const server = defaultDeps();
    expect(server.plan!({ contract, dataset, regDataset })).toEqual(want);
    // lint plans from the same sources: its findings on the page and on the server are the same as lint's own
    const own = lintContract(contract, { dataset, regDataset }).map((f) => f.rule);
    expect(page.findings.map((f) => f.code).sort()).toEqual(expect.arrayContaining([...own].sort()));
  });
});
