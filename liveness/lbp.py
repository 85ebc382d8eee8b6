"""Colour-texture LBP liveness model: uniform LBP histograms of the HSV and YCrCb
channels of a face crop (Boulkenafet, Komulainen and Hadid, "Face anti-spoofing
based on color texture analysis", ICIP 2015), optionally with the colour moments of
those channels (the "chromatic moments" of Wen, Han and Jain, "Face spoof detection
with image distortion analysis", 2015), fed to a linear classifier."""

from __future__ import annotations

import json
import pathlib
import zipfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import cv2
import numpy as np

from liveness.fileio import atomic_path
from liveness.lbp_kernel import _BATCH_FACES, CHANNELS, N_MOMENTS, _as_bgr, _features, _resized

MAX_SIZE = 512  # a saved model asking for more is refused (memory and time per face)
MAX_POINTS = 16
LBP_SIZE = 64  # lbp_features' default: crops are resized to LBP_SIZE x LBP_SIZE first


MAX_SYNTHETIC = 1.0  # re-captures never weigh more than the set-up's real attacks


def _check_synthetic(value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)) or not 0 <= value <= MAX_SYNTHETIC:
        raise ValueError(f"synthetic must be a number in 0..{MAX_SYNTHETIC:g}, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class LBPSettings:
    """What LBPClassifier computes from a crop, and its regularisation.

    DEFAULT_SETTINGS was chosen leave-one-subject-out on the shared data (compare.py):
    four-point LBP (every sample on the pixel grid, so no interpolation: cheap at a
    large size) at 160x160 sees the fine screen texture that 64x64 blurs away, and the
    colour moments see the screen's gamut and white point. V's texture repeats Y's
    (for skin, both follow the red channel) and radius 2 sits between 1 and 4: leaving
    both out cost no accuracy and saves time (README, "Model comparison", has the
    figures). CLASSIC_SETTINGS is the paper's 8-point LBP of all six channels at 64x64,
    without moments.

    For set-ups the model never saw (issue 11): every crop is brought to 80x80 with an
    area filter (`area`), a resolution most crops reach, so that a small, blurry attack
    crop and a large, sharp live crop no longer differ by size alone (the shared data's
    strongest shortcut; radius 2 at 80 px sees what radius 4 saw at 160); `augment`
    adds that many randomly re-coloured, re-exposed, blurred, shrunk and re-encoded
    copies of each training crop; `balance="group"` gives every (set-up, class) cell of
    the training data the same total weight, so that one large set-up does not set the
    boundary. `synthetic` adds one simulated screen re-capture of each live training crop
    (`recapture_face`) as an attack, weighing that fraction of its set-up's attacks: it
    sharpens the ranking on new set-ups but moves their scores: worse uncalibrated, and with
    the one-camera calibration (calibrate.py) better on the worst set-up only, so it is off
    by default. Measured leave-one-set-up-out: README, "Model comparison".
    """

    size: int = 80
    points: int = 4
    radii: tuple[int, ...] = (1, 2)
    channels: tuple[str, ...] = ("H", "S", "Y", "Cr", "Cb")
    moments: bool = True
    C: float = 0.01
    area: bool = True  # resize with an area filter (INTER_AREA) instead of bilinear
    augment: int = 1  # augmented copies of each training crop (training only)
    balance: str = "group"  # "group": each (group, class) weighs the same; "class": classes only
    synthetic: float = 0.0  # weight of simulated re-captures of live crops, as attacks (training only)

    def __post_init__(self) -> None:
        _check_synthetic(self.synthetic)  # a bad weight fails here, not deep in training

    def feature_kwargs(self) -> dict:
        """The keyword arguments of lbp_features_batch these settings call it with."""
        return {"size": self.size, "points": self.points, "radii": self.radii, "channels": self.channels,
                "moments": self.moments, "area": self.area}

    def feature_key(self) -> tuple:
        """Equal for any two settings whose features are equal (training-only fields left
        out): the key under which features are cached, so candidates share them."""
        return tuple(sorted(self.feature_kwargs().items()))

    def describe(self) -> str:
        """One line for logs and reports, e.g. '4-point uniform LBP, radii 1/4, H S Y Cr Cb, 160x160 ...'."""
        return (
            f"{self.points}-point uniform LBP, radii {'/'.join(map(str, self.radii))}, {' '.join(self.channels)}, "
            f"{self.size}x{self.size}{' (area filter)' if self.area else ''}"
            f"{' + colour moments' if self.moments else ''}, logistic regression C={self.C:g}"
            f"{f', {self.augment} augmented copies' if self.augment else ''}"
            f"{', group-balanced' if self.balance == 'group' else ''}"
            f"{f', synthetic re-captures weighing {self.synthetic:g}' if self.synthetic else ''}"
        )


DEFAULT_SETTINGS = LBPSettings()
CLASSIC_SETTINGS = LBPSettings(
    size=LBP_SIZE, points=8, radii=(1, 2), channels=CHANNELS, moments=False, C=0.003, area=False, augment=0, balance="class"
)
# The default plus simulated re-captures (compare.py's "lbp-synthetic", train.py --synthetic-attacks):
# a candidate for models that will be calibrated for their camera (README, "Model comparison").
SYNTHETIC_SETTINGS = LBPSettings(synthetic=0.1)
# The default before the leave-one-set-up-out work on all shared set-ups (compare.py's "lbp-previous").
PREVIOUS_SETTINGS = LBPSettings(size=160, radii=(1, 4), area=False, augment=0, balance="class")
BALANCES = ("group", "class")
_AUGMENT_CHUNK = 32  # crops augmented at once (memory: a chunk of possibly large crops, not the dataset)

# Written into every saved model; load() refuses files without it.
_FORMAT = "liveness.lbp.LBPClassifier/4"  # /4 added "synthetic"; /3 "area", "augment", "balance"; /2 "channels", "moments"
_OLD_FORMATS = ("liveness.lbp.LBPClassifier/1", "liveness.lbp.LBPClassifier/2", "liveness.lbp.LBPClassifier/3")
_PRE_AREA_FORMATS = _OLD_FORMATS[:2]
_ARRAY_KEYS = ("scaler_mean", "scaler_scale", "coef", "intercept", "classes")




def feature_length(
    points: int = 8, radii: Sequence[int] = (1, 2), moments: bool = False, channels: Sequence[str] = CHANNELS
) -> int:
    """Length of the vector lbp_features returns for these settings (plus the colour
    moments, when LBPClassifier adds them)."""
    return len(channels) * len(radii) * (points + 2) + (N_MOMENTS if moments else 0)


def _check_channels(channels: Sequence[str]) -> tuple[str, ...]:
    if isinstance(channels, str):
        raise ValueError(f"channels must be a sequence of names, got the string {channels!r}")
    channels = tuple(channels)
    if not channels or len(set(channels)) != len(channels) or not set(channels) <= set(CHANNELS):
        raise ValueError(f"channels must be distinct names from {', '.join(CHANNELS)}, got {channels!r}")
    return channels


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


def lbp_features(
    face_bgr: np.ndarray,
    *,
    size: int = LBP_SIZE,
    points: int = 8,
    radii: tuple[int, ...] = (1, 2),
    channels: tuple[str, ...] = CHANNELS,
) -> np.ndarray:
    """1-D float32 feature vector: per colour channel of HSV and YCrCb (by default all
    six, in the order H, S, V, Y, Cr, Cb), per radius, the normalised histogram of
    `skimage.feature.local_binary_pattern(channel, points, radius, method="uniform")`
    (points+2 bins). Length = len(channels) * len(radii) * (points + 2).

    Pixels closer than `radius` to the border are left out of that radius's
    histogram: scikit-image samples outside the image as 0, which would add
    codes that describe the padding rather than the face.

    The codes come from a vectorised re-implementation of scikit-image's (same
    sample points, same float64 interpolation in the same order, so the same codes:
    see "uniform LBP, vectorised" below), about ten times faster than calling it.
    """
    size, points, radii = _check_settings(size, points, radii)
    return _features([_resized(face_bgr, size)], size, points, radii, _check_channels(channels), False)[0]


def lbp_features_batch(
    faces: Sequence[np.ndarray],
    *,
    size: int = LBP_SIZE,
    points: int = 8,
    radii: tuple[int, ...] = (1, 2),
    channels: tuple[str, ...] = CHANNELS,
    moments: bool = False,
    area: bool = False,
) -> np.ndarray:
    """(N, D) float32 matrix of lbp_features for each face; (0, D) for no faces.
    With `area`, faces are resized with an area filter instead of bilinearly.
    With `moments`, each row ends with the N_MOMENTS colour moments of the same
    resized crop's HSV and YCrCb channels (all six, whatever `channels` says).

    Row i equals lbp_features(faces[i], ...) exactly (its first D values, with
    moments). Every face is validated before any work; the colour conversion then
    runs on up to _BATCH_FACES faces at once and the LBP on blocks of _BLOCK_IMAGES
    channel images (two faces: larger blocks fall out of the CPU cache and get
    slower per face, not faster).
    """
    faces = list(faces)
    if not faces:
        return np.zeros((0, feature_length(points, radii, moments, channels)), dtype=np.float32)
    size, points, radii = _check_settings(size, points, radii)
    channels = _check_channels(channels)
    crops = [_resized(face, size, bool(area)) for face in faces]  # validates every face before any work
    rows = [
        _features(crops[i : i + _BATCH_FACES], size, points, radii, channels, moments)
        for i in range(0, len(crops), _BATCH_FACES)
    ]
    return np.concatenate(rows, axis=0)


def augment_face(face_bgr: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A randomly changed copy of a BGR crop, as another camera might have taken it:
    gamma 0.7-1.4, per-channel gains 0.85-1.15 (white point) times 0.7-1.3 (exposure);
    half the time shrunk to 48-160 px, 30% Gaussian blur (sigma 0.3-1.2), half the
    time re-encoded as JPEG (quality 50-95)."""
    # In place where the dtype allows (a large crop's float copies are the cost); the
    # same operations, in the same order and dtypes, as the plain expressions.
    img = _as_bgr(face_bgr).astype(np.float32)
    img /= 255.0
    np.power(img, rng.uniform(0.7, 1.4), out=img)
    lit = img * rng.uniform(0.85, 1.15, 3)  # float64 from here on
    del img
    lit *= rng.uniform(0.7, 1.3)
    lit *= 255
    img = np.clip(lit, 0, 255, out=lit).astype(np.uint8)
    del lit
    if rng.random() < 0.5:
        side = int(rng.uniform(48, 160))
        img = cv2.resize(img, (side, side), interpolation=cv2.INTER_AREA)
    if rng.random() < 0.3:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.3, 1.2))
    if rng.random() < 0.5:
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(rng.uniform(50, 95))])
        if ok:
            img = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return img


def recapture_face(face_bgr: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A live crop as a phone or monitor replay of it, filmed again, might look: the
    screen's tone curve (gamma 0.8-1.2, black raised by 0.04-0.15, white lowered by up to
    0.1) and white point (a blue or a pink cast), half the time a soft glare spot, then
    the capture's damage: shrunk to 35-70% and back, blurred (sigma 0.4-1), JPEG at
    quality 50-85. At the crop's own size. (A moire grating, also tried, hurt: docs/new-setups-research.md.)"""
    img = _as_bgr(face_bgr)
    h, w = img.shape[:2]
    x = img.astype(np.float32) / 255.0
    black, white = rng.uniform(0.04, 0.15), rng.uniform(0.0, 0.1)
    x = black + (1 - black - white) * np.power(x, rng.uniform(0.8, 1.2))
    u = rng.uniform(0.05, 0.2)
    gains = [1 + u / 2, 1 - u, 1 + 0.75 * u] if rng.random() < 0.5 else [1 + u, 1, 1 - 0.7 * u]  # BGR: pink, blue
    x *= np.array(gains, np.float32) * 255
    if rng.random() < 0.5:
        cx, cy, spread, level = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0.15, 0.4) * max(h, w), rng.uniform(15, 50)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        x += (level * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * spread**2)))[..., None]
    out = np.clip(x, 0, 255).astype(np.uint8)
    shrink = rng.uniform(0.35, 0.70)
    small = (max(8, round(w * shrink)), max(8, round(h * shrink)))
    out = cv2.resize(cv2.resize(out, small, interpolation=cv2.INTER_AREA), (w, h), interpolation=cv2.INTER_LINEAR)
    out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.4, 1.0))
    ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(rng.uniform(50, 86))])
    return cv2.imdecode(buf, cv2.IMREAD_COLOR) if ok else out


