export { atomicWrite } from "./fs/atomic-write.js";
export { loadContract, resolveDatasetDir, type LoadContractParams, type LoadedContract } from "./contract/load-contract.js";
