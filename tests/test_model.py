"""liveness.model: one folder per model, validated whole on loading, written atomically.

The models here are fitted on synthetic crops (LBP) or untrained (the CNN): these tests
are about files, validation and plumbing, not accuracy.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

from liveness.errors import ModelError, OutputError
from liveness.lbp import LBPClassifier
from liveness.model import (
    LBP_FILE,
    LE_FILE,
    MANIFEST,
    check_model_target,
    load_label_encoder,
    load_model,
    manifest_checksum,
    write_model,
)

LABELS = ["fake", "real"]


def _faces(n: int, seed: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Smooth 'live' patches and noisy 'attack' ones, with labels (1 = live)."""
    rng = np.random.default_rng(seed)
    faces, labels = [], []
    for i in range(n):
        base = np.clip(rng.normal(128, 20, (48, 48, 3)), 0, 255).astype(np.uint8)
        if i % 2:
            base = np.clip(base.astype(int) + rng.integers(-60, 60, base.shape), 0, 255).astype(np.uint8)
        faces.append(base)
        labels.append(1 - i % 2)
    return faces, np.array(labels)


def base_manifest(scorer: str = "lbp", **extra) -> dict:
    return {
        "scorer": scorer, "labels": LABELS, "live_label": "real", "threshold": 0.4, "threshold_source": "test",
        "padding": 0.1, "lbp_weight": {"lbp": 1.0, "cnn": 0.0, "fusion": 0.5}[scorer],
        "input_size": None if scorer == "lbp" else 32, **extra,
    }


@pytest.fixture(scope="module")
def lbp():
    faces, labels = _faces(24, seed=1)
    return LBPClassifier(size=48, seed=0).fit(faces, labels)


@pytest.fixture(scope="module")
def lbp_folder(lbp, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("models") / "liveness"
    write_model(folder, base_manifest(), lbp=lbp)
    return folder


@pytest.fixture
def copy(lbp_folder, tmp_path) -> Path:
    """A fresh copy of the LBP model folder, to edit."""
    target = tmp_path / "copied" / "model"
    shutil.copytree(lbp_folder, target)
    return target


def edit_manifest(folder: Path, rechecksum: bool = True, **changes) -> None:
    m = json.loads((folder / MANIFEST).read_text())
    m.update(changes)
    if rechecksum:
        m["checksum"] = manifest_checksum(m)
    (folder / MANIFEST).write_text(json.dumps(m))


# --- round trip ------------------------------------------------------------------------


def test_model_folder_reloads_and_scores_as_fitted(lbp, lbp_folder):
    model = load_model(lbp_folder)
    faces, _ = _faces(6, seed=5)
    assert (model.scorer, model.labels, model.live_label, model.attack_label) == ("lbp", LABELS, "real", "fake")
    assert model.threshold == pytest.approx(0.4) and model.padding == pytest.approx(0.1) and model.cnn is None
    np.testing.assert_allclose(model.score(faces), lbp.score_live(faces), rtol=1e-12)
    assert model.decide([0.39, 0.4, 0.9]) == ["fake", "real", "real"]
    assert model.score([]).shape == (0,)
    assert sorted(p.name for p in lbp_folder.iterdir()) == sorted([LBP_FILE, MANIFEST, LE_FILE])
    m = json.loads((lbp_folder / MANIFEST).read_text())
    assert set(m["files"]) == {LBP_FILE, LE_FILE} and "numpy" in m["versions"]


def test_a_copied_folder_still_works_and_the_threshold_can_be_overridden(copy, lbp_folder):
    assert load_model(copy).threshold == load_model(lbp_folder).threshold
    assert load_model(copy, threshold=0.9).threshold == 0.9
    with pytest.raises(ValueError):
        load_model(copy, threshold=1.5)


def test_label_encoder_in_the_folder_is_the_tutorials(lbp_folder):
    assert load_label_encoder(lbp_folder / LE_FILE) == LABELS


def test_rewriting_replaces_the_whole_folder(lbp, tmp_path):
    folder = tmp_path / "m"
    write_model(folder, base_manifest(), lbp=lbp, reports=lambda f: (f / "metrics.json").write_text("{}"))
    write_model(folder, base_manifest(threshold=0.7), lbp=lbp)  # no reports this time
    assert load_model(folder).threshold == 0.7
    assert not (folder / "metrics.json").exists()  # old reports never sit beside a new model
    assert [p.name for p in tmp_path.iterdir()] == ["m"]  # no temporary or backup folder left


def test_a_failed_write_keeps_the_previous_model(lbp, lbp_folder, tmp_path):
    folder = tmp_path / "m"
    write_model(folder, base_manifest(), lbp=lbp)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}

    def broken_reports(_):
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        write_model(folder, base_manifest(threshold=0.9), lbp=lbp, reports=broken_reports)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["m"]


