"""Regional compile (speed.compile_blocks) of a tiny FLUX.1 with the trainer's LoRA, on the CPU: Dynamo
compiles one graph per block KIND and input variant, never one per block instance, and a second start
with the compile cache (train/compile_cache.py) compiles nothing in inductor and, with the PGO profile,
one frame fewer. What a warm start still pays is in compile_cache's docstring."""

from __future__ import annotations

import os
import shutil

import pytest

torch = pytest.importorskip("torch")

from loraspec_worker import speed, tiny_base, train  # noqa: E402
from loraspec_worker.train import compile_cache, selective_ckpt  # noqa: E402
from loraspec_worker.train.dev_request import dev_config  # noqa: E402

# FLUX.1's attention targets (the plan's preset for the H200 runs, bench/data/gpu-wholerun-requests.json)
TARGETS = ["to_q", "to_k", "to_v", "to_out.0", "add_q_proj", "add_k_proj", "add_v_proj", "to_add_out"]
needs_cxx = pytest.mark.skipif(shutil.which(os.environ.get("CXX", "g++")) is None, reason="inductor on the CPU needs a C++ compiler")


@pytest.fixture
def fresh_dynamo(monkeypatch):
    """Each test starts and ends with nothing compiled, and gets the process's cache settings back."""
    for var in ("TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR"):
        if var in os.environ:
            monkeypatch.setenv(var, os.environ[var])
        else:
            monkeypatch.delenv(var, raising=False)
    job_id, pgo = torch.compiler.config.job_id, torch._dynamo.config.automatic_dynamic_local_pgo
    custom_fns = torch._functorch.config.autograd_cache_allow_custom_autograd_functions
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    yield
    torch.compiler.config.job_id, torch._dynamo.config.automatic_dynamic_local_pgo = job_id, pgo
    torch._functorch.config.autograd_cache_allow_custom_autograd_functions = custom_fns
    torch._dynamo.reset()


def tiny_flux(double: int, single: int):
    """The trainer's FLUX.1 arch over a tiny transformer with `double` + `single` blocks, LoRA added as
    prepare_trainable adds it (frozen base, fp32 LoRA parameters)."""
    from diffusers import FluxTransformer2DModel

    pipe = tiny_base.build_flux1(0)
    torch.manual_seed(0)
    pipe.transformer = FluxTransformer2DModel(patch_size=1, in_channels=16, num_layers=double, num_single_layers=single, attention_head_dim=16,
                                              num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=32, guidance_embeds=True,
                                              axes_dims_rope=[4, 4, 8])
    cfg = dev_config(arch="flux1", rank=4, alpha=4, resolution=32, max_sequence_length=8, guidance_scale=3.5)
    arch = train.ARCH_CLASSES["flux1"](pipe, cfg, torch.device("cpu"), torch.float32)
    arch.denoiser.requires_grad_(False)
    train.add_lora(arch.denoiser, cfg, TARGETS)
    return arch


def train_steps(arch, steps: int = 2) -> list[float]:
    params = [p for p in arch.denoiser.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-2)
    g = torch.Generator().manual_seed(1)
    latents = torch.randn(1, 4, 8, 8, generator=g)
    text = {"embeds": torch.randn(1, 8, 32, generator=g), "pooled": torch.randn(1, 32, generator=g), "text_ids": torch.zeros(8, 3)}
    losses = []
    for step in range(steps):
        opt.zero_grad()
        loss = arch.loss(latents, text, {}, torch.Generator().manual_seed(step))
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def compiled_run(double: int, single: int, backend: str) -> tuple[list[float], dict]:
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    arch = tiny_flux(double, single)
    assert speed.compile_blocks(arch.denoiser, backend=backend) == double + single
    losses = train_steps(arch)
    return losses, compile_cache.report()


def gpu_path_run(backend: str) -> tuple[list[float], dict]:
    """One double block with the GPU path's constructs inside what compiles: the fp8 base with fp8 GEMMs
    (speed.Fp8LinearFunction, a custom autograd.Function; torch._scaled_mm runs on the CPU too) and
    selective checkpointing (a checkpoint region with the trainer's policy as context_fn)."""
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    arch = tiny_flux(1, 0)
    assert speed.quantize_fp8_(arch.denoiser, torch.device("cpu"), torch.float32, matmul=True, fp8_base=False)["layers"] > 0
    assert selective_ckpt.apply(arch.denoiser) == 1
    assert speed.compile_blocks(arch.denoiser, backend=backend) == 1
    losses = train_steps(arch)
    return losses, compile_cache.report()


