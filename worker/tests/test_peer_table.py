"""bench/peer-table.py: one lease's rows (built-in gpu-speed rows, Kohya's and ai-toolkit's peer rows) into the
like-for-like table with the ratio to the peers measured in that lease; synthetic rows, no GPU."""

import json

import pytest

import bench_script

def harness():
    return bench_script.load("peer-table.py")


def ours(model, config, s, targets="all-linear", **extra):
    row = {"model": model, "config": config, "s_per_step": s, "targets": targets, "gradient_checkpointing": False, "batch": 1,
           "network_type": "lora", "lora_modules": 494, "peak_alloc_gib": 60.0, "levers": [] if config == "eager" else ["fused", "compile", "fp8mm"]}
    if config != "eager":
        row["loss_check"] = "pass"
    return {**row, **extra}


def kohya(model, s, **extra):
    return {"trainer": "kohya", "model": model, "build_rc": 0, "train_rc": 0, "steps": 60, "steps_seen": 60, "steady_s_per_step": s,
            "median_s_per_step": s - 0.01, "peak_alloc_gib": 40.0, "lora_modules": ["Text Encoder 1: 72", "FLUX all blocks: 304"], **extra}


def aitk(model, s, **extra):
    return {"model": model, "build_rc": 0, "train_rc": 0, "steps": 60, "steps_seen": 60, "steady_s_per_step": s, "median_s_per_step": s,
            "peak_alloc_gib": 72.0, "lora_modules": "create LoRA for U-Net: 494 modules.", **extra}


LEASE = "H200, 2026-12-04 08:00-08:22 UTC"


def cells(line):
    return [c.strip() for c in line.strip("|").split("|")]


def test_ratio_is_the_peer_over_the_fastest_passing_all_linear_row_of_the_same_lease():
    h = harness()
    mine = [ours("flux1", "eager", 0.70), ours("flux1", "fast", 0.45), ours("flux1", "fast + fp8 GEMMs", 0.40),
            ours("flux1", "fast + fp8 GEMMs", 0.30, targets="attention"),  # another preset: not like for like
            ours("flux1", "broken", 0.20, loss_check="fail"),  # a failed loss check never counts
            {"card": "NVIDIA H200", "bf16_tflops": 775.0}]  # gpu-speed's header line
    lines = h.table_rows(LEASE, mine, {"kohya": [kohya("flux1", 0.84)], "aitk": [aitk("flux1", 0.80), aitk("flux1-fp8", 0.85)]})
    assert len(lines) == 2  # the fp8 memory row is not in the table
    k, a = cells(lines[0]), cells(lines[1])
    assert k[:4] == [LEASE, "FLUX.1 [dev]", "Kohya sd-scripts v0.10.1 (ae72efb)", "304"]
    assert k[4] == "0.840 (0.830)" and k[8] == "0.400 (fused, compile, fp8mm)"
    assert k[10] == "**2.10x**" and k[11] == "1.20x" and k[12] == "met"
    assert a[2].startswith("ai-toolkit") and a[3] == "494" and a[10] == "**2.00x**" and a[12] == "met"


def test_a_peer_row_that_is_no_timing_gets_no_ratio_and_says_why():
    h = harness()
    mine = [ours("sdxl", "eager", 0.5), ours("sdxl", "CUDA graph", 0.13, graph_captured=True)]
    bad = [kohya("sdxl", 1.1, invalid="avr_loss non-finite on 4 bar lines"), kohya("sdxl", 1.1, train_rc=1),
           kohya("sdxl", 1.1, steps_seen=30), {"trainer": "kohya", "model": "sdxl", "skipped": "budget"}, kohya("sdxl", -2.6)]
    lines = h.table_rows(LEASE, mine, {"kohya": bad})
    reasons = [cells(line)[10] for line in lines]
    assert reasons == ["no ratio: avr_loss non-finite on 4 bar lines", "no ratio: training exited 1", "no ratio: 30 of 60 steps seen",
                       "no ratio: skipped (budget)", "no ratio: steady s/step -2.600 is not a time"]
    assert all(cells(line)[4] == "-" for line in lines)


