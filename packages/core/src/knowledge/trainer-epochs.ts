import type { TrainerId } from "../contract/ids.js";
import type { Sourced } from "./types.js";

/**
 * What one epoch of each trainer is made of, as its compiled config runs it: the dataset (x repeats) once per
 * training resolution where the trainer turns a resolution list into one dataset per resolution, and how it
 * batches. plan/epoch.ts counts steps/epoch from these; test/compile/compiled-vs-plan.spec.ts holds them to
 * the compiled configs.
 */
export interface TrainerEpochRecord extends Sourced {
  trainer: TrainerId;
  /**
   * true: each training resolution (dataset.buckets.resolutions + dataset.resolution) is its own copy of the
   * dataset, so an epoch trains every image once per resolution (per repeat). false: the trainer is sent one resolution.
   */
  perResolution: boolean;
  /** true: each resolution's copy is batched on its own (a batch never spans two), so its batch count rounds up by itself. */
  batchesPerCopy: boolean;
  /** true: the compiled config carries the plan's repeats (num_repeats); false: the trainer has no repeats or epochs and the plan's split is its own view. */
  repeats: boolean;
  /** How the regularisation images (dataset.reg_path, compiled with num_repeats 1) enter an epoch. */
  reg: RegEpochRecord;
}

/**
 * - pad: each copy's reg entries are padded (or cut) to exactly its training entries (images x repeats), and the
 *   epoch holds both, batched together: twice the entries, half of them reg, whatever the reg folder's count.
 * - alternate: even steps take their batches from the reg dataset (except save and sample steps), odd steps from
 *   the dataset; the epoch is the dataset's, so it takes about twice the steps, half of them on reg images.
 * - pool: the reg images join the dataset's entries (once per resolution) and batches are drawn from the pool: the
 *   reg images' share of the steps is their share of the pool, so their count matters.
 * - none: the trainer is handed no reg images.
 */
export type RegEpochRule = "pad" | "alternate" | "pool" | "none";

export interface RegEpochRecord extends Sourced {
  rule: RegEpochRule;
}

const SD = "kohya-ss/sd-scripts@ae72efb (v0.10.1)";
const AT = "ostris/ai-toolkit@27a03a9";
const ASOF = "2026-12-06";

export const TRAINER_EPOCHS: Readonly<Record<TrainerId, TrainerEpochRecord>> = {
  kohya: {
    trainer: "kohya",
    perResolution: true,
    batchesPerCopy: true,
    repeats: true,
    source:
      `ours: compile/kohya/compile-kohya.ts writes one [[datasets]] per training resolution over the same subsets; ` +
      `${SD} library/train_util.py L2583-2600 (DatasetGroup is a ConcatDataset of every [[datasets]]), L1076-1084 (each dataset's length: ceil(bucket images x num_repeats / batch_size) per bucket), ` +
      `train_network.py L978 (num_update_steps_per_epoch = ceil(len(train_dataloader) / gradient_accumulation_steps), the dataloader already split over processes)`,
    asOf: ASOF,
    reg: {
      rule: "pad",
      source:
        `ours: compile/kohya/compile-kohya.ts adds the reg folder as an is_reg subset (num_repeats 1) of every [[datasets]]; ` +
        `${SD} library/train_util.py L2136-2152 (DreamBoothDataset: is_reg subsets counted in num_reg_images and held back in reg_infos, the others registered and counted in num_train_images = images x num_repeats), ` +
        `L2166-2182 (the reg infos registered in turn, one more repeat each round, until n reaches num_train_images: exactly num_train_images reg entries, the extra ones unused when there are more), ` +
        `L1055-1056 and L1076-1084 (every registered entry, reg ones included, goes into its bucket num_repeats times and the dataset's length counts their batches)`,
      asOf: ASOF,
    },
  },
  "ai-toolkit": {
    trainer: "ai-toolkit",
    perResolution: true,
    batchesPerCopy: true,
    repeats: true,
    source:
      `ours: compile/ai-toolkit/compile-ai-toolkit.ts writes datasets[0].resolution as the list of training resolutions; ` +
      `${AT} toolkit/config_modules.py L1095-1113 (preprocess_dataset_raw_config: one dataset per resolution in the list), ` +
      `toolkit/data_loader.py L452-454 (file_list x num_repeats), L628-631 (bucketed length: its batch_indices), L697-718 (ConcatDataset of the split datasets); ` +
      `jobs/process/BaseSDTrainProcess.py L2582-2591 (epoch_num += 1 when the dataloader runs out)`,
    asOf: ASOF,
    reg: {
      rule: "alternate",
      source:
        `ours: compile/ai-toolkit/compile-ai-toolkit.ts adds the reg folder as its own dataset with is_reg: true; ` +
        `${AT} jobs/process/BaseSDTrainProcess.py L173-176 (an is_reg dataset goes to datasets_reg, its own dataloader), ` +
        `L2502-2507 (dataloader_reg), L2553-2569 (every micro-batch of an even step comes from the reg dataloader unless the step is a save or sample step), ` +
        `L2582-2591 (only the dataset's dataloader running out is an epoch; the reg one restarts on its own)`,
      asOf: ASOF,
    },
  },
  diffusers: {
    trainer: "diffusers",
    perResolution: true,
    batchesPerCopy: false,
    repeats: false,
    source:
      "ours: worker train/buckets.py plan_entries (each image once per resolution of the request's buckets) and BucketSampler.draw (uniform draws, no epochs or repeats)",
    asOf: ASOF,
    reg: {
      rule: "pool",
      source:
        "ours: compile/diffusers.ts sends reg_dataset; worker train/data.py training_items (the dataset's items then the reg folder's, one list), " +
        "train/buckets.py plan_entries (every item once per resolution) and BucketSampler.draw (uniform over the pooled entries)",
      asOf: ASOF,
    },
  },
  fal: {
    trainer: "fal",
    perResolution: false,
    batchesPerCopy: false,
    repeats: false,
    source: "ours: compile/fal sends no resolution list (dataset.buckets.resolutions is ignored, lint/trainer-rules.ts); fal's endpoints take steps, no epochs or repeats",
    asOf: ASOF,
    reg: { rule: "none", source: "ours: fal's trainers take one dataset ZIP (lint/trainer-support-rules.ts reg-images-unsupported); compile/fal sends no reg images", asOf: ASOF },
  },
};
