"""network.targets presets (core: knowledge/lora-targets.ts, exported in schema/builtin-trainer.json)
against the real diffusers classes: for each tiny base and preset, the modules peft adapts through
the worker's own add_lora are exactly the preset's (names and count), all-linear is every Linear
(and 1x1 conv) of the transformer blocks, and the presets nest. CPU, no training: a few seconds."""

from __future__ import annotations

import copy
import os
import re
from types import SimpleNamespace

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")
torch = pytest.importorskip("torch")
torch.set_num_threads(1)

from loraspec_worker import schema_files, tiny_base  # noqa: E402
from loraspec_worker.train.model import add_lora  # noqa: E402
from loraspec_worker.train.targets import matches, peft_target_modules  # noqa: E402

TABLE = schema_files.builtin_trainer()
PRESETS = TABLE["targetPresets"]
ORDER = ("attention", "attention-mlp", "all-linear")


def _adaptable(module) -> bool:
    return isinstance(module, torch.nn.Linear) or (isinstance(module, torch.nn.Conv2d) and module.kernel_size == (1, 1))


@pytest.fixture(scope="module", params=tiny_base.ARCHES)
def denoiser(request):
    arch = request.param
    pipe = getattr(tiny_base, "build_" + arch.replace("-", "_"))(0)
    return arch, (pipe.unet if arch == "sdxl" else pipe.transformer)


def test_peft_adapts_exactly_each_presets_modules(denoiser):
    from peft.tuners.lora import LoraLayer

    arch, model = denoiser
    block = re.compile(PRESETS[arch]["blocks"])
    in_blocks = {n for n, m in model.named_modules() if _adaptable(m) and block.match(n)}
    chosen = {}
    for preset in ORDER:
        patterns = PRESETS[arch]["presets"][preset]
        expected = {n for n, m in model.named_modules() if _adaptable(m) and matches(n, patterns)}
        for p in patterns:  # no dead entry: each pattern names a module of the tiny base
            assert any(matches(n, [p]) for n in expected), f"{arch} {preset}: {p} matches nothing"
        m = copy.deepcopy(model)
        add_lora(m, SimpleNamespace(rank=2, alpha=2, network_type="lora", network_factor=-1), patterns)
        adapted = {n for n, mod in m.named_modules() if isinstance(mod, LoraLayer)}
        assert adapted == expected, f"{arch} {preset}"
        assert adapted <= in_blocks, f"{arch} {preset} reaches outside the transformer blocks: {sorted(adapted - in_blocks)}"
        chosen[preset] = adapted
    assert chosen["all-linear"] == in_blocks, f"{arch}: all-linear misses {sorted(in_blocks - chosen['all-linear'])}"
    assert chosen["attention"] < chosen["attention-mlp"] <= chosen["all-linear"]


def test_the_named_parts_adapt_exactly_their_modules_through_peft():
    """network.modules' finer names (targetPresets[arch].named: SDXL's attn1 / attn2 apart, Custom Diffusion's
    cross-attention keys and values): peft adapts exactly what the core's pattern rule picks, only inside the blocks."""
    from peft.tuners.lora import LoraLayer

    for arch, entry in PRESETS.items():
        named = (entry.get("named") or {}).get("patterns")
        if not named:
            continue
        model = getattr(tiny_base, "build_" + arch.replace("-", "_"))(0).unet
        block = re.compile(entry["blocks"])
        for patterns in ([p] for p in named):
            expected = {n for n, m in model.named_modules() if _adaptable(m) and matches(n, patterns)}
            assert expected and all(block.match(n) for n in expected), f"{arch} {patterns}"
        kv = ["attn2.to_k", "attn2.to_v"]
        m = copy.deepcopy(model)
        add_lora(m, SimpleNamespace(rank=2, alpha=2, network_type="lora", network_factor=-1), kv)
        adapted = {n for n, mod in m.named_modules() if isinstance(mod, LoraLayer)}
        assert adapted == {n for n, mod in model.named_modules() if _adaptable(mod) and matches(n, kv)}
        assert adapted and all(".attn2.to_k" in n or ".attn2.to_v" in n for n in adapted)


def test_a_list_with_a_block_scoped_pattern_goes_to_peft_as_one_regex():
    assert peft_target_modules(["to_q", "to_k"]) == ["to_q", "to_k"]
    rx = peft_target_modules(["to_q", "single_transformer_blocks.*.proj_out"])
    assert isinstance(rx, str)
    assert re.fullmatch(rx, "single_transformer_blocks.12.proj_out")
    assert re.fullmatch(rx, "transformer_blocks.0.attn.to_q")
    assert not re.fullmatch(rx, "proj_out")
    assert not re.fullmatch(rx, "transformer_blocks.0.attn.to_qkv")


def test_an_all_linear_flux1_run_saves_the_block_modules_and_loads_back(tmp_path, monkeypatch):
    """The regex path end to end: 2 CPU steps on the tiny FLUX.1, saved and loaded by diffusers."""
    import io

    from safetensors import safe_open

    from loraspec_worker import protocol, train
    from loraspec_worker.train.dev_request import dev_request
    from noise_dataset import write_noise_dataset

    monkeypatch.setattr(protocol, "_out", io.StringIO())
    base = tiny_base.make_tiny_base("flux1", str(tmp_path / "base"), seed=0)
    data = write_noise_dataset(tmp_path / "data", 2, (40, 48), "a photo of txcl, sample {i}", name="img{i}")
    req = dev_request(arch="flux1", base=base, dataset=data, output_dir=str(tmp_path / "out"), resolution=32, steps=2, rank=2, alpha=2,
                      trigger_word="txcl", max_sequence_length=32, targets=PRESETS["flux1"]["presets"]["all-linear"])
    result = train.run(req)
    with safe_open(result["path"], "pt") as f:
        modules = {k.removesuffix(".lora_A.weight") for k in f.keys() if k.endswith(".lora_A.weight")}
    assert "transformer.single_transformer_blocks.0.proj_out" in modules
    assert "transformer.transformer_blocks.0.norm1.linear" in modules
    assert "transformer.proj_out" not in modules and "transformer.norm_out.linear" not in modules
    assert len(modules) == 14 + 6  # one double block (14 linears), one single block (6)
    from diffusers import FluxPipeline

    pipe = FluxPipeline.from_pretrained(base)
    pipe.load_lora_weights(result["path"])
    loaded = {n for n, m in pipe.transformer.named_modules() if hasattr(m, "lora_A") and len(m.lora_A)}
    assert {f"transformer.{n}" for n in loaded} == modules
