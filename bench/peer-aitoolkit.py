"""ai-toolkit timed like for like with the built-in trainer (issue 22): steady s/step and peak GPU memory.

Runs ostris/ai-toolkit's own `run.py` (the pinned 0.12.26 checkout, 27a03a9, given by path; never
committed) on the jobs loraspec's ai-toolkit compiler wrote for the speed contract
(bench/data/peer-aitoolkit-jobs.json, from bench/peer-aitoolkit-jobs.ts: 1024², batch 1, rank 16 /
alpha 16, AdamW lr 1e-4, bf16, cached latents, no gradient checkpointing, 60 steps over 4 images;
quantize off for the timing rows, fp8 for the memory rows). Base models are made here with random
weights at the real shapes, in the layout ai-toolkit loads:
  flux1    FLUX.1 [dev] diffusers folder (bench/gpu-wholerun.py's pipeline: transformer, VAE, CLIP-L, T5-XXL)
  klein4b  FLUX.2 [klein] 4B: flux-2-klein-base-4b.safetensors + ae.safetensors (ai-toolkit's own
           BFL-layout classes from the checkout) and Qwen3-4B in an offline Hugging Face cache
           (ai-toolkit reads the text encoder from the hub id Qwen/Qwen3-4B)
Tokenizers are the worker's, built in code (tiny_base). Each base is built in its own process,
trained in another, and deleted before the next (disk).

Timing: every line ai-toolkit prints is stamped on arrival (its tqdm bar redraws once per step);
steady s/step = (time of step N - time of step N/3) / (N - N/3), also the median step and ai-toolkit's
own final rate. Peak memory: torch.cuda.max_memory_allocated / reserved in the training process.

One absent module: `av` (PyAV, 40 MB, video export only) is a placeholder module with a stand-in
distribution record (diffusers' LTX-2 export utilities and ai-toolkit's audio/video helpers import it
at module level; an image LoRA run never calls it). ai-toolkit's files are not edited.

GPU (one H200, one call of ~8 min). .peer/ (git-excluded, 22.6 MiB; carried as an untracked folder) holds
ai-toolkit.tgz (the 27a03a9 checkout less .git, ui/ and assets/, which run.py never reads) and wheels/:
what ai-toolkit's import closure needs beyond the device image (python 3.12, torch 2.11, transformers
5.17, peft, accelerate, timm, opencv-headless, ...): diffusers built from the commit ai-toolkit pins
(c943837, 0.39.0.dev0), torchao 0.10.0 and optimum-quanto 0.2.4 (pinned), lycoris-lora 1.8.3 (built
from its sdist) with open_clip_torch/ftfy/wcwidth (lycoris imports them), albumentations 1.4.15 /
albucore 0.0.16 with pydantic/pydantic-core/annotated-types/typing-inspection/eval-type-backport,
controlnet_aux 0.0.10, lpips, prodigyopt, oyaml, python-dotenv. Checked 2026-12-02 on the CPU in a
python 3.12 venv holding only the device's versions (torch 2.11.0, torchvision 0.26, torchaudio 2.11,
transformers 5.17.0, peft 0.21.0, hub 1.33.0; triton removed: omnigen2's import asks CUDA for its warp
size when triton is there): the --tiny rows below ran with exactly these wheels, fp8 rows included.
  mkdir -p /tmp/aitk && tar -xzf .peer/ai-toolkit.tgz -C /tmp/aitk &&
  python3 -m pip install -q --no-index --no-deps --target /tmp/aitk-site .peer/wheels/*.whl &&
  PYTHONPATH=/tmp/aitk-site python3 bench/peer-aitoolkit.py --checkout /tmp/aitk/ai-toolkit --out $OUT
Rows run in --models order within --budget seconds (a row of the same arch as the one before reuses
its base; an fp8 row is skipped or stopped to leave --min-left seconds for each timing row after it).

FLUX.1 and NaN (2026-12-02): the first H200 FLUX.1 row was invalid: step 1's loss was finite (1.526),
every later step printed `loss is nan` (ai-toolkit then zeroes the loss: no backward), so the first
update went non-finite. Not the T5: bench/t5xxl-bf16-probe.py runs this base's T5-XXL (all 24 layers at
4096/10240, 64 heads, 512 tokens, bf16, saved and loaded as ai-toolkit loads it) finite on the CPU
(largest |activation| ~25). The cause was cuDNN's SDPA backward on FLUX shapes (with the embeddings
cached it became an illegal memory access at step 1); the child turns it off with the built-in
trainer's own `disable_cudnn_sdpa`, and the FLUX.1 row then trained 60 finite steps. Since then ai-toolkit's FLUX.1 job caches text embeddings (its profile had
said it could not; ai-toolkit-profiles.ts), so T5 and CLIP run once, as in the built-in and Kohya
rows. Each row also keeps `first_grads`: the LoRA gradients' norm and the non-finite ones on
ai-toolkit's first 3 steps, read just before its clip_grad_norm_ (watch_grads), to show where a NaN
row's first update went wrong.
CPU smoke test (tiny models of the same classes, 64 px, 2 steps):
  ... --tiny --steps 2 --out /tmp/aitk-out
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
JOBS = ROOT / "bench" / "data" / "peer-aitoolkit-jobs.json"
ABSENT = ("av",)
QWEN_HUB_ID = "Qwen/Qwen3-4B"  # Flux2Klein4BModel.flux2_klein_te_path at the pin
KLEIN_FILES = ("flux-2-klein-base-4b.safetensors", "ae.safetensors")  # flux2_te_filename, FLUX2_VAE_FILENAME
# Qwen/Qwen3-4B's config.json (the shapes; weights random)
QWEN3_4B = dict(vocab_size=151936, hidden_size=2560, intermediate_size=9728, num_hidden_layers=36, num_attention_heads=32,
                num_key_value_heads=8, head_dim=128, max_position_embeddings=40960, rope_theta=1000000, rms_norm_eps=1e-6,
                tie_word_embeddings=True)
TINY_KLEIN = dict(in_channels=128, context_in_dim=3 * 16, hidden_size=64, num_heads=2, depth=1, depth_single_blocks=1,
                  axes_dim=[8, 8, 8, 8])
TINY_QWEN3 = dict(hidden_size=16, intermediate_size=16, num_hidden_layers=28, num_attention_heads=2, num_key_value_heads=2,
                  head_dim=8, max_position_embeddings=1024, tie_word_embeddings=True)
GRADS_TAG = "[peer-bench] grads before clip, step "
STEP_RE = re.compile(r"(\d+)/(\d+) \[")
RATE_RE = re.compile(r"([\d.]+)(s/it|it/s)")
sys.path.insert(0, str(ROOT / "worker"))
sys.path.insert(0, str(ROOT / "bench"))
from bench_load import load_by_path  # noqa: E402


def build_flux1(base: Path, tiny: bool) -> None:
    wholerun = load_by_path("gpu_wholerun", ROOT / "bench" / "gpu-wholerun.py")
    pipe = wholerun.build_pipeline("flux1", tiny)
    pipe.save_pretrained(base, safe_serialization=True)


def build_klein4b(base: Path, checkout: Path, hf_home: Path, tiny: bool) -> None:
    import torch
    from safetensors.torch import save_file
    from transformers import Qwen3Config, Qwen3ForCausalLM

    from loraspec_worker import tiny_base

    src = checkout / "extensions_built_in" / "diffusion_models" / "flux2" / "src"
    model = load_by_path("aitk_flux2_model", src / "model.py")
    ae = load_by_path("aitk_flux2_autoencoder", src / "autoencoder.py")
    device = "cpu" if tiny else "cuda"
    tok = tiny_base.qwen_tokenizer()
    torch.manual_seed(0)
    prev = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device(device):
            params = model.Klein4BParams(**TINY_KLEIN) if tiny else model.Klein4BParams()
            save_file(model.Flux2(params).state_dict(), str(base / KLEIN_FILES[0]))
            save_file(ae.AutoEncoder(ae.AutoEncoderParams()).state_dict(), str(base / KLEIN_FILES[1]))
            qwen = Qwen3ForCausalLM(Qwen3Config(**({**QWEN3_4B, "vocab_size": len(tok), **TINY_QWEN3} if tiny else QWEN3_4B),
                                                bos_token_id=None, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id))
    finally:
        torch.set_default_dtype(prev)
    # an offline hub cache: models--Qwen--Qwen3-4B/{refs/main, snapshots/<rev>/}
    repo = hf_home / "hub" / ("models--" + QWEN_HUB_ID.replace("/", "--"))
    rev = "0" * 40
    snap = repo / "snapshots" / rev
    qwen.save_pretrained(snap, safe_serialization=True)
    tok.save_pretrained(snap)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(rev)


def write_dataset(folder: Path, count: int, size: int) -> None:
    wholerun = load_by_path("gpu_wholerun", ROOT / "bench" / "gpu-wholerun.py")
    wholerun.write_dataset(folder, count, size)


def job_for(key: str, base: Path, dataset: Path, output: Path, steps: int, tiny: bool) -> dict:
    entry = json.loads(JOBS.read_text())["jobs"][key]
    job = entry["job"]
    proc = job["config"]["process"][0]
    proc["training_folder"] = str(output)
    proc["datasets"][0]["folder_path"] = str(dataset)
    proc["model"]["name_or_path"] = str(base)
    proc["train"]["steps"] = steps
    proc["save"]["save_every"] = steps
    if tiny:  # the CPU smoke test only: 64 px, fp32, on the CPU
        proc["datasets"][0]["resolution"] = [64]
        proc["train"]["dtype"] = "fp32"
        proc["device"] = "cpu"
    return job


def grad_report(params) -> dict:
    """The LoRA gradients ai-toolkit is about to clip: their total norm and the non-finite ones (a
    non-finite gradient makes clip_grad_norm_ scale every gradient by 0/inf and AdamW's step NaN),
    and how many LoRA tensors already hold a non-finite value."""
    import torch

    grads = [p.grad for p in params if p.grad is not None]
    bad = [(i, tuple(g.shape)) for i, g in enumerate(grads) if not bool(torch.isfinite(g).all())]
    finite = [g.float().abs().max() for g in grads if bool(torch.isfinite(g).all())]
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.float()) for g in grads])) if grads else torch.zeros(())
    params_bad = sum(1 for p in params if not bool(torch.isfinite(p).all()))  # an earlier update's NaN
    return {"tensors": len(grads), "norm": float(norm), "max_abs_finite": float(max(finite)) if finite else None,
            "nonfinite": len(bad), "nonfinite_first": bad[:5], "params": len(params), "params_nonfinite": params_bad}


def watch_grads(first: int) -> None:
    """Prints grad_report on ai-toolkit's first `first` optimizer steps (SDTrainer.py L2276-2283 calls
    Accelerator.clip_grad_norm_ on the LoRA params before each step); later steps are not touched, so
    the timed window (from step N/3) carries no extra sync."""
    import accelerate

    clip = accelerate.Accelerator.clip_grad_norm_
    calls = [0]

    def watched(self, parameters, *a, **kw):
        params = list(parameters)
        calls[0] += 1
        if calls[0] <= first:
            # own line: ai-toolkit's bar is mid-line (no newline) when this prints
            print(f"\n{GRADS_TAG}{calls[0]}: {json.dumps(grad_report(params))}", flush=True)
        return clip(self, params, *a, **kw)

    accelerate.Accelerator.clip_grad_norm_ = watched


def child(checkout: str, job_path: str, peak_path: str, tiny: bool) -> None:
    """One ai-toolkit run in this process: `python run.py job.yaml`, with `av` absent-but-importable."""
    import importlib.abc
    import importlib.machinery
    import runpy
    import tempfile
    import types

    class Absent(types.ModuleType):
        def __getattr__(self, name):
            if name.startswith("__"):
                raise AttributeError(name)
            raise AttributeError(f"{self.__name__}.{name}: not installed for this bench run (peer-aitoolkit.py)")

    class Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
        def find_spec(self, name, path=None, target=None):
            return importlib.machinery.ModuleSpec(name, self, is_package=True) if name.split(".")[0] in ABSENT else None

        def create_module(self, spec):
            return Absent(spec.name)

        def exec_module(self, module):
            module.__path__ = []

    records = Path(tempfile.mkdtemp(prefix="aitk-absent-"))
    for name in ABSENT:  # the distribution record diffusers' is_<name>_available() looks up
        info = records / f"{name}-0.0.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.0.0\n")
    sys.path.insert(0, str(records))
    sys.meta_path.insert(0, Finder())
    import torch

    if tiny:
        torch.set_num_threads(1)
    # cuDNN's attention backward fails on FLUX shapes on the H200 (an illegal memory access at step 1,
    # or NaN from step 2 in the earlier log): the built-in trainer's own switch, so both trainers run
    # the flash/efficient SDPA kernels.
    from loraspec_worker.train import disable_cudnn_sdpa

    disable_cudnn_sdpa()
    os.chdir(checkout)
    sys.path.insert(0, checkout)
    if tiny:  # the CPU smoke test's klein transformer is tiny; ai-toolkit builds Klein4BParams() at its real size
        from extensions_built_in.diffusion_models.flux2.flux2_klein_model import Flux2Klein4BModel
        from extensions_built_in.diffusion_models.flux2.src.model import Klein4BParams

        Flux2Klein4BModel.get_flux2_params = lambda self: Klein4BParams(**TINY_KLEIN)
    watch_grads(3)
    sys.argv = ["run.py", job_path]
    try:
        runpy.run_path(os.path.join(checkout, "run.py"), run_name="__main__")
    finally:
        peak = {}
        if torch.cuda.is_available():
            peak = {"peak_alloc_gib": torch.cuda.max_memory_allocated() / 2**30, "peak_reserved_gib": torch.cuda.max_memory_reserved() / 2**30}
        Path(peak_path).write_text(json.dumps(peak))


def stream(cmd: list[str], env: dict, log: Path, deadline: float, mode: str = "w") -> tuple[int, list[tuple[float, str]]]:
    """Runs cmd, stamping each \\r- or \\n-ended chunk of its output on arrival; killed at `deadline`."""
    import threading

    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    timer = threading.Timer(max(1.0, deadline - time.perf_counter()), proc.kill)
    timer.start()
    lines: list[tuple[float, str]] = []
    t0 = time.perf_counter()
    buf = b""
    with log.open(mode, encoding="utf-8") as f:
        while chunk := proc.stdout.read1(65536):
            now = time.perf_counter() - t0
            buf += chunk
            parts = re.split(rb"[\r\n]", buf)
            buf = parts.pop()
            for p in parts:
                text = p.decode("utf-8", "replace")
                if text.strip():
                    lines.append((now, text))
                    f.write(f"{now:9.3f} {text}\n")
        if buf.strip():
            f.write(f"{time.perf_counter() - t0:9.3f} {buf.decode('utf-8', 'replace')}\n")
    rc = proc.wait()
    timer.cancel()
    return rc, lines


def steady(lines: list[tuple[float, str]], steps: int) -> dict:
    """Steady s/step from the stamped bar lines: the first time each step count shows."""
    first: dict[int, float] = {}
    rate = None
    for t, text in lines:
        m = STEP_RE.search(text)
        if m and int(m.group(2)) == steps:
            first.setdefault(int(m.group(1)), t)
            r = RATE_RE.search(text[m.end():])
            if r:
                rate = float(r.group(1)) if r.group(2) == "s/it" else 1 / float(r.group(1))
    done = sorted(n for n in first if n > 0)
    out: dict = {"steps_seen": len(done), "aitk_final_s_per_it": rate}
    # ai-toolkit replaces a NaN loss by a fresh zero tensor and steps on (SDTrainer.py L2223-2224 at
    # 27a03a9): such a step does no backward through the model, so a row with any is no timing.
    nan_steps = sum(1 for _, text in lines if text.rstrip().endswith("loss is nan"))
    if nan_steps:
        out["nan_loss_steps"] = nan_steps
        out["invalid"] = f"ai-toolkit zeroed a NaN loss on {nan_steps} steps (no backward there): not a timing"
    if len(done) >= 3:
        lo = next(n for n in done if n >= max(1, steps // 3))
        hi = done[-1]
        out["steady_s_per_step"] = (first[hi] - first[lo]) / (hi - lo) if hi > lo else None
        diffs = [first[b] - first[a] for a, b in zip(done, done[1:]) if b == a + 1 and a >= lo]
        out["median_s_per_step"] = statistics.median(diffs) if diffs else None
        out["window"] = [lo, hi]
    return out


def first_grads(lines: list[tuple[float, str]]) -> list[dict]:
    """watch_grads' reports from the stamped log, in step order."""
    return [json.loads(text.split(GRADS_TAG, 1)[1].split(": ", 1)[1]) for _, text in lines if GRADS_TAG in text]


