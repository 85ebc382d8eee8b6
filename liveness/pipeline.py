"""The per-frame liveness pipeline: the package's public Python API.

    from liveness.model import load_model
    from liveness.pipeline import Pipeline

    pipe = Pipeline(load_model("output/liveness"))
    for face in pipe.process(frame):          # a BGR frame from OpenCV
        print(face.box, face.label, face.score, face.live)

Per frame: the res10 SSD finds the faces (with `detect_every` N > 1, only on every
N-th frame and whenever tracking loses a face; in between, sparse optical flow carries
each box forward: liveness/motion.py); each face is cropped with the padding the
model was trained with; faces are followed from frame to frame by box overlap; the
crops are scored in one batch, except that a face whose last computed score lay far
from the threshold (at least `score_margin` away) keeps that score for up to
`score_every` - 1 frames before it is scored again (new faces and faces near the
threshold are scored on every frame); each face's decision is its mean live score
over its last `smooth` frames, so a label does not flicker. The demo, evaluate.py, the web
server and the benchmarks all run this class, so they cannot disagree.

One Pipeline per stream (it holds the tracks); the model and detector can be shared.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from liveness.annotate import annotate
from liveness.detector import Face, FaceDetector, crop_faces
from liveness.model import LivenessModel
from liveness.motion import DEFAULT_DETECT_EVERY, FaceFinder
from liveness.tracking import DEFAULT_MAX_MISSED, FaceTracker

DEFAULT_SMOOTH = 5  # frames a face's decision is averaged over
# A face far from the threshold is scored on every DEFAULT_SCORE_EVERY-th frame (its
# score carried between); "far" is a live probability at least DEFAULT_SCORE_MARGIN
# from the threshold. Both chosen with benchmarks/bench_scoring.py (README).
DEFAULT_SCORE_EVERY = 3
DEFAULT_SCORE_MARGIN = 0.2


@dataclass(frozen=True)
class FaceResult:
    """The verdict on one face of one frame."""

    box: tuple[int, int, int, int]  # pixels, x2/y2 exclusive, inside the frame
    confidence: float  # the detector's
    label: str  # decided on `score` at the model's threshold
    live: bool  # label is the model's live label
    score: float  # live probability, averaged over the face's last `smooth` frames
    raw_score: float  # live probability of this frame's crop alone (or carried, see `scored`)
    track_id: int
    scored: bool = True  # False: raw_score is the face's last computed score, carried forward

    def as_json(self) -> dict:
        return {
            "box": [int(v) for v in self.box], "label": self.label, "live": self.live, "score": round(self.score, 4),
            "raw_score": round(self.raw_score, 4), "scored": self.scored, "track": self.track_id,
            "confidence": round(self.confidence, 4),
        }


class Pipeline:
    """Detect, crop, score (one batch per frame), track and smooth, decide. No I/O."""

    def __init__(
        self, model: LivenessModel, detector: FaceDetector | None = None, *,
        smooth: int = DEFAULT_SMOOTH, padding: float | None = None, max_missed: int = DEFAULT_MAX_MISSED,
        detect_every: int = DEFAULT_DETECT_EVERY, score_every: int = DEFAULT_SCORE_EVERY,
        score_margin: float = DEFAULT_SCORE_MARGIN,
    ) -> None:
        if smooth < 1:
            raise ValueError(f"smooth must be 1 or more frames (1 = no smoothing), got {smooth}")
        if detect_every < 1:
            raise ValueError(f"detect_every must be 1 or more frames (1 = the detector on every frame), got {detect_every}")
        if score_every < 1:
            raise ValueError(f"score_every must be 1 or more frames (1 = every face on every frame), got {score_every}")
        if not score_margin >= 0:
            raise ValueError(f"score_margin must be 0 or more, got {score_margin}")
        self.model = model
        self.detector = detector if detector is not None else FaceDetector()
        self.padding = model.padding if padding is None else float(padding)
        self.tracker = FaceTracker(smooth, max_missed=max_missed)
        self.score_every = score_every
        self.score_margin = float(score_margin)
        self._finder = FaceFinder(self.detector, detect_every)
        self.face_frames = 0  # faces returned, summed over frames
        self.faces_scored = 0  # of those, faces whose score was computed (not carried)
        self.reset()

    def find_faces(self, frame: np.ndarray) -> list[Face]:
        """This frame's faces: from the detector when due (or tracking lost one), else
        carried forward by optical flow from the last detection (liveness.motion.FaceFinder)."""
        return self._finder.find(frame)

    @property
    def detect_every(self) -> int:
        """Frames per detector run while tracking holds (1 = every frame)."""
        return self._finder.every

    @property
    def detections(self) -> int:
        """Frames the detector ran on."""
        return self._finder.detections

    def _carries(self, track) -> bool:
        """Whether a continuing face keeps its last computed score this frame."""
        return (track is not None and track.since_scored + 1 < self.score_every
                and abs(track.scored - self.model.threshold) >= self.score_margin)

    def process(self, frame: np.ndarray) -> list[FaceResult]:
        """The verdict on every face of `frame`, most confident first."""
        faces_crops = crop_faces(frame, self.find_faces(frame), self.padding)
        boxes = [f.box for f, _ in faces_crops]
        tracks = self.tracker.continuing(boxes) if self.score_every > 1 else [None] * len(boxes)
        computed = [not self._carries(t) for t in tracks]
        scores = np.array([np.nan if c else t.scored for t, c in zip(tracks, computed)], np.float64)
        todo = [i for i, c in enumerate(computed) if c]
        if todo:  # one batch for every face that is scored this frame
            scores[todo] = self.model.score([faces_crops[i][1] for i in todo])
        tracked = self.tracker.update(boxes, scores, computed)
        self.face_frames += len(boxes)
        self.faces_scored += len(todo)
        labels = self.model.decide([t.smoothed for t in tracked])
        live = self.model.live_label
        return [
            FaceResult(face.box, face.confidence, label, label == live, t.smoothed, t.score, t.track_id, fresh)
            for (face, _), t, label, fresh in zip(faces_crops, tracked, labels, computed)
        ]

    def annotate(self, frame: np.ndarray, results: list[FaceResult], fps: float | None = None) -> np.ndarray:
        """A copy of `frame` with each face's box, label, score and track, and the FPS."""
        return annotate(frame, results, self.model.live_label, fps)

    def reset(self) -> None:
        """Forget every face (a new stream, a new connection)."""
        self.tracker.reset()
        self._finder.reset()

    @property
    def faces_seen(self) -> int:
        """Distinct faces (tracks) so far."""
        return self.tracker.tracks_started


def add_schedule_options(ap, scope: str = "") -> None:
    """--detect-every and --score-every: one definition for the demo, evaluate.py --videos and the web server."""
    from liveness.cli import ranged

    ap.add_argument("--detect-every", type=ranged(int, 1, 100), default=DEFAULT_DETECT_EVERY,
                    help=f"{scope}run the face detector on every N-th frame (and whenever tracking loses a face); "
                         "optical flow carries the boxes in between (1 = every frame)")
    ap.add_argument("--score-every", type=ranged(int, 1, 100), default=DEFAULT_SCORE_EVERY,
                    help=f"{scope}score a face whose live score is far from the threshold "
                         f"(by {DEFAULT_SCORE_MARGIN:g} or more) on every N-th frame only, carrying its score "
                         "between; new faces and faces near the threshold are scored on every frame (1 = always)")
