"""What train.py writes and the demo reads: the model, the label encoder, the sidecar.

- ``<name>.keras``: the Keras 3 model (loaded in safe mode).
- ``le.pickle``: a scikit-learn LabelEncoder, as the tutorial has it. Unpickling is
  restricted to that class and the numpy pieces it is made of, so a malicious
  pickle cannot run code.
- ``<name>.json``: the sidecar: labels, input size, operating threshold, how and on
  what the model was trained, and its held-out metrics.

`LivenessClassifier` classifies a batch of face crops per call without
`model.predict` (about 50 ms a call here): through an ONNX export run by OpenCV's DNN
module when it matches Keras, else a compiled tf.function.
"""

from __future__ import annotations

import io
import json
import logging
import pickle
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from liveness import LIVE_LABEL, SPOOF_LABEL
from liveness.cli import UserError, import_tensorflow
from liveness.dataset import prepare_faces
from liveness.fileio import atomic_path, atomic_write_bytes, atomic_write_text

LOGGER = logging.getLogger("liveness")

MODEL_SUFFIX = ".keras"
SIDECAR_FORMAT = 1
DEFAULT_THRESHOLD = 0.5
BACKENDS = ("auto", "opencv", "tf")

# (module, name) pairs a LabelEncoder pickle is made of; nothing else is unpickled.
_SAFE_GLOBALS = {
    ("sklearn.preprocessing._label", "LabelEncoder"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


def sidecar_path(model_path: Path) -> Path:
    return Path(model_path).with_suffix(".json")


def check_model_path(path: Path) -> Path:
    path = Path(path)
    if path.suffix != MODEL_SUFFIX:
        raise UserError(
            f"--model {path}: Keras 3 saves models only as {MODEL_SUFFIX} files; use e.g. "
            f"{path.with_suffix(MODEL_SUFFIX).name}"
        )
    return path


class _LabelEncoderUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _SAFE_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def save_label_encoder(path: Path, le) -> None:
    atomic_write_bytes(Path(path), pickle.dumps(le))


def load_label_encoder(path: Path):
    """A LabelEncoder from `path`; anything else is refused without running its code."""
    from sklearn.preprocessing import LabelEncoder

    path = Path(path)
    if not path.is_file():
        raise UserError(f"label encoder {path} does not exist")
    try:
        le = _LabelEncoderUnpickler(io.BytesIO(path.read_bytes())).load()
    except Exception as e:  # any unpickling failure means: not a label encoder we accept
        raise UserError(f"{path} is not a scikit-learn LabelEncoder pickle ({e})") from None
    if not isinstance(le, LabelEncoder) or not hasattr(le, "classes_"):
        raise UserError(f"{path} is not a fitted scikit-learn LabelEncoder")
    if np.asarray(le.classes_).dtype.kind not in "US":
        raise UserError(f"{path}: the label encoder's classes are not text labels")
    return le


def load_keras_model(path: Path):
    import_tensorflow()
    import keras

    path = Path(path)
    if not path.is_file():
        raise UserError(f"model {path} does not exist")
    check_model_path(path)
    try:
        return keras.models.load_model(path, compile=False, safe_mode=True)
    except Exception as e:  # a truncated zip, foreign bytes, an unsafe lambda layer...
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"cannot load model {path}: {reason[:200]}") from None


def read_sidecar(model_path: Path) -> dict:
    path = sidecar_path(model_path)
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise UserError(f"model sidecar {path} is not valid JSON: {e}") from None
    return data if isinstance(data, dict) else {}


def write_sidecar(model_path: Path, data: dict) -> None:
    atomic_write_text(sidecar_path(model_path), json.dumps({"format": SIDECAR_FORMAT, **data}, indent=2, default=_jsonable) + "\n")


def _jsonable(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def save_model(model, path: Path) -> None:
    """Atomic: the previous model survives an interrupted save."""
    with atomic_path(check_model_path(Path(path))) as tmp:
        model.save(tmp)


class LivenessClassifier:
    """Scores face crops: probability that each is live. One batched call per frame."""

    def __init__(self, model_path: Path, le_path: Path, *, threshold: float | None = None, backend: str = "auto") -> None:
        if backend not in BACKENDS:
            raise UserError(f"--backend must be one of {', '.join(BACKENDS)}")
        self.le = load_label_encoder(le_path)
        self.labels = [str(c) for c in self.le.classes_]
        sidecar = read_sidecar(model_path)
        self.lbp, self.lbp_weight = self._load_lbp(Path(model_path), sidecar)
        if self.lbp_weight >= 1:
            # Scored by colour LBP alone: the CNN is never run, so Keras (5 s, 600 MiB to
            # import) is not loaded. The file must still be a model archive.
            self.model = None
            check_model_path(Path(model_path))
            if not zipfile.is_zipfile(model_path):
                raise UserError(f"cannot load model {model_path}: not a Keras archive")
            outputs = len(sidecar.get("labels", self.labels))
            self.input_size = int(sidecar.get("input_size", 0))
        else:
            self.model = load_keras_model(model_path)
            outputs = int(self.model.output_shape[-1])
            self.input_size = int(self.model.input_shape[1])
        if outputs != len(self.labels):
            raise UserError(
                f"label encoder {le_path} has {len(self.labels)} classes ({', '.join(self.labels)}) "
                f"but model {model_path} outputs {outputs}"
            )
        live = sidecar.get("live_label", LIVE_LABEL)
        if live not in self.labels:
            raise UserError(f"label encoder {le_path} has no '{live}' class ({', '.join(self.labels)})")
        self.live_index = self.labels.index(live)
        self.live_label = live
        self.threshold = float(threshold if threshold is not None else sidecar.get("threshold", DEFAULT_THRESHOLD))
        if not 0.0 <= self.threshold <= 1.0:
            raise UserError(f"--threshold must be between 0 and 1, got {self.threshold}")
        self.sidecar = sidecar
        self.backend = self._pick_backend(backend) if self.model is not None else "lbp only"

    @staticmethod
    def _load_lbp(model_path: Path, sidecar: dict):
        """The colour-LBP model a fused model was trained with, and its weight (0 = none)."""
        spec = sidecar.get("lbp") or {}
        weight = float(spec.get("weight", 0.0))
        if weight <= 0:
            return None, 0.0
        from liveness.lbp import LBPClassifier

        path = model_path.parent / Path(str(spec.get("file", ""))).name  # never outside the model's folder
        if not path.is_file():
            raise UserError(f"model {model_path} is fused with an LBP model, but {path} is missing")
        try:
            return LBPClassifier.load(path), min(weight, 1.0)
        except ValueError as e:
            raise UserError(str(e)) from None

    # -- backends -------------------------------------------------------------
    def _pick_backend(self, wanted: str) -> str:
        probe = np.random.default_rng(0).integers(0, 256, (4, self.input_size, self.input_size, 3)).astype(np.float32)
        expected = self.model(probe, training=False).numpy()
        if wanted in ("auto", "opencv"):
            try:
                self._net = self._onnx_net()
                got = self._run_opencv(probe)
                if np.allclose(got, expected, atol=1e-4):
                    return "opencv"
                problem = f"differs from Keras by {np.abs(got - expected).max():.2g}"
            except Exception as e:  # export or import failed: the tf backend still works
                problem = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            if wanted == "opencv":
                raise UserError(f"the OpenCV DNN backend cannot run this model: {problem}")
            LOGGER.info("OpenCV DNN backend unavailable (%s); using tf.function", problem[:120])
        import tensorflow as tf

        self._fn = tf.function(
            lambda x: self.model(x, training=False),
            input_signature=[tf.TensorSpec([None, self.input_size, self.input_size, 3], tf.float32)],
            reduce_retracing=True,
        )
        self._fn(probe)  # trace once now, not on the first face
        return "tf"

    def _onnx_net(self):
        import cv2

        with tempfile.TemporaryDirectory() as tmp:
            onnx_path = Path(tmp) / "model.onnx"
            export_onnx(self.model, onnx_path)
            return cv2.dnn.readNetFromONNX(str(onnx_path))

    def _run_opencv(self, batch: np.ndarray) -> np.ndarray:
        self._net.setInput(batch)
        return self._net.forward().reshape(len(batch), -1)

    # -- public -----------------------------------------------------------------
    def cnn_probabilities(self, faces_bgr: list[np.ndarray]) -> np.ndarray:
        """(N, classes) probabilities of the CNN alone for N BGR crops of any size."""
        if not faces_bgr:
            return np.empty((0, len(self.labels)), np.float32)
        if self.backend == "lbp only":
            raise RuntimeError("this model scores with colour LBP alone; its CNN is not loaded for inference")
        batch = prepare_faces(faces_bgr, self.input_size).astype(np.float32)
        if self.backend == "opencv":
            return self._run_opencv(batch)
        return self._fn(batch).numpy()

    def scores(self, faces_bgr: list[np.ndarray]) -> np.ndarray:
        """(N,) probability that each face is live (fused with colour LBP when trained so)."""
        if self.lbp is None or not faces_bgr:
            return self.cnn_probabilities(faces_bgr)[:, self.live_index] if faces_bgr else np.empty(0, np.float32)
        lbp = self.lbp.score(faces_bgr)
        if self.lbp_weight >= 1:
            return lbp
        return (1 - self.lbp_weight) * self.cnn_probabilities(faces_bgr)[:, self.live_index] + self.lbp_weight * lbp

    def decide(self, scores: np.ndarray) -> list[str]:
        """Label per score at the operating threshold."""
        other = next(l for l in self.labels if l != self.live_label) if len(self.labels) > 1 else SPOOF_LABEL
        return [self.live_label if s >= self.threshold else other for s in np.asarray(scores)]


def export_onnx(model, path: Path) -> None:
    """Keras 3 -> ONNX (needs tf2onnx). The model must have been called once."""
    import contextlib
    import os

    model(np.zeros((1, *model.input_shape[1:]), np.float32), training=False)
    logging.getLogger("tf2onnx").setLevel(logging.WARNING)  # its [INFO] lines are not ours
    # The exporter prints "Saved artifact at ..." to stdout, which --json keeps for data.
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
        model.export(str(path), format="onnx", verbose=False)
