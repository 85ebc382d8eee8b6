"""Face-crop datasets: finding images, knowing where each came from, honest splits.

Layout: ``<dataset>/<label>/...`` with images found recursively; the label is the
first folder under the dataset (or, with explicit classes, the first folder on the
path that names one, so ``crops/subject07/real/0.png`` works too).

Every sample knows its *source* (the video it was cut from: from the crop's name
written by gather_examples.py, else its folder) and, with ``--group-pattern``, its
*subject*. Splits never put one group on both sides: frames of one video are
near-duplicates, so a random frame split measures memory, not liveness.
"""

from __future__ import annotations

import logging
import math
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from liveness import LIVE_LABEL, SPOOF_LABEL
from liveness.cli import printable
from liveness.errors import DataError
from liveness.crops import parse_crop_name

LOGGER = logging.getLogger("liveness")

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"})
SPLIT_MODES = ("group", "time", "random")
_NATURAL = re.compile(r"(\d+)")


@dataclass(frozen=True)
class Sample:
    path: Path
    label: str
    source: str  # the video (or folder of crops) this image came from
    group: str  # the unit kept on one side of a split: the subject when known, else the source
    frame: int  # order within the source, for time splits
    # Set by liveness/layouts.py for public datasets; defaults keep every other caller as it was.
    attack_type: str = ""  # the presentation-attack species (print, replay, ...); "" for live or unknown
    box: tuple[float, float, float, float] | None = None  # face box (x, y, w, h) in a 224x224-scaled frame
    official: str = ""  # the dataset's own split ("train" / "test") when it ships one


def _natural_key(text: str) -> list:
    return [int(t) if t.isdigit() else t for t in _NATURAL.split(text)]


def list_images(root: Path) -> list[Path]:
    """Every image file under `root`, symlinked folders included, each real folder once.

    (Path.rglob does not descend into symlinked folders before Python 3.13, and
    datasets are often assembled from links.)"""
    from liveness.sources import walk_files

    return walk_files(root, IMAGE_EXTENSIONS)


def find_samples(
    datasets: list[Path], classes: list[str] | None = None, group_pattern: str | None = None
) -> list[Sample]:
    """All images under the dataset folders, labelled and grouped. Non-images are ignored."""
    pattern = None
    if group_pattern:
        try:
            pattern = re.compile(group_pattern)
        except re.error as e:
            raise DataError(f"group pattern {group_pattern!r} is not a valid regular expression: {e}") from None
    samples: list[Sample] = []
    for root in datasets:
        root = Path(root)
        if not root.is_dir():
            raise DataError(f"dataset folder {root} does not exist")
        top = {p.name for p in root.iterdir() if p.is_dir()}  # is_dir follows symlinks
        # Default: the first-level folders are the classes. A tree like
        # crops/<subject>/<label>/ has none named 'real': look for real/fake deeper.
        anywhere = bool(classes) or LIVE_LABEL not in top
        wanted = set(classes) if classes else (top if not anywhere else {LIVE_LABEL, SPOOF_LABEL})
        by_source: dict[str, list[tuple[Path, str, int | None]]] = defaultdict(list)
        for path in sorted(list_images(root), key=lambda p: _natural_key(str(p))):
            parts = path.relative_to(root).parts[:-1]
            label = next((p for p in parts if p in wanted), None) if anywhere else (parts[0] if parts else None)
            if label is None:
                continue
            parsed = parse_crop_name(path.name)
            # A crop from gather_examples names its video; any other image's video is its folder.
            source = parsed[0] if parsed else f"{root.name}/{'/'.join(parts)}"
            by_source[source].append((path, label, parsed[1] if parsed else None))
        for source, items in by_source.items():
            for order, (path, label, frame) in enumerate(items):
                group = source
                if pattern is not None:
                    m = pattern.search(f"{root.resolve().name}/{path.relative_to(root)}")  # crops/subject07 given alone still names it
                    group = m.group(0) if m else source
                samples.append(Sample(path, label, source, group, frame if frame is not None else order))
    return samples


def describe(samples: list[Sample]) -> str:
    counts = Counter(s.label for s in samples)
    groups = len({s.group for s in samples})
    return ", ".join(f"{n} {label}" for label, n in sorted(counts.items())) + f" in {groups} groups"


def group_split(samples: list[Sample], test_frac: float, val_frac: float, seed: int, tries: int = 200):
    """Assign whole groups to test / val / train so each split holds every class."""
    labels = sorted({s.label for s in samples})
    per_group: dict[str, Counter] = defaultdict(Counter)
    for s in samples:
        per_group[s.group][s.label] += 1
    totals = Counter(s.label for s in samples)
    targets = {"test": test_frac, "val": val_frac}
    names = sorted(per_group)
    rng = np.random.default_rng(seed)
    needed = ["train"] + [k for k, frac in targets.items() if frac > 0]
    goal = {"test": test_frac, "val": val_frac, "train": 1.0 - test_frac - val_frac}
    best, best_cost = None, math.inf
    for _ in range(tries):
        order = [names[i] for i in rng.permutation(len(names))]
        assign, counts = {}, {k: Counter() for k in ("train", "val", "test")}
        for g in order:
            dest = "train"
            for split, frac in targets.items():
                if frac > 0 and any(counts[split][c] < frac * totals[c] for c in per_group[g]):
                    dest = split
                    break
            assign[g] = dest
            counts[dest].update(per_group[g])
        if not all(all(counts[k][c] > 0 for c in labels) for k in needed):
            continue
        # Big groups (one long video) can swamp a split: keep the permutation whose
        # per-class fractions are closest to the targets.
        cost = sum(abs(counts[k][c] / totals[c] - goal[k]) for k in goal for c in labels)
        if cost < best_cost:
            best, best_cost = assign, cost
    return best


