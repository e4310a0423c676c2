"""In-training samples through the training's compiled blocks (sample_merge "compiled", train/samples.py), on the
CPU with the tiny FLUX.1 (the real diffusers transformer at small widths) and Dynamo's aot_eager backend (no
kernel compiler): the sample is the eager LoRA path's forward, compiles once (no_grad / eval) and nothing at the
next sample, leaves the training's loss curve as it was; a compiled sample that fails renders eagerly with one
coded warning; a whole run with it trains as one without samples."""

from __future__ import annotations

import io
import json
import os
from types import SimpleNamespace

import pytest

torch = pytest.importorskip("torch")

from loraspec_worker import protocol, speed, tiny_base, train  # noqa: E402
from loraspec_worker.train import compile_cache, samples  # noqa: E402
from loraspec_worker.train.dev_request import dev_request  # noqa: E402
from noise_dataset import write_noise_dataset  # noqa: E402
from test_regional_compile import fresh_dynamo, tiny_flux, train_steps  # noqa: E402,F401
from test_sample_merge_flux import inputs  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    yield


def compiled_arch():
    arch = tiny_flux(2, 2)
    speed.quantize_fp8_(arch.denoiser, torch.device("cpu"), torch.float32, matmul=True, fp8_base=False)
    speed.compile_blocks(arch.denoiser, backend="aot_eager")
    return arch


def sample(arch, eager: bool):
    arch.denoiser.eval()
    try:
        with (samples._eager() if eager else torch.no_grad()), torch.no_grad():
            return arch.denoiser(**inputs())[0]
    finally:
        arch.denoiser.train()


def counts():
    r = compile_cache.report()
    return r["frames"], r["graphs"], r["recompiles"]


def test_a_compiled_sample_is_the_eager_forward_compiles_once_and_leaves_training_alone(fresh_dynamo):
    torch._dynamo.reset()
    arch = compiled_arch()
    plain = train_steps(arch) + train_steps(arch)
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    arch = compiled_arch()
    losses = train_steps(arch)
    trained = counts()
    eager = sample(arch, eager=True)
    assert counts() == trained  # force_eager: nothing traced
    first = sample(arch, eager=False)
    compiled = counts()
    assert compiled[1] > trained[1], (trained, compiled)  # the sample ran through graphs of its own
    second = sample(arch, eager=False)
    assert counts() == compiled  # the next sample compiles nothing
    torch.testing.assert_close(first, eager, rtol=1e-5, atol=1e-6)
    assert torch.equal(first, second)
    assert losses + train_steps(arch) == plain  # the steps after the samples lose as without them
    assert counts()[1] == compiled[1]  # and the training's graphs were kept


def renderer(fail_with):
    calls = []

    def one(*args):
        calls.append("eager" if torch.compiler.is_compiling() is False and _stance() == "force_eager" else "compiled")
        if fail_with is not None and len(calls) == 1:
            raise fail_with
        return {"image": len(calls)}

    return SimpleNamespace(compiled=True, _one=one), calls


def _stance():
    from torch._dynamo import eval_frame

    return eval_frame._stance.stance


def test_a_compiled_sample_that_fails_renders_eagerly_from_then_on_with_one_warning(events):
    r, calls = renderer(RuntimeError("Dynamo cannot trace this\nmore"))
    render = samples.SampleRenderer._compiled_or_eager
    assert render(r, 1, 0, "p", {}, 42, None, None) == {"image": 2}
    assert render(r, 2, 0, "p", {}, 42, None, None) == {"image": 3}
    assert calls == ["compiled", "eager", "eager"] and r.compiled is False
    warned = [e for e in events() if e["type"] == "warning"]
    assert [w["code"] for w in warned] == [samples.COMPILE_FALLBACK] and "RuntimeError: Dynamo cannot trace this" in warned[0]["message"]


def test_an_out_of_memory_in_a_compiled_sample_is_not_hidden_by_the_fallback(events):
    r, calls = renderer(torch.OutOfMemoryError("CUDA out of memory"))
    with pytest.raises(torch.OutOfMemoryError):
        samples.SampleRenderer._compiled_or_eager(r, 1, 0, "p", {}, 42, None, None)
    assert r.compiled is True and not [e for e in events() if e["type"] == "warning"]


SAMPLES = {"every": 1, "prompts": ["a photo of txcl"], "seeds": [42], "steps": 2, "guidance_scale": 3.5, "first": True, "width": 32, "height": 32}


REAL_COMPILE_BLOCKS = speed.compile_blocks


def run(tmp_path, name, sample_spec, monkeypatch, arch="flux1"):
    real = REAL_COMPILE_BLOCKS
    monkeypatch.setattr(speed, "refuse_levers", lambda cfg, *a: {"compile": True, "cuda_graphs": False, "channels_last": False, "fp8_matmul": False})
    monkeypatch.setattr(speed, "compile_blocks", lambda net, mode=None: real(net, backend="aot_eager"))
    base = str(tmp_path / f"base-{arch}")
    if not os.path.exists(base):
        tiny_base.make_tiny_base(arch, base, seed=0)
    data = write_noise_dataset(tmp_path / "data", 2, (32, 32), "a photo of txcl, view {i}")
    buf = io.StringIO()
    old, protocol._out = protocol._out, buf
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    try:
        result = train.run(dev_request(arch=arch, base=base, dataset=data, output_dir=str(tmp_path / name), resolution=32, steps=3, rank=4, alpha=4,
                                       learning_rate=1e-2, seed=7, optimizer="adamw", precision="fp32", max_sequence_length=32, samples=sample_spec,
                                       compile=True, sample_merge="compiled"))
    finally:
        protocol._out = old
    events = [json.loads(line) for line in buf.getvalue().splitlines()]
    return result, [e["loss"] for e in events if e["type"] == "loss"], events


@pytest.mark.parametrize("arch", ["flux1", "flux2-klein"])
def test_a_run_with_compiled_samples_trains_as_one_without_samples(arch, tmp_path, monkeypatch, fresh_dynamo):
    """Samples before every step and after the last, through the compiled blocks: the loss curve is the run's
    without samples, every sample is on disk, no fallback; the compile report counts the samples' graphs."""
    on, on_losses, on_events = run(tmp_path, "on", SAMPLES, monkeypatch, arch)
    _, off_losses, off_events = run(tmp_path, "off", None, monkeypatch, arch)
    assert len(on_losses) == 3 and on_losses == off_losses
    assert [s["step"] for s in on["samples"]] == [0, 1, 2, 3] and all(os.path.exists(s["path"]) for s in on["samples"])
    assert not [e for e in on_events if e["type"] == "warning"]
    logs = [e["message"] for e in on_events if e["type"] == "log"]
    assert not any(m.startswith("sample merge:") for m in logs)

    def graphs(events):
        [report] = [e["message"] for e in events if e["type"] == "log" and e["message"].startswith("torch.compile in this run:")]
        return int(report.split(" graphs")[0].rsplit(" ", 1)[-1])

    assert graphs(on_events) > graphs(off_events)
