import type { Contract } from "../../contract/schema.js";
import { assertNetworkSupported, lokrFactor } from "../../knowledge/network-types.js";

/**
 * network.type as ai-toolkit's `network` block (ostris/ai-toolkit@27a03a9 toolkit/config_modules.py
 * L166-L214 NetworkConfig; toolkit/lora_special.py L403-L408): type lora, dora or lokr; LoHa is
 * refused (no module). LoKr: `lokr_factor` is the contract's factor, and `lokr_full_rank: false`
 * because ai-toolkit's default (true) sets linear to 9999999999 and trains full-rank factors,
 * dropping hyperparameters.rank; false keeps the contract's rank as LyCORIS and peft use it.
 */
export function aiToolkitNetwork(network: Contract["network"], rank: number, alpha: number): Record<string, unknown> {
  assertNetworkSupported("ai-toolkit", network.type);
  const out: Record<string, unknown> = { type: network.type, linear: rank, linear_alpha: alpha };
  if (network.type === "lokr") Object.assign(out, { lokr_full_rank: false, lokr_factor: lokrFactor(network.factor) });
  return out;
}
