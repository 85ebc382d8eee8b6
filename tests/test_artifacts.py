"""liveness.artifacts: atomic saves, safe loading, and the classifier the demo uses.

The model here is an untrained LivenessNet (random weights): these tests are about
files and plumbing, not accuracy.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from sklearn.preprocessing import LabelEncoder

from liveness.artifacts import (
    LivenessClassifier,
    check_model_path,
    load_keras_model,
    load_label_encoder,
    read_sidecar,
    save_label_encoder,
    save_model,
    sidecar_path,
    write_sidecar,
)
from liveness.cli import UserError
from liveness.dataset import prepare_faces

SIDECAR_THRESHOLD = 0.3


@pytest.fixture(scope="module")
def keras_model():
    import keras

    from livenessnet import LivenessNet

    keras.utils.set_random_seed(3)
    model = LivenessNet.build(32, 32, 3, 2)
    # Spread the outputs: random BatchNorm statistics instead of the identity ones.
    rng = np.random.default_rng(3)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            mean, var = layer.moving_mean, layer.moving_variance
            mean.assign(rng.normal(0, 0.2, mean.shape).astype("float32"))
            var.assign(rng.uniform(0.5, 2.0, var.shape).astype("float32"))
    return model


@pytest.fixture(scope="module")
def saved(keras_model, tmp_path_factory):
    """(model path, le path) with a sidecar holding threshold 0.3."""
    out = tmp_path_factory.mktemp("artifacts")
    model_path, le_path = out / "liveness.keras", out / "le.pickle"
    save_model(keras_model, model_path)
    save_label_encoder(le_path, LabelEncoder().fit(["real", "fake"]))
    write_sidecar(model_path, {"labels": ["fake", "real"], "live_label": "real", "input_size": 32, "threshold": SIDECAR_THRESHOLD})
    return model_path, le_path


@pytest.fixture(scope="module")
def crops(face_image):
    """BGR crops of assorted sizes: the astronaut's face, parts of it and noise."""
    rng = np.random.default_rng(0)
    out = [face_image[60:260, 150:330], face_image[:100, :100], face_image[300:512, 200:420], face_image]
    out += [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in ((32, 32), (45, 60), (100, 80))]
    return out


# --- saving ------------------------------------------------------------------------------


def test_saved_model_and_sidecar_reload(saved, keras_model):
    model_path, le_path = saved
    model = load_keras_model(model_path)
    x = np.random.default_rng(1).integers(0, 256, (4, 32, 32, 3)).astype("float32")
    assert np.allclose(model.predict(x, verbose=0), keras_model.predict(x, verbose=0), atol=1e-6)
    side = read_sidecar(model_path)
    assert sidecar_path(model_path) == model_path.with_suffix(".json")
    assert side["format"] == 1 and side["threshold"] == SIDECAR_THRESHOLD and side["live_label"] == "real"
    assert list(load_label_encoder(le_path).classes_) == ["fake", "real"]


