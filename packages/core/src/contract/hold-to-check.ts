import { getBlockSwap } from "../knowledge/block-swap.js";
import type { BaseModelRecord } from "../knowledge/base-models.js";
import { getSteps } from "../knowledge/recipes.js";
import { VRAM_MODEL } from "../knowledge/vram.js";
import { lintContract } from "../lint/lint-contract.js";
import { sideFindings } from "../lint/resolution-rules.js";
import { fitVram } from "../plan/fit-vram.js";
import { planRun } from "../plan/plan-run.js";
import { LoraspecError } from "../errors.js";
import { FAL_TRAINER_ENDPOINTS } from "../compile/fal/fal-endpoints.js";
import type { Finding } from "../lint/finding.js";
import { ContractSchema, type Contract, type ContractInput, type TrainerId } from "./schema.js";
import type { InitChoices, Reason, RecommendOptions } from "./recommend-contract.js";

/**
 * init is held to check: the lightest base precision / block swap that fits the VRAM (the same
 * fitVram the VRAM rule suggests), steps lowered to fit max_cost within the target's range, and
 * then check's own rules: a contract with an error left is refused with the rules' messages.
 */
export function holdToCheck(contract: ContractInput, reasons: Record<string, Reason>, choices: InitChoices, model: BaseModelRecord, options: RecommendOptions): void {
  const hp = contract.hyperparameters!;
  const local = contract.hardware?.kind === "local";
  const vramGb = contract.limits?.vram_ceiling_gb;
  if (local && vramGb) {
    const fit = fitVram(ContractSchema.parse(contract), model, contract.dataset.resolution ?? model.nativeResolution, vramGb);
    contract.base.quantize = fit.quantize;
    if (fit.blockSwap) contract.hardware = { ...contract.hardware, block_swap: fit.blockSwap };
    if (fit.gradientCheckpointing) hp.gradient_checkpointing = true;
    const how = [fit.quantize === "none" ? "" : `${fit.quantize} base weights`, fit.blockSwap ? `${fit.blockSwap} blocks swapped to CPU RAM` : "", fit.gradientCheckpointing ? "gradient checkpointing on" : ""].filter(Boolean).join(" and ");
    reasons["base.quantize"] = { why: `~${fit.estimate.totalGb} GB estimated peak${how ? ` with ${how}` : " with a bf16 base"} for ${vramGb} GB`, source: `${VRAM_MODEL.source}; ${model.vram.source}` };
    if (fit.blockSwap) reasons["hardware.block_swap"] = { why: `the fewest swapped blocks that bring the estimate under ${vramGb} GB (slower steps)`, source: getBlockSwap(contract.trainer.name, model.id)!.source };
  }
  const max = choices.maxCostUsd;
  if (max !== undefined) {
    const plan = planRun(ContractSchema.parse(contract));
    const usd = plan.cost.usd;
    if (usd !== undefined && usd > max && plan.steps > 0) {
      const range = getSteps(choices.target).steps;
      const affordable = Math.floor(((max / usd) * plan.steps) / 50) * 50;
      if (affordable < range.min) {
        const atMin = Math.round(((usd / plan.steps) * range.min) * 100) / 100;
        throw new LoraspecError("E_USAGE", `--max-cost $${max} buys about ${affordable} steps here (${plan.cost.basis}); a ${choices.target} LoRA needs at least ${range.min} steps (~$${atMin})`, {
          field: "limits.max_cost_usd",
          hint: `Raise --max-cost to ${Math.ceil(atMin)} or more, or pick a cheaper GPU or endpoint.`,
          details: { source: getSteps(choices.target).source },
        });
      }
      {
        hp.steps = affordable;
        hp.save_every = Math.max(50, Math.round(affordable / 8 / 50) * 50);
        reasons["hyperparameters.steps"] = { why: `lowered to fit --max-cost $${max} (${plan.steps} steps would cost $${usd}); still within ${range.min}-${range.max} for a ${choices.target}`, source: getSteps(choices.target).source };
      }
    }
  }
  // fal's endpoints take none of these: leave them out rather than write values nobody reads
  // (lint trainer-ignores-field would flag each one).
  if (contract.trainer.name === "fal") {
    delete contract.base.path;
    delete contract.dataset.resolution;
    delete hp.alpha;
    delete hp.gradient_checkpointing;
    delete hp.save_every;
    if (FAL_TRAINER_ENDPOINTS.find((e) => e.endpoint === contract.trainer.endpoint)?.takesLearningRate === false) {
      delete hp.learning_rate;
      delete reasons["hyperparameters.learning_rate"];
    }
    for (const key of ["dataset.resolution", "hyperparameters.save_every", "hyperparameters.gradient_checkpointing"]) delete reasons[key];
  }
  const parsed = ContractSchema.parse(contract);
  const errors = lintContract(parsed, { words: options.words }).filter((f) => f.severity === "error" && !(options.dataset && f.rule === "dataset-below-minimum"));
  // The images check will count (usable at this resolution), by check's own rule. Only the count: the captions are
  // the user's to write after init, and check says what they need.
  if (options.dataset) errors.push(...lintContract(parsed, { words: options.words, dataset: options.dataset }).filter((f) => f.rule === "dataset-below-minimum"));
  if (errors.length > 0) {
    const said = errors.map((f) => atInit(f, parsed));
    throw new LoraspecError("E_USAGE", `init cannot write a contract that passes check: ${said.map((f) => f.message).join(" ")}`, {
      field: errors[0]!.field,
      hint: said.map((f) => f.fix).join(" "),
      details: { findings: errors },
    });
  }
}

/**
 * check's finding as init says it: there is no contract yet to edit, check or train, so a fix that names one (a field
 * to edit, `loraspec train --accept-unpriced`) is said as the init flag that writes the field and what to do now.
 */
function atInit(f: Finding, c: Contract): { message: string; fix: string } {
  if (f.field === "base.path") return { message: f.message, fix: `${f.fix} (init: --base-path <folder>)` };
  if (f.rule === "cost-limit-unchecked") {
    const plan = planRun(c);
    return {
      message: `--max-cost $${c.limits.max_cost_usd} cannot be held: no price is known for ${plan.trainer.endpoint ?? "the fal endpoint"} (${plan.cost.basis}), so check and train would refuse the ceiling it writes (limits.max_cost_usd).`,
      fix: "Leave out --max-cost (init then writes no ceiling); add limits.max_cost_usd to the contract once a price is known (`loraspec check` with FAL_KEY set uses fal's live price for the endpoint, when its unit is steps), or use a local trainer with --gpu and --price-per-hour.",
    };
  }
  return { message: f.message, fix: f.fix };
}

/**
 * `--resolution` held to check's side rule for the trainer init writes (lint/resolution-rules.ts, one home; init writes
 * dataset.aspect: square): a side the trainer fails on or trains rounded is refused naming the flag, the trainer's
 * multiple and the two nearest sides it takes, before anything is written.
 */
export function holdSideToCheck(trainer: TrainerId, model: BaseModelRecord, resolution: number): void {
  const findings = sideFindings(trainer, model, "dataset.resolution", resolution, "square");
  const first = findings[0];
  if (!first) return;
  const flag = (text: string) => text.replaceAll("Set dataset.resolution to", "Pass --resolution").replaceAll("dataset.resolution", "--resolution");
  throw new LoraspecError("E_USAGE", flag(first.message), { field: "dataset.resolution", hint: flag(first.fix), details: { findings, source: first.source } });
}