def test_regional_compile_compiles_per_block_kind_not_per_block(fresh_dynamo):
    """4 graphs for 2+2 blocks and for 3+6: two kinds, each with one input variant at its first block
    (the first double block's input needs no gradient; the first single block's inputs are not slices
    of a concat). A guard that differed per instance (a peft attribute, a module id) would make the
    count grow with the blocks: FLUX.1 has 57. Traced with aot_eager (Dynamo and AOTAutograd, no
    kernel compiler); the loss is eager's."""
    eager = train_steps(tiny_flux(3, 6))
    small_losses, small = compiled_run(2, 2, "aot_eager")
    losses, big = compiled_run(3, 6, "aot_eager")
    assert losses == pytest.approx(eager, rel=1e-5)
    assert small["graphs"] == big["graphs"] == 4 and big["frames"] == 4 and big["graph_breaks"] == 0
    reasons = sorted(r for rs in big["recompiles"].values() for r in rs)
    assert len(reasons) == 2, big["recompiles"]
    assert "requires_grad mismatch" in reasons[0] or "requires_grad mismatch" in reasons[1]
    assert any("stride mismatch" in r for r in reasons)
    assert "torch.compile in this run: 4 frames, 4 graphs, 2 recompiles" in compile_cache.report_message(big)


def test_the_pgo_profile_is_keyed_by_the_shapes_a_run_compiles():
    cfg = dev_config(arch="flux1", resolution=32, steps=10)
    key = compile_cache.workload_key(cfg)
    assert key.startswith("flux1-")
    assert compile_cache.workload_key(dev_config(arch="flux1", resolution=32, steps=250, learning_rate=1e-3)) == key
    assert compile_cache.workload_key(dev_config(arch="flux1", resolution=64)) != key
    assert compile_cache.workload_key(dev_config(arch="flux1", resolution=32, batch_size=2)) != key


def test_the_pgo_profile_spares_a_warm_start_the_stride_recompile(tmp_path, fresh_dynamo):
    """Cold: the single block compiles twice (its first instance sees other strides) and Dynamo's PGO
    profile records the symbolic stride; the artifacts file alone (inductor's folder wiped, as on
    another machine) carries it to a fresh start, which compiles the single block once: 3 frames, not
    4. Same losses. (aot_eager: the profile is Dynamo's, whatever the backend.)"""
    folder = str(tmp_path / "compile")
    key = compile_cache.workload_key(dev_config(arch="flux1", resolution=32, max_sequence_length=8))
    path = compile_cache.configure(folder, key)
    cold_losses, cold = compiled_run(2, 2, "aot_eager")
    assert (cold["frames"], cold["graphs"]) == (4, 4)
    assert compile_cache.save(path)
    shutil.rmtree(os.path.join(folder, compile_cache.SPEC["inductorDir"]))
    torch._dynamo.reset()  # a new process: nothing compiled, no profile in memory
    assert compile_cache.configure(folder, key) == path
    warm_losses, warm = compiled_run(2, 2, "aot_eager")
    assert (warm["frames"], warm["graphs"]) == (3, 3), warm["recompiles"]
    assert [r for rs in warm["recompiles"].values() for r in rs if "stride" in r] == []
    assert warm_losses == pytest.approx(cold_losses, rel=1e-5)


