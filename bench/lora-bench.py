"""Python baselines for bench/lora-bench.ts (run with the worker venv).

usage: lora-bench.py convert IN OUT         diffusers' own kohya -> diffusers FLUX.1 conversion, file to file
       lora-bench.py cat OUT IN1 IN2 IN3    a torch cat merge (A = cat(w A), B = [B...]) of kohya files, file to file
Prints the seconds spent (load + convert + save + fsync, imports excluded) as JSON.
"""
import json
import os
import sys
import time

import torch
from safetensors.torch import load_file, save_file


def main():
    mode = sys.argv[1]
    if mode == "convert":
        # Imported before the clock starts, like torch and safetensors: the in-process figure is the
        # file-to-file work on both sides (loraspec's is timed after its modules are loaded).
        from diffusers.loaders.lora_conversion_utils import _convert_kohya_flux_lora_to_diffusers
    t0 = time.perf_counter()
    if mode == "convert":
        sd = load_file(sys.argv[2])
        out = _convert_kohya_flux_lora_to_diffusers(sd)
        # diffusers shares one A tensor across q/k/v; safetensors refuses shared storage, so copy repeats.
        seen, fixed = set(), {}
        for k, v in out.items():
            v = v.contiguous()
            fixed[k] = v.clone() if v.data_ptr() in seen else v
            seen.add(v.data_ptr())
        save_file(fixed, sys.argv[3])
    elif mode == "cat":
        files = [load_file(p) for p in sys.argv[3:]]
        w = 1.0 / len(files)
        out = {}
        for stem in [k[: -len(".lora_down.weight")] for k in files[0] if k.endswith(".lora_down.weight")]:
            downs, ups = [], []
            for f in files:
                d, u = f[stem + ".lora_down.weight"], f[stem + ".lora_up.weight"]
                a = float(f[stem + ".alpha"]) if stem + ".alpha" in f else d.shape[0]
                downs.append(d * (w * a / d.shape[0]))
                ups.append(u)
            out[stem + ".lora_down.weight"] = torch.cat(downs, 0)
            out[stem + ".lora_up.weight"] = torch.cat(ups, 1)
            out[stem + ".alpha"] = torch.tensor(float(out[stem + ".lora_down.weight"].shape[0]), dtype=downs[0].dtype)
        save_file(out, sys.argv[2])
    fd = os.open(sys.argv[2] if mode == "cat" else sys.argv[3], os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)
    print(json.dumps({"seconds": time.perf_counter() - t0}))


if __name__ == "__main__":
    main()
