"""Fitting what scores, and fixing its threshold without looking at its own training data.

One procedure serves train.py (the model it saves, and its held-out report), the
leave-one-group-out protocol and compare.py:

    fit_with_threshold(cfg, data, idx)
      1. folds over the groups in idx (group k-fold, else time blocks within each video)
      2. out-of-fold live scores for every image in idx -> threshold at their EER point
      3. refit on all of idx (a CNN for the median of the folds' best epoch counts)

Keras 3 for the CNNs: a tf.data pipeline, augmentation as Keras preprocessing layers,
class weights, early stopping that restores the best weights, ReduceLROnPlateau.
Pixel scaling lives in the model (liveness/nets.py).
"""

from __future__ import annotations

import logging
import math
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from liveness.calibration import live_offset
from liveness.dataset import Sample, check_classes, describe, find_samples, read_images
from liveness.errors import DataError
from liveness.lbp import DEFAULT_SETTINGS, LBPClassifier, LBPSettings
from liveness.metrics import equal_error_rate
from liveness.model import DEFAULT_SCORER, SCORERS, fuse
from liveness.nets import DEFAULT_ARCH, DEFAULT_INPUT_SIZE, build_model, check_arch, import_keras
from liveness.runtime import prepare_faces

LOGGER = logging.getLogger("liveness")

LOSSES = ("ce", "focal")
# Out-of-fold folds for the threshold: LBP fits take a second, so one group per fold
# (leave-one-group-out, up to MAX_GROUP_FOLDS groups); a CNN takes minutes, so one
# validation split of the groups.
DEFAULT_FOLDS = {"lbp": None, "cnn": 1, "fusion": 1}
MAX_GROUP_FOLDS = 20
DEFAULT_FUSION_WEIGHT = 0.5
DEFAULT_VAL_FRAC = 0.2


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides what is fitted. Defaults written here only."""

    scorer: str = DEFAULT_SCORER
    arch: str = DEFAULT_ARCH
    input_size: int = DEFAULT_INPUT_SIZE
    epochs: int = 50
    batch_size: int = 32
    lr: float = 1e-3
    loss: str = "ce"
    weights: str | None = None
    augment: bool = True
    patience: int = 10
    seed: int = 42
    lbp_weight: float = DEFAULT_FUSION_WEIGHT  # fusion only: score = (1 - w) CNN + w LBP
    lbp: LBPSettings = DEFAULT_SETTINGS
    folds: int | None = None  # None: DEFAULT_FOLDS[scorer] (None there: one fold per group)
    val_frac: float = DEFAULT_VAL_FRAC  # with one fold: the groups held out for the threshold
    fixed_threshold: float | None = None  # the tutorial's 0.5; None: from out-of-fold scores

    def __post_init__(self) -> None:
        if self.scorer not in SCORERS:
            raise ValueError(f"scorer must be one of {', '.join(SCORERS)}, got {self.scorer!r}")
        if self.uses_cnn:
            check_arch(self.arch, self.input_size, self.weights)
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        if not 0.0 < self.lbp_weight < 1.0 and self.scorer == "fusion":
            raise ValueError(f"a fusion's LBP weight must lie between 0 and 1, got {self.lbp_weight}")
        if self.folds is not None and self.folds < 1:
            raise ValueError(f"folds must be 1 or more, got {self.folds}")
        if self.scorer == "cnn" and self.lbp.synthetic:
            raise ValueError("synthetic re-captures train the colour-LBP scorer (lbp or fusion), not a CNN alone")

    def n_folds(self, n_groups: int) -> int:
        k = self.folds or DEFAULT_FOLDS[self.scorer]
        return k if k is not None else max(2, min(n_groups, MAX_GROUP_FOLDS))

    @property
    def weight(self) -> float:
        """The LBP's share of the score: 1 for lbp, 0 for cnn."""
        return {"lbp": 1.0, "cnn": 0.0}.get(self.scorer, self.lbp_weight)

    @property
    def uses_cnn(self) -> bool:
        return self.weight < 1

    def as_dict(self) -> dict:
        d = asdict(self)
        d["lbp"] = asdict(self.lbp) if self.weight > 0 else None
        if not self.uses_cnn:
            for k in ("arch", "input_size", "epochs", "batch_size", "lr", "loss", "weights", "augment", "patience"):
                d.pop(k)
        return d


