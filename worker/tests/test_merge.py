"""merge.py against exact math and peft's own merge utilities (peft.utils.merge_utils)."""

from __future__ import annotations

import pytest
import torch
from peft.utils import merge_utils
from safetensors.torch import load_file, save_file

from loraspec_worker import merge
from loraspec_worker.protocol import WorkerError


def _lora(path, modules, seed):
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for stem, (out, inp, r, alpha) in modules.items():
        sd[f"{stem}.lora_down.weight"] = torch.randn(r, inp, generator=g) * 0.1
        sd[f"{stem}.lora_up.weight"] = torch.randn(out, r, generator=g) * 0.1
        if alpha is not None:
            sd[f"{stem}.alpha"] = torch.tensor(float(alpha))
    save_file(sd, str(path))
    return sd


def _delta(sd, stem):
    d, u = sd[f"{stem}.lora_down.weight"].double(), sd[f"{stem}.lora_up.weight"].double()
    a = float(sd[f"{stem}.alpha"]) if f"{stem}.alpha" in sd else d.shape[0]
    return (a / d.shape[0]) * (u @ d)


def _run(tmp_path, method, inputs, **kw):
    out = tmp_path / f"{method}.safetensors"
    result = merge.run({"inputs": inputs, "method": method, "output": str(out), "device": "cpu", **kw})
    return load_file(str(out)), result


def _rel(a, b):
    return float((a - b).norm() / b.norm())


@pytest.fixture()
def two(tmp_path):
    a = _lora(tmp_path / "a.safetensors", {"m1": (24, 16, 4, 2), "m2": (8, 12, 2, None)}, 1)
    b = _lora(tmp_path / "b.safetensors", {"m1": (24, 16, 4, 8)}, 2)  # m2 missing in b: counts as zero
    return tmp_path, a, b


def test_svd_with_enough_rank_is_the_exact_weighted_sum(two):
    tmp, a, b = two
    out, result = _run(tmp, "svd", [{"path": str(tmp / "a.safetensors"), "weight": 0.6}, {"path": str(tmp / "b.safetensors"), "weight": -0.3}], rank=8)
    assert result["modules"] == 2
    for stem, want in (("m1", 0.6 * _delta(a, "m1") - 0.3 * _delta(b, "m1")), ("m2", 0.6 * _delta(a, "m2"))):
        assert _rel(_delta(out, stem), want) < 1e-6
    assert float(out["m1.alpha"]) == out["m1.lora_down.weight"].shape[0] == 8


def test_svd_truncates_to_the_best_rank_r_approximation(two):
    tmp, a, b = two
    out, _ = _run(tmp, "svd", [{"path": str(tmp / "a.safetensors"), "weight": 1.0}, {"path": str(tmp / "b.safetensors"), "weight": 1.0}], rank=3)
    full = _delta(a, "m1") + _delta(b, "m1")
    U, S, Vh = torch.linalg.svd(full)
    best = (U[:, :3] * S[:3]) @ Vh[:3]
    assert _rel(_delta(out, "m1"), best) < 1e-6


def test_ties_equals_peft_ties_on_the_full_delta(two):
    tmp, a, b = two
    out, _ = _run(tmp, "ties", [{"path": str(tmp / "a.safetensors"), "weight": 0.7}, {"path": str(tmp / "b.safetensors"), "weight": 0.5}], rank=16, density=0.4)
    want = merge_utils.ties([_delta(a, "m1"), _delta(b, "m1")], torch.tensor([0.7, 0.5], dtype=torch.float64), 0.4, "total")
    assert _rel(_delta(out, "m1"), want) < 1e-6


def test_dare_equals_peft_dare_linear_with_the_same_seed(tmp_path):
    _lora(tmp_path / "a.safetensors", {"m": (20, 10, 3, 3)}, 5)
    _lora(tmp_path / "b.safetensors", {"m": (20, 10, 3, 6)}, 6)
    a, b = load_file(str(tmp_path / "a.safetensors")), load_file(str(tmp_path / "b.safetensors"))
    inputs = [{"path": str(tmp_path / "a.safetensors"), "weight": 0.5}, {"path": str(tmp_path / "b.safetensors"), "weight": 0.5}]
    out, _ = _run(tmp_path, "dare", inputs, rank=10, density=0.6, seed=123)
    torch.manual_seed(123)
    # The worker works in float32 (peft draws its masks in the deltas' dtype): replay in float32.
    want = merge_utils.dare_linear([_delta(a, "m").float(), _delta(b, "m").float()], torch.tensor([0.5, 0.5]), 0.6).double()
    assert _rel(_delta(out, "m"), want) < 1e-5
    again, _ = _run(tmp_path, "dare", inputs, rank=10, density=0.6, seed=123)
    assert torch.equal(again["m.lora_down.weight"], out["m.lora_down.weight"])


def test_linear_is_peft_factor_average(two):
    tmp, a, b = two
    out, _ = _run(tmp, "linear", [{"path": str(tmp / "a.safetensors"), "weight": 0.5}, {"path": str(tmp / "b.safetensors"), "weight": 0.5}])
    ca, cb = 0.5 * 2 / 4, 0.5 * 8 / 4
    down = ca ** 0.5 * a["m1.lora_down.weight"].double() + cb ** 0.5 * b["m1.lora_down.weight"].double()
    up = ca ** 0.5 * a["m1.lora_up.weight"].double() + cb ** 0.5 * b["m1.lora_up.weight"].double()
    assert _rel(_delta(out, "m1"), up @ down) < 1e-6


