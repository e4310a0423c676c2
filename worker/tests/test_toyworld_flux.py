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


def test_half_scale_vae_gives_four_times_the_image_tokens_and_samples_64px():
    """--vae-downscale 2: 32x32x16 latents, 16x16 packed tokens; the trainer's Flux1.loss and
    FluxPipeline both run on it."""
    from loraspec_worker.train import Flux1
    from loraspec_worker.train.dev_request import dev_config

    models = train_flux.build_models(0, heads=2, double_layers=1, single_layers=1, vae_levels=2)
    models["vae"].register_to_config(shift_factor=0.0)  # train_vae sets it from the latents
    pipe = train_flux.make_pipeline(models)
    assert pipe.vae_scale_factor == 2
    with torch.no_grad():
        z = models["vae"].encode(torch.zeros(1, 3, 64, 64)).latent_dist.mode()
    assert tuple(z.shape) == (1, 16, 32, 32)
    flux = Flux1(pipe, dev_config(arch="flux1", guidance_scale=train_flux.GUIDANCE), torch.device("cpu"), torch.float32)
    clip_ids, t5_ids = train_flux.tokenize(models, ["a red circle in the center on a sky background"], 64)
    text = train_flux.encode_text(models["text_encoder"], models["text_encoder_2"], clip_ids, t5_ids)
    assert torch.isfinite(flux.loss(z, text, {}, torch.Generator().manual_seed(0)))
    pipe.set_progress_bar_config(disable=True)
    image = pipe(prompt=["a red circle"], num_inference_steps=2, guidance_scale=1.0, generator=torch.Generator().manual_seed(0),
                 **train_flux.sampling_kwargs(1.0, 64)).images[0]
    assert image.size == (64, 64)


def test_sweep_variants_fit_the_size_limit_and_parse():
    """Every variant of bench/toy-flux-sweep.py is a valid train-base command whose saved bf16
    folder stays under issue 23's 30 MB."""
    import bench_script
    from toyworld.__main__ import main

    sweep = bench_script.load("toy-flux-sweep.py")
    for name, extra in sweep.VARIANTS.items():
        flags = dict(zip(extra[::2], extra[1::2]))
        models = train_flux.build_models(0, heads=int(flags.get("--flux-heads", 6)), double_layers=int(flags.get("--flux-double", 2)),
                                         single_layers=int(flags.get("--flux-single", 4)),
                                         vae_levels={"4": 3, "2": 2}[flags.get("--vae-downscale", "4")])
        params = sum(p.numel() for k in ("transformer", "vae", "text_encoder", "text_encoder_2") for p in models[k].parameters())
        assert 2 * params < sweep.MAX_BYTES - 1_000_000, name  # bf16, with room for configs and tokenizers
    with pytest.raises(SystemExit) as exit_:  # the flags parse (--help after them exits 0 without training)
        main(["train-base", "--arch", "flux1", *sweep.VARIANTS["vae2-wide"], "--weighting", "shift", "--help"])
    assert exit_.value.code == 0


def test_object_masks_match_the_drawn_objects():
    """--object-weight's masks (where the objects changed the seeded background) agree with the
    objects' own polygons."""
    import numpy as np

    from toyworld import style_probe, world
    from toyworld.train_base import BASE_SCENES, make_base_dataset

    _, _, masks = make_base_dataset(0, 24, masks=True)
    for seed, mask in enumerate(masks):
        scene = world.random_scene(seed, **BASE_SCENES)
        covered, drawn = np.zeros((64, 64), bool), np.zeros((64, 64), bool)
        for m in style_probe._masks(scene):
            c = style_probe._coverage(m)[..., 0]
            covered |= c > 0
            drawn |= c > 0.5
        assert not (mask & ~covered).any(), seed  # nothing outside the objects
        assert (mask & drawn).sum() >= 0.95 * drawn.sum(), seed  # the objects' pixels (a white one on a pale wall loses a few)


