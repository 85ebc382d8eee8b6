"""Score a trained liveness model on data it never saw: crops or whole videos.

Usage:
    python evaluate.py --model output/liveness.keras --le output/le.pickle --dataset new_person_crops
    python evaluate.py --model output/liveness.keras --le output/le.pickle --videos new_person_videos

With --videos, faces are found the way gather_examples.py finds them (same detector,
same filters) and each video's label comes from its file name (real*, fake*, ...).
The threshold is the one saved at training time unless --threshold says otherwise.
Writes <output>_metrics.json, _predictions.csv, _roc.png and _confusion.png.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
from tqdm import tqdm

from liveness import LIVE_LABEL, ROOT, label_from_name
from liveness import detector as det
from liveness.artifacts import LivenessClassifier
from liveness.cli import UserError, cli_main, ensure_writable_dir, setup_logging
from liveness.crops import source_key, video_digest
from liveness.dataset import Sample, check_classes, describe, find_samples
from liveness.report import write_evaluation
from liveness.sources import Source, iter_frames, list_videos, open_capture

LOGGER = logging.getLogger("liveness")
OUTPUT = ROOT / "output"


def score_crops(classifier: LivenessClassifier, samples: list[Sample], batch: int = 256) -> tuple[np.ndarray, list[Sample]]:
    import cv2

    scores, kept = [], []
    for start in range(0, len(samples), batch):
        chunk = samples[start:start + batch]
        faces = [(s, cv2.imread(str(s.path), cv2.IMREAD_COLOR)) for s in chunk]
        faces = [(s, f) for s, f in faces if f is not None and f.size]
        if faces:
            scores.append(classifier.scores([f for _, f in faces]))
            kept += [s for s, _ in faces]
    if not kept:
        raise UserError("no readable images in the dataset")
    return np.concatenate(scores), kept


def score_videos(
    classifier: LivenessClassifier, detector: det.FaceDetector, folder: Path, *, skip: int, live_label: str
) -> tuple[np.ndarray, list[Sample]]:
    """Most confident face of every `skip`-th frame of every labelled video under `folder`."""
    videos = list_videos(folder) if folder.is_dir() else [folder]
    if not videos:
        raise UserError(f"no video files under {folder}")
    scores, samples = [], []
    for video in tqdm(videos, desc="videos", unit="video"):
        label = label_from_name(video.name)
        if label is None:
            LOGGER.warning("skipping %s: its name says neither real nor fake", video)
            continue
        key = source_key(video, video_digest(video))
        cap = open_capture(Source("file", video))
        try:
            for index, frame in iter_frames(cap, skip):
                if frame is None:
                    continue
                faces = detector.detect(frame)[:1]
                if faces:
                    x1, y1, x2, y2 = faces[0].box
                    scores.append(float(classifier.scores([frame[y1:y2, x1:x2]])[0]))
                    group = video.resolve().parent.name
                    samples.append(Sample(video, label, key, group, index))
        finally:
            cap.release()
    if not samples:
        raise UserError(f"no faces found in the labelled videos under {folder}")
    return np.asarray(scores), samples


def run(
    *,
    model: str | Path = OUTPUT / "liveness.keras",
    le: str | Path = OUTPUT / "le.pickle",
    dataset: list[str | Path] | None = None,
    videos: str | Path | None = None,
    output: str | Path = OUTPUT / "evaluation",
    threshold: float | None = None,
    detector: str | Path | None = None,
    confidence: float = det.DEFAULT_CONFIDENCE,
    skip: int = 5,
    classes: list[str] | None = None,
    group_pattern: str | None = None,
    backend: str = "auto",
) -> dict:
    if bool(dataset) == bool(videos):
        raise UserError("give either --dataset (face crops) or --videos (video files), not both")
    if skip < 1:
        raise UserError(f"--skip must be 1 or more, got {skip}")
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        raise UserError(f"--threshold must be between 0 and 1, got {threshold}")
    prefix = Path(output)
    ensure_writable_dir(prefix.parent)
    if videos is not None and not Path(videos).exists():
        raise UserError(f"--videos {videos} does not exist")
    samples = find_samples([Path(d) for d in dataset], classes, group_pattern) if dataset else None
    classifier = LivenessClassifier(Path(model), Path(le), threshold=threshold, backend=backend)
    live = classifier.live_label
    if samples is not None:
        check_classes(samples, live, min_per_class=1)
        LOGGER.info("dataset: %s", describe(samples))
        scores, samples = score_crops(classifier, samples)
    else:
        face_detector = det.FaceDetector(detector_dir=Path(detector) if detector else None, confidence=confidence)
        scores, samples = score_videos(classifier, face_detector, Path(videos), skip=skip, live_label=live)
        LOGGER.info("videos: %s", describe(samples))
    unknown = {s.label for s in samples} - set(classifier.labels)
    if unknown:
        raise UserError(f"labels {', '.join(sorted(unknown))} are not among the model's classes ({', '.join(classifier.labels)})")
    LOGGER.info("threshold %.3f (%s)", classifier.threshold, "given" if threshold is not None else "saved with the model")
    metrics = write_evaluation(
        prefix, samples, scores, labels=classifier.labels, live_label=live, threshold=classifier.threshold,
        extra={"model": str(model), "data": [str(d) for d in dataset] if dataset else str(videos)}, title="evaluation",
    )
    LOGGER.info("saved %s_{metrics.json,predictions.csv,roc.png,confusion.png}", prefix)
    return metrics


def parse_opt(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("-m", "--model", default=str(OUTPUT / "liveness.keras"))
    ap.add_argument("-l", "--le", default=str(OUTPUT / "le.pickle"))
    ap.add_argument("-d", "--dataset", action="append", default=None, help="folder of <label>/ crops (repeatable)")
    ap.add_argument("--videos", default=None, help="a video or a folder of videos named real*/fake*")
    ap.add_argument("-o", "--output", default=str(OUTPUT / "evaluation"), help="prefix of the files written")
    ap.add_argument("-t", "--threshold", type=float, default=None, help="operating point (default: saved with the model)")
    ap.add_argument("--detector", default=None)
    ap.add_argument("-c", "--confidence", type=float, default=det.DEFAULT_CONFIDENCE)
    ap.add_argument("-s", "--skip", type=int, default=5, help="with --videos: score every N-th frame")
    ap.add_argument("--classes", nargs="+", default=None)
    ap.add_argument("--group-pattern", default=None)
    ap.add_argument("--backend", choices=("auto", "opencv", "tf"), default="auto")
    ap.add_argument("-v", "--verbose", action="store_true")
    return ap.parse_args(argv)


def main(opt: argparse.Namespace) -> int:
    setup_logging(opt.verbose)
    run(
        model=opt.model, le=opt.le, dataset=opt.dataset, videos=opt.videos, output=opt.output,
        threshold=opt.threshold, detector=opt.detector, confidence=opt.confidence, skip=opt.skip,
        classes=opt.classes, group_pattern=opt.group_pattern, backend=opt.backend,
    )
    return 0


if __name__ == "__main__":
    cli_main(lambda: main(parse_opt()))
