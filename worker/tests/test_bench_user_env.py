"""bench/user_env.py: the whole-run bench's worker sees what a `loraspec setup worker` venv holds (issue 22)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

from bench_script import BENCH, load

user_env = load("user_env.py")


def test_the_venv_it_emulates_is_the_one_setup_worker_makes():
    # user_env's requirement files are the ones scripts/setup-worker.mjs installs (the data ones without dependencies),
    # plus the FA4 file core's attention knowledge tells a user to install
    root = BENCH.parent
    setup = (root / "scripts" / "setup-worker.mjs").read_text()
    installed = set(re.findall(r'join\(root, "worker", "(requirements[^"]*\.txt)"\)', setup))
    fa4 = {p.name for p in user_env.REQUIREMENTS} - installed
    assert installed == {p.name for p in (*user_env.REQUIREMENTS, *user_env.NO_DEPS)} - fa4
    assert {p.name for p in user_env.NO_DEPS} == {"requirements-data.txt"} and '"--no-deps", "-r", dataRequirements' in setup
    assert fa4 == {"requirements-fa4.txt"} and "worker/requirements-fa4.txt" in (root / "packages/core/src/knowledge/attention.ts").read_text()
    assert '"--no-deps", "-e", join(root, "worker")' in setup and "loraspec-worker" in user_env.ALWAYS


def test_the_closure_follows_installed_dependencies():
    # jinja2 (a torch dependency, so in this venv) requires MarkupSafe
    got = user_env.closure(["jinja2"])
    assert {"jinja2", "markupsafe"} <= got and "torch" not in got


def test_what_the_requirements_do_not_pull_in_is_left_out():
    extras = user_env.extra_modules(["jinja2"])
    assert {"torch", "numpy", "diffusers"} <= set(extras)
    assert not {"jinja2", "markupsafe", "pip"} & set(extras)


def test_vendored_distributions_are_never_left_out():
    # setuptools puts its _vendor folder on sys.path when imported (torch's compile path imports it): what lives there
    # is setuptools' own
    code = "\n".join([
        "import sys, json",
        "import setuptools",
        f"sys.path.insert(0, {str(BENCH)!r})",
        "import user_env",
        "vendor = [p for p in sys.path if p.endswith('_vendor')]",
        "print(json.dumps({'vendor': bool(vendor), 'vendored': sorted(user_env.vendored()), 'extras': user_env.extra_modules()}))",
    ])
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=120)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    if got["vendor"]:  # this setuptools vendors distributions with metadata (84.x does)
        assert got["vendored"]
    assert got["extras"] == []


def test_this_worker_venv_holds_only_what_setup_worker_installs():
    # The CI venv is made by scripts/setup-worker.mjs, as a user's: nothing in it lies outside the requirements (with
    # dependencies), the data requirements and the worker. A package installed by hand, or an import-only dependency
    # missing from worker/requirements.txt, shows here.
    assert user_env.extra_modules() == []


def test_blocked_modules_are_absent_in_that_process_and_imported_ones_are_left_alone():
    code = "\n".join([
        "import sys, json, importlib.util",
        f"sys.path.insert(0, {str(BENCH)!r})",
        "import user_env",
        "marked = user_env.block(['numpy', 'json'])",
        "spec = importlib.util.find_spec('numpy')",
        "try:",
        "    import numpy",
        "    got = 'imported'",
        "except ModuleNotFoundError:",
        "    got = 'absent'",
        "print(json.dumps({'marked': marked, 'spec': spec is None, 'numpy': got}))",
    ])
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"marked": ["numpy"], "spec": True, "numpy": "absent"}
