"""The like-for-like table of issue 22: the built-in trainer against its peers measured in the SAME lease.

Reads the rows one GPU lease wrote (bench/same-lease.md has the calls): the built-in trainer's
(`bench/gpu-speed.py` stdout, one JSON object a line, `--targets all-linear`), Kohya sd-scripts'
(`bench/peer-kohya.py`'s peer-kohya.jsonl) and ai-toolkit's (`bench/peer-aitoolkit.py`'s peer-aitoolkit.jsonl),
and writes one table row per (model, peer): the peer's steady s/step (steps 20-60) and median, its LoRA modules
and peak, the built-in eager and fastest rows of the same model (every linear of the blocks, no checkpointing,
batch 1; fastest = the quickest row whose loss check passed and, for a CUDA-graph row, whose graph was
captured), and the ratios peer / built-in (above 1: the built-in trainer is faster). A peer row that is not
a timing (non-zero exit, fewer steps than asked, NaN losses, marked invalid) or a model with no built-in row
in the files gets no ratio, and says why. ai-toolkit's fp8 rows are memory rows: not in this table.

  python3 bench/peer-table.py --lease "H200, 2026-12-04 08:00-08:22 UTC" --ours gpu-speed.jsonl \
      --kohya peer-kohya.jsonl --aitk peer-aitoolkit.jsonl [--md table.md] [--write]
--write puts the rows into bench/RESULTS.md between the peer-lease markers (rows of earlier leases kept;
atomic write); the block is added before "## Selective checkpointing" the first time.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from results_md import put_section, section_lines  # noqa: E402

RESULTS = ROOT / "bench" / "RESULTS.md"
START = "<!-- peer-lease:start (written by bench/peer-table.py) -->"
END = "<!-- peer-lease:end -->"
ANCHOR = "## Selective checkpointing"
LABEL = {"sdxl": "SDXL", "flux1": "FLUX.1 [dev]", "klein4b": "FLUX.2 [klein] 4B", "klein9b": "FLUX.2 [klein] 9B"}
PEERS = {"kohya": "Kohya sd-scripts v0.10.1 (ae72efb)", "aitk": "ai-toolkit 0.12.26 (27a03a9)"}
HEADER = ["| lease | model | peer | peer LoRA modules | peer s/step (steady 20-60; median) | peer peak GiB | built-in modules | "
          "built-in eager s/step | built-in fastest s/step (levers) | built-in peak GiB (fastest) | ratio, fastest | ratio, eager | goal 2x | "
          "built-in fastest ÷ floor |",
          "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]


class RowsError(ValueError):
    """A rows file that cannot be read: names the file and the line."""


def read_rows(path: str) -> list[dict]:
    rows = []
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        line = line.strip()
        if not line.startswith("{"):
            continue  # gpu-speed's stdout also carries log text
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as e:
            raise RowsError(f"E_BENCH_ROWS: {path} line {n}: not JSON ({e.msg})") from e
    return rows


def modules_of(row: dict) -> int | None:
    """The peer's LoRA module count from its log line(s); Kohya's text-encoder modules are not trained (unet only)."""
    found = row.get("lora_modules")
    if isinstance(found, int):
        return found
    texts = found if isinstance(found, list) else [found or ""]
    counts = [int(m.group(1)) for t in texts if "Text Encoder" not in t for m in [re.search(r"(\d+)\D*$", t)] if m]
    return counts[0] if counts else None


def peer_problem(row: dict, steps: int | None = None) -> str | None:
    """Why a peer row is no timing, or None."""
    if "skipped" in row:
        return f"skipped ({row['skipped']})"
    if row.get("build_rc") not in (0, None):
        return f"base build failed (rc {row['build_rc']})"
    if row.get("train_rc") != 0:
        return f"training exited {row.get('train_rc')}"
    if row.get("invalid"):
        return str(row["invalid"])
    if row.get("steady_s_per_step") is None:
        return "no steady window in its log"
    if row["steady_s_per_step"] <= 0:  # bar lines out of order: another bar read as steps
        return f"steady s/step {row['steady_s_per_step']:.3f} is not a time"
    want = steps or row.get("steps")
    if want and row.get("steps_seen", 0) < want:
        return f"{row.get('steps_seen', 0)} of {want} steps seen"
    return None


def ours_by_model(rows: list[dict]) -> dict[str, dict]:
    """Per model: the built-in eager row and the fastest valid row, all-linear, no checkpointing, batch 1."""
    out: dict[str, dict] = {}
    for r in rows:
        if "model" not in r or r.get("s_per_step") is None or "error" in r or r.get("processes", 1) != 1:
            continue
        if r.get("targets") != "all-linear" or r.get("gradient_checkpointing") or r.get("batch", 1) != 1 or r.get("network_type", "lora") != "lora":
            continue
        slot = out.setdefault(r["model"], {})
        if r.get("config") == "eager":
            slot["eager"] = r
            continue
        if r.get("loss_check") != "pass" or r.get("graph_captured") is False:
            continue
        if "fastest" not in slot or r["s_per_step"] < slot["fastest"]["s_per_step"]:
            slot["fastest"] = r
    for slot in out.values():  # eager may be the fastest there is
        if "fastest" not in slot and "eager" in slot:
            slot["fastest"] = slot["eager"]
    return out


def f3(x) -> str:
    return "-" if x is None else f"{x:.3f}"


def f1(x) -> str:
    return "-" if x is None else f"{x:.1f}"


def table_rows(lease: str, ours: list[dict], peers: dict[str, list[dict]], goal: float = 2.0) -> list[str]:
    mine = ours_by_model(ours)
    lines = []
    for peer, rows in peers.items():
        for r in rows:
            model = r.get("model", "")
            if model.endswith("-fp8"):
                continue
            label = LABEL.get(model, model)
            o = mine.get(model, {})
            fast, eager = o.get("fastest"), o.get("eager")
            problem = peer_problem(r)
            peer_time = "-" if problem else f"{f3(r['steady_s_per_step'])} ({f3(r.get('median_s_per_step'))})"
            # the attention kernel is a process-wide setting (gpu-speed.py --attention), not one of the row's levers
            kernel = ["FlashAttention-4"] if fast and fast.get("attention") == "fa4" else []
            levers = ", ".join((fast.get("levers") or ["eager"]) + kernel) if fast else ""
            built = [str(fast.get("lora_modules", "-")) if fast else "-", f3(eager and eager["s_per_step"]),
                     f"{f3(fast['s_per_step'])} ({levers})" if fast else "-", f1(fast and fast.get("peak_alloc_gib"))]
            if problem:
                ratio, ratio_e, verdict = f"no ratio: {problem}", "-", "-"
            elif not fast:
                ratio, ratio_e, verdict = "no ratio: no built-in all-linear row in this lease", "-", "-"
            else:
                rf = r["steady_s_per_step"] / fast["s_per_step"]
                ratio, verdict = f"**{rf:.2f}x**", ("met" if rf >= goal else "not met")
                ratio_e = f"{r['steady_s_per_step'] / eager['s_per_step']:.2f}x" if eager else "-"
            lines.append(f"| {lease} | {label} | {PEERS[peer]} | {modules_of(r) or '-'} | {peer_time} | {f1(r.get('peak_alloc_gib'))} | "
                         + " | ".join(built) + f" | {ratio} | {ratio_e} | {verdict} | {floor_ratio(fast)} |")
    return lines


def floor_ratio(fast: dict | None) -> str:
    """The fastest row's s/step over its counted floor (gpu-speed's floor_s: the step's FLOPs at the card's measured bf16 GEMM rate)."""
    if not fast or not fast.get("floor_s"):
        return "-"
    return f"{fast['s_per_step'] / fast['floor_s']:.2f}x"


def write_results(lines: list[str], path: Path = RESULTS) -> None:
    """Replaces the block between the markers (keeping earlier leases' rows; a row already there is not
    repeated), or adds it before ANCHOR; written to a temporary file and renamed over the old one."""
    text = path.read_text()
    old = section_lines(text, START, END)
    keep = [line for line in old if line.startswith("| ") and not line.startswith("| lease") and line not in lines]
    intro = ("### Like for like in one lease (issue 22): the built-in trainer against its peers", "",
             "Written by `bench/peer-table.py` from one lease's rows (`bench/same-lease.md`). Every linear of the blocks on "
             "both sides (`--targets all-linear`; the peers' own default module sets), 1024², batch 1, rank 16, AdamW, bf16, "
             "no checkpointing, cached latents and text outputs. Ratio = peer s/step / built-in s/step (above 1: built-in faster).", "")
    put_section(path, START, END, "\n".join([START, *intro, *HEADER, *keep, *lines, END]), before=ANCHOR)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lease", required=True, help='the lease, as the table shows it: "H200, 2026-12-04 08:00-08:22 UTC"')
    ap.add_argument("--ours", action="append", required=True, help="gpu-speed.py's rows (stdout), --targets all-linear")
    ap.add_argument("--kohya", action="append", default=[], help="peer-kohya.jsonl")
    ap.add_argument("--aitk", action="append", default=[], help="peer-aitoolkit.jsonl")
    ap.add_argument("--goal", type=float, default=2.0)
    ap.add_argument("--md", help="also write the table alone to this file")
    ap.add_argument("--write", action="store_true", help="write the rows into bench/RESULTS.md")
    args = ap.parse_args(argv)
    try:
        ours = [r for p in args.ours for r in read_rows(p)]
        peers = {"kohya": [r for p in args.kohya for r in read_rows(p)], "aitk": [r for p in args.aitk for r in read_rows(p)]}
    except (RowsError, OSError) as e:
        print(e)
        return 2
    lines = table_rows(args.lease, ours, peers, args.goal)
    print("\n".join(HEADER + lines))
    if args.md:
        Path(args.md).write_text("\n".join(HEADER + lines) + "\n")
    if args.write:
        write_results(lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
