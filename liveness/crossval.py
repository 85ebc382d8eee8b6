"""Folds over groups, leave-one-group-out evaluation, and the tables they make.

A group is what must never sit on both sides of a split: a recording set-up
(`--group-pattern 'subject\\d+'`), else a source video. Frames of one video are
near-duplicates, so a split by frame measures memory, not liveness.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import re
import statistics
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from liveness.dataset import Sample, group_split
from liveness.errors import DataError
from liveness.fileio import file_digest
from liveness.metrics import per_source, summarize
from liveness.report import fmt

LOGGER = logging.getLogger("liveness")

ERROR_METRICS = ("acer", "apcer", "bpcer", "auc", "eer")
METRICS = (*ERROR_METRICS, "cal_acer")  # cal_acer: after the one-camera calibration (calibrated_row)
CALIBRATION_SHARE = 0.25  # the held-out group's first live images (in frame order) that calibrate it


def _both_classes(samples: Sequence[Sample], positions) -> bool:
    return len({samples[i].label for i in positions}) >= 2


def group_kfold(samples: Sequence[Sample], k: int, seed: int) -> list[np.ndarray] | None:
    """k disjoint sets of positions, whole groups each, balanced per class; None if impossible."""
    by_group: dict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(samples):
        by_group[s.group].append(i)
    if len(by_group) < k:
        return None
    rng = np.random.default_rng(seed)
    names = sorted(by_group)
    names = [names[i] for i in rng.permutation(len(names))]
    names.sort(key=lambda g: -len(by_group[g]))  # largest first, ties in random order
    load = [Counter() for _ in range(k)]
    members: list[list[int]] = [[] for _ in range(k)]
    for g in names:
        counts = Counter(samples[i].label for i in by_group[g])
        # The fold this group unbalances least: fewest images of the group's own classes.
        f = min(range(k), key=lambda j: (sum(load[j][c] for c in counts), sum(load[j].values())))
        load[f].update(counts)
        members[f] += by_group[g]
    folds = [np.array(sorted(m)) for m in members]
    everything = set(range(len(samples)))
    if any(len(f) == 0 or not _both_classes(samples, everything - set(f.tolist())) for f in folds):
        return None
    return folds


def time_blocks(samples: Sequence[Sample], k: int, val_frac: float) -> list[np.ndarray]:
    """Held-out positions per fold: the k-th time block of every source (k=1: its last val_frac)."""
    by_source: dict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(samples):
        by_source[s.source].append(i)
    folds: list[list[int]] = [[] for _ in range(k)]
    for items in by_source.values():
        items = sorted(items, key=lambda i: samples[i].frame)
        n = len(items)
        if k == 1:
            folds[0] += items[n - max(1, int(round(n * val_frac))):] if n > 1 else []
        else:
            for j in range(k):
                folds[j] += items[j * n // k:(j + 1) * n // k]
    return [np.array(sorted(f)) for f in folds]


def make_folds(samples: Sequence[Sample], k: int, *, val_frac: float, seed: int) -> tuple[list[tuple[np.ndarray, np.ndarray]], str]:
    """(fit positions, held-out positions) per fold, and one line saying how they were made.

    k > 1: group k-fold. k == 1: one validation split of the groups (val_frac of them).
    When the groups cannot give every fold both classes (one video per class, say),
    time blocks within each source instead, with a warning: optimistic, but honest
    about being so.
    """
    n = len(samples)
    if len({s.label for s in samples}) < 2:
        raise DataError("the training images hold one class only")
    held_sets: list[np.ndarray] | None
    if k > 1:
        held_sets = group_kfold(samples, k, seed)
        how = f"{k} folds by group"
    else:
        assign = group_split(list(samples), 0.0, val_frac, seed)
        held = np.array([i for i, s in enumerate(samples) if assign[s.group] == "val"]) if assign else np.zeros(0, int)
        held_sets = [held] if len(held) else None
        n_val = len({samples[i].group for i in held})
        how = f"{n_val} of {len({s.group for s in samples})} groups held out"
    if held_sets is not None:
        folds = [(np.setdiff1d(np.arange(n), h), h) for h in held_sets]
        # Every fit needs both classes; a held-out part may hold one (a set-up with live
        # faces only), as long as the out-of-fold scores together hold both.
        held_all = np.concatenate([h for _, h in folds])
        if all(_both_classes(samples, f) and len(h) for f, h in folds) and _both_classes(samples, held_all):
            return folds, how
    LOGGER.warning(
        "too few groups (videos or subjects) per class to hold whole groups out: the threshold comes from "
        "time blocks within each video instead. Frames of one video look alike, so it is optimistic: "
        "record more videos, or people."
    )
    held_sets = time_blocks(samples, max(k, 2) if k > 1 else 1, val_frac)
    folds = [(np.setdiff1d(np.arange(n), h), h) for h in held_sets if len(h)]
    folds = [(f, h) for f, h in folds if _both_classes(samples, f)]
    if not folds:
        raise DataError("too few images to hold any out: add images, or videos, of each class")
    return folds, f"{len(folds)} time block(s) within each source"


def loso_groups(samples: Sequence[Sample]) -> list[str]:
    """The groups holding both classes: each can be a held-out test set."""
    labels: dict[str, set] = defaultdict(set)
    for s in samples:
        labels[s.group].add(s.label)
    every = {s.label for s in samples}
    return sorted(g for g, have in labels.items() if have == every)


def fold_row(group: str, is_live: np.ndarray, scores: np.ndarray, threshold: float, sources: list[str]) -> dict:
    """One held-out group's figures at a threshold fixed before it was seen."""
    m = summarize(is_live, scores, threshold)
    videos = per_source(sources, is_live, scores, threshold)
    return {
        "group": group, "n_live": m["n_live"], "n_attack": m["n_attack"], "threshold": threshold,
        **{k: m[k] for k in ERROR_METRICS},
        "videos": len(videos), "videos_right": sum(v["correct"] for v in videos),
    }


