import { describe, expect, it } from "vitest";
import { parse as parseToml } from "smol-toml";
import { ContractSchema, LR_SCHEDULERS, type Contract } from "@loraspec/core/contract/schema.js";
import { compileKohya } from "@loraspec/core/compile/kohya/compile-kohya.js";
import { compileAiToolkit } from "@loraspec/core/compile/ai-toolkit/compile-ai-toolkit.js";
import { compileDiffusers } from "@loraspec/core/compile/diffusers.js";
import { compileFal } from "@loraspec/core/compile/fal/compile-fal.js";
import { lintContract } from "@loraspec/core/lint/lint-contract.js";
import { aiToolkitCurveOf, builtinCurveOf, kohyaCurveOf } from "@loraspec/core/trainers/lr-schedules.js";
import { contractCurve, curveFactor, firstMismatch, type LrCurve } from "@loraspec/core/trainers/lr-curves.js";
import { PATHS } from "./contract-fixture.js";
import { expectGolden } from "./golden.js";

/**
 * The schedule table: each contract scheduler x warm-up x GPUs x trainer. The trainer's compiled
 * options are read back from its compiled file and run through the model of that trainer's own
 * scheduler code; the curve must match the contract's within 1% of the LR at every 10th step, or
 * the lint must refuse the contract with schedule-unsupported (and the compiler must not write it).
 */

type Trainer = "diffusers" | "kohya" | "ai-toolkit" | "fal";
const STEPS = 1300;

function contractFor(trainer: Trainer, scheduler: (typeof LR_SCHEDULERS)[number], warmup: number, gpus: number): Contract {
  return ContractSchema.parse({
    version: 1,
    name: "sched",
    base: { model: trainer === "fal" ? "flux1-dev" : "sdxl" },
    trainer: { name: trainer },
    hardware: { kind: trainer === "fal" ? "fal" : "local", vram_gb: 24, gpus },
    target: "character",
    dataset: { path: "./dataset" },
    trigger: { word: "txcl" },
    hyperparameters: { learning_rate: 1e-4, steps: STEPS, lr_scheduler: scheduler, warmup_steps: warmup, save_every: 250 },
  });
}

/** The curve the trainer will run, from what its compiled file says, or the error it raises. */
function trainerCurve(trainer: Trainer, c: Contract): LrCurve | { error: string } {
  if (trainer === "kohya") {
    const out = compileKohya(c, {}, PATHS);
    const args = parseToml(out.argsToml) as Record<string, Record<string, unknown>>;
    const opts = args.optimizer_arguments!;
    const processes = Number(out.command[out.command.indexOf("--num_processes") + 1]);
    return kohyaCurveOf(opts, Number(args.training_arguments!.max_train_steps), processes);
  }
  if (trainer === "ai-toolkit") {
    const out = compileAiToolkit(c, {}, PATHS);
    const train = ((out.job.config as { process: Array<{ train: Record<string, unknown> }> }).process[0]!).train;
    return aiToolkitCurveOf(train, Number(train.steps));
  }
  if (trainer === "diffusers") {
    const { request } = compileDiffusers(c, {}, { datasetDir: PATHS.datasetDir, outputDir: PATHS.outputDir });
    return builtinCurveOf(request as unknown as Record<string, unknown>, request.steps);
  }
  const { input } = compileFal(c, {}, { zipUrl: "https://x/zip" });
  // fal takes no scheduler: what it runs is its own; only the contract's default is accepted.
  return "lr_scheduler" in input ? { error: "unexpected" } : { error: "fal runs its own schedule" };
}

const CASES = (["diffusers", "kohya", "ai-toolkit", "fal"] as const).flatMap((trainer) =>
  LR_SCHEDULERS.flatMap((scheduler) => [0, 100].flatMap((warmup) => (trainer === "kohya" ? [1, 2] : [1]).map((gpus) => ({ trainer, scheduler, warmup, gpus })))),
);

