"""torch.compile's caches across runs (train/compile_cache.py) on the CPU, without compiling
anything: the folders core sends are where inductor and Triton look, the artifacts file is written
atomically and read back, and an unreadable one is ignored with the table's coded warning, never a
crash. A real round trip (CPU, torch 2.13: first call 42.6 s cold, 5.7 s warm with
fxgraph_cache_hit) is in docs/design-notes.md and tests/test_regional_compile.py (regional compile of a
tiny FLUX.1: graphs per block kind, a warm start with no inductor compile, the PGO profile); the H200
one is bench/gpu-wholerun.py's warm run."""

from __future__ import annotations

import collections
import io
import json
import os

import pytest

torch = pytest.importorskip("torch")

from loraspec_worker import protocol, schema_files  # noqa: E402
from loraspec_worker.train import compile_cache  # noqa: E402

SPEC = schema_files.builtin_trainer()["compileCache"]


@pytest.fixture
def events(monkeypatch):
    buf = io.StringIO()
    monkeypatch.setattr(protocol, "_out", buf)
    # configure() points these at the test's folder: give the process its own values back afterwards
    for var in ("TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR"):
        if var in os.environ:
            monkeypatch.setenv(var, os.environ[var])
        else:
            monkeypatch.delenv(var, raising=False)
    job_id = torch.compiler.config.job_id  # configure() names the PGO profile's job: give it back too
    yield lambda: [json.loads(line) for line in buf.getvalue().splitlines()]
    torch.compiler.config.job_id = job_id


def test_without_a_folder_nothing_changes(events):
    before = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    assert compile_cache.configure(None) is None
    assert os.environ.get("TORCHINDUCTOR_CACHE_DIR") == before and events() == []


def test_the_caches_live_in_the_folder_core_sends(tmp_path, events):
    path = compile_cache.configure(str(tmp_path / "compile"))
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "compile" / SPEC["inductorDir"])
    assert os.environ["TRITON_CACHE_DIR"] == str(tmp_path / "compile" / SPEC["tritonDir"])
    from torch._inductor.runtime.cache_dir_utils import cache_dir

    assert cache_dir() == str(tmp_path / "compile" / SPEC["inductorDir"])  # inductor reads it at each use
    assert os.path.dirname(path) == str(tmp_path / "compile") and torch.__version__.split("+")[0] in os.path.basename(path)
    assert events() == []  # no file yet: a cold start, no warning


def test_artifacts_are_written_atomically_and_loaded_back(tmp_path, events, monkeypatch):
    path = compile_cache.artifacts_path(str(tmp_path))
    monkeypatch.setattr(torch.compiler, "save_cache_artifacts", lambda: (b"compiled-bytes", object()))
    assert compile_cache.save(path) is True
    assert open(path, "rb").read() == b"compiled-bytes"
    assert [p for p in os.listdir(tmp_path) if ".tmp-" in p] == []
    loaded = []
    monkeypatch.setattr(torch.compiler, "load_cache_artifacts", lambda data: loaded.append(data) or object())
    assert compile_cache.load(path) is True and loaded == [b"compiled-bytes"]
    assert [e["type"] for e in events()] == ["log", "log"]
    # nothing compiled in this process: the file is left as it was
    monkeypatch.setattr(torch.compiler, "save_cache_artifacts", lambda: None)
    assert compile_cache.save(path) is False and open(path, "rb").read() == b"compiled-bytes"


