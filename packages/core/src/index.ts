export * from "./errors.js";
export * from "./events.js";
export * from "./contract/schema.js";
export { parseContractText, type ContractProblem, type ParseContractParams } from "./contract/parse-contract.js";
export { contractJsonSchema } from "./contract/json-schema.js";
export * from "./knowledge/base-models.js";
