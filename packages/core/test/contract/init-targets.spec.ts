import { describe, expect, it } from "vitest";
import { recommendContract } from "@loraspec/core/contract/recommend-contract.js";
import { renderContractYaml } from "@loraspec/core/contract/render-contract-yaml.js";
import { parseContractText } from "@loraspec/core/contract/parse-contract.js";
import { lintContract } from "@loraspec/core/lint/lint-contract.js";
import { BASE_MODEL_IDS } from "@loraspec/core/knowledge/base-models.js";
import { trainerRuns } from "@loraspec/core/knowledge/trainers.js";
import { TRAINER_IDS } from "@loraspec/core/contract/ids.js";
import { describeTargets, targetArchOf } from "@loraspec/core/compile/network-targets.js";

/**
 * README: "init writes the default explicitly with that reason". For every trainer x base init writes: a trainer
 * with a targets setting (built-in, Kohya on SDXL/FLUX.1, ai-toolkit on a base with a module table) gets
 * network.targets with a comment saying why, and the contract lints without a network finding; fal (no such
 * input) gets none, and the trainer's comment says why it is not written.
 */
const HAS_SETTING: Record<string, (base: string) => boolean> = {
  diffusers: (b) => targetArchOf(b as never) !== undefined,
  kohya: (b) => ["sdxl", "flux1"].includes(targetArchOf(b as never) ?? ""),
  "ai-toolkit": (b) => targetArchOf(b as never) !== undefined,
  fal: () => false,
};

const cases = TRAINER_IDS.flatMap((trainer) => BASE_MODEL_IDS.filter((base) => trainerRuns(trainer, base)).map((base) => [trainer, base] as const));

describe("init writes network.targets where the trainer has the setting", () => {
  it.each(cases)("%s / %s", (trainer, base) => {
    const rec = recommendContract({ base, target: "character", trigger: "txcl", trainer, ...(trainer === "kohya" && base.startsWith("flux1") ? { basePath: "/models/flux1.safetensors" } : {}), ...(trainer === "fal" ? { hardware: "fal" as const } : { gpu: "H200", vramGb: 141 }) });
    const yaml = renderContractYaml(rec);
    const parsed = parseContractText({ text: yaml });
    if (HAS_SETTING[trainer]!(base)) {
      expect(parsed.network.targets, yaml).toBeDefined();
      expect(yaml).toMatch(/# .+\n\s+#\s+source: .+\n\s+targets: /);
      expect(describeTargets(parsed).why).toBe("network.targets");
      const network = lintContract(parsed).filter((f) => f.field?.startsWith("network."));
      expect(network.filter((f) => f.severity !== "info")).toEqual([]);
    } else {
      expect(parsed.network.targets).toBeUndefined();
      expect(rec.reasons["trainer.name"]!.why).toMatch(/network\.targets is not written: /);
      expect(yaml).toContain("network.targets is not written");
    }
  });
});
