"""Reference scorer for the colour-LBP model exported as JSON (`export.py --format
lbp-json`): plain NumPy, with OpenCV for the resize and the colour conversions only.

Written to be read and ported, not to be fast: this file imports nothing from the
project, so it can be copied next to the JSON file onto an edge device, and every
step below is one a port must reproduce. The format is described in the README
("Explain and export"); in short, for a BGR uint8 face crop:

1. resize to size x size, unless it already is: with OpenCV's area filter (INTER_AREA)
   when `resize` is "area", else bilinearly (INTER_LINEAR);
2. convert to HSV (OpenCV 8-bit: H 0-179) and to YCrCb (OpenCV 8-bit);
3. for each channel in `channels`, for each radius in `radii`: the uniform LBP code
   (scikit-image `local_binary_pattern(channel, points, radius, "uniform")`) of every
   pixel at least `radius` from the border, and the histogram of the codes 0 ..
   points + 1 divided by the number of those pixels;
4. with `moments`: over every `moment_step`-th pixel of every `moment_step`-th row,
   with x = value / 255, the mean, standard deviation and skewness of S, V, Y, Cr, Cb
   (15 values: 5 means, 5 standard deviations, 5 skewnesses; skewness 0 when the
   standard deviation is below 1e-6), then the mean of cos and of sin of the hue
   angle H * 2 pi / 180;
5. the vector rounded to float32, then z = sum(coef * (x - mean) / scale) + intercept,
   and the probability that the face is live is 1 / (1 + exp(-z));
6. live when that probability >= threshold.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

FORMAT = "liveness-lbp/1"
CHANNELS = ("H", "S", "V", "Y", "Cr", "Cb")  # the names `channels` may use; moments use S V Y Cr Cb and H
MOMENT_EPS = 1e-6
RESIZE = ("bilinear", "area")  # OpenCV INTER_LINEAR, INTER_AREA


def uniform_bins(points: int) -> np.ndarray:
    """code -> uniform bin for codes 0 .. 2**points - 1: the number of 1 bits when the
    bits 0 .. points-1 change value at most twice along the way, else points + 1."""
    codes = np.arange(2**points, dtype=np.int64)
    bits = (codes[:, None] >> np.arange(points)) & 1
    changes = np.abs(np.diff(bits, axis=1)).sum(axis=1)
    return np.where(changes <= 2, bits.sum(axis=1), points + 1)


def lbp_histogram(channel: np.ndarray, points: int, radius: int) -> np.ndarray:
    """(points + 2,) float64: normalised histogram of the uniform LBP codes of a square
    uint8 image over the pixels at least `radius` from the border.

    Sample point p lies at (row + rp, col + cp), rp = round(-R sin(2 pi p / P), 5),
    cp = round(R cos(2 pi p / P), 5), interpolated bilinearly in float64 exactly as
    scikit-image does (same operations in the same order, which decides ties); bit p
    is 1 when the sample >= the centre pixel."""
    size = channel.shape[0]
    image = channel.astype(np.float64)
    angles = 2 * np.pi * np.arange(points, dtype=np.float64) / points
    rp = np.round(-float(radius) * np.sin(angles), 5)
    cp = np.round(float(radius) * np.cos(angles), 5)
    k = np.arange(radius, size - radius, dtype=np.float64)  # interior coordinates
    inner = slice(radius, size - radius)
    centre = image[inner, inner]

    def shifted(dy: int, dx: int) -> np.ndarray:  # image[row + dy, col + dx] over the interior
        return image[radius + dy : size - radius + dy, radius + dx : size - radius + dx]

    codes = np.zeros(centre.shape, dtype=np.int64)
    for p in range(points):
        r, c = k + rp[p], k + cp[p]
        # The four neighbours are at the same offsets from every interior pixel (|rp|,
        # |cp| <= radius); the weights dr, dc differ in their last bits per row / column.
        r0, r1 = int(np.floor(r[0]) - k[0]), int(np.ceil(r[0]) - k[0])
        c0, c1 = int(np.floor(c[0]) - k[0]), int(np.ceil(c[0]) - k[0])
        if r0 == r1 and c0 == c1:  # on the pixel grid: (1 - 0) * a + 0 * b is a itself
            value = shifted(r0, c0)
        else:
            dr = (r - np.floor(r))[:, None]
            dc = (c - np.floor(c))[None, :]
            top = (1 - dc) * shifted(r0, c0) + dc * shifted(r0, c1)
            bottom = (1 - dc) * shifted(r1, c0) + dc * shifted(r1, c1)
            value = (1 - dr) * top + dr * bottom
        codes |= (value >= centre).astype(np.int64) << p
    hist = np.bincount(uniform_bins(points)[codes].ravel(), minlength=points + 2).astype(np.float64)
    return hist / centre.size


def colour_moments(planes: dict[str, np.ndarray], step: int) -> np.ndarray:
    """(17,) float64: mean, std, skewness of S, V, Y, Cr, Cb (values / 255), then the
    mean cos and sin of the hue angle, over every step-th pixel of every step-th row.
    Sums over each plane's 256-bin histogram: exact, so a flat plane has std 0."""
    values = np.arange(256, dtype=np.float64)
    x = values / 255.0
    means, stds, skews = [], [], []
    for name in ("S", "V", "Y", "Cr", "Cb"):
        sample = planes[name][::step, ::step]
        freq = np.bincount(sample.ravel(), minlength=256) / sample.size
        e1, e2, e3 = freq @ x, freq @ x**2, freq @ x**3
        std = np.sqrt(max(e2 - e1**2, 0.0))
        third = e3 - 3 * e1 * e2 + 2 * e1**3
        means.append(e1)
        stds.append(std)
        skews.append(third / std**3 if std > MOMENT_EPS else 0.0)
    sample = planes["H"][::step, ::step]
    freq = np.bincount(sample.ravel(), minlength=256) / sample.size
    angle = values * (2 * np.pi / 180)
    return np.array(means + stds + skews + [freq @ np.cos(angle), freq @ np.sin(angle)], dtype=np.float64)


