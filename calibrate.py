"""Calibrate a model's threshold for one camera, from a few seconds of LIVE faces only.

Usage:
    python calibrate.py --model output/liveness --input 0 --seconds 5 --output output/liveness_cam0
    python calibrate.py --model output/liveness --input videos/me_live.mp4 --output output/liveness_office

Scores shift with the camera (its sensor, white point, sharpness), so a threshold fixed
on the training set-ups can sit in the wrong place for yours. Look at the camera for a
few seconds (one or more real people, no photos or screens): the threshold is placed
below the median of those live scores by the gap measured on the training set-ups
(liveness/calibration.py). Writes a copy of the model folder with the new threshold;
the original is not touched. Run it once per camera installation, then use
`--model output/liveness_cam0` everywhere.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np

from liveness import DEFAULT_MODEL
from liveness.calibration import calibrated_threshold
from liveness.cli import UserError, cli_main, positive_int, ranged, setup_logging
from liveness.detector import DEFAULT_CONFIDENCE, FaceDetector
from liveness.errors import ModelError, SourceError
from liveness.model import check_model_target, load_model, write_calibrated_copy
from liveness.pipeline import Pipeline
from liveness.sources import FrameSource, resolve_source

LOGGER = logging.getLogger("liveness")
DEFAULT_SECONDS = 5.0
MIN_FACES = 10  # fewer live faces than this do not show where the camera's live scores lie


def collect_live_scores(pipeline: Pipeline, source, *, seconds: float, max_frames: int | None = None) -> np.ndarray:
    """Raw live scores of the most confident face of each frame, for `seconds` of a live
    source (or the whole file)."""
    scores: list[float] = []
    started = time.perf_counter()
    with FrameSource(source) as frames:
        for index, frame in frames:
            results = pipeline.process(frame)
            if results:
                scores.append(results[0].raw_score)
            live_done = frames.is_live and time.perf_counter() - started >= seconds
            if live_done or (max_frames and index + 1 >= max_frames):
                break
    return np.asarray(scores, np.float64)


def run(
    *,
    model: str | Path = DEFAULT_MODEL,
    input: str | int | Path = 0,
    output: str | Path,
    seconds: float = DEFAULT_SECONDS,
    max_frames: int | None = None,
    confidence: float = DEFAULT_CONFIDENCE,
) -> dict:
    source = resolve_source(input, allow_folder=False)
    target = check_model_target(Path(output))
    liveness_model = load_model(model)
    if liveness_model.live_offset is None:
        raise ModelError(f"model {model} records no calibration offset (trained on too few groups); retrain with several people or set-ups")
    # Every face scored on every frame: the calibration wants each crop's own score.
    pipeline = Pipeline(liveness_model, FaceDetector(confidence=confidence), score_every=1)
    LOGGER.info("scoring live faces from %s%s: look at the camera, no photos or screens",
                source, f" for {seconds:g} s" if source.is_live else "")
    scores = collect_live_scores(pipeline, source, seconds=seconds, max_frames=max_frames)
    if len(scores) < MIN_FACES:
        raise SourceError(f"{source} showed a face in {len(scores)} frames; calibration needs at least {MIN_FACES}")
    threshold = calibrated_threshold(scores, liveness_model.live_offset)
    share = float((scores >= threshold).mean())
    LOGGER.info("threshold %.3f -> %.3f from %d live faces (median live score %.3f); %.0f%% of them pass",
                liveness_model.threshold, threshold, len(scores), float(np.median(scores)), 100 * share)
    manifest = write_calibrated_copy(liveness_model, target, threshold, {
        "input": str(source), "faces": len(scores), "median_score": float(np.median(scores)),
        "offset": liveness_model.live_offset, "previous_threshold": liveness_model.threshold,
    })
    LOGGER.info("saved the calibrated model folder %s", target)
    return manifest


def parse_opt(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("-m", "--model", default=str(DEFAULT_MODEL), help="model folder to calibrate (left unchanged)")
    ap.add_argument("-i", "--input", default="0", help="webcam index, video file or stream URL showing LIVE faces only")
    ap.add_argument("-o", "--output", required=True, help="calibrated model folder to write")
    ap.add_argument("--seconds", type=ranged(float, 1.0, 600.0), default=DEFAULT_SECONDS, help="how long to watch a webcam or stream")
    ap.add_argument("--max-frames", type=positive_int, default=None, help="stop after N frames")
    ap.add_argument("-c", "--confidence", type=ranged(float, 0.0, 1.0), default=DEFAULT_CONFIDENCE)
    ap.add_argument("-v", "--verbose", action="store_true")
    return ap.parse_args(argv)


def main(opt: argparse.Namespace) -> int:
    setup_logging(opt.verbose)
    if opt.output == opt.model:
        raise UserError("--output must be a new folder, not the model being calibrated")
    run(model=opt.model, input=opt.input, output=opt.output, seconds=opt.seconds, max_frames=opt.max_frames,
        confidence=opt.confidence)
    return 0


if __name__ == "__main__":
    cli_main(lambda: main(parse_opt()))
