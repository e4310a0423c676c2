"""Oracle for loraspec's CLIP BPE: transformers' CLIPTokenizer built from the same merges table.

Usage: python clip_tokenize.py BPE_GZ_PATH < texts.json  -> JSON list of token lists on stdout.
The vocabulary is built exactly as openai/CLIP's simple_tokenizer.py builds it.
"""

import gzip
import json
import sys
import tempfile
from pathlib import Path

from transformers import CLIPTokenizer

from loraspec_worker.tiny_base import byte_chars


def main() -> None:
    merges = gzip.open(sys.argv[1]).read().decode("utf-8").split("\n")
    merges = merges[1 : 49152 - 256 - 2 + 1]
    vocab = byte_chars()
    vocab = vocab + [v + "</w>" for v in vocab]
    vocab += ["".join(m.split()) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    with tempfile.TemporaryDirectory() as tmp:
        vocab_file = Path(tmp) / "vocab.json"
        merges_file = Path(tmp) / "merges.txt"
        vocab_file.write_text(json.dumps({t: i for i, t in enumerate(vocab)}), encoding="utf-8")
        merges_file.write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
        tokenizer = CLIPTokenizer(str(vocab_file), str(merges_file))
        texts = json.load(sys.stdin)
        json.dump([tokenizer.tokenize(t) for t in texts], sys.stdout)


if __name__ == "__main__":
    main()
