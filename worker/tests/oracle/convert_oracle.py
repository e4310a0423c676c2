"""Oracle for `loraspec convert` (kind "same": compare two files, each with its own alphas; kind "weighted": IN is "a.safetensors:0.5,b.safetensors:0.3", the exact weighted sum of deltas): converts IN with diffusers' own functions, then compares the
per-module delta W = scale * B @ A of that result with OURS (a file loraspec wrote).

usage: convert_oracle.py flux1|sdxl IN OURS
prints JSON {"modules": n, "max_rel_err": x, "missing_in_ours": [...], "extra_in_ours": [...]}

The Frobenius norm of B1 A1 - B2 A2 is computed exactly from the factors (float64), so
full-size modules cost O(rank^2 * dims), not O(out * in).
"""
import json
import re
import sys

import torch
from safetensors.torch import load_file

SUFFIXES = [
    (".lora_A.weight", "A"), (".lora_B.weight", "B"),
    (".lora_linear_layer.down.weight", "A"), (".lora_linear_layer.up.weight", "B"),
    (".lora.down.weight", "A"), (".lora.up.weight", "B"),
    (".lora_down.weight", "A"), (".lora_up.weight", "B"),
]


def modules_of(sd, alphas=None):
    """{module: (A, B, scale)} with prefixes normalised (transformer./unet. stripped, TE kept)."""
    out = {}
    for k, v in sd.items():
        for suf, role in SUFFIXES:
            if k.endswith(suf):
                name = k[: -len(suf)]
                name = re.sub(r"^(transformer|unet)\.", "", name)
                name = name.replace(".processor.", ".")
                out.setdefault(name, {})[role] = v.to(torch.float64)
                out[name]["key"] = k[: -len(suf)]
                break
    res = {}
    for name, d in out.items():
        scale = 1.0
        if alphas is not None:
            a = alphas.get(d["key"] + ".alpha", alphas.get(d["key"].replace("lora_linear_layer", "").rstrip(".") + ".alpha"))
            if a is not None:
                scale = float(a) / d["A"].shape[0]
        res[name] = (d["A"].flatten(1), d["B"].flatten(1), scale)
    return res


def rel_err(a1, b1, s1, a2, b2, s2):
    # ||s1 B1 A1 - s2 B2 A2||_F via the Gram matrices of [s1 B1, -s2 B2] and [A1; A2].
    bc = torch.cat([s1 * b1, -s2 * b2], dim=1)
    ac = torch.cat([a1, a2], dim=0)
    diff2 = torch.trace((bc.T @ bc) @ (ac @ ac.T)).item()
    ref2 = torch.trace(((s1 * b1).T @ (s1 * b1)) @ (a1 @ a1.T)).item()
    if ref2 == 0:
        return 0.0 if diff2 == 0 else float("inf")
    return max(diff2, 0.0) ** 0.5 / ref2 ** 0.5


def reference(kind, path):
    sd = load_file(path)
    if kind == "flux1":
        from diffusers.loaders.lora_conversion_utils import _convert_kohya_flux_lora_to_diffusers

        return modules_of(_convert_kohya_flux_lora_to_diffusers(dict(sd)))
    if kind == "sdxl":
        from diffusers.loaders.lora_conversion_utils import _convert_non_diffusers_lora_to_diffusers, _maybe_map_sgm_blocks_to_diffusers
        from diffusers.utils.state_dict_utils import convert_unet_state_dict_to_peft

        from types import SimpleNamespace

        unet_config = SimpleNamespace(layers_per_block=2)
        sd = _maybe_map_sgm_blocks_to_diffusers(dict(sd), unet_config)
        converted, alphas = _convert_non_diffusers_lora_to_diffusers(sd)
        # Fold each network alpha into its down matrix (alpha / rank), the way peft applies it.
        for k, v in alphas.items():
            base = k[: -len(".alpha")]
            cands = [base] + [base + s for s in (".lora.down.weight", ".lora_linear_layer.down.weight", ".down.weight")]
            down = next((c for c in cands if c in converted), None)
            if down is None:
                raise SystemExit(f"alpha {k} has no down weight")
            converted[down] = converted[down] * (float(v) / converted[down].shape[0])
        unet = {k[len("unet."):]: v for k, v in converted.items() if k.startswith("unet.")}
        te = {k: v for k, v in converted.items() if not k.startswith("unet.")}
        from diffusers.utils.state_dict_utils import convert_state_dict_to_peft

        mods = modules_of(convert_unet_state_dict_to_peft(unet))
        mods.update(modules_of(convert_state_dict_to_peft(te) if te else {}))
        return mods
    if kind == "flux2":
        from diffusers.loaders.lora_conversion_utils import _convert_kohya_flux2_lora_to_diffusers

        return modules_of(_convert_kohya_flux2_lora_to_diffusers(dict(sd)))
    if kind == "xlabs":
        from diffusers.loaders.lora_conversion_utils import _convert_xlabs_flux_lora_to_diffusers

        return modules_of(_convert_xlabs_flux_lora_to_diffusers(dict(sd)))
    if kind == "same":
        return modules_of(sd, alphas_of(sd))
    raise SystemExit(f"unknown kind {kind}")


def alphas_of(sd):
    return {k: float(v) for k, v in sd.items() if k.endswith(".alpha")}


def weighted(specs):
    """Exact sum_i w_i * scale_i * B_i A_i per module, kept factored: A = [A_1; A_2], B = [w_1 s_1 B_1 | ...]."""
    acc = {}
    for spec in specs:
        path, w = spec.rsplit(":", 1)
        sd = load_file(path)
        for name, (a, b, s) in modules_of(sd, alphas_of(sd)).items():
            pa, pb = acc.get(name, (None, None))
            acc[name] = (a if pa is None else torch.cat([pa, a]), b * (s * float(w)) if pb is None else torch.cat([pb, b * (s * float(w))], dim=1))
    return {k: (a, b, 1.0) for k, (a, b) in acc.items()}


def main():
    kind, inp, ours_path = sys.argv[1:4]
    ref = weighted(inp.split(",")) if kind == "weighted" else reference(kind, inp)
    ours_sd = load_file(ours_path)
    ours = modules_of(ours_sd, alphas_of(ours_sd))
    worst = 0.0
    worst_name = None
    compared = 0
    for name, (a1, b1, s1) in ref.items():
        if name not in ours:
            continue
        a2, b2, s2 = ours[name]
        e = rel_err(a1, b1, s1, a2, b2, s2)
        compared += 1
        if e > worst:
            worst, worst_name = e, name
    print(json.dumps({
        "modules": compared,
        "reference_modules": len(ref),
        "max_rel_err": worst,
        "worst": worst_name,
        "missing_in_ours": sorted(set(ref) - set(ours)),
        "extra_in_ours": sorted(set(ours) - set(ref)),
    }))


if __name__ == "__main__":
    main()
