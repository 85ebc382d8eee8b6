"""benchmarks/bench_pipeline.py: --quick completes and writes its JSON, with every line.

Nothing here asserts a time: the figures of a shared CI machine mean nothing. The
quick run checks that the benchmark has not rotted as the scripts it measures change.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from benchmarks import bench_inputs
from benchmarks import bench_pipeline as bench
from benchmarks import harness
from liveness import ROOT

BENCH = ROOT / "benchmarks" / "bench_pipeline.py"
LINES = ("1", "2", "3", "4", "5", "6", "7")


@pytest.mark.slow
@pytest.mark.shared_data
def test_quick_run_writes_every_line(shared_data, tmp_path):
    out = tmp_path / "bench.json"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--json", str(out), "--data", str(shared_data)],
        capture_output=True, text=True, timeout=600, cwd=ROOT, env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(out.read_text())
    assert data["quick"] is True
    rows = data["lines"]
    for line in LINES:
        mine = [r for r in rows if r["line"] == line]
        assert mine, f"line {line} missing from {[r['id'] for r in rows]}"
        for r in mine:
            assert isinstance(r["median"], (int, float)) and math.isfinite(r["median"]) and r["median"] > 0, r
            for key in ("id", "what", "median", "ratio", "ratio_of", "target", "verdict"):  # the schema README shows
                assert key in r, (key, r)
    # Every target row got a verdict, and the table went to stdout.
    assert all(r["verdict"] in ("ok", "below target") for r in rows if r["target"])
    assert {r["id"]: r["target"] for r in rows if r["target"]} == {k: f"{op} {v:g}" for k, (op, v) in bench.TARGETS.items()}
    assert "colour-LBP" in data["settings"]["demo_scorer"]  # the demo's default scorer
    [scoring] = [r for r in rows if r["id"] == "4f"]  # liveness per face as the demo runs it
    assert 0 < scoring["fraction_scored"] <= 1 and scoring["ms_per_scored_face"] >= scoring["median"]
    assert "median" in proc.stdout and "machine:" in proc.stdout
    for key in ("cpu_count", "python", "numpy", "opencv", "tensorflow", "keras", "date"):
        assert key in data["machine"], key
    assert not list(tmp_path.glob(".*.tmp*")), "the JSON is written atomically"


def test_paired_ratio_is_the_median_of_per_round_ratios():
    assert harness.paired_ratio([10, 20, 30], [10, 10, 10]) == 2.0
    assert harness.paired_ratio([1.0, math.nan], [1.0, 1.0]) == 1.0
    assert math.isnan(harness.paired_ratio([], []))


def test_round_robin_rotates_and_drops_the_warm_up():
    order = []
    tasks = {k: (lambda k=k: order.append(k) or 1.0) for k in "ABC"}
    times = harness.round_robin(tasks, repeats=3, warmup=1)
    assert order == list("ABC" "BCA" "CAB" "ABC")
    assert times == {k: [1.0, 1.0, 1.0] for k in "ABC"}


def test_verdict_only_where_there_is_a_target():
    assert bench.row("3", "x", "frames/s", [1.0], ratio=0.95).verdict == "ok"
    assert bench.row("3", "x", "frames/s", [1.0], ratio=0.5).verdict == "below target"
    assert bench.row("1", "x", "frames/s", [1.0], ratio=0.5).verdict == ""
    assert harness.Row("7a", "x", "s", [1.0], ratio=2.0, target=("<=", 1.0)).verdict == "below target"
    row = bench.row("4d", "x", "ms/face", [3.0, 1.0, 2.0], ratio=30.0).as_json()
    assert (row["line"], row["id"], row["min"], row["median"], row["max"]) == ("4", "4d", 1.0, 2.0, 3.0)
    assert (row["target"], row["verdict"], row["ratio"]) == (">= 25", "ok", 30.0)


@pytest.mark.parametrize("shape", [(720, 1080, 3), (656, 368, 3), (480, 640, 3)])
def test_frames_become_640x480_without_losing_the_middle(shape):
    frame = np.zeros(shape, np.uint8)
    frame[shape[0] // 2, shape[1] // 2] = 255
    out = bench_inputs.to_size(frame)
    assert out.shape == (480, 640, 3)
    assert out[230:250, 310:330].max() > 0  # the centre stays the centre


@pytest.mark.slow
@pytest.mark.shared_data
def test_export_benchmark_compares_a_mobilenet_whose_scores_differ(shared_data, tmp_path):
    """Built untrained, a MobileNet scored every crop alike until its BatchNorm statistics were
    estimated on the crops: the exports' agreement then compared constants."""
    from benchmarks import bench_export

    out = tmp_path / "export.json"
    result = bench_export.run(data=shared_data, arch="mobilenetv3small", input_size=32, crops=8, repeats=1, json_path=out)
    assert json.loads(out.read_text())["cnn_score_sd"] == result["cnn_score_sd"] > 0.01
    lines = {line["id"]: line for line in result["lines"]}
    assert set(lines) == {"cnn-keras", "cnn-onnx", "cnn-tflite", "cnn-tflite-int8", "lbp", "lbp-json"}
    for name in ("cnn-onnx", "cnn-tflite", "lbp-json"):  # float exports: the same scores
        assert lines[name]["max_score_difference"] < 1e-3, lines[name]
        assert lines[name]["ratio"] > 0 and lines[name]["bytes"] > 0