@needs_cxx
def test_a_warm_start_compiles_nothing_in_inductor(tmp_path, fresh_dynamo):
    """One double block (one graph: forward and backward). Cold: inductor compiles both; the artifacts
    file alone then warms a fresh start: every graph an FX-graph and AOTAutograd cache hit, no miss,
    the same losses. What the warm start still pays (Dynamo tracing, loading the compiled code) is
    the report's phases."""
    folder = str(tmp_path / "compile")
    path = compile_cache.configure(folder)
    cold_losses, cold = compiled_run(1, 0, "inductor")
    assert (cold["graphs"], cold["fx_hits"], cold["aot_hits"]) == (1, 0, 0) and cold["fx_misses"] == 2 and cold["aot_misses"] == 1
    assert compile_cache.save(path)
    shutil.rmtree(os.path.join(folder, compile_cache.SPEC["inductorDir"]))
    torch._dynamo.reset()
    assert compile_cache.configure(folder) == path
    warm_losses, warm = compiled_run(1, 0, "inductor")
    assert (warm["fx_hits"], warm["fx_misses"], warm["aot_hits"], warm["aot_misses"]) == (2, 0, 1, 0)
    assert "tracing_s" in warm and "cache_load_s" in warm and "backward_compile_s" not in warm
    assert warm_losses == pytest.approx(cold_losses, rel=1e-5)
    # every graph came from the file: the warm start leaves it as it loaded it (compile_cache.served_every_graph)
    with open(path, "rb") as f:
        loaded = f.read()
    assert compile_cache.save(path) is False
    with open(path, "rb") as f:
        assert f.read() == loaded


@needs_cxx
def test_a_warm_start_hits_the_aot_autograd_cache_over_the_fp8_base_and_selective_checkpointing(tmp_path, fresh_dynamo):
    """The GPU path's block (gpu_path_run). torch bypassed the AOTAutograd cache for each of its two
    constructs (the custom autograd.Function: "Unsupported call_function target autograd_function_apply";
    the checkpoint's policy: "SAC context_fn does not have a cache_hash attribute"), so every warm start
    re-traced and re-partitioned the joint graph though inductor's FX graphs hit (H200 FLUX.1 warm run,
    2026-12-06: AOTAutograd 0 hit / 0 miss, ~6 s of a 10.3 s warm-up). compile_cache.configure allows
    custom autograd Functions and selective_ckpt gives its policies a cache_hash: cold, one miss saved;
    the artifacts file alone warms a fresh start with an AOTAutograd hit, no miss, no bypass, the same losses."""
    folder = str(tmp_path / "compile")
    path = compile_cache.configure(folder)
    cold_losses, cold = gpu_path_run("inductor")
    assert (cold["aot_hits"], cold["aot_misses"], cold["aot_bypasses"]) == (0, 1, 0), cold["aot_bypass_reasons"]
    assert compile_cache.save(path)
    shutil.rmtree(os.path.join(folder, compile_cache.SPEC["inductorDir"]))
    torch._dynamo.reset()
    assert compile_cache.configure(folder) == path
    warm_losses, warm = gpu_path_run("inductor")
    assert (warm["fx_hits"], warm["fx_misses"], warm["aot_hits"], warm["aot_misses"], warm["aot_bypasses"]) == (2, 0, 1, 0, 0)
    assert "AOTAutograd 1 hit / 0 miss / 0 bypass;" in compile_cache.report_message(warm)
    assert warm_losses == pytest.approx(cold_losses, rel=1e-5)


@pytest.mark.parametrize("construct, reason", [("custom_fns", "autograd_function_apply"),
                                               ("sac_hash", "SAC context_fn does not have a cache_hash attribute")])
def test_the_report_names_each_aot_autograd_cache_bypass_with_its_reason(construct, reason, tmp_path, fresh_dynamo, monkeypatch):
    """Without the fix for one construct, the GPU path's block bypasses the AOTAutograd cache and the run's
    compile-cache line says so with torch's reason (a GPU run's log shows it). aot_eager goes through the
    cache only when forced (no kernel compiler: seconds)."""
    compile_cache.configure(str(tmp_path / "compile"))
    if construct == "custom_fns":
        torch._functorch.config.autograd_cache_allow_custom_autograd_functions = False  # the fixture puts it back
    else:
        monkeypatch.delattr(selective_ckpt.attention_context_fn, "cache_hash")
    with torch._functorch.config.patch(force_autograd_cache=True):
        _, r = gpu_path_run("aot_eager")
    assert r["aot_bypasses"] == 1 and [reason in k for k in r["aot_bypass_reasons"]] == [True], r["aot_bypass_reasons"]
    assert "AOTAutograd 0 hit / 0 miss / 1 bypass (1x " in compile_cache.report_message(r) and reason in compile_cache.report_message(r)
