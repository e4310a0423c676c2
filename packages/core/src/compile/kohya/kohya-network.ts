import type { Contract } from "../../contract/schema.js";
import { lokrFactor } from "../../knowledge/network-types.js";

/**
 * network.type as sd-scripts options: plain LoRA is the script's own module (networks.lora or
 * networks.lora_flux); DoRA, LoKr and LoHa go through LyCORIS's kohya module, which `loraspec setup
 * kohya` installs (LYCORIS_PIN), with its network_args (LyCORIS lycoris/kohya.py L47-L124: algo,
 * factor, dora_wd; knowledge/network-types.ts).
 */
export function kohyaNetwork(network: Contract["network"], scriptModule: string): { network_module: string; network_args?: string[] } {
  switch (network.type) {
    case "lora":
      return { network_module: scriptModule };
    case "dora":
      return { network_module: "lycoris.kohya", network_args: ["algo=lora", "dora_wd=True"] };
    case "lokr":
      return { network_module: "lycoris.kohya", network_args: ["algo=lokr", `factor=${lokrFactor(network.factor)}`] };
    case "loha":
      return { network_module: "lycoris.kohya", network_args: ["algo=loha"] };
  }
}

/**
 * network.targets / network.modules compile to sd-scripts' networks.lora arguments
 * (compile/network-targets.ts), which LyCORIS's kohya module does not read (it picks modules by its
 * own `preset`): with DoRA/LoKr/LoHa on Kohya they are refused rather than silently not applied.
 */
export function kohyaTargetsRefusal(network: Contract["network"]): { field: "network.targets" | "network.modules"; message: string } | undefined {
  if (network.type === "lora" || (network.targets === undefined && network.modules === undefined)) return undefined;
  const field = network.modules !== undefined ? "network.modules" : "network.targets";
  return { field, message: `${field} compiles to sd-scripts' networks.lora arguments, which LyCORIS's kohya module (network.type ${network.type}) does not read` };
}
