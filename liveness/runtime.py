"""Running a Keras CNN on face crops fast enough for every frame.

`model.predict` costs tens of milliseconds a call; a demo calls once a frame. So the
CNN runs through an ONNX export in OpenCV's DNN module when that matches Keras, else a
compiled tf.function. Both take one batch of all the frame's faces.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from pathlib import Path

import cv2
import numpy as np

LOGGER = logging.getLogger("liveness")

BACKENDS = ("auto", "opencv", "tf")
_AGREEMENT = 1e-4  # the ONNX export must reproduce Keras to this, else tf.function runs it


def prepare_faces(faces_bgr: list[np.ndarray], size: int) -> np.ndarray:
    """BGR crops of any size -> (N, size, size, 3) uint8 RGB: the CNNs' one input format."""
    out = np.empty((len(faces_bgr), size, size, 3), np.uint8)
    for i, face in enumerate(faces_bgr):
        out[i] = cv2.cvtColor(cv2.resize(face, (size, size), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
    return out


def export_onnx(model, path: Path) -> None:
    """Keras 3 -> ONNX (needs tf2onnx). The model must have been called once."""
    model(np.zeros((1, *model.input_shape[1:]), np.float32), training=False)
    logging.getLogger("tf2onnx").setLevel(logging.WARNING)  # its [INFO] lines are not ours
    # The exporter prints "Saved artifact at ..." to stdout, which --json keeps for data.
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
        model.export(str(path), format="onnx", verbose=False)


class CNNRunner:
    """(N, classes) probabilities of a Keras CNN for N BGR crops, one call per frame."""

    def __init__(self, model, *, backend: str = "auto") -> None:
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
        self.model = model
        self.input_size = int(model.input_shape[1])
        self.classes = int(model.output_shape[-1])
        self.backend = self._pick(backend)

    def _pick(self, wanted: str) -> str:
        probe = np.random.default_rng(0).integers(0, 256, (4, self.input_size, self.input_size, 3)).astype(np.float32)
        expected = self.model(probe, training=False).numpy()
        if wanted in ("auto", "opencv"):
            try:
                with tempfile.TemporaryDirectory() as tmp:
                    onnx_path = Path(tmp) / "model.onnx"
                    export_onnx(self.model, onnx_path)
                    self._net = cv2.dnn.readNetFromONNX(str(onnx_path))
                got = self._run_opencv(probe)
                if np.allclose(got, expected, atol=_AGREEMENT):
                    return "opencv"
                problem = f"differs from Keras by {np.abs(got - expected).max():.2g}"
            except Exception as e:  # export or import failed: the tf backend still works
                problem = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            if wanted == "opencv":
                raise ValueError(f"OpenCV's DNN module cannot run this model: {problem}")
            LOGGER.info("OpenCV DNN backend unavailable (%s); using tf.function", problem[:120])
        import tensorflow as tf

        self._fn = tf.function(
            lambda x: self.model(x, training=False),
            input_signature=[tf.TensorSpec([None, self.input_size, self.input_size, 3], tf.float32)],
            reduce_retracing=True,
        )
        self._fn(probe)  # trace once now, not on the first face
        return "tf"

    def _run_opencv(self, batch: np.ndarray) -> np.ndarray:
        self._net.setInput(batch)
        return self._net.forward().reshape(len(batch), -1)

    def probabilities(self, faces_bgr: list[np.ndarray]) -> np.ndarray:
        if not faces_bgr:
            return np.empty((0, self.classes), np.float32)
        batch = prepare_faces(faces_bgr, self.input_size).astype(np.float32)
        if self.backend == "opencv":
            return self._run_opencv(batch)
        return self._fn(batch).numpy()
