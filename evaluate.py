"""Score a trained liveness model on data it never saw: crops or whole videos.

Usage:
    python evaluate.py --model output/liveness --dataset new_person_crops
    python evaluate.py --model output/liveness --videos new_person_videos
    python evaluate.py --model output/liveness --videos ../shared/data/videos/subject02 --skip 1
    python evaluate.py --blinks tests/data/blinks.csv --videos ../shared/data/videos   # the blink detector
    python evaluate.py --blinks tests/data/blinks.csv --videos ../shared/data/videos --blink-sweep 0.4 0.5 0.6

With --videos every video runs through the demo's own pipeline (liveness/pipeline.py:
same detector, crop padding, batch scoring and tracking), so a face scores here what
it scores in `liveness_demo.py --json` ("raw_score"); each video's label comes from
its file name (real*, fake*, ...). The threshold is the one saved with the model
unless --threshold says otherwise. Writes <output>_metrics.json, _predictions.csv,
_roc.png and _confusion.png, with per-video (per-track) decisions.

With --blinks LABELS.csv (hand-labelled blinks: video,start_frame,end_frame, the video
paths relative to --videos) it measures the active challenge's blink detector instead:
found / labelled blinks and false blinks per minute, per video and in all (no model
needed; every frame through the landmarks, the face found as the demo finds it: the SSD
every --detect-every frames, optical flow between). --blink-depth sets the detector as the
demo's option does; --blink-sweep D [D ...] also scores other depths on the same landmarks,
to choose one for a camera from its own labels. Writes <output>_blinks.json.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

import numpy as np
from tqdm import tqdm

from liveness import DEFAULT_MODEL, OUTPUT, label_from_name
from liveness import detector as det
from liveness.challenge import DEFAULT_SETTINGS, add_blink_depth_option, blink_depth
from liveness.cli import EXIT_OK, UserError, cli_main, ensure_writable_dir, fraction, positive_int, setup_logging
from liveness.crops import source_key, video_digest
from liveness.dataset import Sample, check_classes, describe, read_images
from liveness.errors import DataError, LivenessError
from liveness.fileio import write_json
from liveness.layouts import add_layout_options, find_layout_samples, limit_per_group
from liveness.model import LivenessModel, load_model
from liveness.motion import DEFAULT_DETECT_EVERY
from liveness.pipeline import DEFAULT_SCORE_EVERY, Pipeline, add_schedule_options
from liveness.report import prefixed, write_evaluation
from liveness.runtime import BACKENDS
from liveness.sources import FrameSource, list_videos

LOGGER = logging.getLogger("liveness")
DEFAULT_SKIP = 1  # every frame, as the demo sees them (its optical flow needs consecutive frames)
BATCH = 256


def score_crops(model: LivenessModel, samples: list[Sample]) -> tuple[np.ndarray, list[Sample]]:
    """Live scores of stored crops (already cut: scored as they are), in batches.
    Unreadable files are skipped and counted (read_images: the suite's one policy)."""
    scores, kept = [], []
    for start in range(0, len(samples), BATCH):
        faces, ok = read_images(samples[start:start + BATCH], allow_empty=True)
        if ok:
            scores.append(model.score(faces))
            kept += ok
    if not kept:
        raise DataError("no readable images in the dataset")
    return np.concatenate(scores), kept


def score_video(pipeline: Pipeline, video: Path, label: str, *, skip: int) -> tuple[list[float], list[Sample]]:
    """Every face of every `skip`-th frame, through the pipeline: (raw scores, samples)."""
    key = source_key(video, video_digest(video))
    group = video.resolve().parent.name
    scores, samples = [], []
    pipeline.reset()  # tracks never run from one video into the next
    with FrameSource(video, skip=skip) as frames:
        for index, frame in frames:
            if frame is None:
                continue
            for r in pipeline.process(frame):
                scores.append(r.raw_score)
                samples.append(Sample(video, label, key, group, index))
    return scores, samples


def score_videos(pipeline: Pipeline, folder: Path, *, skip: int) -> tuple[np.ndarray, list[Sample], list[str]]:
    """All labelled videos under `folder`; an undecodable one is reported and skipped."""
    videos = list_videos(folder) if folder.is_dir() else [folder]
    if not videos:
        raise DataError(f"no video files under {folder}")
    scores, samples, failed = [], [], []
    for video in tqdm(videos, desc="videos", unit="video", disable=True if len(videos) == 1 else None):
        label = label_from_name(video.name)
        if label is None:
            LOGGER.warning("skipping %s: its name says neither real nor fake", video)
            continue
        try:
            s, smp = score_video(pipeline, video, label, skip=skip)
        except LivenessError as e:
            LOGGER.warning("skipped %s", e)  # one bad file must not stop the others
            failed.append(str(video))
            continue
        scores += s
        samples += smp
    if not samples:
        raise DataError(f"no faces found in the labelled videos under {folder}")
    return np.asarray(scores, np.float64), samples, failed


def evaluate_blink_labels(labels: Path, videos: Path, prefix: Path, detector_kwargs: dict, detect_every: int,
                          depth: float, sweep: list[float]) -> dict:
    """The blink detector against hand-labelled videos (liveness/blinkeval.py): recall and false blinks,
    at the blink depth `depth` and, on the same landmarks, at each depth of `sweep`."""
    from liveness.blinkeval import evaluate_blinks, read_blink_labels, summarise, summarise_sweep
    from liveness.challenge import ChallengeSettings

    spans = read_blink_labels(labels)
    if not spans:
        raise DataError(f"{labels} labels no video")
    missing = [v for v in spans if not (videos / v).is_file()]
    if missing:
        raise UserError(f"--blinks {labels} names {len(missing)} video(s) not under --videos {videos}, e.g. {missing[0]}")
    det.FaceDetector(**detector_kwargs)  # a bad --detector is one line here, not one per worker
    results = evaluate_blinks(spans, videos, settings=ChallengeSettings(min_dip=depth), workers=os.cpu_count() or 1,
                              detector_kwargs=detector_kwargs, detect_every=detect_every, sweep=sweep)
    total = summarise(results)
    rows = [{"video": r.video, "seconds": r.minutes * 60, "labelled": len(r.labelled), "found": r.found,
             "false": r.false, "detected_onsets": r.onsets} for r in results]
    for r in rows:
        LOGGER.info("%-28s %6.1f s  found %d of %d, %d false", r["video"], r["seconds"], r["found"], r["labelled"], r["false"])
    LOGGER.info("blinks: found %d of %d (%.0f%%), %d false in %.1f s (%.1f per minute)", total["found"], total["labelled"],
                100 * total["recall"] if total["labelled"] else float("nan"), total["false"], 60 * total["minutes"],
                total["false_per_minute"])
    swept = summarise_sweep(results)
    for row in swept:
        LOGGER.info("blink depth %.2f: found %d of %d (%.0f%%), %d false (%.1f per minute)", row["depth"], row["found"],
                    row["labelled"], 100 * row["recall"] if row["labelled"] else float("nan"), row["false"],
                    row["false_per_minute"])
    report = {"labels": str(labels), "videos": str(videos), "detect_every": detect_every, "blink_depth": depth,
              "per_video": rows, "total": total, "sweep": swept}
    write_json(prefixed(prefix)("blinks.json"), report)
    LOGGER.info("saved %s_blinks.json", prefix)
    return report


def run(
    *,
    model: str | Path = DEFAULT_MODEL,
    dataset: list[str | Path] | None = None,
    videos: str | Path | None = None,
    output: str | Path = OUTPUT / "evaluation",
    threshold: float | None = None,
    detector: str | Path | None = None,
    confidence: float = det.DEFAULT_CONFIDENCE,
    skip: int = DEFAULT_SKIP,
    detect_every: int = DEFAULT_DETECT_EVERY,
    score_every: int = DEFAULT_SCORE_EVERY,
    classes: list[str] | None = None,
    group_pattern: str | None = None,
    backend: str = "auto",
    layout: str = "auto",
    max_per_group: int | None = None,
    cache_dir: str | Path | None = None,
    blinks: str | Path | None = None,
    blink_depth: float = DEFAULT_SETTINGS.min_dip,
    blink_sweep: list[float] | None = None,
) -> dict:
    if blinks is not None:
        if dataset or not videos or not Path(videos).is_dir():
            raise UserError("--blinks needs --videos: the folder its video paths are under (and no --dataset)")
        ensure_writable_dir(Path(output).parent)
        detector_kwargs = {"detector_dir": Path(detector) if detector else None, "confidence": confidence}
        return evaluate_blink_labels(Path(blinks), Path(videos), Path(output), detector_kwargs, detect_every,
                                     blink_depth, list(blink_sweep or []))
    if bool(dataset) == bool(videos):
        raise UserError("give either --dataset (face crops) or --videos (video files), not both")
    prefix = Path(output)
    ensure_writable_dir(prefix.parent)
    if videos is not None and not Path(videos).exists():
        raise UserError(f"--videos {videos} does not exist")
    liveness_model = load_model(model, threshold=threshold, backend=backend)
    samples = None
    if dataset:  # public layouts too; their face boxes are padded as the model's crops were
        samples = limit_per_group(find_layout_samples(
            [Path(d) for d in dataset], layout, classes=classes, group_pattern=group_pattern,
            padding=float(liveness_model.manifest.get("padding") or 0.0), cache_dir=cache_dir,
        ), max_per_group)
    live = liveness_model.live_label
    failed: list[str] = []  # videos that did not decode
    unreadable: list[str] = []  # crops that did not decode
    if samples is not None:
        check_classes(samples, live, min_per_class=1)
        LOGGER.info("dataset: %s", describe(samples))
        scores, kept = score_crops(liveness_model, samples)
        kept_ids = {id(k) for k in kept}
        unreadable = [str(s.path) for s in samples if id(s) not in kept_ids]
        samples = kept
    else:
        face_detector = det.FaceDetector(detector_dir=Path(detector) if detector else None, confidence=confidence)
        pipeline = Pipeline(liveness_model, face_detector, detect_every=detect_every, score_every=score_every)
        scores, samples, failed = score_videos(pipeline, Path(videos), skip=skip)
        LOGGER.info("videos: %s", describe(samples))
    unknown = {s.label for s in samples} - set(liveness_model.labels)
    if unknown:
        raise DataError(f"labels {', '.join(sorted(unknown))} are not among the model's classes ({', '.join(liveness_model.labels)})")
    LOGGER.info("threshold %.3f (%s)", liveness_model.threshold, "given" if threshold is not None else "saved with the model")
    metrics = write_evaluation(
        prefixed(prefix), samples, scores, labels=liveness_model.labels, live_label=live, threshold=liveness_model.threshold,
        extra={"model": str(model), "data": [str(d) for d in dataset] if dataset else str(videos), "failed_videos": failed,
               "unreadable": unreadable},
        title="evaluation",
    )
    LOGGER.info("saved %s_{metrics.json,predictions.csv,roc.png,confusion.png}", prefix)
    if failed or unreadable:
        LOGGER.info("skipped: %d video(s) and %d image(s) that did not decode (listed in the metrics)", len(failed), len(unreadable))
    return metrics


def parse_opt(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("-m", "--model", default=str(DEFAULT_MODEL), help="model folder written by train.py")
    ap.add_argument("-d", "--dataset", action="append", default=None, help="folder of <label>/ crops (repeatable)")
    ap.add_argument("--videos", default=None, help="a video or a folder of videos named real*/fake*")
    ap.add_argument("-o", "--output", default=str(OUTPUT / "evaluation"), help="prefix of the files written")
    ap.add_argument("-t", "--threshold", type=fraction, default=None, help="operating point (default: saved with the model)")
    ap.add_argument("--detector", default=None)
    ap.add_argument("-c", "--confidence", type=fraction, default=det.DEFAULT_CONFIDENCE)
    ap.add_argument("-s", "--skip", type=positive_int, default=DEFAULT_SKIP, help="with --videos: score every N-th frame")
    add_schedule_options(ap, "with --videos: ")
    ap.add_argument("--classes", nargs=2, default=None)
    ap.add_argument("--group-pattern", default=None)
    ap.add_argument("--backend", choices=BACKENDS, default="auto")
    add_layout_options(ap, streaming=False)
    ap.add_argument("--blinks", default=None, help="hand-labelled blinks CSV: measure the blink detector on --videos instead (the SSD every --detect-every frames, as the demo runs it)")
    add_blink_depth_option(ap, "with --blinks: ")
    ap.add_argument("--blink-sweep", type=blink_depth, nargs="+", default=None, metavar="FRACTION",
                    help="with --blinks: also score these blink depths on the same landmarks")
    ap.add_argument("-v", "--verbose", action="store_true")
    return ap.parse_args(argv)


def main(opt: argparse.Namespace) -> int:
    setup_logging(opt.verbose)
    run(
        model=opt.model, dataset=opt.dataset, videos=opt.videos, output=opt.output,
        threshold=opt.threshold, detector=opt.detector, confidence=opt.confidence, skip=opt.skip, detect_every=opt.detect_every, score_every=opt.score_every,
        classes=opt.classes, group_pattern=opt.group_pattern, backend=opt.backend, layout=opt.layout,
        max_per_group=opt.max_per_group, cache_dir=opt.cache_dir, blinks=opt.blinks,
        blink_depth=opt.blink_depth, blink_sweep=opt.blink_sweep,
    )
    return EXIT_OK  # inputs that did not decode were skipped and reported; none usable is a DataError


if __name__ == "__main__":
    cli_main(lambda: main(parse_opt()))
