/**
 * The supervisor's thresholds and the failure patterns it recognises in trainer output.
 * Knowledge, not magic numbers: each value says where it comes from.
 */
export interface Sourced<T> {
  value: T;
  source: string;
  asOf: string;
}

export interface StopTimeouts {
  /** After SIGINT, how long the trainer gets to finish a save and exit cleanly. */
  interruptMs: number;
  /** After SIGTERM, how long before SIGKILL. */
  terminateMs: number;
}

export const SUPERVISION_POLICY = {
  stopTimeouts: {
    value: { interruptMs: 60_000, terminateMs: 10_000 },
    source:
      "ostris/ai-toolkit@27a03a9 ui stop route: graceful SIGINT, force-kill after 60 s (ecosystem.md §A6); " +
      "ai-toolkit README: ctrl+c while saving can corrupt the checkpoint, so the first step must be gentle (perf-reliability.md §4c)",
    asOf: "2026-08-21",
  } satisfies Sourced<StopTimeouts>,
  nonFiniteLossLimit: {
    // sd-scripts prints a moving average (avr_loss): once it is nan it stays nan, so a small K
    // loses nothing there, while the worker's per-step loss may recover from one bad batch.
    value: 3,
    source:
      "perf-reliability.md §4c 'Our requirements' 2: abort on K consecutive non-finite losses (OneTrainer semantics); " +
      "sd-scripts has no NaN abort and saves a broken LoRA (musubi-tuner#26, sd-scripts#1571)",
    asOf: "2026-08-23",
  } satisfies Sourced<number>,
  tailPollMs: {
    // Trainers print a tqdm redraw per step (seconds apart on a GPU); 200 ms keeps the bar live.
    value: 200,
    source: "ours: output goes to files so the trainer survives a loraspec crash; we tail them",
    asOf: "2026-11-29",
  } satisfies Sourced<number>,
  diskNeededBeforeFirstCheckpointBytes: {
    // Before a run saved anything we cannot know its checkpoint size; below this much free space a
    // trainer failure is put down to the disk (a LoRA plus optimizer state is rarely smaller).
    value: 16 * 2 ** 20,
    source: "ours: a rank-16 SDXL LoRA is ~50 MB, its checkpoint ~3x that; tiny test runs are ~1 MB",
    asOf: "2026-12-02",
  } satisfies Sourced<number>,
  sampleFolderMaxEntries: {
    // A run renders prompts x seeds images at each sampling step: 10,000 steps sampled every 100 with
    // 4 prompts x 4 seeds is 1,600. Past this the folder is not the run's own (or is hostile).
    value: 10_000,
    source: "ours: sampleImageCount (core compile/samples.ts) of a long run, with room; the folder is read whole at each poll",
    asOf: "2026-12-02",
  } satisfies Sourced<number>,
  lastLinesKept: {
    value: 30,
    source: "ours: enough trainer output to explain a crash in the error message",
    asOf: "2026-11-29",
  } satisfies Sourced<number>,
} as const;

export interface FailurePattern {
  id: string;
  pattern: RegExp;
  code: "E_OUT_OF_MEMORY" | "E_TRAIN_DIVERGED" | "E_FILE_NOT_FOUND" | "E_TRAINER_FAILED" | "E_WORKER_NOT_INSTALLED" | "E_DISK_FULL";
  message: string;
  hint: string;
  source: string;
  asOf: string;
}

/** Checked in order against the trainer's output when it fails; the first match explains it. */
export const FAILURE_PATTERNS: readonly FailurePattern[] = [
  {
    id: "disk-full",
    pattern: /No space left on device|\[Errno 28\]|ENOSPC|Disk quota exceeded/,
    code: "E_DISK_FULL",
    message: "the disk filled up while the trainer wrote (a checkpoint, a sample or the LoRA)",
    hint: "free space on the disk holding the run folder (old runs' checkpoints are the usual bulk), then `loraspec train --resume <id>`",
    source: "errno 28 ENOSPC text (Python OSError, Node, torch.save); DESIGN.md Errors",
    asOf: "2026-12-02",
  },
  {
    id: "cuda-oom",
    pattern: /CUDA out of memory|OutOfMemoryError|out of memory\. Tried to allocate|HIP out of memory|MPS backend out of memory/i,
    code: "E_OUT_OF_MEMORY",
    message: "the GPU ran out of memory",
    hint:
      "turn on hyperparameters.gradient_checkpointing, lower batch_size or dataset.resolution, use optimizer adamw8bit, " +
      "or set failure.on_oom: fallback; then `loraspec train --resume <id>`",
    source: "torch.cuda.OutOfMemoryError text; ai-toolkit BaseSDTrainProcess.py L2621-2645 (trainers.md §3.7); perf-reliability.md §4c",
    asOf: "2026-08-21",
  },
  {
    id: "nan-loss",
    pattern: /avr_loss=nan|loss is nan|NaN detected in latents|Training loss became NaN/i,
    code: "E_TRAIN_DIVERGED",
    message: "the loss became NaN (training diverged)",
    hint: "lower the learning rate (fp16 runs: use precision bf16, the usual cause there), and check the image named in the log",
    source: "sd-scripts train_util.py:3097, train_network.py postfix avr_loss; ai-toolkit SDTrainer.py:2222 (perf-reliability.md §4c)",
    asOf: "2026-08-23",
  },
  {
    id: "module-missing",
    pattern: /ModuleNotFoundError|No module named/,
    code: "E_WORKER_NOT_INSTALLED",
    message: "the trainer's Python environment is missing a package",
    hint: "run `loraspec setup <trainer>` to (re)create its environment",
    source: "Python import error text",
    asOf: "2026-11-29",
  },
  {
    id: "file-missing",
    pattern: /FileNotFoundError|No such file or directory|OSError: .* does not exist|image file is truncated/,
    code: "E_FILE_NOT_FOUND",
    message: "the trainer could not read a file it needs",
    hint: "check base.path and dataset.path in the contract, and that every image in the dataset opens (`loraspec check`)",
    source: "Python FileNotFoundError text; kohya_ss#2324 truncated images (perf-reliability.md §4c)",
    asOf: "2026-08-23",
  },
];

/**
 * What to do about a NaN loss, for the run's precision: fp16's narrow range is the usual cause and
 * bf16 the fix; a bf16 or fp32 run diverged for another reason, so "use bf16" would be wrong advice.
 */
export function nanHint(precision?: string): string {
  if (precision === "fp16") return "use precision bf16 instead of fp16 (the usual cause), lower the learning rate, and check the image named in the log";
  const lower = "lower hyperparameters.learning_rate (or add warmup), check the image named in the log";
  return precision ? `${lower}; the run is ${precision}, so precision is not the cause` : `${lower}; with precision fp16, use bf16`;
}