def frame_positions(samples: list) -> np.ndarray:
    """Each sample's place in frame order (by source video, then frame): the order in
    which a camera would have filmed them, for the one-camera calibration."""
    order = sorted(range(len(samples)), key=lambda k: (str(samples[k].source), samples[k].frame))
    position = np.empty(len(samples), int)
    position[np.array(order, int)] = np.arange(len(samples))
    return position


def calibrated_row(is_live: np.ndarray, scores: np.ndarray, order: np.ndarray, offset: float | None) -> dict:
    """The one-camera calibration, as a user would run it: the threshold from the first
    CALIBRATION_SHARE of the held-out group's live images (in frame order) alone, then
    APCER / BPCER / ACER on the rest of its live images and all its attacks."""
    from liveness.calibration import calibrated_threshold

    live = np.flatnonzero(is_live)
    live = live[np.argsort(order[live], kind="stable")]
    n_cal = max(1, int(round(len(live) * CALIBRATION_SHARE)))
    if offset is None or len(live) < 2:
        return {"cal_threshold": None, "cal_acer": math.nan, "cal_apcer": math.nan, "cal_bpcer": math.nan}
    threshold = calibrated_threshold(scores[live[:n_cal]], offset)
    rest = np.setdiff1d(np.arange(len(scores)), live[:n_cal])
    m = summarize(is_live[rest], scores[rest], threshold)
    return {"cal_threshold": threshold, "cal_acer": m["acer"], "cal_apcer": m["apcer"], "cal_bpcer": m["bpcer"]}


def summary(rows: list[dict]) -> dict:
    """Mean, spread and worst of each metric over the held-out groups (NaN folds left out)."""
    out = {}
    for key in METRICS:
        vals = [r[key] for r in rows if r.get(key) is not None and not math.isnan(r[key])]
        out[key] = {
            "mean": statistics.fmean(vals) if vals else math.nan,
            "std": statistics.pstdev(vals) if len(vals) > 1 else 0.0,
            "worst": (min(vals) if key == "auc" else max(vals)) if vals else math.nan,
        }
    out["videos_right"] = f"{sum(r['videos_right'] for r in rows)}/{sum(r['videos'] for r in rows)}"
    out["folds"] = len(rows)
    return out


def format_table(rows: list[dict], s: dict) -> str:
    lines = [f"{'held-out group':<16} {'live':>5} {'attack':>6} {'APCER':>7} {'BPCER':>7} {'ACER':>7} {'AUC':>6} {'EER':>7} {'cal.ACER':>8}"]
    for r in rows:
        lines.append(
            f"{r['group']:<16} {r['n_live']:>5} {r['n_attack']:>6} {fmt(r['apcer']):>7} {fmt(r['bpcer']):>7} "
            f"{fmt(r['acer']):>7} {fmt(r['auc'], False):>6} {fmt(r['eer']):>7} {fmt(r.get('cal_acer')):>8}"
        )
    for stat in ("mean", "std", "worst"):
        lines.append(
            f"{stat:<16} {'':>5} {'':>6} {fmt(s['apcer'][stat]):>7} {fmt(s['bpcer'][stat]):>7} {fmt(s['acer'][stat]):>7} "
            f"{fmt(s['auc'][stat], False):>6} {fmt(s['eer'][stat]):>7} {fmt(s['cal_acer'][stat]):>8}"
        )
    return "\n".join(lines)