def run_model(key: str, args, deadline: float, keep_base: bool) -> dict:
    """One row: the base (built unless the previous row left this arch's), the job, ai-toolkit's run."""
    arch_key = key.split("-")[0]
    work = Path(args.work) / arch_key
    base, dataset, output, hf_home = work / "base", work / "dataset", work / f"output-{key}", work / "hf"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "HF_HUB_DISABLE_TELEMETRY": "1", "DISABLE_TELEMETRY": "YES", "MAX_JOBS": str(os.cpu_count() or 4)}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT / "worker"), env.get("PYTHONPATH", "")) if p)
    me = [sys.executable, str(Path(__file__).resolve())]
    tiny = ["--tiny"] if args.tiny else []
    row: dict = {"model": key}
    if not (base / ".done").exists():
        shutil.rmtree(Path(args.work), ignore_errors=True)  # one base on disk at a time
        for p in (base, hf_home):
            p.mkdir(parents=True, exist_ok=True)
        write_dataset(dataset, 4, 64 if args.tiny else 1024)
        t0 = time.perf_counter()
        rc, _ = stream(me + ["--build", arch_key, str(work), "--checkout", args.checkout] + tiny, env, Path(args.out) / "builds.log", deadline, "a")
        row.update(build_s=round(time.perf_counter() - t0, 1), build_rc=rc)
        if rc != 0:
            return row
        (base / ".done").write_text("")
    steps = args.fp8_steps if key.endswith("-fp8") else args.steps
    job_path = work / f"{key}.job.yaml"
    import yaml

    job_path.write_text(yaml.safe_dump(job_for(key, base, dataset, output, steps, args.tiny), sort_keys=False))
    peak_path = work / f"{key}.peak.json"
    t1 = time.perf_counter()
    rc, lines = stream(me + ["--child", args.checkout, str(job_path), str(peak_path), "--checkout", args.checkout] + tiny, env,
                       Path(args.out) / f"aitk-{key}.log", deadline)
    row.update(steps=steps, train_rc=rc, train_wall_s=round(time.perf_counter() - t1, 1), **steady(lines, steps))
    if peak_path.exists():
        row.update(json.loads(peak_path.read_text()))
    row["lora_modules"] = next((t.strip() for _, t in lines if "create LoRA for U-Net" in t), None)
    row["first_grads"] = first_grads(lines)
    shutil.rmtree(output, ignore_errors=True)
    if not keep_base:
        shutil.rmtree(Path(args.work), ignore_errors=True)
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkout", required=True, help="the ai-toolkit checkout (0.12.26, 27a03a9)")
    ap.add_argument("--out", default="bench-out")
    ap.add_argument("--work", default="/tmp/aitk-work")
    ap.add_argument("--models", default="flux1,flux1-fp8,klein4b,klein4b-fp8",
                    help="in order; a row of the same arch as the one before reuses its base")
    ap.add_argument("--steps", type=int, default=60, help="steps of a timing row (the jobs file's own count)")
    ap.add_argument("--fp8-steps", type=int, default=15, help="steps of an fp8 (memory) row")
    ap.add_argument("--budget", type=float, default=480, help="seconds for all models; a run past it is killed")
    ap.add_argument("--min-left", type=float, default=120, help="seconds a row needs; an fp8 row also leaves this much for each timing row after it")
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--child", nargs=3, metavar=("CHECKOUT", "JOB", "PEAK"))
    ap.add_argument("--build", nargs=2, metavar=("ARCH", "WORK"))
    args = ap.parse_args(argv)
    if args.child:
        child(*args.child, tiny=args.tiny)
        return 0
    if args.build:
        arch, work = args.build[0], Path(args.build[1])
        if arch == "flux1":
            build_flux1(work / "base", args.tiny)
        else:
            build_klein4b(work / "base", Path(args.checkout), work / "hf", args.tiny)
        return 0
    Path(args.out).mkdir(parents=True, exist_ok=True)
    deadline = time.perf_counter() + args.budget
    rows = []
    keys = args.models.split(",")
    for i, key in enumerate(keys):
        later_timing = sum(1 for k in keys[i + 1:] if not k.endswith("-fp8")) if key.endswith("-fp8") else 0
        if deadline - time.perf_counter() < args.min_left * (1 + later_timing):
            rows.append({"model": key, "skipped": "budget"})
        else:
            same_next = i + 1 < len(keys) and keys[i + 1].split("-")[0] == key.split("-")[0]
            # an fp8 row stops in time for the timing rows after it
            rows.append(run_model(key, args, deadline - args.min_left * later_timing, keep_base=same_next))
        print(json.dumps(rows[-1]), flush=True)
    (Path(args.out) / "peer-aitoolkit.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return 0 if all(r.get("train_rc") == 0 for r in rows if "skipped" not in r) else 1


if __name__ == "__main__":
    sys.exit(main())
