"""The sample graph's wrapper (train/sample_graph.py) on the CPU with a fake graph: a capture that records
the forward and a replay that runs it again on the static buffers only, as a CUDA graph does. Copy-in,
copy-out, timestep handling, the eager fall-backs and their warning, and a tiny SDXL run whose graphed
samples are the eager ones."""

from __future__ import annotations

import os

import pytest

torch = pytest.importorskip("torch")

from loraspec_worker import tiny_base, train  # noqa: E402
from loraspec_worker.train import sample_graph  # noqa: E402
from loraspec_worker.train.dev_request import dev_request  # noqa: E402
from noise_dataset import write_noise_dataset  # noqa: E402


class FakeGraph:
    """Replays what was captured: the forward again, reading only the static buffers, into the static output."""

    def __init__(self, fn, out):
        self.fn, self.out = fn, out

    def replay(self):
        self.out.copy_(self.fn())


class FakeBackend:
    def __init__(self, fail=False):
        self.fail, self.captures, self.resets = fail, 0, 0

    def capture(self, fn):
        self.captures += 1
        if self.fail:
            raise RuntimeError("operation not permitted when stream is capturing")
        fn()  # a warm-up
        out = fn()
        return FakeGraph(fn, out), out

    def reset(self):
        self.resets += 1


def unet(sample, timestep, encoder_hidden_states=None, added_cond_kwargs=None, return_dict=True, timestep_cond=None, cross_attention_kwargs=None):
    """A stand-in for UNet2DConditionModel.forward: every input moves the output."""
    t = timestep if torch.is_tensor(timestep) else torch.tensor([timestep])
    out = (sample * 2 + t.reshape(-1)[0].to(sample.dtype) + encoder_hidden_states.mean() + added_cond_kwargs["text_embeds"].sum()
           + added_cond_kwargs["time_ids"].sum())
    if timestep_cond is not None:
        out = out + timestep_cond.sum()
    return (out,) if not return_dict else {"sample": out}


def inputs(seed, shape=(2, 4, 8, 8)):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=g), {"encoder_hidden_states": torch.randn(2, 7, 16, generator=g),
                                              "added_cond_kwargs": {"text_embeds": torch.randn(2, 12, generator=g), "time_ids": torch.randn(2, 6, generator=g)}})


def warnings(evs):
    return [e for e in evs if e["type"] == "warning"]


def test_each_replay_copies_that_calls_inputs_in_and_returns_a_clone_of_the_output(events):
    g = sample_graph.GraphedUnet(FakeBackend())
    results = []
    for seed, t in [(0, torch.tensor(999.0)), (1, torch.tensor(500.0)), (2, torch.tensor(1.0))]:
        sample, kw = inputs(seed)
        got = g(unet, sample, t, return_dict=False, **kw)
        assert isinstance(got, tuple) and len(got) == 1
        torch.testing.assert_close(got[0], unet(sample, t, return_dict=False, **kw)[0], rtol=0, atol=0)
        results.append(got[0])
    assert g.backend.captures == 1 and g.replays == 3 and g.eager_calls == 0
    assert results[0] is not g.out and not torch.equal(results[0], results[1])  # clones: a later replay leaves them be
    torch.testing.assert_close(results[2], g.out)
    assert not warnings(events())
    assert any("sample graph captured" in e.get("message", "") for e in events())


def test_return_dict_true_gives_the_unets_output_type():
    from diffusers.models.unets.unet_2d_condition import UNet2DConditionOutput

    g = sample_graph.GraphedUnet(FakeBackend())
    sample, kw = inputs(0)
    out = g(unet, sample, torch.tensor(3.0), **kw)
    assert isinstance(out, UNet2DConditionOutput)
    torch.testing.assert_close(out.sample, unet(sample, torch.tensor(3.0), **kw)["sample"])


@pytest.mark.parametrize("steps", [[999, 500, 1], [999.5, 0.25], [torch.tensor([7]), torch.tensor([3])], [torch.tensor(5, dtype=torch.int64), torch.tensor(9, dtype=torch.int64)]])
def test_the_timestep_is_a_static_tensor_each_calls_value_is_copied_into(steps):
    g = sample_graph.GraphedUnet(FakeBackend())
    sample, kw = inputs(0)
    for t in steps:
        torch.testing.assert_close(g(unet, sample, t, return_dict=False, **kw)[0], unet(sample, t, return_dict=False, **kw)[0])
    assert g.replays == len(steps) and torch.is_tensor(g.static["timestep"])
    if not torch.is_tensor(steps[0]):  # a number becomes what the UNet makes of it
        assert g.static["timestep"].dtype == (torch.float64 if isinstance(steps[0], float) else torch.int64)