def rows(x: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """x[idx], without a copy when idx takes every row in order (the fit on all the data)."""
    idx = np.asarray(idx)
    if len(idx) == len(x) and np.array_equal(idx, np.arange(len(x))):
        return x
    return x[idx]


class FaceSet:
    """The decoded crops of a dataset, their labels and groups; features computed once."""

    def __init__(self, faces: list[np.ndarray], samples: list[Sample], live_label: str) -> None:
        self.faces = faces
        self.samples = samples
        self.live_label = live_label
        self.is_live = np.array([s.label == live_label for s in samples], dtype=bool)
        self.groups = np.array([s.group for s in samples])
        self._lbp: dict[tuple, np.ndarray] = {}  # by LBPSettings.feature_key()
        self._lbp_aug: dict[tuple[LBPSettings, int], np.ndarray] = {}
        self._lbp_syn: dict[tuple[LBPSettings, int], np.ndarray] = {}  # rows of the live images, NaN elsewhere
        self._cnn: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.samples)

    def lbp_features(self, settings: LBPSettings) -> np.ndarray:
        key = settings.feature_key()
        if key not in self._lbp:
            self._lbp[key] = LBPClassifier.from_settings(settings).features(self.faces)
        return self._lbp[key]

    def lbp_augmented(self, settings: LBPSettings, seed: int, idx: np.ndarray) -> np.ndarray | None:
        """The augmented copies' features of the images at idx (copy k of image i in row
        k * len(idx) + position of i), computed once for the whole set; None without augmentation."""
        if not settings.augment:
            return None
        key = (settings, seed)
        if key not in self._lbp_aug:
            self._lbp_aug[key] = LBPClassifier.from_settings(settings, seed=seed).augmented_features(self.faces)
        n = len(self)
        if settings.augment == 1:
            return rows(self._lbp_aug[key], idx)
        return np.concatenate([self._lbp_aug[key][k * n + np.asarray(idx)] for k in range(settings.augment)])

    def lbp_synthetic(self, settings: LBPSettings, seed: int, idx: np.ndarray) -> np.ndarray | None:
        """The simulated re-captures' features of the live images at idx, in idx order,
        computed once for every live image of the set; None without them."""
        if not settings.synthetic:
            return None
        key = (settings, seed)
        if key not in self._lbp_syn:
            live = np.flatnonzero(self.is_live)
            x = np.full((len(self), LBPClassifier.from_settings(settings).n_features), np.nan)
            x[live] = LBPClassifier.from_settings(settings, seed=seed).synthetic_features(self.faces, live)
            self._lbp_syn[key] = x
        idx = np.asarray(idx)
        return self._lbp_syn[key][idx[self.is_live[idx]]]

    def cnn_input(self, size: int) -> np.ndarray:
        if size not in self._cnn:
            self._cnn[size] = prepare_faces(self.faces, size)
        return self._cnn[size]


def load_faceset(dataset: list[Path], classes, group_pattern, live_label: str, *, min_per_class: int = 3) -> FaceSet:
    """Every readable crop of the dataset folders, decoded once."""
    samples = find_samples([Path(d) for d in dataset], classes, group_pattern)
    check_classes(samples, live_label, min_per_class=min_per_class)
    faces, kept = read_images(samples)
    check_classes(kept, live_label, min_per_class=min_per_class)
    LOGGER.info("dataset: %s", describe(kept))
    return FaceSet(faces, kept, live_label)


@dataclass
class Fitted:
    """What fit_scorer made: the LBP scorer and/or the CNN, and the CNN's history."""

    cfg: TrainConfig
    lbp: LBPClassifier | None = None
    cnn: object | None = None
    history: dict = field(default_factory=dict)
    best_epochs: int | None = None

    def as_model(self, threshold: float, labels: list[str], live_label: str, *, backend: str = "auto"):
        """An in-memory LivenessModel: scores faces exactly as a saved one would."""
        from liveness.model import LivenessModel

        manifest = {
            "scorer": self.cfg.scorer, "labels": labels, "live_label": live_label, "threshold": threshold,
            "padding": 0.0, "lbp_weight": self.cfg.weight, "input_size": self.cfg.input_size if self.cnn else None,
        }
        return LivenessModel(Path("(in memory)"), manifest, lbp=self.lbp, cnn=self.cnn, backend=backend)

    def score(self, data: FaceSet, idx: np.ndarray) -> np.ndarray:
        """(len(idx),) live probabilities of data's images at idx."""
        if len(idx) == 0:
            return np.zeros(0)
        lbp = self.lbp.score_live_features(data.lbp_features(self.cfg.lbp)[idx]) if self.lbp is not None else 0.0
        cnn = predict_live(self.cnn, data.cnn_input(self.cfg.input_size)[idx]) if self.cnn is not None else 0.0
        return fuse(cnn, lbp, self.cfg.weight)


