"""Does a random-weight T5-XXL encoder at FLUX.1's real shapes stay finite in bf16? (issue 22)

bench/peer-aitoolkit.py's FLUX.1 base gets its T5 from bench/gpu-wholerun.py's build_pipeline
(google/t5-v1_1-xxl's config: d_model 4096, d_ff 10240, 64 heads, 24 layers, gated-GELU; transformers'
own T5 init; built under default dtype bf16). This builds that encoder on the CPU, optionally saves
it and loads it back the way ai-toolkit does for `arch: flux` (T5EncoderModel.from_pretrained(...,
torch_dtype=bf16) then .to(bf16): toolkit/stable_diffusion_model.py L816-820 at 27a03a9), and runs
one caption padded to 512 tokens (ai-toolkit's encode_prompts_flux, toolkit/train_tools.py L553-564),
printing the largest |activation| after each block's attention and feed-forward and whether any
value is NaN/inf. Needs ~10 GB of RAM (20 GB with --roundtrip, one copy at a time on disk).
  OMP_NUM_THREADS=1 python bench/t5xxl-bf16-probe.py --layers 24 --tokens 512 [--roundtrip /tmp/t5]
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "worker"))

T5_XXL = dict(vocab_size=32128, d_model=4096, d_kv=64, d_ff=10240, num_heads=64, relative_attention_num_buckets=32,
              feed_forward_proj="gated-gelu", pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)


def build(layers: int, shapes: dict):
    import torch
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(0)
    prev = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)  # as build_pipeline does
    try:
        return T5EncoderModel(T5Config(num_layers=layers, **shapes)).eval()
    finally:
        torch.set_default_dtype(prev)


def probe(model, ids) -> dict:
    """Largest |value| after each block's attention and feed-forward; finite or not."""
    import torch

    rows = []

    def hook(name):
        def f(_mod, _inp, out):
            h = (out[0] if isinstance(out, tuple) else out).float()
            rows.append({"at": name, "max_abs": float(h.abs().max()), "finite": bool(torch.isfinite(h).all())})
        return f

    for i, block in enumerate(model.encoder.block):
        block.layer[0].register_forward_hook(hook(f"block{i}.attention"))
        block.layer[1].register_forward_hook(hook(f"block{i}.feed_forward"))
    with torch.no_grad():
        out = model(ids)[0].float()
    return {"blocks": rows, "output_max_abs": float(out.abs().max()), "output_finite": bool(torch.isfinite(out).all()),
            "dtypes": sorted({str(p.dtype) for p in model.parameters()})}


def main(argv=None) -> int:
    import torch
    import transformers

    from loraspec_worker import tiny_base

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layers", type=int, default=24)
    ap.add_argument("--tokens", type=int, default=512)
    ap.add_argument("--roundtrip", help="save to this folder and load back as ai-toolkit does")
    ap.add_argument("--tiny", action="store_true", help="d_model 32 (tests)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    shapes = {**T5_XXL, **(dict(d_model=32, d_kv=8, d_ff=37, num_heads=4) if args.tiny else {})}
    t0 = time.perf_counter()
    model = build(args.layers, shapes)
    built_s = time.perf_counter() - t0
    if args.roundtrip:
        from transformers import T5EncoderModel

        model.save_pretrained(args.roundtrip, safe_serialization=True)
        del model
        gc.collect()
        model = T5EncoderModel.from_pretrained(args.roundtrip, torch_dtype=torch.bfloat16).to(dtype=torch.bfloat16).eval()
    tok = tiny_base.t5_tokenizer()
    ids = tok(["a photo of txcl, view 0"], padding="max_length", max_length=args.tokens, truncation=True, return_tensors="pt").input_ids
    t1 = time.perf_counter()
    out = probe(model, ids)
    out.update(layers=args.layers, tokens=args.tokens, d_model=shapes["d_model"], d_ff=shapes["d_ff"], heads=shapes["num_heads"],
               roundtrip=bool(args.roundtrip), built_s=round(built_s, 1), forward_s=round(time.perf_counter() - t1, 1),
               torch=torch.__version__, transformers=transformers.__version__)
    print(json.dumps(out))
    return 0 if out["output_finite"] else 1


if __name__ == "__main__":
    sys.exit(main())