def test_a_graph_that_was_not_captured_is_not_the_fastest_and_a_model_without_our_row_gets_no_ratio():
    h = harness()
    mine = [ours("sdxl", "eager", 0.5), ours("sdxl", "CUDA graph", 0.10, graph_captured=False), ours("sdxl", "compile", 0.37)]
    lines = h.table_rows(LEASE, mine, {"kohya": [kohya("sdxl", 1.11)], "aitk": [aitk("klein4b", 0.36)]})
    assert cells(lines[0])[8].startswith("0.370") and cells(lines[0])[10] == "**3.00x**"
    assert cells(lines[1])[10] == "no ratio: no built-in all-linear row in this lease"


def test_write_keeps_earlier_leases_rows_and_replaces_the_block_atomically(tmp_path):
    h = harness()
    results = tmp_path / "RESULTS.md"
    results.write_text("# Results\n\nintro\n\n## Selective checkpointing and the compile cache\n\nrest\n")
    first = h.table_rows("H200, 2026-12-04 A", [ours("flux1", "fast", 0.4)], {"aitk": [aitk("flux1", 0.8)]})
    h.write_results(first, results)
    text = results.read_text()
    assert text.index(h.START) < text.index("## Selective checkpointing") and text.count(h.START) == 1
    second = h.table_rows("H200, 2026-12-05 B", [ours("flux1", "fast", 0.38)], {"aitk": [aitk("flux1", 0.8)]})
    h.write_results(second, results)
    h.write_results(second, results)  # the same lease written twice: its rows once
    text = results.read_text()
    assert text.count(h.START) == 1 and text.count("2026-12-04 A") == 1 and text.count("2026-12-05 B") == 1
    assert text.endswith("rest\n") and not list(tmp_path.glob(".results-*"))


def test_a_rows_file_that_is_not_json_is_named_with_its_line(tmp_path):
    h = harness()
    bad = tmp_path / "peer-kohya.jsonl"
    bad.write_text(json.dumps(kohya("sdxl", 1.1)) + "\n{not json\n")
    with pytest.raises(h.RowsError, match=r"E_BENCH_ROWS: .*peer-kohya.jsonl line 2"):
        h.read_rows(str(bad))
    assert h.main(["--lease", LEASE, "--ours", str(bad)]) == 2


def test_the_fastest_rows_attention_kernel_is_named_with_its_levers():
    """gpu-speed.py --attention fa4 is process-wide: the row carries "attention", not a lever; the table says which kernel."""
    h = harness()
    mine = [ours("flux1", "eager", 0.60, attention="fa4"), ours("flux1", "fast + fp8 GEMMs", 0.32, attention="fa4"),
            ours("sdxl", "eager", 0.48, attention="sdpa"), ours("sdxl", "CUDA graph", 0.11, attention="sdpa", graph_captured=True)]
    lines = h.table_rows(LEASE, mine, {"kohya": [kohya("flux1", 0.78), kohya("sdxl", 1.04)]})
    flux, sdxl = cells(lines[0]), cells(lines[1])
    assert flux[8] == "0.320 (fused, compile, fp8mm, FlashAttention-4)"
    assert sdxl[8] == "0.110 (fused, compile, fp8mm)"


def test_the_last_column_is_the_fastest_rows_floor_ratio():
    h = harness()
    mine = [ours("flux1", "eager", 0.60, floor_s=0.2), ours("flux1", "fast + fp8 GEMMs", 0.32, floor_s=0.2), ours("sdxl", "eager", 0.5)]
    lines = h.table_rows(LEASE, mine, {"kohya": [kohya("flux1", 0.78), kohya("sdxl", 1.0)]})
    assert cells(lines[0])[13] == "1.60x"
    assert cells(lines[1])[13] == "-"  # no fast sdxl row: no ratio, no floor
    assert len(cells(h.HEADER[0])) == len(cells(lines[0])) == len(cells(h.HEADER[1]))
