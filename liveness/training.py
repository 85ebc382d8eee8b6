"""Training shared by train.py (one split, leave-one-group-out) and compare.py.

Keras 3 throughout: a tf.data pipeline over in-memory crops, augmentation as Keras
preprocessing layers, class weights, early stopping that restores the best weights
and ReduceLROnPlateau. Pixel scaling lives in the model (liveness/models.py).
"""

from __future__ import annotations

import logging
import math
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from liveness import FACE_SIZE, LIVE_LABEL
from liveness.cli import UserError, import_tensorflow
from liveness.dataset import Sample, prepare_faces, read_images, split_samples
from liveness.metrics import equal_error_rate, summarize
from liveness.models import DEFAULT_ARCH, build_model

LOGGER = logging.getLogger("liveness")

LOSSES = ("ce", "focal")


@dataclass
class TrainConfig:
    arch: str = DEFAULT_ARCH
    input_size: int = FACE_SIZE
    epochs: int = 50
    batch_size: int = 32
    lr: float = 1e-3
    loss: str = "ce"
    weights: str | None = None
    augment: bool = True
    patience: int = 10
    seed: int = 42

    def check(self) -> None:
        if self.epochs < 1:
            raise UserError(f"--epochs must be 1 or more, got {self.epochs}")
        if self.batch_size < 1:
            raise UserError(f"--batch-size must be 1 or more, got {self.batch_size}")
        if not self.lr > 0:
            raise UserError(f"--lr must be positive, got {self.lr}")
        if self.input_size < 8:
            raise UserError(f"--input-size must be 8 or more, got {self.input_size}")
        if self.loss not in LOSSES:
            raise UserError(f"--loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")

    def as_dict(self) -> dict:
        return asdict(self)


def seed_everything(seed: int) -> None:
    """Same seed, same numbers on CPU: Python, NumPy, TF seeds and deterministic ops."""
    import_tensorflow()
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def make_augmenter(seed: int):
    """Mild geometric and photometric jitter, as Keras layers (active in training only)."""
    import keras
    from keras import layers

    return keras.Sequential(
        [
            layers.RandomFlip("horizontal", seed=seed),
            layers.RandomRotation(0.05, fill_mode="reflect", seed=seed + 1),
            layers.RandomZoom(0.1, fill_mode="reflect", seed=seed + 2),
            layers.RandomTranslation(0.1, 0.1, fill_mode="reflect", seed=seed + 3),
            layers.RandomBrightness(0.15, value_range=(0, 255), seed=seed + 4),
            layers.RandomContrast(0.15, value_range=(0, 255), seed=seed + 5),
        ],
        name="augment",
    )


def make_dataset(x: np.ndarray, y: np.ndarray, batch_size: int, *, shuffle_seed: int | None = None, augmenter=None):
    """(N, S, S, 3) uint8 + (N, classes) one-hot -> batched float32 tf.data pipeline."""
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((x, y))
    if shuffle_seed is not None:
        ds = ds.shuffle(len(x), seed=shuffle_seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size).map(lambda a, b: (tf.cast(a, tf.float32), b))
    if augmenter is not None:
        # Sequential map (no parallel calls): the layers' random state advances in order,
        # so one seed gives one result.
        ds = ds.map(lambda a, b: (augmenter(a, training=True), b))
    return ds.prefetch(tf.data.AUTOTUNE)


def class_weights(y_index: np.ndarray, n_classes: int) -> dict[int, float]:
    """Inverse-frequency weights: subject05 alone has 10x more fake than real frames."""
    counts = np.bincount(y_index, minlength=n_classes).astype(float)
    return {i: float(len(y_index) / (n_classes * c)) if c else 0.0 for i, c in enumerate(counts)}


