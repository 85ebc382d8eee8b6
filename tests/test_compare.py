"""compare.py, the architectures it compares, and focal loss."""

from __future__ import annotations

import csv
import json
import logging
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

import compare
from liveness.cli import UserError
from liveness.training import TrainConfig, fit_cnn, predict_live


def _make_subjects(root, subjects=3, per_class=8, size=40):
    """Tiny crops: 'real' = warm noisy texture, 'fake' = bluish with a moire stripe pattern."""
    rng = np.random.default_rng(0)
    xx = np.arange(size)[None, :].repeat(size, 0)
    for k in range(subjects):
        for label in ("real", "fake"):
            folder = root / f"subject{k:02d}" / label
            folder.mkdir(parents=True)
            for i in range(per_class):
                img = rng.integers(60, 200, (size, size, 3)).astype(np.float32)
                if label == "fake":
                    img = 0.6 * img + 40 * np.sin(xx * 1.3)[..., None] + np.array([40, 0, -20])
                cv2.imwrite(str(folder / f"{i}.png"), np.clip(img, 0, 255).astype(np.uint8))
    return root


def test_focal_loss_matches_hand_computed_value():
    import keras

    # p_t = 0.8 for the true class: FL = -alpha (1 - p_t)^gamma log(p_t), alpha 0.25, gamma 2
    loss = keras.losses.CategoricalFocalCrossentropy(alpha=0.25, gamma=2.0)
    got = float(loss(np.array([[0.0, 1.0]]), np.array([[0.2, 0.8]])))
    expected = -0.25 * (1 - 0.8) ** 2 * math.log(0.8)
    assert got == pytest.approx(expected, rel=1e-4)


def _round_trips(model, tmp_path: Path, probe: np.ndarray) -> None:
    """Saved as .keras and loaded back (safe mode), the model scores `probe` as before."""
    import keras

    model.save(tmp_path / "m.keras")
    again = keras.models.load_model(tmp_path / "m.keras", compile=False, safe_mode=True)
    probe = probe.astype(np.float32)
    np.testing.assert_allclose(again(probe, training=False).numpy(), model(probe, training=False).numpy(), atol=1e-5)


# MobileNetV2 is built (and Grad-CAM'd) in tests/test_explain.py; one MobileNet trains below
# (tracing a MobileNet's train step makes its first fit slow: one fit only).
def test_livenessnet_trains_one_epoch_with_focal_loss_and_round_trips(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (16, 32, 32, 3)).astype(np.uint8)
    y = np.array([0, 1] * 8)
    cfg = TrainConfig(scorer="cnn", arch="livenessnet", input_size=32, epochs=1, batch_size=8, loss="focal")
    model, history, best = fit_cnn(cfg, x, y, x[:4], y[:4], verbose=0)
    assert len(history["loss"]) == 1 and np.isfinite(history["loss"][0]) and best == 1
    _round_trips(model, tmp_path, x[:3])


def test_a_mobilenet_trained_from_scratch_separates_faces_in_inference_mode(tmp_path):
    """keras.applications' BatchNorm momentum (0.999) kept the moving statistics near their
    initial values through a short training, so inference gave every face the same score.
    Now the momentum is lower (nets.BACKBONE_BN_MOMENTUM) and fit_cnn re-estimates the
    statistics under the final weights (training.refresh_batchnorm). Two classes a
    brightness apart, 18 steps: at inference the scores must separate them; the model
    (and its refreshed statistics) survives a save and load."""
    rng = np.random.default_rng(3)
    y = np.array([0, 1] * 24)
    x = np.clip(rng.normal(85 + 85 * y[:, None, None, None], 30, (48, 32, 32, 3)), 0, 255).astype(np.uint8)
    cfg = TrainConfig(scorer="cnn", arch="mobilenetv3small", input_size=32, epochs=3, batch_size=8, augment=False)
    model, history, best = fit_cnn(cfg, x, y, verbose=0)
    assert len(history["loss"]) == 3 and np.all(np.isfinite(history["loss"])) and 1 <= best <= 3
    scores = predict_live(model, x)
    assert scores.std() > 0.05, scores
    assert roc_auc_score(y, scores) >= 0.9
    _round_trips(model, tmp_path, x[::8])


