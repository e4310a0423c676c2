"""The trainer's speed levers (speed.py) on the CPU: fp8 base numerics, which levers a run gets and
why, regional compile's block discovery, and a real fp8 training run on a tiny FLUX.1 base.
The GPU-only parts (CUDA graph replay, compiled speed) are in test_gpu.py and bench/gpu-speed.py."""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from loraspec_worker import protocol, speed, tiny_base, train  # noqa: E402
from cuda_graph_fakes import patch_cuda_graph_failing, step_losses  # noqa: E402
from noise_dataset import write_noise_dataset  # noqa: E402
from loraspec_worker.protocol import WorkerError  # noqa: E402
from loraspec_worker.train.dev_request import dev_config, dev_request  # noqa: E402


def test_fp8_linear_matches_its_dequantized_weight_forward_and_backward():
    torch.manual_seed(0)
    lin = torch.nn.Linear(64, 48)
    lin.requires_grad_(False)
    q = speed.fp8_linear_class()(lin, torch.device("cpu"), torch.float32)
    assert q.weight_fp8.dtype == torch.float8_e4m3fn and q.weight_scale.shape == (48, 1)
    w = q.dequantized()
    # e4m3 keeps 3 mantissa bits: every weight within 2^-4 relative (plus the subnormal floor)
    err = (w - lin.weight).abs()
    assert bool((err <= lin.weight.abs() * 2**-4 + q.weight_scale * 2**-9).all())
    x = torch.randn(5, 64, requires_grad=True)
    y = q(x)
    ref_x = x.detach().clone().requires_grad_(True)
    ref = torch.nn.functional.linear(ref_x, w, lin.bias)
    torch.testing.assert_close(y, ref)
    g = torch.randn_like(y)
    y.backward(g)
    ref.backward(g)
    torch.testing.assert_close(x.grad, ref_x.grad)


@pytest.mark.parametrize("transposed", [False, True], ids=["forward", "forward+dgrad"])
def test_fp8_gemm_linear_stays_within_fp8_noise_of_the_exact_linear(transposed):
    """fp8_matmul: the forward (and with the transposed copy the input gradient) as a row-wise scaled
    fp8 GEMM (torch._scaled_mm, which the CPU build runs too). Both operands are quantized, so the
    error is about twice the weight-only error; far above it would mean a wrong scale or layout."""
    torch.manual_seed(0)
    lin = torch.nn.Linear(256, 512).requires_grad_(False)
    x = torch.randn(2, 64, 256, requires_grad=True)
    ref = lin(x)
    g = torch.randn_like(ref)
    ref.backward(g)
    ref_grad, x.grad = x.grad.clone(), None
    q = speed.fp8_linear_class()(lin, torch.device("cpu"), torch.float32, matmul=True, transposed=transposed)
    assert q.matmul and (q.weight_fp8_t is not None) is transposed
    y = q(x)
    y.backward(g)
    rel = lambda a, b: float((a - b).norm() / b.norm())  # noqa: E731
    assert y.shape == ref.shape and rel(y, ref) < 0.06
    assert rel(x.grad, ref_grad) < 0.06
    # a dim not divisible by 16 cannot take the GEMM: that layer keeps the dequantized math
    odd = speed.fp8_linear_class()(torch.nn.Linear(24, 40).requires_grad_(False), torch.device("cpu"), torch.float32, matmul=True)
    assert not odd.matmul


def test_quantize_fp8_replaces_the_frozen_block_linears_and_keeps_the_lora_trainable(tmp_path):
    pipe = tiny_base.build_flux1(0)
    net = pipe.transformer
    net.requires_grad_(False)
    cfg = dev_config(arch="flux1", rank=4, alpha=4)
    train.add_lora(net, cfg, train.TARGETS["flux1"])
    n_linear_in_blocks = sum(
        1 for b in [*net.transformer_blocks, *net.single_transformer_blocks] for m in b.modules()
        if type(m) is torch.nn.Linear and not m.weight.requires_grad
    )
    counts = speed.quantize_fp8_(net, torch.device("cpu"), torch.float32)
    assert counts["layers"] == n_linear_in_blocks > 0
    Fp8 = speed.fp8_linear_class()
    assert isinstance(net.transformer_blocks[0].attn.to_q.base_layer, Fp8)  # inside peft's wrapper
    assert all(type(m) is not torch.nn.Linear or m.weight.requires_grad or "lora" in name
               for b in net.transformer_blocks for name, m in b.named_modules())
    lora = [p for p in net.parameters() if p.requires_grad]
    assert lora and all(p.dtype == torch.float32 for p in lora)
    # no float8 weight is a parameter (the optimizer never sees them)
    assert all(p.dtype != torch.float8_e4m3fn for p in net.parameters())


