"""Where in the toy FLUX.1 transformer is the shape word lost (issue 23)? Inference-only looks on a
saved base, with hooks on diffusers' own modules (bench/RESULTS.md, "What limits the toy FLUX.1
base's shapes"):

  attention  for the image tokens' queries in each block, the share of softmax mass on the shape
             word's T5 token, the colour word's (the word the base does use), the other real text
             tokens (EOS included), the padding tokens and the image tokens, per T5 length and
             noise level; q and k are recomputed from the block's
             own modules (projections, QK norms, RoPE) as diffusers 0.42.1's FluxAttnProcessor does
  carriers   linear probes for the shape (colour) on T5's outputs at the shape word, the colour word,
             the other real tokens and the padding tokens, per T5 length: where the word sits
  hidden     linear probes (logistic regression, held-out split) reading the shape (and, to compare,
             the colour) from the image tokens' hidden states after each block and from the part
             of each block's attention output that comes from the text keys (BLOCK.text_message),
             mean over the object's tokens and over all tokens, and from the text stream (the text
             tokens after each block, mean over the real and over the padding tokens): with the
             true caption, and with a caption whose shape (colour) word is swapped, read for the
             prompted word and for the drawn one; with how far the features move on the swap

`PYTHONPATH=worker python -m toyworld shape-trace --base models/toy-flux1` prints the JSON.
"""

from __future__ import annotations

import copy
import random

from . import world
from .shape_probe import PROBE_SEED, _encode, _probe_accuracy, _scenes, _swap, encode_latents, velocity

SIGMAS = (0.4, 0.6, 0.8)
T5_LENGTHS = (512, 128, 64)
# the colour word (which the base does use) is the comparison for the shape word
GROUPS = ("shape_word", "colour_word", "other_text", "padding", "image")
OBJECT_SHARE = 0.25  # a token is the object's when at least this share of its pixels changed