# --- CNN training ---------------------------------------------------------------------------
def seed_everything(seed: int) -> None:
    """Same seed, same numbers on CPU: Python, NumPy, TF seeds and deterministic ops."""
    keras = import_keras()
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def make_augmenter(seed: int):
    """Mild geometric and photometric jitter, as Keras layers (active in training only)."""
    keras = import_keras()
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
    """(N, S, S, 3) uint8 + (N, 2) one-hot -> batched float32 tf.data pipeline."""
    import tensorflow as tf

    if hasattr(x, "stream"):  # crops read from their files (liveness/streaming.py): memory holds batches
        ds = x.stream(y, shuffle_seed=shuffle_seed)
    else:
        ds = tf.data.Dataset.from_tensor_slices((x, y))
        if shuffle_seed is not None:
            ds = ds.shuffle(len(x), seed=shuffle_seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size).map(lambda a, b: (tf.cast(a, tf.float32), b))
    if augmenter is not None:
        # Sequential map (no parallel calls): the layers' random state advances in order,
        # so one seed gives one result.
        ds = ds.map(lambda a, b: (augmenter(a, training=True), b))
    from liveness.distribute import shard_options

    return shard_options(ds.prefetch(tf.data.AUTOTUNE))


def class_weights(y_index: np.ndarray, n_classes: int = 2) -> dict[int, float]:
    """Inverse-frequency weights: one set-up can hold ten times more attacks than live faces."""
    counts = np.bincount(y_index, minlength=n_classes).astype(float)
    return {i: float(len(y_index) / (n_classes * c)) if c else 0.0 for i, c in enumerate(counts)}