def test_several_train_steps_per_call_give_the_weights_of_one(monkeypatch):
    """fit_cnn runs Keras steps in groups (distribute.steps_per_execution): same batches,
    same order, same updates, so the same weights as one step per call, with augmentation
    and a last group shorter than the others (11 batches of 8 in groups of 4, two epochs)."""
    import liveness.distribute as distribute

    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, (84, 32, 32, 3)).astype(np.uint8)
    y = (np.arange(84) % 3 == 0).astype(np.int64)
    cfg = TrainConfig(scorer="cnn", epochs=2, batch_size=8)
    weights = {}
    for n in (1, 4):
        monkeypatch.setattr(distribute, "STEPS_PER_EXECUTION", n)
        assert distribute.steps_per_execution() == n
        model, history, _ = fit_cnn(cfg, x, y, verbose=0)
        weights[n] = (model.get_weights(), history["loss"])
    np.testing.assert_allclose(weights[4][1], weights[1][1], rtol=1e-5)
    for a, b in zip(weights[4][0], weights[1][0], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_compare_runs_end_to_end_on_a_tiny_fold_set(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="liveness")
    data = _make_subjects(tmp_path / "crops")
    out = tmp_path / "cmp"
    rows = compare.run(
        dataset=[data], configs=["tutorial", "lbp", "lbp-classic"],
        output=out, epochs=1, max_folds=2, timing_repeats=5, workers=2,
    )
    # Every config's folds ran in two worker processes, the CNN's too (no GPU here).
    assert caplog.text.count("2 folds on 2 worker processes") == 3
    assert [r["config"] for r in rows] == ["tutorial", "lbp", "lbp-classic", "nested", "nested (calibrated)"]
    for r in rows:
        assert r["folds"] == 2
        assert 0.0 <= r["acer_mean"] <= 1.0
        assert r["ms_per_face"] > 0 or r["config"].startswith("nested")  # a choice, not a model to time
    by_name = {r["config"]: r for r in rows}
    # The LBP model separates these textures on unseen subjects.
    assert by_name["lbp"]["auc_mean"] > 0.9
    table = (tmp_path / "cmp.md").read_text()
    assert table.count("\n") == 2 + len(rows) and "| lbp |" in table
    with open(tmp_path / "cmp.csv", newline="") as fh:
        assert len(list(csv.DictReader(fh))) == len(rows)
    payload = json.loads((tmp_path / "cmp.json").read_text())
    assert set(payload["folds"]) >= {"tutorial", "lbp", "nested"}
    # nested: per held-out subject, the candidate best on the training subjects alone (plain,
    # or after calibrating each training subject with the others' offset)
    for name, criterion in (("nested", "inner_acer"), ("nested (calibrated)", "inner_cal_acer")):
        for i, fold in enumerate(payload["folds"][name]):
            inner = {n: payload["folds"][n][i][criterion] for n in ("tutorial", "lbp", "lbp-classic")}
            assert any(v is not None for v in inner.values()), inner
            assert inner[fold["picked"]] == min(v for v in inner.values() if v is not None)
            np.testing.assert_equal(fold["cal_acer"], payload["folds"][fold["picked"]][i]["cal_acer"])
    assert all(f["threshold"] == 0.5 for f in payload["folds"]["tutorial"])  # the tutorial keeps 0.5
    assert (tmp_path / "cmp.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_compare_refuses_unknown_config(tmp_path):
    with pytest.raises(UserError, match="unknown --configs"):
        compare.run(dataset=[tmp_path], configs=["resnet"], output=tmp_path / "x")


def test_a_stopped_comparison_resumes_from_its_finished_folds(tmp_path, monkeypatch, caplog):
    import liveness.crossval as crossval

    data = _make_subjects(tmp_path / "crops")
    out = tmp_path / "cmp"
    first = compare.run(dataset=[data], configs=["lbp", "lbp-classic"], output=out, max_folds=2, timing_repeats=2)
    stored = sorted(p.relative_to(tmp_path / "cmp_folds").as_posix() for p in (tmp_path / "cmp_folds").rglob("*.json"))
    assert len(stored) == 4 and {p.split("/")[0].rsplit("-", 1)[0] for p in stored} == {"lbp", "lbp-classic"}

    # One fold of lbp-classic lost (as if the run stopped there), another unreadable:
    # --resume trains those two only and gives the same table.
    folds = {d.name.rsplit("-", 1)[0]: sorted(d.glob("*.json")) for d in (tmp_path / "cmp_folds").iterdir()}
    classic, lbp = folds["lbp-classic"], folds["lbp"]
    classic[0].unlink()
    lbp[1].write_text("{ truncated")
    trained = []
    real_fold = crossval._fold
    monkeypatch.setattr(crossval, "_fold", lambda cfg, data, group, verbose: trained.append(group) or real_fold(cfg, data, group, verbose))
    again = compare.run(dataset=[data], configs=["lbp", "lbp-classic"], output=out, max_folds=2, timing_repeats=2,
                        resume=True, workers=1)
    assert sorted(trained) == sorted([classic[0].stem.rsplit("-", 1)[0], lbp[1].stem.rsplit("-", 1)[0]])
    assert "unreadable" in caplog.text
    for a, b in zip(first, again, strict=True):
        for k, v in a.items():
            if k != "ms_per_face":
                assert v == pytest.approx(b[k], nan_ok=True) if isinstance(v, float) else v == b[k], k

    # Every fold stored: nothing trains, the time per face comes from a stand-in.
    trained.clear()
    compare.run(dataset=[data], configs=["lbp"], output=out, max_folds=2, timing_repeats=2, resume=True, workers=1)
    assert trained == []
    # Without --resume, or with another seed, nothing is read back.
    compare.run(dataset=[data], configs=["lbp"], output=out, max_folds=2, timing_repeats=2, workers=1)
    compare.run(dataset=[data], configs=["lbp"], output=out, max_folds=2, timing_repeats=2, workers=1, seed=7, resume=True)
    assert len(trained) == 4


def test_stored_folds_follow_the_crops_content_not_their_path_or_date(tmp_path):
    import os
    import shutil

    from liveness.crossval import samples_digest
    from liveness.dataset import Sample

    def key(folder):
        return samples_digest([Sample(folder / f"{i}.png", "real" if i % 2 else "fake", f"v{i % 2}", "subject01", i)
                               for i in range(4)])

    a = tmp_path / "a"
    a.mkdir()
    for i in range(4):
        (a / f"{i}.png").write_bytes(bytes([i]) * 64)
    # A copy elsewhere with new dates (a dataset restored from a backup) keeps its folds...
    b = tmp_path / "b"
    shutil.copytree(a, b, copy_function=shutil.copy)
    os.utime(b / "0.png", (1, 1))
    assert key(b) == key(a)
    # ...one changed crop does not.
    (b / "3.png").write_bytes(b"other")
    assert key(b) != key(a)


def test_long_runs_say_how_long_is_left():
    import time

    from liveness.crossval import eta

    now = time.perf_counter()
    assert eta(0, 17, now) == "0 min so far"
    assert eta(2, 6, now - 120) == "2 min so far, about 4 min left"  # 1 min a fold, 4 folds to go


def test_a_fold_that_cannot_be_kept_is_a_warning_not_a_failure(tmp_path, caplog):
    from liveness.crossval import FoldStore

    blocker = tmp_path / "folds"
    blocker.write_text("a file where the folder should be")
    store = FoldStore(blocker, "lbp", TrainConfig(), "", reuse=True)
    store.put({"group": "subject01", "acer": 0.1})
    assert "could not keep the fold on subject01" in caplog.text
    assert store.get("subject01") is None
