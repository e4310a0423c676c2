"""The reference reader's verdict on many files at once: `safetensors.safe_open` (header parse and
validation, the Rust `Metadata::validate`). Prints one JSON object: {path: "ok" | error text}.
usage: safetensors_verdict.py FILE... (or a folder: every file in it)."""
import json
import os
import sys

from safetensors import safe_open


def verdict(path: str) -> str:
    try:
        with safe_open(path, framework="np") as f:
            f.keys()
        return "ok"
    except Exception as e:  # the verdict is the point: any refusal
        return f"{type(e).__name__}: {e}"[:200]


def main(args: list) -> None:
    paths = []
    for a in args:
        paths += sorted(os.path.join(a, n) for n in os.listdir(a)) if os.path.isdir(a) else [a]
    print(json.dumps({p: verdict(p) for p in paths}))


if __name__ == "__main__":
    main(sys.argv[1:])
