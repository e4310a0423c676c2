"""Kohya sd-scripts timed like for like with the built-in trainer (issue 22): steady s/step and peak GPU memory.

Runs kohya-ss/sd-scripts' own `sdxl_train_network.py` / `flux_train_network.py` (the pinned v0.10.1 checkout,
ae72efb, given by path; never committed) through `accelerate launch` exactly as loraspec's Kohya compiler writes
the command, on the configs it compiled for the speed contract (bench/data/peer-kohya-jobs.json, from
bench/peer-kohya-jobs.ts: 1024², batch 1, rank 16 / alpha 16, AdamW lr 1e-4, bf16, SDPA, cached latents and
text-encoder outputs in memory, no gradient checkpointing, 60 steps over 4 images, `network.targets:
all-linear` = Kohya's default module set, no network_args). The launched "script" is this file with --child: it
runs sd-scripts' script in the same process (runpy) under accelerate's own launch environment, so the bench reads
the process's peak CUDA memory. Bases are made here with random weights at the real shapes, in the layout Kohya
loads:
  sdxl   a diffusers folder (UNet2DConditionModel from bench/gpu_speed_configs.py's SDXL_UNET, CLIP-L and
         CLIP-bigG text encoders, the SDXL VAE); sd-scripts converts the UNet to its own implementation
  flux1  BFL single files flux1-dev / ae / clip_l / t5xxl_fp16.safetensors, built with sd-scripts' own classes
         (library.flux_models, and the CLIP-L / T5-XXL configs of its own loaders, flux_utils.load_clip_l /
         load_t5xxl, so every key its strict=False loads expect is there: checked before saving)
Tokenizers are built in code (vocab/merges files for CLIP, loraspec_worker.tiny_base's T5 Unigram) into the
compiled `tokenizer_cache_dir` (sd-scripts' `<hub id, / -> _>/` layout); HF_HUB_OFFLINE. One base on disk at a time.

Timing: every output line is stamped on arrival (tqdm's bar redraws once per step); steady s/step = (time of step
60 - time of step 20) / 40, the median step and tqdm's final rate beside it (peer-aitoolkit.py's stream/steady).
Kohya's own data loader runs inside the timed window (one epoch per 4 steps, workers respawned each epoch: as
compiled). Peak memory: torch.cuda.max_memory_allocated / reserved in the training process. Loss: tqdm's avr_loss
(first, last, NaN count). cuDNN SDPA is left as Kohya has it (--no-cudnn-sdpa turns it off, as the built-in
trainer and the ai-toolkit bench do; the 2026-11-29 Kohya rows trained finite with it on).

Environment (the device: python 3.12, torch 2.11, transformers 5.17, no diffusers): sd-scripts' own pins where the
device's versions break it. .peerk/ (git-excluded, carried as an untracked folder) holds sd-scripts.tgz (the
ae72efb tree less .git, docs/, images/, .github/, .ai/ and bitsandbytes_windows/) and wheels/: diffusers 0.32.1
(0.32.1 does not import under transformers 5: FLAX_WEIGHTS_NAME), transformers 4.54.1, tokenizers 0.21.4,
huggingface-hub 0.34.3 (sd-scripts' pins), voluptuous 0.15.2, toml 0.10.2, imagesize 1.4.1. Checked on the CPU in a
python 3.12 venv with the device's versions (torch 2.11.0, accelerate 1.16, peft 0.21.0, numpy 2.5, opencv 5.1):
both scripts import, and the --tiny rows train. Never put this site on the built-in trainer's PYTHONPATH.
  mkdir -p /tmp/kohya && tar -xzf .peerk/sd-scripts.tgz -C /tmp/kohya &&
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/kohya-site .peerk/wheels/*.whl &&
  PYTHONPATH=/tmp/kohya-site python3 bench/peer-kohya.py --checkout /tmp/kohya/sd-scripts --out $OUT
CPU smoke test (tiny models of the same classes, 64 px, 2 steps):  ... --tiny --steps 2 --out /tmp/kohya-out
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
JOBS = ROOT / "bench" / "data" / "peer-kohya-jobs.json"
TOKENIZER_IDS = {"clip_l": "openai/clip-vit-large-patch14", "clip_g": "laion/CLIP-ViT-bigG-14-laion2B-39B-b160k", "t5": "google/t5-v1_1-xxl"}
FLUX_FILES = {"flux": "flux1-dev.safetensors", "ae": "ae.safetensors", "clip_l": "clip_l.safetensors", "t5xxl": "t5xxl_fp16.safetensors"}
# --tiny: the same classes at tiny widths (SDXL: sd-scripts' UNet is fixed but for its channel constants; the
# text encoders keep the widths its UNet's 2048 context and 2816 ADM input need, with few layers)
TINY_SDXL_CHANNELS = 64
TINY_CLIP = dict(hidden_size=32, intermediate_size=64, num_attention_heads=2, num_hidden_layers=1, projection_dim=32)
TINY_T5 = dict(d_model=32, d_ff=64, d_kv=16, num_heads=2, num_layers=1, num_decoder_layers=1)
TINY_FLUX = dict(vec_in_dim=32, context_in_dim=32, hidden_size=64, num_heads=2, depth=1, depth_single_blocks=1, axes_dim=[4, 14, 14])
TINY_AE = dict(ch=32, num_res_blocks=1)
LOSS_RE = re.compile(r"avr_loss=([\w.+-]+)")
MODULES_RE = re.compile(r"create LoRA for ([^:]*):\s*(\d+) modules")
sys.path.insert(0, str(ROOT / "worker"))
sys.path.insert(0, str(ROOT / "bench"))
from bench_load import load_by_path  # noqa: E402


AITK = load_by_path("peer_aitoolkit", ROOT / "bench" / "peer-aitoolkit.py")  # stream(), steady(): one home
WHOLERUN = load_by_path("gpu_wholerun", ROOT / "bench" / "gpu-wholerun.py")  # write_dataset, clip_config, vae


def tiny_patches(checkout: str) -> None:
    """The --tiny model widths, patched into sd-scripts' modules (its files are not edited): FLUX.1's params and
    AE params, the CLIP-L / T5 configs its loaders build, SDXL's channel constants."""
    from dataclasses import replace

    sys.path.insert(0, checkout)
    from library import flux_models, flux_utils, sdxl_original_unet

    spec = flux_models.configs["dev"]
    flux_models.configs["dev"] = replace(spec, params=replace(spec.params, **TINY_FLUX), ae_params=replace(spec.ae_params, **TINY_AE))
    clip_cfg, t5_cfg = flux_utils.CLIPConfig, flux_utils.T5Config
    flux_utils.CLIPConfig = lambda **kw: clip_cfg(**{**kw, **TINY_CLIP})
    flux_utils.T5Config = lambda **kw: t5_cfg(**{**kw, **TINY_T5})
    sdxl_original_unet.MODEL_CHANNELS = TINY_SDXL_CHANNELS
    sdxl_original_unet.TIME_EMBED_DIM = TINY_SDXL_CHANNELS * 4