def test_model_target_is_checked_before_training(tmp_path):
    (tmp_path / "file").write_text("x")
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "cat.jpg").write_text("x")
    for path, words in (
        (tmp_path / "liveness.keras", "folder"),
        (tmp_path / "file", "is a file"),
        (tmp_path / "photos", "other files"),
    ):
        with pytest.raises(OutputError, match=words):
            check_model_target(path)
    assert check_model_target(tmp_path / "new" / "liveness") == tmp_path / "new" / "liveness"


# --- refusals: one clear line each --------------------------------------------------------


def test_missing_and_previous_release_models_say_how_to_retrain(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        load_model(tmp_path / "nothing")
    old = tmp_path / "output"
    old.mkdir()
    (old / "liveness.keras").write_bytes(b"PK")
    (old / "liveness.json").write_text("{}")
    with pytest.raises(ModelError, match="previous release.*retrain"):
        load_model(old / "liveness.keras")
    with pytest.raises(ModelError, match="previous release.*retrain"):
        load_model(old)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="no manifest.json"):
        load_model(tmp_path / "empty")


def test_an_edited_manifest_is_refused(copy):
    edit_manifest(copy, rechecksum=False, threshold=0.01)
    with pytest.raises(ModelError, match="edited"):
        load_model(copy)


def test_an_edited_or_missing_file_is_refused(copy):
    data = bytearray((copy / LBP_FILE).read_bytes())
    data[-20] ^= 0xFF
    (copy / LBP_FILE).write_bytes(bytes(data))
    with pytest.raises(ModelError, match="changed after training"):
        load_model(copy)
    (copy / LBP_FILE).unlink()
    with pytest.raises(ModelError, match="lbp.npz is missing"):
        load_model(copy)


@pytest.mark.parametrize(
    "raw, words",
    [
        (b"[1, 2]", "JSON object"),
        (b"\xff\xfe{}", "UTF-8"),
        (b"[" * 100_000 + b"]" * 100_000, "not valid JSON"),
        (b'{"threshold": ' + b"9" * 5001 + b"}", "not valid JSON"),
        (b'{"threshold": NaN}', "not valid JSON"),
        (b"{", "not valid JSON"),
    ],
)
def test_manifests_that_are_not_a_json_object_are_refused(copy, raw, words):
    (copy / MANIFEST).write_bytes(raw)
    with pytest.raises(ModelError, match=words) as e:
        load_model(copy)
    assert "\n" not in str(e.value)


