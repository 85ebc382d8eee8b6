"""What a liveness model looks at: Grad-CAM for the CNNs, occlusion sensitivity for
any scorer (the colour-LBP one included), heatmap overlays and grid images.

A debugging tool first: the shared data holds shortcuts (a play button, a glare spot,
a camera's colour cast) that a model can learn instead of liveness, and a heatmap
that sits on a corner or the frame's edge shows it.

Maps are float arrays of the crop's height and width. `gradcam` returns them scaled to
0..1 per face; `occlusion` returns the drop in the score (signed, in score units), which
`normalise` scales to 0..1 for display.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np

from liveness.fileio import write_image

# Occlusion defaults, as fractions of the crop's shorter side: a patch about the size
# of an eye or the mouth, moved by half its size.
PATCH_FRACTION = 0.2
STRIDE_FRACTION = 0.1
OCCLUSION_BATCH = 64  # occluded copies per score_fn call
GREY = 127  # the occluding patch's value (BGR)

DEFAULT_ALPHA = 0.45  # heatmap weight in overlays
DEFAULT_COLORMAP = cv2.COLORMAP_JET
TILE_SIZE = 128  # grid images: every tile is resized to this square
_CONV_TYPES = ("Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Conv2DTranspose")


# --- Grad-CAM ----------------------------------------------------------------


def _spatial(layer) -> tuple[int, int] | None:
    shape = getattr(layer, "output", None)
    shape = getattr(shape, "shape", None)
    return tuple(shape[1:3]) if shape is not None and len(shape) == 4 else None


def _is_model(layer) -> bool:
    return hasattr(layer, "layers") and hasattr(layer, "inputs")


def _last_feature_layer(model) -> object | None:
    """The layer Grad-CAM reads in `model` (not descending into nested models): the last
    layer whose 4-D output has the spatial size of the last convolution's, so the
    convolution's activation and normalisation count, a pooling after it does not."""
    layers = [l for l in model.layers if not _is_model(l)]
    convs = [i for i, l in enumerate(layers) if type(l).__name__ in _CONV_TYPES]
    if not convs:
        return None
    size = _spatial(layers[convs[-1]])
    pick = convs[-1]
    for i in range(convs[-1] + 1, len(layers)):
        if _spatial(layers[i]) != size:
            break
        pick = i
    return layers[pick]


def find_target_layer(model) -> tuple[object, object | None]:
    """(layer, backbone): the layer whose output Grad-CAM weighs, and the nested model it
    sits in (None when it is a layer of `model` itself). The last convolution wins:
    a backbone after the model's own convolutions is searched first."""
    for layer in reversed(model.layers):
        if _is_model(layer):
            inner = _last_feature_layer(layer)
            if inner is not None:
                return inner, layer
        elif type(layer).__name__ in _CONV_TYPES:
            break
    own = _last_feature_layer(model)
    if own is None:
        raise ValueError(f"model {model.name!r} has no convolution layer for Grad-CAM")
    return own, None


class _GradCamRunner:
    """Calls the model and returns (feature maps, probabilities) in one forward pass."""

    def __init__(self, model, layer_name: str | None = None) -> None:
        import keras

        self.model = model
        if layer_name is not None:
            target, backbone = self._named(model, layer_name)
        else:
            target, backbone = find_target_layer(model)
        self.target, self.backbone = target, backbone
        if backbone is None:
            self.features = keras.Model(model.inputs, [target.output, model.output])
        else:
            # A functional model cannot output a tensor of a nested model's graph, so the
            # backbone gets its own two-output model and the outer layers run one after
            # the other (the wrappers in liveness/nets.py are such a chain; checked below).
            self.inner = keras.Model(backbone.inputs, [target.output, backbone.output])
            self.chain = [l for l in model.layers if type(l).__name__ != "InputLayer"]

    @staticmethod
    def _named(model, name: str):
        for layer in model.layers:
            if layer.name == name:
                return layer, None
        for layer in model.layers:
            if _is_model(layer):
                for inner in layer.layers:
                    if inner.name == name:
                        return inner, layer
        raise ValueError(f"model {model.name!r} has no layer named {name!r}")

    def __call__(self, x):
        if self.backbone is None:
            return self.features(x, training=False)
        feats = None
        y = x
        for layer in self.chain:
            if layer is self.backbone:
                feats, y = self.inner(y, training=False)
            else:
                y = layer(y, training=False)
        return feats, y


