import { baseQuantizeOf, quantizePinned } from "../contract/base-quantize.js";
import type { Contract } from "../contract/schema.js";
import { fitVram } from "../plan/fit-vram.js";
import type { Plan } from "../plan/plan-run.js";
import type { Finding } from "./finding.js";
import type { Rule } from "./lint-rule.js";
import { ACCEPT_UNPRICED_FLAG } from "./accept-unpriced.js";

/**
 * Budgets the contract sets: VRAM (with the precision or block swap that would fit), cost and
 * walltime.
 * Registered in lint-contract.ts (RULE_FUNCTIONS).
 */
export const vram: Rule = ({ c, model, plan }) => {
  // A trainer not handed the GPU settings (fal) is dropped by lint-contract.ts (compile/trainer-receives.ts RULE_SETTINGS).
  if (c.hardware.kind === "fal") return [];
  const limits = [
    c.limits.vram_ceiling_gb !== undefined ? { gb: c.limits.vram_ceiling_gb, field: "limits.vram_ceiling_gb" } : undefined,
    c.hardware.vram_gb !== undefined ? { gb: c.hardware.vram_gb, field: "hardware.vram_gb" } : undefined,
  ].filter((x): x is { gb: number; field: string } => !!x);
  if (limits.length === 0) return [];
  const ceiling = limits.reduce((a, b) => (b.gb < a.gb ? b : a));
  const est = plan.vram;
  if (est.totalGb <= ceiling.gb) return [];
  const p = est.parts;
  const fit = fitVram(c, model, plan.resolution, ceiling.gb);
  const change = [
    fit.quantize !== baseQuantizeOf(c) ? `base.quantize: ${fit.quantize}` : "",
    (fit.blockSwap ?? 0) !== (c.hardware.block_swap ?? 0) ? `hardware.block_swap: ${fit.blockSwap ?? 0}` : "",
    fit.gradientCheckpointing ? "hyperparameters.gradient_checkpointing: true" : "",
  ].filter(Boolean);
  const suggestion =
    change.length === 0
      ? `no base precision, block swap or checkpointing ${c.trainer.name} offers brings it under ${ceiling.gb} GB`
      : fit.fits
        ? `with ${change.join(" and ")} the same model estimates ~${fit.estimate.totalGb} GB`
        : `even with ${change.join(" and ")} it estimates ~${fit.estimate.totalGb} GB`;
  // A written base.quantize is a pin the plan keeps (contract/base-quantize.ts): say so where the fit would change it.
  const pin = quantizePinned(c) && fit.quantize !== baseQuantizeOf(c) ? ` base.quantize: ${baseQuantizeOf(c)} is written, so the plan keeps it rather than choosing ${fit.quantize} itself.` : "";
  return [
    {
      rule: "vram-below-profile",
      severity: "error",
      message: `${ceiling.field} is ${ceiling.gb} GB but this setup needs ~${est.totalGb} GB (weights ${p.weights} + text encoders ${p.textEncoders} + VAE ${p.vae} + LoRA ${p.lora} + activations ${p.activations} + overhead ${p.overhead}); ${suggestion}.${pin}`,
      fix: fit.fits
        ? `Set ${change.join(" and ")}${c.trainer.name === "diffusers" || fit.gradientCheckpointing ? "" : ", keep gradient_checkpointing on"}${pin && c.trainer.name === "diffusers" ? " (or leave base.quantize out: the built-in trainer's plan then picks it)" : ""}; or use a bigger GPU / fal.`
        : `Lower batch_size or resolution, use a trainer with more low-VRAM options (base.quantize int8/nf4, hardware.block_swap), or a bigger GPU / fal.`,
      source: `${est.source}; ${model.vram.source}`,
      field: ceiling.field,
    },
  ];
};

export const costAndTime: Rule = ({ c, plan }) => {
  const out: Finding[] = [];
  const max = c.limits.max_cost_usd;
  if (max !== undefined) {
    if (plan.cost.usd === undefined) out.push(costLimitUnchecked(c, plan, max));
    else if (plan.cost.usd > max) {
      out.push({
        rule: "cost-over-limit",
        severity: "error",
        message: `estimated cost $${plan.cost.usd} is above limits.max_cost_usd $${max} (${plan.cost.basis}).`,
        fix: "Lower hyperparameters.steps, pick a cheaper endpoint or GPU, or raise limits.max_cost_usd.",
        source: plan.cost.source ?? plan.cost.basis,
        field: "limits.max_cost_usd",
      });
    }
  }
  const hours = c.limits.max_walltime_hours;
  if (hours !== undefined && plan.selected && plan.selected.hours > hours) {
    out.push({
      rule: "walltime-over-limit",
      severity: "warning",
      message: `estimated ${plan.selected.hours} h on ${plan.selected.label} is above limits.max_walltime_hours ${hours}.`,
      fix: "Lower steps or resolution, or use a faster GPU.",
      source: plan.selected.source,
      field: "limits.max_walltime_hours",
    });
  }
  return out;
};

/**
 * limits.max_cost_usd with no price to hold it to: never a silent pass. On fal the job bills, so it is an error
 * that train enforces too (refused unless --accept-unpriced, run/prepare-training.ts costUnchecked); on a local GPU the
 * ceiling only guards hardware.price_per_hour x the walltime, so a warning.
 */
function costLimitUnchecked(c: Contract, plan: Plan, max: number): Finding {
  if (c.trainer.name === "fal" || c.hardware.kind === "fal") {
    return {
      rule: "cost-limit-unchecked",
      severity: "error",
      message: `limits.max_cost_usd is $${max} but no price is known for ${plan.trainer.endpoint ?? "this fal endpoint"} (${plan.cost.basis}): a fal job bills, and train cannot hold it to the ceiling.`,
      fix: `Set FAL_KEY so check and train use fal's live price for the endpoint (its unit must be steps), or remove limits.max_cost_usd; \`loraspec train ${ACCEPT_UNPRICED_FLAG}\` submits without the ceiling (\`--yes\` alone does not).`,
      source: plan.cost.source ?? "plan (knowledge/prices.ts FAL_PRICES, fal's pricing API)",
      field: "limits.max_cost_usd",
    };
  }
  return {
    rule: "cost-unknown",
    severity: "warning",
    message: `limits.max_cost_usd is $${max} but there is no cost estimate (${plan.cost.basis}): the ceiling is not enforced.`,
    fix: "Set hardware.price_per_hour (and a hardware.gpu from the speed table) for a cost, or remove limits.max_cost_usd.",
    source: plan.cost.source ?? "plan",
    field: "limits.max_cost_usd",
  };
}
