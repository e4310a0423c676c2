"""Loads a file with the reference `safetensors` library; prints names, dtypes, shapes, metadata
and float64 sums so a TypeScript test can compare them with what it wrote."""
import json
import sys

import torch
from safetensors import safe_open


def main(path: str) -> None:
    out = {"tensors": {}, "metadata": None}
    with safe_open(path, framework="pt") as f:
        out["metadata"] = f.metadata()
        for name in f.keys():
            t = f.get_tensor(name)
            entry = {"dtype": str(t.dtype).replace("torch.", ""), "shape": list(t.shape)}
            if t.dtype.is_floating_point:
                entry["values"] = t.to(torch.float64).flatten().tolist()[:64]
            out["tensors"][name] = entry
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1])
