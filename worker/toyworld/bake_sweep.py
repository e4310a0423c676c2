"""Issue 23's FLUX.1 style half on the GPU: the style's bake chosen on LoRAs trained as the GPU test trains them.

The FLUX.1 bake was first chosen on fp32 CPU-trained LoRAs (x4.5); on the GPU (bf16) the stack kept 70% of both
concepts in 2 of 4 fixture runs (bench/RESULTS.md, "Reading the character under the style"); this sweep chose the
style set (`--style-concepts`) and bake the recipe now has (stack.STYLE_CONCEPT, STYLE_BAKE). This trains, for
each training seed and precision (and `repeats` times, to see bf16's run-to-run spread), the good txcl
(bind_probe.BINDING, as the test) and the style unbaked (stack.train_style, bake 1), all side by side (lanes.py);
then, for each bake of the style, `stack.measure` on each sampling pool, one process per trained pair. Rows go
to <out>/rows.jsonl as they finish; the table to stdout.

On the GPU machine:  PYTHONPATH=worker python3 -m toyworld.bake_sweep --out /tmp/sweep
"""

from __future__ import annotations

import argparse
import json
import os

from . import lanes, rubric, stack

FIRST_SET = "style-character"  # rows without a `concept` (the sweeps before --style-concepts) trained on this set


def _pair(out: str, seed: int, precision: str, device: str, steps: int | None, style_targets: list | None = None,
          concept: str = stack.STYLE_CONCEPT["flux1"]) -> dict:
    """One trained pair's jobs: the good txcl and the unbaked style (on `style_targets`, default the arch's preset;
    its dataset the `concept` set)."""
    good = next(v for v in rubric.VARIANTS if v.name == "good")
    short = {"steps": steps} if steps else {}
    return {
        "txcl": (rubric.train_variant, (good, os.path.join(out, "txcl")),
                 {"seed": seed, "arch": "flux1", "device": device, "precision": precision, "prior_steps": 28 if not steps else 2, **short}),
        "txst": (stack.train_style, (os.path.join(out, "txst"),),
                 {"seed": seed, "arch": "flux1", "device": device, "precision": precision, "bake_factor": 1, "targets": style_targets,
                  "concept": concept, **short}),
    }


def _row(result: dict, key: dict) -> dict:
    shares, pair = result["shares"], result["pair"]
    n = 8 * len(result["seeds"])
    count = lambda label, concept: round(shares[label][concept] * n)  # noqa: E731
    return {**key, "n": n,
            "style_alone": count("txst alone", "txst"), "style_base": count("base", "txst"),
            "style_on_cross": count("txst alone, the character's object named", "txst"),
            "style_stacked": count("stack", "txst"), "style_retention": pair["txst"]["retention"],
            "cyan_alone": count("txcl alone", "txcl"), "cyan_stacked": count("stack", "txcl"),
            "cyan_retention": pair["txcl"]["retention"]}


def measure_pair(loras: dict, key: dict, bakes, pools, device: str, precision: str, rows_path: str, render_steps: int | None) -> list:
    """Each bake x pool of one trained pair, appended to rows_path as they come."""
    rows = []
    for bake in bakes:
        style = stack.bake(loras["txst"], bake) if bake != 1 else loras["txst"]
        for pool in pools:
            result = stack.measure({"txcl": loras["txcl"], "txst": style}, seeds=pool, steps=render_steps, arch="flux1",
                                   device=device, precision=precision)
            row = _row(result, {**key, "bake": bake, "pool": f"{pool[0]}-{pool[-1]}"})
            rows.append(row)
            with open(rows_path, "a") as f:
                f.write(json.dumps(row) + "\n")
    return rows


