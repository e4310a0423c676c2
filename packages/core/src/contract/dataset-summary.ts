/**
 * What a quick scan of the dataset folder found (engine: scanDataset). Pure data so lint and plan
 * stay pure; `file` paths are relative to the dataset folder.
 */
export interface DatasetImage {
  file: string;
  width: number;
  height: number;
  format: string;
  /** Caption sidecar text (trimmed); null when there is no sidecar. */
  caption: string | null;
}

export interface DatasetSummary {
  /** The folder as the contract names it. */
  path: string;
  images: DatasetImage[];
  /** Files with an image extension that could not be read. */
  unreadable: { file: string; reason: string }[];
  /** Files with an image extension, kept or not (engine: scanDataset); `images` are the ones prep keeps. */
  candidates?: number;
  /**
   * Images prep keeps that the trainer never reads, handed the folder as it is (sub-folders, formats it does not open:
   * core knowledge/trainer-folder-reading.ts); they are not in `images`.
   */
  notRead?: number;
}
