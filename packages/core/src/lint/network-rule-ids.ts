import type { RuleInfo } from "./finding.js";

/** The network rules (lint/network-rules.ts), listed in RULES. */
export const NETWORK_RULES: readonly RuleInfo[] = [
  { id: "network-targets-unsupported", severity: "error", title: "A trainer that cannot train the contract's network.targets / network.modules" },
  { id: "network-targets-approximate", severity: "warning", title: "A trainer that trains network.targets only approximately (fused modules)" },
  { id: "network-modules-unknown", severity: "error", title: "network.modules names a module the base's architecture does not have" },
];
