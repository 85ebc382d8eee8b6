"""train.py and the models it builds: layer sequence, tiny end-to-end runs, bad inputs.

Synthetic data: small PNGs in tmp_path, "real" noise-textured and "fake" flat bluish
crops, named the way gather_examples.py names them so that each subject's videos
form a group. Runs use 32x32 inputs and 1-2 epochs; the accuracy means nothing.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

import train
from liveness import ROOT
from liveness.artifacts import LivenessClassifier, load_keras_model, load_label_encoder, read_sidecar
from liveness.cli import EXIT_USAGE, UserError
from liveness.crops import crop_name

GROUP_PATTERN = r"subj\d+"
SEED = 7


def write_dataset(root: Path, subjects: int = 4, frames: int = 10, size: int = 32, seed: int = 0) -> Path:
    """`subjects` x (real video, fake video) x `frames` crops under root/<label>/."""
    rng = np.random.default_rng(seed)
    for label in ("real", "fake"):
        (root / label).mkdir(parents=True, exist_ok=True)
    for k in range(subjects):
        for label in ("real", "fake"):
            key = f"subj{k}_{label}_{'%08x' % k}"
            for f in range(frames):
                if label == "real":  # textured: noise
                    img = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
                else:  # flat and bluish (BGR), like a screen
                    img = np.clip(np.array([190.0, 110.0, 60.0]) + rng.normal(0, 6, (size, size, 3)), 0, 255).astype(np.uint8)
                assert cv2.imwrite(str(root / label / crop_name(key, f)), img)
    return root


def outputs(folder: Path, stem: str = "liveness") -> dict:
    return {"model": folder / f"{stem}.keras", "le": folder / "le.pickle", "plot": folder / "plot.png"}


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def is_png(path: Path) -> bool:
    data = path.read_bytes()
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    return data[:8] == b"\x89PNG\r\n\x1a\n" and img is not None and img.shape[0] > 10 and img.shape[1] > 10


# --- the model ---------------------------------------------------------------------------


def test_livenessnet_layer_sequence():
    import keras

    from livenessnet import LivenessNet

    model = LivenessNet.build(32, 32, 3, 2)
    kinds = [type(layer).__name__ for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    block = ["Conv2D", "Activation", "BatchNormalization"] * 2 + ["MaxPooling2D", "Dropout"]
    assert kinds == (
        ["Rescaling"] + block + block
        + ["Flatten", "Dense", "Activation", "BatchNormalization", "Dropout", "Dense"]
    )
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    assert [c.filters for c in layers if isinstance(c, keras.layers.Conv2D)] == [16, 16, 32, 32]
    assert all(c.kernel_size == (3, 3) and c.padding == "same" for c in layers if isinstance(c, keras.layers.Conv2D))
    acts = [a.activation.__name__ for a in layers if isinstance(a, keras.layers.Activation)]
    assert acts == ["relu"] * 5
    dense = [d for d in layers if isinstance(d, keras.layers.Dense)]
    assert [d.units for d in dense] == [64, 2]
    assert dense[-1].activation.__name__ == "softmax"
    assert layers[0].scale == pytest.approx(1 / 255)
    assert tuple(model.input_shape) == (None, 32, 32, 3)
    assert tuple(model.output_shape) == (None, 2)
    # pixels in 0..255 in, probabilities out
    probs = model.predict(np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3)).astype("float32"), verbose=0)
    assert probs.shape == (3, 2) and np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_livenessnet_classes_and_size():
    from livenessnet import LivenessNet

    model = LivenessNet.build(48, 48, 3, 3)
    assert tuple(model.input_shape) == (None, 48, 48, 3)
    assert tuple(model.output_shape) == (None, 3)


@pytest.mark.parametrize("arch, size", [("mobilenetv2", 32), ("mobilenetv3small", 64)])
def test_build_mobilenets_without_weights(arch, size):
    from liveness.models import build_model

    model = build_model(arch, input_size=size, classes=2, weights=None)
    assert tuple(model.input_shape) == (None, size, size, 3)
    assert tuple(model.output_shape) == (None, 2)
    assert model.layers[1].name == "scale"  # pixel scaling is inside the model
    out = model(np.full((1, size, size, 3), 128.0, "float32"), training=False).numpy()
    assert np.allclose(out.sum(), 1.0, atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"arch": "resnet", "input_size": 32}, "--arch must be one of"),
        ({"arch": "mobilenetv2", "input_size": 16}, "--input-size 32 or more"),
        ({"arch": "livenessnet", "input_size": 32, "weights": "imagenet"}, "MobileNet backbones only"),
        ({"arch": "mobilenetv2", "input_size": 32, "weights": "/no/such/weights.h5"}, "expected none, imagenet"),
    ],
)
def test_build_model_refuses(kwargs, message):
    from liveness.models import build_model

    with pytest.raises(UserError, match=message):
        build_model(**kwargs)


# --- tiny end-to-end runs ----------------------------------------------------------------


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory) -> Path:
    """40 real / 40 fake crops of 4 subjects, plus 2 corrupt PNGs and some non-image files."""
    root = write_dataset(tmp_path_factory.mktemp("tiny") / "dataset")
    (root / "real" / crop_name(f"subj0_real_{'%08x' % 0}", 99)).write_bytes(b"\x89PNG\r\n\x1a\n" + b"broken" * 20)
    (root / "fake" / crop_name(f"subj1_fake_{'%08x' % 1}", 99)).write_bytes(b"")
    (root / "notes.txt").write_text("not an image")
    (root / "fake" / "Thumbs.db").write_bytes(b"\0" * 64)
    (root / "real" / "manifest.csv").write_text("file,source\n")
    return root


@pytest.fixture(scope="module")
def twin_runs(tiny_dataset, tmp_path_factory):
    """train.run twice with one seed: [(output folder, metrics, log lines), ...]."""
    runs = []
    for name in ("a", "b"):
        out = tmp_path_factory.mktemp(f"run_{name}")
        handler = _Records()
        logging.getLogger("liveness").addHandler(handler)
        try:
            metrics = train.run(
                dataset=[tiny_dataset], **outputs(out), epochs=2, batch_size=16, seed=SEED,
                group_pattern=GROUP_PATTERN, patience=5,
            )
        finally:
            logging.getLogger("liveness").removeHandler(handler)
        runs.append((out, metrics, handler.messages))
    return runs


@pytest.mark.slow
def test_training_twice_with_one_seed_agrees(twin_runs):
    (a, ma, _), (b, mb, _) = twin_runs
    rows_a, rows_b = read_csv(a / "liveness_predictions.csv"), read_csv(b / "liveness_predictions.csv")
    assert rows_a and [r["path"] for r in rows_a] == [r["path"] for r in rows_b]
    assert [r["score_live"] for r in rows_a] == [r["score_live"] for r in rows_b]
    assert ma["test"]["threshold"] == mb["test"]["threshold"]
    assert read_sidecar(a / "liveness.keras")["threshold"] == read_sidecar(b / "liveness.keras")["threshold"]


@pytest.mark.slow
def test_tiny_run_artifacts_exist_and_reload(twin_runs):
    out, metrics, _ = twin_runs[0]
    for name in ("liveness.keras", "le.pickle", "plot.png", "liveness.json", "liveness_metrics.json",
                 "liveness_predictions.csv", "liveness_roc.png", "liveness_confusion.png"):
        assert (out / name).is_file(), name
    assert not list(out.glob(".*")), "no temporary or checkpoint files are left behind"
    le = load_label_encoder(out / "le.pickle")
    assert list(le.classes_) == ["fake", "real"]
    sidecar = json.loads((out / "liveness.json").read_text())
    assert sidecar["labels"] == ["fake", "real"] and sidecar["live_label"] == "real"
    assert sidecar["input_size"] == 32 and sidecar["group_pattern"] == GROUP_PATTERN
    assert sidecar["split"].startswith("by group")
    # the default scores with colour LBP alone; its model is saved beside the CNN
    assert sidecar["lbp"] == {"file": "liveness_lbp.npz", "weight": 1.0}
    assert (out / "liveness_lbp.npz").is_file()
    load_keras_model(out / "liveness.keras")
    # the reloaded artifacts give the scores written to the predictions file
    rows = read_csv(out / "liveness_predictions.csv")
    assert len(rows) == metrics["test"]["n_live"] + metrics["test"]["n_attack"]
    classifier = LivenessClassifier(out / "liveness.keras", out / "le.pickle")
    assert classifier.backend == "lbp only" and classifier.model is None  # Keras is not loaded to score
    scores = classifier.scores([cv2.imread(r["path"]) for r in rows])
    assert np.allclose(scores, [float(r["score_live"]) for r in rows], atol=2e-6)
    for r, s in zip(rows, scores):
        assert r["decision"] == ("real" if s >= sidecar["threshold"] else "fake")


@pytest.mark.slow
def test_tiny_run_keeps_groups_apart_skips_corrupt_and_ignores_non_images(twin_runs, tiny_dataset):
    out, metrics, log = twin_runs[0]
    sidecar = json.loads((out / "liveness.json").read_text())
    # 80 good + 2 corrupt image files were found; notes.txt, Thumbs.db and manifest.csv were not
    assert sum(sidecar["counts"].values()) == 82
    skipped = sum(int(m) for line in log for m in re.findall(r"skipped (\d+) unreadable", line))
    assert skipped == 2
    rows = read_csv(out / "liveness_predictions.csv")
    assert all(Path(r["path"]).stat().st_size > 100 for r in rows)
    test_groups = {r["group"] for r in rows}
    assert test_groups and test_groups <= {f"subj{k}" for k in range(4)}
    # the test groups are held out whole: every crop of theirs is in the predictions
    all_test = [p for p in tiny_dataset.rglob("*.png") if re.search(GROUP_PATTERN, p.name)[0] in test_groups]
    readable = [p for p in all_test if p.stat().st_size > 100]
    assert sorted(r["path"] for r in rows) == sorted(str(p) for p in readable)
    assert metrics["split"] == sidecar["split"]


@pytest.mark.slow
@pytest.mark.parametrize("lbp_weight", [1.0, 0.0])  # the default (LBP, no CNN trained) and the CNN alone
def test_loso_writes_a_table_per_group_and_no_model(tmp_path, lbp_weight):
    data = write_dataset(tmp_path / "dataset", subjects=3, frames=6, seed=1)
    out = tmp_path / "out"
    paths = outputs(out)
    payload = train.run(dataset=[data], **paths, epochs=1, batch_size=16, seed=1, group_pattern=GROUP_PATTERN, loso=True, lbp_weight=lbp_weight)
    assert all((f["epochs"] > 0) == (lbp_weight < 1) for f in payload["folds"])
    rows = read_csv(out / "liveness_loso.csv")
    assert [r["group"] for r in rows] == ["subj0", "subj1", "subj2"]
    for r in rows:
        assert (int(r["n_live"]), int(r["n_attack"])) == (6, 6)
        assert 0.0 <= float(r["acer"]) <= 1.0
    saved = json.loads((out / "liveness_loso.json").read_text())
    assert [f["group"] for f in saved["folds"]] == ["subj0", "subj1", "subj2"]
    for key in ("apcer", "bpcer", "acer", "auc", "eer"):
        assert set(saved["summary"][key]) == {"mean", "std"}
        vals = [f[key] for f in saved["folds"] if not math.isnan(f[key])]
        if vals:
            assert saved["summary"][key]["mean"] == pytest.approx(sum(vals) / len(vals))
    assert payload["summary"] == saved["summary"] or math.isnan(saved["summary"]["auc"]["mean"])
    assert not list(out.rglob("*.keras")), "--loso saves no model"
    assert not paths["le"].exists() and not paths["plot"].exists()


@pytest.mark.shared_data
@pytest.mark.slow
def test_shared_crops_run_writes_complete_metrics(trained_model):
    model_path, le_path = trained_model
    out = model_path.parent
    model = load_keras_model(model_path)
    assert tuple(model.output_shape) == (None, 2)
    le = load_label_encoder(le_path)
    assert list(le.classes_) == ["fake", "real"]

    sidecar = json.loads(model_path.with_suffix(".json").read_text())
    assert sidecar["labels"] == ["fake", "real"] and sidecar["live_label"] == "real"
    assert sidecar["input_size"] == 32
    assert 0.0 <= sidecar["threshold"] <= 1.0
    assert sidecar["split"].startswith("by group")
    for key in ("apcer", "bpcer", "acer", "auc", "eer", "confusion"):
        assert key in sidecar["test"]

    metrics = json.loads((out / "liveness_metrics.json").read_text())
    test = metrics["test"]
    for key in ("apcer", "bpcer", "acer", "auc", "eer"):
        assert isinstance(test[key], float) and 0.0 <= test[key] <= 1.0, key
    assert test["acer"] == pytest.approx((test["apcer"] + test["bpcer"]) / 2)
    assert test["threshold"] == pytest.approx(sidecar["threshold"])
    (tn, fp), (fn, tp) = test["confusion"]
    assert tn + fp == test["n_attack"] and fn + tp == test["n_live"]
    assert test["n_attack"] > 0 and test["n_live"] > 0
    assert "precision" in metrics["classification_report"] and "real" in metrics["classification_report"]
    assert metrics["per_source"] and all({"source", "live", "frames", "mean_score", "correct"} <= set(r) for r in metrics["per_source"])
    assert sum(r["frames"] for r in metrics["per_source"]) == test["n_live"] + test["n_attack"]

    rows = read_csv(out / "liveness_predictions.csv")
    assert len(rows) == test["n_live"] + test["n_attack"] == sidecar["counts"]["test"]
    assert {"path", "group", "label", "score_live"} <= set(rows[0])
    for r in rows:
        assert Path(r["path"]).is_file()
        assert re.fullmatch(r"subject\d+", r["group"])
        assert r["label"] in ("real", "fake") and Path(r["path"]).parent.name == r["label"]
        assert 0.0 <= float(r["score_live"]) <= 1.0
    assert sum(r["label"] == "real" for r in rows) == test["n_live"]

    for png in (out / "plot.png", out / "liveness_roc.png", out / "liveness_confusion.png"):
        assert is_png(png), png
    assert not list(out.glob(".*checkpoint*")), "the checkpoint is removed after a good run"


# --- bad inputs ----------------------------------------------------------------------------


def _plain(root: Path, **counts) -> Path:
    for label, n in counts.items():
        (root / label).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            cv2.imwrite(str(root / label / f"{i}.png"), np.full((8, 8, 3), 100 + i, np.uint8))
    return root


def _empty(tmp):
    (tmp / "data").mkdir()
    return {"dataset": [tmp / "data"]}


def _non_images_only(tmp):
    for label in ("real", "fake"):
        (tmp / "data" / label).mkdir(parents=True)
        (tmp / "data" / label / "notes.txt").write_text("x")
    return {"dataset": [tmp / "data"]}


def _single_class(tmp):
    return {"dataset": [_plain(tmp / "data", real=6)]}


def _too_few(tmp):
    return {"dataset": [_plain(tmp / "data", real=6, fake=2)]}


def _too_few_sources(tmp):
    # 3 real images from 3 different one-frame sources, 10 fake frames of one video: no
    # group split exists and a time split cannot put a real image in the test split.
    root = _plain(tmp / "data", fake=10)
    for k in range(3):
        (root / "real").mkdir(exist_ok=True)
        cv2.imwrite(str(root / "real" / crop_name(f"s{k}_real_{k:08x}", 0)), np.zeros((8, 8, 3), np.uint8))
    return {"dataset": [root]}


def _all_corrupt(tmp):
    for label in ("real", "fake"):
        (tmp / "data" / label).mkdir(parents=True)
        for i in range(4):
            (tmp / "data" / label / f"{i}.png").write_bytes(b"garbage" * i)
    return {"dataset": [tmp / "data"]}


def _one_class_corrupt(tmp):
    root = _plain(tmp / "data", real=10)
    (root / "fake").mkdir()
    for i in range(10):
        (root / "fake" / f"{i}.png").write_bytes(b"not a png")
    return {"dataset": [root]}


def _model_under_a_file(tmp):
    (tmp / "afile").write_text("I am a file")
    return {"dataset": [_plain(tmp / "data", real=6, fake=6)], "model": tmp / "afile" / "liveness.keras"}


def _model_is_a_folder(tmp):
    (tmp / "out" / "liveness.keras").mkdir(parents=True)
    return {"dataset": [_plain(tmp / "data", real=6, fake=6)], "model": tmp / "out" / "liveness.keras"}


def _model_suffix(tmp):
    return {"dataset": [_plain(tmp / "data", real=6, fake=6)], "model": tmp / "out" / "liveness.model"}


def _bad_regex(tmp):
    return {"dataset": [_plain(tmp / "data", real=6, fake=6)], "group_pattern": "subject(\\d+"}


def _missing_dataset(tmp):
    return {"dataset": [tmp / "nowhere"]}


def _loso_without_groups(tmp):
    return {"dataset": [_plain(tmp / "data", real=6, fake=6)], "loso": True}


def _zero_epochs(tmp):
    return {"dataset": [_plain(tmp / "data", real=6, fake=6)], "epochs": 0}


BAD_RUNS = {
    "empty-dataset": (_empty, "holds no images"),
    "non-image-files-only": (_non_images_only, "holds no images"),
    "single-class": (_single_class, "one class only"),
    "class-too-small": (_too_few, r"too few images to split in class fake \(2\)"),
    "class-too-few-sources": (_too_few_sources, r"too few images or sources to split.*no real images"),
    "all-images-corrupt": (_all_corrupt, "no readable images"),
    "one-class-all-corrupt": (_one_class_corrupt, "no readable fake images"),
    "model-under-a-file": (_model_under_a_file, "is a file, not a folder"),
    "model-is-a-folder": (_model_is_a_folder, "is a folder, not a file"),
    "model-suffix": (_model_suffix, r"Keras 3 saves models only as \.keras.*liveness\.keras"),
    "bad-group-pattern": (_bad_regex, r"--group-pattern .* is not a valid regular expression"),
    "missing-dataset": (_missing_dataset, "does not exist"),
    "loso-without-groups": (_loso_without_groups, "--loso needs groups"),
    "zero-epochs": (_zero_epochs, "--epochs must be 1 or more"),
}


@pytest.mark.parametrize("case", list(BAD_RUNS))
def test_run_refuses_bad_input(case, tmp_path):
    make, message = BAD_RUNS[case]
    kwargs = {**outputs(tmp_path / "out"), "epochs": 1, **make(tmp_path)}
    with pytest.raises(UserError, match=message) as err:
        train.run(**kwargs)
    assert "\n" not in str(err.value)  # one line
    model = Path(kwargs["model"])
    assert not (model.is_file() or model.with_suffix(".json").exists())  # nothing written


def _cli(case: str, tmp: Path) -> list[str]:
    kwargs = {**outputs(tmp / "out"), **BAD_RUNS[case][0](tmp)}
    args = [a for d in kwargs.pop("dataset") for a in ("--dataset", str(d))]
    args += ["--model", str(kwargs.pop("model")), "--le", str(kwargs.pop("le")), "--plot", str(kwargs.pop("plot"))]
    if "group_pattern" in kwargs:
        args += ["--group-pattern", kwargs.pop("group_pattern")]
    assert not kwargs
    return args + ["--epochs", "1"]


@pytest.mark.parametrize("case", ["empty-dataset", "model-suffix", "bad-group-pattern", "model-under-a-file"])
def test_script_exits_2_with_one_error_line(case, tmp_path):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *_cli(case, tmp_path)],
        cwd=ROOT, capture_output=True, text=True, env=env, timeout=300,
    )
    assert proc.returncode == EXIT_USAGE, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("[ERROR]"), proc.stderr
    assert re.search(BAD_RUNS[case][1], lines[-1]), lines[-1]
    assert "Traceback" not in proc.stderr + proc.stdout
    assert not (tmp_path / "out" / "liveness.keras").exists()
