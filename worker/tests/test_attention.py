"""The request's attention kernel (train/attention.py) on the CPU: every blocker refuses fa4 with the table's code
(torch's FA4 impl raises where it cannot run, so nothing may reach it), the shim returns exactly (out, lse) for
any flash-attn-4 forward arity, and core's pins are the ones worker/requirements-fa4.txt installs.
The real kernel trains in test_gpu.py (test_fa4_trains_like_torchs_kernel)."""

from __future__ import annotations

import io
import json
import sys
import types
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from loraspec_worker import protocol, train  # noqa: E402
from loraspec_worker.protocol import WorkerError  # noqa: E402
from loraspec_worker.train import attention  # noqa: E402
from loraspec_worker.train.config import TABLE  # noqa: E402
from loraspec_worker.train.dev_request import dev_request  # noqa: E402

CODE = "W_ATTENTION_FALLBACK"


def events(buf: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in buf.getvalue().splitlines()]


@pytest.fixture
def out(monkeypatch):
    buf = io.StringIO()
    monkeypatch.setattr(protocol, "_out", buf)
    return buf


@pytest.fixture
def hopper(monkeypatch):
    """A CUDA device of compute capability 9.0 (the checks only read its capability and name)."""
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H100 80GB HBM3")
    return torch.device("cuda")


def test_the_refusal_code_and_the_fa4_record_are_cores():
    assert TABLE["refusals"]["attention"] == CODE
    assert TABLE["attention"]["kernels"] == ["sdpa", "fa4"]
    assert "attention" in TABLE["levers"] and "attention" in TABLE["settingKeys"]
    assert TABLE["attention"]["fa4"]["computeCapabilityMajors"] == [9, 10]


def test_the_fa4_pins_are_the_ones_requirements_fa4_installs():
    lines = (Path(__file__).parents[1] / "requirements-fa4.txt").read_text().splitlines()
    pins = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert pins == TABLE["attention"]["fa4"]["packages"]
    for pin in pins:
        assert pin in TABLE["attention"]["fa4"]["install"]


def test_the_request_carries_the_kernel_and_refuses_an_unknown_one():
    assert train.parse_config(dev_request(arch="flux1", base="b", dataset="d", output_dir="o", attention="fa4")).attention == "fa4"
    with pytest.raises(WorkerError) as err:
        train.parse_config(dev_request(arch="flux1", base="b", dataset="d", output_dir="o", attention="flash"))
    assert err.value.code == "E_USAGE" and "attention" in err.value.message


def test_sdpa_asked_is_sdpa_and_says_nothing(out):
    assert attention.resolve("sdpa", torch.device("cpu")) == "sdpa"
    assert attention.activate("sdpa", object(), torch.device("cpu")) == "sdpa"
    assert out.getvalue() == ""


def test_no_cuda_refuses_with_the_code(out):
    assert attention.resolve("fa4", torch.device("cpu")) == "sdpa"
    [w] = events(out)
    assert w["type"] == "warning" and w["code"] == CODE and "no CUDA device" in w["message"]


@pytest.mark.parametrize("capability, name", [((8, 9), "NVIDIA GeForce RTX 4090"), ((8, 0), "NVIDIA A100 80GB"), ((12, 0), "NVIDIA GeForce RTX 5090")])
def test_a_compute_capability_outside_cores_list_refuses(capability, name, out, monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)
    assert attention.resolve("fa4", torch.device("cuda")) == "sdpa"
    [w] = events(out)
    assert w["code"] == CODE and name in w["message"] and f"{capability[0]}.{capability[1]}" in w["message"] and "9.x and 10.x" in w["message"]


def test_a_torch_without_the_registry_refuses(hopper, out, monkeypatch):
    import torch.nn.attention as attn

    if hasattr(attn, "activate_flash_attention_impl"):
        monkeypatch.delattr(attn, "activate_flash_attention_impl")
    assert attention.resolve("fa4", hopper) == "sdpa"
    [w] = events(out)
    assert w["code"] == CODE and "no flash-attention registry" in w["message"]


