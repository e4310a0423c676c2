"""shape_trace.py's attention recomputation is diffusers' own (the recomputed output equals what the
block's attention returns, double and single blocks, RoPE on), its key groups and object tokens
are right, and the probes run end to end on a tiny random FLUX.1 pipeline."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from toyworld import shape_trace, world  # noqa: E402
from toyworld.train_flux import build_models, make_pipeline  # noqa: E402


@pytest.fixture(scope="module")
def pipe():
    torch.set_num_threads(1)
    p = make_pipeline(build_models(seed=0, heads=2, double_layers=1, single_layers=1))
    p.vae.register_to_config(shift_factor=0.0, scaling_factor=1.0)  # what train_vae sets after training
    for m in (p.transformer, p.text_encoder, p.text_encoder_2, p.vae):
        m.eval()
    with torch.no_grad():  # random weights give near-uniform attention; sharpen the QK norms so a wrong RoPE shows
        for blk in [*p.transformer.transformer_blocks, *p.transformer.single_transformer_blocks]:
            for name in ("norm_q", "norm_k", "norm_added_q", "norm_added_k"):
                norm = getattr(blk.attn, name, None)
                if norm is not None and norm.weight is not None:
                    norm.weight.normal_(3.0, 1.0)
    return p


def test_recomputed_attention_matches_the_blocks_own(pipe):
    tr = pipe.transformer
    seen = {}

    def pre(name):
        return lambda m, a, kw: seen.__setitem__(name + "_in", kw)

    def post(name):
        return lambda m, a, kw, out: seen.__setitem__(name + "_out", out)

    handles = []
    for name, blk in (("double", tr.transformer_blocks[0]), ("single", tr.single_transformer_blocks[0])):
        handles.append(blk.attn.register_forward_pre_hook(pre(name), with_kwargs=True))
        handles.append(blk.attn.register_forward_hook(post(name), with_kwargs=True))
    scenes = shape_trace._scenes(2)
    z = shape_trace._latents(pipe, scenes)
    text = shape_trace._encode(pipe, [world.natural_caption(s) for s in scenes], 16)[0]
    shape_trace._forward(pipe, z, torch.randn(z.shape), 0.6, text)
    for h in handles:
        h.remove()
    with torch.no_grad():
        kw = seen["double_in"]
        probs, v = shape_trace.attention_probs(tr.transformer_blocks[0].attn, kw["hidden_states"], kw["encoder_hidden_states"], kw["image_rotary_emb"])
        out = shape_trace.mix(probs, v)
        attn = tr.transformer_blocks[0].attn
        image, txt = seen["double_out"]
        torch.testing.assert_close(attn.to_out[0](out[:, 16:]), image, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(attn.to_add_out(out[:, :16]), txt, atol=1e-5, rtol=1e-4)
        kw = seen["single_in"]
        probs, v = shape_trace.attention_probs(tr.single_transformer_blocks[0].attn, kw["hidden_states"], None, kw["image_rotary_emb"])
        torch.testing.assert_close(shape_trace.mix(probs, v), seen["single_out"], atol=1e-5, rtol=1e-4)
        # without RoPE the recomputation differs: the check can fail
        probs, v = shape_trace.attention_probs(tr.single_transformer_blocks[0].attn, kw["hidden_states"], None, None)
        assert not torch.allclose(shape_trace.mix(probs, v), seen["single_out"], atol=1e-3)


def test_key_groups_name_the_words_padding_and_image(pipe):
    t5 = pipe.tokenizer_2(["a small red circle in the center on a sky background"], padding="max_length", max_length=20,
                          return_tensors="pt").input_ids
    g = shape_trace.key_groups(t5, shape_trace.word_ids(pipe.tokenizer_2), shape_trace.word_ids(pipe.tokenizer_2, world.COLOUR_NAMES), 4)
    real = int((t5 != 0).sum())
    assert g.shape == (1, 24)
    assert int((g == 0).sum()) == 1 and int((g == 1).sum()) == 1  # "circle", "red"
    assert int((g == 2).sum()) == real - 2 and int((g == 3).sum()) == 20 - real and g[0, 20:].tolist() == [4] * 4
    assert g[0, 3] == 0 and g[0, 2] == 1  # a small red circle: the fourth and third pieces


def test_object_tokens_sit_where_the_object_is():
    scene = world.random_scene(5, two_objects=0.0, fixed={"position": 0, "size": "medium"})
    m = shape_trace.object_tokens([scene], 8)[0].view(8, 8)
    assert m[:3, :3].any() and not m[5:, 5:].any()


def test_probes_run_end_to_end(pipe):
    mass = shape_trace.attention_mass(pipe, count=4, lengths=(16,), sigmas=(0.6,), batch=2)
    assert [r["block"] for r in mass["rows"]] == ["double0", "single0"]
    for r in mass["rows"]:
        for where in ("all", "object"):
            assert abs(sum(r[f"{where}_{g}"] for g in shape_trace.GROUPS) - 1) < 1e-3
    hidden = shape_trace.hidden_probe(pipe, count=12, test=4, sigmas=(0.6,), length=16, batch=6)
    blocks = {r["block"] for r in hidden["rows"]}
    assert blocks == {"input", "double0", "single0", "double0.text_message", "single0.text_message", "t5", "double0.text_stream",
                      "single0.text_stream"}
    assert {r["pool"] for r in hidden["rows"] if r["block"] == "t5"} == {"real", "padding"}
    assert all(0 <= r["shape_swapped_prompted"] <= 1 for r in hidden["rows"])
    assert all(r["shape_swap_change"] == 0 for r in hidden["rows"] if r["block"] == "input")  # the image path alone: no caption
    assert all(r["shape_swap_change"] > 0 for r in hidden["rows"] if r["block"] == "single0")
    carriers = shape_trace.text_carriers(pipe, count=12, test=4, lengths=(16,))
    assert set(carriers["rows"][0]) >= {"shape_from_shape_word", "shape_from_padding", "colour_from_colour_word"}
