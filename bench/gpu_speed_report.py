"""The markdown table of bench/gpu-speed.py's rows (--md FILE)."""


def ckpt_label(r: dict) -> str:
    c = r["gradient_checkpointing"]
    return c if isinstance(c, str) and c.startswith("selective") else "yes" if c else "no"


def markdown(rows: list[dict], tflops: float, card: str, context_gib: float) -> str:
    out = ["| model | ckpt | batch | config | s/step | s/image | peak GiB (alloc / reserved+ctx) | floor s/step | ÷ floor | vs eager | loss check (mean / max rel. diff) |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r.get("graph_captured") is False:
            r = {**r, "config": r["config"] + " (capture FAILED: eager steps)"}
        if "error" in r:
            out.append(f"| {r['label']} | {ckpt_label(r)} | {r['batch']} | {r['config']} | error: {r['error'][:80]} | | | | | | |")
            continue
        floor = r["flops_per_step"] / (tflops * 1e12) if r.get("flops_per_step") else None
        eager = r.get("eager_s_per_step")
        out.append("| {} | {} | {} | {} | {:.3f} | {:.3f} | {:.1f} / {:.1f} | {} | {} | {} | {} |".format(
            r["label"], ckpt_label(r), r["batch"], r["config"], r["s_per_step"],
            r["s_per_step"] / r["batch"], r.get("peak_alloc_gib", 0), r.get("peak_reserved_gib", 0) + context_gib,
            f"{floor:.3f}" if floor else "-", f"{r['s_per_step'] / floor:.2f}x" if floor else "-",
            (f"{r['throughput_ratio']:.2f}x the images/s of 1 GPU" if r.get("throughput_ratio") else
             f"{r['vs_lora']:.2f}x LoRA's s/step, peak {r.get('peak_minus_lora_gib', 0):+.1f} GiB" if r.get("vs_lora") else
             f"{eager / r['s_per_step']:.2f}x faster" if eager and r["config"] != "eager" else "1.00"),
            f"{r['loss_check']} ({r['loss_mean_rel_diff']:.2%} / {r['loss_max_rel_diff']:.2%})" if "loss_check" in r else
            "(another adapter)" if r.get("network_type", "lora") != "lora" else "(reference)"))
    out.append("")
    out.append(f"Card: {card}; bf16 GEMM measured {tflops:.0f} TFLOP/s (8192^3, best of 20) = the floor's rate; CUDA context {context_gib:.2f} GiB.")
    return "\n".join(out)
