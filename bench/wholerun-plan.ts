/**
 * The plan's walltime for each committed whole run (bench/data/gpu-wholerun-*.jsonl, bench/gpu-wholerun.py),
 * part by part against the run's own `timing`. The contract is bench/gpu-wholerun-requests.ts's (what core
 * compiles into bench/data/gpu-wholerun-requests.json) with the row's steps and save_every; the levers, the
 * compile cache (cold / warm) and the sample path are the ones the row ran (its `applied` settings and log
 * lines), so rows of older worker versions are timed as what they were.
 * Used by bench/plan-vs-measured.ts (RESULTS' table) and packages/core/test/plan/walltime-wholerun.spec.ts.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { ContractSchema } from "../packages/core/src/contract/schema.js";
import { getBaseModel } from "../packages/core/src/knowledge/base-models.js";
import { findGpu } from "../packages/core/src/knowledge/gpus.js";
import type { SamplePath } from "../packages/core/src/plan/sample-time.js";
import { resolveTrainSettings, type TrainSettings } from "../packages/core/src/plan/train-settings.js";
import { ANCHOR_GPU, walltimeOn, type WalltimeEstimate, type WalltimePart } from "../packages/core/src/plan/walltime.js";

export interface WholeRunRow {
  file: string;
  model: "sdxl" | "flux1";
  run: string;
  steps: number;
  card: string;
  /** Seconds from the done event to the process's end (rows since 2026-12-06, when the worker stopped tearing the interpreter down). */
  exit_s?: number | null;
  save_every: number;
  process_wall_s: number;
  samples: number;
  date: string;
  applied: Record<string, unknown>;
  logs: string[];
  /** train/timing.py's breakdown. */
  timing: Record<"startup_s" | "load_s" | "cache_s" | "setup_s" | "warmup_s" | "steps_s" | "steady_s_per_step" | "saves_s" | "final_save_s" | "between_steps_s" | "other_s" | "total_s", number>;
  error?: string;
}

/** Every committed row with no error, in file order. */
export function wholeRunRows(root: string): WholeRunRow[] {
  const dir = join(root, "bench/data");
  return readdirSync(dir)
    .filter((f) => /^gpu-wholerun-.*\.jsonl$/.test(f))
    .sort()
    .flatMap((file) =>
      readFileSync(join(dir, file), "utf8")
        .split("\n")
        .filter((l) => l.trim())
        .map((l) => ({ ...(JSON.parse(l) as WholeRunRow), file })),
    )
    .filter((r) => !r.error && r.timing);
}

/** The sample path a row's worker took: compiled from its applied sample_merge, else from its log lines (the merge and the sample graph announce themselves). */
export function samplePathOf(r: WholeRunRow): SamplePath {
  if (r.applied.sample_merge === "compiled") return "compiled";
  const merge = r.logs.some((l) => l.startsWith("sample merge:"));
  const graph = r.logs.some((l) => /sample graph captured|UNet graph replays/.test(l));
  return graph && merge ? "graph+merge" : graph ? "graph" : merge ? "merge" : "eager";
}

/** The measured parts, named as the plan's (train/timing.py's fields). */
export function measuredParts(r: WholeRunRow): Record<WalltimePart["part"], number> {
  const t = r.timing;
  return {
    "start-up": t.startup_s,
    load: t.load_s,
    cache: t.cache_s,
    "set-up": t.setup_s,
    "warm-up": t.warmup_s,
    steps: t.steps_s - t.warmup_s,
    saves: t.saves_s + t.final_save_s,
    // the last sample renders after the last step: it is in other_s (with the compile-cache save)
    samples: t.between_steps_s + t.other_s,
    exit: r.process_wall_s - t.total_s,
  };
}

const BASE = { sdxl: "sdxl", flux1: "flux1-dev" } as const;

/** bench/gpu-wholerun-requests.ts's contract with this row's steps and save interval. */
export function rowContract(r: WholeRunRow) {
  return ContractSchema.parse({
    version: 1,
    name: `wholerun-${r.model}`,
    target: "character",
    base: { model: BASE[r.model] },
    trainer: { name: "diffusers" },
    hardware: { kind: "local", gpu: "H200", vram_gb: 141 },
    dataset: { path: "./dataset", expected_images: 20, resolution: 1024 },
    trigger: { word: "txcl" },
    hyperparameters: { steps: r.steps, save_every: r.save_every, batch_size: 1, rank: 16, learning_rate: 1e-4, optimizer: "adamw" },
    samples: { every: 250 },
    failure: { loss_spike_factor: 1e6 },
  });
}

/** The levers the row ran, over the plan's own settings (an older row may predate a lever the plan now picks). */
export function rowSettings(r: WholeRunRow, planned: TrainSettings): TrainSettings {
  const a = r.applied;
  return {
    ...planned,
    gradientCheckpointing: a.gradient_checkpointing as boolean,
    checkpointingMode: a.gradient_checkpointing ? (a.checkpointing_mode as "full" | "selective") : "off",
    compile: a.compile as boolean,
    cudaGraphs: a.cuda_graphs as boolean,
    channelsLast: a.channels_last as boolean,
    fp8Matmul: a.fp8_matmul as boolean,
    quantize: a.quantize as TrainSettings["quantize"],
    attention: (a.attention as TrainSettings["attention"] | undefined) ?? "sdpa",
    loraCompute: (a.lora_compute as TrainSettings["loraCompute"] | undefined) ?? "fp32",
  };
}