def test_object_weighted_flow_loss():
    """Flux1.loss with extra["loss_weight"]: all ones is the plain loss; weight on part of the
    latents is that part's mean squared error."""
    from loraspec_worker.train import Flux1
    from loraspec_worker.train.dev_request import dev_config

    models = train_flux.build_models(0, heads=2, double_layers=1, single_layers=1)
    flux = Flux1(train_flux.make_pipeline(models), dev_config(arch="flux1", guidance_scale=train_flux.GUIDANCE), torch.device("cpu"), torch.float32)
    clip_ids, t5_ids = train_flux.tokenize(models, ["a red circle in the center on a sky background"] * 2, 64)
    text = train_flux.encode_text(models["text_encoder"], models["text_encoder_2"], clip_ids, t5_ids)
    z = torch.randn(2, 16, 16, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        plain = flux.loss(z, text, {}, torch.Generator().manual_seed(0))
        ones = flux.loss(z, text, {"loss_weight": torch.ones(2, 1, 16, 16)}, torch.Generator().manual_seed(0))
        left = torch.zeros(2, 1, 16, 16)
        left[..., :8] = 1
        half = flux.loss(z, text, {"loss_weight": left}, torch.Generator().manual_seed(0))
    assert torch.allclose(plain, ones, rtol=1e-5) and not torch.allclose(plain, half, rtol=1e-3)
    masks = torch.zeros(1, 64, 64, dtype=torch.bool)
    masks[0, 20:30, 20:30] = True
    w = train_flux.object_weights(masks, 4, 3.0)
    assert w.shape == (1, 1, 16, 16) and float(w.min()) == 1.0 and float(w.max()) == 4.0


@pytest.mark.parametrize("trained, sampled", [((32,), [32, 32]), ((512, 128), [512, 512, 128]), ((512, 128, 64, 64), [512, 512, 128])])
def test_the_evaluation_samples_only_at_lengths_the_base_trained_at(monkeypatch, trained, sampled):
    """train-base's end evaluation (evaluate_lengths, given train_transformer's record): a base
    trained at T5 32 alone is sampled at 32, never at FluxPipeline's 512; the committed base's
    512,128 as before (the same report keys)."""
    seen = []

    def record(pipe, judge, prompts, **kw):
        seen.append(kw["extra"]["max_sequence_length"])
        return {"max_sequence_length": kw["extra"]["max_sequence_length"]}

    monkeypatch.setattr(train_flux, "evaluate_base", record)
    report = train_flux.evaluate_lengths(None, None, [], trained, log=lambda m: None)
    assert seen == sampled and set(seen) <= set(trained)
    assert list(report) == ["samples", "samples_no_cfg", *[f"samples_no_cfg_t5_{n}" for n in sampled[2:]]]


def test_a_toy_flux_base_is_sampled_at_the_t5_length_its_toyworld_json_records(tmp_path):
    """base_sampling_length, what shape-probe, shape-trace and the toy LoRA tests sample and train at:
    the base's own trained lengths; the committed base (t32-outline, 2026-12-04) trained and samples at 32."""
    import json
    import os

    from loraspec_worker.protocol import WorkerError

    committed = os.path.join(os.path.dirname(__file__), "..", "..", "models", "toy-flux1")
    if os.path.exists(os.path.join(committed, "toyworld.json")):
        assert train_flux.base_t5_lengths(committed) == (32,) and train_flux.base_sampling_length(committed) == 32
    assert train_flux.base_t5_lengths(str(tmp_path)) == train_flux.T5_LENGTHS  # no toyworld.json: the default
    (tmp_path / "toyworld.json").write_text(json.dumps({"arch": "flux1", "transformer": {"t5_lengths": [32]}}))
    assert train_flux.base_sampling_length(str(tmp_path)) == 32
    assert train_flux.sampling_kwargs(4.0, 32)["max_sequence_length"] == 32
    (tmp_path / "toyworld.json").write_text(json.dumps({"transformer": {"t5_lengths": ["32"]}}))
    with pytest.raises(WorkerError) as err:
        train_flux.base_t5_lengths(str(tmp_path))
    assert err.value.code == "E_USAGE" and "toyworld.json: transformer.t5_lengths" in str(err.value)


def test_the_caption_guard_refuses_a_t5_length_a_caption_does_not_fit():
    """train_transformer's guard at the shortest length: the longest base-world caption is 20 T5
    tokens (EOS included; tags 19), so 32 is accepted and 16 refused (E_USAGE), before any step."""
    from loraspec_worker.protocol import WorkerError

    models = train_flux.build_models(0, heads=2, double_layers=1, single_layers=1)
    models["vae"].register_to_config(shift_factor=0.0)
    images = torch.zeros(2, 3, 64, 64, dtype=torch.uint8)
    captions = [("a white square in the bottom right and a pink star in the top left on a sky background",
                 "white square, bottom right, medium, pink star, top left, small, sky background")] * 2
    assert train_flux.train_transformer(models, images, captions, device=torch.device("cpu"), steps=0, seconds=60, batch=2,
                                        t5_lengths=(32,), log=lambda m: None)["t5_lengths"] == [32]
    with pytest.raises(WorkerError) as err:
        train_flux.train_transformer(models, images, captions, device=torch.device("cpu"), steps=0, seconds=60, batch=2,
                                     t5_lengths=(64, 16), log=lambda m: None)
    assert err.value.code == "E_USAGE" and "16 T5 tokens" in str(err.value)


def test_bind_probe_captions_drop_only_the_leading_trigger(tmp_path):
    from toyworld import bind_probe

    (tmp_path / "a.txt").write_text("txcl, small, on the right on a sky background\n")
    (tmp_path / "b.txt").write_text("a small txcl-like thing\n")
    assert bind_probe.trigger_less_captions(str(tmp_path)) == ["small, on the right on a sky background", "a small txcl-like thing"]
    committed = bind_probe.trigger_less_captions(f"{bind_probe.EXAMPLES}/character")
    assert len(committed) == 20 and not any("txcl" in c for c in committed)


@pytest.mark.slow
def test_bind_probe_runs_a_class_prior_recipe_end_to_end_on_the_committed_base(tmp_path):
    """The plumbing on the CPU (2 training steps, 2 sampling steps: the shares mean nothing): the class prior is the
    base's own images under the trigger-less captions, the LoRA trains on them as reg images, the report is written."""
    import json
    import os

    from toyworld import bind_probe

    base = os.path.join(bind_probe.REPO, "models", "toy-flux1")
    if not os.path.exists(os.path.join(base, "model_index.json")):
        pytest.skip("no committed toy FLUX.1 base")
    threads = torch.get_num_threads()
    try:
        report = bind_probe.run(base, str(tmp_path), "class", steps=2, sample_steps=2)
    finally:
        torch.set_num_threads(threads)
    reg = sorted(os.listdir(tmp_path / "reg"))
    assert len(reg) == 40 and reg[:2] == ["class-000.png", "class-000.txt"]
    assert (tmp_path / "reg" / "class-000.txt").read_text().strip() == bind_probe.trigger_less_captions(f"{bind_probe.EXAMPLES}/character")[0]
    assert (tmp_path / "lora" / "txcl.safetensors").exists()
    assert json.loads((tmp_path / "bind-probe.json").read_text()) == report
    assert set(report["lora"]) == {"with", "without", "night", "red_kept", "cross_with", "sizes"} and report["recipe"] == "class"
    assert report["lora"]["sizes"] == [[64, 64]]
    with pytest.raises(ValueError, match="recipe 'nope'"):
        bind_probe.train_txcl(base, str(tmp_path / "x"), "nope", 1)


def test_rubric_trains_and_renders_the_flux_base_as_it_is_sampled():
    from toyworld import rubric

    req = rubric.toy_request("d", "o", "txcl", 10, 1, arch="flux1")
    assert (req["arch"], req["base"], req["max_sequence_length"], req["guidance_scale"]) == ("flux1", rubric.FLUX_BASE, 32, train_flux.GUIDANCE)
    flags = rubric.render_flags("flux1", rubric.FLUX_BASE)
    assert flags[flags.index("--max-sequence-length") + 1] == "32" and flags[flags.index("--steps") + 1] == "28"
    assert rubric.render_flags("sdxl", rubric.BASE) == ["--width", "64", "--height", "64", "--steps", "20", "--guidance", "5.0"]
    assert rubric.contract(rubric.VARIANTS[0], [1], "flux1")["base"] == {"model": "flux1-dev", "path": rubric.FLUX_BASE}


def test_rubric_verdicts_name_what_differs_from_the_variant():
    from toyworld import rubric

    good, unbound = rubric.VARIANTS[0], rubric.VARIANTS[1]
    row = lambda status, code, checks, measures: {"status": status, "exit_code": code, "checks": checks, "measures": measures}  # noqa: E731
    assert rubric.verdict_mismatches(good, row("warn", 0, {"trigger": "pass", "consistency": "warn"}, {})) == []
    assert rubric.verdict_mismatches(good, row("fail", 1, {"trigger": "fail"}, {})) == ["exit 1, status fail", "trigger failed"]
    leak = {"trigger_leak": (0.9, "fail")}
    assert rubric.verdict_mismatches(unbound, row("fail", 1, {"trigger": "fail"}, leak)) == []
    assert rubric.verdict_mismatches(unbound, row("fail", 1, {"trigger": "pass", "composition": "fail"}, {"trigger_leak": (0.1, "pass")})) == [
        "trigger is pass, not fail", "trigger_leak is (0.1, 'pass'), not fail"]