def test_a_registry_without_fa4_refuses(hopper, out, monkeypatch):
    import torch.nn.attention as attn

    monkeypatch.setattr(attn, "activate_flash_attention_impl", lambda impl: None, raising=False)
    monkeypatch.setattr(attn, "list_flash_attention_impls", lambda: ["FA3"], raising=False)
    assert attention.resolve("fa4", hopper) == "sdpa"
    [w] = events(out)
    assert w["code"] == CODE and "has no FA4" in w["message"]


def test_flash_attn_cute_missing_refuses_naming_the_install_line(hopper, out, monkeypatch):
    import torch.nn.attention as attn

    monkeypatch.setattr(attn, "activate_flash_attention_impl", lambda impl: None, raising=False)
    monkeypatch.setattr(attn, "list_flash_attention_impls", lambda: ["FA3", "FA4"], raising=False)
    monkeypatch.setitem(sys.modules, attention.FA4_INTERFACE, None)  # an import of it raises ImportError
    assert attention.resolve("fa4", hopper) == "sdpa"
    [w] = events(out)
    assert w["code"] == CODE and "not importable" in w["message"]
    assert "pip install flash-attn-4==4.0.0b36 'nvidia-cutlass-dsl[cu13]==4.8.1'" in w["message"]


def test_everything_present_keeps_fa4_until_the_model_is_seen(hopper, out, monkeypatch):
    import torch.nn.attention as attn

    monkeypatch.setattr(attn, "activate_flash_attention_impl", lambda impl: None, raising=False)
    monkeypatch.setattr(attn, "list_flash_attention_impls", lambda: ["FA3", "FA4"], raising=False)
    monkeypatch.setitem(sys.modules, attention.FA4_INTERFACE, types.ModuleType(attention.FA4_INTERFACE))
    assert attention.resolve("fa4", hopper) == "fa4"
    assert out.getvalue() == ""


@pytest.mark.parametrize("head_dim, major, ok", [
    (128, 9, True), (64, 9, True), (256, 9, True), (128, 10, True), (64, 10, True),
    (256, 10, False),  # SM100: 8..128 (plus shapes this trainer never has)
    (100, 9, False),  # not a multiple of 8 (16 bytes of bf16)
    (None, 9, False), (128, 8, False),
])
def test_head_dims_follow_flash_attn_cutes_limits(head_dim, major, ok):
    assert (attention.head_dim_blocker(head_dim, major) is None) is ok


def _denoiser(head_dim):
    return types.SimpleNamespace(config=types.SimpleNamespace(attention_head_dim=head_dim))


def test_an_unsupported_head_dim_refuses_before_torch_could_raise(out, monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (10, 0))
    monkeypatch.setattr(attention, "install_shim", lambda: pytest.fail("must not activate"))
    assert attention.activate("fa4", _denoiser(256), torch.device("cuda")) == "sdpa"
    [w] = events(out)
    assert w["code"] == CODE and "head dim 256" in w["message"] and "10.x" in w["message"]


def test_activation_happens_once_per_process_and_is_logged(hopper, out, monkeypatch):
    import torch.nn.attention as attn

    calls = []
    monkeypatch.setattr(attention, "_active", None)
    monkeypatch.setattr(attention, "install_shim", lambda: calls.append("shim"))
    monkeypatch.setattr(attn, "activate_flash_attention_impl", lambda impl: calls.append(impl), raising=False)
    monkeypatch.setattr(attention, "_dist_version", lambda name: "4.0.0b36")
    assert attention.activate("fa4", _denoiser(128), hopper) == "fa4"
    assert attention.activate("fa4", _denoiser(128), hopper) == "fa4"
    assert calls == ["shim", "FA4"]
    logs = events(out)
    assert [e["type"] for e in logs] == ["log", "log"] and not any(e.get("code") for e in logs)
    assert logs[0]["message"].startswith("attention: FlashAttention-4 (flash-attn-4 4.0.0b36)") and "head dim 128" in logs[0]["message"]


