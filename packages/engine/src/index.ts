export { atomicWrite } from "./fs/atomic-write.js";
export { loadContract, resolveDatasetDir, type LoadContractParams, type LoadedContract } from "./contract/load-contract.js";
export { scanDataset, IMAGE_EXTENSIONS, type ScanDatasetParams } from "./dataset/scan-dataset.js";
export { loadEnglishWords } from "./contract/english-words.js";
export { fetchFalPrices, type FetchFalPricesParams } from "./contract/fetch-fal-prices.js";
export { checkProject, type CheckProjectParams, type CheckResult } from "./project/check-project.js";
export { runWorker, type RunWorkerParams } from "./worker/run-worker.js";
export { setupWorker, type SetupWorkerParams, type GpuInfo } from "./worker/setup-worker.js";
export { findWorkerRoot, workerPython } from "./worker/worker-paths.js";