describe("the schedule model: one contract, one curve", () => {
  it.each(CASES)("$trainer $scheduler warmup $warmup on $gpus GPU(s)", ({ trainer, scheduler, warmup, gpus }) => {
    const c = contractFor(trainer, scheduler, warmup, gpus);
    const refused = lintContract(c).filter((f) => f.rule === "schedule-unsupported");
    const want = contractCurve({ scheduler, warmupSteps: warmup, steps: STEPS });
    if (refused.length > 0) {
      expect(refused[0]!.field).toMatch(/^hyperparameters\.(lr_scheduler|warmup_steps)$/);
      // The compilers we own refuse it too, with the same field.
      if (trainer === "kohya" || trainer === "ai-toolkit") expect(() => trainerCurve(trainer, c)).toThrow(refused[0]!.message);
      return;
    }
    if (trainer === "fal") {
      expect({ scheduler, warmup }).toEqual({ scheduler: "constant", warmup: 0 });
      return;
    }
    const got = trainerCurve(trainer, c);
    expect("error" in got ? got.error : undefined).toBeUndefined();
    expect(firstMismatch(want, got as LrCurve, STEPS)).toBeUndefined();
  });

  // The compiled options and the modelled factors, for bench/check-schedules.py to recompute with the
  // real library code (torch, transformers, diffusers) and the trainers' own scheduler functions.
  it("writes golden/schedules/cases.json", () => {
    const cases = CASES.filter((k) => k.trainer === "kohya" || k.trainer === "ai-toolkit").flatMap(({ trainer, scheduler, warmup, gpus }) => {
      const c = contractFor(trainer, scheduler, warmup, gpus);
      if (lintContract(c).some((f) => f.rule === "schedule-unsupported")) return [];
      const options =
        trainer === "kohya"
          ? (parseToml(compileKohya(c, {}, PATHS).argsToml) as Record<string, Record<string, unknown>>).optimizer_arguments!
          : (compileAiToolkit(c, {}, PATHS).job.config as { process: Array<{ train: Record<string, unknown> }> }).process[0]!.train;
      const keep = Object.fromEntries(Object.entries(options).filter(([k]) => k.startsWith("lr_")));
      const curve = trainerCurve(trainer, c) as LrCurve;
      const at = [0, 1, 50, 99, 100, 101, 650, 1200, 1299];
      return [{ trainer, contract: { scheduler, warmup, steps: STEPS, gpus }, options: keep, factors: at.map((s) => [s, Number(curveFactor(curve, s).toFixed(9))]) }];
    });
    expectGolden("schedules/cases.json", `${JSON.stringify(cases, null, 1)}\n`);
  });

  it("catches the defects of the issue: ai-toolkit linear rises, its constant_with_warmup defaults to 1000 steps, sd-scripts crashes on constant + warm-up", () => {
    const lin = aiToolkitCurveOf({ lr_scheduler: "linear" }, STEPS) as LrCurve;
    expect(curveFactor(lin, 0)).toBeCloseTo(1 / 3, 6);
    expect(firstMismatch(contractCurve({ scheduler: "linear", warmupSteps: 0, steps: STEPS }), lin, STEPS)?.step).toBe(0);
    const cww = aiToolkitCurveOf({ lr_scheduler: "constant_with_warmup" }, STEPS) as LrCurve;
    expect(curveFactor(cww, 50)).toBeCloseTo(0.05, 6); // 5e-6 at step 50 for 1e-4
    expect(kohyaCurveOf({ lr_scheduler: "constant", lr_warmup_steps: 100 }, STEPS, 1)).toEqual({ error: expect.stringContaining("does not require") });
    // sd-scripts on 2 GPUs without the warm-up scaled: warm-up over 50 updates instead of 100.
    const unscaled = kohyaCurveOf({ lr_scheduler: "constant_with_warmup", lr_warmup_steps: 100 }, STEPS, 2) as LrCurve;
    expect(firstMismatch(contractCurve({ scheduler: "constant_with_warmup", warmupSteps: 100, steps: STEPS }), unscaled, STEPS)).toBeDefined();
  });
});
