"""train.py and the networks it builds: layer sequence, tiny end-to-end runs, bad inputs.

Synthetic data: small PNGs in tmp_path, "real" noise-textured and "fake" flat bluish
crops, named the way gather_examples.py names them so that each subject's videos
form a group. Runs use 32x32 inputs and 1-2 epochs; the accuracy means nothing.
"""

from __future__ import annotations

import csv
import json
import logging
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
from liveness.cli import EXIT_USAGE
from liveness.crops import crop_name
from liveness.errors import LivenessError
from liveness.model import LE_FILE, MANIFEST, load_label_encoder, load_model

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


def outputs(folder: Path) -> dict:
    return {"model": folder / "liveness"}


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
    from liveness.nets import build_model

    model = build_model(arch, input_size=size, classes=2, weights=None)
    assert tuple(model.input_shape) == (None, size, size, 3)
    assert tuple(model.output_shape) == (None, 2)
    assert model.layers[1].name == "scale"  # pixel scaling is inside the model
    out = model(np.full((1, size, size, 3), 128.0, "float32"), training=False).numpy()
    assert np.allclose(out.sum(), 1.0, atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"arch": "resnet", "input_size": 32}, "architecture must be one of"),
        ({"arch": "mobilenetv2", "input_size": 16}, "input size of 32 or more"),
        ({"arch": "livenessnet", "input_size": 32, "weights": "imagenet"}, "MobileNet backbones only"),
        ({"arch": "mobilenetv2", "input_size": 32, "weights": "/no/such/weights.h5"}, "expected none, imagenet"),
    ],
)
def test_build_model_refuses(kwargs, message):
    from liveness.nets import build_model

    with pytest.raises(ValueError, match=message):
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


def _train(dataset, out, **kwargs):
    handler = _Records()
    logger = logging.getLogger("liveness")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        result = train.run(dataset=[dataset], **outputs(out), seed=SEED, group_pattern=GROUP_PATTERN, **kwargs)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    return result, handler.messages


@pytest.fixture(scope="module")
def twin_runs(tiny_dataset, tmp_path_factory):
    """The default scorer trained twice with one seed: [(model folder, manifest, log lines), ...]."""
    runs = []
    for name in ("a", "b"):
        out = tmp_path_factory.mktemp(f"run_{name}")
        manifest, log = _train(tiny_dataset, out)
        runs.append((out / "liveness", manifest, log))
    return runs


def test_training_twice_with_one_seed_agrees(twin_runs):
    (a, ma, _), (b, mb, _) = twin_runs
    rows_a, rows_b = read_csv(a / "predictions.csv"), read_csv(b / "predictions.csv")
    assert rows_a and [r["path"] for r in rows_a] == [r["path"] for r in rows_b]
    np.testing.assert_allclose([float(r["score_live"]) for r in rows_a], [float(r["score_live"]) for r in rows_b], atol=1e-9)
    assert ma["threshold"] == pytest.approx(mb["threshold"], abs=1e-9)


def test_the_default_trains_no_cnn_and_its_folder_reloads(twin_runs):
    folder, manifest, log = twin_runs[0]
    names = sorted(p.name for p in folder.iterdir())
    assert names == sorted(["confusion.png", "lbp.npz", LE_FILE, MANIFEST, "metrics.json", "predictions.csv", "roc.png"])
    assert not list(folder.parent.glob(".*")), "no temporary or backup folders are left behind"
    assert manifest["scorer"] == "lbp" and manifest["input_size"] is None and manifest["arch"] is None
    assert not any("CNN" in line or "epoch" in line.lower() for line in log)  # nothing trained a CNN
    assert load_label_encoder(folder / LE_FILE) == ["fake", "real"]
    model = load_model(folder)
    assert model.cnn is None and model.threshold == pytest.approx(manifest["threshold"])
    # the reloaded model gives the scores its evaluation wrote (the held-out fit's scores differ: another fit)
    rows = read_csv(folder / "predictions.csv")
    scores = model.score([cv2.imread(r["path"]) for r in rows])
    assert scores.shape == (len(rows),) and ((scores >= 0) & (scores <= 1)).all()


def test_the_saved_model_is_fitted_on_all_groups(twin_runs):
    folder, manifest, log = twin_runs[0]
    # 80 good + 2 corrupt image files were found; notes.txt, Thumbs.db and manifest.csv were not
    assert manifest["data"]["images"] == {"fake": 40, "real": 40}
    assert manifest["data"]["groups"] == 4 and manifest["data"]["fitted_on"] == "all 80 images of 4 groups"
    assert "out-of-fold" in manifest["threshold_source"]
    skipped = sum(int(m) for line in log for m in re.findall(r"skipped (\d+) unreadable", line))
    assert skipped == 2
    assert any("fitting the model to save on all 80 images" in line for line in log)


