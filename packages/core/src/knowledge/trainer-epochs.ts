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
  },
  diffusers: {
    trainer: "diffusers",
    perResolution: true,
    batchesPerCopy: false,
    repeats: false,
    source:
      "ours: worker train/buckets.py plan_entries (each image once per resolution of the request's buckets) and BucketSampler.draw (uniform draws, no epochs or repeats)",
    asOf: ASOF,
  },
  fal: {
    trainer: "fal",
    perResolution: false,
    batchesPerCopy: false,
    repeats: false,
    source: "ours: compile/fal sends no resolution list (dataset.buckets.resolutions is ignored, lint/trainer-rules.ts); fal's endpoints take steps, no epochs or repeats",
    asOf: ASOF,
  },
};
