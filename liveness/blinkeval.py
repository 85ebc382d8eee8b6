"""The blink detector against hand-labelled video: recall and false blinks per minute.

Labels are a CSV (tests/data/blinks.csv): `video,start_frame,end_frame`, frame
indices from 0 as OpenCV reads them, both ends inclusive; a row with empty frames
names a video that was labelled and holds no blink; lines starting with # are notes.
Frames run through the landmark model as the demo runs them: every frame, with the face's
box from the SSD every `detect_every` frames (and whenever tracking loses the face) and
carried by optical flow in between (liveness.motion.FaceFinder; 1 = the SSD on every frame).
"""

from __future__ import annotations

import csv
import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2

from liveness.challenge import DEFAULT_SETTINGS, ChallengeSettings, blink_onsets, match_blinks
from liveness.errors import DataError, SourceError
from liveness.motion import DEFAULT_DETECT_EVERY, FaceFinder
from liveness.sources import iter_frames

LOGGER = logging.getLogger("liveness")
Spans = list[tuple[int, int]]


def read_blink_labels(path: Path) -> dict[str, Spans]:
    """{video (relative path): [(start_frame, end_frame), ...]} in file order."""
    out: dict[str, Spans] = {}
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(line for line in f if not line.startswith("#")))
    except OSError as e:
        raise DataError(f"cannot read blink labels {path}: {e.strerror}") from None
    for n, row in enumerate(rows, 1):
        try:
            spans = out.setdefault(row["video"], [])
            if row["start_frame"] or row["end_frame"]:
                start, end = int(row["start_frame"]), int(row["end_frame"])
                if not 0 <= start <= end:
                    raise ValueError
                spans.append((start, end))
        except (KeyError, TypeError, ValueError):
            raise DataError(f"{path}: row {n} is not video,start_frame,end_frame with 0 <= start <= end") from None
    return out


@dataclass
class VideoBlinks:
    video: str
    fps: float
    frames: int
    onsets: list[int]  # frames on which detected blinks began
    labelled: Spans
    found: int
    false: int
    sweep: dict[float, tuple[int, int]] = field(default_factory=dict)  # blink depth -> (found, false)

    @property
    def minutes(self) -> float:
        return self.frames / self.fps / 60


def face_landmarks(path: Path, detector, landmarker, detect_every: int = DEFAULT_DETECT_EVERY) -> tuple[float, list]:
    """(fps, [(t, (68, 2) landmarks of the most confident face, or None)] per frame)."""
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise SourceError(f"cannot open video {path}")
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    finder = FaceFinder(detector, detect_every)
    seq = []
    try:
        for _, frame in iter_frames(cap):
            faces = finder.find(frame)
            seq.append((len(seq) / fps, landmarker.landmarks(frame, faces[0].box) if faces else None))
    finally:
        cap.release()
    return fps, seq


def _evaluate_one(path: Path, video: str, spans: Spans, detector, landmarker, settings: ChallengeSettings,
                  detect_every: int, sweep: Sequence[float] = ()) -> VideoBlinks:
    fps, seq = face_landmarks(path, detector, landmarker, detect_every)

    def onsets_at(s: ChallengeSettings) -> list[int]:
        return [int(round(t * fps)) for t in blink_onsets(seq, s)]

    onsets = onsets_at(settings)
    found, false = match_blinks(onsets, spans)
    # The landmarks are the slow part: every other blink depth reuses them.
    swept = {d: match_blinks(onsets_at(dataclasses.replace(settings, min_dip=d)), spans) for d in sweep}
    return VideoBlinks(video, fps, len(seq), onsets, spans, found, false, swept)


def _frame_count(path: Path) -> int:
    """The container's frame count (0 when it does not say: some WebM files)."""
    cap = cv2.VideoCapture(str(path))
    try:
        return max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT))) if cap.isOpened() else 0
    finally:
        cap.release()


_WORKER: dict = {}  # in a worker process: its own detector and landmark model


def _init_worker(detector_kwargs: dict) -> None:
    from liveness.detector import FaceDetector
    from liveness.featcache import exit_with_parent
    from liveness.landmarks import Landmarker

    cv2.setNumThreads(1)  # one process per core: more threads would only contend
    exit_with_parent()
    _WORKER["models"] = (FaceDetector(**detector_kwargs), Landmarker())


def _worker_job(job: tuple) -> VideoBlinks:
    return _evaluate_one(*job[:3], *_WORKER["models"], *job[3:])


def evaluate_blinks(labels: dict[str, Spans], videos_root: Path, detector=None, landmarker=None,
                    settings: ChallengeSettings = DEFAULT_SETTINGS, *, workers: int = 1,
                    detector_kwargs: dict | None = None, detect_every: int = DEFAULT_DETECT_EVERY,
                    sweep: Sequence[float] = ()) -> list[VideoBlinks]:
    """Run the blink detector over every labelled video under `videos_root`, in label order,
    with the face detector on every `detect_every`-th frame as the demo runs it.

    `sweep`: other blink depths (ChallengeSettings.min_dip) to score on the same landmarks,
    kept in each result's `sweep` (summarise_sweep adds them up).

    With `workers` > 1 (and no detector or landmarker given) the videos are shared among
    that many processes, each with its own models (`detector_kwargs` for its FaceDetector),
    longest video first; the figures are the same as one process gives.
    """
    jobs = [(Path(videos_root) / video, video, spans, settings, detect_every, tuple(sweep))
            for video, spans in labels.items()]
    workers = min(workers, len(jobs))
    if workers > 1 and detector is None and landmarker is None:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        LOGGER.info("blinks: %d videos on %d processes", len(jobs), workers)
        order = sorted(range(len(jobs)), key=lambda i: -_frame_count(jobs[i][0]))  # longest first: even shares
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=_init_worker, initargs=(detector_kwargs or {},)) as pool:
            done = dict(zip(order, pool.map(_worker_job, [jobs[i] for i in order])))
        return [done[i] for i in range(len(jobs))]
    if detector is None:
        from liveness.detector import FaceDetector

        detector = FaceDetector(**(detector_kwargs or {}))
    if landmarker is None:
        from liveness.landmarks import Landmarker

        landmarker = Landmarker()
    results = []
    for n, (path, video, spans, *rest) in enumerate(jobs, 1):
        LOGGER.info("blinks: video %d of %d, %s", n, len(jobs), video)
        results.append(_evaluate_one(path, video, spans, detector, landmarker, *rest))
    return results


def _rates(labelled: int, found: int, false: int, minutes: float) -> dict:
    return {
        "labelled": labelled, "found": found, "recall": found / labelled if labelled else float("nan"),
        "false": false, "minutes": minutes, "false_per_minute": false / minutes if minutes else float("nan"),
    }


def summarise(results: list[VideoBlinks]) -> dict:
    """Totals: labelled, found, recall, false, minutes, false_per_minute."""
    return _rates(sum(len(r.labelled) for r in results), sum(r.found for r in results),
                  sum(r.false for r in results), sum(r.minutes for r in results))


def summarise_sweep(results: list[VideoBlinks]) -> list[dict]:
    """Per swept blink depth, in the order asked: its depth and summarise's totals."""
    labelled, minutes = sum(len(r.labelled) for r in results), sum(r.minutes for r in results)
    depths = results[0].sweep if results else {}
    return [{"depth": d, **_rates(labelled, sum(r.sweep[d][0] for r in results), sum(r.sweep[d][1] for r in results),
                                  minutes)} for d in depths]
