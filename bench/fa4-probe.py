"""FlashAttention-4 (flash-attn-4, CuTe DSL kernels) against torch's own flash kernel, at the attention
shapes of the built-in trainer's arches, forward + backward (issue 22: FLUX.1's remaining gap is attention).

On a CUDA machine with the flash-attn-4 wheels importable (see bench/RESULTS.md "FlashAttention-4" for how they
travel to the GPU machine):
    python3 bench/fa4-probe.py [--iters 30] [--jsonl out.jsonl]

Per shape: torch's flash SDPA kernel (the trainer's attention today), then the same SDPA call after
`torch.nn.attention.activate_flash_attention_impl("FA4")` (torch's registry routes SDPA's flash kernel to
flash_attn.cute), else flash_attn.cute's own function when this torch has no registry. Times are CUDA-event means of
fwd+bwd after warm-up; `max_diff` is the output's and q's gradient's largest absolute difference from torch's kernel.
Then the two things the trainer needs beyond eager calls: SDPA under torch.compile and inside a CUDA graph capture.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "worker"))

# (name, batch, heads, q_len, kv_len, head_dim): FLUX.1 [dev] and FLUX.2 klein at 1024^2 with T5/Qwen 512 text
# tokens (joint attention), SDXL's self-attention at its two resolutions and its cross-attention (77 text tokens).
SHAPES = [
    ("flux1-joint", 1, 24, 4608, 4608, 128),
    ("klein4b-joint", 1, 24, 4608, 4608, 128),
    ("sdxl-self-64", 1, 10, 4096, 4096, 64),
    ("sdxl-self-32", 1, 20, 1024, 1024, 64),
    ("sdxl-cross-64", 1, 10, 4096, 77, 64),
]


def timed(fn, iters: int):
    import torch

    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(iters):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / iters / 1000.0


def inputs(b, h, lq, lk, d, seed=0):
    import torch

    g = torch.Generator(device="cuda").manual_seed(seed)
    # The trainer's layout: (B, L, H, D) projections viewed as (B, H, L, D) for SDPA.
    q = torch.randn(b, lq, h, d, device="cuda", dtype=torch.bfloat16, generator=g).transpose(1, 2).requires_grad_()
    k = torch.randn(b, lk, h, d, device="cuda", dtype=torch.bfloat16, generator=g).transpose(1, 2).requires_grad_()
    v = torch.randn(b, lk, h, d, device="cuda", dtype=torch.bfloat16, generator=g).transpose(1, 2).requires_grad_()
    grad = torch.randn(b, h, lq, d, device="cuda", dtype=torch.bfloat16, generator=g)
    return q, k, v, grad


def sdpa_step(q, k, v, grad):
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
        out = F.scaled_dot_product_attention(q, k, v)
    q.grad = k.grad = v.grad = None
    out.backward(grad)
    return out


def flops(b, h, lq, lk, d):
    fwd = 4 * b * h * lq * lk * d
    return fwd, 2.5 * fwd


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--jsonl", default="")
    args = ap.parse_args()
    import torch
    import torch.nn.attention as attn

    torch.backends.cuda.enable_cudnn_sdp(False)
    rows = []
    info = {"torch": torch.__version__, "device": torch.cuda.get_device_name(0),
            "capability": list(torch.cuda.get_device_capability(0)),
            "registry": hasattr(attn, "activate_flash_attention_impl")}
    if info["registry"]:
        info["impls"] = list(attn.list_flash_attention_impls())
    t0 = time.time()
    try:
        importlib.import_module("flash_attn.cute")  # the import is what is timed

        info["fa4_import_s"] = round(time.time() - t0, 2)
        info["fa4_version"] = getattr(sys.modules.get("flash_attn"), "__version__", "?")
    except Exception as exc:  # the probe reports; it does not stop at the first missing piece
        info["fa4_import_error"] = f"{type(exc).__name__}: {exc}"
    print(json.dumps(info), flush=True)

    reference = {}
    for name, b, h, lq, lk, d in SHAPES:
        q, k, v, grad = inputs(b, h, lq, lk, d)
        out = sdpa_step(q, k, v, grad)
        reference[name] = (out.detach().clone(), q.grad.detach().clone())
        s = timed(lambda: sdpa_step(q, k, v, grad), args.iters)
        f, bwd = flops(b, h, lq, lk, d)
        rows.append({"shape": name, "impl": "torch-flash", "s_fwd_bwd": s, "tflops": (f + bwd) / s / 1e12})
        print(json.dumps(rows[-1]), flush=True)

    mode = None
    if "fa4_import_error" not in info and info["registry"] and "FA4" in info.get("impls", []):
        try:
            t0 = time.time()
            from loraspec_worker.train.attention import register_and_activate  # the trainer's shim and activation

            register_and_activate()
            mode = "torch-registry-fa4"
            print(json.dumps({"activated": mode, "s": round(time.time() - t0, 2)}), flush=True)
        except Exception as exc:
            print(json.dumps({"activate_error": f"{type(exc).__name__}: {exc}"}), flush=True)
    if mode is None and "fa4_import_error" not in info:
        mode = "fa4-direct"
    for name, b, h, lq, lk, d in SHAPES if mode else []:
        q, k, v, grad = inputs(b, h, lq, lk, d)
        try:
            t0 = time.time()
            if mode == "torch-registry-fa4":
                step = lambda: sdpa_step(q, k, v, grad)  # noqa: E731
            else:
                from flash_attn.cute import flash_attn_func

                qd, kd, vd = (t.detach().transpose(1, 2).requires_grad_() for t in (q, k, v))

                def step():
                    res = flash_attn_func(qd, kd, vd)
                    o = res[0] if isinstance(res, tuple) else res
                    qd.grad = None
                    o.backward(grad.transpose(1, 2))
                    return o.transpose(1, 2)
            out = step()
            first = time.time() - t0
            ref_out, ref_dq = reference[name]
            dq = q.grad if mode == "torch-registry-fa4" else qd.grad.transpose(1, 2)
            diff = max((out.float() - ref_out.float()).abs().max().item(), (dq.float() - ref_dq.float()).abs().max().item())
            s = timed(step, args.iters)
            f, bwd = flops(b, h, lq, lk, d)
            rows.append({"shape": name, "impl": mode, "s_fwd_bwd": s, "tflops": (f + bwd) / s / 1e12,
                         "first_call_s": round(first, 2), "max_diff": diff})
        except Exception as exc:
            rows.append({"shape": name, "impl": mode, "error": f"{type(exc).__name__}: {str(exc)[:400]}"})
        print(json.dumps(rows[-1]), flush=True)

    if mode == "torch-registry-fa4":
        rows.extend(compiled_and_graphed())
    if args.jsonl:
        with open(args.jsonl, "a") as f:
            for r in rows:
                f.write(json.dumps({**info, **r}) + "\n")
    return 0


def compiled_and_graphed() -> list[dict]:
    """SDPA inside torch.compile and inside a CUDA graph capture, with FA4 active: does it still route to FA4?"""
    import torch

    out = []
    q, k, v, grad = inputs(1, 24, 4608, 4608, 128, seed=1)
    try:
        fn = torch.compile(lambda q, k, v: torch.nn.functional.scaled_dot_product_attention(q, k, v))

        def step():
            o = fn(q, k, v)
            q.grad = None
            o.backward(grad)

        t0 = time.time()
        step()
        out.append({"check": "compile", "first_s": round(time.time() - t0, 1), "s_fwd_bwd": timed(step, 20)})
    except Exception as exc:
        out.append({"check": "compile", "error": f"{type(exc).__name__}: {str(exc)[:400]}"})
    print(json.dumps(out[-1]), flush=True)
    try:
        for t in (q, k, v):
            t.grad = torch.zeros_like(t)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                o = torch.nn.functional.scaled_dot_product_attention(q, k, v)
                o.backward(grad)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            o = torch.nn.functional.scaled_dot_product_attention(q, k, v)
            o.backward(grad)
        graph.replay()
        torch.cuda.synchronize()
        out.append({"check": "cuda_graph", "captured": True, "s_replay": timed(graph.replay, 20)})
    except Exception as exc:
        out.append({"check": "cuda_graph", "error": f"{type(exc).__name__}: {str(exc)[:400]}"})
    print(json.dumps(out[-1]), flush=True)
    return out


if __name__ == "__main__":
    sys.exit(main())