def test_a_failed_capture_samples_eagerly_for_the_rest_of_the_run_with_one_coded_warning(events):
    g = sample_graph.GraphedUnet(FakeBackend(fail=True))
    for seed in range(3):
        sample, kw = inputs(seed)
        torch.testing.assert_close(g(unet, sample, torch.tensor(1.0), return_dict=False, **kw)[0], unet(sample, torch.tensor(1.0), return_dict=False, **kw)[0])
    assert g.failed and g.backend.captures == 1 and g.eager_calls == 3 and not g.captures_next()
    assert [w["code"] for w in warnings(events())] == [sample_graph.WARNING]


def test_another_shape_runs_eagerly_and_the_graph_stays_for_its_own(events):
    g = sample_graph.GraphedUnet(FakeBackend())
    sample, kw = inputs(0)
    g(unet, sample, torch.tensor(1.0), return_dict=False, **kw)
    big, kw2 = inputs(1, shape=(2, 4, 16, 16))
    torch.testing.assert_close(g(unet, big, torch.tensor(1.0), return_dict=False, **kw2)[0], unet(big, torch.tensor(1.0), return_dict=False, **kw2)[0])
    g(unet, big.half(), torch.tensor(1.0), return_dict=False, **kw2)  # another dtype: eager too, no second warning
    g(unet, sample, torch.tensor(2.0), return_dict=False, **kw)
    assert (g.backend.captures, g.replays, g.eager_calls) == (1, 2, 2)
    assert [w["code"] for w in warnings(events())] == [sample_graph.WARNING]


def test_an_input_the_graph_does_not_take_runs_eagerly():
    g = sample_graph.GraphedUnet(FakeBackend())
    sample, kw = inputs(0)
    cond = torch.ones(2, 3)
    got = g(unet, sample, torch.tensor(1.0), timestep_cond=cond, return_dict=False, **kw)[0]
    torch.testing.assert_close(got, unet(sample, torch.tensor(1.0), timestep_cond=cond, return_dict=False, **kw)[0])
    g(unet, sample, torch.tensor(1.0), cross_attention_kwargs=None, timestep_cond=None, return_dict=False, **kw)  # None: graphed
    assert (g.backend.captures, g.replays, g.eager_calls) == (1, 1, 1)


def test_only_sdxl_on_cuda_gets_a_graph_and_the_patch_is_undone():
    assert sample_graph.make("sdxl", torch.device("cpu")) is None
    assert sample_graph.make("flux1", torch.device("cuda")) is None
    assert isinstance(sample_graph.make("sdxl", torch.device("cuda")), sample_graph.GraphedUnet)
    module = torch.nn.Linear(2, 2)
    g = sample_graph.GraphedUnet(FakeBackend())
    with sample_graph.patched(module, g):
        assert "forward" in module.__dict__
    assert "forward" not in module.__dict__
    with sample_graph.patched(None, None):
        pass


def test_a_tiny_sdxl_run_samples_the_same_pixels_through_the_graph_wrapper(tmp_path, monkeypatch, events):
    """The real pipeline's UNet calls go through the wrapper (CFG: batch 2, device timesteps) and give the
    eager PNGs; the step-4 sample shows the LoRA the optimizer updated in place."""
    base = tiny_base.make_tiny_base("sdxl", str(tmp_path / "base"), seed=0)
    data = write_noise_dataset(tmp_path / "data", 2, (32, 32), "a photo of txcl, view {i}")
    samples = {"every": 2, "prompts": ["a photo of txcl"], "seeds": [42], "steps": 3, "guidance_scale": 2.0, "first": True, "width": 32, "height": 32}

    def run(name):
        req = dev_request(arch="sdxl", base=base, dataset=data, output_dir=str(tmp_path / name), resolution=32, steps=4, rank=4, alpha=4,
                          learning_rate=1e-2, seed=7, optimizer="adamw", precision="fp32", samples=samples)
        train.run(req)
        folder = tmp_path / name / "samples"
        return {n: (folder / n).read_bytes() for n in sorted(os.listdir(folder))}

    eager = run("eager")
    made = []
    monkeypatch.setattr(sample_graph, "make", lambda arch, device: made.append(sample_graph.GraphedUnet(FakeBackend())) or made[-1])
    graphed = run("graphed")
    [g] = made
    assert g.backend.captures == 1 and g.replays == 3 * 3 and g.eager_calls == 0  # 3 renders x 3 steps (CFG: one call at batch 2)
    assert graphed == eager and len(eager) == 3
    assert eager["step-000000-p0-s42.png"] != eager["step-000004-p0-s42.png"]
    assert not warnings(events())
