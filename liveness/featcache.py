"""LBP feature rows computed in chunks on every core and cached on disk.

Rows are cached in ``<cache>/lbp/<settings hash>/<shard>.npz``, one row per file keyed
by (path, size, mtime, face box), so a second run, another fold or another script
reuses them, and changed settings (another folder) or a changed file (another key)
miss. Kept free of TensorFlow and training imports: worker processes start from here.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from liveness.dataset import Sample, read_images
from liveness.lbp import LBPClassifier, LBPSettings

LOGGER = logging.getLogger("liveness")
CHUNK = 32  # images decoded at once per worker: bounds memory (crops can be large), amortises the process hop
SHARD_ROWS = 1024  # feature rows per cache file: few files, little work lost to an interruption


def settings_key(settings: LBPSettings) -> str:
    """Names the cache folder: the feature settings only, so settings that differ in training alone share it."""
    return hashlib.sha1(json.dumps(settings.feature_kwargs(), sort_keys=True).encode()).hexdigest()[:16]


def file_key(s: Sample) -> str:
    """Changes when the file, its face box or its place does."""
    try:
        st = os.stat(s.path)
        stamp = f"{st.st_size}:{st.st_mtime_ns}"
    except OSError:
        stamp = "missing"
    return hashlib.sha1(f"{Path(s.path).resolve()}|{stamp}|{s.box}".encode()).hexdigest()


def _extract(settings: LBPSettings, samples: list[Sample]) -> tuple[np.ndarray, np.ndarray]:
    """(features of the readable images, readable mask) for one chunk (runs in a worker)."""
    faces, kept = read_images(samples, allow_empty=True, quiet=True)
    ok = np.zeros(len(samples), bool)
    pos = {id(s): i for i, s in enumerate(samples)}
    ok[[pos[id(s)] for s in kept]] = True
    clf = LBPClassifier.from_settings(settings)
    x = clf.features(faces) if faces else np.zeros((0, clf.n_features))
    return x, ok


def pool_context():
    """spawn: a forked child inherits OpenCV's (or TensorFlow's) thread pools mid-state
    and can hang; a fresh interpreter costs a second or two, once per pool."""
    import multiprocessing

    return multiprocessing.get_context("spawn")


PARENT_CHECK_S = 1.0  # how often a worker looks for its parent


def exit_with_parent() -> None:
    """Worker start-up: leave as soon as the parent process is gone. Ctrl-C reaches the
    workers too, but a parent killed alone (kill, an OOM kill, a CI timeout) would leave
    them finishing their job, up to an hour of CNN training, for nobody."""
    import threading
    import time

    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:  # a dead parent's children are handed to another process
            time.sleep(PARENT_CHECK_S)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def one_thread() -> None:
    """Worker start-up: one OpenCV thread each, the processes already share the cores."""
    import cv2

    cv2.setNumThreads(1)
    exit_with_parent()


def default_workers() -> int:
    return os.cpu_count() or 1


class FeatureCache:
    """Feature rows by file key for one LBPSettings, in npz shards under `root`."""

    def __init__(self, root: Path | None, settings: LBPSettings) -> None:
        self.folder = Path(root) / "lbp" / settings_key(settings) if root else None
        self.rows: dict[str, np.ndarray] = {}
        if self.folder is not None and self.folder.is_dir():
            for shard in sorted(self.folder.glob("*.npz")):
                try:
                    with np.load(shard) as f:
                        self.rows.update(zip(f["keys"].tolist(), f["x"]))
                except (OSError, ValueError, KeyError):
                    LOGGER.warning("ignoring an unreadable feature-cache shard %s", shard)

    def add(self, keys: list[str], x: np.ndarray) -> None:
        from liveness.fileio import atomic_path

        self.rows.update(zip(keys, x))
        if self.folder is None or not keys:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        name = hashlib.sha1("".join(keys).encode()).hexdigest()[:20]
        with atomic_path(self.folder / f"{name}.npz") as tmp, open(tmp, "wb") as fh:
            np.savez(fh, keys=np.array(keys), x=x)


def lbp_features_streamed(
    samples: list[Sample], settings: LBPSettings, *, workers: int | None = None, cache_dir: Path | None = None,
    progress: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """((N, D) features, (N,) readable mask) of the samples; unreadable rows are zeros.

    Rows equal the serial, in-memory LBPClassifier.features of the same crops whatever
    `workers` is: each chunk runs the same code, and the results come back in order.
    """
    from tqdm import tqdm

    workers = workers or default_workers()
    cache = FeatureCache(cache_dir, settings)
    keys = [file_key(s) for s in samples]
    todo = [i for i, k in enumerate(keys) if k not in cache.rows]
    dim = LBPClassifier.from_settings(settings).n_features
    bad: set[str] = set()
    if todo:
        chunks = [todo[i:i + CHUNK] for i in range(0, len(todo), CHUNK)]
        LOGGER.info("LBP features of %d image(s) (%d cached) on %d worker(s)", len(todo), len(samples) - len(todo), workers)
        bar = tqdm(total=len(todo), desc="LBP features", unit="img", disable=None if progress else True)  # None: off when stderr is no terminal
        try:
            if workers == 1 or len(chunks) == 1:
                results = (_extract(settings, [samples[i] for i in c]) for c in chunks)
                pool = None
            else:
                pool = ProcessPoolExecutor(workers, mp_context=pool_context(), initializer=one_thread)
                results = pool.map(_extract, [settings] * len(chunks), [[samples[i] for i in c] for c in chunks])
            pending: list[tuple[list[str], np.ndarray]] = []  # rows not yet in a cache file
            for n, (c, (x, ok)) in enumerate(zip(chunks, results), 1):
                good = [i for i, o in zip(c, ok) if o]
                bad.update(keys[i] for i, o in zip(c, ok) if not o)
                pending.append(([keys[i] for i in good], x))
                if n == len(chunks) or sum(len(k) for k, _ in pending) >= SHARD_ROWS:  # an interruption loses less than a shard
                    cache.add([k for ks, _ in pending for k in ks], np.concatenate([x for _, x in pending]))
                    pending = []
                bar.update(len(c))
        finally:
            bar.close()
            if pool is not None:
                pool.shutdown()
    x = np.zeros((len(samples), dim))
    ok = np.zeros(len(samples), bool)
    for i, k in enumerate(keys):
        if k in cache.rows:
            x[i] = cache.rows[k]
            ok[i] = True
    if bad:
        first = next(s.path for s, k in zip(samples, keys) if k in bad)
        LOGGER.warning("skipped %d unreadable image(s), e.g. %s", len(bad), first)
    return x, ok
