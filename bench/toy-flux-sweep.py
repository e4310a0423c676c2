"""Issue 23's sweep: toy FLUX.1 base variants trained side by side on one GPU, each by the project's
own `python -m toyworld train-base --arch flux1` in its own process with the same time budgets,
each judged on 200 held-out prompts by train_flux.py's own evaluation (bench/RESULTS.md, "What
limits the toy FLUX.1 base's shapes").

The CPU diagnosis found the /4 VAE's round trip losing 13% of shapes and the transformer's loss
barely depending on the shape word. The variants, each against vae2:
  base       the committed shape (6 heads x 32, 2 double + 4 single blocks, /4 VAE: 8x8 tokens)
  vae2       the committed transformer on a /2 VAE (16x16 tokens of 4x4 px; 32x32x16 latents)
  vae2-wide  and 8 heads x 32, 3 double + 4 single blocks (2.1x the transformer's parameters)
  vae2-objw  and the loss on the objects' latent pixels weighted 1 + 4 (--object-weight 4): the
             background's textures no longer outweigh the objects' outlines
  t32-objw   vae2-objw trained (and so sampled) at T5 length 32 only: no shape-poor padding channel,
             4-16x fewer text tokens (every base-world caption is <= 20 T5 tokens, EOS included)
  t32-objw-d4  and 4 double blocks instead of 2 (4 single blocks as the committed base)
  t32-outline  t32-objw plus --outline-weight 8: more loss weight where the prompted shape differs
             from the mean of all shapes at its place, and on its outline (worker/toyworld/outline.py),
             the one attribute a fill-weighted loss does not single out
All: a longer VAE phase than the committed base's 40 s. T5 padding lengths per variant (T5_OLD:
512,128,64,64 keeps the two sampling lengths, 1.5x fewer tokens per step than 512,128); each run's
evaluation samples at the lengths it trained at (train_flux.sampling_lengths).

Writes to --out: <variant>.json (each run's toyworld.json), logs.txt (a table, one row per
variant, then each run's last lines) and the best variant's folder (highest judged shape with true
CFG, among those <= 30 MB) as best-<variant>.tar, split into .tar.00, .tar.01 ... parts of
15 MiB when larger (`cat best-*.tar.* > best.tar`).

--train-args passes train-base flags to every variant (the speed levers of worker/toyworld/
flux_speed.py), written with "=" since its value starts with a dash:
--train-args="--no-host-sync --fused-adam --compile full --batch 1024 --lr-rule sqrt".
Each variant's log goes to --out/<variant>.log as it runs (a "transformer step N loss L (Ts)" line
every 200 steps), and --out/progress.txt is rewritten every PROGRESS_EVERY seconds (each variant's
state and last line; its first line says "done" at the end). --deadline defaults to the VAE and
transformer budgets plus SETUP_MARGIN (rendering, saving, the judged samples).

GPU (one H200, ~8 min):  PYTHONPATH=worker python3 bench/toy-flux-sweep.py --out $OUT
(the default variants are the four above; the T5-32 ones are --variants t32-objw,t32-objw-d4 or t32-outline, launched detached as below)
CPU smoke (seconds of training, no judge reading):  ... --out /tmp/o --smoke

A run longer than one device call (each call ends at 600 s; e.g. vae2-objw alone, 1,200 s of
transformer): launch it detached in one call, then poll in later calls while the machine stays warm
(the sweep and its training process outlive the launching call; the files are in /tmp/tfs, not the
call's $OUT):
  launch:  mkdir -p /tmp/tfs && PYTHONPATH=worker setsid nohup python3 bench/toy-flux-sweep.py --variants vae2-objw \
             --transformer-seconds 1200 --train-args="--no-host-sync --fused-adam --batch 1024 --lr-rule sqrt" \
             --out /tmp/tfs/out --work /tmp/tfs/work > /tmp/tfs/sweep.log 2>&1 < /dev/null &
           sleep 60; cat /tmp/tfs/sweep.log /tmp/tfs/out/progress.txt
  t32-outline alone (20 min of transformer, ~25 min in all: a session's 30 device minutes hold it with
  the start and the polls; all 16 cores render, as its outline bands take ~3 ms a scene on one core x
  60,000 scenes; --deadline is the default 1,475 s plus room for them):
           mkdir -p /tmp/tfs && PYTHONPATH=worker setsid nohup python3 bench/toy-flux-sweep.py --variants t32-outline \
             --transformer-seconds 1200 --workers 16 --deadline 1550 \
             --train-args="--no-host-sync --fused-adam --batch 1024 --lr-rule sqrt" \
             --out /tmp/tfs/out --work /tmp/tfs/work > /tmp/tfs/sweep.log 2>&1 < /dev/null &
  poll:    cat /tmp/tfs/out/progress.txt; tail -n 5 /tmp/tfs/out/*.log; cp -r /tmp/tfs/out/. $OUT/
  (when progress.txt's first line says done, the last poll's $OUT holds <variant>.json, logs.txt and
  the best-<variant>.tar parts)
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WIDE = ["--flux-heads", "8", "--flux-double", "3", "--flux-single", "4"]
VAE2 = ["--vae-downscale", "2"]
T5_OLD = ["--t5-lengths", "512,128,64,64"]
T5_32 = ["--t5-lengths", "32"]
OBJW = [*VAE2, "--object-weight", "4"]
# --outline-weight 8: the band's extra weight then equals the object's (object weight 4). Per base-world
# image the band holds 0.48x the grown object's mass (14.0 vs 29.3 latent px at /4, 56.0 vs 117.4 at /2,
# 600 scenes), so 8 x band = 4 x object; the band's share of the loss weight goes 0.175 -> 0.30 (/2 VAE;
# plain loss 0.055), the object's 0.36 -> 0.49: the outline doubles its pull without drowning the fill.
OUTLINE = [*OBJW, "--outline-weight", "8"]
VARIANTS = {"base": T5_OLD, "vae2": [*VAE2, *T5_OLD], "vae2-wide": [*VAE2, *WIDE, *T5_OLD], "vae2-objw": [*OBJW, *T5_OLD],
            "t32-objw": [*OBJW, *T5_32], "t32-objw-d4": [*OBJW, *T5_32, "--flux-double", "4"], "t32-outline": [*OUTLINE, *T5_32]}
MAX_BYTES = 30_000_000  # issue 23: committed at <= 30 MB
PART = 15 * 1024 * 1024  # files come back at most 16 MiB each
SETUP_MARGIN = 200  # s past the VAE and transformer budgets: rendering, saving, 600 judged samples (the committed 505 s = 75 + 230 + 200)
PROGRESS_EVERY = 15  # s between rewrites of progress.txt


def command(name: str, folder: Path, args) -> list[str]:
    budget = ["--images", str(args.images), "--vae-codec-images", str(args.codec_images), "--vae-seconds", str(args.vae_seconds),
              "--transformer-seconds", str(args.transformer_seconds), "--transformer-steps", str(args.transformer_steps),
              "--workers", str(args.workers)]
    if args.smoke:
        budget = ["--images", "64", "--vae-codec-images", "0", "--vae-steps", "2", "--transformer-steps", "2", "--batch", "4",
                  "--workers", "1", "--eval", "2", "--device", "cpu"]
    return [sys.executable, "-m", "toyworld", "train-base", "--arch", "flux1", "--out", str(folder), *budget, *VARIANTS[name],
            *shlex.split(args.train_args)]


def shown(line: str) -> bool:
    """A log line worth showing: not a progress bar, not part of the report JSON printed last."""
    return bool(line.strip()) and "it/s]" not in line and not line.startswith((" ", "{", "}"))


def last_line(log: Path) -> str:
    """The log's last line worth showing, read from its tail."""
    if not log.exists():
        return "(no log yet)"
    with open(log, "rb") as f:
        f.seek(max(0, f.seek(0, 2) - 4096))
        lines = [ln for ln in f.read().decode(errors="replace").splitlines() if shown(ln)]
    return lines[-1] if lines else "(empty log)"


