"""Offline, a model named by Hugging Face id is decided in seconds (hub.py): not cached, E_REMOTE naming the hub and
the cache; cached, loaded from the cache without the hub's ~55 s of retries. The hub is a closed local port here."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time

import pytest

from loraspec_worker import hub
from test_score import clip_dir, images  # noqa: F401 - pytest fixtures

WORKER = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def closed_port_endpoint() -> str:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}"


def embed(tmp_path, model: str, image: str, command: str = "embed") -> tuple[list[dict], float]:
    """`python -m loraspec_worker <command>` with the hub unreachable and its own HF cache (huggingface_hub reads both at import)."""
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_ENDPOINT": closed_port_endpoint(), "OMP_NUM_THREADS": "1", "PYTHONPATH": WORKER}
    for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_CACHE"):
        env.pop(key, None)
    started = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "loraspec_worker", command, "-"], input=json.dumps({"images": [image], "model": model, "device": "cpu"}), capture_output=True, text=True, env=env, timeout=120)
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")], time.monotonic() - started


@pytest.mark.parametrize("command,model", [("embed", "openai/clip-vit-large-patch14"), ("caption", "florence-community/Florence-2-base")])
def test_a_model_not_cached_fails_in_seconds_naming_hub_and_cache(tmp_path, images, command, model):  # noqa: F811
    events, seconds = embed(tmp_path, model, images[0], command)
    error = events[-1]
    assert error["type"] == "error" and error["code"] == "E_REMOTE", events
    assert "does not answer" in error["message"] and str(tmp_path / "hf") in error["message"]
    assert seconds < 20, f"took {seconds:.0f} s (the hub's retries took ~55 s)"


def test_a_cached_model_loads_from_the_cache_in_seconds(tmp_path, clip_dir, images):  # noqa: F811
    snapshot = tmp_path / "hf" / "hub" / "models--tiny--clip" / "snapshots" / "0123abc"
    shutil.copytree(clip_dir, snapshot)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("0123abc")
    events, seconds = embed(tmp_path, "tiny/clip", images[0])
    assert events[-1]["type"] == "done", events
    assert list(events[-1]["result"]["embeddings"]) == [images[0]]
    assert seconds < 30, f"took {seconds:.0f} s"


@pytest.mark.parametrize("model", ["/no/such/model", "./model", "../x/y/z"])
def test_a_path_is_never_asked_of_the_hub(monkeypatch, model):
    monkeypatch.setattr(hub, "hub_reachable", lambda *_: pytest.fail("asked the hub about a path"))
    assert hub.local_files_only(model, "clip") is False
