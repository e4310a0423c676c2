"""`make-tiny-base --arch sdxl|flux1|flux2-klein --out DIR [--seed N]`

Writes a diffusers-format base model with the real classes at tiny widths, random weights from a
seed and tokenizers built in code, so tests train and sample without downloading anything.
`DiffusionPipeline.from_pretrained(DIR)` loads the result. Each folder is a few MB.
"""

from __future__ import annotations

import os
import string

from .protocol import WorkerError, emit, phase, require

ARCHES = ("sdxl", "flux1", "flux2-klein", "zimage", "qwen-image")

# CLIP's byte-to-unicode table (GPT-2 style byte-level BPE): every byte gets a printable char.
def byte_chars() -> list[str]:
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return [chr(c) for c in chars]


def clip_tokenizer(merges=()):
    """A CLIP BPE tokenizer over the 256 byte characters (with and without the end-of-word mark),
    then one id per merged symbol in `merges` order, then the two specials: 514 ids without merges
    (the toy world's tokenizer passes the merges it learns over its words)."""
    from transformers import CLIPTokenizer

    chars = byte_chars()
    vocab: dict[str, int] = {}
    for c in chars:
        vocab[c] = len(vocab)
    for c in chars:
        vocab[c + "</w>"] = len(vocab)
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    tok = CLIPTokenizer(vocab=vocab, merges=list(merges), pad_token="<|endoftext|>")
    tok.model_max_length = 77
    return tok


def t5_tokenizer(words=()):
    """A T5 Unigram tokenizer over ASCII letters, digits and punctuation. `words` become whole
    pieces that always outscore spelling them out (the letters cost -2.5 - 3 per extra letter)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import T5TokenizerFast

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    pieces += [("▁" + w, -1.0) for w in words]
    pieces += [(c, -3.0) for c in string.ascii_letters + string.digits + string.punctuation]
    taken = {p for p, _ in pieces}
    pieces += [("▁" + c, -2.5) for c in string.ascii_letters if "▁" + c not in taken]
    tk = Tokenizer(models.Unigram(pieces, unk_id=2, byte_fallback=False))
    tk.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tk.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    tk.post_processor = processors.TemplateProcessing(single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", 1)])
    tok = T5TokenizerFast(tokenizer_object=tk, pad_token="<pad>", eos_token="</s>", unk_token="<unk>", extra_ids=0)
    tok.model_max_length = 512
    return tok


def qwen_tokenizer():
    """A byte-level Qwen2 tokenizer with the chat markers FLUX.2 [klein] formats prompts with."""
    from transformers import Qwen2TokenizerFast

    vocab = {c: i for i, c in enumerate(byte_chars())}
    for special in ("<|endoftext|>", "<|im_start|>", "<|im_end|>"):
        vocab[special] = len(vocab)
    tok = Qwen2TokenizerFast(vocab=vocab, merges=[], unk_token=None, bos_token=None, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    tok.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    tok.chat_template = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    return tok


def flux_scheduler():
    """FLUX.1 [dev]'s scheduler config (FLUX.2 [klein] ships the same one)."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    return FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15,
                                           base_image_seq_len=256, max_image_seq_len=4096)