def test_save_model_is_atomic(keras_model, tmp_path, monkeypatch):
    target = tmp_path / "liveness.keras"
    target.write_bytes(b"the previous model")

    def broken_save(path, *args, **kwargs):
        Path(path).write_bytes(b"half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(keras_model, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_model(keras_model, target)
    assert target.read_bytes() == b"the previous model"
    assert [p.name for p in tmp_path.iterdir()] == ["liveness.keras"]  # no temp file left


def test_save_model_refuses_other_suffixes(keras_model, tmp_path):
    with pytest.raises(UserError, match=r"\.keras files; use e\.g\. liveness\.keras"):
        save_model(keras_model, tmp_path / "liveness.model")
    assert not list(tmp_path.iterdir())
    assert check_model_path(Path("a/b.keras")) == Path("a/b.keras")


def test_load_keras_model_refuses_missing_and_corrupt(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_keras_model(tmp_path / "none.keras")
    bad = tmp_path / "bad.keras"
    bad.write_bytes(os.urandom(300))
    with pytest.raises(UserError, match="cannot load model"):
        load_keras_model(bad)


# --- the label encoder pickle ----------------------------------------------------------


class _Evil:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_load_label_encoder_accepts_a_real_label_encoder(tmp_path):
    path = tmp_path / "le.pickle"
    path.write_bytes(pickle.dumps(LabelEncoder().fit(["real", "fake", "real"])))  # as the tutorial writes it
    le = load_label_encoder(path)
    assert isinstance(le, LabelEncoder)
    assert list(le.classes_) == ["fake", "real"]
    assert list(le.transform(["real", "fake"])) == [1, 0]


def test_load_label_encoder_refuses_a_malicious_pickle(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "le.pickle"
    path.write_bytes(pickle.dumps(_Evil(marker)))
    with pytest.raises(UserError, match="not a scikit-learn LabelEncoder"):
        load_label_encoder(path)
    assert not marker.exists(), "the pickle's code ran"


@pytest.mark.parametrize(
    "payload, message",
    [
        (pickle.dumps({"classes_": ["fake", "real"]}), "not a fitted scikit-learn LabelEncoder"),
        (pickle.dumps(["fake", "real"]), "not a fitted scikit-learn LabelEncoder"),
        (pickle.dumps(LabelEncoder()), "not a fitted"),
        (pickle.dumps(LabelEncoder().fit([0, 1])), "not text labels|not a scikit-learn"),
        (np.random.default_rng(0).bytes(200), "not a scikit-learn LabelEncoder pickle"),
        (b"", "not a scikit-learn LabelEncoder pickle"),
    ],
    ids=["dict", "list", "unfitted", "integer-classes", "random-bytes", "empty"],
)
def test_load_label_encoder_refuses_other_pickles(tmp_path, payload, message):
    path = tmp_path / "le.pickle"
    path.write_bytes(payload)
    with pytest.raises(UserError, match=message):
        load_label_encoder(path)


def test_load_label_encoder_missing_file(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_label_encoder(tmp_path / "le.pickle")


# --- LivenessClassifier ------------------------------------------------------------------


def test_classifier_refuses_a_label_encoder_of_another_size(saved, tmp_path):
    model_path, _ = saved
    le3 = tmp_path / "le3.pickle"
    save_label_encoder(le3, LabelEncoder().fit(["real", "fake", "print"]))
    with pytest.raises(UserError, match="has 3 classes .* outputs 2"):
        LivenessClassifier(model_path, le3, backend="tf")


def test_classifier_refuses_a_label_encoder_without_the_live_class(saved, tmp_path):
    model_path, _ = saved
    le = tmp_path / "le_other.pickle"
    save_label_encoder(le, LabelEncoder().fit(["bona", "spoof"]))
    with pytest.raises(UserError, match="no 'real' class"):
        LivenessClassifier(model_path, le, backend="tf")


def test_classifier_refuses_bad_backend_and_threshold(saved):
    with pytest.raises(UserError, match="--backend"):
        LivenessClassifier(*saved, backend="cuda")
    with pytest.raises(UserError, match="--threshold must be between 0 and 1"):
        LivenessClassifier(*saved, threshold=1.5, backend="tf")


@pytest.mark.slow
def test_opencv_and_tf_backends_agree_with_keras(saved, keras_model, crops):
    cv = LivenessClassifier(*saved, backend="opencv")
    tf = LivenessClassifier(*saved, backend="tf")
    assert (cv.backend, tf.backend) == ("opencv", "tf")
    assert cv.live_index == tf.live_index == 1
    expected = keras_model.predict(prepare_faces(crops, 32).astype("float32"), verbose=0)[:, 1]
    got_cv, got_tf = cv.scores(crops), tf.scores(crops)
    assert got_cv.shape == got_tf.shape == (len(crops),)
    assert np.ptp(expected) > 1e-3, "the probe crops should give different scores"
    assert np.allclose(got_cv, got_tf, atol=1e-4)
    assert np.allclose(got_tf, expected, atol=1e-5)
    assert np.allclose(got_cv, expected, atol=1e-4)
    probs = cv.cnn_probabilities(crops)
    assert probs.shape == (len(crops), 2) and np.allclose(probs.sum(axis=1), 1.0, atol=1e-4)
    assert cv.cnn_probabilities([]).shape == (0, 2)


def test_sidecar_threshold_is_the_default_and_threshold_overrides_it(saved, tmp_path):
    clf = LivenessClassifier(*saved, backend="tf")
    assert clf.threshold == SIDECAR_THRESHOLD
    assert clf.decide([0.35, 0.3, 0.25]) == ["real", "real", "fake"]
    strict = LivenessClassifier(*saved, threshold=0.9, backend="tf")
    assert strict.threshold == 0.9
    assert strict.decide([0.35, 0.95]) == ["fake", "real"]
    # no sidecar: 0.5
    model_path, le_path = saved
    bare = tmp_path / "bare.keras"
    bare.write_bytes(model_path.read_bytes())
    assert LivenessClassifier(bare, le_path, backend="tf").threshold == 0.5
