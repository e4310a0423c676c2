/**
 * Learning-rate curves as the trainers' own code computes them: the factor (x the contract's
 * learning rate) at optimizer step k (0-based: the LR the k-th update uses). Each curve is the
 * formula of the library function a trainer calls; `trainers/lr-schedules.ts` says which trainer
 * calls which, with the source lines. `bench/check-schedules.py` evaluates the same cases with the
 * real functions (transformers/diffusers/torch, and the trainers' checkouts) and compares.
 */

/** The contract's schedules: Hugging Face's named schedules (transformers.optimization, diffusers.optimization). */
export type HfScheduleName = "constant" | "constant_with_warmup" | "linear" | "cosine";

export type LrCurve =
  /**
   * transformers/diffusers `get_*_schedule(_with_warmup)` (a LambdaLR over scheduler steps). The
   * trainer steps the scheduler `stepsPerUpdate` times per optimizer update (accelerate does so for
   * each process when sd-scripts runs on several GPUs).
   */
  | { kind: "hf"; name: HfScheduleName; warmup: number; total: number; stepsPerUpdate: number }
  /** torch.optim.lr_scheduler.ConstantLR(factor, total_iters). */
  | { kind: "torch-constant"; factor: number; totalIters: number }
  /** torch.optim.lr_scheduler.LinearLR(start_factor, end_factor, total_iters). */
  | { kind: "torch-linear"; startFactor: number; endFactor: number; totalIters: number }
  /** torch.optim.lr_scheduler.CosineAnnealingLR(T_max, eta_min = 0). */
  | { kind: "torch-cosine"; tMax: number };

/** transformers 4.54 / diffusers 0.42 lr_lambda bodies (identical for these four names). */
export function hfFactor(name: HfScheduleName, warmup: number, total: number, step: number): number {
  if (name === "constant") return 1;
  if (step < warmup) return step / Math.max(1, warmup);
  if (name === "constant_with_warmup") return 1;
  if (name === "linear") return Math.max(0, (total - step) / Math.max(1, total - warmup));
  const progress = (step - warmup) / Math.max(1, total - warmup);
  return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * 0.5 * 2 * progress)));
}

/** The factor a trainer's scheduler gives optimizer update `step` (0-based). */
export function curveFactor(curve: LrCurve, step: number): number {
  switch (curve.kind) {
    case "hf":
      return hfFactor(curve.name, curve.warmup, curve.total, step * curve.stepsPerUpdate);
    case "torch-constant":
      // ConstantLR._get_closed_form_lr: factor until total_iters, then 1.
      return step >= curve.totalIters ? 1 : curve.factor;
    case "torch-linear": {
      // LinearLR._get_closed_form_lr.
      const t = Math.min(curve.totalIters, step);
      return curve.startFactor + ((curve.endFactor - curve.startFactor) * t) / curve.totalIters;
    }
    case "torch-cosine":
      // CosineAnnealingLR._get_closed_form_lr with eta_min 0.
      return (1 + Math.cos((Math.PI * step) / curve.tMax)) / 2;
  }
}

/** What the contract means: the Hugging Face schedule of that name over the run's optimizer steps. */
export function contractCurve(params: { scheduler: HfScheduleName; warmupSteps: number; steps: number }): LrCurve {
  return { kind: "hf", name: params.scheduler, warmup: params.warmupSteps, total: params.steps, stepsPerUpdate: 1 };
}

/** Steps 0, every, 2*every, ... and the last step: where two curves are compared. */
export function sampleSteps(steps: number, every = 10): number[] {
  const out: number[] = [];
  for (let s = 0; s < steps; s += every) out.push(s);
  if (out[out.length - 1] !== steps - 1) out.push(steps - 1);
  return out;
}

/**
 * The first sampled step where `actual` differs from `expected` by more than `tolerance` of the
 * peak LR (a relative tolerance means nothing where a decay reaches 0), or undefined.
 */
export function firstMismatch(expected: LrCurve, actual: LrCurve, steps: number, tolerance = 0.01): { step: number; expected: number; actual: number } | undefined {
  for (const step of sampleSteps(steps)) {
    const e = curveFactor(expected, step);
    const a = curveFactor(actual, step);
    if (Math.abs(a - e) > tolerance) return { step, expected: e, actual: a };
  }
  return undefined;
}
