import type { Contract } from "../contract/schema.js";
import { FUSED_PROJECTION_BASES, NETWORK_TYPE_RECORDS } from "../knowledge/network-types.js";
import { kohyaTargetsRefusal } from "../compile/kohya/kohya-network.js";
import type { Finding, RuleInfo } from "./finding.js";
import { trainersFor } from "../trainers/support.js";

/**
 * The adapter (contract network.*): a kind the trainer cannot train, and a LoKr factor set for
 * another kind. Reads knowledge/network-types.ts only.
 */
export const NETWORK_KIND_RULES: readonly RuleInfo[] = [
  { id: "network-type-unsupported", severity: "error", title: "An adapter kind (network.type) the trainer cannot train (fal: LoRA only; ai-toolkit: no LoHa)" },
  { id: "network-factor-unused", severity: "warning", title: "network.factor set for an adapter kind other than lokr" },
  { id: "network-type-fp8-base", severity: "error", title: "base.quantize fp8 with DoRA/LoKr/LoHa in the built-in trainer (peft reads the base weight an fp8 linear does not keep)" },
  { id: "output-format-unsupported", severity: "error", title: "output.format that a FLUX DoRA/LoKr/LoHa file cannot be converted to (fused projections do not split)" },
];

/** The key format each trainer writes (a file already in output.format is not converted). */
const NATIVE_FORMAT: Readonly<Record<Contract["trainer"]["name"], string | undefined>> = {
  diffusers: "diffusers",
  kohya: "kohya",
  // peft names for FLUX.1/SDXL, diffusion_model.* for FLUX.2/Qwen/Z-Image (trainers.md §3.6): neither of ours exactly.
  "ai-toolkit": undefined,
  fal: undefined,
};

/** The other trainers that run this base and train this network.type (what a fix may name: never one refusing it too). */
function typeTrainers(c: Contract): Contract["trainer"]["name"][] {
  return trainersFor(c.base.model).filter(
    (t) => t !== c.trainer.name && NETWORK_TYPE_RECORDS[c.network.type].trainers[t].refused === undefined && !(t === "kohya" && kohyaTargetsRefusal(c.network)),
  );
}

export function lintNetworkKind(c: Contract): Finding[] {
  const out: Finding[] = [];
  const { type, factor } = c.network;
  const rec = NETWORK_TYPE_RECORDS[type];
  const trainer = rec.trainers[c.trainer.name];
  if (trainer.refused !== undefined) {
    out.push({
      rule: "network-type-unsupported",
      severity: "error",
      message: `${c.trainer.name} cannot train a ${rec.title}: ${trainer.refused}.`,
      fix: `Set network.type: lora${typeTrainers(c).length ? `, or use ${typeTrainers(c).map((t) => `trainer.name: ${t}${c.hardware.kind === "fal" ? " (with hardware.kind: local)" : ""}${t === "kohya" ? ` (${rec.trainers.kohya.how})` : ""}`).join(" or ")}` : ""}.`,
      source: trainer.source,
      field: "network.type",
    });
  }
  const lycorisTargets = c.trainer.name === "kohya" ? kohyaTargetsRefusal(c.network) : undefined;
  if (lycorisTargets) {
    out.push({
      rule: "network-type-unsupported",
      severity: "error",
      message: `kohya cannot train ${lycorisTargets.field} with a ${rec.title}: ${lycorisTargets.message}.`,
      fix: `Leave ${lycorisTargets.field} out with network.type ${type} on Kohya, or use trainer.name: diffusers (the built-in trainer).`,
      source: NETWORK_TYPE_RECORDS[type].trainers.kohya.source,
      field: lycorisTargets.field,
    });
  }
  if (c.trainer.name === "diffusers" && type !== "lora" && c.base.quantize === "fp8") {
    out.push({
      rule: "network-type-fp8-base",
      severity: "error",
      message: `the built-in trainer cannot hold the base in fp8 for a ${rec.title}: peft's ${type} layers read the base layer's weight (DoRA's norm, the LoKr/LoHa reshape), and its fp8 linear keeps only the fp8 copy.`,
      fix: `Set base.quantize: none, or network.type: lora${typeTrainers(c).includes("kohya") ? `, or train ${type} with trainer.name: kohya (${rec.trainers.kohya.how})` : ""}.`,
      source: "ours: worker/loraspec_worker/speed.py Fp8Linear; peft tuners lora/dora.py, lokr/layer.py, loha/layer.py (base_layer.weight)",
      field: "base.quantize",
    });
  }
  if (factor !== undefined && type !== "lokr") {
    out.push({
      rule: "network-factor-unused",
      severity: "warning",
      message: `network.factor ${factor} is LoKr's Kronecker factor; network.type is ${type}, which has none, so it is not used.`,
      fix: "Remove network.factor, or set network.type: lokr.",
      source: NETWORK_TYPE_RECORDS.lokr.trainers.kohya.source,
      field: "network.factor",
    });
  }
  const format = c.output.format;
  if (format !== undefined && type !== "lora" && NATIVE_FORMAT[c.trainer.name] !== format && FUSED_PROJECTION_BASES.bases.includes(c.base.model)) {
    out.push({
      rule: "output-format-unsupported",
      severity: "error",
      message: `output.format ${format} needs the ${c.trainer.name} trainer's ${rec.title} file converted, and ${c.base.model}'s fused projections (qkv, linear1) are split in one naming and whole in the other: a ${type} delta (${rec.keys.filter((k) => k !== "alpha").join(", ")}) does not split by rows, so the converter refuses it.`,
      fix: `Leave output.format out (the file stays as ${c.trainer.name} writes it${NATIVE_FORMAT[c.trainer.name] ? `: ${NATIVE_FORMAT[c.trainer.name]}` : ""}), or train network.type: lora.`,
      source: `${FUSED_PROJECTION_BASES.source}; core lora/plan-lycoris.ts`,
      field: "output.format",
    });
  }
  return out;
}
