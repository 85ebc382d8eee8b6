"""Line 6 of benchmarks/bench_pipeline.py: training images per second per epoch.

train.py's tf.data pipeline with augmentation (6a) and without (6b) against model.fit
on in-memory NumPy arrays (6c), one compiled model, the same batch size and class
weights; and 6a's pipeline into a model compiled to run one train step per Python call
(6d), as train.py did before it grouped them (liveness.distribute.steps_per_execution).
The lines have no target (bench_pipeline.TARGETS), so they are plain Rows.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks.harness import Row, paired_ratio, round_robin


def bench_training(crops: Path, group_pattern: str | None, repeats: int, seed: int = 42) -> list[Row]:
    """One epoch at a time, the three input pipelines alternating, into one compiled model.

    One model for all three: the same train step (traced once, in the warm-up round),
    so the input pipeline is the only difference. Its weights keep learning; speed does
    not care.
    """
    import keras
    import numpy as np

    from liveness.dataset import check_classes, find_samples, read_images
    from liveness.distribute import steps_per_execution
    from liveness.nets import build_model
    from liveness.runtime import prepare_faces
    from liveness.training import TrainConfig, class_weights, make_augmenter, make_dataset, seed_everything

    cfg = TrainConfig(scorer="cnn", seed=seed)
    samples = find_samples([crops], None, group_pattern)
    labels = check_classes(samples)
    faces, kept = read_images(samples)
    x = prepare_faces(faces, cfg.input_size)  # uint8 RGB, as train.py feeds its CNN
    y = np.array([labels.index(s.label) for s in kept], dtype=np.int64)
    onehot = keras.utils.to_categorical(y, len(labels))
    weights = class_weights(y, len(labels))
    seed_everything(cfg.seed)  # as liveness.training.fit_cnn does: seeds and deterministic ops

    def compiled(steps: int):
        model = build_model(cfg.arch, input_size=cfg.input_size, classes=len(labels))
        model.compile(optimizer=keras.optimizers.Adam(learning_rate=cfg.lr), loss=keras.losses.CategoricalCrossentropy(),
                      metrics=["accuracy"], steps_per_execution=steps)
        return model

    model, one_step = compiled(steps_per_execution()), compiled(1)

    class EpochTimer(keras.callbacks.Callback):
        seconds = math.nan

        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds = time.perf_counter() - self.t0

    def epoch(data, net=model, **kw) -> Callable[[], float]:
        def task() -> float:
            timer = EpochTimer()
            net.fit(data, epochs=1, class_weight=weights, verbose=0, callbacks=[timer], **kw)
            return timer.seconds
        return task

    # As liveness.training builds them: shuffled, batched, cast to float32, augmented.
    ds_aug = make_dataset(x, onehot, cfg.batch_size, shuffle_seed=cfg.seed, augmenter=make_augmenter(cfg.seed))
    ds_plain = make_dataset(x, onehot, cfg.batch_size, shuffle_seed=cfg.seed)
    tasks = {
        "aug": epoch(ds_aug, shuffle=False),
        "plain": epoch(ds_plain, shuffle=False),
        "numpy": epoch(x.astype(np.float32), y=onehot, batch_size=cfg.batch_size, shuffle=True),
        "one_step": epoch(ds_aug, one_step, shuffle=False),
    }
    times = round_robin(tasks, repeats=repeats, warmup=1)
    ips = {k: [len(x) / t for t in v] for k, v in times.items()}
    extra = {"images": len(x), "batch_size": cfg.batch_size, "input_size": cfg.input_size, "arch": cfg.arch,
             "steps_per_execution": steps_per_execution()}
    return [
        Row("6a", "training: train.py's tf.data + augmentation, 1 epoch", "images/s", ips["aug"],
            ratio=paired_ratio(ips["aug"], ips["numpy"]), ratio_of="6a/6c", extra=extra),
        Row("6b", "training: train.py's tf.data, --no-augment, 1 epoch", "images/s", ips["plain"],
            ratio=paired_ratio(ips["plain"], ips["numpy"]), ratio_of="6b/6c", extra=extra),
        Row("6c", "training baseline: model.fit on in-memory NumPy arrays", "images/s", ips["numpy"], extra=extra),
        Row("6d", "training: 6a with one train step per Python call", "images/s", ips["one_step"],
            ratio=paired_ratio(ips["one_step"], ips["aug"]), ratio_of="6d/6a", extra=extra),
    ]