def folder_bytes(path: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def save_pipeline(pipe, out: str) -> int:
    """Saves a pipeline as a diffusers folder (safetensors); returns the folder's size in bytes."""
    os.makedirs(out, exist_ok=True)
    pipe.save_pretrained(out, safe_serialization=True)
    return folder_bytes(out)


def _tiny_vae(**extra):
    """The 4-latent-channel AutoencoderKL of the tiny SDXL and FLUX.1 bases (`extra`: each one's own settings)."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        block_out_channels=(8, 16),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        latent_channels=4,
        norm_num_groups=1,
        sample_size=32,
        **extra,
    )


def _clip_config(vocab: int, projection: bool):
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        vocab_size=vocab,
        hidden_size=32,
        intermediate_size=37,
        num_attention_heads=4,
        num_hidden_layers=2,
        max_position_embeddings=77,
        projection_dim=32,
        hidden_act="gelu",
        bos_token_id=vocab - 2,
        eos_token_id=vocab - 1,
        pad_token_id=vocab - 1,
    )


def build_sdxl(seed: int):
    import torch
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    tok = clip_tokenizer()
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=1,
        sample_size=16,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        transformer_layers_per_block=(1, 1),
        # 6 micro-conditioning values x 8 + the second encoder's pooled projection (32)
        projection_class_embeddings_input_dim=80,
        cross_attention_dim=64,  # both encoders' hidden states concatenated: 32 + 32
        norm_num_groups=1,
    )
    vae = _tiny_vae(scaling_factor=0.13025)
    text_encoder = CLIPTextModel(_clip_config(len(tok), False))
    text_encoder_2 = CLIPTextModelWithProjection(_clip_config(len(tok), True))
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", timestep_spacing="leading", steps_offset=1
    )
    return StableDiffusionXLPipeline(
        vae=vae,
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=tok,
        tokenizer_2=clip_tokenizer(),
        unet=unet,
        scheduler=scheduler,
    )


# FLUX.1's rotary axes for a head dim (they sum to it): the tiny default, and the real model's at 128.
FLUX_ROPE_AXES = {16: [4, 4, 8], 64: [8, 28, 28], 128: [16, 56, 56]}


def build_flux1(seed: int, attention_head_dim: int = 16):
    import torch
    from diffusers import FluxPipeline, FluxTransformer2DModel
    from transformers import CLIPTextModel, T5Config, T5EncoderModel

    clip = clip_tokenizer()
    t5 = t5_tokenizer()
    torch.manual_seed(seed)
    transformer = FluxTransformer2DModel(
        patch_size=1,
        in_channels=16,  # 4 latent channels packed 2x2
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=attention_head_dim,
        num_attention_heads=2,
        joint_attention_dim=32,  # T5 d_model
        pooled_projection_dim=32,  # CLIP hidden size
        guidance_embeds=True,  # like FLUX.1 [dev]
        axes_dims_rope=FLUX_ROPE_AXES[attention_head_dim],
    )
    vae = _tiny_vae(use_quant_conv=False, use_post_quant_conv=False, shift_factor=0.1159, scaling_factor=0.3611)
    text_encoder = CLIPTextModel(_clip_config(len(clip), False))
    text_encoder_2 = T5EncoderModel(
        T5Config(vocab_size=len(t5), d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4, relative_attention_num_buckets=8,
                 feed_forward_proj="gated-gelu", pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)
    )
    scheduler = flux_scheduler()
    return FluxPipeline(
        scheduler=scheduler, vae=vae, text_encoder=text_encoder, tokenizer=clip, text_encoder_2=text_encoder_2,
        tokenizer_2=t5, transformer=transformer,
    )


# FLUX.2 [klein] reads the Qwen3 hidden states of these layers (the pipeline's default), so the
# tiny encoder keeps 28 layers at width 16.
KLEIN_LAYERS = (9, 18, 27)


def build_flux2_klein(seed: int):
    import torch
    from diffusers import AutoencoderKLFlux2, Flux2KleinPipeline, Flux2Transformer2DModel
    from transformers import Qwen3Config, Qwen3ForCausalLM

    tok = qwen_tokenizer()
    torch.manual_seed(seed)
    hidden = 16
    transformer = Flux2Transformer2DModel(
        patch_size=1,
        in_channels=16,  # 4 latent channels patchified 2x2
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=hidden * len(KLEIN_LAYERS),
        timestep_guidance_channels=256,
        axes_dims_rope=[4, 4, 4, 4],
        guidance_embeds=False,
    )
    text_encoder = Qwen3ForCausalLM(
        Qwen3Config(vocab_size=len(tok), hidden_size=hidden, intermediate_size=16, num_hidden_layers=28, num_attention_heads=2,
                    num_key_value_heads=2, head_dim=8, max_position_embeddings=1024, tie_word_embeddings=True)
    )
    vae = AutoencoderKLFlux2(
        sample_size=32,
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        block_out_channels=(8, 16),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=1,
        use_quant_conv=False,
        use_post_quant_conv=False,
    )
    scheduler = flux_scheduler()
    return Flux2KleinPipeline(scheduler=scheduler, vae=vae, text_encoder=text_encoder, tokenizer=tok, transformer=transformer,
                              is_distilled=False)


def build_zimage(seed: int):
    import torch
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, ZImagePipeline, ZImageTransformer2DModel
    from transformers import Qwen3Config, Qwen3Model

    tok = qwen_tokenizer()
    torch.manual_seed(seed)
    hidden = 16
    transformer = ZImageTransformer2DModel(
        all_patch_size=(2,),
        all_f_patch_size=(1,),
        in_channels=16,
        dim=32,
        n_layers=2,
        n_refiner_layers=1,
        n_heads=2,
        n_kv_heads=2,
        qk_norm=True,
        cap_feat_dim=hidden,  # the Qwen3 encoder's hidden size (the pipeline reads hidden_states[-2])
        axes_dims=[8, 4, 4],
        axes_lens=[256, 512, 512],  # the tiny VAE halves (not /8): a 1216 px bucket is 304 patches, so SDXL-size buckets fit
    )
    with torch.no_grad():  # these start as torch.empty: give them defined values
        transformer.x_pad_token.copy_(torch.ones_like(transformer.x_pad_token))
        transformer.cap_pad_token.copy_(torch.ones_like(transformer.cap_pad_token))
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        block_out_channels=(16, 32),
        layers_per_block=1,
        latent_channels=16,
        norm_num_groups=8,
        sample_size=32,
        scaling_factor=0.3611,
        shift_factor=0.1159,
    )
    text_encoder = Qwen3Model(
        Qwen3Config(vocab_size=len(tok), hidden_size=hidden, intermediate_size=16, num_hidden_layers=2, num_attention_heads=2,
                    num_key_value_heads=2, head_dim=8, max_position_embeddings=1024)
    )
    scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0)
    return ZImagePipeline(scheduler=scheduler, vae=vae, text_encoder=text_encoder, tokenizer=tok, transformer=transformer)


def build_qwen_image(seed: int):
    import torch
    from diffusers import AutoencoderKLQwenImage, FlowMatchEulerDiscreteScheduler, QwenImagePipeline, QwenImageTransformer2DModel
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    tok = qwen_tokenizer()
    torch.manual_seed(seed)
    hidden = 16
    transformer = QwenImageTransformer2DModel(
        patch_size=2,
        in_channels=16,  # 4 latent channels packed 2x2
        out_channels=4,
        num_layers=2,
        attention_head_dim=16,
        num_attention_heads=3,
        joint_attention_dim=hidden,
        guidance_embeds=False,
        axes_dims_rope=(8, 4, 4),
    )
    z_dim = 4
    vae = AutoencoderKLQwenImage(
        base_dim=8,  # 0.6 MB instead of diffusers' test width (16 MB)
        z_dim=z_dim,
        dim_mult=[1, 2, 2],
        num_res_blocks=1,
        temperal_downsample=[False, True],
        latents_mean=[0.0] * z_dim,
        latents_std=[1.0] * z_dim,
    )
    n = len(tok)
    text_encoder = Qwen2_5_VLForConditionalGeneration(
        Qwen2_5_VLConfig(
            text_config={
                "hidden_size": hidden,
                "intermediate_size": 16,
                "num_hidden_layers": 2,
                "num_attention_heads": 2,
                "num_key_value_heads": 2,
                "vocab_size": n + 3,
                "rope_scaling": {"mrope_section": [1, 1, 2], "rope_type": "default", "type": "default"},
                "rope_theta": 1000000.0,
                "bos_token_id": None,
                "eos_token_id": tok.convert_tokens_to_ids("<|im_end|>"),
            },
            vision_config={"depth": 1, "hidden_size": 16, "intermediate_size": 16, "num_heads": 2, "out_hidden_size": hidden},
            hidden_size=hidden,
            vocab_size=n + 3,
            bos_token_id=None,
            eos_token_id=tok.convert_tokens_to_ids("<|im_end|>"),
            # image placeholder ids past the text vocabulary (never produced by text prompts)
            vision_start_token_id=n,
            vision_end_token_id=n + 1,
            vision_token_id=n + 2,
        )
    ).eval()
    scheduler = FlowMatchEulerDiscreteScheduler(shift=1.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=0.9,
                                                base_image_seq_len=256, max_image_seq_len=8192)
    return QwenImagePipeline(scheduler=scheduler, vae=vae, text_encoder=text_encoder, tokenizer=tok, transformer=transformer)


BUILDERS = {"sdxl": build_sdxl, "flux1": build_flux1, "flux2-klein": build_flux2_klein, "zimage": build_zimage, "qwen-image": build_qwen_image}


def make_tiny_base(arch: str, out: str, seed: int = 0) -> str:
    if arch not in BUILDERS:
        raise WorkerError("E_USAGE", f"unknown arch '{arch}'", hint=f"one of {', '.join(ARCHES)}")
    save_pipeline(BUILDERS[arch](seed), out)
    return out


def run(request: dict) -> dict:
    arch = require(request, "arch", str)
    out = require(request, "out", str)
    seed = int(request.get("seed", 0))
    phase("make-tiny-base", f"{arch} -> {out}")
    make_tiny_base(arch, out, seed)
    size = folder_bytes(out)
    emit({"type": "log", "level": "info", "message": f"wrote {size / 1e6:.1f} MB"})
    return {"path": os.path.abspath(out), "arch": arch, "bytes": size}