def test_a_failed_write_leaves_the_old_file_and_no_temp_file(tmp_path, events, monkeypatch):
    path = compile_cache.artifacts_path(str(tmp_path))
    compile_cache.write_atomic(path, b"old")

    def boom(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(compile_cache.os, "replace", boom)
    with pytest.raises(OSError):
        compile_cache.write_atomic(path, b"new")
    assert open(path, "rb").read() == b"old" and sorted(os.listdir(tmp_path)) == [os.path.basename(path)]


@pytest.mark.parametrize("content", [b"garbage, not torch's", b""], ids=["corrupt", "empty"])
def test_an_unreadable_cache_file_is_ignored_with_a_coded_warning(tmp_path, events, content):
    folder = tmp_path / "compile"
    folder.mkdir()
    path = compile_cache.artifacts_path(str(folder))
    with open(path, "wb") as f:
        f.write(content)
    assert compile_cache.configure(str(folder)) == path  # real torch.compiler.load_cache_artifacts: no crash
    warnings = [e for e in events() if e["type"] == "warning"]
    assert [w["code"] for w in warnings] == [SPEC["warning"]] == ["W_COMPILE_CACHE_IGNORED"]
    assert path in warnings[0]["message"] and "compiles from scratch" in warnings[0]["message"]


def test_a_torch_that_raises_on_load_or_save_is_a_warning_too(tmp_path, events, monkeypatch):
    path = compile_cache.artifacts_path(str(tmp_path))
    compile_cache.write_atomic(path, b"x")

    def raises(*_):
        raise RuntimeError("unsupported artifact version")

    monkeypatch.setattr(torch.compiler, "load_cache_artifacts", raises)
    monkeypatch.setattr(torch.compiler, "save_cache_artifacts", raises)
    assert compile_cache.load(path) is False and compile_cache.save(path) is False
    assert [e.get("code") for e in events()] == ["W_COMPILE_CACHE_IGNORED", "W_COMPILE_CACHE_IGNORED"]


def test_a_compiled_run_uses_the_requests_folder_and_saves_after_its_steps(tmp_path, events, monkeypatch):
    """train_once with compile applied (forced on here; the CPU refuses it) and compiling stubbed out:
    the caches point into compile_cache_dir before the model loads, the artifacts are saved after the loop."""
    from loraspec_worker import speed, tiny_base, train
    from loraspec_worker.train.dev_request import dev_request
    from noise_dataset import write_noise_dataset

    seen = {}
    monkeypatch.setattr(speed, "refuse_levers", lambda cfg, *a: {"compile": True, "cuda_graphs": False, "channels_last": False, "fp8_matmul": False})
    monkeypatch.setattr(speed, "compile_blocks", lambda net, mode=None: seen.setdefault("inductor", os.environ["TORCHINDUCTOR_CACHE_DIR"]) and 0)
    monkeypatch.setattr(compile_cache, "save", lambda path: seen.setdefault("saved", path))
    base = tiny_base.make_tiny_base("flux1", str(tmp_path / "base"), seed=0)
    data = write_noise_dataset(tmp_path / "data", 1, (32, 32))
    req = dev_request(arch="flux1", base=base, dataset=data, output_dir=str(tmp_path / "out"), resolution=32, steps=2, rank=4, alpha=4,
                      max_sequence_length=32, compile=True, compile_cache_dir=str(tmp_path / "cache" / "compile"))
    train.run(req)
    assert seen["inductor"] == str(tmp_path / "cache" / "compile" / SPEC["inductorDir"])
    assert seen["saved"] == compile_cache.artifacts_path(str(tmp_path / "cache" / "compile"))
    # Dynamo's PGO profile is this workload's (the request's shapes), and the run says what it compiled
    assert torch.compiler.config.job_id == "loraspec-" + compile_cache.workload_key(train.parse_config(req))
    assert any(e["type"] == "log" and e["message"].startswith("torch.compile in this run:") for e in events())


FA4_CACHE = schema_files.builtin_trainer()["attention"]["fa4"]["persistentCache"]


@pytest.fixture
def fa4_env():
    """configure_kernels sets FA4's cache variables: the process gets its own values back afterwards."""
    names = (FA4_CACHE["enabledEnv"], FA4_CACHE["dirEnv"])
    saved = {n: os.environ.pop(n, None) for n in names}
    yield names
    for n, v in saved.items():
        os.environ.pop(n, None)
        if v is not None:
            os.environ[n] = v


def test_fa4_kernels_are_kept_in_the_compile_cache_folder_only_when_fa4_is_asked_for(tmp_path, fa4_env):
    enabled, folder_var = fa4_env
    cpu = torch.device("cpu")
    assert compile_cache.configure_kernels(None, "fa4", cpu) is None
    assert compile_cache.configure_kernels(str(tmp_path / "compile"), "sdpa", cpu) is None
    assert enabled not in os.environ and folder_var not in os.environ
    folder = compile_cache.configure_kernels(str(tmp_path / "compile"), "fa4", cpu)
    assert folder == str(tmp_path / "compile" / SPEC["fa4Dir"] / "cpu")  # one folder per card kind (sm90 on an H100)
    assert os.environ[enabled] == "1" and os.environ[folder_var] == folder


def test_a_run_turns_fa4s_cache_on_before_its_levers_look_for_fa4(tmp_path, monkeypatch, fa4_env):
    """flash_attn.cute reads its cache switch once, when it imports: the worker sets it before resolve_levers,
    whose FA4 check imports it (train/attention.py device_blockers -> import_error)."""
    from loraspec_worker.train import attention
    from tiny_runs import tiny_run

    seen = []
    monkeypatch.setattr(attention, "device_blockers", lambda device: seen.append({n: os.environ.get(n) for n in fa4_env}) or ["no CUDA device"])
    cache = tmp_path / "cache" / "compile"
    result, losses, events = tiny_run("sdxl", tmp_path, "run", monkeypatch, steps=2, attention="fa4", compile_cache_dir=str(cache), precision="fp32")
    assert len(losses) == 2 and seen == [{fa4_env[0]: "1", fa4_env[1]: str(cache / SPEC["fa4Dir"] / "cpu")}]
    assert [e["code"] for e in events if e["type"] == "warning"] == [attention.CODE]  # FA4 refused on the CPU, with its code


def test_a_warm_run_whose_every_graph_hit_leaves_the_file_as_it_loaded(tmp_path, events, monkeypatch):
    """A file loaded in this process that served every compiled graph is not rewritten (the warm run wrote back
    a smaller file than it loaded); a miss, or a file never loaded (absent or ignored), is saved as before."""
    from torch._dynamo import utils

    path = compile_cache.artifacts_path(str(tmp_path))
    with open(path, "wb") as f:
        f.write(b"the cold run's artifacts")
    monkeypatch.setattr(compile_cache, "_loaded", set())
    monkeypatch.setattr(torch.compiler, "load_cache_artifacts", lambda data: object())
    monkeypatch.setattr(torch.compiler, "save_cache_artifacts", lambda: (b"fewer", object()))
    monkeypatch.setattr(utils, "counters", collections.defaultdict(collections.Counter))
    assert compile_cache.save(path) is True  # not loaded in this process: saved
    with open(path, "wb") as f:
        f.write(b"the cold run's artifacts")
    assert compile_cache.load(path) is True
    utils.counters["inductor"]["fxgraph_cache_hit"] = 4
    utils.counters["aot_autograd"]["autograd_cache_hit"] = 4
    assert compile_cache.save(path) is False
    assert open(path, "rb").read() == b"the cold run's artifacts"
    assert "left as it was" in events()[-1]["message"]
    utils.counters["aot_autograd"]["autograd_cache_miss"] = 1  # one graph compiled anew: saved
    assert compile_cache.save(path) is True and open(path, "rb").read() == b"fewer"
