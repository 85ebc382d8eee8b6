"""Heatmaps of what a liveness model looks at: per face, or averaged per class and set-up.

Usage:
    python explain.py --model output/liveness --input photo.jpg --output explained
    python explain.py --model output/liveness --input videos/alice/fake.mp4 --output explained --skip 15
    python explain.py --model output/liveness --input dataset/fake --crops --output explained --per-face
    python explain.py --model output/liveness --dataset ../shared/data/crops --group-pattern 'subject\\d+' --output explained

--input: an image, a folder of images or a video. Faces are found with the SSD and cut
with the model's padding, or with --crops the images are face crops already. Per
folder (or video) one grid image: each face, then its heatmap over it, with the
decision and the live score; --per-face adds one PNG per face.

--method gradcam (default for a CNN or fused model: the gradient of the decided class
over the last convolution; for a fused model it explains the CNN part) or occlusion
(default for colour LBP, works for any model: a grey square slides over the face and
the score change is recorded). Red: what pushed the model to its decision.

--dataset: the mean heatmap per class and per set-up (group) of a folder of labelled
crops, on the mean face of that set-up: a shortcut the model learnt (a corner, the
frame's edge, one colour) shows at a glance. Writes mean_heatmaps.png.
"""

from __future__ import annotations

import argparse
import logging
import re
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

from liveness import DEFAULT_MODEL
from liveness import explain as ex
from liveness.cli import UserError, cli_main, ensure_writable_dir, setup_logging
from liveness.dataset import IMAGE_EXTENSIONS, find_samples, list_images
from liveness.detector import DEFAULT_CONFIDENCE
from liveness.fileio import write_image
from liveness.model import load_model

LOGGER = logging.getLogger("liveness")

DEFAULT_SKIP = 10  # video frames: explain every 10th
DEFAULT_MAX_FRAMES = 200  # video frames read at most
DEFAULT_PER_GROUP = 16  # --dataset: crops per set-up and class
GRID_MAX_FACES = 48  # faces in one grid image (the rest go to --per-face files)
MEAN_SIZE = 96  # --dataset: crops and heatmaps are averaged at this size
GRID_COLUMNS = 8


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "face"


def _batches_from_input(path: Path, *, crops: bool, detector, padding: float, skip: int, max_frames: int):
    """(name of the grid, [(face name, BGR crop)]) per image folder or video."""
    from liveness.detector import crop_faces

    def faces_of(name: str, image: np.ndarray) -> list[tuple[str, np.ndarray]]:
        if crops:
            return [(name, image)]
        found = crop_faces(image, detector.detect(image), padding)
        return [(f"{name}_face{k}", crop) for k, (_, crop) in enumerate(found)]

    if path.is_dir():
        by_folder: dict[Path, list[Path]] = defaultdict(list)
        for p in sorted(list_images(path)):
            by_folder[p.parent].append(p)
        if not by_folder:
            raise UserError(f"--input {path}: no images in this folder")
        for folder, files in by_folder.items():
            faces = []
            for p in files:
                image = cv2.imread(str(p), cv2.IMREAD_COLOR)
                if image is None:
                    LOGGER.warning("skipped unreadable image %s", p)
                    continue
                faces += faces_of(p.stem, image)
            yield (str(folder.relative_to(path)) if folder != path else path.name), faces
        return
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise UserError(f"--input {path} is not an image OpenCV can read")
        yield path.stem, faces_of(path.stem, image)
        return
    from liveness.sources import Source, iter_frames, open_capture

    cap = open_capture(Source("file", path))
    faces = []
    try:
        for index, frame in iter_frames(cap, skip):
            if index >= max_frames:
                break
            if frame is not None:
                faces += faces_of(f"{path.stem}_f{index:06d}", frame)
    finally:
        cap.release()
    yield path.stem, faces


