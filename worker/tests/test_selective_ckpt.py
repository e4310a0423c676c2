"""Selective activation checkpointing (train/selective_ckpt.py, checkpointing_mode "selective") and
the whole-run timing (train/timing.py) on the CPU: the loss curve and the LoRA equal eager's on the
tiny FLUX.1, the trainer's policy (core's selectiveCheckpointingKeep: "attention") keeps only the
attention outputs and the bench's other one the matmul outputs too, names and keys stay, and the
train result says where the run's time went. The H200 figures: bench/gpu-speed.py, gpu-wholerun.py."""

from __future__ import annotations

import io
import json

import pytest

torch = pytest.importorskip("torch")

from loraspec_worker import protocol, tiny_base, train  # noqa: E402
from loraspec_worker.protocol import WorkerError  # noqa: E402
from loraspec_worker.train import runner, selective_ckpt, timing  # noqa: E402
from loraspec_worker.train.dev_request import dev_config, dev_request  # noqa: E402
from noise_dataset import write_noise_dataset  # noqa: E402


def test_apply_wraps_every_repeated_block_and_keeps_names_keys_and_class_names():
    net = tiny_base.build_flux1(0).transformer
    keys = list(net.state_dict())
    names = [type(b).__name__ for b in [*net.transformer_blocks, *net.single_transformer_blocks]]
    n = selective_ckpt.apply(net)
    assert n == len(net.transformer_blocks) + len(net.single_transformer_blocks)
    assert list(net.state_dict()) == keys
    assert [type(b).__name__ for b in [*net.transformer_blocks, *net.single_transformer_blocks]] == names
    assert selective_ckpt.apply(net) == 0  # idempotent
    # one subclass per block class: regional compile shares one graph between the blocks of a kind
    assert type(net.transformer_blocks[0]) is selective_ckpt._selective_class(type(net.transformer_blocks[0]).__mro__[1])