def gradcam(
    keras_model, faces_rgb_batch: np.ndarray, class_index: int, *, layer_name: str | None = None
) -> np.ndarray:
    """(N, H, W) float32 Grad-CAM maps in 0..1 for the class `class_index`.

    faces_rgb_batch: (N, H, W, 3) RGB pixels, 0..255, as the model takes them
    (preprocessing is inside the models of liveness/nets.py). The gradient is that of
    the log-probability of the class, so it does not vanish on confidently wrong faces;
    each map is ReLU(sum_k w_k A_k) over the last convolution's feature maps A_k, with
    w_k the spatial mean of the gradient, resized to H x W and divided by its maximum
    (all zeros when nothing speaks for the class).
    """
    import tensorflow as tf

    batch = np.asarray(faces_rgb_batch, dtype=np.float32)
    if batch.ndim != 4 or batch.shape[-1] != 3:
        raise ValueError(f"faces_rgb_batch must be (N, H, W, 3), got shape {batch.shape}")
    n_classes = int(keras_model.output_shape[-1])
    if not 0 <= int(class_index) < n_classes:
        raise ValueError(f"class_index must be in 0..{n_classes - 1}, got {class_index}")
    if len(batch) == 0:
        return np.zeros(batch.shape[:3], np.float32)
    runner = _GradCamRunner(keras_model, layer_name)
    x = tf.convert_to_tensor(batch)
    with tf.GradientTape() as tape:
        feats, probs = runner(x)
        tape.watch(feats)
        target = tf.math.log(probs[:, int(class_index)] + 1e-7)
    grads = tape.gradient(target, feats)
    if runner.backbone is not None:
        expected = keras_model(x, training=False)
        if not np.allclose(np.asarray(probs), np.asarray(expected), atol=1e-4):
            raise ValueError(
                f"model {keras_model.name!r}: its backbone {runner.backbone.name!r} is not on a simple chain of "
                "layers; pass layer_name= a layer of the outer model"
            )
    weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
    cams = tf.nn.relu(tf.reduce_sum(weights * feats, axis=-1)).numpy()
    h, w = batch.shape[1:3]
    out = np.empty((len(batch), h, w), np.float32)
    for i, cam in enumerate(cams):
        out[i] = normalise(cv2.resize(cam.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR))
    return out


# --- occlusion ---------------------------------------------------------------


def _windows(length: int, patch: int, stride: int) -> list[int]:
    starts = list(range(0, max(length - patch, 0) + 1, stride))
    if starts[-1] + patch < length:  # the last window reaches the edge
        starts.append(length - patch)
    return starts


def occlusion(
    score_fn: Callable[[list[np.ndarray]], np.ndarray],
    face_bgr: np.ndarray,
    *,
    patch: int | None = None,
    stride: int | None = None,
    batch_size: int = OCCLUSION_BATCH,
) -> np.ndarray:
    """(H, W) float32 occlusion-sensitivity map of one BGR crop for any scorer.

    score_fn takes a list of BGR crops and returns their live probabilities (N,). A
    grey square of `patch` pixels (default PATCH_FRACTION of the shorter side) slides
    over the crop in steps of `stride` (default STRIDE_FRACTION); every occluded copy
    is scored, batch_size copies per call. A pixel's value is the mean drop of the
    score, unoccluded minus occluded, over the windows that cover it: positive where
    hiding the pixels lowers the live score (they speak for live), negative where it
    raises it (they speak for an attack).
    """
    face = np.asarray(face_bgr)
    if face.ndim != 3 or face.shape[2] != 3 or face.dtype != np.uint8 or 0 in face.shape:
        raise ValueError(f"face_bgr must be a non-empty HxWx3 uint8 BGR image, got {face.shape} {face.dtype}")
    h, w = face.shape[:2]
    short = min(h, w)
    patch = max(1, round(PATCH_FRACTION * short)) if patch is None else int(patch)
    stride = max(1, round(STRIDE_FRACTION * short)) if stride is None else int(stride)
    if patch < 1 or stride < 1 or batch_size < 1:
        raise ValueError(f"patch, stride and batch_size must be positive, got {patch}, {stride}, {batch_size}")
    patch_h, patch_w = min(patch, h), min(patch, w)
    boxes = [(y, x) for y in _windows(h, patch_h, stride) for x in _windows(w, patch_w, stride)]
    # The unoccluded crop rides in the first batch: one call fewer.
    jobs: list[tuple[int, int] | None] = [None, *boxes]
    scores = np.empty(len(jobs), np.float64)
    for b in range(0, len(jobs), batch_size):
        copies = []
        for job in jobs[b : b + batch_size]:
            c = face.copy()
            if job is not None:
                y, x = job
                c[y : y + patch_h, x : x + patch_w] = GREY
            copies.append(c)
        got = np.asarray(score_fn(copies), dtype=np.float64).reshape(-1)
        if len(got) != len(copies):
            raise ValueError(f"score_fn returned {len(got)} scores for {len(copies)} crops")
        scores[b : b + len(copies)] = got
    drops = scores[0] - scores[1:]
    total = np.zeros((h, w), np.float64)
    count = np.zeros((h, w), np.float64)
    for (y, x), d in zip(boxes, drops):
        total[y : y + patch_h, x : x + patch_w] += d
        count[y : y + patch_h, x : x + patch_w] += 1
    return (total / np.maximum(count, 1)).astype(np.float32)