def explain_input(model, path: Path, output: Path, *, method: str, per_face: bool, crops: bool, skip: int,
                  max_frames: int, detector_dir: Path | None, confidence: float) -> list[Path]:
    detector = None
    if not crops:
        from liveness.detector import FaceDetector

        detector = FaceDetector(detector_dir=detector_dir, confidence=confidence)
    written = []
    padding = float(getattr(model, "padding", 0.0) or 0.0)
    for name, faces in _batches_from_input(path, crops=crops, detector=detector, padding=padding, skip=skip, max_frames=max_frames):
        if not faces:
            LOGGER.warning("%s: no faces", name)
            continue
        maps, scores, labels = ex.explain_faces(model, [f for _, f in faces], method)
        tiles, captions = [], []
        for (face_name, face), heat, score, label in zip(faces, maps, scores, labels):
            over = ex.overlay(face, heat)
            if per_face:
                p = output / f"{_safe(face_name)}_{_safe(label)}_{method}.png"
                write_image(p, np.hstack([face, over]))
                written.append(p)
            if len(tiles) < 2 * GRID_MAX_FACES:
                tiles += [face, over]
                captions += [[face_name[-15:], ""], ex.caption(score, label)]
        if len(faces) > GRID_MAX_FACES:
            LOGGER.info("%s: the grid shows the first %d of %d faces", name, GRID_MAX_FACES, len(faces))
        grid = output / f"{_safe(name)}_{method}.png"
        ex.write_grid(grid, tiles, captions, columns=GRID_COLUMNS)
        written.append(grid)
        live = sum(l == model.live_label for l in labels)
        LOGGER.info("%s: %d face(s), %d decided %s -> %s", name, len(faces), live, model.live_label, grid)
    return written


def explain_dataset(model, datasets: list[Path], output: Path, *, method: str, group_pattern: str | None, per_group: int,
                    heatmap_only: bool = False) -> Path:
    """The mean heatmap per class (all set-ups) and per set-up and class, on mean faces
    (or, with heatmap_only, alone: a picture that shows no one's face)."""
    samples = find_samples(datasets, group_pattern=group_pattern)
    if not samples:
        raise UserError("--dataset: no labelled crops found")
    by_key: dict[tuple[str, str], list] = defaultdict(list)
    for s in samples:
        by_key[(s.group, s.label)].append(s)
    rng = np.random.default_rng(0)
    sums: dict[tuple[str, str], list] = {}
    for key in sorted(by_key):
        chosen = by_key[key]
        if len(chosen) > per_group:
            chosen = [chosen[i] for i in sorted(rng.choice(len(chosen), per_group, replace=False))]
        faces = []
        for s in chosen:
            image = cv2.imread(str(s.path), cv2.IMREAD_COLOR)
            if image is not None:
                faces.append(cv2.resize(image, (MEAN_SIZE, MEAN_SIZE), interpolation=cv2.INTER_AREA))
        if not faces:
            continue
        maps, scores, labels = ex.explain_faces(model, faces, method)
        right = np.mean([(l == model.live_label) == (key[1] == model.live_label) for l in labels])
        sums[key] = [np.mean(faces, axis=0), np.mean(maps, axis=0), len(faces), float(np.mean(scores)), right]
        LOGGER.info("%s %s: %d crops, mean live score %.2f", *key, len(faces), sums[key][3])
    def tile(face: np.ndarray, heat: np.ndarray) -> np.ndarray:
        # Scaled per tile, min to max: a mean of many faces' maps is flatter than each.
        heat01 = ex.normalise(heat, minmax=True)
        return ex.colourise(heat01) if heatmap_only else ex.overlay(face.astype(np.uint8), heat01)

    classes = sorted({label for _, label in sums})
    tiles, captions = [], []
    for label in classes:  # every set-up together first
        parts = [v for (g, l), v in sums.items() if l == label]
        n = sum(p[2] for p in parts)
        face = sum(p[0] * p[2] for p in parts) / n
        heat = sum(p[1] * p[2] for p in parts) / n
        tiles.append(tile(face, heat))
        captions.append([f"all {label}", f"n={n}"])
    for (group, label), (face, heat, n, score, right) in sums.items():
        tiles.append(tile(face, heat))
        captions.append([f"{group[-12:]} {label}", f"n={n} live {score:.2f}", f"decided right {right:.0%}"])
    path = output / "mean_heatmaps.png"
    ex.write_grid(path, tiles, captions, columns=GRID_COLUMNS)
    LOGGER.info("mean heatmaps of %d set-up/class cells -> %s", len(sums), path)
    return path


