import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { BUILTIN_TRAINER, WORKER_ARCHES } from "@loraspec/core/knowledge/builtin-trainer.js";
import { sampleMergeKind } from "@loraspec/core/plan/sample-merge.js";

/**
 * Core decides where samples merge the LoRA (plan/sample-merge.ts: the VRAM plan counts the buffers, the walltime
 * times the path); the worker's train/sample_merge.py decides it again from the same table when a run renders.
 * Over every arch x network type x quantize x fp8_matmul, both must say the same (merge or not, and how).
 */
const root = fileURLToPath(new URL("../../../../", import.meta.url));
const python = join(root, "worker/.venv/bin/python");

const cases = WORKER_ARCHES.flatMap((arch) =>
  BUILTIN_TRAINER.networkTypes.flatMap((network_type) =>
    ["none", "fp8"].flatMap((quantize) => [false, true].map((fp8_matmul) => ({ arch, network_type, quantize, fp8_matmul }))),
  ),
);

const DRIVER = `
import json, sys
from types import SimpleNamespace
from loraspec_worker.train import sample_merge
out = []
for c in json.load(sys.stdin):
    cfg = SimpleNamespace(**c)
    out.append(None if not sample_merge.applies(cfg) else "per-call" if cfg.arch in sample_merge.PER_CALL_ARCHES else "buffers")
print(json.dumps(out))
`;

describe("the sample merge: core's rule and the worker's", () => {
  it("agree over every arch, network type, quantize and fp8_matmul", () => {
    const run = spawnSync(python, ["-c", DRIVER], { input: JSON.stringify(cases), encoding: "utf8", env: { ...process.env, PYTHONPATH: join(root, "worker") } });
    expect(run.status, run.stderr).toBe(0);
    const worker: (string | null)[] = JSON.parse(run.stdout);
    const core = cases.map((c) => sampleMergeKind(c.arch, c.network_type, { quantize: c.quantize, fp8Matmul: c.fp8_matmul }) ?? null);
    expect(worker).toEqual(core);
    expect(core).toContain("buffers");
    expect(core).toContain("per-call");
  });
});
