"""The worker against what core exports (schema/*.json, scripts/write-schema.ts): the built-in
trainer table, the train request schema and the event union. Each test fails when one side gains or
loses an arch, an optimizer, a fallback, a request field or an event field the other does not have."""

from __future__ import annotations

import dataclasses
import io
import json
import math
import pathlib
import re

import pytest

from loraspec_worker import protocol, schema_files, speed, tiny_base, train
from loraspec_worker.train import model as train_model
from loraspec_worker.train import runner
from loraspec_worker.train.dev_request import dev_request
from noise_dataset import write_noise_dataset

TABLE = schema_files.builtin_trainer()
REQUEST = schema_files.train_request_schema()
EVENTS = schema_files.event_schema()


def test_the_worker_implements_exactly_the_arches_the_table_says_it_trains():
    trained = {a for a, r in TABLE["arches"].items() if r["trains"]}
    assert set(train.ARCH_CLASSES) == trained
    assert set(REQUEST["properties"]["arch"]["enum"]) == set(TABLE["arches"])
    for arch in trained:
        assert train.pipeline_class(arch) is not None  # diffusers has the class
        assert hasattr(train.ARCH_CLASSES[arch], "loss_from") == TABLE["arches"][arch]["graphReplayable"], arch
    # every base the table maps trains as an arch the table knows
    assert {b["arch"] for b in TABLE["bases"].values()} <= set(TABLE["arches"])
    assert set(tiny_base.ARCHES) == trained  # a tiny base per trained arch, for the CPU tests


def test_the_worker_builds_exactly_the_optimizers_and_fallbacks_of_the_table():
    assert list(train_model.OPTIMIZERS) == list(TABLE["optimizers"]) == REQUEST["properties"]["optimizer"]["enum"]
    assert list(runner.FALLBACKS) == list(TABLE["oomFallbacks"])
    assert REQUEST["properties"]["failure"]["properties"]["oom_fallbacks"]["items"]["enum"] == list(TABLE["oomFallbacks"])
    assert set(train_model.PRECISIONS) == set(TABLE["precisions"]) == set(REQUEST["properties"]["precision"]["enum"])
    assert REQUEST["properties"]["quantize"]["enum"] == list(TABLE["quantize"])


def test_config_has_one_field_per_request_property_and_defaults_only_for_the_optional_ones():
    props = dict(REQUEST["properties"])
    failure = props.pop("failure")
    fields = {f.name: f for f in dataclasses.fields(train.Config)}
    assert set(fields) == set(props) | set(failure["properties"])
    required = set(REQUEST["required"]) - {"failure"} | set(failure["required"])
    with_default = {n for n, f in fields.items() if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING}
    assert with_default == set(fields) - required
    assert set(TABLE["settingKeys"]) <= set(fields)
    assert set(TABLE["levers"]) <= set(fields)


def test_every_trained_arch_has_target_presets_and_requests_default_to_attention():
    trained = {a for a, r in TABLE["arches"].items() if r["trains"]}
    assert set(TABLE["targetPresets"]) == trained
    for arch in trained:
        assert set(TABLE["targetPresets"][arch]["presets"]) == {"attention", "attention-mlp", "all-linear"}
        assert TABLE["arches"][arch]["targets"] == TABLE["targetPresets"][arch]["presets"]["attention"]
        assert dev_request(arch=arch)["targets"] == TABLE["targetPresets"][arch]["presets"]["attention"]


def test_every_refusal_the_worker_makes_has_the_tables_code():
    assert set(TABLE["refusals"]) == {"compile", "cuda_graphs", "channels_last", "fp8_matmul", "attention", "precision", "lora_compute"}
    assert all(code.startswith("W_") for code in TABLE["refusals"].values())
    # precision and lora_compute are refused where the base's dtype is chosen (model.choose_dtype, setup.lora_compute_for)
    assert set(TABLE["refusals"]) - {"precision", "lora_compute"} <= set(TABLE["levers"])
    assert callable(speed.refuse_levers)


def test_a_request_with_a_field_the_schema_does_not_know_is_a_usage_error():
    req = dev_request(arch="flux1", base="b", dataset="d", output_dir="o", compile_mode="max-autotune")
    with pytest.raises(protocol.WorkerError) as err:
        train.parse_config(req)
    assert err.value.code == "E_USAGE"


def test_the_worker_samples_the_arches_cores_table_lists():
    from loraspec_worker.train import samples

    assert set(samples.SAMPLE_ARCHES) == set(TABLE["sampleArches"])
    assert set(TABLE["sampleArches"]) <= set(TABLE["arches"])


def test_the_sample_graphs_arches_and_warning_code_are_cores():
    """The worker reads them from core's table; a graphed arch must be one core compiles samples for."""
    from loraspec_worker.train import sample_graph

    assert (list(sample_graph.ARCHES), sample_graph.WARNING) == (TABLE["sampleGraph"]["arches"], TABLE["sampleGraph"]["warning"])
    assert set(sample_graph.ARCHES) <= set(TABLE["sampleArches"])