def samples_digest(samples: Sequence[Sample]) -> str:
    """What a fold's result depends on in the data, in order: every sample's content (the
    file's bytes, not its path or date: a dataset copied, moved or restored from a backup
    keeps its key), face box, label, group and frame. Reads every file once."""
    digest = hashlib.sha1()
    for s in samples:
        try:
            content = file_digest(s.path, "sha1")
        except OSError:
            content = "unreadable"
        digest.update(f"|{content}:{s.box}:{s.label}:{s.group}:{s.frame}".encode())
    return digest.hexdigest()


class FoldStore:
    """Finished folds on disk, one JSON file each, so that a long comparison (hours of
    CNN training on a CPU) stopped by Ctrl-C, a crash or the end of a working day goes on
    where it stopped. A fold's file is named by its held-out group under a folder named
    by everything that decides its result: the training configuration (seed included)
    and the data (`samples_digest`, computed once for all configurations). The code is
    not in the key: a stored fold is reused only when asked (compare.py --resume)."""

    def __init__(self, root: Path, name: str, cfg, data_digest: str, *, reuse: bool) -> None:
        digest = hashlib.sha1(json.dumps(dataclasses.asdict(cfg), sort_keys=True, default=str).encode())
        digest.update(data_digest.encode())
        self.folder = Path(root) / f"{name}-{digest.hexdigest()[:16]}"
        self.reuse = reuse

    def path(self, group: str) -> Path:
        # A group can be a video's path: keep a readable part, and a hash so that two never share a file.
        readable = re.sub(r"[^A-Za-z0-9._-]+", "_", group)[-40:]
        return self.folder / f"{readable}-{hashlib.sha1(group.encode()).hexdigest()[:8]}.json"

    def get(self, group: str) -> dict | None:
        if not self.reuse:
            return None
        try:
            row = json.loads(self.path(group).read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:
            LOGGER.warning("recomputing %s: its stored fold %s is unreadable (%s)", group, self.path(group), e)
            return None
        return row if isinstance(row, dict) and row.get("group") == group else None

    def put(self, row: dict) -> None:
        """Keep a finished fold; a full disk costs only the chance to resume it, not the run."""
        from liveness.fileio import write_json

        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            write_json(self.path(row["group"]), row)
        except OSError as e:
            LOGGER.warning("could not keep the fold on %s in %s (%s): --resume would train it again",
                           row["group"], self.folder, e.strerror or e)


def _fold(cfg, data, group: str, verbose) -> tuple[dict, object]:
    from liveness.training import fit_with_threshold

    test = np.flatnonzero(data.groups == group)
    train = np.flatnonzero(data.groups != group)
    proc = fit_with_threshold(cfg, data, train, verbose=verbose)
    scores = proc.fitted.score(data, test)
    row = fold_row(group, data.is_live[test], scores, proc.threshold, [data.samples[j].source for j in test])
    # The held-out group's images in frame order, for its one-camera calibration.
    position = frame_positions([data.samples[j] for j in test])
    row.update(calibrated_row(data.is_live[test], scores, position, proc.live_offset))
    row["inner_acer"], row["inner_cal_acer"] = proc.inner_acer, proc.inner_cal_acer
    return row, proc


def eta(done: int, total: int, started: float) -> str:
    """'3 min so far, about 14 min left' after `done` of `total` equal jobs begun at `started`."""
    spent = time.perf_counter() - started
    if not done:
        return f"{spent / 60:.0f} min so far"
    return f"{spent / 60:.0f} min so far, about {spent / done * (total - done) / 60:.0f} min left"


MAX_CNN_FOLD_WORKERS = 4  # each holds its own TensorFlow runtime and model in memory


def cnn_worker_start(threads: int) -> None:
    """A CNN fold worker's start-up: OpenCV on one thread, TensorFlow on `threads`. A small
    CNN at a small batch gains less from a second thread than from a second fold (and
    the float sums, so the last digits of the results, depend on the thread count)."""
    from liveness.featcache import one_thread

    one_thread()
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)


