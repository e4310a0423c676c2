import { ATTENTION_KERNELS, FA4_KERNEL } from "./attention.js";
import { LORA_COMPUTE, LORA_COMPUTE_MODES } from "./lora-compute.js";
import { FLATTEN_BACKGROUND, MAX_INPUT_PIXELS } from "./image-formats.js";
import { DIFFUSERS_COMPONENT_FILES } from "./base-load-forms.js";
import type { BaseModelId } from "./base-models.js";
import { LORA_TARGETS } from "./lora-targets.js";
import { LOSS_SPIKE_RULE } from "./loss-spike.js";
import type { Sourced } from "./types.js";
import { BUILTIN_REGULARISERS } from "./regularisers.js";

/**
 * The built-in trainer (worker/loraspec_worker/train/) as data: the one table core and the worker
 * read. Core derives the diffusers rows of the compatibility knowledge (knowledge/trainers.ts),
 * compile/diffusers.ts and the request schema from it; `scripts/write-schema.ts` exports it as
 * schema/builtin-trainer.json, which the worker loads (train/config.py) and its sync tests hold
 * against the Python implementations (arch classes, optimizers, fallbacks).
 */

/** The worker's architecture names. */
export const WORKER_ARCHES = ["sdxl", "flux1", "flux2-klein", "flux2-dev", "qwen-image", "zimage", "sd35"] as const;
export type WorkerArch = (typeof WORKER_ARCHES)[number];

export interface WorkerArchRecord extends Sourced {
  /** Trained by the built-in trainer today (diffusers classes + loraspec's loss code). */
  trains: boolean;
  /** Why not, when it does not, and what to use instead. */
  reason?: string;
  instead?: string;
  /** peft target modules of the denoiser when the contract names none: the `attention` preset (knowledge/lora-targets.ts), as diffusers' dreambooth LoRA scripts. */
  targets: readonly string[];
  /** Its loss splits into draw / loss_from / static_extra, so a whole step can replay as one CUDA graph. */
  graphReplayable: boolean;
  /** Text-encoder LoRA supported (train_text_encoder). */
  textEncoder: boolean;
}

export interface BuiltinBaseRecord extends Sourced {
  arch: WorkerArch;
  /** FLUX.1 guidance-embedding value fed while training (guidance-distilled [dev] only). */
  trainGuidance?: number;
}

const T = "shared/reference/trainers.md §5.5";
const AS_OF = "2026-11-29";
const LF = "shared/reference/lora-formats.md §2a/§2b";
const NOT_YET = "loraspec's loss code for it is not written yet (diffusers has the classes)";