def test_the_worker_builds_every_sample_merge_the_request_schema_allows_and_decides_none():
    """Core decides the sample merge (plan/sample-merge.ts) and sends it as sample_merge: the worker has a variant
    for exactly the schema's values (the table's modes) and no arch or network-type table of its own to decide with;
    the fallback warning code is the table's."""
    from loraspec_worker.train import sample_merge

    m = TABLE["sampleMerge"]
    assert REQUEST["properties"]["sample_merge"]["enum"] == m["modes"] and "sample_merge" in REQUEST["required"]
    assert set(sample_merge.VARIANTS) == set(m["modes"]) and sample_merge.WARNING == m["warning"]
    assert not [name for name in ("applies", "ARCHES", "PER_CALL_ARCHES", "NETWORK_TYPES") if hasattr(sample_merge, name)]
    assert set(m["arches"]) | set(m["perCallArches"]) <= set(TABLE["sampleArches"]) and set(m["networkTypes"]) <= set(TABLE["networkTypes"])
    assert not set(m["arches"]) & set(m["perCallArches"])


@pytest.fixture(scope="module")
def run_events(tmp_path_factory):
    """Every event of a CPU training run (tiny FLUX.1: load, cache, 4 steps, a checkpoint, save)."""
    root = tmp_path_factory.mktemp("sync")
    base = tiny_base.make_tiny_base("flux1", str(root / "base"), seed=0)
    data = write_noise_dataset(root / "data", 2, (32, 32), "a photo of txcl, view {i}")
    buf = io.StringIO()
    old, protocol._out = protocol._out, buf
    try:
        result = train.run(dev_request(arch="flux1", base=base, dataset=data, output_dir=str(root / "out"), resolution=32, steps=4,
                                       save_every=2, rank=4, alpha=4, learning_rate=1e-3, max_sequence_length=32, compile=True,
                                       lr_scheduler="cosine", warmup_steps=1,
                                       samples={"every": 4, "prompts": ["txcl"], "seeds": [1], "steps": 1, "guidance_scale": 1.0, "first": False, "width": 32, "height": 32}))
    finally:
        protocol._out = old
    return [json.loads(line) for line in buf.getvalue().splitlines()] + [{"type": "done", "result": json.loads(json.dumps(result))}]


def test_every_event_of_a_cpu_training_run_fits_the_event_union(run_events):
    import jsonschema

    validator = jsonschema.Draft202012Validator(EVENTS)
    bad = [(e, next(iter(validator.iter_errors(e))).message) for e in run_events if not validator.is_valid(e)]
    assert not bad, bad[:3]
    types = {e["type"] for e in run_events}
    assert {"phase", "progress", "loss", "checkpoint", "settings", "warning", "sample", "done"} <= types, types
    lrs = [e["lr"] for e in run_events if e["type"] == "loss"]
    assert lrs and all(isinstance(x, float) and math.isfinite(x) for x in lrs)


def test_the_settings_event_reports_the_table_setting_keys(run_events):
    [settings] = [e for e in run_events if e["type"] == "settings"]
    assert list(settings["settings"]) == list(TABLE["settingKeys"]) == list(settings["applied"])
    assert settings["settings"]["compile"] is True and settings["applied"]["compile"] is False  # refused on the CPU
    assert any(e["type"] == "warning" and e.get("code") == TABLE["refusals"]["compile"] for e in run_events)


class _FakeCudaTensor:
    """What a fused AdamW's scheduler hands back on CUDA: a 0-d tensor whose str() is its repr."""

    ndim = 0

    def item(self):
        return 1e-4

    def __str__(self):
        return "tensor(1.0000e-04, device='cuda:0')"


def test_a_tensor_lr_goes_out_as_a_number_that_fits_the_event_union(monkeypatch):
    import io
    import json

    import jsonschema

    validator = jsonschema.Draft202012Validator(EVENTS)
    assert not validator.is_valid({"type": "loss", "step": 1, "loss": 0.5, "lr": str(_FakeCudaTensor())})
    buf = io.StringIO()
    monkeypatch.setattr(protocol, "_out", buf)
    protocol.emit({"type": "loss", "step": 1, "loss": 0.5, "lr": _FakeCudaTensor()})
    event = json.loads(buf.getvalue())
    assert event["lr"] == 1e-4 and validator.is_valid(event)


def test_the_worker_trains_exactly_the_network_kinds_of_the_table():
    from loraspec_worker.train import network
    from loraspec_worker.train.dev_request import dev_config

    assert set(network.NETWORK_TYPES) == set(TABLE["networkTypes"]) == {"lora", "dora", "lokr", "loha"}
    for kind in TABLE["networkTypes"]:
        assert network.adapter_config(dev_config(arch="sdxl", network_type=kind), ["to_q"]) is not None
    # every arch the worker trains has the header values its files carry
    trained = {a for a, r in TABLE["arches"].items() if r["trains"]}
    assert trained <= set(TABLE["fileMetadata"]), trained - set(TABLE["fileMetadata"])


def test_a_plain_lora_names_the_sd_scripts_module_kohya_compiles_for_its_arch():
    from loraspec_worker.train.dev_request import dev_config
    from loraspec_worker.train.network import network_args

    assert network_args(dev_config(arch="sdxl"))["module"] == "networks.lora"
    assert network_args(dev_config(arch="flux1"))["module"] == "networks.lora_flux"


