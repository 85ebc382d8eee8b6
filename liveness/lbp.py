"""Colour-texture LBP liveness model: uniform LBP histograms of the HSV and YCrCb
channels of a face crop, fed to a linear classifier (Boulkenafet, Komulainen and
Hadid, "Face anti-spoofing based on color texture analysis", ICIP 2015)."""

from __future__ import annotations

import json
import pathlib
import zipfile
from collections.abc import Sequence

import cv2
import numpy as np
from skimage.feature import local_binary_pattern
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from liveness.fileio import atomic_path

LBP_SIZE = 64  # crops are resized to LBP_SIZE x LBP_SIZE before feature extraction

# Written into every saved model; load() refuses files without it.
_FORMAT = "liveness.lbp.LBPClassifier/1"
_ARRAY_KEYS = ("scaler_mean", "scaler_scale", "coef", "intercept", "classes")


def feature_length(points: int = 8, radii: Sequence[int] = (1, 2)) -> int:
    """Length of the vector lbp_features returns for these settings."""
    return 6 * len(radii) * (points + 2)


def _check_settings(size: int, points: int, radii: Sequence[int]) -> tuple[int, int, tuple[int, ...]]:
    # bool is an int subclass; reject it so True/False never pass as a size.
    def is_int(v: object) -> bool:
        return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))

    if not is_int(points) or points < 1:
        raise ValueError(f"points must be a positive int, got {points!r}")
    radii = tuple(radii)
    if not radii or not all(is_int(r) and r >= 1 for r in radii):
        raise ValueError(f"radii must be a non-empty sequence of positive ints, got {radii!r}")
    radii = tuple(int(r) for r in radii)
    # Border pixels are dropped (see lbp_features), so at least one interior pixel must remain.
    if not is_int(size) or size < 2 * max(radii) + 1:
        raise ValueError(f"size must be an int >= {2 * max(radii) + 1} for radii {radii}, got {size!r}")
    return int(size), int(points), radii


def _as_bgr(face: np.ndarray) -> np.ndarray:
    if not isinstance(face, np.ndarray):
        raise TypeError(f"face must be a numpy array, got {type(face).__name__}")
    if face.dtype != np.uint8:
        raise ValueError(f"face must be uint8 (OpenCV BGR), got dtype {face.dtype}")
    if face.ndim == 3 and face.shape[2] == 1:
        face = face[:, :, 0]
    if face.ndim == 2:
        return cv2.cvtColor(face, cv2.COLOR_GRAY2BGR)
    if face.ndim == 3 and face.shape[2] == 3:
        return face
    if face.ndim == 3 and face.shape[2] == 4:
        return cv2.cvtColor(face, cv2.COLOR_BGRA2BGR)
    raise ValueError(f"face must be HxWx3 BGR (or HxW grey / HxWx4 BGRA), got shape {face.shape}")


def lbp_features(
    face_bgr: np.ndarray, *, size: int = LBP_SIZE, points: int = 8, radii: tuple[int, ...] = (1, 2)
) -> np.ndarray:
    """1-D float32 feature vector: per colour channel of HSV and YCrCb (6 channels,
    in the order H, S, V, Y, Cr, Cb), per radius, the normalised histogram of
    `skimage.feature.local_binary_pattern(channel, points, radius, method="uniform")`
    (points+2 bins). Length = 6 * len(radii) * (points + 2).

    Pixels closer than `radius` to the border are left out of that radius's
    histogram: scikit-image samples outside the image as 0, which would add
    codes that describe the padding rather than the face.
    """
    size, points, radii = _check_settings(size, points, radii)
    bgr = _as_bgr(face_bgr)
    h, w = bgr.shape[:2]
    if h == 0 or w == 0:
        raise ValueError(f"face is empty, shape {face_bgr.shape}")
    if (h, w) != (size, size):
        # INTER_AREA when shrinking avoids aliasing, which would itself look like a moire texture.
        interp = cv2.INTER_AREA if h >= size and w >= size else cv2.INTER_LINEAR
        bgr = cv2.resize(bgr, (size, size), interpolation=interp)
    bgr = np.ascontiguousarray(bgr)
    channels = [*cv2.split(cv2.cvtColor(bgr, cv2.COLOR_BGR2HSV)), *cv2.split(cv2.cvtColor(bgr, cv2.COLOR_BGR2YCrCb))]

    n_bins = points + 2
    out = np.empty(feature_length(points, radii), dtype=np.float64)
    i = 0
    for channel in channels:
        for r in radii:
            codes = local_binary_pattern(channel, points, r, method="uniform")[r:-r, r:-r]
            hist = np.bincount(codes.astype(np.intp).ravel(), minlength=n_bins)
            out[i : i + n_bins] = hist / codes.size
            i += n_bins
    return out.astype(np.float32)