def clip_tokenizer(folder: Path):
    """A CLIP BPE tokenizer over the 256 byte characters (tiny_base's vocabulary), written as vocab.json and
    merges.txt so both the device's transformers and sd-scripts' pinned 4.54 read it (no merges)."""
    from transformers import CLIPTokenizer

    from loraspec_worker.tiny_base import byte_chars

    chars = byte_chars()
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    vocab.update({"<|startoftext|>": len(vocab), "<|endoftext|>": len(vocab) + 1})
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tok = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), pad_token="<|endoftext|>")
    tok.model_max_length = 77
    tok.save_pretrained(folder)
    return tok


def write_tokenizers(cache: Path) -> dict:
    from loraspec_worker import tiny_base

    toks = {key: clip_tokenizer(cache / TOKENIZER_IDS[key].replace("/", "_")) for key in ("clip_l", "clip_g")}
    toks["t5"] = tiny_base.t5_tokenizer()
    toks["t5"].save_pretrained(cache / TOKENIZER_IDS["t5"].replace("/", "_"))
    return toks


def save_state(module, path: Path, keys_needed=None) -> None:
    """Saves a module's state dict in bf16 (a tied tensor cloned: safetensors refuses shared storage), after
    checking it holds every key the loader's model has."""
    import torch
    from safetensors.torch import save_file

    seen, sd = set(), {}
    for k, v in module.state_dict().items():
        v = v.detach().to(torch.bfloat16)
        sd[k] = v.clone().contiguous() if v.data_ptr() in seen else v.contiguous()
        seen.add(v.data_ptr())
    missing = sorted(set(keys_needed or ()) - set(sd))
    if missing:
        raise SystemExit(f"{path.name}: the loader's model wants keys the built one lacks: {missing[:5]}")
    save_file(sd, str(path))