export interface RowPlan {
  row: WholeRunRow;
  plan: WalltimeEstimate;
  path: SamplePath;
  measured: Record<WalltimePart["part"], number>;
  /** Plan / measured over the whole process, and without the load (the bench builds its weights in memory, the plan reads them from disk). */
  ratio: number;
  ratioWithoutLoad: number;
}

/**
 * How far the plan may be from a row, without the load (packages/core/test/plan/walltime-wholerun.spec.ts): on the
 * anchor card 7% at 2,000 steps and 30% for the short runs. Both bounds are the hosts': the plan has one figure for the
 * CPU-bound parts, and the H200 hosts ran them at start-up 7.3-14.8 s (plan 8.7), a cold compile 42.7-74.7 s (plan
 * 47.6); the slow host of 2026-12-06 14:17 UTC (start-up 11.9-14.8 s, cold compile 74.7 s, FLUX.1's mean step 7% over
 * its median where other H200 runs were 1-2%) puts its 2,000-step runs 5.5-6.3% and its cold 30-step run 28% from the
 * plan; the steps part 2.5% at 2,000 steps and 12.5% for a short run (its steady step is taken over few steps:
 * that host's FLUX.1 cold 30 stepped 0.332 s, its 2,000 0.290). Another card's runs also carry the step's move from
 * the H200: FLUX.1's step by GPU_SCALING's model (knowledge/trainer-speeds.ts; on the H100 0.312 s, measured 0.295
 * cold, 0.312 warm), SDXL's CUDA-graph step by the factor measured on that card (MEASURED_CARD_FACTORS: x 1.047, where
 * the model said x 1.17); their bounds: 6% at 2,000 steps, 25% for a short run, the steps part 5% and 10%.
 */
export function toleranceFor(r: Pick<WholeRunRow, "card" | "steps" | "file">): { run: number; steps: number } {
  if (!onAnchorCard(r)) return { run: r.steps >= 2000 ? 0.06 : 0.25, steps: r.steps >= 2000 ? 0.05 : 0.1 };
  return { run: r.steps >= 2000 ? 0.07 : 0.3, steps: r.steps >= 2000 ? 0.025 : 0.125 };
}

/** The GPU a row ran on (torch's device name, e.g. "NVIDIA H100 80GB HBM3"), as knowledge/gpus.ts findGpu reads a name a user wrote. */
export function cardOf(r: Pick<WholeRunRow, "card" | "file">) {
  const card = findGpu(r.card);
  if (!card) throw new Error(`${r.file}: card "${r.card}" is not in knowledge/gpus.ts`);
  return card;
}

/** Whether a row ran on the card the plan's step figures are measured on (plan/walltime.ts ANCHOR_GPU); other cards' steps are scaled from it. */
export function onAnchorCard(r: Pick<WholeRunRow, "card" | "file">): boolean {
  return cardOf(r).id === ANCHOR_GPU;
}

/**
 * The files whose warm FLUX.1 runs ran FA4 before the worker kept FA4's compiled kernels in the compile cache (a184f7e,
 * 2026-12-06; knowledge/whole-run.ts COMPILE_CACHE_WARM_S.fa4Seconds is the warm-up since): their warm-up is taken as
 * measured, the rest as planned.
 */
const BEFORE_FA4_KERNEL_CACHE = new Set([
  "gpu-wholerun-h200-2026-12-06.jsonl",
  "gpu-wholerun-h100-2026-12-06-flux1-warm2000.jsonl",
  "gpu-wholerun-h200-2026-12-06-flux1-compiled-samples.jsonl",
]);

export function planForRow(r: WholeRunRow): RowPlan {
  const c = rowContract(r);
  const model = getBaseModel(c.base.model)!;
  const settings = rowSettings(r, resolveTrainSettings(c, { steps: r.steps, resolution: 1024 }));
  const path = samplePathOf(r);
  const plan = walltimeOn(cardOf(r), model, c, 1024, r.steps, settings, { images: 20, compileCache: r.run === "warm" ? "warm" : "cold", samplePath: path });
  const measured = measuredParts(r);
  const planLoad = plan.parts.find((p) => p.part === "load")?.seconds ?? 0;
  const total = plan.parts.reduce((s, p) => s + p.seconds, 0);
  // Rows recorded before the worker ended without the interpreter's teardown (no exit_s; 2026-12-06) paid 1.4-4.8 s of
  // exit that today's worker does not: their exit is taken as measured, the rest as planned.
  const exitThen = r.exit_s === undefined ? measured.exit - (plan.parts.find((p) => p.part === "exit")?.seconds ?? 0) : 0;
  const warmThen =
    r.run === "warm" && settings.attention === "fa4" && BEFORE_FA4_KERNEL_CACHE.has(r.file) ? measured["warm-up"] - (plan.parts.find((p) => p.part === "warm-up")?.seconds ?? 0) : 0;
  return { row: r, plan, path, measured, ratio: total / r.process_wall_s, ratioWithoutLoad: (total - planLoad + exitThen + warmThen) / (r.process_wall_s - measured.load) };
}