def lbp_features_batch(faces: Sequence[np.ndarray], **kw) -> np.ndarray:
    """(N, D) float32 matrix of lbp_features for each face; (0, D) for no faces."""
    rows = [lbp_features(face, **kw) for face in faces]
    if not rows:
        return np.zeros((0, feature_length(kw.get("points", 8), kw.get("radii", (1, 2)))), dtype=np.float32)
    return np.stack(rows)


class LBPClassifier:
    """StandardScaler + class-balanced LogisticRegression over lbp_features.

    Logistic regression rather than the paper's SVM: a linear model suits these
    short histograms (120 values by default), gives probabilities without SVC's
    internal cross-validation, and its fitted state is a handful of arrays, so
    it saves and loads without pickle.
    """

    def __init__(
        self, *, size: int = LBP_SIZE, points: int = 8, radii: tuple[int, ...] = (1, 2), C: float = 1.0, seed: int = 0
    ) -> None:
        self.size, self.points, self.radii = _check_settings(size, points, radii)
        C = float(C)
        if not np.isfinite(C) or C <= 0:
            raise ValueError(f"C must be a positive finite number, got {C!r}")
        self.C = C
        self.seed = int(seed)
        self.pipeline: Pipeline | None = None

    def _features(self, faces: Sequence[np.ndarray]) -> np.ndarray:
        feats = lbp_features_batch(faces, size=self.size, points=self.points, radii=self.radii)
        # float64 so scikit-learn fits in float64 too: the saved float64 parameters then
        # reproduce scores exactly (on float32 input it would keep float32 state).
        return feats.astype(np.float64)

    def _new_pipeline(self) -> Pipeline:
        return Pipeline(
            [
                ("scaler", StandardScaler()),
                (
                    "clf",
                    LogisticRegression(
                        C=self.C, class_weight="balanced", max_iter=5000, random_state=self.seed
                    ),
                ),
            ]
        )

    def fit(self, faces: Sequence[np.ndarray], labels: np.ndarray) -> LBPClassifier:
        """Fit on face crops; labels: 1 = live/real, 0 = attack/fake."""
        y = np.asarray(labels)
        if y.ndim != 1 or len(y) != len(faces):
            raise ValueError(f"labels must be 1-D with one entry per face ({len(faces)}), got shape {y.shape}")
        if not np.isin(y, (0, 1)).all():
            raise ValueError("labels must be 0 (attack) or 1 (live)")
        if len(np.unique(y)) != 2:
            raise ValueError("training needs both live (1) and attack (0) faces")
        pipeline = self._new_pipeline()
        pipeline.fit(self._features(faces), y.astype(np.int64))
        self.pipeline = pipeline
        return self

    def score(self, faces: Sequence[np.ndarray]) -> np.ndarray:
        """(N,) float64 probability that each face is live (class 1)."""
        if self.pipeline is None:
            raise RuntimeError("LBPClassifier is not fitted; call fit() or load() first")
        if len(faces) == 0:
            return np.zeros(0, dtype=np.float64)
        clf = self.pipeline.named_steps["clf"]
        live_col = int(np.flatnonzero(clf.classes_ == 1)[0])
        return self.pipeline.predict_proba(self._features(faces))[:, live_col].astype(np.float64)

    def _params(self) -> dict:
        return {"size": self.size, "points": self.points, "radii": list(self.radii), "C": self.C, "seed": self.seed}

    def save(self, path: pathlib.Path) -> None:
        """Write the fitted model to `path` (.npz contents, no pickle), atomically."""
        if self.pipeline is None:
            raise RuntimeError("LBPClassifier is not fitted; nothing to save")
        path = pathlib.Path(path)
        scaler = self.pipeline.named_steps["scaler"]
        clf = self.pipeline.named_steps["clf"]
        arrays = {
            "format": np.array(_FORMAT),
            "params": np.array(json.dumps(self._params())),
            "scaler_mean": np.asarray(scaler.mean_, dtype=np.float64),
            "scaler_scale": np.asarray(scaler.scale_, dtype=np.float64),
            "coef": np.asarray(clf.coef_, dtype=np.float64),
            "intercept": np.asarray(clf.intercept_, dtype=np.float64),
            "classes": np.asarray(clf.classes_, dtype=np.int64),
        }
        # atomic_path: temp file beside `path`, then os.replace, so a reader never sees a half-written model.
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, **arrays)  # a file object, so numpy does not append ".npz" to the name

    @classmethod
    def load(cls, path: pathlib.Path) -> LBPClassifier:
        """Load a model written by save(). Raises ValueError if the file is not one."""
        path = pathlib.Path(path)
        # Opened outside the try: a missing or unreadable file is an OSError, not a bad model.
        with open(path, "rb") as f:
            try:
                return cls._from_npz(f)
            except (ValueError, TypeError, KeyError, EOFError, OSError, zipfile.BadZipFile, json.JSONDecodeError) as e:
                reason = " ".join(str(e).split()) or type(e).__name__
                raise ValueError(f"{path}: not a valid saved LBP model ({reason})") from None

    @classmethod
    def _from_npz(cls, f) -> LBPClassifier:
        # allow_pickle=False: an object array in the file raises instead of unpickling (running code).
        data = np.load(f, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise ValueError("not an .npz archive")
        with data:
            missing = {"format", "params", *_ARRAY_KEYS} - set(data.files)
            if missing:
                raise ValueError(f"missing {', '.join(sorted(missing))}")
            if data["format"].shape != () or str(data["format"]) != _FORMAT:
                raise ValueError(f"unknown format {str(data['format'])[:60]!r}")
            params = json.loads(str(data["params"]))
            if not isinstance(params, dict) or set(params) != {"size", "points", "radii", "C", "seed"}:
                raise ValueError("bad params")
            arrays = {k: data[k] for k in _ARRAY_KEYS}

        model = cls(**params)
        d = feature_length(model.points, model.radii)
        mean = arrays["scaler_mean"].astype(np.float64, casting="same_kind")
        scale = arrays["scaler_scale"].astype(np.float64, casting="same_kind")
        coef = arrays["coef"].astype(np.float64, casting="same_kind")
        intercept = arrays["intercept"].astype(np.float64, casting="same_kind")
        classes = arrays["classes"]
        if mean.shape != (d,) or scale.shape != (d,) or coef.shape != (1, d) or intercept.shape != (1,):
            raise ValueError(f"array shapes do not match {d} features")
        if classes.dtype.kind not in "iu" or classes.tolist() != [0, 1]:
            raise ValueError("classes must be [0, 1]")
        if not all(np.isfinite(a).all() for a in (mean, scale, coef, intercept)) or (scale <= 0).any():
            raise ValueError("non-finite or non-positive parameters")

        # Restore the fitted estimators by setting exactly the attributes fit() would have set.
        pipeline = model._new_pipeline()
        scaler = pipeline.named_steps["scaler"]
        scaler.mean_, scaler.scale_, scaler.var_ = mean, scale, scale**2
        scaler.n_features_in_, scaler.n_samples_seen_ = d, 0
        clf = pipeline.named_steps["clf"]
        clf.coef_, clf.intercept_, clf.classes_ = coef, intercept, classes.astype(np.int64)
        clf.n_features_in_, clf.n_iter_ = d, np.zeros(1, dtype=np.int32)
        model.pipeline = pipeline
        return model