def _tiny_block(module: bool = False):
    """A block with each kind of op the policies decide on: matmuls (two linears), GELU, attention, a residual add.
    Returns (block, its two linears as one module list); with module=True the block is the one repeated block of a
    net that declares it as the denoisers do (`_repeated_blocks`), so selective_ckpt.apply wraps it."""
    lin1, lin2 = torch.nn.Linear(8, 32), torch.nn.Linear(32, 8)

    def block(x):
        h = torch.nn.functional.gelu(lin1(x))
        q = h.view(2, 16, 4, 8).transpose(1, 2)
        a = torch.nn.functional.scaled_dot_product_attention(q, q, q).transpose(1, 2).reshape(2, 16, 32)
        return lin2(a) + x

    layers = torch.nn.ModuleList([lin1, lin2])
    if not module:
        return block, layers

    class TinyBlock(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = layers

        def forward(self, x):
            return block(x)

    class TinyNet(torch.nn.Module):
        _repeated_blocks = ["TinyBlock"]

        def __init__(self):
            super().__init__()
            self.block = TinyBlock()

        def forward(self, x):
            return self.block(x)

    return TinyNet(), layers


def _decisions(monkeypatch, name: str) -> list[tuple[str, object]]:
    """Records what the policy function `name` of selective_ckpt decides, op by op."""
    decided: list[tuple[str, object]] = []
    real = getattr(selective_ckpt, name)

    def counting(ctx, op, *args, **kwargs):
        out = real(ctx, op, *args, **kwargs)
        decided.append((str(op), out))
        return out

    monkeypatch.setattr(selective_ckpt, name, counting)
    return decided


def test_the_matmul_attention_policy_keeps_matmul_and_attention_outputs_and_recomputes_the_rest(monkeypatch):
    """The bench's other policy (its rows 23-25 and 44; the trainer's until 2026-12-06)."""
    from torch.utils.checkpoint import CheckpointPolicy

    decided = _decisions(monkeypatch, "matmul_attention_policy")
    block, _ = _tiny_block()

    from torch.utils.checkpoint import checkpoint

    x = torch.randn(2, 16, 8, requires_grad=True)
    checkpoint(block, x, use_reentrant=False, context_fn=selective_ckpt.matmul_attention_context_fn).sum().backward()
    saved = {op for op, p in decided if p == CheckpointPolicy.MUST_SAVE}
    recomputed = {op for op, p in decided if p == CheckpointPolicy.PREFER_RECOMPUTE}
    assert any("mm" in op for op in saved), decided
    assert any("scaled_dot_product" in op for op in saved), decided
    assert any("gelu" in op for op in recomputed), decided
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_the_attention_only_policy_keeps_attention_recomputes_matmuls_and_gives_eager_gradients():
    """Issue 22's bench row 43 (keep="attention"): only the attention outputs are kept; the gradients are eager's."""
    from torch.utils.checkpoint import CheckpointPolicy, checkpoint

    torch.manual_seed(0)
    block, layers = _tiny_block()

    x = torch.randn(2, 16, 8)
    grads = []
    for wrap in (None, selective_ckpt.attention_context_fn, selective_ckpt.matmul_attention_context_fn):
        xi = x.clone().requires_grad_(True)
        out = block(xi) if wrap is None else checkpoint(block, xi, use_reentrant=False, context_fn=wrap)
        out.square().sum().backward()
        grads.append((xi.grad.clone(), layers[0].weight.grad.clone()))
        layers.zero_grad(set_to_none=True)
    for got in grads[1:]:
        assert torch.allclose(got[0], grads[0][0], atol=1e-6) and torch.allclose(got[1], grads[0][1], atol=1e-6)
    saved = selective_ckpt.saved_ops("attention")
    assert saved and all("scaled_dot_product" in str(op) for op in saved)
    assert not saved & {torch.ops.aten.mm.default, torch.ops.aten.addmm.default}
    assert selective_ckpt.attention_policy(None, torch.ops.aten.addmm.default) == CheckpointPolicy.PREFER_RECOMPUTE
    assert selective_ckpt.matmul_attention_policy(None, torch.ops.aten.addmm.default) == CheckpointPolicy.MUST_SAVE


def test_checkpointing_mode_selective_runs_cores_policy_attention_outputs_only(monkeypatch):
    """One home for the policy: core's selectiveCheckpointingKeep (schema/builtin-trainer.json), the default of apply,
    which the trainer's setup calls for checkpointing_mode "selective". Under it a block keeps only what SDPA returns."""
    from torch.utils.checkpoint import CheckpointPolicy

    from loraspec_worker.train.config import TABLE

    assert selective_ckpt.PRODUCT_KEEP == TABLE["selectiveCheckpointingKeep"] == "attention"
    decided = _decisions(monkeypatch, "attention_policy")
    net, layers = _tiny_block(module=True)
    assert selective_ckpt.apply(net) == 1
    assert type(net.block) is selective_ckpt._selective_class(type(net.block).__mro__[1], "attention")
    x = torch.randn(2, 16, 8, requires_grad=True)
    net(x).sum().backward()
    saved = {op for op, p in decided if p == CheckpointPolicy.MUST_SAVE}
    recomputed = {op for op, p in decided if p == CheckpointPolicy.PREFER_RECOMPUTE}
    assert saved and all("scaled_dot_product" in op for op in saved), decided
    assert any("mm" in op for op in recomputed) and any("gelu" in op for op in recomputed), decided
    assert layers[0].weight.grad is not None


def test_apply_takes_the_policy_per_block_class():
    net = tiny_base.build_flux1(0).transformer
    n = selective_ckpt.apply(net, keep="attention")
    assert n == len(net.transformer_blocks) + len(net.single_transformer_blocks)
    base_cls = type(net.transformer_blocks[0]).__mro__[1]
    assert type(net.transformer_blocks[0]) is selective_ckpt._selective_class(base_cls, "attention")
    assert selective_ckpt._selective_class(base_cls, "attention") is selective_ckpt._selective_class(base_cls)  # the trainer's
    assert selective_ckpt._selective_class(base_cls, "attention") is not selective_ckpt._selective_class(base_cls, "matmul+attention")


def _run(tmp_path, name: str, monkeypatch, **over) -> tuple[list[dict], dict]:
    buf = io.StringIO()
    monkeypatch.setattr(protocol, "_out", buf)
    base = str(tmp_path / "base")
    if not (tmp_path / "base").exists():
        tiny_base.make_tiny_base("flux1", base, seed=0)
    data = write_noise_dataset(tmp_path / "data", 2, (32, 32))
    req = dev_request(arch="flux1", base=base, dataset=data, output_dir=str(tmp_path / name), resolution=32, steps=4, rank=4,
                      alpha=4, learning_rate=1e-2, max_sequence_length=32, guidance_scale=3.5, **over)
    result = train.run(req)
    return [json.loads(line) for line in buf.getvalue().splitlines()], result


def test_selective_checkpointing_trains_the_same_lora_as_eager_on_the_tiny_flux1(tmp_path, monkeypatch):
    from safetensors.torch import load_file

    eager_events, eager = _run(tmp_path, "eager", monkeypatch)
    kept: list[str] = []
    real_apply = selective_ckpt.apply
    monkeypatch.setattr(selective_ckpt, "apply", lambda model, keep=selective_ckpt.PRODUCT_KEEP: kept.append(keep) or real_apply(model, keep))
    sel_events, sel = _run(tmp_path, "selective", monkeypatch, gradient_checkpointing=True, checkpointing_mode="selective", save_every=2)
    assert kept == ["attention"]  # the trainer's setup runs core's policy for the mode
    losses = lambda evs: [e["loss"] for e in evs if e["type"] == "loss"]  # noqa: E731
    assert len(losses(eager_events)) == 4
    assert losses(sel_events) == pytest.approx(losses(eager_events), rel=1e-5)
    a, b = load_file(eager["path"]), load_file(sel["path"])
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-6)
    assert any(e["type"] == "log" and "selective checkpointing on 2 blocks" in e["message"] for e in sel_events)
    settings = next(e for e in sel_events if e["type"] == "settings")
    assert settings["applied"]["checkpointing_mode"] == "selective"

    # the whole-run figures: phases carry `at`, periodic saves their seconds, the result the breakdown
    phases = [e for e in sel_events if e["type"] == "phase"]
    assert [p["name"] for p in phases] == ["load", "cache", "setup", "train", "save"]
    assert all(isinstance(p["at"], float) for p in phases) and [p["at"] for p in phases] == sorted(p["at"] for p in phases)
    ckpt = [e for e in sel_events if e["type"] == "checkpoint"]
    assert isinstance(ckpt[0]["seconds"], float) and "seconds" not in ckpt[-1]  # the final LoRA is the save phase
    t = sel["timing"]
    assert t["steps"] == 4 and t["saves"] == 1 and t["steady_s_per_step"] > 0 and t["ratio"] >= 1
    parts = ("startup_s", "load_s", "cache_s", "setup_s", "steps_s", "saves_s", "between_steps_s", "other_s", "final_save_s")
    assert sum(t[p] for p in parts) == pytest.approx(t["total_s"], abs=0.05)  # the breakdown adds up to the worker's wall time
    sp = t["startup_parts"]  # where the start-up goes, in the order the train path reaches them
    assert list(sp) == ["worker", "torch", "diffusers", "device", "levers", "compile_cache", "rest"]
    assert sum(sp.values()) == pytest.approx(t["startup_s"], abs=0.01)


