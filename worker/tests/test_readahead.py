"""The base's weights read ahead while the worker imports (train/readahead.py): exactly the files the loader reads,
nothing outside the base, nothing past the memory budget, and never a failure (bench/load-readahead.py times it)."""

from __future__ import annotations

import io
import json
import os

from loraspec_worker.train import readahead


def _write(path, data=b"x" * 10):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return str(path)


def make_folder(tmp_path):
    base = tmp_path / "base"
    _write(base / "model_index.json", json.dumps({
        "_class_name": "StableDiffusionXLPipeline", "unet": ["diffusers", "UNet2DConditionModel"],
        "text_encoder": ["transformers", "CLIPTextModel"], "vae": ["diffusers", "AutoencoderKL"],
        "scheduler": ["diffusers", "EulerDiscreteScheduler"], "../outside": ["diffusers", "X"], "a/b": ["diffusers", "X"],
        "image_encoder": [None, None],  # listed but not loaded (model_index.listed_components, as folder_problems reads it)
    }).encode())
    _write(base / "image_encoder" / "model.safetensors")
    unet = _write(base / "unet" / "diffusion_pytorch_model.safetensors")
    _write(base / "unet" / "diffusion_pytorch_model.fp16.safetensors")  # a variant the loader does not read
    shards = [_write(base / "text_encoder" / f"model-0000{i}-of-00002.safetensors") for i in (1, 2)]
    _write(base / "text_encoder" / "model.safetensors.index.json",
           json.dumps({"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors", "c": "../../secret"}}).encode())
    _write(base / "text_encoder" / "model.fp16.safetensors.index.json", json.dumps({"weight_map": {"a": "fp16.safetensors"}}).encode())
    _write(tmp_path / "outside" / "diffusion_pytorch_model.safetensors")
    (base / "vae").mkdir()  # no weights: the loader's error, not ours
    return base, unet, shards


def test_the_files_are_the_ones_the_loader_reads_and_only_inside_the_base(tmp_path):
    base, unet, shards = make_folder(tmp_path)
    files = readahead.weight_files(str(base))
    # the shard named ../../secret is left out; the fp16 variants and the folder outside the base are never listed
    assert sorted(files) == sorted([unet, *shards])
    assert readahead.weight_files(unet) == [unet]  # a single-file checkpoint
    assert readahead.weight_files(str(tmp_path / "nowhere")) == []
    assert readahead.weight_files(_write(tmp_path / "model.ckpt")) == []  # pickles are not read ahead
    assert readahead.weight_files("org/not-in-any-cache") == []


def test_a_broken_or_hostile_index_reads_nothing_and_raises_nothing(tmp_path):
    base = tmp_path / "base"
    for text in (b"{", b"[]", b'{"unet": 5}', json.dumps({"unet": ["diffusers", "U"]}).encode()):
        _write(base / "model_index.json", text)
        assert readahead.weight_files(str(base)) == []
    _write(base / "unet" / "diffusion_pytorch_model.safetensors.index.json", b'{"weight_map": 7}')
    assert readahead.weight_files(str(base)) == []


def test_the_plan_keeps_to_the_memory_budget_and_regular_files(tmp_path):
    a = _write(tmp_path / "a.safetensors", b"x" * 100)
    b = _write(tmp_path / "b.safetensors", b"x" * 100)
    c = _write(tmp_path / "c.safetensors", b"x" * 10)
    link = tmp_path / "dev.safetensors"
    os.symlink("/dev/zero", link)
    assert readahead.plan([a, b, c, str(link), str(tmp_path / "gone")], 150) == [(a, 100), (c, 10)]
    assert readahead.plan([a], 0) == []


def test_start_reads_in_a_daemon_thread_and_returns_none_with_nothing_to_read(tmp_path, monkeypatch):
    base, unet, shards = make_folder(tmp_path)
    handle = readahead.start(str(base))
    assert handle is not None and handle.thread.daemon
    handle.thread.join(timeout=30)
    assert not handle.thread.is_alive()
    readahead.stop(handle)
    readahead.stop(None)
    assert readahead.start(str(tmp_path / "nowhere")) is None
    monkeypatch.setattr(readahead, "available_bytes", lambda: 0)
    assert readahead.start(str(base)) is None  # no memory to spare: nothing is read ahead


def test_the_budget_is_the_memory_the_kernel_says_is_available():
    assert readahead.available_bytes() > 0  # /proc/meminfo's MemAvailable (Linux: the CI and GPU machines)


def test_a_stopped_read_ahead_reads_no_further(tmp_path, monkeypatch):
    # train_once stops it once the base is loaded: what is left unread is no longer worth the disk
    big = _write(tmp_path / "w.safetensors", b"x" * (3 * readahead._CHUNK))
    reads = []

    class Counting(io.FileIO):
        def readinto(self, b):
            reads.append(len(b))
            return super().readinto(b)

    monkeypatch.setattr(readahead, "open", lambda path, mode, buffering: Counting(path, "rb"), raising=False)
    handle = readahead.Readahead([])
    handle.thread.join(timeout=30)
    handle._read([(big, 3 * readahead._CHUNK)])
    assert len(reads) == 4  # three full chunks and the empty read at the end
    reads.clear()
    handle.stop()
    handle._read([(big, 3 * readahead._CHUNK)])
    assert reads == []


def test_a_sampling_request_reads_its_base_ahead_and_a_request_without_one_reads_nothing(tmp_path):
    base, _, _ = make_folder(tmp_path)
    handle = readahead.for_request({"base": str(base), "prompts": ["x"]})
    assert handle is not None
    handle.thread.join(timeout=30)
    assert readahead.for_request({"prompts": ["x"]}) is None
    assert readahead.for_request({"base": 7}) is None
