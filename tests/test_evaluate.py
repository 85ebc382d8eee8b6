"""evaluate.py: a saved model scored on crops or videos it never saw, and bad inputs."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from sklearn.preprocessing import LabelEncoder

import evaluate
from liveness import ROOT
from liveness.artifacts import read_sidecar, save_label_encoder, save_model, write_sidecar
from liveness.cli import EXIT_USAGE, UserError

FILES = ("_metrics.json", "_predictions.csv", "_roc.png", "_confusion.png")


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def is_png(path: Path) -> bool:
    data = path.read_bytes()
    return data[:8] == b"\x89PNG\r\n\x1a\n" and cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) is not None


@pytest.fixture(scope="module")
def untrained(tmp_path_factory):
    """An untrained LivenessNet saved with a label encoder and a sidecar: (model, le)."""
    from livenessnet import LivenessNet

    out = tmp_path_factory.mktemp("untrained")
    model, le = out / "liveness.keras", out / "le.pickle"
    save_model(LivenessNet.build(32, 32, 3, 2), model)
    save_label_encoder(le, LabelEncoder().fit(["fake", "real"]))
    write_sidecar(model, {"labels": ["fake", "real"], "live_label": "real", "input_size": 32, "threshold": 0.5})
    return model, le


@pytest.fixture
def crops_dir(tmp_path) -> Path:
    root = tmp_path / "crops"
    for label, colour in (("real", 90), ("fake", 200)):
        (root / label).mkdir(parents=True)
        for i in range(4):
            cv2.imwrite(str(root / label / f"{i}.png"), np.full((40, 40, 3), colour + i, np.uint8))
    return root


# --- on the shared data ------------------------------------------------------------------


@pytest.mark.shared_data
@pytest.mark.slow
def test_evaluate_crops_of_a_subject(trained_model, shared_data, tmp_path):
    model, le = trained_model
    prefix = tmp_path / "eval" / "subject07"
    metrics = evaluate.run(model=model, le=le, dataset=[shared_data / "crops" / "subject07"], output=prefix)
    for suffix in FILES:
        assert Path(f"{prefix}{suffix}").is_file(), suffix
    saved = json.loads(Path(f"{prefix}_metrics.json").read_text())
    m = saved["evaluation"]
    assert (m["n_live"], m["n_attack"]) == (99, 98)  # every crop of subject07 (README)
    assert m["threshold"] == pytest.approx(read_sidecar(model)["threshold"])  # the saved operating point
    for key in ("apcer", "bpcer", "acer", "auc", "eer"):
        assert 0.0 <= m[key] <= 1.0
    (tn, fp), (fn, tp) = m["confusion"]
    assert (tn + fp, fn + tp) == (98, 99)
    assert saved["model"] == str(model) and saved["classification_report"]
    assert m == metrics["evaluation"]
    rows = read_csv(Path(f"{prefix}_predictions.csv"))
    assert len(rows) == 197
    assert all(Path(r["path"]).is_relative_to(shared_data / "crops" / "subject07") for r in rows)
    assert all(r["label"] == Path(r["path"]).parent.name for r in rows)
    assert all(r["decision"] == ("real" if float(r["score_live"]) >= m["threshold"] else "fake") for r in rows)
    assert is_png(Path(f"{prefix}_roc.png")) and is_png(Path(f"{prefix}_confusion.png"))


@pytest.mark.shared_data
@pytest.mark.slow
def test_threshold_overrides_the_saved_one(trained_model, shared_data, tmp_path):
    model, le = trained_model
    prefix = tmp_path / "accept_all"
    metrics = evaluate.run(
        model=model, le=le, dataset=[shared_data / "crops" / "subject09"], output=prefix, threshold=0.0, backend="tf",
    )
    m = metrics["evaluation"]
    assert m["threshold"] == 0.0
    assert (m["n_live"], m["n_attack"]) == (26, 26)
    assert m["apcer"] == 1.0 and m["bpcer"] == 0.0  # every face accepted as live


@pytest.mark.shared_data
@pytest.mark.slow
def test_evaluate_videos(trained_model, shared_data, tmp_path):
    model, le = trained_model
    prefix = tmp_path / "videos"
    folder = shared_data / "videos" / "subject02"
    metrics = evaluate.run(model=model, le=le, videos=folder, output=prefix, skip=10, backend="tf")
    for suffix in FILES:
        assert Path(f"{prefix}{suffix}").is_file(), suffix
    rows = read_csv(Path(f"{prefix}_predictions.csv"))
    assert {Path(r["path"]).name for r in rows} == {"real.mp4", "fake.mp4"}
    for r in rows:
        assert r["label"] == Path(r["path"]).stem  # the label comes from the file name
        assert r["group"] == "subject02"
        assert 0.0 <= float(r["score_live"]) <= 1.0
    m = metrics["evaluation"]
    assert m["n_live"] > 0 and m["n_attack"] > 0
    assert m["n_live"] + m["n_attack"] == len(rows)
    # 3.7 s and 2.6 s at 30 fps, every 10th frame: at most 12 and 8 faces
    assert m["n_live"] <= 12 and m["n_attack"] <= 8
    sources = metrics["per_source"]
    assert len(sources) == 2 and sorted(s["live"] for s in sources) == [False, True]
    assert all(re.fullmatch(r"subject02_(real|fake)_[0-9a-f]{8}", s["source"]) for s in sources)


# --- bad inputs ----------------------------------------------------------------------------


def test_refuses_both_dataset_and_videos(untrained, crops_dir, tmp_path):
    with pytest.raises(UserError, match="either --dataset .* or --videos"):
        evaluate.run(model=untrained[0], le=untrained[1], dataset=[crops_dir], videos=tmp_path, output=tmp_path / "e")


def test_refuses_neither_dataset_nor_videos(untrained, tmp_path):
    with pytest.raises(UserError, match="either --dataset .* or --videos"):
        evaluate.run(model=untrained[0], le=untrained[1], output=tmp_path / "e")


@pytest.mark.parametrize("threshold", [1.5, -0.1])
def test_refuses_threshold_outside_0_1(untrained, crops_dir, tmp_path, threshold):
    with pytest.raises(UserError, match="--threshold must be between 0 and 1"):
        evaluate.run(model=untrained[0], le=untrained[1], dataset=[crops_dir], output=tmp_path / "e", threshold=threshold)


def test_refuses_skip_zero(untrained, tmp_path):
    with pytest.raises(UserError, match="--skip must be 1 or more"):
        evaluate.run(model=untrained[0], le=untrained[1], videos=tmp_path, output=tmp_path / "e", skip=0)


def test_refuses_missing_model(untrained, crops_dir, tmp_path):
    with pytest.raises(UserError, match=r"model .*missing\.keras does not exist"):
        evaluate.run(model=tmp_path / "missing.keras", le=untrained[1], dataset=[crops_dir], output=tmp_path / "e")
    assert not list(tmp_path.glob("e_*"))


def test_refuses_missing_label_encoder(untrained, crops_dir, tmp_path):
    with pytest.raises(UserError, match="label encoder .* does not exist"):
        evaluate.run(model=untrained[0], le=tmp_path / "le.pickle", dataset=[crops_dir], output=tmp_path / "e")


def test_refuses_missing_videos(untrained, tmp_path):
    with pytest.raises(UserError, match="--videos .* does not exist"):
        evaluate.run(model=untrained[0], le=untrained[1], videos=tmp_path / "nope", output=tmp_path / "e")


def test_refuses_labels_the_model_does_not_know(untrained, crops_dir, tmp_path):
    (crops_dir / "fake").rename(crops_dir / "print")
    with pytest.raises(UserError, match="labels print are not among the model's classes"):
        evaluate.run(model=untrained[0], le=untrained[1], dataset=[crops_dir], output=tmp_path / "e", backend="tf")


def test_untrained_model_on_tiny_crops_writes_every_file(untrained, crops_dir, tmp_path):
    prefix = tmp_path / "out" / "tiny"
    metrics = evaluate.run(model=untrained[0], le=untrained[1], dataset=[crops_dir], output=prefix, backend="tf")
    for suffix in FILES:
        assert Path(f"{prefix}{suffix}").is_file(), suffix
    assert (metrics["evaluation"]["n_live"], metrics["evaluation"]["n_attack"]) == (4, 4)
    assert len(read_csv(Path(f"{prefix}_predictions.csv"))) == 8


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "either --dataset"),
        (["--dataset", "{crops}", "--threshold", "1.5"], "--threshold must be between 0 and 1"),
        (["--dataset", "{crops}", "--model", "{tmp}/missing.keras"], "missing.keras does not exist"),
    ],
    ids=["neither", "threshold", "missing-model"],
)
def test_script_exits_2_with_one_error_line(untrained, crops_dir, tmp_path, args, message):
    model, le = untrained
    base = ["--model", str(model), "--le", str(le), "--output", str(tmp_path / "e")]
    args = [a.format(crops=crops_dir, tmp=tmp_path) for a in args]
    proc = subprocess.run(
        [sys.executable, str(ROOT / "evaluate.py"), *base, *args],
        cwd=ROOT, capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, timeout=300,
    )
    assert proc.returncode == EXIT_USAGE, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("[ERROR]") and message in last, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