def features(face_bgr: np.ndarray, recipe: dict) -> np.ndarray:
    """(D,) float32 feature vector of one BGR uint8 crop for the model's `features` recipe."""
    face = np.asarray(face_bgr)
    if face.dtype != np.uint8 or face.ndim != 3 or face.shape[2] != 3 or 0 in face.shape:
        raise ValueError(f"a face must be a non-empty HxWx3 uint8 BGR image, got {face.shape} {face.dtype}")
    size = recipe["size"]
    if face.shape[:2] != (size, size):
        filt = cv2.INTER_AREA if recipe["resize"] == "area" else cv2.INTER_LINEAR
        face = cv2.resize(face, (size, size), interpolation=filt)
    hsv = cv2.cvtColor(face, cv2.COLOR_BGR2HSV)
    ycrcb = cv2.cvtColor(face, cv2.COLOR_BGR2YCrCb)
    planes = dict(zip(CHANNELS, [hsv[..., i] for i in range(3)] + [ycrcb[..., i] for i in range(3)]))
    parts = [lbp_histogram(planes[c], recipe["points"], r) for c in recipe["channels"] for r in recipe["radii"]]
    if recipe["moments"]:
        parts.append(colour_moments(planes, recipe["moment_step"]))
    return np.concatenate(parts).astype(np.float32)


def load(path: str | Path) -> dict:
    """The exported model as a dict, checked: format, recipe, array lengths, labels."""
    model = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(model, dict) or model.get("format") != FORMAT:
        raise ValueError(f"{path}: not a {FORMAT} file")
    recipe = model["features"]
    if recipe.get("resize") not in RESIZE or not set(recipe["channels"]) <= set(CHANNELS):
        raise ValueError(f"{path}: unknown resize filter or channels in {recipe}")
    n = recipe["length"]
    expected = len(recipe["channels"]) * len(recipe["radii"]) * (recipe["points"] + 2) + (17 if recipe["moments"] else 0)
    if n != expected or not all(len(model["scaler"][k]) == n for k in ("mean", "scale")) or len(model["coef"]) != n:
        raise ValueError(f"{path}: the arrays do not have the recipe's {expected} features")
    if model["live_label"] not in model["labels"] or not 0.0 <= float(model["threshold"]) <= 1.0:
        raise ValueError(f"{path}: bad labels or threshold")
    return model


class ReferenceScorer:
    """Scores BGR crops with an exported colour-LBP model (a path or the loaded dict)."""

    def __init__(self, model: str | Path | dict) -> None:
        self.model = model if isinstance(model, dict) else load(model)
        self.recipe = self.model["features"]
        self.mean = np.asarray(self.model["scaler"]["mean"], np.float64)
        self.scale = np.asarray(self.model["scaler"]["scale"], np.float64)
        self.coef = np.asarray(self.model["coef"], np.float64)
        self.intercept = float(self.model["intercept"])
        self.threshold = float(self.model["threshold"])
        self.labels = list(self.model["labels"])
        self.live_label = self.model["live_label"]

    def score(self, faces_bgr: Sequence[np.ndarray]) -> np.ndarray:
        """(N,) float64 probability that each face is live."""
        if len(faces_bgr) == 0:
            return np.zeros(0, np.float64)
        x = np.stack([features(f, self.recipe) for f in faces_bgr]).astype(np.float64)
        z = ((x - self.mean) / self.scale) @ self.coef + self.intercept
        return 1.0 / (1.0 + np.exp(-z))

    def decide(self, scores: np.ndarray) -> list[str]:
        attack = next(label for label in self.labels if label != self.live_label)
        return [self.live_label if s >= self.threshold else attack for s in np.asarray(scores)]