def test_unknown_keys_are_refused(tmp_path):
    _lora(tmp_path / "a.safetensors", {"m": (4, 4, 2, 2)}, 1)
    sd = load_file(str(tmp_path / "a.safetensors"))
    sd["m.hada_w1_a"] = torch.zeros(4, 2)
    save_file(sd, str(tmp_path / "b.safetensors"))
    with pytest.raises(WorkerError) as e:
        _run(tmp_path, "svd", [{"path": str(tmp_path / "a.safetensors")}, {"path": str(tmp_path / "b.safetensors")}])
    assert e.value.code == "E_LORA_UNUSED_KEYS"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_svd_matches_cpu(two):
    tmp, a, b = two
    inputs = [{"path": str(tmp / "a.safetensors"), "weight": 0.6}, {"path": str(tmp / "b.safetensors"), "weight": 0.4}]
    out = tmp / "gpu.safetensors"
    merge.run({"inputs": inputs, "method": "svd", "output": str(out), "device": "cuda", "rank": 8})
    cpu, _ = _run(tmp, "svd", inputs, rank=8)
    assert _rel(_delta(load_file(str(out)), "m1"), _delta(cpu, "m1")) < 1e-5


@pytest.mark.parametrize("density", [0.05, 0.3, 0.7, 0.99])
def test_topk_threshold_is_the_exact_kth_largest_magnitude(density):
    g = torch.Generator().manual_seed(1)
    d = torch.randn(300, 1000, generator=g)  # 300k entries: more than the sample, so the bracket path runs
    k = int(density * d.numel())
    want = float(d.abs().flatten().topk(k).values[-1])
    assert merge.topk_threshold(d, k, torch.Generator().manual_seed(2)) == want
    # Many equal magnitudes (integers): still the exact value.
    ints = torch.randint(-20, 21, (300, 1000), generator=g).float()
    assert merge.topk_threshold(ints, k, torch.Generator().manual_seed(3)) == float(ints.abs().flatten().topk(k).values[-1])


def test_randomized_factoring_reports_its_exact_error_and_is_near_the_best():
    g = torch.Generator().manual_seed(4)
    m = torch.randn(600, 8, generator=g) @ torch.randn(8, 400, generator=g) + 0.05 * torch.randn(600, 400, generator=g)
    up, down, k, error = merge.factor(m, 8)  # 8 + oversampling is far below 400: torch.svd_lowrank runs
    assert k == 8
    direct = float((m - up @ down).norm() / m.norm())
    assert abs(error - direct) < 1e-5
    s = torch.linalg.svdvals(m.double())
    best = float((s[8:].square().sum() / s.square().sum()).sqrt())
    assert best <= direct < best * 1.02


@pytest.mark.parametrize("bad", [{"rank": 0}, {"rank": -1}, {"rank": 1.5}, {"rank": True}, {"density": 0}, {"density": 1.5}, {"weight": float("nan")}, {"weight": float("inf")}])
def test_bad_requests_are_refused_before_any_file_is_read(tmp_path, bad):
    weight = bad.pop("weight", 1.0)
    request = {"inputs": [{"path": str(tmp_path / "missing.safetensors"), "weight": weight}], "method": "ties", "output": str(tmp_path / "o.safetensors"), **bad}
    with pytest.raises(WorkerError) as e:
        merge.run(request)
    assert e.value.code == "E_USAGE"


def test_ties_reports_the_error_of_each_module(two):
    tmp, a, b = two
    _, result = _run(tmp, "ties", [{"path": str(tmp / "a.safetensors"), "weight": 1.0}, {"path": str(tmp / "b.safetensors"), "weight": 1.0}], rank=2, density=0.5)
    assert set(result["error"]["modules"]) == {"m1", "m2"}
    assert 0 < result["error"]["max"] < 1 and result["error"]["worst"] in ("m1", "m2")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_ties_matches_cpu(two):
    tmp, a, b = two
    inputs = [{"path": str(tmp / "a.safetensors"), "weight": 0.7}, {"path": str(tmp / "b.safetensors"), "weight": 0.5}]
    out = tmp / "gpu.safetensors"
    merge.run({"inputs": inputs, "method": "ties", "output": str(out), "device": "cuda", "rank": 16, "density": 0.4})
    cpu, _ = _run(tmp, "ties", inputs, rank=16, density=0.4)
    assert _rel(_delta(load_file(str(out)), "m1"), _delta(cpu, "m1")) < 1e-4


@pytest.mark.parametrize("compiled", [True, False])
def test_ties_fused_and_eager_paths_equal_peft_ties(monkeypatch, compiled):
    # Three deltas with sign conflicts, one with a zero block and one equal to minus another (sums of
    # exactly 0: sign +1 elected); the fused (torch.compile) path forced on a small tensor, and the eager
    # fallback (what a machine without a C++ compiler runs). Magnitudes distinct: peft's top-k breaks ties arbitrarily.
    monkeypatch.setitem(merge.TUNING, "compile_min_elements", 0)
    monkeypatch.setitem(merge.TUNING, "compile_cpu_ties", compiled)
    monkeypatch.setattr(merge, "_FUSED", {})
    g = torch.Generator().manual_seed(7)
    ds = [torch.randn(300, 700, generator=g) for _ in range(2)]
    ds[0][:50] = 0
    ds.append(-ds[1])
    ws = [0.7, -0.5, 1.25]
    got = merge._ties([d.clone() for d in ds], ws, 0.4, torch.Generator().manual_seed(2))
    assert (merge._FUSED["fn"] is not None) == compiled
    want = merge_utils.ties([d.double() for d in ds], torch.tensor(ws, dtype=torch.float64), 0.4, "total")
    assert _rel(got.double(), want) < 1e-6