def test_compile_blocks_finds_the_repeated_blocks():
    pipe = tiny_base.build_flux1(0)
    net = pipe.transformer
    n = speed.compile_blocks(net)  # wraps lazily: nothing compiles until a forward
    assert n == len(net.transformer_blocks) + len(net.single_transformer_blocks)
    unet = tiny_base.build_sdxl(0).unet
    names = speed.repeated_block_names(unet)
    assert "BasicTransformerBlock" in names and "ResnetBlock2D" in names


def _cfg(**over):
    return dev_config(**{"arch": "sdxl", "steps": 1000, **over})


class _Loss:
    def loss_from(self):  # marks a graph-replayable arch
        pass


REFUSALS = train.config.TABLE["refusals"]


@pytest.mark.parametrize("over", [
    {"cuda_graphs": True, "channels_last": True},
    {"arch": "flux1", "compile": True, "fp8_matmul": True},
    {"arch": "flux1", "compile": True},
    {"arch": "flux2-klein", "fp8_matmul": True},
    {},
])
def test_the_worker_applies_the_requested_levers_as_written_where_the_device_can(over, monkeypatch):
    """Core decides every lever (plan/train-settings.ts); on a device that can run them the worker
    changes nothing and says nothing: it never turns a lever on or off by its own measure."""
    buf = io.StringIO()
    monkeypatch.setattr(protocol, "_out", buf)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    monkeypatch.setattr(speed, "rowwise_fp8_gemm_error", lambda index: None)
    cfg = _cfg(**over)
    levers = speed.refuse_levers(cfg, torch.device("cuda"), _Loss(), REFUSALS)
    assert levers == {k: getattr(cfg, k) for k in ("compile", "cuda_graphs", "channels_last", "fp8_matmul")}
    assert buf.getvalue() == ""


def test_a_card_whose_torch_refuses_row_wise_fp8_gemms_trains_with_bf16_gemms(monkeypatch):
    """Ada (sm89) and RTX Blackwell (sm120) have fp8 tensor cores, but torch's row-wise scaled GEMM
    does not run there: the one-GEMM probe's error turns the lever off, with a coded warning."""
    buf = io.StringIO()
    monkeypatch.setattr(protocol, "_out", buf)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 9))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA GeForce RTX 4090")
    monkeypatch.setattr(speed, "rowwise_fp8_gemm_error", lambda index: "RuntimeError: not supported on sm89")
    assert speed.refuse_levers(_cfg(arch="flux1", compile=True), torch.device("cuda"), _Loss(), REFUSALS)["fp8_matmul"] is False
    assert buf.getvalue() == ""  # not asked for: nothing to refuse
    assert speed.refuse_levers(_cfg(arch="flux1", compile=True, fp8_matmul=True), torch.device("cuda"), _Loss(), REFUSALS)["fp8_matmul"] is False
    warning = json.loads(buf.getvalue().splitlines()[-1])
    assert warning["code"] == "W_FP8_MATMUL_UNAVAILABLE" and "RTX 4090" in warning["message"] and "sm89" in warning["message"]


@pytest.mark.parametrize("over, device, code, says", [
    ({"arch": "flux1", "fp8_matmul": True}, "cpu", "W_FP8_MATMUL_UNAVAILABLE", "no CUDA device"),
    ({"cuda_graphs": True}, "cpu", "W_CUDA_GRAPH_UNAVAILABLE", "no CUDA device"),
    ({"cuda_graphs": True, "debug": {"stop_after_step": 2, "crash_rank_at_step": {"rank": 1, "step": 3}}}, "cuda", "W_CUDA_GRAPH_UNAVAILABLE", "debug hooks inside the step: crash_rank_at_step"),
    ({"arch": "flux1", "compile": True}, "cpu", "W_COMPILE_UNAVAILABLE", "CUDA"),
    ({"channels_last": True}, "cpu", "W_CHANNELS_LAST_UNAVAILABLE", "no CUDA device"),
])
def test_a_planned_lever_this_machine_cannot_use_is_turned_off_with_a_warning(over, device, code, says, monkeypatch):
    """The plan sets levers for the GPU the contract names; a run elsewhere trains on without them."""
    buf = io.StringIO()
    monkeypatch.setattr(protocol, "_out", buf)
    if device == "cuda":
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
        monkeypatch.setattr(speed, "rowwise_fp8_gemm_error", lambda index: None)
    levers = speed.refuse_levers(_cfg(**over), torch.device(device), _Loss(), REFUSALS)
    assert levers["cuda_graphs"] is False and levers["compile"] is False and levers["fp8_matmul"] is False
    warnings = [json.loads(l) for l in buf.getvalue().splitlines()]
    assert [w["code"] for w in warnings] == [code] and says in warnings[0]["message"]