def object_tokens(scenes, grid: int):
    """(N, grid*grid) bool, row-major like pack_2x2: the tokens whose patch the object covers
    (pixels that differ from the same scene rendered without its objects); at least the one it
    covers most."""
    import numpy as np
    import torch

    out = []
    for s in scenes:
        empty = copy.deepcopy(s)
        empty.objects = []
        diff = (np.abs(np.asarray(world.render(s), np.int16) - np.asarray(world.render(empty), np.int16)).max(-1) > 0)
        share = torch.nn.functional.avg_pool2d(torch.from_numpy(diff).float()[None, None], diff.shape[0] // grid).flatten()
        out.append((share >= OBJECT_SHARE) | (share == share.max()))
    return torch.stack(out)


def word_ids(tokenizer_2, words=world.SHAPES) -> set:
    """The T5 ids of the words (each one piece in the toy tokenizer)."""
    ids = set()
    for name in words:
        pieces = [i for i in tokenizer_2(name).input_ids if i != tokenizer_2.eos_token_id]
        if len(pieces) != 1:
            raise ValueError(f"tokenizer_2: word {name!r} is {len(pieces)} pieces, expected 1")
        ids.add(pieces[0])
    return ids


def key_groups(t5_ids, shape_ids: set, colour_ids: set, image_tokens: int):
    """(B, L + image_tokens) group index per key (GROUPS' order), text keys first as FLUX joins them;
    T5's pad id is 0."""
    import torch

    def among(ids):
        return torch.isin(t5_ids, torch.tensor(sorted(ids), dtype=t5_ids.dtype))

    text = torch.where(among(shape_ids), 0, torch.where(among(colour_ids), 1, torch.where(t5_ids == 0, 3, 2)))
    return torch.cat([text, torch.full((t5_ids.shape[0], image_tokens), 4, dtype=text.dtype)], 1)


def attention_probs(attn, hidden_states, encoder_hidden_states=None, image_rotary_emb=None):
    """Softmax probabilities (B, heads, S, S) and values (B, S, heads, dim) as FluxAttnProcessor
    computes them (diffusers 0.42.1, unfused projections); text first."""
    import torch
    from diffusers.models.embeddings import apply_rotary_emb

    if attn.fused_projections:
        raise ValueError("attention_probs: fused projections are not supported")

    def heads(x):
        return x.unflatten(-1, (-1, attn.head_dim))

    q, k, v = heads(attn.to_q(hidden_states)), heads(attn.to_k(hidden_states)), heads(attn.to_v(hidden_states))
    q, k = attn.norm_q(q), attn.norm_k(k)
    if encoder_hidden_states is not None and attn.added_kv_proj_dim is not None:
        eq = attn.norm_added_q(heads(attn.add_q_proj(encoder_hidden_states)))
        ek = attn.norm_added_k(heads(attn.add_k_proj(encoder_hidden_states)))
        ev = heads(attn.add_v_proj(encoder_hidden_states))
        q, k, v = torch.cat([eq, q], 1), torch.cat([ek, k], 1), torch.cat([ev, v], 1)
    if image_rotary_emb is not None:
        q = apply_rotary_emb(q, image_rotary_emb, sequence_dim=1)
        k = apply_rotary_emb(k, image_rotary_emb, sequence_dim=1)
    probs = (torch.einsum("bqhd,bkhd->bhqk", q, k) * attn.head_dim**-0.5).softmax(-1)
    return probs, v


def mix(probs, v):
    """The attention output (B, queries, heads*dim) from probs (B, heads, queries, keys) and v."""
    import torch

    return torch.einsum("bhqk,bkhd->bqhd", probs, v).flatten(2, 3)


class Tracer:
    """Hooks on a FluxTransformer2DModel: a pre-hook on each block's attention (its inputs -> the
    image queries' mass per key group, when groups is set; the part of their attention output that
    comes from the text keys, when text_keys is set) and a hook on each block (the image tokens'
    hidden states after it). Use as a context manager; the hooks go when it exits."""

    def __init__(self, transformer):
        self.blocks = [*transformer.transformer_blocks, *transformer.single_transformer_blocks]
        self.names = [f"double{i}" for i in range(len(transformer.transformer_blocks))] + \
                     [f"single{i}" for i in range(len(transformer.single_transformer_blocks))]
        self.groups = None  # (B, keys) from key_groups
        self.text_keys = None  # the T5 length, to keep the text keys' message
        self.message: list = []  # per block: (B, image queries, heads*dim), before to_out / proj_out
        self.mass: list = []  # per block: (B, image queries, len(GROUPS)), mean over heads
        self.hidden: list = []  # per block: (B, image tokens, dim)
        self.text_hidden: list = []  # per block: (B, text tokens, dim), the text stream after it
        self.handles = []

    def __enter__(self):
        for blk in self.blocks:
            self.handles.append(blk.attn.register_forward_pre_hook(self._attn_inputs, with_kwargs=True))
            self.handles.append(blk.register_forward_hook(self._block_out))
        return self

    def __exit__(self, *exc):
        for h in self.handles:
            h.remove()
        self.handles = []

    def reset(self):
        self.mass, self.hidden, self.message, self.text_hidden = [], [], [], []

    def _block_out(self, block, args, out):
        self.text_hidden.append(out[0].detach())
        self.hidden.append(out[1].detach())

    def _attn_inputs(self, attn, args, kwargs):
        if self.groups is None and self.text_keys is None:
            return
        import torch

        probs, v = attention_probs(attn, kwargs["hidden_states"], kwargs.get("encoder_hidden_states"), kwargs.get("image_rotary_emb"))
        if self.text_keys is not None:
            n = self.text_keys
            self.message.append(mix(probs[:, :, n:, :n], v[:, :n]))
        if self.groups is None:
            return
        text = int((self.groups < 4).sum(1)[0])  # text keys come first; the rest are image tokens
        onehot = torch.nn.functional.one_hot(self.groups, len(GROUPS)).to(probs.dtype)  # (B, K, G)
        img_q = probs[:, :, text:, :].mean(1)  # (B, Q_img, K), heads averaged
        self.mass.append(torch.einsum("bqk,bkg->bqg", img_q, onehot))


def _forward(pipe, latents, noise, sigma: float, text: dict):
    """One transformer forward (the hooks record what they trace)."""
    velocity(pipe, latents, noise, sigma, text)


def _latents(pipe, scenes):
    return encode_latents(pipe, scenes, chunk=64)


def attention_mass(pipe, count: int = 64, lengths=T5_LENGTHS, sigmas=SIGMAS, batch: int = 16,
                   seed: int = PROBE_SEED + 3_000_000) -> dict:
    """Per T5 length, sigma and block: the image queries' mean softmax mass per key group, over all
    image tokens and over the object's tokens, with the real text tokens' count for scale."""
    import torch

    scenes = _scenes(count, seed=seed)
    captions = [world.natural_caption(s) for s in scenes]
    z = _latents(pipe, scenes)
    grid = z.shape[-1] // 2
    obj = object_tokens(scenes, grid).float()  # (B, Q)
    noise = torch.randn(z.shape, generator=torch.Generator().manual_seed(6))
    shape_ids, colour_ids = word_ids(pipe.tokenizer_2), word_ids(pipe.tokenizer_2, world.COLOUR_NAMES)
    rows = []
    with Tracer(pipe.transformer) as tr:
        for length in lengths:
            t5 = pipe.tokenizer_2(captions, padding="max_length", max_length=length, truncation=True, return_tensors="pt").input_ids
            groups = key_groups(t5, shape_ids, colour_ids, grid * grid)
            for s in sigmas:
                every, on_obj = 0, 0
                for i in range(0, count, batch):
                    tr.reset()
                    tr.groups = groups[i : i + batch]
                    _forward(pipe, z[i : i + batch], noise[i : i + batch], s, _encode(pipe, captions[i : i + batch], length)[0])
                    o = obj[i : i + batch, :, None]
                    every = every + torch.stack([m.sum((0, 1)) for m in tr.mass])
                    on_obj = on_obj + torch.stack([(m * o).sum((0, 1)) for m in tr.mass])
                every, on_obj = every / (count * grid * grid), on_obj / obj.sum()
                for b, name in enumerate(tr.names):
                    rows.append({"t5_length": length, "sigma": s, "block": name, "real_text_tokens": round(float((t5 != 0).sum(1).float().mean()), 1),
                                 **{f"all_{g}": round(float(v), 4) for g, v in zip(GROUPS, every[b])},
                                 **{f"object_{g}": round(float(v), 4) for g, v in zip(GROUPS, on_obj[b])}})
            tr.groups = None
    return {"count": count, "groups": list(GROUPS), "rows": rows}


def _features(pipe, z, noise, sigma, text, obj, real):
    """Per block (the embedded input first): image tokens' mean over the object's tokens and over all,
    after the block and (BLOCK.text_message) in the part of its attention output from the text keys;
    and the text stream (BLOCK.text_stream; t5 is its input) mean over the real and padding tokens."""
    import torch

    from loraspec_worker.train.arches.flow import pack_2x2

    with Tracer(pipe.transformer) as tr:
        tr.text_keys = text["embeds"].shape[1]
        _forward(pipe, z, noise, sigma, text)
        with torch.no_grad():
            embedded = pipe.transformer.x_embedder(pack_2x2((1 - sigma) * z + sigma * noise))
            context = pipe.transformer.context_embedder(text["embeds"])
        states = [embedded, *tr.hidden] + tr.message
        names = ["input", *tr.names] + [f"{n}.text_message" for n in tr.names]
        text_states = [context, *tr.text_hidden]
        text_names = ["t5", *[f"{n}.text_stream" for n in tr.names]]
    w = obj / obj.sum(1, keepdim=True)
    r, p = real / real.sum(1, keepdim=True), (1 - real) / (1 - real).sum(1, keepdim=True).clamp(min=1)
    out = {n: {"object": torch.einsum("bq,bqd->bd", w, h), "all": h.mean(1)} for n, h in zip(names, states)}
    return out | {n: {"real": torch.einsum("bq,bqd->bd", r, h), "padding": torch.einsum("bq,bqd->bd", p, h)}
                  for n, h in zip(text_names, text_states)}


def swap_change(feats: dict, block: str, pool: str) -> dict:
    """How far the (same image, same noise) features move when the caption's shape (colour) word is
    swapped: mean |f_swapped - f_true| / mean |f_true| (L2 per scene). A probe can read a tiny
    signal; this says how large it is."""
    true = feats["true"][block][pool]
    scale = float(true.norm(dim=1).mean())
    return {f"{f}_swap_change": round(float((feats[f][block][pool] - true).norm(dim=1).mean()) / scale, 4) for f in ("shape", "colour")}


def hidden_probe(pipe, count: int = 800, test: int = 200, sigmas=SIGMAS, length: int = 128, batch: int = 100,
                 seed: int = PROBE_SEED + 4_000_000) -> dict:
    """Probe accuracies per sigma, block and pooling. true: the true caption, label the shape (or
    colour); swapped: the word swapped in the caption, read for the prompted word (from the text)
    and for the drawn one (from the image); and swap_change, the features' relative move."""
    import torch

    rng = random.Random(2)
    scenes = _scenes(count, seed=seed)
    swapped = {f: [_swap(s, f, rng) for s in scenes] for f in ("shape", "colour")}
    names = {"shape": world.SHAPES, "colour": world.COLOUR_NAMES}
    drawn = {f: torch.tensor([names[f].index(getattr(s.objects[0], f)) for s in scenes]) for f in names}
    prompted = {f: torch.tensor([names[f].index(getattr(s.objects[0], f)) for s in swapped[f]]) for f in names}
    z = _latents(pipe, scenes)
    obj = object_tokens(scenes, z.shape[-1] // 2).float()
    noise = torch.randn(z.shape, generator=torch.Generator().manual_seed(7))
    captions = {"true": [world.natural_caption(s) for s in scenes],
                "shape": [world.natural_caption(s) for s in swapped["shape"]],
                "colour": [world.natural_caption(s) for s in swapped["colour"]]}
    texts = {k: [_encode(pipe, v[i : i + batch], length)[0] for i in range(0, count, batch)] for k, v in captions.items()}
    real = {k: (pipe.tokenizer_2(v, padding="max_length", max_length=length, truncation=True, return_tensors="pt").input_ids != 0).float()
            for k, v in captions.items()}
    train = count - test
    rows = []
    for s in sigmas:
        feats = {}
        for k, chunks in texts.items():
            cut = [slice(i * batch, (i + 1) * batch) for i in range(len(chunks))]
            parts = [_features(pipe, z[c], noise[c], s, t, obj[c], real[k][c]) for c, t in zip(cut, chunks)]
            feats[k] = {n: {p: torch.cat([x[n][p] for x in parts]) for p in pools} for n, pools in parts[0].items()}
        for block, pools in feats["true"].items():
            for pool in pools:
                row = {"sigma": s, "block": block, "pool": pool, **swap_change(feats, block, pool)}
                for f in ("shape", "colour"):
                    cases = {"true": (feats["true"], drawn[f]), "swapped_prompted": (feats[f], prompted[f]),
                             "swapped_drawn": (feats[f], drawn[f])}
                    for case, (fx, y) in cases.items():
                        x = fx[block][pool]
                        row[f"{f}_{case}"] = _probe_accuracy(x[:train], y[:train], x[train:], y[train:], len(names[f]))
                rows.append(row)
    return {"count": count, "test": test, "t5_length": length, "chance_shape": round(1 / 6, 3),
            "chance_colour": round(1 / len(world.COLOUR_NAMES), 3), "rows": rows}


def text_carriers(pipe, count: int = 800, test: int = 200, lengths=T5_LENGTHS, seed: int = PROBE_SEED + 5_000_000) -> dict:
    """Which T5 output positions carry the shape (and colour): probes on the shape word's own output,
    the colour word's, the mean of the other real tokens and the mean of the padding tokens (T5
    runs with no mask, so padding outputs attend to the caption). Natural captions."""
    import torch

    scenes = _scenes(count, seed=seed)
    captions = [world.natural_caption(s) for s in scenes]
    labels = {"shape": torch.tensor([world.SHAPES.index(s.objects[0].shape) for s in scenes]),
              "colour": torch.tensor([world.COLOUR_NAMES.index(s.objects[0].colour) for s in scenes])}
    shape_ids, colour_ids = word_ids(pipe.tokenizer_2), word_ids(pipe.tokenizer_2, world.COLOUR_NAMES)
    train, rows = count - test, []
    for length in lengths:
        t5 = pipe.tokenizer_2(captions, padding="max_length", max_length=length, truncation=True, return_tensors="pt").input_ids
        embeds = _encode(pipe, captions, length)[0]["embeds"]
        g = key_groups(t5, shape_ids, colour_ids, 0)
        row = {"t5_length": length}
        for where, k in (("shape_word", 0), ("colour_word", 1), ("other_text", 2), ("padding", 3)):
            m = (g == k).float().unsqueeze(-1)
            x = (embeds * m).sum(1) / m.sum(1).clamp(min=1)
            for f, y in labels.items():
                row[f"{f}_from_{where}"] = _probe_accuracy(x[:train], y[:train], x[train:], y[train:], 6 if f == "shape" else len(world.COLOUR_NAMES))
        rows.append(row)
    return {"count": count, "test": test, "rows": rows}


def run(base: str, parts=("attention", "carriers", "hidden"), count: int = 800, attention_count: int = 64, length: int | None = None) -> dict:
    """length: the hidden-state probes' T5 length; None is the base's own (train_flux.base_sampling_length)."""
    import torch
    from diffusers import FluxPipeline

    from .train_flux import base_sampling_length

    length = length or base_sampling_length(base)

    torch.manual_seed(0)
    pipe = FluxPipeline.from_pretrained(base, torch_dtype=torch.float32)
    out = {}
    if "attention" in parts:
        out["attention"] = attention_mass(pipe, attention_count)
    if "carriers" in parts:
        out["carriers"] = text_carriers(pipe, count, test=count // 4)
    if "hidden" in parts:
        out["hidden"] = hidden_probe(pipe, count, test=count // 4, length=length)
    return out
