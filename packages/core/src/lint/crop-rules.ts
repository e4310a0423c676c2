import type { Contract } from "../contract/schema.js";
import type { Finding, RuleInfo } from "./finding.js";

export const CROP_RULES: readonly RuleInfo[] = [
  { id: "crop-needs-prep", severity: "error", title: "dataset.crop: attention on images `loraspec prep` did not attention-crop" },
];

/** What the run trains on: `loraspec prep`'s folder (with the crop its manifest records) or the dataset as it is. */
export interface TrainingData {
  prepared: boolean;
  /** The prepared folder's crop setting (its manifest's settings.crop). */
  crop?: "center" | "attention";
}

const SOURCE =
  "ours: prep is the one home of the crop (engine dataset/process-image.ts, sharp's attention strategy); every trainer crops what it is given " +
  "to its bucket by the centre (built-in worker train/buckets.py crop_to_bucket; sd-scripts v0.10.1 train_util.py L2978-2983 " +
  "trim_and_resize_if_required without --random_crop; ai-toolkit 27a03a9 toolkit/dataloader_mixins.py L290-293 'do central crop') " +
  "and prep's images are already their bucket's size, so a trainer keeps prep's crop (worker: engine test prep-crop-trainer.spec.ts)";

/**
 * `dataset.crop: attention` is done by `loraspec prep` only: a trainer handed the raw dataset (no
 * prepared folder) or a folder prep centre-cropped would crop by the centre, not what the contract
 * says. An error naming the field, with the command that fixes it. Without `trainingData` (no disk:
 * the editor's pure lint) the rule says nothing. Pure.
 */
export function lintCrop(c: Contract, trainingData: TrainingData | undefined): Finding[] {
  if (c.dataset.crop !== "attention" || !trainingData) return [];
  if (trainingData.prepared && trainingData.crop === "attention") return [];
  const what = trainingData.prepared ? `the prepared folder was cropped with '${trainingData.crop ?? "center"}'` : "the dataset has not been prepared";
  return [
    {
      rule: "crop-needs-prep",
      severity: "error",
      message: `dataset.crop is 'attention', but ${what}: the trainers crop what they are given by the centre, so the run would not crop as the contract says.`,
      fix: "Run `loraspec prep` (it crops with dataset.crop and the trainers then train on its folder), or set dataset.crop: center.",
      source: SOURCE,
      field: "dataset.crop",
    },
  ];
}