def test_debug_hooks_between_steps_keep_the_cuda_graph(monkeypatch):
    """A cut-and-resume test (debug.stop_after_step) must run the graph it tests: hooks that act between or
    before steps do not turn it off (the H200 failure of 2026-12-03: the cut run trained eagerly, then the
    resumed run captured over an eager run's optimizer state)."""
    buf = io.StringIO()
    monkeypatch.setattr(protocol, "_out", buf)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    debug = {k: 1 for k in speed.DEBUG_HOOKS_OUTSIDE_THE_STEP}
    levers = speed.refuse_levers(_cfg(cuda_graphs=True, debug=debug), torch.device("cuda"), _Loss(), REFUSALS)
    assert levers["cuda_graphs"] is True and buf.getvalue() == ""


def test_fp8_base_trains_a_lora_end_to_end(tmp_path, monkeypatch):
    buf = io.StringIO()
    monkeypatch.setattr(protocol, "_out", buf)
    base = tiny_base.make_tiny_base("flux1", str(tmp_path / "base"), seed=0)
    data = write_noise_dataset(tmp_path / "data", 2, (32, 32))
    req = dev_request(arch="flux1", base=base, dataset=data, output_dir=str(tmp_path / "out"), resolution=32,
                      steps=3, rank=4, alpha=4, learning_rate=1e-2, max_sequence_length=32, quantize="fp8")
    result = train.run(req)
    lines = [json.loads(l) for l in buf.getvalue().splitlines()]
    losses = [e["loss"] for e in lines if e["type"] == "loss"]
    assert len(losses) == 3 and all(math.isfinite(v) for v in losses)
    assert any(e["type"] == "log" and "fp8 base" in e.get("message", "") for e in lines)
    from safetensors.torch import load_file

    tensors = load_file(result["path"])
    assert tensors and all(t.dtype == torch.float32 for t in tensors.values())
    assert not any("weight_fp8" in k or "base_layer" in k for k in tensors)


def test_unknown_quantize_is_a_usage_error(tmp_path):
    with pytest.raises(WorkerError) as err:
        train.parse_config(dev_request(arch="flux1", base="x", dataset="d", output_dir="o", quantize="nf4"))
    assert err.value.code == "E_USAGE" and "quantize" in err.value.message


def test_graphed_step_warms_up_eagerly_then_trains_on_eagerly_when_capture_fails(monkeypatch):
    """The CUDA graph path's eager warm-up and its fall-back give exactly the trainer's eager steps."""
    tiny_base.build_sdxl(0)  # import diffusers' modules before torch.cuda is patched (annotations use it)
    from diffusers.loaders import peft as _peft  # noqa: F401
    events = io.StringIO()
    monkeypatch.setattr(protocol, "_out", events)
    patch_cuda_graph_failing(monkeypatch, torch)

    def run(graphed: bool) -> list[float]:
        pipe = tiny_base.build_sdxl(0)
        cfg = dev_config(arch="sdxl", rank=4, alpha=4, precision="fp32")
        arch = train.SDXL(pipe, cfg, torch.device("cpu"), torch.float32)
        g = torch.Generator().manual_seed(1)
        latents = torch.randn(1, 4, 16, 16, generator=g)
        text = {"embeds": torch.randn(1, 77, 64, generator=g), "pooled": torch.randn(1, 32, generator=g)}
        return step_losses(arch, cfg, latents, text, {"time_ids": [[32, 32, 0, 0, 32, 32]]}, steps=5, graphed=graphed)

    eager = run(False)
    graphed = run(True)
    np.testing.assert_allclose(graphed, eager, rtol=1e-5)
    warnings = [json.loads(l) for l in events.getvalue().splitlines() if '"warning"' in l]
    assert [w["code"] for w in warnings] == ["W_CUDA_GRAPH_FALLBACK"]
