"""A CLIP BPE tokenizer built in code whose merges make every word of the toy world one token.

The base vocabulary is CLIP's 256 byte characters (with and without the end-of-word mark), so
any text tokenizes (a trigger word like `txcl` falls apart into pieces, as new words do in the
real CLIP tokenizer); the merges are learnt here, by plain BPE, over the world's words.
"""

from __future__ import annotations

from collections import Counter

from loraspec_worker.tiny_base import clip_tokenizer, t5_tokenizer
from . import world


def world_words() -> list[str]:
    words = set()
    for phrase, tag, _, _ in world.POSITIONS:
        words.update(phrase.split())
        words.update(tag.split())
    words.update(world.SHAPES)
    words.update(world.COLOURS)
    words.update(world.BACKGROUNDS)
    words.update(world.SIZES)
    words.update(world.FILLS)
    words.update(["a", "an", "and", "background", "object", "photo", "of", "scene", "image", "picture", "with"])
    return sorted(words)


def learn_merges(words: list[str]) -> list[tuple[str, str]]:
    """BPE until every word is a single symbol (the end-of-word mark rides on the last char)."""
    seqs = {w: [*w[:-1], w[-1] + "</w>"] for w in words}
    merges: list[tuple[str, str]] = []
    while True:
        pairs: Counter = Counter()
        for seq in seqs.values():
            for a, b in zip(seq, seq[1:]):
                pairs[(a, b)] += 1
        if not pairs:
            return merges
        # most frequent first; ties broken alphabetically so the result never varies
        best = min(pairs, key=lambda p: (-pairs[p], p))
        merges.append(best)
        for w, seq in seqs.items():
            out, i = [], 0
            while i < len(seq):
                if i + 1 < len(seq) and (seq[i], seq[i + 1]) == best:
                    out.append(seq[i] + seq[i + 1])
                    i += 2
                else:
                    out.append(seq[i])
                    i += 1
            seqs[w] = out


def toy_clip_tokenizer():
    """tiny_base's CLIP tokenizer with the merges that make every word of the toy world one token."""
    return clip_tokenizer(learn_merges(world_words()))


def toy_t5_tokenizer():
    """tiny_base's T5 Unigram tokenizer with every word of the toy world as one piece; anything
    else falls apart into letters, digits and punctuation (the trigger `txcl` becomes ▁t x c l, as
    a new word does in the real T5 vocabulary)."""
    return t5_tokenizer(world_words())
