"""Request -> Config. The request is core's (compile/diffusers.ts) and holds every setting, resolved;
it is validated against schema/worker-train-request.schema.json and a field it leaves out is E_USAGE,
never a default here. What the built-in trainer trains (arches, targets) is core's table
(schema/builtin-trainer.json)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from ..protocol import WorkerError
from ..schema_files import builtin_trainer, train_request_schema

TABLE = builtin_trainer()
SUPPORTED_ARCHES = tuple(a for a, r in TABLE["arches"].items() if r["trains"])
NOT_YET_ARCHES = tuple(a for a, r in TABLE["arches"].items() if not r["trains"])
# peft target modules per trained arch (the request carries its arch's list as `targets`).
TARGETS = {a: list(TABLE["arches"][a]["targets"]) for a in SUPPORTED_ARCHES}
TEXT_ENCODER_TARGETS = list(TABLE["textEncoderTargets"])
SETTING_KEYS = tuple(TABLE["settingKeys"])


@dataclass
class Config:
    """One field per request property (failure's fields flattened); see the request schema for each."""

    base: str
    arch: str
    dataset: str
    output_dir: str
    name: str
    resolution: int
    buckets: list
    rank: int
    alpha: float
    learning_rate: float
    steps: int
    batch_size: int
    gradient_accumulation: int
    optimizer: str
    lr_scheduler: str
    warmup_steps: int
    precision: str
    gradient_checkpointing: bool
    checkpointing_mode: str
    compile: bool
    cuda_graphs: bool
    channels_last: bool
    fp8_matmul: bool
    attention: str
    lora_compute: str
    sample_merge: str  # buffers | per_call | none: core's choice (plan/sample-merge.ts), built by train/sample_merge.py make
    quantize: str
    num_processes: int
    save_every: int
    seed: int
    trigger_word: str
    prefix_trigger: bool
    caption_extension: str
    train_text_encoder: bool
    guidance_scale: float
    timestep_sampling: str
    max_sequence_length: int
    targets: list
    caption_dropout: float
    shuffle_tags: bool
    noise_offset: float
    min_snr_gamma: Optional[float]
    ema_decay: Optional[float]
    network_type: str
    network_factor: int
    loss_spike_factor: float
    loss_spike_recent_steps: int
    loss_spike_baseline_steps: int
    loss_spike_first_step: int
    on_oom: str
    oom_fallbacks: list
    reg_dataset: Optional[str] = None
    contract_hash: Optional[str] = None
    resume_from: Optional[str] = None
    compile_cache_dir: Optional[str] = None
    device: Optional[str] = None
    samples: Optional[dict] = None
    nodes: Optional[dict] = None
    debug: dict = field(default_factory=dict)

    def settings(self) -> dict[str, Any]:
        """The training settings (the table's settingKeys), as the settings event reports them."""
        return {k: getattr(self, k) for k in SETTING_KEYS}


def _field_path(error) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "(request)"


def validate_request(request: dict) -> None:
    """E_USAGE naming the first field that breaks the request schema (a missing one included)."""
    import jsonschema

    errors = sorted(jsonschema.Draft202012Validator(train_request_schema()).iter_errors(request), key=lambda e: list(e.absolute_path))
    if errors:
        e = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise WorkerError("E_USAGE", f"train request field {_field_path(e)}: {e.message}{more}",
                          hint="the request is written by loraspec's compiler (compile/diffusers.ts); see schema/worker-train-request.schema.json")


def contradictions(cfg: Config) -> list[str]:
    """Settings the request combines that no device can run together (core never writes these)."""
    arch = TABLE["arches"][cfg.arch]
    graph = [why for bad, why in (
        (not arch["graphReplayable"], f"{cfg.arch} has no graph-replayable loss"),
        (cfg.gradient_checkpointing, "gradient checkpointing reads the RNG state on the host"),
        (cfg.gradient_accumulation != 1, "gradient accumulation"),
        (cfg.optimizer != "adamw", f"optimizer {cfg.optimizer} is not capturable"),
        (cfg.train_text_encoder, "text-encoder training re-encodes captions each step"),
        (cfg.shuffle_tags, "shuffle_tags re-encodes captions each step"),
        (cfg.num_processes > 1 or bool(cfg.nodes), "several processes (the gradients are all-reduced outside the step)"),
    ) if bad] if cfg.cuda_graphs else []
    if cfg.cuda_graphs and len({(b["width"], b["height"]) for b in cfg.buckets}) > 1:
        graph.append("several bucket shapes (a captured graph replays one shape)")
    out = [f"cuda_graphs with {why}" for why in graph]
    if cfg.gradient_checkpointing and cfg.checkpointing_mode == "selective" and cfg.arch not in TABLE["selectiveCheckpointingArches"]:
        out.append(f"checkpointing_mode selective for {cfg.arch} (built for {', '.join(TABLE['selectiveCheckpointingArches'])})")
    if cfg.network_type != "lora" and (cfg.quantize == "fp8" or cfg.fp8_matmul):
        # peft's DoRA norm and LoKr/LoHa reshape read base_layer.weight; speed.Fp8Linear keeps weight_fp8 only
        out.append(f"an fp8 base (quantize / fp8_matmul) with network_type {cfg.network_type}")
    if cfg.lora_compute == "bf16" and cfg.precision != "bf16":
        out.append(f"lora_compute bf16 with precision {cfg.precision} (the LoRA computes in the base's bf16)")
    if cfg.train_text_encoder and not arch["textEncoder"]:
        out.append(f"train_text_encoder for {cfg.arch}")
    return out


def parse_config(request: dict) -> Config:
    arch = request.get("arch")
    if arch in NOT_YET_ARCHES:
        record = TABLE["arches"][arch]
        raise WorkerError(
            "E_NOT_SUPPORTED",
            f"the built-in trainer does not train '{arch}' yet: {record['reason']}",
            hint=f"use trainer {record['instead']} for this model, or one of: " + ", ".join(SUPPORTED_ARCHES),
        )
    validate_request(request)
    values = {k: v for k, v in request.items() if k != "failure"}
    values.update(request["failure"])
    cfg = Config(**values)
    bad = contradictions(cfg)
    if bad:
        raise WorkerError("E_USAGE", "the train request asks for settings that cannot run together: " + "; ".join(bad))
    return cfg