def test_a_failing_activation_refuses(hopper, out, monkeypatch):
    monkeypatch.setattr(attention, "_active", None)

    def broken():
        raise RuntimeError("Module 'loraspec_fa4_shim' does not expose FA4 kernels")

    monkeypatch.setattr(attention, "install_shim", broken)
    assert attention.activate("fa4", _denoiser(128), hopper) == "sdpa"
    [w] = events(out)
    assert w["code"] == CODE and "activating FA4 failed" in w["message"]


def _fake_interface(n_values: int):
    mod = types.ModuleType("fake_fa4_interface")

    def _flash_attn_fwd(q, k, v, **kwargs):
        return tuple([("out", q), ("lse", k), "p", "row_max", "o_lo"][:n_values])

    mod._flash_attn_fwd = _flash_attn_fwd
    mod._flash_attn_bwd = lambda *a, **k: ("dq", "dk", "dv")
    return mod


@pytest.mark.parametrize("n_values", [2, 3, 5])
def test_the_shim_returns_exactly_out_and_lse_for_any_arity(n_values):
    shim = attention.shim_module(_fake_interface(n_values))
    assert shim.__name__ == attention.SHIM_MODULE
    assert shim._flash_attn_fwd(1, 2, 3, softmax_scale=0.1) == (("out", 1), ("lse", 2))
    assert shim._flash_attn_bwd() == ("dq", "dk", "dv")


def test_the_shim_refuses_a_forward_without_lse():
    with pytest.raises(RuntimeError, match="not \\(out, lse"):
        attention.shim_module(_fake_interface(1))._flash_attn_fwd(1, 2, 3)
    iface = _fake_interface(2)
    iface._flash_attn_fwd = lambda *a, **k: "out"
    with pytest.raises(RuntimeError, match="returned str"):
        attention.shim_module(iface)._flash_attn_fwd(1, 2, 3)


def test_install_shim_registers_the_shim_as_torchs_fa4_module(monkeypatch):
    _registry = pytest.importorskip("torch.nn.attention._registry")
    _fa4 = pytest.importorskip("torch.nn.attention._fa4")
    monkeypatch.setattr(_registry, "_FLASH_ATTENTION_IMPLS", dict(_registry._FLASH_ATTENTION_IMPLS))
    monkeypatch.delitem(sys.modules, attention.SHIM_MODULE, raising=False)
    assert attention.install_shim(_fake_interface(5)) == attention.SHIM_MODULE
    register = _registry._FLASH_ATTENTION_IMPLS["FA4"]
    assert register.func is _fa4.register_flash_attention_fa4 and register.keywords == {"module_path": attention.SHIM_MODULE}
    # torch's import check of the module path passes: the shim exposes both kernels
    assert _fa4._fa4_import_module(attention.SHIM_MODULE)._flash_attn_fwd(1, 2, 3) == (("out", 1), ("lse", 2))


def test_the_settings_event_reports_a_head_dim_refusal_made_after_the_load(tmp_path, out, monkeypatch, one_thread):
    """resolve() passes fa4 before the load (as on a Blackwell card); the denoiser's head dim (256 here) is refused once
    it is loaded: the one settings event comes after that and says which kernel trains (it used to say fa4)."""
    from loraspec_worker import tiny_base
    from noise_dataset import write_noise_dataset

    monkeypatch.setattr(attention, "resolve", lambda requested, device: requested)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (10, 0))
    monkeypatch.setattr(attention, "head_dim_of", lambda denoiser: 256)
    monkeypatch.setattr(attention, "install_shim", lambda: pytest.fail("must not activate"))
    base = str(tmp_path / "base")
    tiny_base.make_tiny_base("flux1", base, seed=0)
    data = write_noise_dataset(tmp_path / "data", 2, (32, 32))
    train.run(dev_request(arch="flux1", base=base, dataset=data, output_dir=str(tmp_path / "o"), resolution=32, steps=2, rank=4,
                          alpha=4, max_sequence_length=32, attention="fa4"))
    said = events(out)
    [settings] = [e for e in said if e["type"] == "settings"]
    [refusal] = [e for e in said if e.get("code") == CODE]
    assert settings["settings"]["attention"] == "fa4" and settings["applied"]["attention"] == "sdpa"
    assert "head dim 256" in refusal["message"] and said.index(refusal) < said.index(settings)
