"""Reads tensor "x" (F32) from IN and writes OUT holding x cast by torch to bf16, f16,
float8_e4m3fn and float8_e5m2 (torch rounds to nearest even), for the dtype tests."""
import sys

import torch
from safetensors.torch import load_file, save_file

x = load_file(sys.argv[1])["x"]
save_file(
    {
        "bf16": x.to(torch.bfloat16),
        "f16": x.to(torch.float16),
        "e4m3": x.to(torch.float8_e4m3fn),
        "e5m2": x.to(torch.float8_e5m2),
        "back_e4m3": x.to(torch.float8_e4m3fn).to(torch.float32),
        "back_e5m2": x.to(torch.float8_e5m2).to(torch.float32),
        "back_bf16": x.to(torch.bfloat16).to(torch.float32),
        "back_f16": x.to(torch.float16).to(torch.float32),
    },
    sys.argv[2],
)
print("{}")