def test_the_report_holds_out_whole_groups(twin_runs, tiny_dataset):
    folder, manifest, _ = twin_runs[0]
    rows = read_csv(folder / "predictions.csv")
    test_groups = {r["group"] for r in rows}
    assert test_groups and test_groups <= {f"subj{k}" for k in range(4)} and len(test_groups) < 4
    # the test groups are held out whole: every readable crop of theirs is in the predictions
    all_test = [p for p in tiny_dataset.rglob("*.png") if re.search(GROUP_PATTERN, p.name)[0] in test_groups]
    readable = [p for p in all_test if cv2.imread(str(p)) is not None]
    assert sorted(r["path"] for r in rows) == sorted(str(p) for p in readable)
    metrics = json.loads((folder / "metrics.json").read_text())
    assert "held-out test groups" in metrics["protocol"]
    test = metrics["test"]
    assert test["acer"] == pytest.approx((test["apcer"] + test["bpcer"]) / 2)
    for png in ("roc.png", "confusion.png"):
        assert is_png(folder / png)


@pytest.mark.slow
def test_cnn_scorer_trains_saves_and_reloads(tiny_dataset, tmp_path):
    manifest, log = _train(tiny_dataset, tmp_path, scorer="cnn", epochs=2, batch_size=16, patience=5)
    folder = tmp_path / "liveness"
    assert manifest["scorer"] == "cnn" and manifest["input_size"] == 32 and manifest["arch"] == "livenessnet"
    assert (folder / "cnn.keras").is_file() and not (folder / "lbp.npz").exists() and is_png(folder / "history.png")
    model = load_model(folder)
    assert model.lbp is None and tuple(model.cnn.output_shape) == (None, 2)
    rows = read_csv(folder / "predictions.csv")
    assert rows and all(0 <= float(r["score_live"]) <= 1 for r in rows)


@pytest.mark.slow
@pytest.mark.parametrize("scorer", ["lbp"])  # the CNN runs the same procedure: test_cnn_scorer_trains_saves_and_reloads
def test_loso_writes_a_table_per_group_and_no_model(tmp_path, scorer):
    data = write_dataset(tmp_path / "dataset", subjects=3, frames=6, seed=1)
    out = tmp_path / "out"
    out.mkdir()
    payload = train.run(dataset=[data], **outputs(out), scorer=scorer, epochs=1, batch_size=16, seed=1,
                        group_pattern=GROUP_PATTERN, loso=True, folds=2)
    assert len(payload["folds"]) == 3
    rows = read_csv(out / "liveness_loso.csv")
    assert [r["group"] for r in rows] == ["subj0", "subj1", "subj2"]
    for r in rows:
        assert (int(r["n_live"]), int(r["n_attack"])) == (6, 6)
        assert 0.0 <= float(r["acer"]) <= 1.0
    saved = json.loads((out / "liveness_loso.json").read_text())
    assert [f["group"] for f in saved["folds"]] == ["subj0", "subj1", "subj2"]
    for key in ("apcer", "bpcer", "acer", "auc", "eer"):
        assert set(saved["summary"][key]) == {"mean", "std", "worst"}
        vals = [f[key] for f in saved["folds"] if f[key] is not None]
        if vals:
            assert saved["summary"][key]["mean"] == pytest.approx(sum(vals) / len(vals))
    assert not (out / "liveness").exists(), "--loso saves no model"


def test_symlinked_class_folders_train(tmp_path):
    """Datasets assembled from links to folders elsewhere: Path.rglob would not follow them."""
    elsewhere = write_dataset(tmp_path / "elsewhere", subjects=3, frames=6, seed=2)
    linked = tmp_path / "linked"
    linked.mkdir()
    for label in ("real", "fake"):
        (linked / label).symlink_to(elsewhere / label, target_is_directory=True)
    manifest, _ = _train(linked, tmp_path / "out")
    assert manifest["data"]["images"] == {"fake": 18, "real": 18}


@pytest.mark.shared_data
def test_shared_crops_model_is_complete(trained_model):
    manifest = json.loads((trained_model / MANIFEST).read_text())
    assert manifest["scorer"] == "fusion" and manifest["labels"] == ["fake", "real"] and manifest["live_label"] == "real"
    assert manifest["padding"] == pytest.approx(0.1) and manifest["lbp_weight"] == 0.5 and manifest["input_size"] == 32
    assert manifest["data"]["groups"] >= 8 and 0.0 <= manifest["threshold"] <= 1.0
    metrics = json.loads((trained_model / "metrics.json").read_text())
    test = metrics["test"]
    for key in ("apcer", "bpcer", "acer", "auc", "eer"):
        assert isinstance(test[key], float) and 0.0 <= test[key] <= 1.0, key
    (tn, fp), (fn, tp) = test["confusion"]
    assert tn + fp == test["n_attack"] > 0 and fn + tp == test["n_live"] > 0
    assert "precision" in metrics["classification_report"]
    assert sum(r["frames"] for r in metrics["per_source"]) == test["n_live"] + test["n_attack"]
    rows = read_csv(trained_model / "predictions.csv")
    assert len(rows) == test["n_live"] + test["n_attack"]
    for r in rows:
        assert Path(r["path"]).is_file() and re.fullmatch(r"subject\d+", r["group"])
        assert r["label"] in ("real", "fake") and Path(r["path"]).parent.name == r["label"]
    for png in ("history.png", "roc.png", "confusion.png"):
        assert is_png(trained_model / png), png


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
    return {"dataset": [_plain(tmp / "data", real=6, fake=6)], "model": tmp / "afile" / "liveness"}


