"""The request's `targets` -> peft's `target_modules`.

Each entry is a peft suffix (`to_q` matches `...attn.to_q`) or a block-scoped pattern with `*` for
one block index (`single_transformer_blocks.*.proj_out`), where a bare suffix would also match a
module outside the transformer blocks (core: knowledge/lora-targets.ts, `patternRegex`). A list of
plain suffixes goes to peft as it is; a list with a pattern becomes one regex, which peft matches
against the whole module name (re.fullmatch).
"""

from __future__ import annotations

import re


def pattern_regex(pattern: str) -> str:
    """One entry as a regex source: any prefix ending in a dot, then the entry, `*` a block index."""
    return r"(?:.*\.)?" + r"\d+".join(re.escape(part) for part in pattern.split("*"))


def peft_target_modules(targets: list[str]) -> list[str] | str:
    if not any("*" in t for t in targets):
        return list(targets)
    return "(?:" + "|".join(pattern_regex(t) for t in targets) + ")"


def matches(name: str, targets: list[str]) -> bool:
    """The same rule as peft applies to `peft_target_modules(targets)` (tests use it)."""
    return any(re.fullmatch(pattern_regex(t), name) for t in targets)
