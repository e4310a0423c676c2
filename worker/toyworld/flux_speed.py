"""Speed levers of the toy FLUX.1 base's transformer phase (train_flux.train_transformer), each a
`train-base` flag and each off by default (all off is the committed loop), and the throughput probe
that times them on the GPU: `python -m toyworld flux-throughput` (see probe).

Why a step is slow for a model this small (5-7 M parameters; batch 256 of 256 image tokens plus
64-512 T5 tokens): the GPU does little per kernel, and the committed loop keeps it waiting.
  - host syncs: a CPU tensor's .to(cuda) copies and waits for the GPU (torch's copy from pageable
    memory synchronizes the stream). The committed loop made six a step (its three batch draws,
    and in the trainer's Flux1.loss the sigma and timestep tables and the image ids, which it now
    keeps on the device) plus float(loss) every 10th step; after each the GPU idles while Python
    launches the next kernels;
  - kernel launches: every step runs CLIP, T5 and the transformer forward and backward, unfused
    (autocast casts, norms, modulation, RoPE: thousands of small kernels), then AdamW (foreach) and
    the EMA.
The levers:
  --no-host-sync   the batch draws on the GPU's own generator (another random stream than the
                   committed CPU one) and the losses read every LOG_EVERY steps in one copy;
  --fused-adam     AdamW(fused=True): one kernel per step for every parameter;
  --compile MODE   torch.compile of the transformer and both text encoders, one static graph per
                   T5 length (dynamic=False; lengths cycle, so each compiles on its first step):
                   blocks (regional: the repeated blocks only, fastest to compile), full (whole
                   modules), graphs (full with mode reduce-overhead: CUDA graphs replay each graph);
  --batch N --lr-rule sqrt   a larger batch with lr x sqrt(N / REFERENCE_BATCH).
The loss is the trainer's own Flux1.loss under every lever.

The probe on the GPU, one short call each (out/throughput.jsonl is rewritten after every config,
so a call cut short keeps the rows done; each row's warmup_s holds the compile time):
  PYTHONPATH=worker python3 -m toyworld flux-throughput --out $OUT --configs baseline,fast,fast+b1024,fast+blocks
  PYTHONPATH=worker python3 -m toyworld flux-throughput --out $OUT --configs fast+compile,fast+compile+b1024
  (then fast+graphs, fast+graphs+b1024, fast+b512 ... as the first rows suggest). On a warm machine inductor's
  cache (/tmp/torchinductor_$USER) keeps the compiled kernels for the next call and the sweep.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
import warnings

COMPILE_MODES = ("off", "blocks", "full", "graphs")
# The text encoders' repeated blocks (the transformer's come from diffusers' _repeated_blocks).
TEXT_BLOCKS = {"CLIPTextModel": "CLIPEncoderLayer", "T5EncoderModel": "T5Block"}
LR_RULES = ("fixed", "sqrt")
# The batch the committed --lr (4e-4) was tuned at (bench/RESULTS.md's toy FLUX.1 runs).
REFERENCE_BATCH = 256


@dataclasses.dataclass(frozen=True)
class Levers:
    compile: str = "off"
    fused_adam: bool = False
    no_host_sync: bool = False

    @classmethod
    def from_args(cls, args) -> "Levers":
        return cls(compile=args.compile, fused_adam=args.fused_adam, no_host_sync=args.no_host_sync)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def scaled_lr(lr: float, batch: int, rule: str) -> float:
    """fixed: lr as given; sqrt: lr x sqrt(batch / REFERENCE_BATCH) (Adam's square-root rule)."""
    if rule == "sqrt":
        return lr * math.sqrt(batch / REFERENCE_BATCH)
    return lr


def compile_models(modules: list, mode: str) -> int:
    """Compiles the trainable modules in place (their state dicts and the EMA copies made before are
    untouched). Returns how many modules or blocks were compiled (0 for off)."""
    if mode == "off":
        return 0
    import torch

    from loraspec_worker import speed

    # one static graph per T5 length, never a dynamic one after the second length
    torch._dynamo.config.automatic_dynamic_shapes = False
    torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, speed.COMPILE_CACHE_LIMIT)
    if mode == "blocks":
        return sum(speed.compile_blocks(m, names=[TEXT_BLOCKS[type(m).__name__]] if type(m).__name__ in TEXT_BLOCKS else None) for m in modules)
    for module in modules:
        module.compile(dynamic=False, mode="reduce-overhead" if mode == "graphs" else None)
    return len(modules)


# ---------------------------------------------------------------------------------------------
# The throughput probe

# bench/toy-flux-sweep.py's vae2-objw: the committed transformer on the /2 VAE, objects weighted 1 + 4
PROBE_BUILD = {"heads": 6, "double_layers": 2, "single_layers": 4, "vae_levels": 2}
PROBE_OBJECT_WEIGHT = 4.0
PROBE_T5_LENGTHS = (512, 128, 64, 64)  # the sweep's
# Config tokens, joined by "+": baseline (the committed loop), nosync, fused, fast (nosync + fused),
# blocks / compile / graphs (--compile blocks / full / graphs), b<N> (batch N, lr by the sqrt rule).
TOKENS = {"baseline": {}, "nosync": {"no_host_sync": True}, "fused": {"fused_adam": True},
          "fast": {"no_host_sync": True, "fused_adam": True}, "blocks": {"compile": "blocks"}, "compile": {"compile": "full"},
          "graphs": {"compile": "graphs"}}
DEFAULT_CONFIGS = "baseline,fast,fast+b1024,fast+compile,fast+compile+b1024"


