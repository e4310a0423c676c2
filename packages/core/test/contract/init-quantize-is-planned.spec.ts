import { beforeAll, describe, expect, it } from "vitest";
import { recommendContract, type InitChoices } from "@loraspec/core/contract/recommend-contract.js";
import { renderContractYaml } from "@loraspec/core/contract/render-contract-yaml.js";
import { parseContractText } from "@loraspec/core/contract/parse-contract.js";
import { TRAINER_IDS } from "@loraspec/core/contract/schema.js";
import { BASE_MODEL_IDS } from "@loraspec/core/knowledge/base-models.js";
import type { WordLookup } from "@loraspec/core/lint/clip-pretokenize.js";
import { planRun } from "@loraspec/core/plan/plan-run.js";
import { isLoraspecError } from "@loraspec/core/errors.js";
import { loadEnglishWords } from "@loraspec/engine/contract/english-words.js";

let words: WordLookup;
beforeAll(async () => {
  words = await loadEnglishWords();
});

// init's base.quantize and its "~N GB estimated peak with ..." reason are what the plan runs: the
// built-in trainer's plan picks an fp8 base itself when only fp8 fits, and init wrote `quantize: none`
// under "~16 GB estimated peak with a bf16 base" (the fp8 estimate; bf16 needed ~28.5 GB).
const GPUS: Partial<InitChoices>[] = [{ gpu: "RTX 4090" }, { gpu: "RTX 3060" }, { vramGb: 16 }, { vramGb: 48 }, { gpu: "H100" }];

describe("init writes the base precision the plan runs, with the plan's estimate", () => {
  it(`every base x local trainer x GPU`, () => {
    const bad: string[] = [];
    let fp8ByPlan = 0;
    for (const base of BASE_MODEL_IDS) {
      for (const trainer of TRAINER_IDS.filter((t) => t !== "fal")) {
        for (const hw of GPUS) {
          let rec;
          try {
            rec = recommendContract({ base, target: "character", trigger: "txcl", trainer, basePath: "/models/base", ...hw } as InitChoices, { words });
          } catch (error) {
            if (isLoraspecError(error)) continue;
            throw error;
          }
          const contract = parseContractText({ text: renderContractYaml(rec) });
          const plan = planRun(contract);
          const why = rec.reasons["base.quantize"]?.why;
          const tag = `${base}/${trainer}/${JSON.stringify(hw)}`;
          // Left out (no VRAM to fit), the plan decides: a bf16 base without a ceiling.
          if (plan.trainSettings.quantize !== (contract.base.quantize ?? "none")) bad.push(`${tag}: wrote ${contract.base.quantize}, plan runs ${plan.trainSettings.quantize}`);
          if (why && !why.startsWith(`~${plan.vram.totalGb} GB`)) bad.push(`${tag}: init says "${why}", plan ~${plan.vram.totalGb} GB`);
          if (why && contract.base.quantize !== "none" && why.includes("bf16 base")) bad.push(`${tag}: ${contract.base.quantize} base described as bf16`);
          if (trainer === "diffusers" && contract.base.quantize === "fp8") fp8ByPlan++;
        }
      }
    }
    expect(bad.slice(0, 8)).toEqual([]);
    expect(fp8ByPlan, "the case that drifted is in the table").toBeGreaterThan(0);
  });
});
