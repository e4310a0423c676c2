"""kohya's sshs_model_hash / sshs_legacy_hash of a file, computed the way sd-scripts does
(library/train_util.py precalculate_safetensors_hashes: save the tensors with only ss_* metadata,
sha256 of the data section; legacy = sha256 of bytes [0x100000, 0x110000) of that file, 8 hex)."""
import hashlib
import json
import struct
import sys

import safetensors.torch
from safetensors import safe_open

path = sys.argv[1]
with safe_open(path, framework="pt") as f:
    meta = f.metadata() or {}
    tensors = {k: f.get_tensor(k) for k in f.keys()}
data = safetensors.torch.save(tensors, {k: v for k, v in meta.items() if k.startswith("ss_")})
n = struct.unpack("<Q", data[:8])[0]
print(json.dumps({
    "sshs_model_hash": hashlib.sha256(data[8 + n:]).hexdigest(),
    "sshs_legacy_hash": hashlib.sha256(data[0x100000:0x110000]).hexdigest()[:8],
    "file": meta,
}))