def build_sdxl(base: Path, tiny: bool, toks: dict, device: str) -> None:
    import torch
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from gpu_speed_configs import SDXL_UNET

    unet_cfg = dict(SDXL_UNET)
    clip_l, clip_g = WHOLERUN.clip_config(toks["clip_l"], False), WHOLERUN.clip_config(toks["clip_g"], True)
    if tiny:  # sd-scripts' UNet at 64 channels; CLIP-L needs hidden_states[11], bigG hidden_states[-2] (strategy_sdxl.py L128-132)
        c = TINY_SDXL_CHANNELS
        unet_cfg.update(block_out_channels=(c, 2 * c, 4 * c), attention_head_dim=(c // 64, 2 * c // 64, 4 * c // 64))
        small = dict(vocab_size=len(toks["clip_l"]), intermediate_size=64)
        clip_l = CLIPTextConfig(**{**clip_l.to_dict(), **small, "num_hidden_layers": 11})
        clip_g = CLIPTextConfig(**{**clip_g.to_dict(), **small, "num_hidden_layers": 2})
    torch.manual_seed(0)
    prev = torch.get_default_dtype()
    torch.set_default_dtype(torch.float32 if tiny else torch.bfloat16)
    try:
        with torch.device(device):
            pipe = StableDiffusionXLPipeline(
                vae=WHOLERUN.vae(4, False), text_encoder=CLIPTextModel(clip_l), text_encoder_2=CLIPTextModelWithProjection(clip_g),
                tokenizer=toks["clip_l"], tokenizer_2=toks["clip_g"], unet=UNet2DConditionModel(**unet_cfg),
                scheduler=EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                                 timestep_spacing="leading", steps_offset=1))
    finally:
        torch.set_default_dtype(prev)
    pipe.save_pretrained(base, safe_serialization=True)


def build_flux1(base: Path, checkout: str, device: str) -> None:
    """BFL single files from sd-scripts' own classes; each file checked against the loader's model's keys."""
    import torch

    sys.path.insert(0, checkout)
    from library import flux_models, flux_utils

    spec = flux_models.configs["dev"]
    torch.manual_seed(0)
    prev = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device(device):
            for name, make in (("flux", lambda: flux_models.Flux(spec.params)), ("ae", lambda: flux_models.AutoEncoder(spec.ae_params))):
                module = make()
                save_state(module, base / FLUX_FILES[name])
                del module
            for name, load in (("clip_l", flux_utils.load_clip_l), ("t5xxl", flux_utils.load_t5xxl)):
                empty = load(None, torch.bfloat16, "cpu", state_dict={})  # the loader's own config, on the meta device
                module = type(empty)._from_config(empty.config, torch_dtype=torch.bfloat16)
                save_state(module, base / FLUX_FILES[name], empty.state_dict().keys())
                del module
    finally:
        torch.set_default_dtype(prev)


def build(arch: str, work: Path, checkout: str, tiny: bool) -> None:
    import torch

    if tiny:
        torch.set_num_threads(1)
        tiny_patches(checkout)
    device = "cpu" if tiny or not torch.cuda.is_available() else "cuda"
    base = work / "base"
    base.mkdir(parents=True, exist_ok=True)
    toks = write_tokenizers(work / "tokenizers")
    if arch == "sdxl":
        build_sdxl(base, tiny, toks, device)
    else:
        build_flux1(base, checkout, device)


def child(script: str, peak_path: str, tiny: bool, no_cudnn_sdpa: bool, script_args: list[str]) -> None:
    """sd-scripts' script in this process (the process accelerate launch started), as `python script args`."""
    import runpy

    import torch

    checkout = str(Path(script).parent)
    if tiny:
        torch.set_num_threads(1)
        tiny_patches(checkout)
    if no_cudnn_sdpa:
        torch.backends.cuda.enable_cudnn_sdp(False)
    os.chdir(checkout)
    sys.path.insert(0, checkout)
    sys.argv = [script, *script_args]
    try:
        runpy.run_path(script, run_name="__main__")
    finally:
        peak = {}
        if torch.cuda.is_available():
            peak = {"peak_alloc_gib": torch.cuda.max_memory_allocated() / 2**30, "peak_reserved_gib": torch.cuda.max_memory_reserved() / 2**30}
        Path(peak_path).write_text(json.dumps(peak))


def job_files(key: str, work: Path, checkout: str, steps: int, tiny: bool) -> tuple[list[str], str, list[str]]:
    """The compiled dataset / args TOMLs with the device's paths (and --tiny's 64 px, steps), and the launch
    argv with this file as the launched script (--child runs sd-scripts' script in that process)."""
    job = json.loads(JOBS.read_text())["jobs"][key]
    paths = {"/BASE": work / "base", "/DATASET": work / "dataset", "/OUTPUT": work / f"output-{key}", "/CONFIG": work / f"config-{key}",
             "/SDSCRIPTS": Path(checkout), "/TOKENIZERS": work / "tokenizers"}

    def fill(text: str) -> str:
        for holder, path in paths.items():
            text = re.sub(re.escape(holder) + r'(?=["/]|$)', str(path), text)
        return text

    args = re.sub(r"(?m)^(max_train_steps|save_every_n_steps) = \d+$", rf"\1 = {steps}", fill(job["argsToml"]))
    dataset = fill(job["datasetToml"])
    if tiny:
        dataset = re.sub(r"(?m)^resolution = \d+$", "resolution = 64", dataset)
    paths["/CONFIG"].mkdir(parents=True, exist_ok=True)
    (paths["/CONFIG"] / "args.toml").write_text(args)
    (paths["/CONFIG"] / "dataset.toml").write_text(dataset)
    cmd = [fill(a) for a in job["command"]]
    at = cmd.index(str(Path(checkout) / job["script"]))
    return [sys.executable, "-m", "accelerate.commands.accelerate_cli", *cmd[1:at]], cmd[at], cmd[at + 1:]


def bar_lines(lines) -> list:
    """Kohya's training bar alone (tqdm desc "steps", train_network.py): other bars (the pipeline's component
    loading, the caches) can show the same N/total and would be taken for steps."""
    return [(t, text) for t, text in lines if text.lstrip().startswith("steps:")]


def loss_report(lines) -> dict:
    losses = [m.group(1) for _, t in lines for m in [LOSS_RE.search(t)] if m]
    return {"avr_loss_first": losses[0] if losses else None, "avr_loss_last": losses[-1] if losses else None,
            "avr_loss_nan": sum(1 for x in losses if x.lower() in ("nan", "inf", "-inf"))}


def run_model(key: str, args, deadline: float) -> dict:
    """One row: the base (built in its own process, deleted after), then sd-scripts' run."""
    work = Path(args.work) / key
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1",
           "COLUMNS": "300"}  # rich's log lines unwrapped (the module count on one line)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (env.get("PYTHONPATH", ""), str(ROOT / "worker")) if p)
    me = [sys.executable, str(Path(__file__).resolve())]
    tiny = ["--tiny"] if args.tiny else []
    row: dict = {"trainer": "kohya", "model": key, "targets": "all-linear"}
    shutil.rmtree(Path(args.work), ignore_errors=True)  # one base on disk at a time
    WHOLERUN.write_dataset(work / "dataset", 4, 64 if args.tiny else 1024)
    t0 = time.perf_counter()
    rc, _ = AITK.stream(me + ["--build", key, str(work), "--checkout", args.checkout] + tiny, env, Path(args.out) / "builds.log", deadline, "a")
    row.update(build_s=round(time.perf_counter() - t0, 1), build_rc=rc)
    if rc != 0:
        return row
    launch, script, script_args = job_files(key, work, args.checkout, args.steps, args.tiny)
    peak_path = work / "peak.json"
    flags = tiny + (["--no-cudnn-sdpa"] if args.no_cudnn_sdpa else [])
    t1 = time.perf_counter()
    rc, lines = AITK.stream(launch + [me[1], "--child", script, str(peak_path), *flags, "--", *script_args], env,
                            Path(args.out) / f"kohya-{key}.log", deadline)
    row.update(steps=args.steps, train_rc=rc, train_wall_s=round(time.perf_counter() - t1, 1), **AITK.steady(bar_lines(lines), args.steps))
    row["tqdm_final_s_per_it"] = row.pop("aitk_final_s_per_it", None)
    if peak_path.exists():
        row.update(json.loads(peak_path.read_text()))
    text = " ".join(t.strip() for _, t in lines)
    row["lora_modules"] = [f"{m.group(1)}: {m.group(2)}" for m in MODULES_RE.finditer(text)]
    row.update(loss_report(bar_lines(lines)))
    if row["avr_loss_nan"]:
        row["invalid"] = f"avr_loss non-finite on {row['avr_loss_nan']} bar lines"
    row["no_cudnn_sdpa"] = bool(args.no_cudnn_sdpa)
    shutil.rmtree(Path(args.work), ignore_errors=True)
    return row