def test_the_worker_samples_exactly_the_request_timestep_samplings_for_exactly_the_flow_arches():
    """Every timestep_sampling the request allows is one regularize.flow_sigmas draws, and the
    table's flow arches are the worker's FlowArch classes (the rest, SDXL, draw DDPM timesteps)."""
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler

    from loraspec_worker.train import regularize
    from loraspec_worker.train.arches import ARCH_CLASSES
    from loraspec_worker.train.arches.flow import FlowArch

    methods = REQUEST["properties"]["timestep_sampling"]["enum"]
    for method in methods:
        s, _ = regularize.flow_sigmas(method, FlowMatchEulerDiscreteScheduler(), 8, torch.Generator().manual_seed(0), torch.device("cpu"), 1024)
        assert ((s > 0) & (s <= 1)).all(), method
    with pytest.raises(ValueError):
        regularize.flow_sigmas("mode", FlowMatchEulerDiscreteScheduler(), 8, torch.Generator(), torch.device("cpu"), 1024)
    flow = sorted(a for a, cls in ARCH_CLASSES.items() if issubclass(cls, FlowArch))
    assert flow == sorted(TABLE["regularisers"]["flowArches"])
def test_checkpointing_modes_and_the_compile_cache_are_the_tables():
    from loraspec_worker.train import compile_cache, selective_ckpt

    assert REQUEST["properties"]["checkpointing_mode"]["enum"] == list(TABLE["checkpointingModes"]) == ["full", "selective"]
    assert set(TABLE["selectiveCheckpointingArches"]) <= {a for a, r in TABLE["arches"].items() if r["trains"]}
    assert TABLE["selectiveCheckpointingKeep"] in selective_ckpt.KEEPS and selective_ckpt.PRODUCT_KEEP == TABLE["selectiveCheckpointingKeep"]
    assert callable(selective_ckpt.apply) and compile_cache.SPEC == TABLE["compileCache"]
    assert "{torch}" in TABLE["compileCache"]["artifactsFile"] and TABLE["compileCache"]["warning"].startswith("W_")
    assert "compile_cache_dir" not in REQUEST["required"] and "checkpointing_mode" in REQUEST["required"]
    assert {"at"} <= set(next(o for o in EVENTS["oneOf"] if o["properties"]["type"].get("const") == "phase")["properties"])


def test_the_loss_spike_rule_is_cores_record_applied_as_sent():
    # knowledge/loss-spike.ts -> schema/builtin-trainer.json lossSpike: hand-built requests carry it, the
    # request schema requires each number, and the worker judges a blow-up first at the record's first step
    from loraspec_worker.train.dev_request import dev_config

    rule = TABLE["lossSpike"]
    sent = {"loss_spike_factor": rule["factor"], "loss_spike_recent_steps": rule["recentSteps"],
            "loss_spike_baseline_steps": rule["baselineSteps"], "loss_spike_first_step": rule["firstStep"]}
    assert {k: v for k, v in dev_request(arch="sdxl")["failure"].items() if k.startswith("loss_spike")} == sent
    failure = REQUEST["properties"]["failure"]
    assert {k for k in failure["properties"] if k.startswith("loss_spike")} == set(sent) <= set(failure["required"])
    cfg = dev_config(arch="sdxl")
    assert {k: getattr(cfg, k) for k in sent} == sent
    train.check_spike(cfg, [1.0] * (rule["firstStep"] - 2) + [1e3], rule["firstStep"] - 1)  # one step too early
    with pytest.raises(train.Diverged, match=f"mean of the last {rule['recentSteps']} steps"):
        train.check_spike(cfg, [1.0] * (rule["firstStep"] - 1) + [1e3], rule["firstStep"])


def test_the_debug_hooks_the_worker_reads_are_exactly_cores_table():
    """Every `debug.get("name")` / `debug["name"]` in the worker's source is a hook of core's debugHooks (which writes
    the request schema's keys and description) and every hook there is read somewhere; the set that keeps the CUDA
    graph is the table's outsideStep. (Keys with a leading underscore are the worker's own bookkeeping.)"""
    source = "\n".join(p.read_text() for p in pathlib.Path(speed.__file__).parent.rglob("*.py"))
    read = set(re.findall(r"debug(?:\.get\(|\[)\"([a-z][a-z0-9_]*)\"", source))
    assert read == set(TABLE["debugHooks"])
    assert speed.DEBUG_HOOKS_OUTSIDE_THE_STEP == {k for k, h in TABLE["debugHooks"].items() if h["outsideStep"]}
    assert set(REQUEST["properties"]["debug"]["properties"]) == set(TABLE["debugHooks"])


def test_a_debug_hook_core_does_not_list_is_a_usage_error():
    req = dev_request(arch="flux1", base="b", dataset="d", output_dir="o") | {"debug": {"fail_inside_step": 1}}
    with pytest.raises(protocol.WorkerError) as err:
        train.parse_config(req)
    assert err.value.code == "E_USAGE" and "fail_inside_step" in err.value.message
