import type { Contract } from "../contract/schema.js";
import { aiToolkitTargets, kohyaNetworkArgs, targetArchOf, targetsFix, TRAINER_DEFAULT_TARGETS, unknownModules, AI_TOOLKIT_TARGETS_SOURCE } from "../compile/network-targets.js";
import { trainerRuns } from "../knowledge/trainers.js";
import { knownModulePatterns, LORA_TARGETS } from "../knowledge/lora-targets.js";
import type { Finding } from "./finding.js";
export { NETWORK_RULES } from "./network-rule-ids.js";

/**
 * network.targets / network.modules per trainer (compile/network-targets.ts decides what each
 * trainer is told): a trainer that cannot express them is named here with the field, so
 * contract-fields.spec.ts sees every field reach every trainer or be refused.
 */
export function lintNetwork(c: Contract): Finding[] {
  const out: Finding[] = [];
  const { targets, modules } = c.network;
  if (targets === undefined && modules === undefined) return out;
  const field = modules ? "network.modules" : "network.targets";
  const asked = modules ? `network.modules [${modules.join(", ")}]` : `network.targets: ${targets}`;
  // Every refusal's fix names only what works (compile/network-targets.ts targetsFix), as the compilers' hints do.
  const fix = targetsFix(c, (t) => trainerRuns(t, c.base.model));
  const refuse = (why: string, source: string) => out.push({ rule: "network-targets-unsupported", severity: "error", message: `${c.trainer.name} cannot train ${asked}: ${why}.`, fix, source, field });
  const arch = targetArchOf(c.base.model);
  const bad = unknownModules(c);
  if (bad.length > 0 && arch) {
    out.push({
      rule: "network-modules-unknown",
      severity: "error",
      message: `network.modules names ${bad.join(", ")}, which ${c.base.model} (${arch}) does not have.`,
      fix: `Use diffusers module names of the architecture: ${knownModulePatterns(arch).join(", ")}.`,
      source: LORA_TARGETS[arch].source,
      field: "network.modules",
    });
  }
  switch (c.trainer.name) {
    case "fal":
      refuse("fal's trainer endpoints have no input for the trained modules; the endpoint decides", TRAINER_DEFAULT_TARGETS.fal.source);
      break;
    case "kohya": {
      // Other bases: trainer-unsupported-base says it.
      if (arch !== "sdxl" && arch !== "flux1") break;
      const k = kohyaNetworkArgs(c);
      if (k.refusal) refuse(k.refusal, k.source);
      else if (!k.exact) {
        out.push({
          rule: "network-targets-approximate",
          severity: "warning",
          message: `kohya trains ${asked} approximately: FLUX.1's single blocks fuse q, k, v with the MLP input (linear1) and the attention output with the MLP output (linear2), so loraspec passes ${k.args.join(" ")} and the single blocks train whole.`,
          fix: "Accept it, use network.targets: attention-mlp for an exact match, or the built-in trainer / ai-toolkit (unfused diffusers modules).",
          source: k.source,
          field,
        });
      }
      break;
    }
    case "ai-toolkit": {
      const a = aiToolkitTargets(c);
      if (a.refusal) refuse(a.refusal, AI_TOOLKIT_TARGETS_SOURCE);
      break;
    }
    case "diffusers":
      if (!arch) refuse(`the built-in trainer has no module table for ${c.base.model}`, LORA_TARGETS.sdxl.source);
      break;
  }
  return out;
}
