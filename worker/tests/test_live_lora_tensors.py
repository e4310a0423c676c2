"""checkpoint.live_lora_tensors: the LoRA's tensors under the file's names, found by peft's state-dict walk once
per model and then read from their modules (a periodic save's stall on the training thread was mostly that walk).
The cached answer is the walk's answer for every network type and for a text encoder's canonical names, and a
parameter replaced after the first call is read as it is now."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from loraspec_worker import tiny_base  # noqa: E402
from loraspec_worker.train import checkpoint  # noqa: E402
from loraspec_worker.train.config import TEXT_ENCODER_TARGETS  # noqa: E402
from loraspec_worker.train.dev_request import dev_config  # noqa: E402
from loraspec_worker.train.model import add_lora  # noqa: E402


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return tiny_base.make_tiny_base("sdxl", str(tmp_path_factory.mktemp("base") / "sdxl"), seed=0)


def fresh(model, prefix):
    """The walk itself (what the first call returns), bypassing the cache."""
    checkpoint._NAMES.pop(model, None)
    out = checkpoint.live_lora_tensors(model, prefix)
    return out


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(a[k].data_ptr() == b[k].data_ptr() and torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("kind", ["lora", "dora", "lokr", "loha"])
def test_the_cached_names_are_the_walks_for_every_network_type(kind, base):
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel.from_pretrained(base, subfolder="unet")
    add_lora(unet, dev_config(arch="sdxl", network_type=kind, rank=4, alpha=4), ["to_q", "to_k", "to_v", "to_out.0"])
    walked = fresh(unet, "unet")
    assert walked and unet in checkpoint._NAMES  # every name is a parameter: cached
    cached = checkpoint.live_lora_tensors(unet, "unet")
    assert same(cached, walked)
    # a parameter whose tensor is replaced after the first call (p.data = ...) is read as it is now
    name, param = next((n, p) for n, p in unet.named_parameters() if p.requires_grad)
    param.data = param.data.clone() + 1.0
    assert same(checkpoint.live_lora_tensors(unet, "unet"), fresh(unet, "unet"))


def test_a_text_encoders_canonical_names_come_from_the_cache_too(base):
    from transformers import CLIPTextModel

    encoder = CLIPTextModel.from_pretrained(base, subfolder="text_encoder")
    add_lora(encoder, dev_config(arch="sdxl", rank=4, alpha=4), TEXT_ENCODER_TARGETS)
    walked = fresh(encoder, "text_encoder")
    assert all(k.startswith("text_encoder.text_model.") for k in walked)
    assert same(checkpoint.live_lora_tensors(encoder, "text_encoder"), walked)