def parse_config(name: str) -> tuple[Levers, int]:
    """'fast+compile+b1024' -> (Levers, batch). An unknown token is a usage error naming --configs."""
    from loraspec_worker.protocol import WorkerError

    levers, batch = {}, REFERENCE_BATCH
    for token in name.split("+"):
        if token in TOKENS:
            levers |= TOKENS[token]
        elif token.startswith("b") and token[1:].isdigit() and int(token[1:]) > 0:
            batch = int(token[1:])
        else:
            raise WorkerError("E_USAGE", f"--configs: unknown token {token!r} in {name!r}",
                              hint=f"tokens: {', '.join(TOKENS)}, b<batch>, joined by +")
    return Levers(**levers), batch


def synthetic_data(count: int):
    """Random pixels and object masks (the timing does not depend on them) and real captions of
    the base world (their token counts are the real ones)."""
    import torch

    from . import world
    from .train_base import BASE_SCENES

    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (count, 3, 64, 64), generator=g, dtype=torch.uint8)
    masks = torch.rand((count, 64, 64), generator=g) < 0.2
    scenes = [world.random_scene(seed, **BASE_SCENES) for seed in range(count)]
    return images, [(world.natural_caption(s), world.tags_caption(s)) for s in scenes], masks


def time_config(name: str, data, device, *, steps: int, warmup: int, seconds: float, t5_lengths) -> dict:
    """Times one config: warm-up steps (compiles included), one step with the sync debugger on
    (CUDA), then `steps` steps between two synchronizes."""
    import torch

    from . import train_flux

    levers, batch = parse_config(name)
    torch._dynamo.reset()
    models = train_flux.build_models(0, **PROBE_BUILD)
    models["vae"].register_to_config(shift_factor=0.0)  # train_vae sets it from the latents
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    clock = {"start": time.time()}

    def on_step(step):
        if cuda and step == warmup - 1:
            torch.cuda.set_sync_debug_mode("warn")  # the next step reports each sync it makes
        if step == warmup:
            if cuda:
                torch.cuda.set_sync_debug_mode("default")
                torch.cuda.synchronize(device)
            clock["warm"] = time.time()
        if step == warmup + steps and cuda:
            torch.cuda.synchronize(device)
        clock["end"], clock["steps"] = time.time(), step - warmup

    images, captions, masks = data
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train_flux.train_transformer(models, images, captions, device=device, steps=warmup + steps, seconds=seconds, batch=batch,
                                     lr=scaled_lr(4e-4, batch, "sqrt"), t5_lengths=t5_lengths, masks=masks,
                                     object_weight=PROBE_OBJECT_WEIGHT, levers=levers, log=lambda m: None, on_step=on_step)
    if clock.get("steps", 0) < steps:  # cut short by `seconds`: the loop synchronized before it returned
        clock["end"] = time.time()
    syncs = [w for w in caught if "synchroniz" in str(w.message)]
    row = {"config": name, "batch": batch, "levers": levers.as_dict(), "t5_lengths": list(t5_lengths), "device": str(device)}
    if "warm" not in clock:
        return row | {"error": f"warm-up ({warmup} steps) did not finish within {seconds:.0f} s"}
    timed, elapsed = clock["steps"], clock["end"] - clock["warm"]
    row |= {"warmup_steps": warmup, "warmup_s": round(clock["warm"] - clock["start"], 2), "steps_timed": timed,
            "seconds_timed": round(elapsed, 3), "complete": timed >= steps, "steps_per_s": round(timed / elapsed, 2) if timed else None,
            "images_per_s": round(timed * batch / elapsed) if timed else None}
    if cuda:
        row |= {"peak_gib": round(torch.cuda.max_memory_allocated(device) / 2**30, 2), "syncs_in_one_step": len(syncs) if warmup > 1 else None,
                "sync_sites": sorted({f"{os.path.relpath(w.filename)}:{w.lineno}" for w in syncs})}
    return row


def _write_lines(path: str, rows: list[dict]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)


def probe(configs: list[str], out: str, *, steps: int = 48, warmup: int = 8, images: int = 2048, seconds: float = 90,
          t5_lengths=PROBE_T5_LENGTHS, device: str | None = None, log=print) -> list[dict]:
    """Images per second of each config on the vae2-objw models (random weights, synthetic
    pixels), one JSON line per config to stdout and to out/throughput.jsonl (rewritten after each
    config, so a call cut short keeps the finished ones). Warm-up and timed steps are whole cycles
    of the T5 lengths; `seconds` bounds each config's loop (compiles included)."""
    import torch

    from loraspec_worker.checkpoint_integrity import atomic_write
    from loraspec_worker.train import disable_cudnn_sdpa

    for name in configs:
        parse_config(name)  # every name is checked before anything runs
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if dev.type == "cuda":
        disable_cudnn_sdpa()  # as train_flux.run
    cycle = len(t5_lengths)
    steps, warmup = cycle * math.ceil(steps / cycle), cycle * max(1, math.ceil(warmup / cycle))
    data = synthetic_data(images)
    os.makedirs(out, exist_ok=True)
    rows = []
    for name in configs:
        try:
            row = time_config(name, data, dev, steps=steps, warmup=warmup, seconds=seconds, t5_lengths=tuple(t5_lengths))
        except torch.OutOfMemoryError:
            row = {"config": name, "error": "out of memory"}
        except Exception as e:  # noqa: BLE001 - a config that fails (a compile error) must not lose the others' rows
            row = {"config": name, "error": f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"}
        row |= {"torch": torch.__version__, "gpu": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"}
        rows.append(row)
        log(json.dumps(row))
        atomic_write(os.path.join(out, "throughput.jsonl"), lambda tmp: _write_lines(tmp, rows))
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    return rows
