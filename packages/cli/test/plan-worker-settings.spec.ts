import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { BUILTIN_TRAINER } from "@loraspec/core/knowledge/builtin-trainer.js";

const root = fileURLToPath(new URL("../../..", import.meta.url));

describe("loraspec plan --json", () => {
  it("lists every setting the built-in trainer's worker will use (plan.workerSettings)", () => {
    const r = spawnSync(process.execPath, [join(root, "bin", "loraspec.mjs"), "plan", "--json", "--no-scan", "examples/toyworld/lora.yaml"], {
      cwd: root,
      encoding: "utf8",
      env: { ...process.env, NO_COLOR: "1", FAL_KEY: "" },
    });
    expect(r.status, r.stderr).toBe(0);
    const { plan } = JSON.parse(r.stdout) as { plan: { steps: number; workerSettings: Record<string, unknown> } };
    expect(Object.keys(plan.workerSettings)).toEqual([...BUILTIN_TRAINER.settingKeys]);
    expect(plan.workerSettings.steps).toBe(plan.steps);
    expect(plan.workerSettings.targets).toEqual(BUILTIN_TRAINER.arches.sdxl.targets);
  });
});
