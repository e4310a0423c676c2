import { LYCORIS_PIN } from "../knowledge/network-types.js";
import type { Sourced } from "../knowledge/types.js";
import type { KohyaFlagSpec } from "./kohya-flag-spec.js";
import { FLUX_TRAIN_NETWORK_FLAGS, SDXL_TRAIN_NETWORK_FLAGS } from "./kohya-flags.js";

/** An external trainer loraspec installs (`loraspec setup`) and compiles for, at one pinned version. */
export interface TrainerPin extends Sourced {
  id: "kohya" | "ai-toolkit";
  label: string;
  /** Git URL the setup step clones. */
  repo: string;
  /** Tag or branch checked out (`git clone --branch`); the commit is verified after cloning. */
  ref: string;
  commit: string;
  version: string;
  /** Entry scripts that must answer `--help` after setup. */
  entryScripts: readonly string[];
  requirementsFile: string;
  /** Packages installed after the requirements, which the trainer loads as plugins but does not require (kohya: LyCORIS). */
  extraPackages?: readonly string[];
  /**
   * The torch build the trainer's README installs before its requirements (requirements.txt
   * does not pin it): packages and the wheel index (CUDA build).
   */
  torch?: { packages: readonly string[]; indexUrl: string; source: string };
}

const REF = "shared/reference/trainers.md";

export const KOHYA_PIN: TrainerPin = {
  id: "kohya",
  label: "kohya-ss sd-scripts",
  repo: "https://github.com/kohya-ss/sd-scripts.git",
  ref: "v0.10.1",
  commit: "ae72efb92babe89ff8e70f057e42db68440e8d61",
  version: "v0.10.1",
  entryScripts: ["sdxl_train_network.py", "flux_train_network.py"],
  requirementsFile: "requirements.txt",
  // network.type dora/lokr/loha train through --network_module lycoris.kohya (knowledge/network-types.ts).
  extraPackages: [LYCORIS_PIN.package],
  torch: {
    packages: ["torch==2.6.0", "torchvision==0.21.0"],
    indexUrl: "https://download.pytorch.org/whl/cu124",
    source: "kohya-ss/sd-scripts@ae72efb README.md L153 (Linux/Windows installation)",
  },
  source: `${REF} §0 (newest tag v0.10.1, ae72efb, 2026-02-13; v0.10.0 merged the sd3 branch with FLUX.1 into main)`,
  asOf: "2026-02-13",
};

export const AI_TOOLKIT_PIN: TrainerPin = {
  id: "ai-toolkit",
  label: "ostris ai-toolkit",
  repo: "https://github.com/ostris/ai-toolkit.git",
  // ai-toolkit publishes no tags; the snapshot's HEAD of main is the pin (version.py 0.12.26).
  ref: "main",
  commit: "27a03a91f23eb1b757d5ec2e80ee3e129cfcc350",
  version: "0.12.26",
  entryScripts: ["run.py"],
  requirementsFile: "requirements.txt",
  torch: {
    packages: ["torch==2.13.0", "torchvision==0.28.0", "torchaudio==2.11.0"],
    indexUrl: "https://download.pytorch.org/whl/cu130",
    source: "ostris/ai-toolkit@27a03a9 README.md L136 (Linux installation)",
  },
  source: `${REF} §0 (ostris/ai-toolkit@27a03a9, 2026-08-21, version.py VERSION = "0.12.26")`,
  asOf: "2026-08-21",
};

export const TRAINER_PINS = { kohya: KOHYA_PIN, "ai-toolkit": AI_TOOLKIT_PIN } as const;

export type KohyaScript = "sdxl_train_network.py" | "flux_train_network.py";

/** The options each pinned LoRA script accepts (kohya-flags.ts says how they were read). */
export const KOHYA_SCRIPT_FLAGS: Sourced & {
  scripts: Readonly<Record<KohyaScript, Readonly<Record<string, KohyaFlagSpec>>>>;
} = {
  scripts: {
    "sdxl_train_network.py": SDXL_TRAIN_NETWORK_FLAGS,
    "flux_train_network.py": FLUX_TRAIN_NETWORK_FLAGS,
  },
  source: "kohya-ss/sd-scripts@ae72efb (v0.10.1): setup_parser() of sdxl_train_network.py and flux_train_network.py",
  asOf: "2026-02-13",
};
