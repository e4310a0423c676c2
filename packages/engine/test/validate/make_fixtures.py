"""Test fixtures for the validation tests, made here with random weights (nothing downloaded).

usage: python make_fixtures.py OUT
Writes OUT/base (tiny SDXL), OUT/clip (tiny CLIP + processor), OUT/dataset (4 images),
OUT/zero.safetensors (peft's default init, B = 0: a LoRA whose trigger was never trained),
OUT/rand.safetensors (random A and B, diffusers format), OUT/rand_kohya.safetensors (the same
weights in Kohya format), OUT/style_kohya.safetensors (another random LoRA, Kohya format).
"""

import json
import os
import sys

import numpy as np
import torch
from diffusers import StableDiffusionXLPipeline
from diffusers.utils import convert_state_dict_to_kohya
from peft import LoraConfig
from peft.utils import get_peft_model_state_dict
from PIL import Image
from safetensors.torch import save_file
from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

from loraspec_worker import tiny_base


def lora(base, out_dir, name, trained, kohya, seed):
    torch.manual_seed(seed)
    pipe = StableDiffusionXLPipeline.from_pretrained(base)
    pipe.unet.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"], init_lora_weights=not trained))
    state = get_peft_model_state_dict(pipe.unet)
    if kohya:
        converted = convert_state_dict_to_kohya({f"unet.{k}": v for k, v in state.items()})
        save_file({k: v.contiguous() for k, v in converted.items()}, os.path.join(out_dir, name))
    else:
        StableDiffusionXLPipeline.save_lora_weights(out_dir, unet_lora_layers=state, weight_name=name)


def clip(out):
    tok = tiny_base.clip_tokenizer()
    vocab = len(tok)
    torch.manual_seed(0)
    config = CLIPConfig(
        text_config=dict(vocab_size=vocab, hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
                         max_position_embeddings=77, bos_token_id=vocab - 2, eos_token_id=vocab - 1, pad_token_id=vocab - 1),
        vision_config=dict(hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2, image_size=32, patch_size=8),
        projection_dim=16,
    )
    CLIPModel(config).save_pretrained(out)
    CLIPProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}), tokenizer=tok).save_pretrained(out)


def main(out):
    os.makedirs(out, exist_ok=True)
    base = tiny_base.make_tiny_base("sdxl", os.path.join(out, "base"), seed=0)
    clip(os.path.join(out, "clip"))
    ds = os.path.join(out, "dataset")
    os.makedirs(ds, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray((rng.random((32, 32, 3)) * 255).astype("uint8")).save(os.path.join(ds, f"img{i}.png"))
    lora(base, out, "zero.safetensors", trained=False, kohya=False, seed=0)
    lora(base, out, "rand.safetensors", trained=True, kohya=False, seed=1)
    lora(base, out, "rand_kohya.safetensors", trained=True, kohya=True, seed=1)
    lora(base, out, "style_kohya.safetensors", trained=True, kohya=True, seed=2)
    print(json.dumps({"base": base}))


if __name__ == "__main__":
    main(sys.argv[1])
