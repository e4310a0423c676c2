"""network_type: DoRA, LoKr and LoHa adapters trained on the tiny SDXL base, saved with their own
parameter names and Kohya/LyCORIS metadata, and loaded back into a pipeline (CPU, 2 steps each).
Plain LoRA is test_train.py's."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from loraspec_worker import protocol, sample, tiny_base, train
from loraspec_worker.train.dev_request import dev_config, dev_request
from loraspec_worker.train.network import adapter_config, file_network_type
from noise_dataset import write_noise_dataset  # noqa: E402

RES = 32
# The parameter each kind saves (lora-formats.md §2d: LyCORIS names; DoRA's magnitude is peft's name).
KEY_PARAM = {"dora": "lora_magnitude_vector", "lokr": "lokr_w1", "loha": "hada_w1_a"}
ARGS = {"dora": {"algo": "lora", "dora_wd": "True"}, "lokr": {"algo": "lokr", "factor": "4"}, "loha": {"algo": "loha"}}


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return tiny_base.make_tiny_base("sdxl", str(tmp_path_factory.mktemp("base") / "sdxl"), seed=0)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_noise_dataset(tmp_path_factory.mktemp("dataset"), 3, (40, 48), "a photo of txcl, sample {i}", name="img{i}")


@pytest.fixture(autouse=True)
def quiet(monkeypatch):
    monkeypatch.setattr(protocol, "_out", io.StringIO())


def test_each_kind_gets_peft_own_config():
    from peft import LoHaConfig, LoKrConfig, LoraConfig

    dora = adapter_config(dev_config(arch="sdxl", network_type="dora"), ["to_q"])
    assert isinstance(dora, LoraConfig) and dora.use_dora
    lokr = adapter_config(dev_config(arch="sdxl", network_type="lokr", network_factor=8, rank=4, alpha=2), ["to_q"])
    assert isinstance(lokr, LoKrConfig) and lokr.decompose_factor == 8 and lokr.r == 4 and lokr.alpha == 2
    assert isinstance(adapter_config(dev_config(arch="sdxl", network_type="loha"), ["to_q"]), LoHaConfig)
    assert not adapter_config(dev_config(arch="sdxl"), ["to_q"]).use_dora


def test_a_factor_of_zero_is_a_usage_error():
    with pytest.raises(protocol.WorkerError) as err:
        dev_config(arch="sdxl", network_type="lokr", network_factor=0)
    assert err.value.code == "E_USAGE" and "network_factor" in err.value.message


@pytest.mark.parametrize("kind", ["dora", "lokr", "loha"])
def test_kind_trains_saves_its_keys_and_loads_into_the_pipeline(kind, base, dataset, tmp_path):
    import torch
    from diffusers import DiffusionPipeline
    from safetensors import safe_open

    result = train.run(dev_request(arch="sdxl", base=base, dataset=str(dataset), output_dir=str(tmp_path), resolution=RES, steps=2, rank=4, alpha=4,
                                   learning_rate=1e-2, seed=7, network_type=kind, network_factor=4 if kind == "lokr" else -1, max_sequence_length=32))
    with safe_open(result["path"], "pt") as f:
        keys, meta = list(f.keys()), f.metadata()
    assert any(k.startswith("unet.") and k.endswith("." + KEY_PARAM[kind]) for k in keys), keys[:4]
    assert file_network_type(keys) == kind
    assert meta["ss_network_module"] == "lycoris.kohya" and json.loads(meta["ss_network_args"]) == ARGS[kind]
    # Kohya's header (train_network.py, sai_model_spec.py): inspect and the UIs read it like theirs.
    assert meta["ss_base_model_version"] == "sdxl_base_v1-0" and meta["modelspec.architecture"] == "stable-diffusion-xl-v1-base/lora"
    assert meta["modelspec.sai_model_spec"] == "1.0.1" and meta["modelspec.trigger_phrase"] == "txcl" and meta["ss_output_name"] == "lora"
    (folder, tags), = json.loads(meta["ss_tag_frequency"]).items()
    assert tags == {"a photo of txcl": 3, "sample 0": 1, "sample 1": 1, "sample 2": 1}
    assert json.loads(meta["ss_dataset_dirs"]) == {folder: {"n_repeats": 1, "img_count": 3}}

    pipe = DiffusionPipeline.from_pretrained(base)
    pipe.set_progress_bar_config(disable=True)
    kwargs = {"num_inference_steps": 2, "width": RES, "height": RES, "output_type": "np"}
    before = pipe(prompt="a photo of txcl", generator=torch.Generator().manual_seed(1), **kwargs).images
    sample.apply_loras(pipe, [{"path": result["path"], "name": "t", "weight": 1.0}])
    loaded = [n for n, _ in pipe.unet.named_parameters() if n.endswith(".t") or ".t." in n]
    assert len(loaded) == len(keys)  # every tensor of the file found its module
    after = pipe(prompt="a photo of txcl", generator=torch.Generator().manual_seed(1), **kwargs).images
    assert np.abs(after - before).max() > 1e-4
    # validation's weight sweep and base renders: set_adapters scales the kind, disable_lora removes it
    pipe.set_adapters(["t"], adapter_weights=[0.5])
    half = pipe(prompt="a photo of txcl", generator=torch.Generator().manual_seed(1), **kwargs).images
    assert np.abs(half - after).max() > 1e-4
    pipe.disable_lora()
    off = pipe(prompt="a photo of txcl", generator=torch.Generator().manual_seed(1), **kwargs).images
    np.testing.assert_array_equal(off, before)


@pytest.mark.parametrize("kind", ["lokr"])  # LoKr on a CLIP text encoder: peft's path (no load_lora_adapter there)
def test_text_encoder_adapters_of_each_kind_load_back(kind, base, dataset, tmp_path):
    from diffusers import DiffusionPipeline

    result = train.run(dev_request(arch="sdxl", base=base, dataset=str(dataset), output_dir=str(tmp_path), resolution=RES, steps=1, rank=4, alpha=4,
                                   network_type=kind, train_text_encoder=True, max_sequence_length=32))
    pipe = DiffusionPipeline.from_pretrained(base)
    sample.apply_loras(pipe, [{"path": result["path"], "name": "t", "weight": 1.0}])
    loaded = sum(1 for m in (pipe.unet, pipe.text_encoder, pipe.text_encoder_2) for n, _ in m.named_parameters() if n.endswith(".t") or ".t." in n)
    assert loaded == result["keys"]


def test_a_lokr_run_resumes_on_the_same_loss_curve(base, dataset, tmp_path):
    def run(out, **over):
        buf = io.StringIO()
        protocol._out = buf
        result = train.run(dev_request(arch="sdxl", base=base, dataset=str(dataset), output_dir=str(out), resolution=RES, steps=4, save_every=2, rank=4,
                                       alpha=4, learning_rate=1e-2, seed=7, network_type="lokr", network_factor=4, max_sequence_length=32, **over))
        return result, [json.loads(line)["loss"] for line in buf.getvalue().splitlines() if '"type": "loss"' in line]

    _, straight = run(tmp_path / "a")
    run(tmp_path / "b", debug={"stop_after_step": 2})
    resumed, losses = run(tmp_path / "b", resume_from="latest")
    assert resumed["startStep"] == 2
    np.testing.assert_allclose(losses, straight[2:], rtol=1e-4, atol=1e-6)


def test_a_loha_file_without_adapter_metadata_loads_from_its_shapes(base, dataset, tmp_path):
    """A LoHa file converted from Kohya names carries no lora_adapter_metadata (its scale is baked in):
    the loader takes each module's rank from hada_w1_b and alpha = rank, and the deltas are the same."""
    import torch
    from diffusers import DiffusionPipeline
    from safetensors.torch import load_file, save_file

    result = train.run(dev_request(arch="sdxl", base=base, dataset=str(dataset), output_dir=str(tmp_path), resolution=RES, steps=1, rank=4, alpha=4,
                                   learning_rate=1e-2, network_type="loha", max_sequence_length=32))
    bare = str(tmp_path / "bare.safetensors")
    save_file(load_file(result["path"]), bare)  # no metadata at all
    outs = []
    for path in (result["path"], bare):
        pipe = DiffusionPipeline.from_pretrained(base)
        pipe.set_progress_bar_config(disable=True)
        sample.apply_loras(pipe, [{"path": path, "name": "t", "weight": 1.0}])
        outs.append(pipe(prompt="a photo of txcl", generator=torch.Generator().manual_seed(1), num_inference_steps=2, width=RES, height=RES, output_type="np").images)
    np.testing.assert_allclose(outs[0], outs[1], atol=1e-6)