def balanced_weights(labels: np.ndarray, groups: np.ndarray | None) -> np.ndarray:
    """Sample weights, mean 1: every (group, class) cell of the data weighs the same in
    total (without groups: every class), so neither a large set-up nor the majority
    class sets the boundary."""
    y = np.asarray(labels)
    cells = y if groups is None else np.char.add(np.asarray(groups, dtype=str), np.where(y == 1, "|1", "|0"))
    _, inverse, counts = np.unique(cells, return_inverse=True, return_counts=True)
    w = 1.0 / counts[inverse]
    return w * (len(w) / w.sum())


class LBPClassifier:
    """Colour-LBP features -> standardised -> class-balanced logistic regression.

    A small scikit-learn-style estimator: `__init__` stores the settings, `fit` returns
    self, fitted state ends in `_` and is plain NumPy (`mean_`, `scale_`, `coef_`,
    `intercept_`), so scoring and saving never touch scikit-learn's private attributes.
    scikit-learn only fits it. Logistic regression rather than the paper's SVM: a linear
    model suits these short vectors, gives probabilities directly, and its fitted
    state is a handful of arrays that save and load without pickle.
    """

    def __init__(
        self,
        *,
        size: int = DEFAULT_SETTINGS.size,
        points: int = DEFAULT_SETTINGS.points,
        radii: tuple[int, ...] = DEFAULT_SETTINGS.radii,
        channels: tuple[str, ...] = DEFAULT_SETTINGS.channels,
        moments: bool = DEFAULT_SETTINGS.moments,
        C: float = DEFAULT_SETTINGS.C,
        area: bool = DEFAULT_SETTINGS.area,
        augment: int = DEFAULT_SETTINGS.augment,
        balance: str = DEFAULT_SETTINGS.balance,
        synthetic: float = DEFAULT_SETTINGS.synthetic,
        seed: int = 0,
    ) -> None:
        self.size, self.points, self.radii = _check_settings(size, points, radii)
        # A model file must not be able to exhaust the machine: bound what it can ask for.
        if self.size > MAX_SIZE or self.points > MAX_POINTS:
            raise ValueError(f"size must be <= {MAX_SIZE} and points <= {MAX_POINTS}, got {self.size} and {self.points}")
        self.channels = _check_channels(channels)
        if not isinstance(moments, (bool, np.bool_)):
            raise ValueError(f"moments must be True or False, got {moments!r}")
        self.moments = bool(moments)
        if isinstance(C, bool) or not isinstance(C, (int, float, np.floating, np.integer)) or not np.isfinite(C) or C <= 0:
            raise ValueError(f"C must be a positive finite number, got {C!r}")
        self.C = float(C)
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise ValueError(f"seed must be an int, got {seed!r}")
        self.seed = int(seed)
        if not isinstance(area, (bool, np.bool_)):
            raise ValueError(f"area must be True or False, got {area!r}")
        if isinstance(augment, bool) or not isinstance(augment, (int, np.integer)) or not 0 <= augment <= 10:
            raise ValueError(f"augment must be an int in 0..10, got {augment!r}")
        if balance not in BALANCES:
            raise ValueError(f"balance must be one of {', '.join(BALANCES)}, got {balance!r}")
        self.area, self.augment, self.balance = bool(area), int(augment), balance
        self.synthetic = _check_synthetic(synthetic)

    @classmethod
    def from_settings(cls, settings: LBPSettings = DEFAULT_SETTINGS, *, seed: int = 0) -> LBPClassifier:
        return cls(**asdict(settings), seed=seed)

    @property
    def n_features(self) -> int:
        return feature_length(self.points, self.radii, self.moments, self.channels)

    def features(self, faces: Sequence[np.ndarray]) -> np.ndarray:
        """(N, D) float64 feature matrix of BGR crops (any size)."""
        return lbp_features_batch(faces, **self.settings().feature_kwargs()).astype(np.float64)

    def augmented_features(self, faces: Sequence[np.ndarray]) -> np.ndarray:
        """(augment * N, D) features of `augment` random copies of each face (copy k of
        face i in row k * N + i), from the model's seed: the same faces give the same rows."""
        rng = np.random.default_rng(self.seed)
        n = len(faces)
        rows = []
        for _ in range(self.augment):
            # In chunks, in the same order (so the same random draws): memory holds a chunk of
            # copies, not a copy of the dataset.
            for start in range(0, n, _AUGMENT_CHUNK):
                rows.append(self.features([augment_face(faces[i], rng) for i in range(start, min(n, start + _AUGMENT_CHUNK))]))
        return np.concatenate(rows) if rows else np.zeros((0, self.n_features))

    def synthetic_features(self, faces: Sequence[np.ndarray], idx: Sequence[int] | None = None) -> np.ndarray:
        """(N, D) features of one simulated screen re-capture of each of faces[idx] (default:
        every face; pass the live ones), from the model's seed; (0, D) when `synthetic` is 0.
        Faces are read a chunk at a time, so `faces` may read them lazily."""
        order = list(range(len(faces))) if idx is None else [int(i) for i in idx]
        if not self.synthetic or not order:
            return np.zeros((0, self.n_features))
        rng = np.random.default_rng([self.seed, 1])  # a stream of its own: the augmented copies keep theirs
        rows = [self.features([recapture_face(faces[i], rng) for i in order[start:start + _AUGMENT_CHUNK]])
                for start in range(0, len(order), _AUGMENT_CHUNK)]
        return np.concatenate(rows)

    def fit(self, faces: Sequence[np.ndarray], labels: np.ndarray, groups: np.ndarray | None = None) -> LBPClassifier:
        """Fit on face crops; labels: 1 = live, 0 = attack; groups: the recording set-up
        of each crop (for balance="group"; without them classes are balanced)."""
        return self.fit_features(self.features(faces), labels, groups, self.augmented_features(faces),
                                 self.synthetic_features(faces, np.flatnonzero(np.asarray(labels) == 1)))

    def fit_features(
        self, x: np.ndarray, labels: np.ndarray, groups: np.ndarray | None = None, x_aug: np.ndarray | None = None,
        x_syn: np.ndarray | None = None,
    ) -> LBPClassifier:
        """Fit on precomputed `features()` rows (cross-validation computes them once),
        plus `augmented_features()` rows of the same faces in x_aug (augment copies,
        aligned as that method returns them) and `synthetic_features()` rows of the live
        faces in x_syn (one per live row of x, in order), used when `synthetic` > 0."""
        from sklearn.linear_model import LogisticRegression

        y = np.asarray(labels)
        x = np.asarray(x)
        if y.ndim != 1 or len(y) != len(x):
            raise ValueError(f"labels must be 1-D with one entry per face ({len(x)}), got shape {y.shape}")
        if not np.isin(y, (0, 1)).all():
            raise ValueError("labels must be 0 (attack) or 1 (live)")
        if len(np.unique(y)) != 2:
            raise ValueError("training needs both live (1) and attack (0) faces")
        if groups is not None and len(groups) != len(x):
            raise ValueError(f"groups must have one entry per face ({len(x)}), got {len(groups)}")
        w = balanced_weights(y, groups if self.balance == "group" else None)
        parts = [x]
        if x_aug is not None and len(x_aug):
            x_aug = np.asarray(x_aug)
            if len(x_aug) % len(x) or x_aug.shape[1:] != x.shape[1:]:
                raise ValueError(f"x_aug must hold whole copies of the {len(x)} rows of x, got shape {x_aug.shape}")
            k = len(x_aug) // len(x)
            parts, y, w = [x, x_aug], np.tile(y, k + 1), np.tile(w, k + 1)
        if self.synthetic and x_syn is not None and len(x_syn):
            labels_live = np.asarray(labels) == 1
            x_syn = np.asarray(x_syn)
            if x_syn.shape != (int(labels_live.sum()), x.shape[1]):
                raise ValueError(f"x_syn must hold one row per live face ({int(labels_live.sum())}), got shape {x_syn.shape}")
            # A set-up's re-captures together weigh `synthetic` x its attacks (all copies):
            # (set-up, class) cells weigh the same, so each takes its live source's weight.
            copies = len(y) // len(x)
            parts.append(x_syn)
            y = np.concatenate([y, np.zeros(len(x_syn), y.dtype)])
            w = np.concatenate([w, self.synthetic * copies * w[: len(x)][labels_live]])
        # One (rows, D) float64 matrix, standardised in place: memory holds the training
        # matrix once, not the rows, their concatenation and a standardised copy.
        z = np.concatenate(parts, dtype=np.float64)
        mean = z.mean(axis=0)
        z -= mean
        scale = np.sqrt(np.einsum("ij,ij->j", z, z) / len(z))  # the population std, without a squared copy
        scale[scale == 0] = 1.0  # a constant feature: leave it unscaled, as StandardScaler does
        z /= scale
        clf = LogisticRegression(C=self.C, max_iter=5000, random_state=self.seed)
        clf.fit(z, y.astype(np.int64), sample_weight=w)
        self.mean_, self.scale_ = mean, scale
        # Binary LogisticRegression: coef_ speaks for classes_[1], which is 1 (live) here.
        self.coef_ = clf.coef_[0].astype(np.float64)
        self.intercept_ = float(clf.intercept_[0])
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "coef_"):
            raise RuntimeError("LBPClassifier is not fitted; call fit() or load() first")

    def decision_function_features(self, x: np.ndarray) -> np.ndarray:
        self._check_fitted()
        return ((np.asarray(x, dtype=np.float64) - self.mean_) / self.scale_) @ self.coef_ + self.intercept_

    def score_live_features(self, x: np.ndarray) -> np.ndarray:
        """(N,) probability of live from precomputed features."""
        return 1.0 / (1.0 + np.exp(-self.decision_function_features(x)))

    def score_live(self, faces: Sequence[np.ndarray]) -> np.ndarray:
        """(N,) float64 probability that each face is live."""
        self._check_fitted()
        if len(faces) == 0:
            return np.zeros(0, dtype=np.float64)
        return self.score_live_features(self.features(faces))

    def predict_proba(self, faces: Sequence[np.ndarray]) -> np.ndarray:
        """(N, 2) probabilities, columns [attack, live], as scikit-learn orders classes 0, 1."""
        live = self.score_live(faces)
        return np.stack([1.0 - live, live], axis=1)

    def params(self) -> dict:
        return {
            "size": self.size, "points": self.points, "radii": list(self.radii), "channels": list(self.channels),
            "moments": self.moments, "C": self.C, "area": self.area, "augment": self.augment,
            "balance": self.balance, "synthetic": self.synthetic, "seed": self.seed,
        }

    def settings(self) -> LBPSettings:
        return LBPSettings(self.size, self.points, self.radii, self.channels, self.moments, self.C, self.area, self.augment,
                           self.balance, self.synthetic)

    def describe(self) -> str:
        return self.settings().describe()

    def save(self, path: pathlib.Path) -> None:
        """Write the fitted model to `path` (.npz contents, no pickle), atomically."""
        self._check_fitted()
        arrays = {
            "format": np.array(_FORMAT),
            "params": np.array(json.dumps(self.params())),
            "scaler_mean": self.mean_,
            "scaler_scale": self.scale_,
            "coef": self.coef_[None, :],
            "intercept": np.array([self.intercept_]),
            "classes": np.array([0, 1], dtype=np.int64),
        }
        # atomic_path: temp file beside `path`, then os.replace, so a reader never sees a half-written model.
        with atomic_path(pathlib.Path(path)) as tmp, open(tmp, "wb") as f:
            np.savez(f, **arrays)  # a file object, so numpy does not append ".npz" to the name

    @classmethod
    def load(cls, path: pathlib.Path) -> LBPClassifier:
        """Load a model written by save(). Raises ValueError if the file is not one."""
        path = pathlib.Path(path)
        # Opened outside the try: a missing or unreadable file is an OSError, not a bad model.
        with open(path, "rb") as f:
            try:
                return cls._from_npz(f)
            except (ValueError, TypeError, KeyError, EOFError, OSError, zipfile.BadZipFile, json.JSONDecodeError, RecursionError) as e:
                reason = " ".join(str(e).split())[:200] or type(e).__name__
                raise ValueError(f"{path.name}: not a valid saved LBP model ({reason})") from None

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
            fmt = str(data["format"])
            if data["format"].shape != () or fmt not in (_FORMAT, *_OLD_FORMATS):
                raise ValueError(f"unknown format {fmt[:60]!r}")
            params = json.loads(str(data["params"])[:10_000])
            if isinstance(params, dict) and fmt in _PRE_AREA_FORMATS:
                params.setdefault("channels", list(CHANNELS))  # /1 models used all six channels
                params.setdefault("moments", False)  # and no colour moments
                params.setdefault("area", False)  # /1 and /2 models: bilinear resize,
                params.setdefault("augment", 0)  # no augmentation,
                params.setdefault("balance", "class")  # classes balanced only
            if isinstance(params, dict) and fmt in _OLD_FORMATS:
                params.setdefault("synthetic", 0.0)  # before /4: no synthetic attacks
            keys = {"size", "points", "radii", "channels", "moments", "C", "area", "augment", "balance", "synthetic", "seed"}
            if not isinstance(params, dict) or set(params) != keys:
                raise ValueError("bad params")
            if not isinstance(params["radii"], list) or not isinstance(params["channels"], list):
                raise ValueError("bad params")
            arrays = {k: data[k] for k in _ARRAY_KEYS}

        model = cls(**params)
        d = model.n_features
        try:
            mean, scale, coef, intercept = (
                arrays[k].astype(np.float64, casting="same_kind") for k in ("scaler_mean", "scaler_scale", "coef", "intercept")
            )
        except TypeError:
            raise ValueError("parameters are not floating-point arrays") from None
        classes = arrays["classes"]
        if mean.shape != (d,) or scale.shape != (d,) or coef.shape != (1, d) or intercept.shape != (1,):
            raise ValueError(f"array shapes do not match {d} features")
        if classes.dtype.kind not in "iu" or classes.tolist() != [0, 1]:
            raise ValueError("classes must be [0, 1]")
        if not all(np.isfinite(a).all() for a in (mean, scale, coef, intercept)) or (scale <= 0).any():
            raise ValueError("non-finite or non-positive parameters")
        model.mean_, model.scale_, model.coef_, model.intercept_ = mean, scale, coef[0], float(intercept[0])
        return model