def _parallel_folds(cfg, data, groups: list[str], workers: int, verbose, store: FoldStore | None) -> dict[str, tuple]:
    """Folds in worker processes: each gets the labels and what its scorer reads, the
    LBP feature matrix (small) and a CNN's crops at its input size (small, or read from
    their files by the worker), never the decoded images. Each fold goes to `store` as
    soon as it is done; returns {group: (row, Procedure)}."""
    import functools
    import os
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from liveness.featcache import one_thread, pool_context
    from liveness.training import FaceSet

    light = FaceSet([], data.samples, data.live_label)
    if cfg.weight > 0:
        light._lbp[cfg.lbp.feature_key()] = data.lbp_features(cfg.lbp)
        if cfg.lbp.augment:  # the augmented copies' rows too: the workers have no images to augment
            data.lbp_augmented(cfg.lbp, cfg.seed, np.arange(len(data)))
            light._lbp_aug = dict(data._lbp_aug)
        if cfg.lbp.synthetic:  # and the simulated re-captures'
            data.lbp_synthetic(cfg.lbp, cfg.seed, np.arange(len(data)))
            light._lbp_syn = dict(data._lbp_syn)
    start = one_thread
    if cfg.uses_cnn:
        workers = min(workers, MAX_CNN_FOLD_WORKERS)
        light._cnn[cfg.input_size] = data.cnn_input(cfg.input_size)
        start = functools.partial(cnn_worker_start, max(1, (os.cpu_count() or 1) // workers))
    LOGGER.info("%d folds on %d worker processes", len(groups), workers)
    done, started = {}, time.perf_counter()
    with ProcessPoolExecutor(workers, mp_context=pool_context(), initializer=start) as pool:
        futures = {pool.submit(_fold, cfg, light, g, verbose): g for g in groups}
        try:
            for future in as_completed(futures):
                done[futures[future]] = future.result()
                LOGGER.info("fold on %s done (%d of %d; %s)", futures[future], len(done), len(groups),
                            eta(len(done), len(groups), started))
                if store is not None:
                    store.put(done[futures[future]][0])
        except BaseException:  # a failed fold or Ctrl-C: the folds not yet begun are not begun
            for future in futures:
                future.cancel()
            raise
    return done


def _cnn_folds_may_run_in_parallel() -> bool:
    """Not on a GPU (each process would claim its memory) nor under a distribution strategy."""
    from liveness import distribute

    if distribute.is_distributed():
        return False
    import tensorflow as tf

    return not tf.config.list_physical_devices("GPU")


def leave_one_group_out(cfg, data, *, groups: list[str] | None = None, verbose: int | None = 0,
                        workers: int | None = None, store: FoldStore | None = None) -> tuple[list[dict], object]:
    """Per held-out group: the whole training procedure on the other groups, then its test.

    The threshold comes from the training groups' out-of-fold scores, exactly as for
    the model train.py saves, so this estimates what the saved model does on a new group.
    Returns the per-group rows and the last computed fold's Procedure (its fitted scorer,
    for timing; None when `store` held every fold). Each finished fold goes to `store`.
    """
    groups = groups if groups is not None else loso_groups(data.samples)
    if not groups:
        raise DataError("no group holds both classes: set a group pattern that names subjects or set-ups")
    stored = {g: row for g in groups if store is not None and (row := store.get(g)) is not None}
    if stored:
        LOGGER.info("%d of %d folds read back from %s", len(stored), len(groups), store.folder)
    todo = [g for g in groups if g not in stored]
    if workers is None:  # a streamed dataset says how many cores it may use (None: all); in memory, one
        from liveness.featcache import default_workers

        workers = (getattr(data, "workers", None) or default_workers()) if hasattr(data, "workers") else 1
    done = _parallel_folds(cfg, data, todo, min(workers, len(todo)), verbose, store) if (
        workers > 1 and len(todo) > 1 and (not cfg.uses_cnn or _cnn_folds_may_run_in_parallel())) else {}
    rows, proc, started, computed = [], None, time.perf_counter(), 0
    for i, group in enumerate(groups, 1):
        if group in stored:
            row = stored[group]
        elif group in done:
            row, proc = done[group]
        else:
            LOGGER.info("fold %d/%d: testing on %s (%s)", i, len(groups), group,
                        eta(computed, len(todo), started))
            computed += 1
            row, proc = _fold(cfg, data, group, verbose)
            if store is not None:
                store.put(row)
        rows.append(row)
        LOGGER.info("  %s: APCER %s BPCER %s ACER %s AUC %s; calibrated ACER %s", group, fmt(row["apcer"]),
                    fmt(row["bpcer"]), fmt(row["acer"]), fmt(row["auc"], False), fmt(row["cal_acer"]))
    return rows, proc
