import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { runSamples } from "../../src/server/run-samples.js";
import { tempDirsPerFile } from "../test-helpers.js";

/** Temp folders, removed when this file's tests are done. */
const tempDir = tempDirsPerFile("ls-samples-");

describe("runSamples: a run's sample images from its (possibly hostile) event log", () => {
  it("keeps images inside the run folder, project-relative, latest per path, ordered by step", async () => {
    const project = tempDir();
    const runDir = join(project, ".loraspec", "runs", "r1");
    await mkdir(runDir, { recursive: true });
    const sample = (path: string, step: number, seed = 42) => JSON.stringify({ type: "sample", step, path, prompt: "txcl", seed });
    const lines = [
      sample(join(runDir, "output", "samples", "step-000004-p0-s42.png"), 4),
      sample("output/samples/step-000002-p0-s42.png", 2),
      sample(join(runDir, "output", "samples", "step-000004-p0-s42.png"), 4, 7), // rendered again after a resume
      sample("/etc/passwd.png", 6),
      sample("../../../lora.yaml.png", 6),
      sample("output/samples/../../../../secret.png", 6),
      sample("output/samples/notes.html", 6),
      sample("output/samples/a\u0000.png", 6),
      "{ half a line",
    ];
    await writeFile(join(runDir, "events.jsonl"), `${lines.join("\n")}\n`);
    const out = await runSamples({ runDir, projectDir: project });
    expect(out.map((s) => [s.step, s.path, s.seed])).toEqual([
      [2, ".loraspec/runs/r1/output/samples/step-000002-p0-s42.png", 42],
      [4, ".loraspec/runs/r1/output/samples/step-000004-p0-s42.png", 7],
    ]);
  });

  it("is empty for a run without an event log", async () => {
    const project = tempDir();
    expect(await runSamples({ runDir: join(project, "none"), projectDir: project })).toEqual([]);
  });
});