def run(out: str, seeds=(1, 2, 3), precisions=("bf16", "fp32"), repeats: int = 1, bakes=(3.0, 3.5, 4.0, 4.5, 5.0),
        pools=((0, 1, 2, 3), (4, 5, 6, 7)), device: str = "cuda", steps: int | None = None,
        render_steps: int | None = None, style_targets: list | None = None, concepts=(stack.STYLE_CONCEPT["flux1"],)) -> list:
    keys = [{"concept": c, "train_seed": s, "precision": p, "repeat": r} for c in concepts for s in seeds for p in precisions
            for r in range(repeats) if r == 0 or p == "bf16"]  # fp32 repeats itself; bf16 kernels do not
    folders = {os.path.join(out, f"{k['concept']}-s{k['train_seed']}-{k['precision']}-r{k['repeat']}"): k for k in keys}
    jobs = {f"{name}|{folder}": job for folder, k in folders.items()
            for name, job in _pair(folder, k["train_seed"], k["precision"], device, steps, style_targets, k["concept"]).items()}
    trained = lanes.in_processes(jobs, len(jobs))
    rows_path = os.path.join(out, "rows.jsonl")
    measures = {folder: (measure_pair, ({n: trained[f"{n}|{folder}"] for n in ("txcl", "txst")}, k, bakes, pools, device, k["precision"],
                                         rows_path, render_steps), {})
                for folder, k in folders.items()}
    done = lanes.in_processes(measures, len(measures))
    return [row for rows in done.values() for row in rows]


def meets(r: dict) -> bool:
    """The GPU test's bar on one row: the style alone >= a quarter of the samples above the base, both retentions >= 0.7."""
    return r["style_alone"] - r["style_base"] >= r["n"] / 4 and (r["style_retention"] or 0) >= 0.7 and (r["cyan_retention"] or 0) >= 0.7


def summary(rows: list) -> list:
    """Per (concept, bake): how many rows meet the bar and the mean retentions, best first (most rows meeting, then
    the higher of the two mean retentions' minimum)."""
    groups: dict = {}
    for r in rows:
        groups.setdefault((r.get("concept", FIRST_SET), r["bake"]), []).append(r)
    mean = lambda g, k: sum(r[k] or 0 for r in g) / len(g)  # noqa: E731
    out = [{"concept": c, "bake": b, "rows": len(g), "meets": sum(meets(r) for r in g),
            "style_retention": round(mean(g, "style_retention"), 3), "cyan_retention": round(mean(g, "cyan_retention"), 3)}
           for (c, b), g in groups.items()]
    return sorted(out, key=lambda s: (-s["meets"] / s["rows"], -min(s["style_retention"], s["cyan_retention"])))


def table(rows: list) -> str:
    head = "| concept | seed | precision | repeat | bake | pool | style alone (base) | on cross | stacked | style ret. | cyan alone / stacked | cyan ret. | meets |"
    lines = [head, "|" + "---|" * 13]
    for r in sorted(rows, key=lambda r: (r.get("concept", ""), r["precision"], r["bake"], r["train_seed"], r["repeat"], r["pool"])):
        fmt = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
        lines.append(f"| {r.get('concept', FIRST_SET)} | {r['train_seed']} | {r['precision']} | {r['repeat']} | x{r['bake']:g} | {r['pool']} | {r['style_alone']} ({r['style_base']}) "
                     f"| {r['style_on_cross']} | {r['style_stacked']} | {fmt(r['style_retention'])} | {r['cyan_alone']} / {r['cyan_stacked']} "
                     f"| {fmt(r['cyan_retention'])} | {'**yes**' if meets(r) else 'no'} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--precisions", default="bf16,fp32")
    ap.add_argument("--repeats", type=int, default=1, help="bf16 pairs trained this many times per seed")
    ap.add_argument("--bakes", default="3,3.5,4,4.5,5")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--steps", type=int, default=None, help="training steps (a smoke test; default: the recipes')")
    ap.add_argument("--render-steps", type=int, default=None)
    ap.add_argument("--pools", default="0-3,4-7")
    ap.add_argument("--style-targets", default=None, help="comma-separated module patterns for the style (default: the arch's attention preset)")
    ap.add_argument("--style-concepts", default=stack.STYLE_CONCEPT["flux1"], help="comma-separated style datasets (concepts.py CHARACTER_EVERY's names)")
    a = ap.parse_args()
    pools = [tuple(range(int(p.split("-")[0]), int(p.split("-")[1]) + 1)) for p in a.pools.split(",")]
    os.makedirs(a.out, exist_ok=True)
    rows = run(a.out, [int(s) for s in a.seeds.split(",")], a.precisions.split(","), a.repeats,
               [float(b) for b in a.bakes.split(",")], pools, a.device, a.steps, a.render_steps,
               a.style_targets.split(",") if a.style_targets else None, a.style_concepts.split(","))
    print(table(rows))
    best = summary(rows)
    print("\n".join(json.dumps(b) for b in best))
    with open(os.path.join(a.out, "summary.json"), "w") as f:
        json.dump(best, f, indent=1)


if __name__ == "__main__":
    main()