# --- pictures ----------------------------------------------------------------


def normalise(heatmap: np.ndarray, *, minmax: bool = False) -> np.ndarray:
    """float32 0..1. By default negatives are clipped to 0 and the rest divided by the
    maximum; with `minmax`, (map - min) / (max - min), for occlusion maps whose every
    value carries the grey patch's own effect. All zeros when the map is flat or empty."""
    m = np.nan_to_num(np.asarray(heatmap, np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    if not m.size:
        return m
    low = float(m.min()) if minmax else 0.0
    m = np.maximum(m - low, 0.0)
    top = float(m.max())
    return (m / top).astype(np.float32) if top > 0 else np.zeros_like(m)


def colourise(heatmap01: np.ndarray, colormap: int = DEFAULT_COLORMAP) -> np.ndarray:
    """A 0..1 map as a BGR uint8 image in `colormap`."""
    m = np.clip(np.nan_to_num(np.asarray(heatmap01, np.float32)), 0.0, 1.0)
    return cv2.applyColorMap((m * 255).round().astype(np.uint8), colormap)


def overlay(
    face_bgr: np.ndarray, heatmap01: np.ndarray, *, alpha: float = DEFAULT_ALPHA, colormap: int = DEFAULT_COLORMAP
) -> np.ndarray:
    """The crop (BGR uint8) with the 0..1 heatmap blended on it in `colormap`; the map is
    resized to the crop."""
    face = np.asarray(face_bgr)
    if face.ndim == 2:
        face = cv2.cvtColor(face, cv2.COLOR_GRAY2BGR)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in 0..1, got {alpha}")
    h, w = face.shape[:2]
    m = np.asarray(heatmap01, np.float32)
    if m.shape != (h, w):
        m = cv2.resize(m, (w, h), interpolation=cv2.INTER_LINEAR)
    return cv2.addWeighted(colourise(m, colormap), alpha, face.astype(np.uint8), 1.0 - alpha, 0.0)


def _caption(tile: np.ndarray, lines: Sequence[str]) -> np.ndarray:
    """The tile with a white band of text lines under it."""
    scale, thick, step = 0.4, 1, 14
    band = np.full((step * len(lines) + 4, tile.shape[1], 3), 255, np.uint8)
    for i, text in enumerate(lines):
        cv2.putText(band, text, (3, step * (i + 1)), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thick, cv2.LINE_AA)
    return np.vstack([tile, band])


def grid_image(
    tiles: Sequence[np.ndarray],
    captions: Sequence[str | Sequence[str]] | None = None,
    *,
    columns: int = 6,
    tile_size: int = TILE_SIZE,
) -> np.ndarray:
    """BGR uint8 image: the tiles (BGR or grey) resized to tile_size squares, row by
    row, each with its caption (a string or a list of lines) below."""
    if not tiles:
        raise ValueError("grid_image needs at least one tile")
    if captions is not None and len(captions) != len(tiles):
        raise ValueError(f"{len(captions)} captions for {len(tiles)} tiles")
    lines = [[c] if isinstance(c, str) else list(c) for c in captions] if captions is not None else [[] for _ in tiles]
    n_lines = max(len(l) for l in lines)
    cells = []
    for tile, text in zip(tiles, lines):
        t = np.asarray(tile)
        if t.ndim == 2:
            t = cv2.cvtColor(t.astype(np.uint8), cv2.COLOR_GRAY2BGR)
        t = cv2.resize(t.astype(np.uint8), (tile_size, tile_size), interpolation=cv2.INTER_AREA)
        cells.append(_caption(t, list(text) + [""] * (n_lines - len(text))) if n_lines else t)
    columns = max(1, min(columns, len(cells)))
    blank = np.full_like(cells[0], 255)
    cells += [blank] * (-len(cells) % columns)
    pad = 4
    rows = [np.hstack([np.pad(c, ((pad, pad), (pad, pad), (0, 0)), constant_values=255) for c in cells[r : r + columns]])
            for r in range(0, len(cells), columns)]
    return np.vstack(rows)


def write_grid(path: Path, tiles: Sequence[np.ndarray], captions=None, **kwargs) -> Path:
    """grid_image(...) written atomically to `path` (PNG by its extension)."""
    path = Path(path)
    write_image(path, grid_image(tiles, captions, **kwargs))
    return path


# --- a liveness model's faces --------------------------------------------------

METHODS = ("gradcam", "occlusion")


def keras_model_of(model):
    """The Keras CNN a liveness model scores with, or None (a colour-LBP model)."""
    getter = getattr(model, "keras_model", None)
    return getter() if callable(getter) else getattr(model, "cnn", None)


def default_method(model) -> str:
    """Grad-CAM when the model has a CNN, occlusion otherwise."""
    return "gradcam" if keras_model_of(model) is not None else "occlusion"


def explain_faces(model, faces_bgr: Sequence[np.ndarray], method: str) -> tuple[list[np.ndarray], np.ndarray, list[str]]:
    """(heatmaps, scores, labels) for BGR crops of any size: each heatmap 0..1 at its
    crop's size, for the class the model decides (what made it say live, or attack).

    model: anything with score(faces) -> live probabilities, decide(scores) -> labels,
    `labels`, `live_label`, and for Grad-CAM a Keras CNN (keras_model() or `cnn`) and
    `input_size`. Grad-CAM explains the CNN alone (in a fused model too); occlusion
    explains the model's whole score."""
    from liveness.runtime import prepare_faces

    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    faces = list(faces_bgr)
    if not faces:
        return [], np.zeros(0), []
    scores = np.asarray(model.score(faces), dtype=np.float64)
    decided = list(model.decide(scores))
    maps: list[np.ndarray] = [np.zeros(0)] * len(faces)
    if method == "gradcam":
        cnn = keras_model_of(model)
        if cnn is None:
            raise ValueError("Grad-CAM needs a CNN; this model scores with colour LBP alone (use occlusion)")
        batch = prepare_faces(faces, int(cnn.input_shape[1]))
        for label in sorted(set(decided)):
            idx = [i for i, d in enumerate(decided) if d == label]
            for i, m in zip(idx, gradcam(cnn, batch[idx], list(model.labels).index(label))):
                h, w = faces[i].shape[:2]
                maps[i] = cv2.resize(m, (w, h), interpolation=cv2.INTER_LINEAR)
    else:
        for i, face in enumerate(faces):
            drop = occlusion(model.score, face)
            maps[i] = normalise(drop if decided[i] == model.live_label else -drop, minmax=True)
    return maps, scores, decided


def caption(score: float, label: str, name: str | None = None) -> list[str]:
    """Caption lines of a tile: the file or frame, then 'real 0.93'."""
    lines = [name[-18:]] if name else []
    return lines + [f"{label} {score:.2f}"]


class LiveExplainer:
    """The demo's --explain: the heatmap of the largest face, refreshed every `every`
    frames (an occlusion map costs tens of scorer calls, so not on every frame), drawn
    as an inset in the frame's top-right corner."""

    def __init__(self, model, *, every: int = 15, size: int = 160) -> None:
        self.model, self.every, self.size = model, every, size
        self.method = default_method(model)
        self._inset: np.ndarray | None = None
        self._frame = 0

    def update(self, frame: np.ndarray, results) -> None:
        due = self._frame % self.every == 0
        self._frame += 1
        if not due or not results:
            return
        from liveness.detector import crop_faces

        face = max(results, key=lambda r: (r.box[2] - r.box[0]) * (r.box[3] - r.box[1]))
        crops = crop_faces(frame, [face], getattr(self.model, "padding", 0.0))
        if not crops:
            return
        crop = crops[0][1]
        maps, scores, labels = explain_faces(self.model, [crop], self.method)
        tile = cv2.resize(overlay(crop, maps[0]), (self.size, self.size), interpolation=cv2.INTER_AREA)
        self._inset = _caption(tile, [f"{self.method}: {labels[0]} {scores[0]:.2f}"])

    def draw(self, image: np.ndarray) -> np.ndarray:
        if self._inset is not None:
            h, w = self._inset.shape[:2]
            if h <= image.shape[0] and w <= image.shape[1]:
                image[:h, image.shape[1] - w:] = self._inset
        return image