def write_progress(out: Path, procs: dict, t0: float, deadline: float) -> None:
    """progress.txt: "running" or "done", the time against the deadline, then per variant its
    state and last log line; written beside and renamed, so a poll never reads half a file."""
    running = [n for n, (p, _) in procs.items() if p.poll() is None]
    lines = [f"{'running' if running else 'done'}: {time.time() - t0:.0f} s of {deadline:.0f} s ({time.strftime('%H:%M:%S')} UTC)"]
    for name, (p, _) in procs.items():
        state = "running" if p.poll() is None else f"exit {p.returncode}"
        lines.append(f"{name} [{state}] {last_line(out / f'{name}.log')}")
    tmp = out / "progress.txt.tmp"
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, out / "progress.txt")


def row(name: str, report: dict | None) -> str:
    if not report:
        return f"| {name} | (no result) |"
    t, s, n = report["transformer"], report.get("samples", {}), report.get("samples_no_cfg", {})
    rt = report["vae"].get("shape_roundtrip", {}).get("roundtrip", {})
    pct = lambda d, k: f"{100 * d[k]:.1f}%" if k in d else "-"  # noqa: E731
    return (f"| {name} | {sum(report['params'].values()) / 1e6:.2f} M | {report['bytes'] / 1e6:.1f} MB | {report['vae']['steps']} | "
            f"{pct(rt, 'all')} | {t['steps']} | {t.get('images_per_second', 0):.0f} | {t['final_loss'] or 0:.4f} | {pct(s, 'shape')} | {pct(s, 'colour')} | "
            f"{pct(s, 'background')} | {pct(s, 'position')} | {'/'.join(pct(s.get('shape_by_size', {}), k) for k in ('small', 'medium', 'large'))} | "
            f"{pct(n, 'shape')} | {report['train_seconds']:.0f} s |")


