import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { LoraspecError } from "@loraspec/core/errors.js";

/** Runs the probe; injectable for tests. Resolves with stdout, rejects when the probe fails. */
export type ProbeFn = (python: string, code: string) => Promise<string>;

/** Importing torch on a cold disk is slow; a probe that hangs longer than this is treated as failed. */
const PROBE_TIMEOUT_MS = 120_000;
const PROBE = "import json, torch; print(json.dumps({'cuda': torch.cuda.is_available(), 'count': torch.cuda.device_count(), 'torch': torch.__version__}))";

/**
 * Before an external trainer starts: does its venv's torch see CUDA, with as many GPUs as the
 * contract asks for? sd-scripts and ai-toolkit otherwise start on the CPU (or crash late) after
 * minutes of loading. Skipped when the contract asks for the CPU (hardware.gpu: cpu) and when the
 * venv is missing (the launch reports that as E_WORKER_NOT_INSTALLED).
 */
export async function checkTrainerDevice(params: {
  trainer: "kohya" | "ai-toolkit";
  venvDir: string;
  gpus: number;
  /** The contract's hardware.gpu; "cpu" means the user wants the CPU. */
  gpu?: string;
  probe?: ProbeFn;
}): Promise<void> {
  if (params.gpu?.trim().toLowerCase() === "cpu") return;
  const python = join(params.venvDir, "bin", "python");
  if (!params.probe && !existsSync(python)) return;
  let seen: { cuda: boolean; count: number; torch?: string };
  try {
    seen = JSON.parse((await (params.probe ?? defaultProbe)(python, PROBE)).trim().split("\n").pop() ?? "");
  } catch (error) {
    throw new LoraspecError("E_TRAINER_FAILED", `${params.trainer}'s Python (${python}) could not import torch to check for a GPU: ${(error as Error).message}`, {
      hint: `Run \`loraspec setup ${params.trainer}\` again.`,
      cause: error,
    });
  }
  if (!seen.cuda) {
    throw new LoraspecError("E_NOT_SUPPORTED", `${params.trainer} needs a CUDA GPU, but its torch ${seen.torch ?? ""} (${python}) sees none.`, {
      field: "hardware.gpu",
      hint: "Run on a machine with an NVIDIA GPU and its driver, with the CUDA build of torch (`loraspec setup` installs it); or set hardware.gpu: cpu to train on the CPU (very slow).",
    });
  }
  if (seen.count < params.gpus) {
    throw new LoraspecError("E_NOT_SUPPORTED", `hardware.gpus is ${params.gpus} but ${params.trainer}'s torch sees ${seen.count} GPU(s).`, {
      field: "hardware.gpus",
      hint: `Set hardware.gpus: ${seen.count}, or check CUDA_VISIBLE_DEVICES.`,
    });
  }
}

const defaultProbe: ProbeFn = (python, code) =>
  new Promise((resolve, reject) => {
    execFile(python, ["-c", code], { timeout: PROBE_TIMEOUT_MS, env: { ...process.env, OMP_NUM_THREADS: "1" } }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${error.message}${stderr ? `\n${String(stderr).split("\n").slice(-5).join("\n")}` : ""}`));
      else resolve(String(stdout));
    });
  });