@pytest.mark.parametrize("over", [{"quantize": "fp8"}, {"fp8_matmul": True}])
def test_an_fp8_base_with_a_non_lora_kind_is_a_usage_error_and_never_a_fallback(over):
    from loraspec_worker.train.runner import apply_fallback

    with pytest.raises(protocol.WorkerError) as err:
        dev_config(arch="flux1", network_type="dora", **over)
    assert err.value.code == "E_USAGE" and "network_type dora" in err.value.message
    cfg = dev_config(arch="flux1", network_type="lokr")
    assert apply_fallback(cfg, "quantize_base") == "" and cfg.quantize == "none"


def test_training_start_is_the_start_of_training_not_the_first_save(monkeypatch):
    # A run that saves only at the end wrote ss_training_started_at == ss_training_finished_at: the
    # session was taken at the first save. train_once starts it before the steps, as Kohya does.
    from loraspec_worker.train import metadata

    clock = iter([1000.0, 1060.0])
    monkeypatch.setattr(metadata.time, "time", lambda: next(clock))
    metadata.start_session()
    first = metadata._SESSION["id"]
    meta = metadata.kohya_metadata(dev_config(arch="sdxl"), [], 10)
    assert (meta["ss_training_started_at"], meta["ss_training_finished_at"]) == ("1000", "1060")
    assert meta["ss_session_id"] == str(first)
    clock = iter([2000.0])  # a new run in the same process gets a new session
    metadata.start_session()
    assert metadata._SESSION["started"] == 2000
