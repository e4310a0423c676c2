import { BUILTIN_TRAINER } from "./builtin-trainer.js";
import { DECODABLE_IMAGES, PIL_DEFAULT_BOMB_PIXELS } from "./image-formats.js";
import type { Sourced } from "./types.js";

/**
 * How a trainer reads a dataset folder it is handed as it is (before `loraspec prep`, or a prepared folder,
 * which is flat and holds only PNG/JPEG): what check counts when the run trains on the dataset itself.
 * The run hands Kohya and ai-toolkit a copy of the dataset keeping its sub-folders (engine
 * run/build-train-job.ts copyDataset), fal a ZIP with sub-folders flattened (engine dataset/pack-zip.ts),
 * the built-in trainer the folder itself.
 */
export interface TrainerFolderReading extends Sourced {
  /** True when images in sub-folders are read too. */
  subfolders: boolean;
  /** Lower-case extensions (with the dot) of the files read as images; others are never read. */
  extensions: readonly string[];
  /** Images over this many pixels (header width x height) stop the run when opened; undefined: not known. */
  maxPixels?: number;
}

export const TRAINER_FOLDER_READING = {
  diffusers: {
    subfolders: false,
    extensions: BUILTIN_TRAINER.imageExtensions,
    maxPixels: BUILTIN_TRAINER.maxImagePixels,
    source: "ours: worker train/data.py read_dataset (os.listdir of the folder itself, by extension) and train/buckets.py _open (maxImagePixels)",
    asOf: "2026-12-05",
  },
  kohya: {
    subfolders: false,
    extensions: [".png", ".jpg", ".jpeg", ".webp", ".bmp"],
    maxPixels: PIL_DEFAULT_BOMB_PIXELS.value,
    source:
      "kohya-ss/sd-scripts v0.10.1 library/train_util.py: DreamBoothDataset globs each subset's image_dir with glob_images (IMAGE_EXTENSIONS .png .jpg .jpeg .webp .bmp, upper-case too; .avif/.jxl only with their Pillow plugins), not recursive; a DreamBooth subset takes no recursive key (library/config_util.py DB_SUBSET_DISTINCT_SCHEMA / DB_SUBSET_ASCENDABLE_SCHEMA: image_dir, is_reg, caption_extension, class_tokens, cache_info; read at 0253472), so loraspec cannot compile one; the `<repeats>_<name>` sub-folder convention is read only without a dataset config (config_util.py generate_dreambooth_subsets_config_by_subdirs), and loraspec always writes one; images open with PIL (Pillow's default bomb limit)",
    asOf: "2026-12-05",
  },
  "ai-toolkit": {
    subfolders: true,
    extensions: [".jpg", ".jpeg", ".png", ".webp"],
    maxPixels: PIL_DEFAULT_BOMB_PIXELS.value,
    source:
      "ostris/ai-toolkit toolkit/data_loader.py (read at 008a1f6, after the 27a03a9 pin): AiToolkitDataset walks folder_path with os.walk (sub-folders included), image_extensions .jpg .jpeg .png .webp; images open with PIL (Pillow's default bomb limit)",
    asOf: "2026-12-05",
  },
  fal: {
    subfolders: true,
    extensions: DECODABLE_IMAGES.value,
    source: "ours: engine dataset/pack-zip.ts puts every image of the listing in the ZIP, sub-folders flattened with __; fal's own size limits are not published",
    asOf: "2026-12-05",
  },
} as const satisfies Record<string, TrainerFolderReading>;

export type FolderReadingTrainer = keyof typeof TRAINER_FOLDER_READING;

/** The reading of `trainer`, or undefined for a trainer without a record. */
export function trainerFolderReading(trainer: string): TrainerFolderReading | undefined {
  return Object.hasOwn(TRAINER_FOLDER_READING, trainer) ? TRAINER_FOLDER_READING[trainer as FolderReadingTrainer] : undefined;
}

/** Whether `file` (relative to the dataset, "/"-separated) is read by a trainer reading as `reading` does. */
export function readsFile(reading: Pick<TrainerFolderReading, "subfolders" | "extensions">, file: string): boolean {
  const dot = file.lastIndexOf(".");
  const ext = dot > file.lastIndexOf("/") ? file.slice(dot).toLowerCase() : "";
  return (reading.subfolders || !file.includes("/")) && reading.extensions.includes(ext);
}