def fit_cnn(cfg: TrainConfig, x_train, y_train, x_val=None, y_val=None, *, epochs: int | None = None,
            checkpoint: Path | None = None, verbose: int | None = None):
    """A fresh CNN trained on (x, y index: 1 = live); returns (model, history, best epoch count)."""
    keras = import_keras()
    from liveness.distribute import is_distributed, prepare_fit, steps_per_execution, strategy_scope

    seed_everything(cfg.seed)
    with strategy_scope():  # --distribute: variables mirrored over devices or workers
        model = build_model(cfg.arch, input_size=cfg.input_size, classes=2, weights=cfg.weights)
        loss = (
            keras.losses.CategoricalFocalCrossentropy(alpha=0.25, gamma=2.0)
            if cfg.loss == "focal" else keras.losses.CategoricalCrossentropy()
        )
        model.compile(optimizer=keras.optimizers.Adam(learning_rate=cfg.lr), loss=loss, metrics=["accuracy"],
                      steps_per_execution=steps_per_execution())
    prepare_fit(model, cfg.input_size)
    onehot = lambda idx: keras.utils.to_categorical(idx, 2)  # noqa: E731
    train_ds = make_dataset(
        x_train, onehot(y_train), cfg.batch_size, shuffle_seed=cfg.seed,
        augmenter=make_augmenter(cfg.seed) if cfg.augment else None,
    )
    has_val = x_val is not None and len(x_val) > 0
    val_ds = make_dataset(x_val, onehot(y_val), 256) if has_val else None
    monitor = "val_loss" if has_val else "loss"
    callbacks = [keras.callbacks.ReduceLROnPlateau(monitor=monitor, factor=0.5, patience=max(2, cfg.patience // 3), min_lr=1e-6)]
    if has_val:
        callbacks.append(keras.callbacks.EarlyStopping(monitor=monitor, patience=cfg.patience, restore_best_weights=True))
    if checkpoint is not None:
        callbacks.append(keras.callbacks.ModelCheckpoint(str(checkpoint), monitor=monitor, save_best_only=True))
    if verbose is None:
        verbose = 1 if sys.stderr.isatty() else 2
    history = model.fit(
        train_ds, validation_data=val_ds, epochs=epochs or cfg.epochs, callbacks=callbacks,
        class_weight=class_weights(y_train), verbose=verbose, shuffle=False,  # tf.data shuffles
    )
    hist = {k: [float(v) for v in vals] for k, vals in history.history.items()}
    best = int(np.argmin(hist[monitor])) + 1 if hist.get(monitor) else len(hist.get("loss", []))
    if cfg.arch != "livenessnet" and not is_distributed():
        # Shuffled: the images come grouped by set-up and class, and the statistics are of a sample.
        refresh_batchnorm(model, make_dataset(x_train, onehot(y_train), REFRESH_BATCH, shuffle_seed=cfg.seed))
    return model, hist, best


REFRESH_BATCH, REFRESH_BATCHES = 256, 8  # up to 2,048 training images re-estimate the statistics


def refresh_batchnorm(model, dataset, max_batches: int = REFRESH_BATCHES) -> None:
    """Set every BatchNormalization layer's moving statistics to their mean over batches of
    `dataset` (training images, not augmented) under the final weights, as SWA's update_bn does.

    The moving averages lag the weights: after a short training (a small dataset, early
    stopping at an early epoch) they still hold statistics of earlier weights, and inference
    differs from training. A MobileNet trained from scratch is where this showed (nets.py,
    BACKBONE_BN_MOMENTUM). Batch k enters with momentum (k - 1) / k: a running mean.
    """
    keras = import_keras()
    layers = [layer for layer in _all_layers(model) if isinstance(layer, keras.layers.BatchNormalization)]
    if not layers:
        return
    momenta = [layer.momentum for layer in layers]
    try:
        for k, (images, _) in enumerate(dataset.take(max_batches), 1):
            for layer in layers:
                layer.momentum = (k - 1) / k
            model(images, training=True)  # updates the moving statistics; the output is not used
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum


def _all_layers(model) -> list:
    """Every layer, nested models' included (a MobileNet backbone is one layer of the model)."""
    out = []
    for layer in model.layers:
        out.append(layer)
        if hasattr(layer, "layers"):
            out.extend(_all_layers(layer))
    return out


def predict_live(model, x: np.ndarray) -> np.ndarray:
    """(N,) probability of live (class index 1) for prepared crops; one batched pass."""
    if len(x) == 0:
        return np.empty(0, np.float64)
    # Direct calls in fixed-size batches: model.predict retraces per call and costs more here.
    out = [model(x[i:i + 256].astype(np.float32), training=False).numpy()[:, 1] for i in range(0, len(x), 256)]
    return np.concatenate(out).astype(np.float64)


def fit_scorer(cfg: TrainConfig, data: FaceSet, idx: np.ndarray, val_idx: np.ndarray | None = None, *,
               epochs: int | None = None, checkpoint: Path | None = None, verbose: int | None = 0) -> Fitted:
    """Fit cfg's scorer on data[idx]; a CNN stops early on val_idx when given."""
    y = data.is_live[idx]
    if y.all() or not y.any():
        raise DataError("the training images hold one class only")
    out = Fitted(cfg)
    if cfg.weight > 0:
        out.lbp = LBPClassifier.from_settings(cfg.lbp, seed=cfg.seed).fit_features(
            rows(data.lbp_features(cfg.lbp), idx), y.astype(int), data.groups[idx], data.lbp_augmented(cfg.lbp, cfg.seed, idx),
            data.lbp_synthetic(cfg.lbp, cfg.seed, idx),
        )
    if cfg.uses_cnn:
        x = data.cnn_input(cfg.input_size)
        has_val = val_idx is not None and len(val_idx) > 0
        out.cnn, out.history, out.best_epochs = fit_cnn(
            cfg, x[idx], y.astype(np.int64),
            x[val_idx] if has_val else None, data.is_live[val_idx].astype(np.int64) if has_val else None,
            epochs=epochs, checkpoint=checkpoint, verbose=verbose,
        )
    return out


# --- the threshold ----------------------------------------------------------------------------
def eer_threshold(is_live: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    """(threshold, EER) at the EER point; a DataError when a class is missing."""
    eer, threshold = equal_error_rate(is_live, scores)
    if math.isnan(eer):
        raise DataError("cannot fix a threshold: the held-out scores lack a class")
    return threshold, eer


@dataclass
class Procedure:
    """The result of fit_with_threshold: the refit scorer, its threshold and how it was set."""

    fitted: Fitted
    threshold: float
    threshold_source: str
    oof_scores: np.ndarray | None = None  # aligned with the idx given
    folds_how: str = ""
    live_offset: float | None = None  # for one-camera calibration (liveness/calibration.py)
    inner_acer: float | None = None  # mean ACER of the held-out groups' out-of-fold scores: for nested model choice
    inner_cal_acer: float | None = None  # the same after each group's one-camera calibration: for calibrated use


def fit_with_threshold(cfg: TrainConfig, data: FaceSet, idx: np.ndarray, *, checkpoint: Path | None = None,
                       verbose: int | None = 0, refit: bool = True) -> Procedure:
    """Threshold from out-of-fold scores of the groups in idx, then the scorer refit on all of idx."""
    from liveness.crossval import make_folds

    idx = np.asarray(idx)
    folds, how = make_folds([data.samples[i] for i in idx], cfg.n_folds(len(set(data.groups[idx]))), val_frac=cfg.val_frac, seed=cfg.seed)
    oof = np.full(len(idx), np.nan)
    epochs = []
    for fit_pos, held_pos in folds:
        part = fit_scorer(cfg, data, idx[fit_pos], idx[held_pos], verbose=verbose)
        oof[held_pos] = part.score(data, idx[held_pos])
        if part.best_epochs:
            epochs.append(part.best_epochs)
    held = ~np.isnan(oof)
    if cfg.fixed_threshold is not None:
        threshold, source = cfg.fixed_threshold, f"fixed at {cfg.fixed_threshold:g}"
    else:
        threshold, eer = eer_threshold(data.is_live[idx][held], oof[held])
        source = f"EER point of out-of-fold scores ({how}; out-of-fold EER {eer:.3f})"
    try:
        offset = live_offset(data.is_live[idx][held], oof[held], data.groups[idx][held], threshold)
    except ValueError:  # no held-out group with both classes (time blocks): no calibration offset
        offset = None
    inner = _mean_group_acer(data.is_live[idx][held], oof[held], data.groups[idx][held], threshold)
    inner_cal = _mean_group_cal_acer(data, idx[held], oof[held], threshold)
    if not refit:
        return Procedure(Fitted(cfg), threshold, source, oof, how, offset, inner, inner_cal)
    final_epochs = int(np.median(epochs)) if epochs else None  # no validation data left to stop on
    if cfg.uses_cnn and final_epochs is not None:
        LOGGER.info("refitting on all %d images for %d epochs (the folds' median best)", len(idx), final_epochs)
    fitted = fit_scorer(cfg, data, idx, None, epochs=final_epochs, checkpoint=checkpoint, verbose=verbose)
    return Procedure(fitted, threshold, source, oof, how, offset, inner, inner_cal)


def _mean_group_cal_acer(data: FaceSet, idx: np.ndarray, scores: np.ndarray, threshold: float) -> float | None:
    """Mean calibrated ACER over the groups holding both classes, each calibrated as a user's
    camera is (its first live images set the threshold) with the offset of the other groups:
    the criterion for choosing a model that will be calibrated (compare.py's calibrated nested row)."""
    from liveness.calibration import live_offset
    from liveness.crossval import calibrated_row, frame_positions

    live, groups = data.is_live[idx], data.groups[idx]
    values = []
    for g in np.unique(groups):
        m = groups == g
        if live[m].all() or not live[m].any():
            continue
        try:
            offset = live_offset(live[~m], scores[~m], groups[~m], threshold)
        except ValueError:  # no other group holds both classes
            continue
        cal = calibrated_row(live[m], scores[m], frame_positions([data.samples[i] for i in idx[m]]), offset)["cal_acer"]
        if not math.isnan(cal):
            values.append(cal)
    return float(np.mean(values)) if values else None


def _mean_group_acer(is_live: np.ndarray, scores: np.ndarray, groups: np.ndarray, threshold: float) -> float | None:
    """Mean ACER over the groups holding both classes: what a model choice made on the
    training groups alone can be judged by (compare.py's nested row)."""
    from liveness.metrics import error_rates

    values = [error_rates(is_live[groups == g], scores[groups == g], threshold)["acer"] for g in np.unique(groups)]
    values = [v for v in values if not math.isnan(v)]
    return float(np.mean(values)) if values else None
