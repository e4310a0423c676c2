"""The request's `attention` (core decides: packages/core/src/plan/attention.ts): "sdpa" is torch's own kernel;
"fa4" routes torch's SDPA flash kernel to FlashAttention-4 (flash-attn-4's CuTe DSL kernels) through torch's
flash-attention registry, once per process. What FA4 needs is core's record (schema/builtin-trainer.json
attention.fa4): torch's FA4 impl RAISES on inputs it does not support instead of falling back, so every blocker is
checked up front and refused with the table's warning code (refusals.attention), training with torch's kernel.

flash-attn-4's `_flash_attn_fwd` returns more values than torch's registry unpacks (4.0.0b36: out, lse, p,
row_max, o_lo; torch 2.11 takes two): the shim module registered in its place returns exactly (out, lse)."""

from __future__ import annotations

import functools
import sys
import types

from ..protocol import emit, warning
from .config import TABLE

FA4 = TABLE["attention"]["fa4"]
CODE = TABLE["refusals"]["attention"]
SHIM_MODULE = "loraspec_fa4_shim"
FA4_INTERFACE = "flash_attn.cute.interface"

# What this process activated (the registry is process-wide): None until the first fa4 run activates it.
_active: dict | None = None


def two_value_forward(forward):
    """`forward` made to return exactly (out, lse), whatever number of values (two or more) the package returns."""

    @functools.wraps(forward)
    def _flash_attn_fwd(*args, **kwargs):
        result = forward(*args, **kwargs)
        if not isinstance(result, (tuple, list)) or len(result) < 2:
            raise RuntimeError(f"{FA4_INTERFACE}._flash_attn_fwd returned {type(result).__name__}, not (out, lse, ...)")
        return result[0], result[1]

    return _flash_attn_fwd


def shim_module(interface) -> types.ModuleType:
    """A module with the FA4 kernels torch's registry imports: the forward through two_value_forward, the backward as is."""
    shim = types.ModuleType(SHIM_MODULE)
    shim._flash_attn_fwd = two_value_forward(interface._flash_attn_fwd)
    shim._flash_attn_bwd = interface._flash_attn_bwd
    return shim


def install_shim(interface=None) -> str:
    """Registers the shim as torch's "FA4" implementation (its module path); returns that path. Activation is separate."""
    import importlib

    from torch.nn.attention import _fa4, _registry

    interface = interface if interface is not None else importlib.import_module(FA4_INTERFACE)
    sys.modules[SHIM_MODULE] = shim_module(interface)
    _registry.register_flash_attention_impl("FA4", register_fn=functools.partial(_fa4.register_flash_attention_fa4, module_path=SHIM_MODULE))
    return SHIM_MODULE


def register_and_activate() -> None:
    """The shim registered as torch's "FA4" and activated for the process: the trainer's (activate) and the benches' one way."""
    import torch.nn.attention as attn

    install_shim()
    attn.activate_flash_attention_impl("FA4")


def head_dim_of(denoiser) -> int | None:
    """The denoiser's attention head dim from its diffusers config (FLUX.1 / FLUX.2: attention_head_dim), else None."""
    value = getattr(getattr(denoiser, "config", None), "attention_head_dim", None)
    return value if isinstance(value, int) else None


def head_dim_blocker(head_dim: int | None, major: int) -> str | None:
    dims = FA4["headDims"].get(str(major))
    if head_dim is None:
        return "the denoiser's attention head dim is unknown (no integer config.attention_head_dim)"
    if dims is None or not (dims["min"] <= head_dim <= dims["max"] and head_dim % dims["multipleOf"] == 0):
        return f"head dim {head_dim} is outside what FlashAttention-4 runs on compute capability {major}.x ({FA4['headDimSource']})"
    return None


def device_blockers(device) -> list[str]:
    """Why FA4 cannot run on this device / install (empty: it can), before the model is loaded."""
    import torch

    if device.type != "cuda":
        return ["no CUDA device"]
    major, minor = torch.cuda.get_device_capability(device)
    majors = FA4["computeCapabilityMajors"]
    if major not in majors:
        name = torch.cuda.get_device_name(device)
        return [f"{name} is compute capability {major}.{minor}; torch's FlashAttention-4 runs on {' and '.join(f'{m}.x' for m in majors)} only"]
    import torch.nn.attention as attn

    if not hasattr(attn, "activate_flash_attention_impl"):
        return [f"torch {torch.__version__} has no flash-attention registry (torch.nn.attention.activate_flash_attention_impl; torch 2.11+)"]
    if "FA4" not in attn.list_flash_attention_impls():
        return [f"torch {torch.__version__}'s flash-attention registry has no FA4"]
    return [e for e in [import_error()] if e]


def import_error() -> str | None:
    try:
        import importlib

        importlib.import_module(FA4_INTERFACE)
        return None
    except Exception as e:  # noqa: BLE001 - any failure to import means: torch's kernel, with the install line
        return f"{FA4_INTERFACE} is not importable ({type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}); install it: {FA4['install']}"


def refuse(blockers: list[str]) -> str:
    warning("attention fa4 is off for this run (torch's kernel trains instead): " + "; ".join(blockers), code=CODE)
    return "sdpa"


def resolve(requested: str, device) -> str:
    """The kernel this run applies before the model loads: the request's, or "sdpa" with the coded warning."""
    if requested != "fa4":
        return "sdpa"
    blockers = device_blockers(device)
    return refuse(blockers) if blockers else "fa4"


def activate(applied: str, denoiser, device) -> str:
    """Activates FA4 once per process for a denoiser whose head dim it runs (else refuses); returns the kernel in use."""
    global _active
    if applied != "fa4":
        return "sdpa"
    import torch

    major = torch.cuda.get_device_capability(device)[0]
    head_dim = head_dim_of(denoiser)
    blocker = head_dim_blocker(head_dim, major)
    if blocker:
        return refuse([blocker])
    if _active is None:
        try:
            register_and_activate()
        except Exception as e:  # noqa: BLE001 - a registry that refuses means: torch's kernel
            return refuse([f"activating FA4 failed ({type(e).__name__}: {str(e)[:200]})"])
        version = getattr(sys.modules.get("flash_attn"), "__version__", None) or _dist_version("flash-attn-4")
        _active = {"version": version}
    emit({"type": "log", "level": "info", "message": f"attention: FlashAttention-4 (flash-attn-4 {_active['version']}) through torch's SDPA, head dim {head_dim}"})
    return "fa4"


def deactivate() -> None:
    """Back to torch's kernel for the rest of the process (tests that compare both kernels in one process)."""
    global _active
    import torch.nn.attention as attn

    if _active is not None and hasattr(attn, "restore_flash_attention_impl"):
        attn.restore_flash_attention_impl()
    _active = None


def _dist_version(name: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "?"
