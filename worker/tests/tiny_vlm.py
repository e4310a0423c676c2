"""A tiny randomly initialised Florence-2 (BART text, DaViT vision) with a byte-level tokenizer
made in code: real architecture and processor, ~100 kB of weights, no downloads.

Usage: python worker/tests/tiny_vlm.py OUT_DIR  (the TypeScript worker-captioner test calls this).
"""

from __future__ import annotations

import os
import sys

from loraspec_worker.tiny_base import byte_chars


def build_tiny_florence2(out: str, seed: int = 0) -> str:
    import torch
    from transformers import BartConfig, BartTokenizer, CLIPImageProcessorPil, Florence2Config, Florence2ForConditionalGeneration, Florence2Processor
    from transformers.models.florence2.configuration_florence2 import Florence2VisionConfig

    os.makedirs(out, exist_ok=True)
    # Special tokens first (RoBERTa/BART order), then one entry per byte; no merges.
    vocab = {t: i for i, t in enumerate(["<pad>", "<unk>", "<s>", "</s>", "<mask>", "<image>"] + byte_chars())}
    tok = BartTokenizer(vocab=vocab, merges=[], extra_special_tokens={"image_token": "<image>"})
    # 32x32 input -> DaViT strides 4 then 2 -> 4x4 = 16 patch tokens + 1 pooled token.
    image_processor = CLIPImageProcessorPil(size={"height": 32, "width": 32}, crop_size={"height": 32, "width": 32}, do_center_crop=False, image_seq_length=17)
    processor = Florence2Processor(image_processor=image_processor, tokenizer=tok)
    text = BartConfig(
        vocab_size=len(tok), d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2, decoder_attention_heads=2,
        encoder_ffn_dim=32, decoder_ffn_dim=32, max_position_embeddings=256, pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id, decoder_start_token_id=tok.eos_token_id, forced_eos_token_id=tok.eos_token_id,
    )
    vision = Florence2VisionConfig(
        depths=[1, 1], patch_size=[7, 3], patch_stride=[4, 2], patch_padding=[3, 1], patch_prenorm=[False, True],
        embed_dim=[8, 16], num_heads=[1, 2], num_groups=[1, 2], window_size=2, projection_dim=16, max_position_embeddings=16,
    )
    config = Florence2Config(text_config=text.to_dict(), vision_config=vision.to_dict(), image_token_id=tok.image_token_id)
    torch.manual_seed(seed)
    model = Florence2ForConditionalGeneration(config).eval()
    # Random weights pick a special token first and decode to nothing: the tiny model's own
    # generation config suppresses special tokens (except end-of-sequence), as a real one never needs.
    model.generation_config.suppress_tokens = sorted((set(tok.all_special_ids) | {tok.image_token_id}) - {tok.eos_token_id})
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


if __name__ == "__main__":
    print(build_tiny_florence2(sys.argv[1]))