def run(
    *,
    model: Path = DEFAULT_MODEL,
    output: Path,
    input: Path | None = None,
    dataset: list[Path] | None = None,
    method: str | None = None,
    per_face: bool = False,
    crops: bool = False,
    group_pattern: str | None = None,
    per_group: int = DEFAULT_PER_GROUP,
    heatmap_only: bool = False,
    skip: int = DEFAULT_SKIP,
    max_frames: int = DEFAULT_MAX_FRAMES,
    detector: Path | None = None,
    confidence: float = DEFAULT_CONFIDENCE,
) -> list[Path]:
    """Write heatmap pictures into `output`; the paths written."""
    if (input is None) == (not dataset):
        raise UserError("give either --input or --dataset")
    if method is not None and method not in ex.METHODS:
        raise UserError(f"--method must be one of {', '.join(ex.METHODS)}")
    if skip < 1 or max_frames < 1 or per_group < 1:
        raise UserError("--skip, --max-frames and --per-group must be 1 or more")
    if input is not None and not Path(input).exists():
        raise UserError(f"--input {input} does not exist")
    output = ensure_writable_dir(Path(output))
    liveness_model = load_model(model)
    method = method or ex.default_method(liveness_model)
    if method == "gradcam" and ex.keras_model_of(liveness_model) is None:
        raise UserError(f"--method gradcam needs a CNN; {model} scores with colour LBP alone (use --method occlusion)")
    LOGGER.info("explaining %s with %s", model, method)
    if dataset:
        return [explain_dataset(liveness_model, [Path(d) for d in dataset], output, method=method,
                                group_pattern=group_pattern, per_group=per_group, heatmap_only=heatmap_only)]
    return explain_input(liveness_model, Path(input), output, method=method, per_face=per_face, crops=crops,
                         skip=skip, max_frames=max_frames, detector_dir=detector, confidence=confidence)


def parse_opt(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="Heatmaps of what a liveness model looks at.")
    ap.add_argument("-m", "--model", default=str(DEFAULT_MODEL), help="model folder written by train.py")
    ap.add_argument("-i", "--input", default=None, help="an image, a folder of images or a video")
    ap.add_argument("--dataset", action="append", default=None, help="labelled crops (real/, fake/): mean heatmaps per class and set-up (repeatable)")
    ap.add_argument("--heatmap-only", action="store_true", help="with --dataset: the heatmaps alone, without the mean faces under them (a picture to share)")
    ap.add_argument("-o", "--output", required=True, help="folder for the PNG files")
    ap.add_argument("--method", choices=ex.METHODS, default=None, help="default: gradcam for a CNN, occlusion for colour LBP")
    ap.add_argument("--per-face", action="store_true", help="also one PNG per face (crop | heatmap)")
    ap.add_argument("--crops", action="store_true", help="the input images are face crops: no face detection")
    ap.add_argument("--group-pattern", default=None, help=r"regex naming a crop's set-up in its path, e.g. 'subject\d+'")
    ap.add_argument("--per-group", type=int, default=DEFAULT_PER_GROUP, help="--dataset: crops per set-up and class")
    ap.add_argument("--skip", type=int, default=DEFAULT_SKIP, help="video: explain every N-th frame")
    ap.add_argument("--max-frames", type=int, default=DEFAULT_MAX_FRAMES, help="video: read at most N frames")
    ap.add_argument("-d", "--detector", default=None, help="folder with the SSD's two files")
    ap.add_argument("-c", "--confidence", type=float, default=DEFAULT_CONFIDENCE, help="minimum face detection confidence")
    ap.add_argument("-v", "--verbose", action="store_true")
    return ap.parse_args(argv)


def main(opt: argparse.Namespace) -> int:
    setup_logging(opt.verbose)
    written = run(
        model=Path(opt.model), output=Path(opt.output), input=Path(opt.input) if opt.input else None,
        dataset=opt.dataset, method=opt.method, per_face=opt.per_face, crops=opt.crops,
        group_pattern=opt.group_pattern, per_group=opt.per_group, heatmap_only=opt.heatmap_only, skip=opt.skip, max_frames=opt.max_frames,
        detector=Path(opt.detector) if opt.detector else None, confidence=opt.confidence,
    )
    LOGGER.info("wrote %d file(s) to %s", len(written), opt.output)
    return 0


if __name__ == "__main__":
    cli_main(lambda: main(parse_opt()))