def parse_args(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--work", default="/tmp/toy-flux-sweep")
    ap.add_argument("--variants", default="base,vae2,vae2-wide,vae2-objw", help=f"comma-separated, of {', '.join(VARIANTS)}")
    ap.add_argument("--images", type=int, default=60000)
    ap.add_argument("--codec-images", type=int, default=30000)
    ap.add_argument("--vae-seconds", type=float, default=75)
    ap.add_argument("--transformer-seconds", type=float, default=230)
    ap.add_argument("--transformer-steps", type=int, default=10_000_000, help="a step cap (the default leaves the time budget in charge)")
    ap.add_argument("--train-args", default="", help='more train-base flags for every variant, one string: --train-args="--fused-adam --batch 1024"')
    ap.add_argument("--workers", type=int, default=4, help="render processes per variant")
    ap.add_argument("--deadline", type=float, default=None,
                    help=f"seconds after which unfinished variants are stopped (default: VAE + transformer seconds + {SETUP_MARGIN})")
    ap.add_argument("--smoke", action="store_true")
    args = ap.parse_args(argv)
    unknown = [n for n in args.variants.split(",") if n not in VARIANTS]
    if unknown:
        ap.error(f"--variants: unknown {', '.join(unknown)} (known: {', '.join(VARIANTS)})")
    if args.deadline is None:
        args.deadline = args.vae_seconds + args.transformer_seconds + SETUP_MARGIN
    return args


def main() -> int:
    args = parse_args()
    deadline = args.deadline
    out, work = Path(args.out), Path(args.work)
    out.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "worker"), os.environ.get("PYTHONPATH", "")])}
    names = args.variants.split(",")
    t0, procs = time.time(), {}
    for name in names:
        log = open(out / f"{name}.log", "w")
        procs[name] = (subprocess.Popen(command(name, work / name, args), cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True), log)
    written = 0.0
    while any(p.poll() is None for p, _ in procs.values()) and time.time() - t0 < deadline:
        if time.time() - written >= PROGRESS_EVERY:
            write_progress(out, procs, t0, deadline)
            written = time.time()
        time.sleep(2)
    reports, lines = {}, []
    for name, (p, log) in procs.items():
        if p.poll() is None:  # past the deadline: stop this variant's process group (its render pool too)
            os.killpg(p.pid, 15)
            p.wait()
        log.close()
        tail = (out / f"{name}.log").read_text(errors="replace").splitlines()
        lines += [f"== {name} (exit {p.returncode}, {time.time() - t0:.0f} s)"] + [ln for ln in tail if shown(ln)][-40:]
        path = work / name / "toyworld.json"
        if p.returncode == 0 and path.exists():
            reports[name] = json.loads(path.read_text())
            (out / f"{name}.json").write_text(json.dumps(reports[name], indent=2))
    head = ("| variant | params | saved | VAE steps | VAE round-trip shape | transformer steps | images/s | final loss | shape (CFG 4) | "
            "colour | background | position | shape S/M/L (CFG 4) | shape (no CFG) | train time |\n|" + "---|" * 15)
    table = "\n".join([head] + [row(n, reports.get(n)) for n in names])
    (out / "logs.txt").write_text((f"train-args: {args.train_args}\n\n" if args.train_args else "") + table + "\n\n" + "\n".join(lines) + "\n")
    print(table)
    fits = [n for n in reports if reports[n]["bytes"] <= MAX_BYTES]
    if fits:
        best = max(fits, key=lambda n: reports[n].get("samples", {}).get("shape", 0))
        tar = work / f"best-{best}.tar"
        with tarfile.open(tar, "w") as tf:
            tf.add(work / best, arcname="toy-flux1")
        data = tar.read_bytes()
        if len(data) <= PART:
            (out / tar.name).write_bytes(data)
        else:
            for i in range(0, len(data), PART):
                (out / f"{tar.name}.{i // PART:02d}").write_bytes(data[i : i + PART])
        print(f"best: {best} ({len(data) / 2**20:.1f} MiB tar)")
    write_progress(out, procs, t0, deadline)  # "done" last: the results are all written
    return 0


if __name__ == "__main__":
    sys.exit(main())
