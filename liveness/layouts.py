"""Public anti-spoofing datasets as they are distributed: find, label, group and crop.

Layouts (``--layout``):

- ``folders``: ``<dataset>/<class>/...`` as liveness/dataset.py always read it (crops from
  gather_examples.py, or ``<subject>/real|fake`` trees).
- ``lcc-fasd``: ``LCC_FASD_training|development|evaluation/real|spoof/*.png``; the
  part's name is its official split.
- ``celeba-spoof``: ``[Data/]train|test/<subject>/live|spoof/<id>.jpg`` whole photos, a
  ``<id>_BB.txt`` face box next to each (x y w h score, in the photo scaled to 224x224),
  attack types and the official split in ``metas/intra_test/{train,test}_label.json``
  (index 40 of each list is the spoof type).
- ``nuaa``: ``ClientFace|ImposterFace/<subject>/*.jpg`` (also ``*Raw`` / ``*Normalized``).
- ``videos``: a folder of videos per subject (Replay-Attack, CASIA-FASD, ...), the class
  and attack type in the file name or its folders; the detector cuts the faces once
  into a cache folder keyed by the video's hash and later runs reuse them.

Every class name maps to live / attack (``live real client genuine`` / ``spoof fake
imposter attack``); the subject is the group, so no person sits on both sides of a split.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
from collections import defaultdict
from pathlib import Path

from liveness import LIVE_LABEL, ROOT, SPOOF_LABEL
from liveness.cli import positive_int
from liveness.dataset import (
    IMAGE_EXTENSIONS,
    Sample,
    _natural_key,
    find_samples,
    list_images,
)
from liveness.errors import DataError

LOGGER = logging.getLogger("liveness")

LAYOUTS = ("auto", "folders", "lcc-fasd", "celeba-spoof", "nuaa", "videos")
LIVE_WORDS = ("live", "real", "client", "genuine")
ATTACK_WORDS = ("spoof", "fake", "imposter", "impostor", "attack")
# CelebA-Spoof's spoof-type codes (label list index 40), as its README names them.
CELEBA_SPOOF_TYPES = {
    0: "live", 1: "photo", 2: "poster", 3: "a4", 4: "face_mask", 5: "upper_body_mask", 6: "region_mask",
    7: "pc", 8: "pad", 9: "phone", 10: "3d_mask",
}
CELEBA_TYPE_INDEX = 40
# Words in a video's name or folders that name the attack instrument (Replay-Attack, CASIA, OULU...).
ATTACK_TYPE_WORDS = ("print", "photo", "paper", "cut", "warped", "replay", "video", "screen", "mobile", "tablet",
                     "highdef", "phone", "mask", "hand", "fixed")
VIDEO_SKIP = 5  # the videos layout cuts every VIDEO_SKIP-th frame: neighbouring frames add little
CACHE_ENV = "LIVENESS_CACHE"


def default_cache_dir() -> Path:
    """Where feature and crop caches live: $LIVENESS_CACHE, else <project>/.cache."""
    return Path(os.environ.get(CACHE_ENV) or ROOT / ".cache")


def class_of(name: str) -> str | None:
    """LIVE_LABEL / SPOOF_LABEL for a folder or file name that says which, else None."""
    low = name.lower()
    for label, words in ((LIVE_LABEL, LIVE_WORDS), (SPOOF_LABEL, ATTACK_WORDS)):
        if low.startswith(words):
            return label
    return None


def _dirs(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if p.is_dir()), key=lambda p: _natural_key(p.name))


def _has_images(folder: Path) -> bool:
    return any(p.suffix.lower() in IMAGE_EXTENSIONS for p in folder.iterdir() if p.is_file())


def _celeba_root(root: Path) -> Path | None:
    """The folder holding train/ and test/ (or subjects) of a CelebA-Spoof tree, else None."""
    for base in (root / "Data", root):
        if not base.is_dir():
            continue
        parts = [base / p for p in ("train", "test") if (base / p).is_dir()] or [base]
        for part in parts:
            for subject in _dirs(part)[:20]:
                if any((subject / c).is_dir() and any(subject.joinpath(c).glob("*_BB.txt")) for c in ("live", "spoof")):
                    return base
    return None


def detect_layout(root: Path) -> str:
    """The layout of one dataset folder (see the module docstring)."""
    from liveness.sources import list_videos

    root = Path(root)
    if not root.is_dir():
        raise DataError(f"dataset folder {root} does not exist")
    names = {p.name.lower() for p in _dirs(root)}
    if root.name.lower().startswith("lcc_fasd") or any(n.startswith("lcc_fasd") for n in names):
        return "lcc-fasd"
    if any(n.startswith(("clientface", "imposterface", "clientraw", "imposterraw", "clientnormalized", "impostornormalized",
                         "imposternormalized")) for n in names):
        return "nuaa"
    if (root / "metas").is_dir() or _celeba_root(root) is not None:
        return "celeba-spoof"
    if not list_images(root) and list_videos(root):
        return "videos"
    return "folders"


def add_layout_options(ap: argparse.ArgumentParser, *, streaming: bool = True) -> None:
    """The dataset flags train.py, evaluate.py and compare.py share (evaluate.py scores
    crops batch by batch and computes no cached features: streaming=False)."""
    ap.add_argument("--layout", choices=LAYOUTS, default="auto",
                    help="how the dataset folders are organised (auto: recognise LCC-FASD, CelebA-Spoof, NUAA, video sets)")
    ap.add_argument("--max-per-group", type=positive_int, default=None,
                    help="at most N images of each class per group (subject), evenly spread: quick runs")
    ap.add_argument("--cache-dir", default=None, help=f"feature and crop cache (default ${CACHE_ENV} or .cache)")
    if not streaming:
        return
    ap.add_argument("--workers", type=positive_int, default=None, help="processes for feature extraction (default: every core)")
    ap.add_argument("--no-cache", action="store_true", help="neither read nor write the feature cache")


# --- the layouts ----------------------------------------------------------------------------------
def _from_folders(root: Path, classes, group_pattern) -> list[Sample]:
    """find_samples, with the public class names mapped and the attack folder kept."""
    if classes:
        samples = find_samples([root], classes, group_pattern)
        return [_with_type(root, s) for s in samples]
    top = {p.name for p in _dirs(root)}
    mapped = {n for n in top if class_of(n)}
    if not mapped or top & {LIVE_LABEL, SPOOF_LABEL} == top & mapped:
        samples = find_samples([root], None, group_pattern)  # the project's own real/fake trees, as ever
    else:
        samples = find_samples([root], sorted(mapped), group_pattern)
    out = []
    for s in samples:
        label = class_of(s.label) or s.label
        out.append(_with_type(root, Sample(s.path, label, s.source, s.group, s.frame)))
    return out


def _with_type(root: Path, s: Sample) -> Sample:
    """Attack type from the folders: the one under the class folder if any, else the class folder."""
    if LIVE_LABEL in (s.label, class_of(s.label)):  # --classes may name it 'live', 'ClientFace', ...
        return s
    parts = s.path.relative_to(root).parts[:-1]
    cls = next((i for i, p in enumerate(parts) if class_of(p) == SPOOF_LABEL), None)
    kind = parts[cls] if cls is not None else s.label
    if cls is not None and cls + 1 < len(parts) and not re.fullmatch(r"\d+|subject\d+", parts[cls + 1]):
        kind = parts[cls + 1]
    return Sample(s.path, s.label, s.source, s.group, s.frame, attack_type=kind.lower())


def _lcc_fasd(root: Path, classes, group_pattern) -> list[Sample]:
    parts = [root] if root.name.lower().startswith("lcc_fasd") else [p for p in _dirs(root) if p.name.lower().startswith("lcc_fasd")]
    out = []
    for part in parts:
        official = "train" if "train" in part.name.lower() else "test" if "eval" in part.name.lower() else "val"
        for s in _from_folders(part, classes, group_pattern):
            out.append(Sample(s.path, s.label, s.source, s.group, s.frame, s.attack_type or "", official=official))
    return out


def _nuaa(root: Path, group_pattern) -> list[Sample]:
    out = []
    for cls_dir in _dirs(root):
        label = class_of(cls_dir.name)
        if label is None:
            continue
        for i, path in enumerate(sorted(list_images(cls_dir), key=lambda p: _natural_key(str(p)))):
            rel = path.relative_to(cls_dir).parts
            subject = rel[0] if len(rel) > 1 else cls_dir.name
            group = _group(root, path, group_pattern, f"nuaa/{subject}")
            out.append(Sample(path, label, f"{cls_dir.name}/{subject}", group, i,
                              attack_type="" if label == LIVE_LABEL else "photo"))  # NUAA's attacks are printed photos
    return out


def _group(root: Path, path: Path, pattern: str | None, default: str) -> str:
    if pattern:
        m = re.search(pattern, f"{root.resolve().name}/{path.relative_to(root)}")
        if m:
            return m.group(0)
    return default


def read_box(path: Path) -> tuple[float, float, float, float] | None:
    """(x, y, w, h) from a CelebA-Spoof *_BB.txt (first four numbers), None if unusable."""
    try:
        values = [float(v) for v in path.read_text().split()[:4]]
    except (OSError, ValueError):
        return None
    if len(values) < 4 or values[2] <= 0 or values[3] <= 0:
        return None
    return tuple(values)  # type: ignore[return-value]


def pad_box(box: tuple[float, float, float, float], padding: float) -> tuple[float, float, float, float]:
    """Grow (x, y, w, h) by `padding` of its size per side, as gather_examples pads detections."""
    x, y, w, h = box
    return (x - padding * w, y - padding * h, w * (1 + 2 * padding), h * (1 + 2 * padding))


def _celeba_labels(root: Path) -> tuple[dict[str, str], dict[str, str]]:
    """(relative path -> attack type, relative path -> official split) from metas/, if present."""
    types, split = {}, {}
    for part in ("train", "test"):
        f = root / "metas" / "intra_test" / f"{part}_label.json"
        if not f.is_file():
            continue
        try:
            table = json.loads(f.read_text())
        except (OSError, ValueError) as e:
            raise DataError(f"cannot read CelebA-Spoof's label file {f}: {e}") from None
        for rel, values in table.items():
            code = int(values[CELEBA_TYPE_INDEX]) if isinstance(values, list) and len(values) > CELEBA_TYPE_INDEX else None
            key = rel.replace("\\", "/")
            if code is not None:
                types[key] = CELEBA_SPOOF_TYPES.get(code, str(code))
            split[key] = part
    return types, split


def _celeba(root: Path, padding: float) -> list[Sample]:
    base = _celeba_root(root)
    if base is None:
        raise DataError(f"{root} is not a CelebA-Spoof tree (<subject>/live|spoof/*.jpg with *_BB.txt boxes)")
    types, official = _celeba_labels(root)
    out, unboxed = [], 0
    parts = [(base / p, p) for p in ("train", "test") if (base / p).is_dir()] or [(base, "")]
    for part, part_name in parts:
        for subject in _dirs(part):
            for cls in ("live", "spoof"):
                folder = subject / cls
                if not folder.is_dir():
                    continue
                label = class_of(cls)
                for i, path in enumerate(sorted(list_images(folder), key=lambda p: _natural_key(p.name))):
                    box = read_box(path.with_name(f"{path.stem}_BB.txt"))
                    if box is None:
                        unboxed += 1
                        continue
                    rel = path.relative_to(root).as_posix()
                    kind = "" if label == LIVE_LABEL else types.get(rel, "spoof")
                    split = official.get(rel, part_name)
                    out.append(Sample(path, label, f"{subject.name}/{cls}", subject.name, i,
                                      attack_type=kind, box=pad_box(box, padding), official=split))
    if unboxed:
        LOGGER.warning("skipped %d CelebA-Spoof image(s) without a usable *_BB.txt face box", unboxed)
    return out


def video_attack_type(video: Path, root: Path) -> str:
    """The attack instrument named by the video's file name or folders (else its name's words)."""
    words = re.split(r"[_\-.\s/]+", video.relative_to(root).with_suffix("").as_posix().lower())
    found = [w for w in words if w in ATTACK_TYPE_WORDS]
    if found:
        return "_".join(dict.fromkeys(found))
    rest = [w for w in re.split(r"[_\-.\s]+", video.stem.lower()) if w and not w.isdigit() and class_of(w) is None]
    return rest[0] if rest else SPOOF_LABEL


def video_label(video: Path, root: Path) -> str | None:
    """The class from the file name (real_*, attack_*, ...), else from its folders."""
    from liveness import label_from_name

    label = label_from_name(video.name) or class_of(video.stem)
    if label is None:
        for part in reversed(video.relative_to(root).parts[:-1]):
            label = class_of(part)
            if label:
                break
    return label


def _videos(root: Path, group_pattern: str | None, cache_dir: Path, padding: float, skip: int = VIDEO_SKIP) -> list[Sample]:
    """Faces of every labelled video, cut once by the detector into the cache."""
    from liveness.sources import list_videos
    from liveness.video_cache import cached_crops

    videos = list_videos(root)
    if not videos:
        raise DataError(f"no video files under {root}")
    out, detector = [], None
    for video in videos:
        label = video_label(video, root)
        if label is None:
            LOGGER.warning("skipping %s: neither its name nor its folders say live or attack", video)
            continue
        crops, key, detector = cached_crops(video, cache_dir / "videos", padding=padding, skip=skip, detector=detector)
        rel = video.relative_to(root).parts
        subject = rel[0] if len(rel) > 1 else video.parent.name
        group = _group(root, video, group_pattern, subject)
        kind = "" if label == LIVE_LABEL else video_attack_type(video, root)
        for frame, path in crops:
            out.append(Sample(path, label, key, group, frame, attack_type=kind))
    return out


def find_layout_samples(
    datasets: list[Path], layout: str = "auto", *, classes=None, group_pattern: str | None = None,
    padding: float = 0.0, cache_dir: Path | None = None,
) -> list[Sample]:
    """Every sample of the dataset folders, read as `layout` (auto: detected per folder, logged)."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    samples: list[Sample] = []
    for root in map(Path, datasets):
        if not root.is_dir():
            raise DataError(f"dataset folder {root} does not exist")
        kind = detect_layout(root) if layout == "auto" else layout
        if layout == "auto":
            LOGGER.info("dataset %s: recognised the %s layout", root, kind)
        if kind == "folders":
            found = _from_folders(root, classes, group_pattern)
        elif kind == "lcc-fasd":
            found = _lcc_fasd(root, classes, group_pattern)
        elif kind == "nuaa":
            found = _nuaa(root, group_pattern)
        elif kind == "celeba-spoof":
            found = _celeba(root, padding)
        else:
            found = _videos(root, group_pattern, cache_dir, padding)
        if not found:
            raise DataError(f"no labelled images found in {root} read as the {kind} layout")
        samples += found
    return samples