def _model_is_a_file(tmp):
    (tmp / "out").mkdir()
    (tmp / "out" / "liveness").write_text("x")
    return {"dataset": [_plain(tmp / "data", real=6, fake=6)], "model": tmp / "out" / "liveness"}


def _model_suffix(tmp):
    return {"dataset": [_plain(tmp / "data", real=6, fake=6)], "model": tmp / "out" / "liveness.keras"}


def _bad_regex(tmp):
    return {"dataset": [_plain(tmp / "data", real=6, fake=6)], "group_pattern": "subject(\\d+"}


def _missing_dataset(tmp):
    return {"dataset": [tmp / "nowhere"]}


def _loso_without_groups(tmp):
    return {"dataset": [_plain(tmp / "data", real=6, fake=6)], "loso": True}


def _weights_for_livenessnet(tmp):
    return {"dataset": [_plain(tmp / "data", real=6, fake=6)], "scorer": "cnn", "weights": "imagenet"}


BAD_RUNS = {
    "empty-dataset": (_empty, "holds no images|no labelled images"),
    "non-image-files-only": (_non_images_only, "holds no images|no labelled images"),
    "single-class": (_single_class, "one class only"),
    "class-too-small": (_too_few, r"too few images to split in class fake \(2\)"),
    "class-too-few-sources": (_too_few_sources, r"too few images or sources to split.*no real images"),
    "all-images-corrupt": (_all_corrupt, "no readable images"),
    "one-class-all-corrupt": (_one_class_corrupt, "one class only"),
    "model-under-a-file": (_model_under_a_file, "not a writable folder"),
    "model-is-a-file": (_model_is_a_file, "is a file, not a model folder"),
    "model-suffix": (_model_suffix, r"a model is now a folder.*liveness"),
    "bad-group-pattern": (_bad_regex, r"group pattern .* is not a valid regular expression"),
    "missing-dataset": (_missing_dataset, "does not exist"),
    "loso-without-groups": (_loso_without_groups, "no group holds both classes"),
    "weights-for-livenessnet": (_weights_for_livenessnet, "MobileNet backbones only"),
}


@pytest.mark.parametrize("case", list(BAD_RUNS))
def test_run_refuses_bad_input(case, tmp_path):
    make, message = BAD_RUNS[case]
    kwargs = {**outputs(tmp_path / "out"), "epochs": 1, **make(tmp_path)}
    with pytest.raises(LivenessError, match=message) as err:
        train.run(**kwargs)
    assert "\n" not in str(err.value)  # one line
    model = Path(kwargs["model"])
    assert not (model / MANIFEST).exists()  # nothing written


def _cli(case: str, tmp: Path) -> list[str]:
    kwargs = {**outputs(tmp / "out"), **BAD_RUNS[case][0](tmp)}
    args = [a for d in kwargs.pop("dataset") for a in ("--dataset", str(d))]
    args += ["--model", str(kwargs.pop("model"))]
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
    assert not (tmp_path / "out" / "liveness" / MANIFEST).exists()


@pytest.mark.parametrize("flag, value", [("--padding", "nan"), ("--padding", "inf"), ("--padding", "1e308"),
                                         ("--input-size", "0"), ("--epochs", "0"), ("--lr", "-1"), ("--test-frac", "1"),
                                         ("--synthetic-attacks", "2"), ("--synthetic-attacks", "-0.1")])
def test_numeric_flags_are_range_checked(flag, value, capsys):
    with pytest.raises(SystemExit) as e:
        train.parse_opt(["--dataset", "d", flag, value])
    assert e.value.code == 2
    assert flag in capsys.readouterr().err


def test_synthetic_attacks_reach_the_saved_model(tiny_dataset, tmp_path):
    from liveness.lbp import SYNTHETIC_SETTINGS, LBPClassifier

    assert train.parse_opt(["--dataset", "d"]).synthetic_attacks == 0
    assert train.parse_opt(["--dataset", "d", "--synthetic-attacks"]).synthetic_attacks == SYNTHETIC_SETTINGS.synthetic
    manifest, log = _train(tiny_dataset, tmp_path, synthetic_attacks=0.25)
    assert manifest["config"]["lbp"]["synthetic"] == 0.25
    assert any("synthetic re-captures weighing 0.25" in line for line in log), log
    assert LBPClassifier.load(tmp_path / "liveness" / "lbp.npz").synthetic == 0.25
    with pytest.raises(LivenessError, match="synthetic must be a number in 0..1"):
        train.run(dataset=[tiny_dataset], **outputs(tmp_path / "bad"), synthetic_attacks=5)
    assert not (tmp_path / "bad").exists()
    with pytest.raises(LivenessError, match="colour-LBP scorer"):
        train.run(dataset=[tiny_dataset], **outputs(tmp_path / "bad"), scorer="cnn", synthetic_attacks=0.1)
