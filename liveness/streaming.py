"""Datasets larger than memory: features in chunks, cached on disk, on every core; CNN
input read from the files by tf.data.

Memory is bounded by the chunk (LBP) or the batch (CNN), not by the dataset: an image
is decoded, turned into its feature row (a few hundred bytes) and dropped; the rows are
cached on disk (liveness/featcache.py).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from liveness.dataset import Sample, check_classes, describe, read_images
from liveness.errors import DataError
from liveness.featcache import lbp_features_streamed
from liveness.lbp import LBPSettings
from liveness.training import FaceSet

LOGGER = logging.getLogger("liveness")
class LazyFaces:
    """The decoded crops of samples, read when indexed (compare.py times data.faces[0])."""

    def __init__(self, samples: list[Sample]) -> None:
        self.samples = samples

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> np.ndarray:
        faces, _ = read_images([self.samples[i]])
        return faces[0]


class LazyCrops:
    """CNN input read from the files: indexing selects, `astype` decodes (predict_live's
    256-image slices), `stream` gives training a tf.data pipeline of paths decoded after
    the shuffle, so memory holds batches, not the dataset."""

    def __init__(self, samples: list[Sample], size: int, idx: np.ndarray | None = None) -> None:
        self.samples = samples
        self.size = size
        self.idx = np.arange(len(samples)) if idx is None else np.asarray(idx)

    def __len__(self) -> int:
        return len(self.idx)

    def __getitem__(self, key) -> LazyCrops:
        return LazyCrops(self.samples, self.size, self.idx[key])

    def decode(self, positions) -> np.ndarray:
        """(n, size, size, 3) uint8 RGB, exactly as FaceSet.cnn_input prepares them."""
        from liveness.runtime import prepare_faces

        out = np.zeros((len(positions), self.size, self.size, 3), np.uint8)
        for j, i in enumerate(positions):
            faces, _ = read_images([self.samples[int(i)]], allow_empty=True)
            if faces:
                out[j] = prepare_faces(faces, self.size)[0]
        return out

    def astype(self, dtype) -> np.ndarray:
        return self.decode(self.idx).astype(dtype)

    def __array__(self, dtype=None, copy=None):
        x = self.decode(self.idx)
        return x if dtype is None else x.astype(dtype)

    def stream(self, y: np.ndarray, *, shuffle_seed: int | None = None):
        """tf.data of (uint8 image, label): paths shuffled, then decoded one by one."""
        import tensorflow as tf

        size = self.size

        def load(i):
            return self.decode([int(i)])[0]

        ds = tf.data.Dataset.from_tensor_slices((self.idx.astype(np.int64), y))
        if shuffle_seed is not None:
            ds = ds.shuffle(len(self.idx), seed=shuffle_seed, reshuffle_each_iteration=True)

        def fetch(i, label):
            img = tf.numpy_function(load, [i], tf.uint8, stateful=False)
            img.set_shape((size, size, 3))
            return img, label

        # Deterministic order: the same seed gives the same batches as the in-memory path.
        return ds.map(fetch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


class StreamingFaceSet(FaceSet):
    """FaceSet's interface without holding the images: features from the (cached, parallel)
    streamed extraction, CNN input as LazyCrops."""

    def __init__(self, samples: list[Sample], live_label: str, *, workers: int | None = None,
                 cache_dir: Path | None = None, progress: bool = True) -> None:
        super().__init__(LazyFaces(samples), samples, live_label)
        self.workers = workers
        self.cache_dir = cache_dir
        self.progress = progress

    def lbp_features(self, settings: LBPSettings) -> np.ndarray:
        key = settings.feature_key()
        if key not in self._lbp:
            x, ok = lbp_features_streamed(self.samples, settings, workers=self.workers, cache_dir=self.cache_dir,
                                          progress=self.progress)
            if not ok.all():
                raise DataError(f"{int((~ok).sum())} image(s) became unreadable after the dataset was checked")
            self._lbp[key] = x
        return self._lbp[key]

    def cnn_input(self, size: int) -> LazyCrops:
        return LazyCrops(self.samples, size)


def load_streaming_faceset(
    samples: list[Sample], live_label: str, *, settings: LBPSettings | None, workers: int | None = None,
    cache_dir: Path | None = None, min_per_class: int = 3, progress: bool = True,
) -> StreamingFaceSet:
    """A StreamingFaceSet of the readable samples (the feature pass, when LBP is used, checks them)."""
    check_classes(samples, live_label, min_per_class=min_per_class)
    if settings is not None:
        x, ok = lbp_features_streamed(samples, settings, workers=workers, cache_dir=cache_dir, progress=progress)
        samples = [s for s, o in zip(samples, ok) if o]
        if not samples:
            raise DataError("no readable images left in the dataset")
        check_classes(samples, live_label, min_per_class=min_per_class)
        data = StreamingFaceSet(samples, live_label, workers=workers, cache_dir=cache_dir, progress=progress)
        data._lbp[settings.feature_key()] = x[ok]
    else:
        data = StreamingFaceSet(samples, live_label, workers=workers, cache_dir=cache_dir, progress=progress)
    LOGGER.info("dataset: %s", describe(samples))
    return data


def open_dataset(
    dataset: list, *, layout: str = "auto", classes=None, group_pattern: str | None = None, live_label: str,
    padding: float = 0.0, max_per_group: int | None = None, workers: int | None = None,
    cache_dir: Path | None = None, cache: bool = True, settings: LBPSettings | None = None, min_per_class: int = 3,
) -> StreamingFaceSet:
    """The one way train.py and compare.py open data: any layout, sampled, streamed."""
    from liveness.layouts import default_cache_dir, find_layout_samples, limit_per_group

    root = Path(cache_dir) if cache_dir else default_cache_dir()
    samples = find_layout_samples([Path(d) for d in dataset], layout, classes=classes, group_pattern=group_pattern,
                                  padding=padding, cache_dir=root)
    samples = limit_per_group(samples, max_per_group)
    return load_streaming_faceset(samples, live_label, settings=settings, workers=workers,
                                  cache_dir=root if cache else None, min_per_class=min_per_class)
