"""The toy FLUX.1 base's pieces, on the CPU with untrained weights: the T5 tokenizer keeps the
world's words whole, and the training loop's text encoding is what FluxPipeline.encode_prompt
computes (including the empty prompt that caption dropout uses)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from toyworld import train_flux  # noqa: E402
from toyworld.tokenizer import toy_t5_tokenizer  # noqa: E402


def test_t5_tokenizer_keeps_world_words_whole_and_splits_new_words():
    tok = toy_t5_tokenizer()
    pieces = tok.convert_ids_to_tokens(tok("a small red circle in the top left on a grass background").input_ids)
    assert pieces == ["▁a", "▁small", "▁red", "▁circle", "▁in", "▁the", "▁top", "▁left", "▁on", "▁a", "▁grass", "▁background", "</s>"]
    assert tok.convert_ids_to_tokens(tok("txcl,").input_ids) == ["▁t", "x", "c", "l", ",", "</s>"]
    assert tok("").input_ids == [tok.eos_token_id]


@pytest.mark.parametrize("length", train_flux.T5_LENGTHS)
def test_training_text_encoding_is_the_pipelines(length):
    models = train_flux.build_models(0)
    pipe = train_flux.make_pipeline(models)
    prompts = ["txcl, medium, in the center on a night background", "a large red circle on the left on a sky background", ""]
    clip_ids, t5_ids = train_flux.tokenize(models, prompts, length)
    with torch.no_grad():
        ours = train_flux.encode_text(models["text_encoder"], models["text_encoder_2"], clip_ids, t5_ids)
        embeds, pooled, text_ids = pipe.encode_prompt(prompt=prompts, prompt_2=None, device=torch.device("cpu"), max_sequence_length=length)
    assert torch.equal(ours["embeds"], embeds) and torch.equal(ours["pooled"], pooled)
    assert torch.equal(ours["text_ids"], text_ids.float()) and embeds.shape[1] == length