def test_startup_parts_are_the_gaps_between_the_marks_and_the_rest_up_to_the_first_phase():
    assert timing.startup_parts([("worker", 0.2), ("torch", 1.0), ("diffusers", 2.5)], 3.0) == {"worker": 0.2, "torch": 0.8, "diffusers": 1.5, "rest": 0.5}
    assert timing.startup_parts([], 1.0) == {}


def test_startup_marks_stop_at_the_first_phase_and_a_new_run_clears_them(monkeypatch):
    from loraspec_worker import protocol

    monkeypatch.setattr(protocol, "emit", lambda event: None)
    protocol.startup_mark("worker")
    protocol.start_run_clock()  # a second run in this process: its own marks
    assert protocol.startup_marks() == []
    protocol.startup_mark("torch")
    protocol.phase("load")
    protocol.startup_mark("late")
    assert [m for m, _ in protocol.startup_marks()] == ["torch"]
    protocol.start_run_clock()


def test_selective_checkpointing_is_refused_for_an_arch_it_is_not_built_for():
    with pytest.raises(WorkerError) as e:
        dev_config(arch="sdxl", gradient_checkpointing=True, checkpointing_mode="selective")
    assert e.value.code == "E_USAGE" and "checkpointing_mode selective for sdxl" in e.value.message


