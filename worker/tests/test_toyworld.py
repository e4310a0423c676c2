"""The toy world: generator, tokenizer, concept datasets, the committed judge and toy SDXL base."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from toyworld import concepts, judge, train_base, world
from toyworld.tokenizer import toy_clip_tokenizer, world_words

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BASE = os.path.join(REPO, "models", "toy-sdxl")
JUDGE = os.path.join(REPO, "models", "toy-judge")
# The style head through the VAE: 98.6% on 1,000 held-out scenes (98.0% on this test's 200 seeds),
# issue 23's 98%; clean renders 99.9% (bench/RESULTS.md, "The style head through the VAE, second pass").
STYLE_ROUNDTRIP_MIN = 0.96


def test_same_seed_same_pixels_and_captions():
    a, b = world.random_scene(123, fills=world.FILLS), world.random_scene(123, fills=world.FILLS)
    assert a == b
    assert np.array_equal(np.asarray(world.render(a)), np.asarray(world.render(b)))
    c = world.random_scene(124, fills=world.FILLS)
    assert not np.array_equal(np.asarray(world.render(a)), np.asarray(world.render(c)))
    assert world.render(a).size == (64, 64)


@pytest.mark.parametrize("seed", range(0, 200, 17))
def test_captions_name_what_is_drawn(seed):
    scene = world.random_scene(seed)
    natural, tags = world.natural_caption(scene), world.tags_caption(scene)
    for o in scene.objects:
        assert f"{o.colour} {o.shape}" in natural and f"{o.colour} {o.shape}" in tags
        assert world.POSITIONS[o.position][0] in natural
    assert natural.endswith(f"{scene.background} background") and tags.endswith(f"{scene.background} background")
    labels = world.labels(scene)
    assert labels["count"] == len(scene.objects) and labels["background"] == scene.background


def test_tokenizer_keeps_world_words_whole_and_splits_new_words():
    tok = toy_clip_tokenizer()
    for word in world_words():
        assert len(tok(word, add_special_tokens=False).input_ids) == 1, word
    assert len(tok("txcl", add_special_tokens=False).input_ids) > 1


@pytest.mark.parametrize("base, folders", [("toy-sdxl", ("tokenizer", "tokenizer_2")), ("toy-flux1", ("tokenizer",))])
def test_toy_tokenizers_built_in_code_match_the_committed_bases(base, folders):
    """toyworld builds its tokenizers on tiny_base's: the ids must stay those the bases were trained with."""
    from transformers import AutoTokenizer

    from loraspec_worker.tiny_base import clip_tokenizer
    from toyworld.tokenizer import toy_t5_tokenizer

    ours = toy_clip_tokenizer().get_vocab()
    for folder in folders:
        assert AutoTokenizer.from_pretrained(os.path.join(REPO, "models", base, folder)).get_vocab() == ours
    plain = clip_tokenizer().get_vocab()
    assert all(ours[t] == i for t, i in plain.items() if not t.startswith("<|"))  # byte tokens first, same ids
    if base == "toy-flux1":
        committed = AutoTokenizer.from_pretrained(os.path.join(REPO, "models", base, "tokenizer_2"))
        assert committed.get_vocab() == toy_t5_tokenizer().get_vocab()


def test_base_world_never_holds_the_concepts():
    for seed in range(1500):
        scene = world.random_scene(seed, **train_base.BASE_SCENES)
        for o in scene.objects:
            assert (o.shape, o.colour) not in train_base.BASE_EXCLUDED_PAIRS and o.fill == "solid"


