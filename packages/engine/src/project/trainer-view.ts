import type { DatasetSummary } from "@loraspec/core/contract/dataset-summary.js";
import type { Finding } from "@loraspec/core/lint/finding.js";
import { trainerFolderReading } from "@loraspec/core/knowledge/trainer-folder-reading.js";
import { imagesReadBy, unpreparedFindings } from "../dataset/dataset-findings.js";
import type { TrainingDataDir } from "../dataset/project-dataset.js";
import type { PrepManifest } from "../dataset/prep-manifest.js";
import { preparedDrift, preparedImages, preparedStaleFinding, type WantedPrep } from "../dataset/prepared-stale.js";
import type { DatasetScan } from "../dataset/scan-dataset.js";

/** What check counts for a run: the images its trainer will read, and the findings where that differs from prep's count. */
export interface TrainerView {
  /** What lint judges (counts, captions, sizes). */
  lint: DatasetSummary;
  /** What the plan counts and check reports: the images the run trains on. */
  trains: DatasetSummary;
  findings: Finding[];
}

/**
 * "What check passes, train starts": the run trains on the dataset's prepared folder once prep made one, else on the
 * dataset as it is (project-dataset.ts trainingDatasetDir), read as the contract's trainer reads a folder (core
 * knowledge/trainer-folder-reading.ts). Prepared and up to date: prep's count is what trains. Prepared before the
 * dataset changed: the error `dataset-prepared-stale`, and the plan counts the prepared folder's images (what would
 * train). Not prepared: the trainer's reading of the scan (unpreparedFindings), and only the images it reads count,
 * so too few of them is `dataset-below-minimum`.
 */
export function trainerView(params: {
  scan: DatasetScan;
  field: string;
  trainingData: TrainingDataDir & { manifest?: PrepManifest };
  trainer: string;
  contractFile?: string;
  /** What the contract asks prep for now (dataset.resolution or the base's native one, dataset.aspect). */
  wanted?: WantedPrep;
}): TrainerView {
  const { scan, field, trainingData } = params;
  if (trainingData.prepared) {
    if (!trainingData.manifest) return { lint: scan, trains: scan, findings: [] };
    const drift = preparedDrift(trainingData.manifest, scan, params.wanted);
    const images = preparedImages(trainingData.manifest, scan);
    const stale = preparedStaleFinding(drift, { preparedDir: trainingData.dir, preparedCount: images.length, countedNow: scan.images.length, field, contractFile: params.contractFile });
    // Up to date: prep's scan is what trains (the same images, judged with their dataset captions).
    return stale ? { lint: scan, trains: { ...scan, images }, findings: [stale] } : { lint: scan, trains: scan, findings: [] };
  }
  const reader = trainerFolderReading(params.trainer);
  const images = imagesReadBy(scan, reader);
  const read = { ...scan, images, ...(images.length < scan.images.length ? { notRead: scan.images.length - images.length } : {}) };
  return { lint: read, trains: read, findings: unpreparedFindings(scan, field, reader) };
}