def test_the_oom_fallback_steps_from_selective_to_full_checkpointing():
    cfg = dev_config(arch="flux1", gradient_checkpointing=True, checkpointing_mode="selective")
    assert runner.apply_fallback(cfg, "gradient_checkpointing") == "selective -> full gradient checkpointing"
    assert cfg.gradient_checkpointing and cfg.checkpointing_mode == "full"
    assert runner.apply_fallback(cfg, "gradient_checkpointing") == ""


def test_warmup_is_the_leading_slow_steps_beyond_the_steady_step():
    steady, n, extra = timing.warmup_of([5.0, 2.0, 0.11, 0.1, 0.1, 0.1, 0.12, 0.1])
    assert steady == pytest.approx(0.1) and n == 2 and extra == pytest.approx(6.8)
    assert timing.warmup_of([]) == (None, 0, 0.0)
    s = timing.summarize([1.0, 0.1, 0.1, 0.1], [0.5], [("load", 0.0), ("cache", 2.0), ("setup", 3.0), ("train", 3.5), ("save", 5.0)],
                         train_started=10.0, train_ended=11.0, total=5.5)
    assert (s["load_s"], s["cache_s"], s["setup_s"], s["final_save_s"]) == (2.0, 1.0, 0.5, 0.5)
    assert s["startup_s"] == 0.0 and s["other_s"] == pytest.approx(0.5)  # train phase 1.5 s, loop 1 s
    assert s["saves_s"] == 0.5 and s["between_steps_s"] == 0.0  # the loop (1 s) is all steps and saves
    assert s["ratio"] == pytest.approx(5.5 / 0.4)


def test_torch_compile_traces_the_selective_checkpoint_inside_each_block_without_a_graph_break():
    """speed.compile_blocks compiles each block's forward, in which the checkpoint now sits. Traced here
    with the aot_eager backend (dynamo + AOTAutograd's partitioner, no kernel compiler: seconds on the
    CPU); the first version called `cls.forward` and dynamo broke the graph, leaving every block eager."""
    from torch._dynamo.utils import counters

    from loraspec_worker import speed

    def losses(selective: bool) -> list[float]:
        torch._dynamo.reset()
        pipe = tiny_base.build_flux1(0)
        cfg = dev_config(arch="flux1", rank=4, alpha=4, resolution=32, max_sequence_length=8, guidance_scale=3.5)
        arch = train.ARCH_CLASSES["flux1"](pipe, cfg, torch.device("cpu"), torch.float32)
        net = arch.denoiser
        net.requires_grad_(False)
        train.add_lora(net, cfg, train.TARGETS["flux1"])
        params = [p for p in net.parameters() if p.requires_grad]
        if selective:
            selective_ckpt.apply(net)
            for block in [*net.transformer_blocks, *net.single_transformer_blocks]:
                block.compile(backend="aot_eager")
        opt = torch.optim.AdamW(params, lr=1e-2)
        g = torch.Generator().manual_seed(1)
        latents = torch.randn(1, 4, 8, 8, generator=g)
        text = {"embeds": torch.randn(1, 8, 32, generator=g), "pooled": torch.randn(1, 32, generator=g), "text_ids": torch.zeros(8, 3)}
        out = []
        for step in range(3):
            opt.zero_grad()
            loss = arch.loss(latents, text, {"time_ids": [[32, 32, 0, 0, 32, 32]]}, torch.Generator().manual_seed(step))
            loss.backward()
            opt.step()
            out.append(loss.item())
        return out

    eager = losses(False)
    counters.clear()
    compiled = losses(True)
    assert dict(counters["graph_break"]) == {}
    assert counters["stats"]["unique_graphs"] >= 2  # one per block kind (double, single), shared by every block of it
    assert compiled == pytest.approx(eager, rel=1e-5)
    assert speed.repeated_block_names(tiny_base.build_flux1(0).transformer)  # the blocks compile_blocks would compile


def test_a_second_run_in_one_process_has_its_own_timing_breakdown():
    """The breakdown adds up to the run's own wall time even when earlier runs used the process
    (tests, the toy world): the clock and the phase marks restart with each run after the first."""
    import time as _time

    from loraspec_worker import protocol

    protocol.phase("load")
    _time.sleep(0.05)
    protocol.start_run_clock()
    assert protocol.phase_marks() == [] and protocol.elapsed() < 0.05
    protocol.start_run_clock()  # no marks yet in this run: the clock keeps its start
    protocol.phase("load")
    assert [m[0] for m in protocol.phase_marks()] == ["load"]
