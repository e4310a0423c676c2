"""Oracle: the relative delta error of a merged kohya-layout LoRA against the exact weighted sum of its inputs.

usage: merge_delta_error.py MERGED IN1:W1 IN2:W2 ...
Dense float64 deltas with numpy, per module stem: delta = (alpha / r) * up @ down (conv flattened; no alpha: scale 1),
exact = sum_i w_i delta_i, error = sqrt(sum ||merged - exact||_F^2 / sum ||exact||_F^2). Independent of loraspec's
low-rank computation (engine lora/delta-error.ts): it forms every delta.
"""

import json
import sys

import numpy as np
from safetensors.numpy import load_file


def deltas(path):
    t = load_file(path)
    out = {}
    for k in t:
        if not k.endswith(".lora_down.weight"):
            continue
        stem = k[: -len(".lora_down.weight")]
        down = t[k].astype(np.float64)
        up = t[stem + ".lora_up.weight"].astype(np.float64)
        r = down.shape[0]
        alpha = float(t[stem + ".alpha"].reshape(-1)[0]) if stem + ".alpha" in t else None
        scale = 1.0 if alpha is None or alpha == 0 or r == 0 else alpha / r
        out[stem] = scale * (up.reshape(up.shape[0], -1) @ down.reshape(r, -1))
    return out


def main():
    merged = deltas(sys.argv[1])
    inputs = []
    for arg in sys.argv[2:]:
        path, w = arg.rsplit(":", 1)
        inputs.append((deltas(path), float(w)))
    err2 = ref2 = 0.0
    modules = {}
    for stem in sorted(set(merged).union(*[set(d) for d, _ in inputs])):
        exact = sum(w * d[stem] for d, w in inputs if stem in d)
        diff = merged.get(stem, 0) - exact
        e2, r2 = float(np.sum(np.square(diff))), float(np.sum(np.square(exact)))
        err2, ref2 = err2 + e2, ref2 + r2
        modules[stem] = (e2 / r2) ** 0.5 if r2 > 0 else 0.0
    print(json.dumps({"relative": (err2 / ref2) ** 0.5 if ref2 > 0 else 0.0, "modules": modules}))


if __name__ == "__main__":
    main()
