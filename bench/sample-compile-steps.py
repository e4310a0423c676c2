"""Does a sample through the compiled blocks slow the training steps after it? (issue 22, sample_merge "compiled")

The trainer's FLUX.1 arch over a small transformer (real diffusers classes, `--double` + `--single` blocks at tiny
widths), its blocks compiled as the trainer compiles them (speed.compile_blocks), LoRA on the attention preset:
`--steps` training steps timed, then `--samples` no_grad eval forwards (the LoRA path through the compiled blocks,
or force_eager as every other sample mode), then `--steps` more. Prints one JSON row: the median step before and
after, the sample forwards' seconds and what Dynamo compiled (frames, graphs, recompile reasons).

  OMP_NUM_THREADS=1 PYTHONPATH=worker:worker/tests worker/.venv/bin/python bench/sample-compile-steps.py --mode compiled
"""

from __future__ import annotations

import argparse
import json
import statistics
import time


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=["compiled", "eager"], default="compiled")
    ap.add_argument("--backend", default="inductor", help="Dynamo backend (aot_eager: no kernel compiler)")
    ap.add_argument("--double", type=int, default=2)
    ap.add_argument("--single", type=int, default=4)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--samples", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from loraspec_worker import speed
    from loraspec_worker.train import compile_cache
    from loraspec_worker.train.samples import _eager
    from test_regional_compile import tiny_flux
    from test_sample_merge_flux import inputs

    torch._dynamo.reset()
    arch = tiny_flux(args.double, args.single)
    speed.compile_blocks(arch.denoiser, backend=args.backend)
    params = [p for p in arch.denoiser.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-3)
    g = torch.Generator().manual_seed(1)
    latents = torch.randn(1, 4, 8, 8, generator=g)
    text = {"embeds": torch.randn(1, 8, 32, generator=g), "pooled": torch.randn(1, 32, generator=g), "text_ids": torch.zeros(8, 3)}

    def steps(n: int, first: int) -> list[float]:
        out = []
        for s in range(first, first + n):
            t = time.perf_counter()
            opt.zero_grad()
            loss = arch.loss(latents, text, {}, torch.Generator().manual_seed(s))
            loss.backward()
            opt.step()
            out.append(time.perf_counter() - t)
        return out

    t = time.perf_counter()
    steps(3, 0)  # compile
    warm = time.perf_counter() - t
    before = steps(args.steps, 3)
    arch.denoiser.eval()
    t = time.perf_counter()
    with (_eager() if args.mode == "eager" else torch.no_grad()), torch.no_grad():
        for _ in range(args.samples):
            arch.denoiser(**inputs())
    sample_s = time.perf_counter() - t
    arch.denoiser.train()
    after = steps(args.steps, 3 + args.steps)
    r = compile_cache.report()
    print(json.dumps({"mode": args.mode, "backend": args.backend, "blocks": [args.double, args.single], "compile_s": round(warm, 2),
                      "median_step_before_ms": round(1e3 * statistics.median(before), 3), "median_step_after_ms": round(1e3 * statistics.median(after), 3),
                      "after_over_before": round(statistics.median(after) / statistics.median(before), 3), "sample_forwards_s": round(sample_s, 2),
                      "frames": r["frames"], "graphs": r["graphs"], "recompiles": r["recompiles"]}))


if __name__ == "__main__":
    main()