export const BUILTIN_TRAINER = {
  arches: {
    sdxl: { trains: true, targets: LORA_TARGETS.sdxl.presets.attention, graphReplayable: true, textEncoder: true, source: `${T} (train_dreambooth_lora_sdxl.py); ${LF}`, asOf: AS_OF },
    // FLUX.1's loss splits (draw / loss_from) so a bench can replay its step as one graph (`--set cuda_graphs=true`); the plan
    // turns the graph on for SDXL only (plan/train-settings.ts cudaGraphsFor) until a GPU run measures FLUX.1's.
    flux1: { trains: true, targets: LORA_TARGETS.flux1.presets.attention, graphReplayable: true, textEncoder: false, source: `${T} (train_dreambooth_lora_flux.py); ${LF}`, asOf: AS_OF },
    "flux2-klein": {
      trains: true,
      targets: LORA_TARGETS["flux2-klein"].presets.attention,
      graphReplayable: false,
      textEncoder: false,
      source: `${T} (train_dreambooth_lora_flux2_klein.py)`,
      asOf: AS_OF,
    },
    "flux2-dev": {
      trains: false,
      reason: "its Mistral-3 prompt processor (PixtralProcessor) needs torchvision, which the worker does not install",
      instead: "ai-toolkit or fal",
      targets: [],
      graphReplayable: false,
      textEncoder: false,
      source: "diffusers 0.42.1 pipelines/flux2/pipeline_flux2.py (AutoProcessor); transformers PixtralProcessor requires torchvision",
      asOf: AS_OF,
    },
    "qwen-image": { trains: true, targets: LORA_TARGETS["qwen-image"].presets.attention, graphReplayable: false, textEncoder: false, source: `${T} (train_dreambooth_lora_qwen_image.py)`, asOf: AS_OF },
    zimage: { trains: true, targets: LORA_TARGETS.zimage.presets.attention, graphReplayable: false, textEncoder: false, source: `${T} (train_dreambooth_lora_z_image.py)`, asOf: AS_OF },
    sd35: { trains: false, reason: NOT_YET, instead: "kohya (sd3_train_network.py)", targets: [], graphReplayable: false, textEncoder: false, source: T, asOf: AS_OF },
  } satisfies Record<WorkerArch, WorkerArchRecord>,
  /** Which worker arch each base model trains as. */
  bases: {
    sdxl: { arch: "sdxl", source: `${T} (train_dreambooth_lora_sdxl.py)`, asOf: AS_OF },
    // train_dreambooth_lora_flux.py: --guidance_scale defaults to 3.5 ("FLUX.1 dev is guidance distilled")
    "flux1-dev": { arch: "flux1", trainGuidance: 3.5, source: `${T} (train_dreambooth_lora_flux.py --guidance_scale)`, asOf: AS_OF },
    "flux1-schnell": { arch: "flux1", trainGuidance: 1, source: `${T} (schnell has no guidance embedding)`, asOf: AS_OF },
    "flux2-klein-4b": { arch: "flux2-klein", source: `${T} (train_dreambooth_lora_flux2_klein.py)`, asOf: AS_OF },
    "flux2-klein-9b": { arch: "flux2-klein", source: `${T} (train_dreambooth_lora_flux2_klein.py)`, asOf: AS_OF },
    "flux2-dev": { arch: "flux2-dev", source: `${T} (train_dreambooth_lora_flux2.py)`, asOf: AS_OF },
    "qwen-image": { arch: "qwen-image", source: `${T} (train_dreambooth_lora_qwen_image.py)`, asOf: AS_OF },
    "zimage-turbo": {
      arch: "zimage",
      note: "Z-Image Turbo is step-distilled: ai-toolkit trains it through a training adapter and musubi-tuner suggests the De-Turbo weights; the built-in trainer trains the Turbo weights directly, which can wear off the distillation (sample with more steps if images go soft)",
      source: "shared/reference/trainers.md §2.15 (musubi: De-Turbo or the training adapter), §3 arch table (ai-toolkit zimage:turbo uses ostris/zimage_turbo_training_adapter)",
      asOf: AS_OF,
    },
    "sd35-large": { arch: "sd35", source: T, asOf: AS_OF },
  } satisfies Record<BaseModelId, BuiltinBaseRecord>,
  /**
   * Adapter kinds the worker trains (train/network.py), each through peft's own config: LoraConfig,
   * LoraConfig(use_dora=True), LoKrConfig, LoHaConfig. The contract's network.type.
   */
  networkTypes: ["lora", "dora", "lokr", "loha"],
  /**
   * What the saved LoRA's header says about its base, as Kohya and ai-toolkit write it, so `inspect`
   * and the UIs read our file like theirs: ss_base_model_version, modelspec.architecture (the `/lora`
   * adapter suffix added), modelspec.implementation, and ss_network_module of a plain LoRA (the
   * sd-scripts module that trains it: compile/kohya/kohya-profiles.ts networkModule). sd-scripts has no Qwen-Image, Z-Image or
   * FLUX.2 training: those take ai-toolkit's ss_base_model_version and a modelspec architecture of ours.
   */
  fileMetadata: {
    sdxl: { ssBaseModelVersion: "sdxl_base_v1-0", networkModule: "networks.lora", architecture: "stable-diffusion-xl-v1-base", implementation: "https://github.com/Stability-AI/generative-models" },
    flux1: { ssBaseModelVersion: "flux1", networkModule: "networks.lora_flux", architecture: "flux-1-dev", implementation: "https://github.com/black-forest-labs/flux" },
    "flux2-klein": { ssBaseModelVersion: "flux2", networkModule: "networks.lora", architecture: "flux-2-klein", implementation: "diffusers" },
    "qwen-image": { ssBaseModelVersion: "qwen_image", networkModule: "networks.lora", architecture: "qwen-image", implementation: "diffusers" },
    zimage: { ssBaseModelVersion: "zimage", networkModule: "networks.lora", architecture: "z-image", implementation: "diffusers" },
    source:
      "kohya-ss/sd-scripts@48d368f library/sdxl_model_util.py L19 (sdxl_base_v1-0), library/flux_utils.py L23 (flux1), library/sai_model_spec.py L38-L93 (sai_model_spec 1.0.1, architectures, implementations, /lora); shared/reference/lora-formats.md §2e (ai-toolkit ss_base_model_version flux2, qwen_image, zimage)",
    asOf: "2026-02-16",
  },
  /** network.targets presets per arch: diffusers module-name patterns (knowledge/lora-targets.ts; the worker's test_targets.py holds them). */
  targetPresets: LORA_TARGETS,
  /** Text-encoder LoRA targets (CLIP attention), SDXL only. */
  textEncoderTargets: ["q_proj", "k_proj", "v_proj", "out_proj"],
  /** Optimizers the worker builds (train/model.py OPTIMIZERS). */
  optimizers: ["adamw", "adamw8bit", "adafactor", "prodigy"],
  /**
   * The loss-spike rule's record (knowledge/loss-spike.ts): compile/diffusers.ts sends its windows in every
   * request's failure.loss_spike_*; the worker's dev_request (hand-built test and bench requests) reads them here.
   */
  lossSpike: LOSS_SPIKE_RULE,
  /** OOM fallbacks the worker can apply itself, in the contract's order (train/runner.py FALLBACKS). */
  oomFallbacks: ["gradient_checkpointing", "smaller_batch", "optimizer_8bit", "quantize_base"],
  /** Image files the trainer reads from a dataset folder (PIL opens each; knowledge/image-formats.ts). */
  imageExtensions: [".png", ".jpg", ".jpeg", ".webp", ".bmp"],
  /**
   * Largest image (width x height from its header) the trainer opens: loraspec's own limit (knowledge/image-formats.ts
   * MAX_INPUT_PIXELS), the one check and prep apply, not Pillow's lower default; over it E_IMAGE_UNREADABLE (train/buckets.py).
   */
  maxImagePixels: MAX_INPUT_PIXELS.value,
  /**
   * What each component a diffusers folder's model_index.json lists needs in its folder (knowledge/base-load-forms.ts
   * DIFFUSERS_COMPONENT_FILES, check's preflight): the worker's loader names a missing one (train/model.py folder_problems).
   */
  componentFiles: DIFFUSERS_COMPONENT_FILES,
  /** Transparent pixels are flattened onto this colour, as prep does (knowledge/image-formats.ts FLATTEN_BACKGROUND). */
  flattenBackground: FLATTEN_BACKGROUND.value,
  /** How the frozen base is held. */
  quantize: ["none", "fp8"],
  precisions: ["bf16", "fp16", "fp32"],
  /** The speed levers core decides (plan/train-settings.ts) and the worker applies or refuses. */
  levers: ["gradient_checkpointing", "compile", "cuda_graphs", "fp8_matmul", "channels_last", "attention"],
  /**
   * The attention kernels (the request's attention) and FlashAttention-4's record (knowledge/attention.ts): the
   * worker refuses fa4 up front where torch's FA4 impl would raise (compute capability, head dim, missing package).
   */
  attention: { kernels: ATTENTION_KERNELS, fa4: FA4_KERNEL },
  /** The LoRA compute dtypes (the request's lora_compute) and their record (knowledge/lora-compute.ts); the worker applies bf16 over a bf16 base only. */
  loraCompute: { modes: LORA_COMPUTE_MODES, record: LORA_COMPUTE },
  /**
   * The request's `debug` hooks (tests and benches; core never sets one for a user's run): what each does, and whether it acts
   * only between steps or before one (outsideStep: a run with it keeps its CUDA graph, so a cut-and-resume test runs the graph
   * it tests; a hook inside the step turns the graph off). The request schema takes exactly these keys; its description and the
   * worker's set (speed.DEBUG_HOOKS_OUTSIDE_THE_STEP) come from here, and worker/tests/test_sync.py finds every hook the
   * worker reads in this table.
   */
  debugHooks: {
    stop_after_step: { outsideStep: true, doc: "ends the run after this step without its final file (an interrupted run, for resume tests)" },
    log_batches: { outsideStep: true, doc: "a debug log of each micro-batch's captions" },
    inject_nan_at_step: { outsideStep: true, doc: "this step's loss is NaN (the divergence stop)" },
    raise_oom_once: { outsideStep: true, doc: "the first step raises CUDA out of memory once (the OOM fallbacks)" },
    crash_rank_at_step: { outsideStep: false, doc: "{rank, step}: that rank dies hard at that step (multi-GPU faults)" },
    defer_loss_read: { outsideStep: true, doc: "each step's loss read one step late, a bench A/B until measured on a GPU" },
    keep_gc: { outsideStep: true, doc: "the interpreter's collector left as Python sets it, no collect-and-freeze after the warm-up and the first samples (the A/B's baseline)" },
  },
  /** Refusals: the only changes the worker makes to a request, each with its warning code (a lever this device or run cannot use). */
  refusals: {
    compile: "W_COMPILE_UNAVAILABLE",
    cuda_graphs: "W_CUDA_GRAPH_UNAVAILABLE",
    channels_last: "W_CHANNELS_LAST_UNAVAILABLE",
    fp8_matmul: "W_FP8_MATMUL_UNAVAILABLE",
    attention: "W_ATTENTION_FALLBACK",
    precision: "W_PRECISION_UNAVAILABLE",
    lora_compute: "W_LORA_COMPUTE_UNAVAILABLE",
  },
  /**
   * The request fields that are training settings (the rest name files and the run): the worker's
   * `settings` event reports exactly these, as requested and as applied; `loraspec plan --json`
   * lists them as plan.workerSettings.
   */
  settingKeys: [
    "arch", "resolution", "buckets", "rank", "alpha", "learning_rate", "steps", "batch_size", "gradient_accumulation", "optimizer", "lr_scheduler",
    "warmup_steps", "precision", "gradient_checkpointing", "checkpointing_mode", "compile", "cuda_graphs", "channels_last", "fp8_matmul",
    "attention", "lora_compute", "sample_merge", "quantize", "num_processes", "save_every", "seed", "prefix_trigger", "train_text_encoder", "guidance_scale",
    "max_sequence_length", "targets", "timestep_sampling", "caption_dropout", "shuffle_tags", "noise_offset", "min_snr_gamma", "ema_decay", "network_type", "network_factor",
  ],
  /**
   * What gradient_checkpointing recomputes when it is on (the request's checkpointing_mode):
   * full = each block's whole forward (diffusers' enable_gradient_checkpointing); selective = what
   * selectiveCheckpointingKeep keeps inside each block is saved, the rest recomputed
   * (torch.utils.checkpoint.create_selective_checkpoint_contexts; train/selective_ckpt.py).
   */
  checkpointingModes: ["full", "selective"],
  /** The arches whose selective checkpointing is built and checked (CPU: the loss curve equals eager; bench/gpu-speed.py rows). */
  selectiveCheckpointingArches: ["flux1"],
  /**
   * The policy checkpointing_mode selective runs (train/selective_ckpt.py KEEPS): "attention" keeps each block's attention
   * outputs and recomputes every matmul once more. Measured on the H200 (2026-12-06, FLUX.1, FA4, compile + fp8 GEMMs + LoRA
   * bf16): 0.345 s/step at 26.2 GiB against full checkpointing's 0.465 at 24.7; the worker's other policy, "matmul+attention"
   * (torchtitan's list, the product's until then), 0.294 at 42.1 GiB, about no checkpointing's memory (42.3 GiB), so no
   * ceiling takes it over no checkpointing (bench/data/gpu-speed-h200-2026-12-06-flux1-ckpt-selective-fa4.jsonl; knowledge/vram.ts).
   */
  selectiveCheckpointingKeep: "attention",
  /**
   * torch.compile's work kept across runs (train/compile_cache.py): core sends the folder
   * (compile_cache_dir = <loraspec cache>/<folder>) when the run compiles or runs FA4; inside it inductor's
   * and Triton's caches, torch.compiler's cache artifacts file ({torch} = the torch version) and FA4's
   * kernels (fa4Dir; knowledge/attention.ts FA4_KERNEL.persistentCache). An unreadable file is ignored
   * with the warning code, never a failed run.
   */
  compileCache: {
    folder: "compile",
    inductorDir: "inductor",
    tritonDir: "triton",
    fa4Dir: "fa4",
    artifactsFile: "torch-compile-artifacts-{torch}.bin",
    warning: "W_COMPILE_CACHE_IGNORED",
    source: "https://docs.pytorch.org/tutorials/recipes/torch_compile_caching_tutorial.html (save_cache_artifacts / load_cache_artifacts; TORCHINDUCTOR_CACHE_DIR, TRITON_CACHE_DIR)",
  },
  /** The arches whose sample prompts the worker encodes (train/samples.py); others get no samples and W_SAMPLES_UNSUPPORTED. */
  sampleArches: ["sdxl", "flux1", "flux2-klein", "zimage", "qwen-image"],
  /**
   * The arches whose in-training samples replay the denoiser's forward from one CUDA graph, captured at
   * the first sample on a CUDA device (train/sample_graph.py; SDXL's eager UNet at the samples' batch 2 is
   * launch-bound). A capture that fails, or a call the graph cannot take, renders eagerly with the warning.
   */
  sampleGraph: { arches: ["sdxl"], warning: "W_SAMPLE_GRAPH_FALLBACK" },
  /**
   * The arches and network types whose in-training samples render with the LoRA merged into a second set
   * of the targeted base weights (train/sample_merge.py; issue 22): before each sample W' = W + scale x B @ A
   * is recomputed into buffers allocated once (the base weights W stay untouched) and the denoiser runs with
   * them in place of the LoRA path, so SDXL's sample graph replays a plain UNet forward instead of ~560-722
   * LoRA modules of 5-6 small kernels each. Only a plain LoRA merges this way (DoRA, LoKr, LoHa keep the
   * LoRA path), and only over a base held in its own dtype (an fp8 base, quantize or fp8_matmul, keeps it);
   * the text encoders' LoRA (train_text_encoder) always keeps it. The buffers' memory is in the VRAM plan
   * (plan/vram-extras.ts sampleMergeGb). A layer that cannot merge, or no memory for the buffers, renders
   * with the LoRA path for the rest of the run with the warning.
   * perCallArches (FLUX.1, FLUX.2 [klein]; eager samples, no sample graph): no buffers: each LoRA layer's
   * forward is F.linear(x, W + scale x B @ A) with W' made for the call and dropped after it, and every other
   * fp8 linear of the denoiser runs on its weight dequantized to the compute dtype, so a sample with
   * fp8_matmul runs the plain bf16 forward over the weights as held (no per-call activation quantization,
   * no fp32 LoRA path: FLUX.1's blocks ~9,670 -> ~3,900 aten ops per denoising step, counted per block on the tiny FLUX.1).
   * fp8_matmul keeps no bf16 weights (speed.py Fp8Linear holds two fp8 copies), so W there is the fp8 copy
   * dequantized. Buffers would hold 2.5B weights (5 GB bf16) at the attention preset, 11.8B (23.6 GB) at
   * all-linear, and need the plan to weigh them against the step's own settings; per call they cost no
   * memory beyond one layer's weight while the training's activations are free. An fp8 base (quantize)
   * keeps the LoRA path.
   * `compiled` (no merge; `compiledArches` when the run compiles): the LoRA path through the training's compiled
   * blocks, recompiled once for no_grad and eval mode (every other mode runs them force_eager), so a sample over
   * fp8_matmul's copies runs the training forward's fp8 GEMMs, fused; a compiled sample that fails renders
   * eagerly from then on with W_SAMPLE_COMPILE_FALLBACK (train/samples.py). FLUX.1 on an H200 (2026-12-06, one
   * host, FA4, compile + fp8 GEMMs, LoRA bf16; bench/data/gpu-wholerun-h200-2026-12-06-flux1-compiled-samples.jsonl
   * and bench/data/sample-path-h200-2026-12-06-flux1-compiled.jsonl): an image 2.4-3.1 s where the per-call
   * merge took 4.9-5.0 s on the H200 (gpu-wholerun-h200-2026-12-06.jsonl), the first 7.1 s from a warm compile
   * cache (17.2 s cold); the steps between samples unchanged (24 steps, samples every 8, not at step 0: the
   * stretches' median steps 0.294, 0.297, 0.286 s). FLUX.2 [klein] keeps per_call until a GPU run measures it.
   * Core decides (plan/sample-merge.ts) and sends the answer as the request's sample_merge (`modes`: buffers,
   * per_call, none, compiled); the worker builds the variant it names and reads only the warning code from here.
   */
  sampleMerge: {
    modes: ["buffers", "per_call", "none", "compiled"],
    arches: ["sdxl"],
    perCallArches: ["flux1", "flux2-klein"],
    /** perCallArches whose samples run through the compiled blocks when the run compiles (measured: FLUX.1). */
    compiledArches: ["flux1"],
    /**
     * What `compiled` renders as where the worker does not compile the blocks (compile refused on the device, its
     * coded warning given): the rule's answer without compile for perCallArches (plan/sample-merge.ts).
     */
    compiledFallback: "per_call",
    networkTypes: ["lora"],
    warning: "W_SAMPLE_MERGE_FALLBACK",
    /** `compiled`'s: a compiled sample failed; the samples render eagerly from then on (train/samples.py). */
    compiledWarning: "W_SAMPLE_COMPILE_FALLBACK",
  },
  /** Settings no contract field reaches, fixed for every run (diffusers' dreambooth scripts' values). */
  fixed: { prefix_trigger: true, train_text_encoder: false, max_sequence_length: 512, noGuidance: 1 },
  /** Regulariser constants the worker applies (knowledge/regularisers.ts). */
  regularisers: BUILTIN_REGULARISERS,
  source: "worker/loraspec_worker/train (this table's Python side; worker/tests/test_sync.py holds them together)",
  asOf: "2026-12-02",
} as const;

export type BuiltinFallback = (typeof BUILTIN_TRAINER.oomFallbacks)[number];

/** The worker arch a base trains as, with whether the built-in trainer trains it. */
export function builtinArchOf(base: BaseModelId): { arch: WorkerArch; base: BuiltinBaseRecord; record: WorkerArchRecord } {
  const b: BuiltinBaseRecord = BUILTIN_TRAINER.bases[base];
  const record: WorkerArchRecord = BUILTIN_TRAINER.arches[b.arch];
  return { arch: b.arch, base: b, record };
}
