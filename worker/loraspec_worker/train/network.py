"""The adapter a run trains (the request's network_type): LoRA, DoRA, LoKr or LoHa, each through
peft's own config, on the request's `targets` list as it is.

Keys peft saves (get_peft_model_state_dict) and what reads them (lora-formats.md §2d):
  lora  lora_A.weight / lora_B.weight                    diffusers load_lora_weights
  dora  lora_A / lora_B + lora_magnitude_vector [out]    diffusers load_lora_weights (use_dora from the metadata)
  lokr  lokr_w1 / lokr_w2 (or their _a/_b factors)       diffusers load_lora_adapter (LoKrConfig from the metadata)
  loha  hada_w1_a / hada_w1_b / hada_w2_a / hada_w2_b    peft only (inject_adapter_in_model + set_peft_model_state_dict)
The LyCORIS / Kohya names are the same parameter names after the module stem (`lora_unet_*.lokr_w1`).
"""

from __future__ import annotations

from ..protocol import WorkerError
from .config import TABLE, Config

NETWORK_TYPES = tuple(TABLE["networkTypes"])


def adapter_config(cfg: Config, targets: list[str]):
    """peft's config for the request's adapter kind (rank and alpha as requested; scale alpha / rank
    for every kind, as peft and LyCORIS define it)."""
    from peft import LoHaConfig, LoKrConfig, LoraConfig

    kind = cfg.network_type
    if kind in ("lora", "dora"):
        return LoraConfig(r=cfg.rank, lora_alpha=cfg.alpha, init_lora_weights="gaussian", target_modules=targets, use_dora=kind == "dora")
    if kind == "lokr":
        # decompose_factor -1: the largest factor (LyCORIS kohya.py `factor`, ai-toolkit `lokr_factor`).
        return LoKrConfig(r=cfg.rank, alpha=cfg.alpha, target_modules=targets, decompose_factor=cfg.network_factor)
    if kind == "loha":
        return LoHaConfig(r=cfg.rank, alpha=cfg.alpha, target_modules=targets)
    # the request schema admits only the table's kinds
    raise WorkerError("E_USAGE", f"unknown network_type '{kind}'", hint=", ".join(NETWORK_TYPES))


def network_args(cfg: Config) -> dict:
    """What Kohya's metadata calls the network: ss_network_module and ss_network_args as LyCORIS's
    kohya module writes them (algo, factor, dora_wd), so a file reads like one trained there."""
    if cfg.network_type == "lora":  # the sd-scripts module for this arch (networks.lora_flux for FLUX.1)
        return {"module": TABLE["fileMetadata"][cfg.arch]["networkModule"], "args": {}}
    if cfg.network_type == "dora":
        return {"module": "lycoris.kohya", "args": {"algo": "lora", "dora_wd": "True"}}
    args = {"algo": cfg.network_type}
    if cfg.network_type == "lokr":
        args["factor"] = str(cfg.network_factor)
    return {"module": "lycoris.kohya", "args": args}


COMPONENTS = ("unet", "transformer", "text_encoder", "text_encoder_2")


def file_network_type(keys) -> str:
    """The adapter kind of a peft/diffusers-format file, from its parameter names."""
    keys = list(keys)
    if any(".lokr_" in k for k in keys):
        return "lokr"
    if any(".hada_" in k for k in keys):
        return "loha"
    if any(k.endswith((".lora_magnitude_vector", ".dora_scale")) for k in keys):
        return "dora"
    return "lora"


def _adapter_metadata(metadata: dict, component: str) -> dict | None:
    import json

    raw = (metadata or {}).get("lora_adapter_metadata")
    if not raw:
        return None
    packed = json.loads(raw)
    own = {k[len(component) + 1:]: v for k, v in packed.items() if k.startswith(component + ".")}
    return own or None


def load_adapter_file(pipe, path: str, name: str) -> None:
    """Loads one of our files into a diffusers pipeline under adapter `name`, whatever its kind:
    LoRA and DoRA through load_lora_weights; LoKr through each component's load_lora_adapter
    (diffusers 0.42.1 reads peft-format LoKr there, not in load_lora_weights); LoHa, which diffusers
    does not read, and LoKr on a transformers text encoder (no load_lora_adapter), through peft itself
    (inject_adapter_in_model + set_peft_model_state_dict)."""
    from safetensors import safe_open

    with safe_open(path, "pt") as f:
        keys = list(f.keys())
        metadata = f.metadata() or {}
    kind = file_network_type(keys)
    if kind in ("lora", "dora"):
        pipe.load_lora_weights(path, adapter_name=name)
        return
    from safetensors.torch import load_file

    tensors = load_file(path)
    for component in COMPONENTS:
        module = getattr(pipe, component, None)
        sub = {k: v for k, v in tensors.items() if k.startswith(component + ".")}
        if module is None or not sub:
            continue
        if kind == "lokr" and hasattr(module, "load_lora_adapter"):  # a diffusers model (not a transformers text encoder)
            module.load_lora_adapter(sub, prefix=component, adapter_name=name, metadata=_packed(metadata, component))
        else:
            _load_with_peft(module, sub, component, name, kind, _adapter_metadata(metadata, component))


def _packed(metadata: dict, component: str) -> dict | None:
    own = _adapter_metadata(metadata, component)
    return {f"{component}.{k}": v for k, v in own.items()} if own else None


def _load_with_peft(module, tensors: dict, component: str, name: str, kind: str, config: dict | None) -> None:
    from peft import LoHaConfig, LoKrConfig, inject_adapter_in_model
    from peft.utils import set_peft_model_state_dict

    if config is None:
        config = _infer_config(tensors, component, kind)
    cls = LoKrConfig if kind == "lokr" else LoHaConfig
    fields = {k: v for k, v in config.items() if k in cls.__dataclass_fields__ and k not in ("peft_type", "task_type")}
    inject_adapter_in_model(cls(**fields), module, adapter_name=name)
    state = {k[len(component) + 1:]: v for k, v in tensors.items()}
    if component.startswith("text_encoder") and not hasattr(module, "text_model"):
        state = {k.removeprefix("text_model."): v for k, v in state.items()}
    result = set_peft_model_state_dict(module, state, adapter_name=name)
    unexpected = getattr(result, "unexpected_keys", None)
    if unexpected:
        raise WorkerError("E_LORA_SHAPE_MISMATCH", f"the {kind} file has keys this model does not: {unexpected[:3]}")


def _infer_config(tensors: dict, component: str, kind: str) -> dict:
    """A LoHa config from the file's shapes when it carries no adapter metadata (a file converted from
    Kohya names, its scale baked into the weights by the converter): rank per module, alpha = rank."""
    if kind != "loha":
        raise WorkerError("E_LORA_FORMAT_UNKNOWN", f"the {kind} file has no lora_adapter_metadata for {component}: its rank and targets are unknown")
    ranks = {k[len(component) + 1:].rsplit(".hada_w1_b", 1)[0]: int(v.shape[0]) for k, v in tensors.items() if k.endswith(".hada_w1_b")}
    if not ranks:
        raise WorkerError("E_LORA_FORMAT_UNKNOWN", f"the LoHa file has no hada_w1_b for {component}")
    r = max(ranks.values())
    return {"r": r, "alpha": r, "target_modules": sorted(ranks), "rank_pattern": {m: n for m, n in ranks.items() if n != r},
            "alpha_pattern": {m: n for m, n in ranks.items() if n != r}}
