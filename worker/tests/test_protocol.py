"""The wire protocol: requests from files, stdin and flags; JSON-lines events; coded exits."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import pytest

from loraspec_worker import protocol
from loraspec_worker.protocol import WorkerError, read_request

WORKER = os.path.join(os.path.dirname(__file__), "..")


class FakeStdin(io.StringIO):
    def __init__(self, text: str, tty: bool = False):
        super().__init__(text)
        self._tty = tty

    def isatty(self):
        return self._tty


@pytest.mark.parametrize(
    "argv, stdin, expected",
    [
        (["--arch", "sdxl", "--out", "d"], "", {"arch": "sdxl", "out": "d"}),
        (["--save-every", "2", "--flag"], "", {"save_every": 2, "flag": True}),
        (["--seeds=[1,2]", "--name", "x y"], "", {"seeds": [1, 2], "name": "x y"}),
        (["-"], '{"a": 1}', {"a": 1}),
        (["-", "--a", "2"], '{"a": 1, "b": 3}', {"a": 2, "b": 3}),
        ([], '{"piped": true}', {"piped": True}),
    ],
)
def test_read_request(argv, stdin, expected):
    assert read_request(argv, FakeStdin(stdin)) == expected


def test_read_request_from_file(tmp_path):
    path = tmp_path / "req.json"
    path.write_text(json.dumps({"steps": 3}))
    assert read_request([str(path), "--rank", "4"], FakeStdin("", tty=True)) == {"steps": 3, "rank": 4}


@pytest.mark.parametrize(
    "argv, stdin, code",
    [
        (["/nonexistent/req.json"], "", "E_FILE_NOT_FOUND"),
        (["-"], "{not json", "E_WORKER_PROTOCOL"),
        (["-"], "[1, 2]", "E_WORKER_PROTOCOL"),
        (["a.json", "b.json"], "", "E_USAGE"),
    ],
)
def test_bad_requests(argv, stdin, code):
    with pytest.raises(WorkerError) as err:
        read_request(argv, FakeStdin(stdin))
    assert err.value.code == code


def test_emit_writes_one_json_line_and_nulls_non_finite(monkeypatch):
    buf = io.StringIO()
    monkeypatch.setattr(protocol, "_out", buf)
    protocol.emit({"type": "loss", "step": 1, "loss": float("nan"), "avgLoss": float("inf")})
    protocol.emit({"type": "log", "level": "info", "message": "two\nlines"})
    lines = buf.getvalue().splitlines()
    assert len(lines) == 2
    assert json.loads(lines[0]) == {"type": "loss", "step": 1, "loss": None, "avgLoss": None}
    assert json.loads(lines[1])["message"] == "two\nlines"


def run_worker(*args, stdin=""):
    env = {**os.environ, "PYTHONPATH": WORKER}
    return subprocess.run([sys.executable, "-m", "loraspec_worker", *args], input=stdin, capture_output=True, text=True, env=env, timeout=60)


@pytest.mark.parametrize(
    "args, rc, code",
    [
        (["selftest", "--mode", "ok"], 0, None),
        (["selftest", "--mode", "error"], 1, "E_DATASET_EMPTY"),
        (["nope"], 1, "E_USAGE"),
        (["selftest", "--mode", "crash"], 3, None),
    ],
)
def test_exit_codes_and_last_event(args, rc, code):
    out = run_worker(*args)
    assert out.returncode == rc
    events = [json.loads(line) for line in out.stdout.splitlines()]
    if code:
        assert events[-1] == {**events[-1], "type": "error", "code": code}
    elif rc == 0:
        assert events[-1]["type"] == "done"
    else:
        assert all(e["type"] != "done" for e in events) and "selftest crash line 2" in out.stderr


def test_stray_prints_go_to_stderr_not_the_event_stream(tmp_path):
    # a library printing to stdout must not break the JSON-lines stream
    script = "import sys; sys.argv=['x','selftest','--mode','ok']; print('stray before'); from loraspec_worker.__main__ import main; " \
             "import loraspec_worker.selftest as s; orig=s.run; s.run=lambda r: (print('stray inside'), orig(r))[1]; sys.exit(main())"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env={**os.environ, "PYTHONPATH": WORKER}, timeout=60)
    assert out.returncode == 0
    lines = out.stdout.splitlines()
    assert lines[0] == "stray before"  # printed before the worker took stdout
    assert all(json.loads(line)["type"] for line in lines[1:])
    assert "stray inside" in out.stderr


def test_emit_drops_unset_optional_fields(monkeypatch):
    buf = io.StringIO()
    monkeypatch.setattr(protocol, "_out", buf)
    protocol.emit({"type": "progress", "task": "train", "current": 1, "total": 2, "rate": None, "eta": None})
    assert json.loads(buf.getvalue()) == {"type": "progress", "task": "train", "current": 1, "total": 2}


EXIT_SCRIPT = """
import atexit, sys, threading, time, types
{fake_torch}
atexit.register(lambda: sys.stderr.write("teardown ran\\n"))
from loraspec_worker import protocol
from loraspec_worker.__main__ import exit_process
protocol.take_stdout()
{thread}
protocol.emit({{"type": "log", "level": "info", "message": "last line"}})
exit_process(3)
"""
FAKE_TORCH = "sys.modules['torch'] = types.ModuleType('torch')"  # what the test needs of torch: that it was imported


@pytest.mark.parametrize("fake_torch,thread,skips", [
    (FAKE_TORCH, "", True),  # a process with torch imported ends without the interpreter's teardown
    ("", "", False),  # a light command (no torch): a normal exit
    (FAKE_TORCH, "import multiprocessing, time; multiprocessing.Process(target=time.sleep, args=(0.3,), daemon=True).start()", False),
    (FAKE_TORCH, "threading.Thread(target=time.sleep, args=(0.3,)).start()", False),  # a writer still working is waited for
])
def test_the_worker_ends_with_its_code_and_every_event_skipping_only_a_heavy_teardown(fake_torch, thread, skips):
    script = EXIT_SCRIPT.format(fake_torch=fake_torch, thread=thread)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env={**os.environ, "PYTHONPATH": WORKER}, timeout=60)
    assert out.returncode == 3, out.stderr
    assert json.loads(out.stdout.splitlines()[-1])["message"] == "last line"  # flushed before the end
    assert ("teardown ran" in out.stderr) is not skips