def test_a_manifest_that_is_a_folder_is_refused(copy):
    (copy / MANIFEST).unlink()
    (copy / MANIFEST).mkdir()
    with pytest.raises(ModelError, match="folder"):
        load_model(copy)


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"threshold": None}, "threshold"),
        ({"threshold": True}, "threshold"),
        ({"threshold": "0.5"}, "threshold"),
        ({"threshold": 1.5}, "threshold"),
        ({"padding": 1e6}, "padding"),
        ({"padding": -1}, "padding"),
        ({"lbp_weight": 0.5}, "lbp_weight"),
        ({"lbp_weight": "x"}, "lbp_weight"),
        ({"labels": 5}, "labels"),
        ({"labels": ["real", "real"]}, "labels"),
        ({"labels": ["fake", "real", "other"]}, "labels"),
        ({"live_label": "alive"}, "live_label"),
        ({"scorer": "magic"}, "scorer"),
        ({"scorer": "cnn", "lbp_weight": 0.0, "input_size": "abc"}, "input_size"),
        ({"format": "liveness-model/99"}, "format"),
        ({"files": "x"}, "files"),
        ({"files": {LE_FILE: "0" * 64}}, "files"),
        ({"files": {LBP_FILE: "0" * 64, LE_FILE: "0" * 64, "../../etc/passwd": "0"}}, "files"),
    ],
)
def test_every_manifest_field_is_validated(copy, changes, field):
    edit_manifest(copy, **changes)
    with pytest.raises(ModelError, match=field) as e:
        load_model(copy)
    assert str(copy) in str(e.value) and "\n" not in str(e.value)


def test_an_lbp_file_asking_for_huge_features_is_refused(copy, lbp, tmp_path):
    """A model file must not be able to make every face cost seconds and gigabytes."""
    with np.load(copy / LBP_FILE) as data:
        arrays = dict(data)
    params = json.loads(str(arrays["params"]))
    params["size"] = 4000
    arrays["params"] = np.array(json.dumps(params))
    with open(copy / LBP_FILE, "wb") as f:
        np.savez(f, **arrays)
    m = json.loads((copy / MANIFEST).read_text())
    from liveness.fileio import file_digest

    edit_manifest(copy, files={**m["files"], LBP_FILE: file_digest(copy / LBP_FILE)})
    with pytest.raises(ModelError, match="size must be <="):
        load_model(copy)


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch /tmp/liveness-pwned",))


def test_label_encoder_pickles_never_run_code(tmp_path):
    path = tmp_path / "le.pickle"
    path.write_bytes(pickle.dumps(_Evil()))
    with pytest.raises(ModelError, match="refusing"):
        load_label_encoder(path)
    assert not Path("/tmp/liveness-pwned").exists()
    from sklearn.preprocessing import LabelEncoder

    le = LabelEncoder()
    le.classes_ = np.array(["real", "real"])
    path.write_bytes(pickle.dumps(le))
    with pytest.raises(ModelError, match="two different classes"):
        load_label_encoder(path)


# --- a CNN scorer ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cnn_folder(lbp, tmp_path_factory):
    import keras

    from liveness.nets import LivenessNet

    keras.utils.set_random_seed(3)
    net = LivenessNet.build(32, 32, 3, 2)
    rng = np.random.default_rng(3)
    for layer in net.layers:  # spread the outputs: random BatchNorm statistics instead of the identity
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.moving_mean.assign(rng.normal(0, 0.2, layer.moving_mean.shape).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, layer.moving_variance.shape).astype("float32"))
    folder = tmp_path_factory.mktemp("cnn") / "fusion"
    write_model(folder, base_manifest("fusion", arch="livenessnet"), lbp=lbp, cnn=net)
    return folder, net


@pytest.mark.slow
def test_fusion_model_scores_the_mean_of_both_and_backends_agree(cnn_folder, lbp, face_image):
    from liveness.runtime import prepare_faces

    folder, net = cnn_folder
    faces = [face_image[60:260, 150:330], face_image[:100, :100], face_image]
    keras_live = net(prepare_faces(faces, 32).astype(np.float32), training=False).numpy()[:, 1]
    expected = 0.5 * keras_live + 0.5 * lbp.score_live(faces)
    for backend in ("opencv", "tf"):
        model = load_model(folder, backend=backend)
        np.testing.assert_allclose(model.score(faces), expected, atol=1e-4)
        assert model._runner.backend == backend
