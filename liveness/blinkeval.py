"""The blink detector against hand-labelled video: recall and false blinks per minute.

Labels are a CSV (tests/data/blinks.csv): `video,start_frame,end_frame`, frame
indices from 0 as OpenCV reads them, both ends inclusive; a row with empty frames
names a video that was labelled and holds no blink; lines starting with # are notes.
Every frame runs through the SSD and the landmark model, as the demo would run them.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path

import cv2

from liveness.challenge import DEFAULT_SETTINGS, ChallengeSettings, blink_onsets, match_blinks
from liveness.errors import DataError, SourceError

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

    @property
    def minutes(self) -> float:
        return self.frames / self.fps / 60


def face_landmarks(path: Path, detector, landmarker) -> tuple[float, list]:
    """(fps, [(t, (68, 2) landmarks of the most confident face, or None)] per frame)."""
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise SourceError(f"cannot open video {path}")
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    seq = []
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            faces = detector.detect(frame)
            seq.append((len(seq) / fps, landmarker.landmarks(frame, faces[0].box) if faces else None))
    finally:
        cap.release()
    return fps, seq


def evaluate_blinks(labels: dict[str, Spans], videos_root: Path, detector=None, landmarker=None,
                    settings: ChallengeSettings = DEFAULT_SETTINGS) -> list[VideoBlinks]:
    """Run the blink detector over every labelled video under `videos_root`."""
    if detector is None:
        from liveness.detector import FaceDetector

        detector = FaceDetector()
    if landmarker is None:
        from liveness.landmarks import Landmarker

        landmarker = Landmarker()
    results = []
    for n, (video, spans) in enumerate(labels.items(), 1):
        LOGGER.info("blinks: video %d of %d, %s", n, len(labels), video)
        fps, seq = face_landmarks(Path(videos_root) / video, detector, landmarker)
        onsets = [int(round(t * fps)) for t in blink_onsets(seq, settings)]
        found, false = match_blinks(onsets, spans)
        results.append(VideoBlinks(video, fps, len(seq), onsets, spans, found, false))
    return results


def summarise(results: list[VideoBlinks]) -> dict:
    """Totals: labelled, found, recall, false, minutes, false_per_minute."""
    labelled = sum(len(r.labelled) for r in results)
    found = sum(r.found for r in results)
    false = sum(r.false for r in results)
    minutes = sum(r.minutes for r in results)
    return {
        "labelled": labelled, "found": found, "recall": found / labelled if labelled else float("nan"),
        "false": false, "minutes": minutes, "false_per_minute": false / minutes if minutes else float("nan"),
    }