def split_samples(
    samples: list[Sample], mode: str = "group", *, test_frac: float = 0.2, val_frac: float = 0.2, seed: int = 42
) -> tuple[dict[str, list[Sample]], str]:
    """{'train','val','test'} -> samples, and one line saying how the split was made."""
    if mode not in SPLIT_MODES:
        raise ValueError(f"split must be one of {', '.join(SPLIT_MODES)}, got {mode!r}")
    if mode == "group":
        assign = group_split(samples, test_frac, val_frac, seed)
        if assign is not None:
            out = {k: [s for s in samples if assign[s.group] == k] for k in ("train", "val", "test")}
            sizes = {k: len({s.group for s in v}) for k, v in out.items()}
            return out, (
                f"by group: no group on two sides ({sizes['train']} train / {sizes['val']} validation / "
                f"{sizes['test']} test groups)"
            )
        LOGGER.warning(
            "a class has too few sources (videos or subjects) for a split by group: splitting by time "
            "within each source instead (the last part of each video is held out). Frames of one "
            "video look alike, so this estimate is optimistic: record more videos, or people."
        )
        mode = "time"
    if mode == "time":
        out = {"train": [], "val": [], "test": []}
        by_source: dict[str, list[Sample]] = defaultdict(list)
        for s in samples:
            by_source[s.source].append(s)
        for items in by_source.values():
            items = sorted(items, key=lambda s: s.frame)
            n = len(items)
            n_test, n_val = int(round(n * test_frac)), int(round(n * val_frac))
            cut_val, cut_test = n - n_test - n_val, n - n_test
            out["train"] += items[:cut_val]
            out["val"] += items[cut_val:cut_test]
            out["test"] += items[cut_test:]
        return out, f"by time within each source (last {test_frac:.0%} test, the {val_frac:.0%} before it validation)"
    LOGGER.warning(
        "--split random puts frames of one video on both sides: its scores measure memory of "
        "those videos, not liveness on new ones (this reproduces the 2019 tutorial)."
    )
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(samples))
    n_test, n_val = int(round(len(samples) * test_frac)), int(round(len(samples) * val_frac))
    pick = lambda idx: [samples[i] for i in sorted(idx)]  # noqa: E731
    return {
        "test": pick(order[:n_test]),
        "val": pick(order[n_test:n_test + n_val]),
        "train": pick(order[n_test + n_val:]),
    }, "random frames (leaks: frames of one video on both sides)"


def crop_scaled_box(img: np.ndarray, box: tuple[float, float, float, float], scale: float = 224.0) -> np.ndarray:
    """The pixels of a box given as (x, y, w, h) in a `scale` x `scale` version of the image
    (CelebA-Spoof's *_BB.txt convention), clamped to the image."""
    h, w = img.shape[:2]
    x, y, bw, bh = box
    x1, y1 = int(max(0, x * w / scale)), int(max(0, y * h / scale))
    x2, y2 = int(min(w, (x + bw) * w / scale)), int(min(h, (y + bh) * h / scale))
    return img[y1:y2, x1:x2]


def read_images(samples: list[Sample], *, allow_empty: bool = False, quiet: bool = False) -> tuple[list[np.ndarray], list[Sample]]:
    """BGR images as stored. The one policy for unreadable files: skip, count, say so;
    a DataError only when nothing readable is left (unless allow_empty)."""
    faces, kept, bad = [], [], []
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)  # libpng's own complaint is not ours
    try:
        for s in samples:
            img = cv2.imread(str(s.path), cv2.IMREAD_COLOR)
            if img is not None and s.box is not None:
                img = crop_scaled_box(img, s.box)
            if img is None or img.size == 0:
                bad.append(s.path)
                continue
            faces.append(img)
            kept.append(s)
    finally:
        cv2.utils.logging.setLogLevel(level)
    if bad and not quiet:  # quiet: the caller sums chunks and says it once
        LOGGER.warning("skipped %d unreadable image(s), e.g. %s", len(bad), printable(bad[0]))
    if not kept and not allow_empty:
        raise DataError("no readable images left in the dataset")
    return faces, kept


def check_classes(samples: list[Sample], live_label: str = LIVE_LABEL, min_per_class: int = 3) -> list[str]:
    """The sorted class names, or a DataError naming what is missing."""
    if not samples:
        raise DataError("the dataset holds no images (expected <dataset>/<label>/*.png)")
    counts = Counter(s.label for s in samples)
    if len(counts) < 2:
        raise DataError(f"the dataset holds one class only ({next(iter(counts))}); liveness needs real and fake")
    if live_label not in counts:
        raise DataError(f"no '{live_label}' class in the dataset (found {', '.join(sorted(counts))}); name the live class")
    small = [f"{c} ({n})" for c, n in counts.items() if n < min_per_class]
    if small:
        raise DataError(f"too few images to split in class {', '.join(small)}: at least {min_per_class} needed")
    return sorted(counts)
