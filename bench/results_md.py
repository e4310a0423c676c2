"""A bench script's own section of bench/RESULTS.md, between its start and end markers: one home for reading the rows
it keeps and for writing it back (gpu-wholerun.py, load-readahead.py, lora-merge-bench.py, peer-table.py)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Optional


def section_lines(text: str, start: str, end: str) -> list[str]:
    """The lines from `start` up to (not including) `end`; [] where the section is not there yet."""
    return text[text.find(start):text.find(end)].splitlines() if start in text else []


def put_section(path: Path, start: str, end: str, block: str, before: Optional[str] = None) -> None:
    """Writes `block` (it begins with `start` and ends with `end`) in place of the section from `start` through
    `end`; a file without the section gets it before the first `before` line where there is one, else at the end.
    Atomic: the file is replaced whole."""
    text = path.read_text()
    if start in text:
        head, rest = text.split(start, 1)
        text = head + block + rest.split(end, 1)[1]
    elif before is not None and before in text:
        at = text.index(before)
        text = text[:at] + block + "\n\n" + text[at:]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".results-")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)