def limit_per_group(samples: list[Sample], n: int | None) -> list[Sample]:
    """At most n samples of each class in each group, evenly spread over its frames."""
    if not n:
        return samples
    if n < 1:
        raise ValueError(f"max per group must be 1 or more, got {n}")
    by: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, s in enumerate(samples):
        by[(s.group, s.label)].append(i)
    keep = set()
    for items in by.values():
        if len(items) <= n:
            keep.update(items)
        else:
            step = len(items) / n
            keep.update(items[int(k * step)] for k in range(n))
    return [s for i, s in enumerate(samples) if i in keep]


def official_split(samples: list[Sample]) -> tuple[dict[str, list[Sample]], str]:
    """{'train','val','test'} from the dataset's own lists (``--split official``)."""
    if not all(s.official for s in samples):
        missing = sum(not s.official for s in samples)
        raise DataError(
            f"--split official needs the dataset's own train/test lists: {missing} image(s) have none "
            "(CelebA-Spoof's metas/ or train|test folders, LCC-FASD's training/evaluation parts)"
        )
    out = {"train": [s for s in samples if s.official == "train"], "val": [s for s in samples if s.official == "val"],
           "test": [s for s in samples if s.official == "test"]}
    if not out["train"] or not out["test"]:
        raise DataError("the dataset's official lists lack a train or a test part")
    return out, f"the dataset's official lists ({len(out['train'])} train / {len(out['val'])} development / {len(out['test'])} test images)"
