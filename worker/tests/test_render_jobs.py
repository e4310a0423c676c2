"""render-jobs on a tiny SDXL base: per-job adapters and weights, base images with LoRAs off,
and the same LoRA in diffusers and Kohya format giving the same image."""

from __future__ import annotations

import os

import numpy as np
import pytest

from loraspec_worker import render_jobs, tiny_base
from loraspec_worker.protocol import WorkerError

RES = 32


def make_lora(base: str, out: str, *, trained: bool, kohya: bool = False, seed: int = 0) -> str:
    """A LoRA for the tiny SDXL UNet: peft's default init (B = 0, an untrained LoRA) or random A and B."""
    import torch
    from diffusers import StableDiffusionXLPipeline
    from diffusers.utils import convert_state_dict_to_kohya
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    pipe = StableDiffusionXLPipeline.from_pretrained(base)
    pipe.unet.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"], init_lora_weights=not trained))
    state = get_peft_model_state_dict(pipe.unet)
    if kohya:
        # diffusers' own diffusers -> kohya converter: lora_unet_<path>.lora_down/lora_up/alpha
        # (lora-formats.md §2a: the kohya-prefix variant with diffusers block names).
        converted = convert_state_dict_to_kohya({f"unet.{k}": v for k, v in state.items()})
        assert all(k.startswith("lora_unet_") for k in converted)
        save_file({k: v.contiguous() for k, v in converted.items()}, out)
    else:
        StableDiffusionXLPipeline.save_lora_weights(os.path.dirname(out), unet_lora_layers=state, weight_name=os.path.basename(out))
    return out


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("render")
    base = tiny_base.make_tiny_base("sdxl", str(root / "base"), seed=0)
    return {
        "root": root,
        "base": base,
        "zero": make_lora(base, str(root / "zero.safetensors"), trained=False),
        "rand": make_lora(base, str(root / "rand.safetensors"), trained=True, seed=1),
        "rand_kohya": make_lora(base, str(root / "rand_kohya.safetensors"), trained=True, kohya=True, seed=1),
        "style_kohya": make_lora(base, str(root / "style_kohya.safetensors"), trained=True, kohya=True, seed=2),
    }


def pixels(path: str) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(path)).astype(np.int16)


def test_jobs_switch_adapters_and_weights_in_one_load(setup, tmp_path, events):
    s = setup
    loras = [
        {"name": "zero", "path": s["zero"]},
        {"name": "me", "path": s["rand"]},
        {"name": "me_kohya", "path": s["rand_kohya"]},
        {"name": "style", "path": s["style_kohya"]},
    ]
    jobs = [
        {"id": "base1", "prompt": "a photo of txcl", "seed": 1, "adapters": []},
        {"id": "zero", "prompt": "a photo of txcl", "seed": 1, "adapters": [{"name": "zero", "weight": 1.0}]},
        {"id": "me_1.0", "prompt": "a photo of txcl", "seed": 1, "adapters": [{"name": "me", "weight": 1.0}]},
        {"id": "me_0.6", "prompt": "a photo of txcl", "seed": 1, "adapters": [{"name": "me", "weight": 0.6}]},
        {"id": "kohya_1.0", "prompt": "a photo of txcl", "seed": 1, "adapters": [{"name": "me_kohya", "weight": 1.0}]},
        {"id": "stack", "prompt": "a photo of txcl", "seed": 1, "adapters": [{"name": "me_kohya", "weight": 0.5}, {"name": "style", "weight": 0.3}]},
        {"id": "base2", "prompt": "a photo of txcl", "seed": 1, "adapters": []},
    ]
    out = tmp_path / "imgs"
    result = render_jobs.run({"base": s["base"], "loras": loras, "jobs": jobs, "out_dir": str(out), "steps": 2, "width": RES, "height": RES, "device": "cpu"})
    img = {j["id"]: pixels(j["path"]) for j in result["images"]}
    assert [e["type"] for e in events()].count("sample") == len(jobs)
    # An untrained LoRA (B = 0) renders exactly the base image.
    assert np.array_equal(img["zero"], img["base1"])
    # A LoRA with weights changes it, and the weight matters.
    assert np.abs(img["me_1.0"] - img["base1"]).max() > 0
    assert np.abs(img["me_1.0"] - img["me_0.6"]).max() > 0
    # The same LoRA in Kohya format loads to the same image.
    assert np.abs(img["kohya_1.0"] - img["me_1.0"]).max() <= 1
    # The stack differs from either adapter alone.
    assert np.abs(img["stack"] - img["kohya_1.0"]).max() > 0
    # Base images after LoRA jobs: every adapter really switched off.
    assert np.array_equal(img["base2"], img["base1"])


@pytest.mark.parametrize(
    "over, code",
    [
        ({"jobs": [{"id": "x", "prompt": "p", "seed": 1, "adapters": [{"name": "nope", "weight": 1}]}]}, "E_USAGE"),
        ({"jobs": [{"id": "../x", "prompt": "p", "seed": 1}]}, "E_USAGE"),
        ({"loras": [{"name": "a", "path": "/nonexistent.safetensors"}]}, "E_FILE_NOT_FOUND"),
        # a setting the pipeline has no parameter for (SDXL's CLIP has no max_sequence_length): refused before sampling
        ({"max_sequence_length": 32, "jobs": [{"id": "x", "prompt": "p", "seed": 1}]}, "E_USAGE"),
    ],
)
def test_bad_requests_are_coded_errors(setup, tmp_path, over, code):
    req = {"base": setup["base"], "jobs": [], "out_dir": str(tmp_path), "steps": 1, "width": RES, "height": RES, "device": "cpu"}
    req.update(over)
    with pytest.raises(WorkerError) as e:
        render_jobs.run(req)
    assert e.value.code == code
