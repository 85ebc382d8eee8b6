"""Exports for phones, single-board computers and browsers, and scorers that run them
without TensorFlow.

- ONNX (`export_onnx`): the Keras CNN with its pixel scaling inside; OpenCV's DNN
  module, ONNX Runtime or onnxruntime-web run it.
- TFLite (`export_tflite`): the same network for LiteRT (TensorFlow Lite), float32, or
  int8 weights and activations calibrated on a representative set of crops (float
  input and output, so it is fed and read like the float model).
- colour-LBP as JSON (`export_lbp_json`): the feature recipe, the scaler and the linear
  model, readable by anything; liveness/lbp_reference.py is a plain-NumPy scorer for it.

Every export records the labels, the live label and the operating threshold: ONNX in
its metadata_props, TFLite in a metadata entry of the flatbuffer, both under the key
METADATA_KEY as JSON; the LBP JSON at its top level.

The CNN exports take what the Keras model takes: (N, S, S, 3) float32 RGB pixels in
0..255, a BGR crop resized to S x S with OpenCV's INTER_AREA (liveness.runtime.
prepare_faces), and output (N, classes) probabilities in `labels` order.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from liveness.errors import ModelError
from liveness.fileio import atomic_path, atomic_write_text
from liveness.runtime import prepare_faces

LOGGER = logging.getLogger("liveness")

FORMATS = ("onnx", "tflite", "lbp-json")
SUFFIXES = {"onnx": ".onnx", "tflite": ".tflite", "lbp-json": ".json"}
METADATA_KEY = "liveness"
CNN_EXPORT_FORMAT = "liveness-cnn-export/1"
REPRESENTATIVE_LIMIT = 200  # crops the int8 calibration runs through (more adds time, not accuracy)


def export_info(*, labels: Sequence[str], live_label: str, threshold: float, **extra) -> dict:
    """What every export records: labels (the model's output order), live label, threshold."""
    labels = [str(l) for l in labels]
    if live_label not in labels:
        raise ValueError(f"live label {live_label!r} is not one of the labels {labels}")
    threshold = float(threshold)
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in 0..1, got {threshold}")
    return {"labels": labels, "live_label": str(live_label), "threshold": threshold, **extra}


def _cnn_info(keras_model, info: dict) -> dict:
    size = int(keras_model.input_shape[1])
    outputs = int(keras_model.output_shape[-1])
    if outputs != len(info["labels"]):
        raise ValueError(f"the model has {outputs} outputs but {len(info['labels'])} labels")
    return {
        "format": CNN_EXPORT_FORMAT,
        **info,
        "input": {"shape": [None, size, size, 3], "dtype": "float32", "pixels": "RGB 0..255",
                  "resize": "OpenCV INTER_AREA from the BGR crop"},
        "output": "probabilities, one per label",
    }


@contextlib.contextmanager
def _quiet():
    """Exporters print 'Saved artifact at ...' on stdout; tf2onnx logs tracebacks of
    optimisations it skips (the graph is still converted); NumPy future warnings."""
    loggers = [logging.getLogger(name) for name in ("tf2onnx", "tensorflow")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:  # tensorflow logs "Assets written to ..." at INFO
        lg.setLevel(logging.ERROR)
    try:
        with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _built(keras_model):
    """Keras exports need a model that has been called once."""
    keras_model(np.zeros((1, *keras_model.input_shape[1:]), np.float32), training=False)
    return keras_model


# --- ONNX --------------------------------------------------------------------


def export_onnx(keras_model, path: Path, *, labels: Sequence[str], live_label: str, threshold: float, **extra) -> Path:
    """Write the Keras CNN as ONNX (via tf2onnx) with export_info in metadata_props."""
    import onnx

    from liveness.cli import import_tensorflow

    import_tensorflow()
    path = Path(path)
    meta = _cnn_info(keras_model, export_info(labels=labels, live_label=live_label, threshold=threshold, **extra))
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "model.onnx"
        with _quiet():
            _built(keras_model).export(str(raw), format="onnx", verbose=False)
        proto = onnx.load(str(raw))
    del proto.metadata_props[:]
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(meta)
    with atomic_path(path) as tmp_path:
        onnx.save(proto, str(tmp_path))
    return path


def read_onnx_metadata(path: Path) -> dict:
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    for entry in proto.metadata_props:
        if entry.key == METADATA_KEY:
            return json.loads(entry.value)
    raise ValueError(f"{path}: no '{METADATA_KEY}' metadata (not written by export.py)")


# --- TFLite ------------------------------------------------------------------


def export_tflite(
    keras_model,
    path: Path,
    *,
    labels: Sequence[str],
    live_label: str,
    threshold: float,
    representative: np.ndarray | None = None,
    **extra,
) -> Path:
    """Write the Keras CNN as a TFLite flatbuffer: float32, or with `representative`
    ((N, S, S, 3) RGB 0..255 crops as the model takes them) int8 weights and
    activations calibrated on those crops (float input and output)."""
    from liveness.cli import import_tensorflow

    tf = import_tensorflow()
    path = Path(path)
    quantised = representative is not None
    meta = _cnn_info(
        keras_model,
        export_info(labels=labels, live_label=live_label, threshold=threshold, quantization="int8" if quantised else "float32", **extra),
    )
    tmp = Path(tempfile.mkdtemp(prefix="liveness-tflite-"))
    try:
        with _quiet():
            _built(keras_model).export(str(tmp / "saved_model"), format="tf_saved_model", verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(str(tmp / "saved_model"))
        if quantised:
            calib = np.asarray(representative, np.float32)
            if calib.ndim != 4 or calib.shape[1:] != tuple(keras_model.input_shape[1:]) or not len(calib):
                raise ValueError(f"representative crops must be (N, {keras_model.input_shape[1]}, ..., 3), got {calib.shape}")
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = lambda: ([calib[i : i + 1]] for i in range(len(calib)))
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        with _quiet():
            flatbuffer = converter.convert()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    with atomic_path(path) as tmp_path:
        tmp_path.write_bytes(_with_tflite_metadata(flatbuffer, json.dumps(meta).encode()))
    return path


def _with_tflite_metadata(flatbuffer: bytes, data: bytes) -> bytes:
    """The flatbuffer with a metadata entry METADATA_KEY pointing at a new buffer of `data`."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray(flatbuffer), 0)
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(data, np.uint8)
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name, entry.buffer = METADATA_KEY, len(model.buffers) - 1
    model.metadata = [m for m in (model.metadata or []) if m.name not in (METADATA_KEY, METADATA_KEY.encode())] + [entry]
    builder = flatbuffers.Builder(len(flatbuffer) + len(data) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def read_tflite_metadata(path: Path) -> dict:
    from ai_edge_litert import schema_py_generated as schema

    buf = Path(path).read_bytes()
    model = schema.Model.GetRootAs(buf, 0)
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if entry.Name().decode() == METADATA_KEY:
            return json.loads(model.Buffers(entry.Buffer()).DataAsNumpy().tobytes())
    raise ValueError(f"{path}: no '{METADATA_KEY}' metadata (not written by export.py)")


# --- colour LBP as JSON ------------------------------------------------------


def lbp_parameters(lbp) -> dict:
    """The fitted LBPClassifier's arrays: mean, scale, coef (for the live class), intercept."""
    if not hasattr(lbp, "coef_"):
        raise ValueError("the LBP model is not fitted")
    return {
        "mean": np.asarray(lbp.mean_, np.float64).tolist(),
        "scale": np.asarray(lbp.scale_, np.float64).tolist(),
        "coef": np.asarray(lbp.coef_, np.float64).tolist(),
        "intercept": float(lbp.intercept_),
    }


def lbp_document(lbp, *, labels: Sequence[str], live_label: str, threshold: float, **extra) -> dict:
    """The JSON document of liveness/lbp_reference.py's format for a fitted LBPClassifier."""
    from liveness import lbp_reference
    from liveness.lbp import feature_length
    from liveness.lbp_kernel import _MOMENT_STEP

    info = export_info(labels=labels, live_label=live_label, threshold=threshold, **extra)
    params = lbp_parameters(lbp)
    return {
        "format": lbp_reference.FORMAT,
        **info,
        "features": {
            "size": lbp.size,
            "resize": "area" if getattr(lbp, "area", False) else "bilinear",
            "points": lbp.points,
            "radii": list(lbp.radii),
            "channels": list(lbp.channels),
            "moments": lbp.moments,
            "moment_step": _MOMENT_STEP,
            "length": feature_length(lbp.points, lbp.radii, lbp.moments, lbp.channels),
        },
        "scaler": {"mean": params["mean"], "scale": params["scale"]},
        "coef": params["coef"],
        "intercept": params["intercept"],
        "score": "p_live = 1 / (1 + exp(-(sum(coef * (x - mean) / scale) + intercept))); live when p_live >= threshold",
    }


def export_lbp_json(lbp, path: Path, *, labels: Sequence[str], live_label: str, threshold: float, **extra) -> Path:
    path = Path(path)
    atomic_write_text(path, json.dumps(lbp_document(lbp, labels=labels, live_label=live_label, threshold=threshold, **extra), indent=1) + "\n")
    return path


# --- running an export (no TensorFlow) ----------------------------------------


def read_metadata(path: Path) -> dict:
    """What an export records, by its suffix (.onnx, .tflite, .json)."""
    path = Path(path)
    if path.suffix == ".onnx":
        return read_onnx_metadata(path)
    if path.suffix == ".tflite":
        return read_tflite_metadata(path)
    if path.suffix == ".json":
        from liveness import lbp_reference

        return lbp_reference.load(path)
    raise ValueError(f"{path}: expected an .onnx, .tflite or .json export")


class ExportedScorer:
    """Runs an export: ONNX through OpenCV's DNN module, TFLite through LiteRT
    (ai-edge-litert), LBP JSON through liveness/lbp_reference.py. TensorFlow is never
    imported. `score(faces_bgr)` -> (N,) live probabilities; `decide(scores)` labels."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            self._open()
        except Exception as e:  # a truncated file, another program's ONNX, a JSON of another format...
            reason = " ".join(str(e).split())[:200] or type(e).__name__
            raise ModelError(f"cannot load export {self.path}: {reason}") from None

    def _open(self) -> None:
        self.meta = read_metadata(self.path)
        self.kind = {".onnx": "onnx", ".tflite": "tflite", ".json": "lbp-json"}[self.path.suffix]
        self.labels = list(self.meta["labels"])
        self.live_label = self.meta["live_label"]
        self.live_index = self.labels.index(self.live_label)
        self.attack_label = next(label for label in self.labels if label != self.live_label)
        self.threshold = float(self.meta["threshold"])
        self.padding = float(self.meta.get("padding", 0.0))  # how the crops were cut around the detector's box
        self.input_size = int(self.meta["input"]["shape"][1]) if "input" in self.meta else None
        self.scorer = self.kind
        if self.kind == "onnx":
            import cv2

            self._net = cv2.dnn.readNetFromONNX(str(self.path))
        elif self.kind == "tflite":
            from ai_edge_litert.interpreter import Interpreter

            self._interpreter = Interpreter(model_path=str(self.path))
            self._input = self._interpreter.get_input_details()[0]["index"]
            self._output = self._interpreter.get_output_details()[0]["index"]
            self._batch = 0
        else:
            from liveness.lbp_reference import ReferenceScorer

            self._lbp = ReferenceScorer(self.meta)

    def probabilities(self, faces_bgr: Sequence[np.ndarray]) -> np.ndarray:
        """(N, classes) probabilities of a CNN export."""
        batch = prepare_faces(list(faces_bgr), self.input_size).astype(np.float32)
        if self.kind == "onnx":
            self._net.setInput(batch)
            return self._net.forward().reshape(len(batch), -1)
        if self._batch != len(batch):  # the interpreter is sized per batch length
            self._interpreter.resize_tensor_input(self._input, list(batch.shape), strict=False)
            self._interpreter.allocate_tensors()
            self._batch = len(batch)
        self._interpreter.set_tensor(self._input, batch)
        self._interpreter.invoke()
        return np.array(self._interpreter.get_tensor(self._output)).reshape(len(batch), -1)

    def score(self, faces_bgr: Sequence[np.ndarray]) -> np.ndarray:
        if len(faces_bgr) == 0:
            return np.zeros(0, np.float64)
        if self.kind == "lbp-json":
            return self._lbp.score(faces_bgr)
        return self.probabilities(faces_bgr)[:, self.live_index].astype(np.float64)

    def decide(self, scores: np.ndarray) -> list[str]:
        return [self.live_label if s >= self.threshold else self.attack_label for s in np.asarray(scores)]

    def with_threshold(self, threshold: float | None) -> ExportedScorer:
        """This scorer at another operating point (None: the recorded one)."""
        if threshold is not None:
            if not 0.0 <= float(threshold) <= 1.0:
                raise ValueError(f"threshold must be a number from 0 to 1, got {threshold!r}")
            self.threshold = float(threshold)
        return self

    def describe(self) -> str:
        return f"{self.path} ({self.kind} export, threshold {self.threshold:.3f})"


def is_export(path: Path) -> bool:
    """An export file, or a folder that holds one export and no model manifest."""
    path = Path(path)
    if path.is_file():
        return path.suffix in (".onnx", ".tflite") or (path.suffix == ".json" and path.name != "manifest.json")
    return path.is_dir() and not (path / "manifest.json").exists() and len(_exports_in(path)) == 1


def _exports_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix in (".onnx", ".tflite") and p.is_file())


def open_scorer(path: Path, *, threshold: float | None = None, backend: str = "auto"):
    """What the demo scores with: an export (a file, or a folder holding one .onnx or
    .tflite) as an ExportedScorer, else the model folder through liveness.model."""
    path = Path(path)
    if is_export(path):
        return ExportedScorer(path if path.is_file() else _exports_in(path)[0]).with_threshold(threshold)
    from liveness.model import load_model

    return load_model(path, threshold=threshold, backend=backend)