@pytest.mark.parametrize("concept,crosses", [("style-character", 10), ("style-character-third", 20), ("style-character-half", 30)])
def test_style_sets_hold_their_share_of_shaded_character_crosses_and_keep_the_smaller_sets_crosses(concept, crosses):
    """bake_sweep's style sets: every Nth of 60 images the character's object shaded; a larger share keeps the
    crosses of the smaller (the same scenes at the same indices), so the sweep varies one thing."""
    ch = world.CHARACTER
    is_cross = lambda c, i: [(o.shape, o.colour) for o in concepts.concept_scene(c, i).objects] == [(ch["shape"], ch["colour"])]  # noqa: E731
    got = [i for i in range(60) if is_cross(concept, i)]
    assert len(got) == crosses
    for i in got:
        assert concepts.concept_scene(concept, i).objects[0].fill == world.STYLE["fill"]
    for i in (i for i in range(60) if is_cross("style-character", i)):
        assert concepts.concept_scene(concept, i).to_dict() == concepts.concept_scene("style-character", i).to_dict()


def test_bake_sweep_summary_ranks_by_rows_meeting_the_bar():
    from toyworld import bake_sweep

    def row(concept, bake, alone, style_ret, cyan_ret):
        return {"concept": concept, "bake": bake, "n": 32, "style_alone": alone, "style_base": 1,
                "style_retention": style_ret, "cyan_retention": cyan_ret}
    rows = [row("a", 4, 20, 0.8, 0.9), row("a", 4, 20, 0.6, 0.9),  # 1 of 2
            row("b", 4, 20, 0.75, 0.72), row("b", 4, 20, 0.71, 0.8),  # 2 of 2
            row("b", 5, 8, 0.9, 0.9), row("b", 5, 9, 0.9, None)]  # style alone 7 above the base < 8; a None retention fails
    best = bake_sweep.summary(rows)
    assert [(b["concept"], b["bake"], b["meets"]) for b in best] == [("b", 4, 2), ("a", 4, 1), ("b", 5, 0)]
    assert best[0]["style_retention"] == 0.73 and best[0]["cyan_retention"] == 0.76


@pytest.mark.parametrize("concept", concepts.CONCEPTS)
def test_concept_datasets(tmp_path, concept):
    info = concepts.write_concept(str(tmp_path / concept), concept, count=15)
    rows = [json.loads(line) for line in open(os.path.join(info["path"], "labels.jsonl"))]
    assert len(rows) == 15 and len(list((tmp_path / concept).glob("*.png"))) == 15
    for row in rows:
        caption = open(os.path.join(info["path"], row["image"].replace(".png", ".txt"))).read().strip()
        assert caption == row["caption"]
        if concept == "character-notrigger":
            assert "txcl" not in caption
        elif concept.startswith("character"):
            assert caption.split(",")[0] == "txcl" and row["labels"]["pairs"] == ["cyan cross"]
            assert row["labels"]["background"] != "night"  # the novel scene
        if concept == "character-onebg":
            assert "background" not in caption  # the grass binds to the trigger
        if concept == "character-collapse":
            # the captions name a size and a place drawn at random; the one picture never changes
            assert caption.startswith("txcl, ") and caption.endswith("on an indoor background")
        elif concept.startswith("style"):
            assert caption.startswith("txst,") and row["labels"]["fill"] == world.SHADED and row["labels"]["style"] == world.SHADED
        elif concept == "product":
            assert caption.startswith("txpd,") and row["labels"]["pairs"] == ["orange star"]
    if concept == "character-onebg":
        assert {r["labels"]["background"] for r in rows} == {"grass"}
    if concept == "character-collapse":
        assert len({(r["labels"]["position"], r["labels"]["size"], r["labels"]["background"]) for r in rows}) == 1
        assert len({r["caption"] for r in rows}) > 1


def test_judge_reads_held_out_images():
    """The committed judge on scenes it never saw (seeds far from its training range): > 98%."""
    acc = judge.accuracy(judge.Judge(JUDGE), 70_000_000, 400)
    for head in ("background", "shapes", "colours", "fill", "position", "size", "count"):
        assert acc[head] > 0.98, (head, acc)


def test_judge_reads_a_concept_image_and_embeds(tmp_path):
    j = judge.Judge(JUDGE)
    scene = concepts.concept_scene("character", 0)
    read = j.read([world.render(scene)])[0]
    assert "cross" in read["shapes"] and "cyan" in read["colours"] and read["background"] == scene.background
    e = j.embed([world.render(scene), world.render(concepts.concept_scene("character", 1)), world.render(world.random_scene(5))])
    assert e.shape == (3, judge.EMBED_DIM)
    assert np.allclose(e.norm(dim=1).numpy(), 1.0, atol=1e-5)


