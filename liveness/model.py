"""A liveness model is one folder: a manifest and the files its scorer needs.

    output/liveness/
      manifest.json   what scores, labels, live label, threshold and where it came from,
                      crop padding, CNN input size, versions, data counts, the sha256 of
                      every file below and a checksum of the manifest itself
      lbp.npz         the colour-LBP scorer (scorer "lbp" or "fusion")
      cnn.keras       the Keras 3 CNN, preprocessing inside (scorer "cnn" or "fusion")
      le.pickle       a scikit-learn LabelEncoder, for the tutorial's users
      metrics.json, predictions.csv, roc.png, confusion.png[, history.png]   reports

`load_model` is the one loader: it validates the whole manifest (types, ranges, finite
numbers, labels), checks every file's size and checksum, and raises `ModelError`
with one line naming the file and the field. Nothing falls back silently. The
checksums catch edits and truncation, not a forger: whoever can write the folder can
recompute them. The model files themselves never run code: the CNN loads in Keras'
safe mode, the LBP scorer is plain arrays, the label encoder goes through a
restricted unpickler.

`save_model` writes a new folder beside the old one and swaps it in, so a model and
its reports are always one unit: all new or all old.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import io
import json
import logging
import math
import os
import pickle
import platform
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from liveness.crops import MAX_PADDING
from liveness.errors import ModelError, OutputError
from liveness.fileio import file_digest, jsonable

LOGGER = logging.getLogger("liveness")

FORMAT = "liveness-model/1"
MANIFEST = "manifest.json"
LBP_FILE = "lbp.npz"
CNN_FILE = "cnn.keras"
LE_FILE = "le.pickle"
SCORERS = ("lbp", "cnn", "fusion")
DEFAULT_SCORER = "lbp"  # the best of the leave-one-subject-out comparison (README)
# What each scorer needs, besides the manifest.
NEEDS = {"lbp": (LBP_FILE,), "cnn": (CNN_FILE,), "fusion": (LBP_FILE, CNN_FILE)}
# A model folder must not be able to exhaust the machine that opens it.
MAX_BYTES = {MANIFEST: 1 << 20, LBP_FILE: 1 << 20, CNN_FILE: 256 << 20, LE_FILE: 64 << 10}
MAX_INPUT_SIZE = 512
_BACKUP = ".{name}.previous"  # the old folder, for the moment of the swap


def _canonical(manifest: dict) -> bytes:
    body = {k: v for k, v in manifest.items() if k != "checksum"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def manifest_checksum(manifest: dict) -> str:
    return hashlib.sha256(_canonical(manifest)).hexdigest()


# --- validation ---------------------------------------------------------------------------
def _fail(path: Path, field_: str, problem: str) -> ModelError:
    return ModelError(f"model {path}: {MANIFEST} field '{field_}' {problem}")


def _finite(path: Path, m: dict, key: str, lo: float, hi: float) -> float:
    v = m.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not lo <= v <= hi:
        raise _fail(path, key, f"must be a number from {lo:g} to {hi:g}, got {str(v)[:40]!r}")
    return float(v)


def _read_manifest(folder: Path) -> dict:
    path = folder / MANIFEST
    try:
        size = path.stat().st_size
        if size > MAX_BYTES[MANIFEST]:
            raise ModelError(f"model {folder}: {MANIFEST} is {size:,} bytes, more than a manifest can be")
        text = path.read_bytes().decode("utf-8")
        data = json.loads(text, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(f"{c} is not a number")))
    except UnicodeDecodeError:
        raise ModelError(f"model {folder}: {MANIFEST} is not UTF-8 text") from None
    except (ValueError, RecursionError) as e:  # JSON errors, 5,000-digit integers, 100,000 nested '['
        raise ModelError(f"model {folder}: {MANIFEST} is not valid JSON ({str(e)[:80] or type(e).__name__})") from None
    except IsADirectoryError:
        raise ModelError(f"model {folder}: {MANIFEST} is a folder, not a file") from None
    except OSError as e:
        raise ModelError(f"model {folder}: cannot read {MANIFEST} ({e.strerror})") from None
    if not isinstance(data, dict):
        raise ModelError(f"model {folder}: {MANIFEST} must hold a JSON object, got {type(data).__name__}")
    return data


def _refuse_other_layouts(path: Path) -> None:
    retrain = "retrain it: python train.py --dataset DATASET --model output/liveness"
    if path.is_file() and path.suffix == ".keras":
        raise ModelError(
            f"{path} is a single-file model of the previous release; a model is now a folder with a {MANIFEST}: {retrain}"
        )
    if path.is_file() and path.suffix == ".onnx":
        raise ModelError(f"{path} is an ONNX export; the demo and evaluate.py take a model folder (export.py writes exports from one)")
    if not path.exists():
        raise ModelError(f"model {path} does not exist (train one: python train.py --dataset DATASET --model {path})")
    if not path.is_dir():
        raise ModelError(f"model {path} is not a model folder (expected a folder holding {MANIFEST})")
    if not (path / MANIFEST).exists():
        old = sorted(p.name for p in path.glob("*.keras"))
        if old:
            raise ModelError(f"{path} holds {old[0]} from the previous release but no {MANIFEST}: {retrain}")
        raise ModelError(f"model {path} has no {MANIFEST}: not a model folder, or copied without it")


def validate_manifest(folder: Path, m: dict, *, check_files: bool = True) -> None:
    """Raise ModelError naming the first field or file that is wrong."""
    if m.get("format") != FORMAT:
        raise _fail(folder, "format", f"must be {FORMAT!r}, got {str(m.get('format'))[:40]!r} (a newer or foreign model?)")
    if m.get("checksum") != manifest_checksum(m):
        raise ModelError(f"model {folder}: {MANIFEST} was edited after training (its checksum does not match); retrain it, or give the threshold when running the model instead of editing the file")
    scorer = m.get("scorer")
    if scorer not in SCORERS:
        raise _fail(folder, "scorer", f"must be one of {', '.join(SCORERS)}, got {str(scorer)[:40]!r}")
    labels = m.get("labels")
    if (not isinstance(labels, list) or len(labels) != 2 or not all(isinstance(x, str) and 0 < len(x) <= 64 for x in labels)
            or len(set(labels)) != 2):
        raise _fail(folder, "labels", "must be two different, non-empty class names")
    if m.get("live_label") not in labels:
        raise _fail(folder, "live_label", f"must be one of the labels {labels}")
    _finite(folder, m, "threshold", 0.0, 1.0)
    _finite(folder, m, "padding", 0.0, MAX_PADDING)
    weight = _finite(folder, m, "lbp_weight", 0.0, 1.0)
    if (scorer == "lbp") != (weight == 1.0) or (scorer == "cnn") != (weight == 0.0):
        raise _fail(folder, "lbp_weight", f"does not fit scorer {scorer!r}")
    if m.get("live_offset") is not None:
        _finite(folder, m, "live_offset", -50.0, 50.0)
    size = m.get("input_size")
    if scorer != "lbp" and (isinstance(size, bool) or not isinstance(size, int) or not 8 <= size <= MAX_INPUT_SIZE):
        raise _fail(folder, "input_size", f"must be an integer from 8 to {MAX_INPUT_SIZE}")
    files = m.get("files")
    if not isinstance(files, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
        raise _fail(folder, "files", "must map file names to sha256 digests")
    for name in (*NEEDS[scorer], LE_FILE):
        if name not in files:
            raise _fail(folder, "files", f"lacks {name}, which scorer {scorer!r} needs")
    for name in files:
        if name not in MAX_BYTES or name == MANIFEST:
            raise _fail(folder, "files", f"names an unexpected file {name[:40]!r}")
    if not check_files:
        return
    for name in files:
        path = folder / name
        if not path.is_file():
            raise ModelError(f"model {folder}: {name} is missing (copy the whole folder)")
        if path.stat().st_size > MAX_BYTES[name]:
            raise ModelError(f"model {folder}: {name} is larger than such a file can be ({path.stat().st_size:,} bytes)")
        if file_digest(path) != files[name]:
            raise ModelError(f"model {folder}: {name} was changed after training (sha256 mismatch)")


# --- the label encoder (the tutorial's le.pickle) -----------------------------------------
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


class _LabelEncoderUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _SAFE_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def load_label_encoder(path: Path) -> list[str]:
    """The classes of a LabelEncoder pickle; anything else is refused without running its code."""
    from sklearn.preprocessing import LabelEncoder

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"label encoder {path} does not exist")
    if path.stat().st_size > MAX_BYTES[LE_FILE]:
        raise ModelError(f"label encoder {path} is too large to be one")
    try:
        le = _LabelEncoderUnpickler(io.BytesIO(path.read_bytes())).load()
    except Exception as e:  # any unpickling failure means: not a label encoder we accept
        raise ModelError(f"{path} is not a scikit-learn LabelEncoder pickle ({str(e)[:100]})") from None
    if not isinstance(le, LabelEncoder) or not hasattr(le, "classes_"):
        raise ModelError(f"{path} is not a fitted scikit-learn LabelEncoder")
    classes = np.asarray(le.classes_)
    if classes.dtype.kind not in "US" or classes.ndim != 1:
        raise ModelError(f"{path}: the label encoder's classes are not text labels")
    labels = [str(c) for c in classes]
    if len(set(labels)) != len(labels) or len(labels) != 2:
        raise ModelError(f"{path}: the label encoder must hold two different classes, got {labels}")
    return labels


def label_encoder_bytes(labels: list[str]) -> bytes:
    from sklearn.preprocessing import LabelEncoder

    return pickle.dumps(LabelEncoder().fit(labels))


# --- the loaded model ---------------------------------------------------------------------
@dataclass
class LivenessModel:
    """A loaded, validated model. `score` takes BGR crops (any size), one batch a frame."""

    path: Path
    manifest: dict
    lbp: object | None = None  # liveness.lbp.LBPClassifier
    cnn: object | None = None  # a Keras model
    backend: str = "auto"
    _runner: object | None = field(default=None, repr=False)

    @property
    def scorer(self) -> str:
        return self.manifest["scorer"]

    @property
    def labels(self) -> list[str]:
        return list(self.manifest["labels"])

    @property
    def live_label(self) -> str:
        return self.manifest["live_label"]

    @property
    def attack_label(self) -> str:
        return next(label for label in self.labels if label != self.live_label)

    @property
    def threshold(self) -> float:
        return float(self.manifest["threshold"])

    @property
    def padding(self) -> float:
        return float(self.manifest["padding"])

    @property
    def lbp_weight(self) -> float:
        return float(self.manifest["lbp_weight"])

    @property
    def live_offset(self) -> float | None:
        """For one-camera calibration (liveness/calibration.py); None if training could not measure it."""
        value = self.manifest.get("live_offset")
        return None if value is None else float(value)

    @property
    def input_size(self) -> int | None:
        return self.manifest.get("input_size") if self.scorer != "lbp" else None

    @property
    def name(self) -> str:
        return self.path.name

    def describe(self) -> str:
        what = {"lbp": "colour-LBP", "cnn": f"CNN {self.manifest.get('arch')}", "fusion": f"fusion (LBP weight {self.lbp_weight:g})"}
        return f"{self.path} ({what[self.scorer]}, threshold {self.threshold:.3f})"

    def with_threshold(self, threshold: float | None) -> LivenessModel:
        """The same model at another operating point (None: the saved one)."""
        if threshold is None:
            return self
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be a number from 0 to 1, got {threshold!r}")
        return replace(self, manifest={**self.manifest, "threshold": float(threshold), "threshold_source": "given by the user"})

    def cnn_probabilities(self, faces_bgr: list[np.ndarray]) -> np.ndarray:
        """(N, 2) class probabilities of the CNN alone (scorer cnn or fusion)."""
        if self.cnn is None:
            raise RuntimeError("this model scores with colour LBP alone; it has no CNN")
        if self._runner is None:
            from liveness.runtime import CNNRunner

            self._runner = CNNRunner(self.cnn, backend=self.backend)
        return self._runner.probabilities(faces_bgr)

    def score(self, faces_bgr: list[np.ndarray]) -> np.ndarray:
        """(N,) float64 probability that each face is live."""
        if len(faces_bgr) == 0:
            return np.zeros(0, np.float64)
        w = self.lbp_weight
        lbp = self.lbp.score_live(faces_bgr) if w > 0 else 0.0
        cnn = self.cnn_probabilities(faces_bgr)[:, self.labels.index(self.live_label)].astype(np.float64) if w < 1 else 0.0
        return fuse(cnn, lbp, w)

    def decide(self, scores) -> list[str]:
        """The label of each live score at the operating threshold."""
        return [self.live_label if s >= self.threshold else self.attack_label for s in np.asarray(scores, np.float64)]


def fuse(cnn_scores, lbp_scores, lbp_weight: float):
    """The one fusion formula: (1 - w) * CNN + w * LBP live probabilities."""
    if lbp_weight >= 1:
        return np.asarray(lbp_scores, np.float64)
    if lbp_weight <= 0:
        return np.asarray(cnn_scores, np.float64)
    return (1 - lbp_weight) * np.asarray(cnn_scores, np.float64) + lbp_weight * np.asarray(lbp_scores, np.float64)


def _load_keras(path: Path):
    from liveness.nets import import_keras

    keras = import_keras()
    try:
        return keras.models.load_model(path, compile=False, safe_mode=True)
    except Exception as e:  # a foreign archive, an unsafe lambda layer...
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelError(f"model {path.parent}: cannot load {path.name}: {reason[:200]}") from None


def load_model(path: str | Path, *, threshold: float | None = None, backend: str = "auto") -> LivenessModel:
    """Open, validate and load a model folder. Raises ModelError with one line."""
    from liveness.runtime import BACKENDS

    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    folder = Path(path)
    _refuse_other_layouts(folder)
    manifest = _read_manifest(folder)
    validate_manifest(folder, manifest)
    model = LivenessModel(folder, manifest, backend=backend)
    if model.lbp_weight > 0:
        from liveness.lbp import LBPClassifier

        try:
            model.lbp = LBPClassifier.load(folder / LBP_FILE)
        except ValueError as e:
            raise ModelError(f"model {folder}: {e}") from None
    if model.lbp_weight < 1:
        model.cnn = _load_keras(folder / CNN_FILE)
        shape_in, shape_out = model.cnn.input_shape, model.cnn.output_shape
        if tuple(shape_in[1:]) != (model.input_size, model.input_size, 3) or shape_out[-1] != 2:
            raise ModelError(f"model {folder}: {CNN_FILE} takes {shape_in[1:]} and gives {shape_out[-1]} classes, not what {MANIFEST} says")
        if not all(np.isfinite(w).all() for w in model.cnn.get_weights()):  # NaN weights: every face NaN, decided "attack"
            raise ModelError(f"model {folder}: {CNN_FILE} holds weights that are not finite numbers")
    return model.with_threshold(threshold)


# --- saving -------------------------------------------------------------------------------
def versions(cnn: bool) -> dict:
    import cv2
    import sklearn

    out = {"python": platform.python_version(), "numpy": np.__version__, "opencv": cv2.__version__, "scikit-learn": sklearn.__version__}
    if cnn:
        import keras

        out["keras"] = keras.__version__
    return out


@contextlib.contextmanager
def staging_folder(target: Path) -> Iterator[Path]:
    """A fresh folder beside `target`; on success it replaces `target` (old one removed).

    The swap is two renames; between them a crash leaves the old model as
    `.NAME.previous` beside it, never a half-written folder under the model's name.
    """
    target = Path(target)
    parent = target.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=parent))
    except OSError as e:
        raise OutputError(f"cannot write the model beside {target}: {e.strerror}") from None
    try:
        yield tmp
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o777 & ~mask)  # mkdtemp makes it private; a model folder has the usual mode
        backup = parent / _BACKUP.format(name=target.name)
        if backup.exists():
            shutil.rmtree(backup)
        if target.exists():
            os.replace(target, backup)
        os.replace(tmp, target)
        shutil.rmtree(backup, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_calibrated_copy(model: LivenessModel, target: Path, threshold: float, calibration: dict) -> dict:
    """A copy of `model`'s folder at `target` whose operating threshold was calibrated for
    one camera (calibrate.py); every file but the manifest is copied unchanged."""
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be a number from 0 to 1, got {threshold!r}")
    source = model.path.resolve()
    if Path(target).resolve() == source:
        raise OutputError(f"write the calibrated model to a new folder, not over {model.path}")
    manifest = {k: v for k, v in model.manifest.items() if k != "checksum"}
    manifest.update(threshold=float(threshold), calibration=jsonable(calibration),
                    threshold_source=f"calibrated on {calibration.get('faces')} live faces of {calibration.get('input')}")
    with staging_folder(Path(target)) as tmp:
        for item in source.iterdir():
            if item.is_file() and item.name != MANIFEST:
                shutil.copy2(item, tmp / item.name)
        manifest["checksum"] = manifest_checksum(manifest)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, allow_nan=False) + "\n", encoding="utf-8")
        validate_manifest(tmp, manifest)
    return manifest


def check_model_target(path: Path) -> Path:
    """Where a model folder will be written: not a file, not a non-model folder."""
    path = Path(path)
    if path.suffix in (".keras", ".h5", ".onnx", ".pickle", ".json"):
        raise OutputError(f"a model is now a folder: give a folder name such as {path.with_suffix('')}, not {path.name}")
    if path.exists() and not path.is_dir():
        raise OutputError(f"{path} is a file, not a model folder")
    if path.is_dir() and any(path.iterdir()) and not (path / MANIFEST).is_file():
        raise OutputError(f"{path} is a folder that holds other files, not a model: refusing to replace it")
    parent = path.parent
    probe = parent
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise OutputError(f"cannot write the model folder {path}: {probe} is not a writable folder")
    try:  # os.access says yes to root everywhere (/proc too): try it, before hours of training
        parent.mkdir(parents=True, exist_ok=True)
        os.rmdir(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".probe", dir=parent))
    except OSError as e:
        raise OutputError(f"cannot write the model folder {path}: {probe} is not a writable folder ({e.strerror})") from None
    return path


def write_model(
    target: Path,
    manifest: dict,
    *,
    lbp=None,
    cnn=None,
    reports: Callable[[Path], None] | None = None,
) -> dict:
    """Write a complete model folder atomically; returns the manifest written.

    `manifest` holds the descriptive fields (scorer, labels, live_label, threshold, ...);
    format, files, versions and checksum are filled in here. `reports(folder)` writes
    the reports into the new folder before the swap.
    """
    manifest = jsonable({"format": FORMAT, **manifest})
    with staging_folder(Path(target)) as tmp:
        if lbp is not None:
            lbp.save(tmp / LBP_FILE)
        if cnn is not None:
            cnn.save(tmp / CNN_FILE)
        (tmp / LE_FILE).write_bytes(label_encoder_bytes(manifest["labels"]))
        manifest["files"] = {p.name: file_digest(p) for p in sorted(tmp.iterdir()) if p.name in MAX_BYTES}
        manifest.setdefault("trained", dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))
        manifest["versions"] = versions(cnn is not None)
        if reports is not None:
            reports(tmp)
        manifest["checksum"] = manifest_checksum(manifest)
        with open(tmp / MANIFEST, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(manifest, indent=2, allow_nan=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        validate_manifest(tmp, manifest)  # what we write, we can read
    return manifest