def main(argv=None) -> int:
    import argparse

    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:  # launched by accelerate: --child SCRIPT PEAK [--tiny] [--no-cudnn-sdpa] -- ARGS...
        sep = argv.index("--")
        child(argv[1], argv[2], "--tiny" in argv[3:sep], "--no-cudnn-sdpa" in argv[3:sep], argv[sep + 1:])
        return 0
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkout", required=True, help="the sd-scripts checkout (v0.10.1, ae72efb)")
    ap.add_argument("--out", default="bench-out")
    ap.add_argument("--work", default="/tmp/kohya-work")
    ap.add_argument("--models", default="sdxl,flux1", help="in order")
    ap.add_argument("--steps", type=int, default=60, help="steps of a row (the jobs file's own count)")
    ap.add_argument("--budget", type=float, default=480, help="seconds for all models; a run past it is killed")
    ap.add_argument("--min-left", type=float, default=150, help="seconds a row needs to be started")
    ap.add_argument("--no-cudnn-sdpa", action="store_true", help="turn cuDNN's SDPA off in Kohya's process")
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--build", nargs=2, metavar=("ARCH", "WORK"))
    args = ap.parse_args(argv)
    if args.build:
        build(args.build[0], Path(args.build[1]), args.checkout, args.tiny)
        return 0
    Path(args.out).mkdir(parents=True, exist_ok=True)
    deadline = time.perf_counter() + args.budget
    rows = []
    for key in args.models.split(","):
        if deadline - time.perf_counter() < args.min_left:
            rows.append({"trainer": "kohya", "model": key, "skipped": "budget"})
        else:
            rows.append(run_model(key, args, deadline))
        print(json.dumps(rows[-1]), flush=True)
    (Path(args.out) / "peer-kohya.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return 0 if all(r.get("train_rc") == 0 for r in rows if "skipped" not in r) else 1


if __name__ == "__main__":
    sys.exit(main())