def fit(
    cfg: TrainConfig,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray | None,
    y_val: np.ndarray | None,
    n_classes: int,
    *,
    checkpoint: Path | None = None,
    verbose: int | None = None,
):
    """Train a fresh model; returns (model with the best weights, history dict)."""
    import keras

    seed_everything(cfg.seed)
    model = build_model(cfg.arch, input_size=cfg.input_size, classes=n_classes, weights=cfg.weights)
    loss = (
        keras.losses.CategoricalFocalCrossentropy(alpha=0.25, gamma=2.0)
        if cfg.loss == "focal"
        else keras.losses.CategoricalCrossentropy()
    )
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=cfg.lr), loss=loss, metrics=["accuracy"])
    onehot = lambda idx: keras.utils.to_categorical(idx, n_classes)  # noqa: E731
    train_ds = make_dataset(
        x_train, onehot(y_train), cfg.batch_size, shuffle_seed=cfg.seed,
        augmenter=make_augmenter(cfg.seed) if cfg.augment else None,
    )
    has_val = x_val is not None and len(x_val) > 0
    val_ds = make_dataset(x_val, onehot(y_val), 256) if has_val else None
    monitor = "val_loss" if has_val else "loss"
    callbacks = [
        keras.callbacks.EarlyStopping(monitor=monitor, patience=cfg.patience, restore_best_weights=True),
        keras.callbacks.ReduceLROnPlateau(monitor=monitor, factor=0.5, patience=max(2, cfg.patience // 3), min_lr=1e-6),
    ]
    if checkpoint is not None:
        callbacks.append(keras.callbacks.ModelCheckpoint(str(checkpoint), monitor=monitor, save_best_only=True))
    if verbose is None:
        verbose = 1 if sys.stderr.isatty() else 2
    history = model.fit(
        train_ds, validation_data=val_ds, epochs=cfg.epochs, callbacks=callbacks,
        class_weight=class_weights(y_train, n_classes), verbose=verbose, shuffle=False,  # tf.data shuffles
    )
    return model, {k: [float(v) for v in vals] for k, vals in history.history.items()}


def predict_live(model, x: np.ndarray, live_index: int) -> np.ndarray:
    """(N,) probability of live for prepared crops; one batched pass."""
    if len(x) == 0:
        return np.empty(0, np.float32)
    return model.predict(x.astype(np.float32), batch_size=256, verbose=0)[:, live_index]


def validation_threshold(is_live: np.ndarray, scores: np.ndarray) -> tuple[float, str]:
    """The operating point: the EER threshold on validation data, never on test data."""
    eer, threshold = equal_error_rate(is_live, scores)
    if math.isnan(eer):
        return 0.5, "0.5 (validation data lacks a class)"
    return threshold, f"validation EER point (EER {eer:.3f})"


@dataclass
class FoldResult:
    model: object
    history: dict
    threshold: float
    threshold_source: str
    val: dict
    test: dict
    test_samples: list[Sample]
    test_scores: np.ndarray
    lbp_model: object = None


def train_and_test(
    cfg: TrainConfig,
    splits: dict[str, list[Sample]],
    labels: list[str],
    *,
    live_label: str = LIVE_LABEL,
    lbp_weight: float = 0.0,
    train_cnn: bool = True,
    checkpoint: Path | None = None,
    verbose: int | None = None,
) -> FoldResult:
    """Train on splits['train'], fix the threshold on splits['val'], score splits['test'].

    With `lbp_weight` > 0 a colour-LBP model is trained on the same crops and the score
    is (1 - w) * CNN + w * LBP; the threshold is fixed on that fused validation score.
    With w = 1 and `train_cnn=False` no CNN is trained at all (cross-validation needs
    no model file).
    """
    live_index = labels.index(live_label)
    raw, kept = {}, {}
    for k, v in splits.items():
        raw[k], kept[k] = read_images(v) if v else ([], [])
    for name in ("train", "test"):
        missing = sorted(set(labels) - {s.label for s in kept[name]})
        if missing and (name == "train" or kept[name]):
            raise UserError(f"no readable {', '.join(missing)} images left in the {name} split")
    y = {k: np.array([labels.index(s.label) for s in v], dtype=np.int64) for k, v in kept.items()}
    model, history = None, {}
    scores = {k: np.zeros(len(raw[k])) for k in ("val", "test")}
    if train_cnn or lbp_weight < 1:
        x = {k: prepare_faces(v, cfg.input_size) for k, v in raw.items()}
        model, history = fit(cfg, x["train"], y["train"], x["val"], y["val"], len(labels), checkpoint=checkpoint, verbose=verbose)
        scores = {k: predict_live(model, x[k], live_index) for k in ("val", "test")}
    lbp_model = None
    if lbp_weight > 0:
        from liveness.lbp import LBPClassifier

        lbp_model = LBPClassifier(seed=cfg.seed).fit(raw["train"], (y["train"] == live_index).astype(int))
        for k in ("val", "test"):
            if len(raw[k]):
                scores[k] = (1 - lbp_weight) * scores[k] + lbp_weight * lbp_model.score(raw[k])
    val_live = y["val"] == live_index
    threshold, source = validation_threshold(val_live, scores["val"]) if len(scores["val"]) else (0.5, "0.5 (no validation data)")
    return FoldResult(
        model=model, history=history, threshold=threshold, threshold_source=source,
        val=summarize(val_live, scores["val"], threshold) if len(scores["val"]) else {},
        test=summarize(y["test"] == live_index, scores["test"], threshold) if len(scores["test"]) else {},
        test_samples=kept["test"], test_scores=scores["test"], lbp_model=lbp_model,
    )


def loso_folds(samples: list[Sample], *, val_frac: float, seed: int):
    """Leave-one-group-out: (held-out group, splits) for each group holding both classes."""
    labels = sorted({s.label for s in samples})
    groups = sorted({s.group for s in samples})
    for group in groups:
        held = [s for s in samples if s.group == group]
        if {s.label for s in held} != set(labels):
            continue  # a group with one class cannot measure APCER and BPCER both
        rest = [s for s in samples if s.group != group]
        inner, _ = split_samples(rest, "group", test_frac=0.0, val_frac=val_frac, seed=seed)
        yield group, {"train": inner["train"], "val": inner["val"], "test": held}