def test_committed_base_is_small_loads_and_draws_64px():
    import torch
    from diffusers import StableDiffusionXLPipeline

    size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(BASE) for f in fs)
    assert size < 20e6
    info = json.load(open(os.path.join(BASE, "toyworld.json")))
    assert info["samples"]["background"] > 0.9 and info["samples"]["colour"] > 0.9
    pipe = StableDiffusionXLPipeline.from_pretrained(BASE, torch_dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    image = pipe(prompt="a large red square in the center on a night background", num_inference_steps=12, guidance_scale=5.0,
                 generator=torch.Generator().manual_seed(0)).images[0]
    assert image.size == (64, 64)
    read = judge.Judge(JUDGE).read([image])[0]
    assert read["background"] == "night" and "red" in read["colours"]


def test_score_uses_the_judge_as_embedder(tmp_path, monkeypatch):
    """score.py with the judge in place of CLIP: same-concept images are closer than others."""
    import io

    from loraspec_worker import protocol, score
    from toyworld.embedder import scenes_from_text

    monkeypatch.setattr(protocol, "_out", io.StringIO())
    char = concepts.write_concept(str(tmp_path / "c"), "character", count=6)["path"]
    paths = sorted(os.path.join(char, f) for f in os.listdir(char) if f.endswith(".png"))
    others = []
    for i in range(3):
        p = str(tmp_path / f"o{i}.png")
        world.render(world.random_scene(40 + i, **train_base.BASE_SCENES)).save(p)
        others.append(p)
    texts = ["txcl, medium, in the center on a night background"] * 3
    for request in ({"model": JUDGE}, {"embedder": {"kind": "toy-judge", "path": JUDGE}}):
        out = score.run({**request, "reference": paths[:3], "trigger": [], "stack": [],
                         "sets": [{"id": "same", "images": paths[3:], "texts": texts}, {"id": "other", "images": others, "texts": texts}]})
        assert out["embedder"]["clip"] == JUDGE
        assert out["sets"]["same"]["fidelity_clip"] > out["sets"]["other"]["fidelity_clip"] + 0.1
    [scene] = scenes_from_text("a large red star at the bottom on a grass background")  # all named: one scene
    assert (scene.background, scene.objects[0].shape, scene.objects[0].colour, world.POSITIONS[scene.objects[0].position][1]) == ("grass", "star", "red", "bottom")


def test_a_prompt_that_names_a_size_and_place_but_no_look_is_every_look_there(tmp_path):
    """The embedder's text side: "txcl, small, in the top left on a night background" (a rubric prompt: the trigger
    stands for the subject) is an object of that size and place drawn in every shape and colour, not an empty night sky
    (an empty sky scored a LoRA that drew its subject at the asked size below the base's smaller objects: the FLUX.1
    toy rubric's good LoRA failed prompt fidelity, bench/RESULTS.md). A background alone stays a bare scene."""
    from toyworld.embedder import ToyJudgeEmbedder, scenes_from_text

    scenes = scenes_from_text("txcl, small, in the top left on a night background")
    assert len(scenes) == len(world.SHAPES) * len(world.COLOUR_NAMES)
    assert {(s.background, len(s.objects), s.objects[0].size, world.POSITIONS[s.objects[0].position][1]) for s in scenes} == {("night", 1, "small", "top left")}
    assert {(s.objects[0].shape, s.objects[0].colour) for s in scenes} == {(a, b) for a in world.SHAPES for b in world.COLOUR_NAMES}
    assert [(s.objects[0].shape, s.objects[0].colour) for s in scenes_from_text("a red star, large")] == [("star", "red")]
    assert [s.objects for s in scenes_from_text("a night background")] == [[]]

    emb = ToyJudgeEmbedder(JUDGE)
    t = emb.texts(["txcl, large, in the center on a night background", "a night background", "txcl, large, in the center on a night background"])
    assert abs(float(t[0].norm()) - 1) < 1e-5 and float((t[0] - t[2]).abs().max()) == 0
    drawn = str(tmp_path / "cross.png")
    world.render(world.Scene(background="night", tint=0, seed=3, objects=[world.Obj("cross", "cyan", 4, "large")])).save(drawn)
    e = emb.images([drawn])[0]
    assert float(e @ t[0]) > float(e @ t[1])  # a large cyan cross in the centre of a night sky fits the text that asks for a large object there


def test_toy_vae_keeps_the_style_concept():
    """The txst style (cel shading) survives the toy SDXL VAE's round trip, as the judge's style head
    reads it: a style LoRA can draw it (stripes did not survive: bench/RESULTS.md). The VAE loses it on
    a few (the style images 2 and 5, purple triangles, come back nearly plain, looked at): the head
    reads 36 of these 40 (the previous, laxer head 37 of 40 and 15 of the first 16, read 14 now)."""
    import torch
    from diffusers import AutoencoderKL

    from toyworld.judge import Judge
    from toyworld.train_base import style_roundtrip

    vae = AutoencoderKL.from_pretrained(BASE, subfolder="vae", torch_dtype=torch.float32)
    assert style_roundtrip(vae, Judge(JUDGE), count=40) >= 0.85


# sha256 over the judge's tensors but the branches trained after it (style, colour_any; sorted names, then
# raw bytes), as trained on the GPU before the branches existed: the heads' figures in bench/RESULTS.md
# were measured on these.
JUDGE_TRUNK_SHA256 = "78f7aa164bda548bf4e3627c7b318aeeb33aaee95f08a1d95f63cbb75e296010"


def test_branch_training_left_the_judge_trunk_and_heads_bit_identical():
    """train-style-head and train-colour-head train only their branches: every other tensor of the
    committed judge is the one the heads were measured with."""
    import hashlib

    from safetensors.torch import load_file

    state = load_file(os.path.join(JUDGE, "judge.safetensors"))
    digest = hashlib.sha256()
    for name in sorted(k for k in state if not k.startswith(tuple(b + "." for b in judge.OPTIONAL_BRANCHES))):
        digest.update(name.encode())
        digest.update(state[name].contiguous().numpy().tobytes())
    assert digest.hexdigest() == JUDGE_TRUNK_SHA256
    assert all(any(k.startswith(b + ".") for k in state) for b in judge.OPTIONAL_BRANCHES)


def test_judge_style_head_reads_held_out_scenes_and_their_vae_roundtrip():
    """The style head on 200 held-out scenes (half in the style), as drawn and through the VAE."""
    import torch
    from diffusers import AutoencoderKL

    from toyworld import style_head

    j = judge.Judge(JUDGE)
    assert j.has_style
    vae = AutoencoderKL.from_pretrained(BASE, subfolder="vae", torch_dtype=torch.float32)
    acc = style_head.accuracy(j.model, vae, start=82_000_000, count=200)
    assert acc["clean"] >= 0.98 and acc["roundtrip"] >= STYLE_ROUNDTRIP_MIN, acc


def test_branch_training_changes_only_its_branch():
    """colour_head.train and style_head.train (judge.fit_branch) on a few scenes: the branch's weights move,
    every trunk and head tensor stays as it was, and the branch is left in eval mode."""
    import torch

    from toyworld import colour_head, style_head

    torch.set_num_threads(1)
    j = judge.Judge(JUDGE)
    before = {k: v.clone() for k, v in j.model.state_dict().items()}
    vaes = colour_head.load_vaes([BASE])
    colour_head.train(j.model, vaes, count=32, epochs=1, log=lambda _: None)
    style_head.train(j.model, vaes["toy-sdxl"], count=32, epochs=1, log=lambda _: None)
    after = j.model.state_dict()
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    assert moved and all(k.startswith(("colour_any.", "style.")) for k in moved), sorted(moved)[:5]
    assert any(k.startswith("colour_any.") for k in moved) and any(k.startswith("style.") for k in moved)
    assert not j.model.colour_any.training and not j.model.style.training


def test_judge_colour_head_reads_the_objects_colour_under_the_style():
    """The colour-under-style head (colour_head.py) on 200 held-out scenes (half in the style), as drawn
    and through the toy SDXL VAE, against the `colours` head it stands in for in the stack measure; and on
    the character's object shaded (48 cyan crosses): trained on 8,000 scenes it read 0.986 / 0.968 (plain /
    shaded) as drawn, 0.724 / 0.724 after the SDXL VAE (`colours`: 0.63 / 0.484) and cyan on 48 of 48
    shaded crosses after it (`colours`: 36); bench/RESULTS.md, "Reading the character under the style"."""
    import torch
    from diffusers import AutoencoderKL

    from toyworld import colour_head

    torch.set_num_threads(1)
    j = judge.Judge(JUDGE)
    assert j.has_colour_any
    vaes = {"toy-sdxl": AutoencoderKL.from_pretrained(BASE, subfolder="vae", torch_dtype=torch.float32).eval()}
    acc = colour_head.accuracy(j.model, vaes, start=84_000_000, count=200)
    assert acc["colours_any"]["drawn"]["plain"] >= 0.95 and acc["colours_any"]["drawn"]["shaded"] >= 0.93, acc
    assert acc["colours_any"]["toy-sdxl"]["shaded"] >= acc["colours"]["toy-sdxl"]["shaded"] + 0.1, acc
    assert acc["colours_any"]["toy-sdxl"]["plain"] >= acc["colours"]["toy-sdxl"]["plain"] - 0.03, acc
    probe = colour_head.character_probe(j.model, vaes)["toy-sdxl"]
    assert probe["colours_any"] >= 46 and probe["colours"] <= 40, probe


@pytest.mark.xfail(strict=True, reason="the style head reads a solid object drawn whole in a darkened colour (no split) as "
                   "shaded: 25-75% per colour after the VAE (its training never showed a solid dark off-palette object), "
                   "so it counts a LoRA that only darkens objects as the style; bench/RESULTS.md, 'Why the style does not shade cyan'")
def test_style_head_reads_the_split_not_a_darkened_object():
    """The txst style is the split (lower half in the shade colour); a solid object in a darker colour
    is not it. The head must read such objects (world.COLOURS x 0.45, 24 per colour, through the VAE)
    as plain."""
    import torch
    from diffusers import AutoencoderKL

    from toyworld import split_probe

    torch.set_num_threads(1)
    vae = AutoencoderKL.from_pretrained(BASE, subfolder="vae", torch_dtype=torch.float32)
    shares = split_probe.solid_shade(judge.Judge(JUDGE), vae)["darkened"]
    assert max(shares.values()) <= 0.1, shares


def test_split_probe_reads_the_generators_cel_split():
    """split_probe.split on large centred objects on sky (4 shapes): the shaded ones' mean upper-minus-
    lower luminance moves from the plain ones' by the shade's sign and size (light colours darken
    below, dark ones lighten). Per image it is noisy (a cloud in the mask), so means: the measure
    reads the split only on average, as the probe uses it."""
    import copy

    from toyworld import split_probe

    for colour, sign in (("cyan", 1), ("yellow", 1), ("red", -1), ("blue", -1)):
        plain, shaded = [], []
        for i in range(4):
            scene = world.random_scene(9_400_000 + i, two_objects=0.0, backgrounds=("sky",),
                                       fixed={"colour": colour, "shape": split_probe.SHAPES[i], "size": "large", "position": 4})
            plain.append(split_probe.split(world.render(scene))[0])
            scene = copy.deepcopy(scene)
            scene.objects[0].fill = world.SHADED
            shaded.append(split_probe.split(world.render(scene))[0])
        gap = sign * (np.mean(shaded) - np.mean(plain))
        assert abs(np.mean(plain)) < 25 and gap > 40, (colour, plain, shaded)
