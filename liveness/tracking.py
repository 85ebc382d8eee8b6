"""Follow faces from frame to frame by box overlap, and smooth each face's score.

A per-frame liveness decision flickers: one blurred frame flips a live face to
"fake". `FaceTracker` links each frame's boxes to the faces of the frames before
(greedy matching on intersection-over-union) and reports, per face, the mean of its
last N scores. Pure Python and numpy: no OpenCV, no model.

Boxes are pixel (x1, y1, x2, y2) with x2/y2 exclusive, as `liveness.detector.Face`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

Box = tuple[int, int, int, int]

DEFAULT_WINDOW = 5  # frames a decision is averaged over
DEFAULT_MIN_IOU = 0.3  # least overlap for a box to continue a track
DEFAULT_MAX_MISSED = 5  # frames a track survives without a matching box


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two boxes; 0.0 when either is empty."""
    return float(iou_matrix([a], [b])[0, 0])


def iou_matrix(boxes_a: Sequence[Sequence[float]], boxes_b: Sequence[Sequence[float]]) -> np.ndarray:
    """(len(a), len(b)) IoU of every pair of boxes."""
    a = np.asarray(boxes_a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(boxes_b, dtype=np.float64).reshape(-1, 4)
    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)))
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    iw = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = iw * ih
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(union > 0, inter / union, 0.0)
    return out


def greedy_match(overlaps: np.ndarray, min_iou: float = DEFAULT_MIN_IOU) -> list[tuple[int, int]]:
    """(row, column) pairs, one-to-one, best overlap first; pairs below `min_iou` are left out.

    Rows are tracks, columns this frame's boxes. Greedy is what a handful of faces
    needs: the pair with the largest IoU is taken, its row and column are removed,
    and so on. Ties go to the lower row, then the lower column.
    """
    overlaps = np.asarray(overlaps, dtype=np.float64)
    if overlaps.size == 0:
        return []
    rows, cols = np.nonzero(overlaps >= min_iou)
    order = sorted(zip(rows.tolist(), cols.tolist()), key=lambda rc: (-overlaps[rc], rc[0], rc[1]))
    used_rows, used_cols, pairs = set(), set(), []
    for r, c in order:
        if r in used_rows or c in used_cols:
            continue
        used_rows.add(r)
        used_cols.add(c)
        pairs.append((r, c))
    return pairs


@dataclass
class Track:
    """One face followed over frames."""

    id: int
    box: Box
    scores: deque = field(default_factory=deque)
    missed: int = 0  # consecutive frames without a matching box
    hits: int = 0  # frames with a matching box, in all
    scored: float = float("nan")  # the last score computed for this face (not carried forward)
    since_scored: int = 0  # frames since then (0: this frame's score was computed)

    @property
    def smoothed(self) -> float:
        return float(np.mean(self.scores)) if self.scores else float("nan")


@dataclass(frozen=True)
class TrackedFace:
    """What `FaceTracker.update` says about one of the frame's boxes."""

    track_id: int
    box: Box
    score: float  # this frame's score
    smoothed: float  # mean of the track's last `window` scores (this one included)
    hits: int  # frames this face has been seen in, this one included


class FaceTracker:
    """Links boxes across frames and averages each face's scores over its last `window` frames.

    `window=1` turns smoothing off (the smoothed score is the frame's score); ids
    still follow the faces. A track that finds no box for more than `max_missed`
    consecutive frames is dropped; a face that comes back later gets a new id.
    Ids start at 1 and are never reused.
    """

    def __init__(self, window: int = DEFAULT_WINDOW, *, min_iou: float = DEFAULT_MIN_IOU, max_missed: int = DEFAULT_MAX_MISSED) -> None:
        if window < 1:
            raise ValueError(f"smoothing window must be 1 or more frames, got {window}")
        if not 0.0 < min_iou <= 1.0:
            raise ValueError(f"min_iou must be in (0, 1], got {min_iou}")
        if max_missed < 0:
            raise ValueError(f"max_missed must be 0 or more, got {max_missed}")
        self.window = window
        self.min_iou = min_iou
        self.max_missed = max_missed
        self.tracks: list[Track] = []
        self._next_id = 1

    @property
    def tracks_started(self) -> int:
        """Distinct faces seen so far (ids handed out)."""
        return self._next_id - 1

    def reset(self) -> None:
        """Forget every face (ids keep counting up)."""
        self.tracks.clear()

    def _match(self, boxes: Sequence[Box]) -> dict[int, Track]:
        pairs = greedy_match(iou_matrix([t.box for t in self.tracks], boxes), self.min_iou)
        return {col: self.tracks[row] for row, col in pairs}

    def continuing(self, boxes: Sequence[Box]) -> list[Track | None]:
        """The track each box would continue in `update` (None: a new face); changes nothing."""
        track_of = self._match(boxes)
        return [track_of.get(i) for i in range(len(boxes))]

    def update(self, boxes: Sequence[Box], scores: Sequence[float], computed: Sequence[bool] | None = None) -> list[TrackedFace]:
        """One frame's boxes and scores -> one TrackedFace per box, in the same order.
        `computed[i]` False: score i was carried forward from the face's last computed one."""
        if len(boxes) != len(scores):
            raise ValueError(f"{len(boxes)} boxes but {len(scores)} scores")
        if computed is None:
            computed = [True] * len(boxes)
        track_of = self._match(boxes)
        matched = {id(t) for t in track_of.values()}
        for track in self.tracks:
            if id(track) not in matched:
                track.missed += 1
        self.tracks = [t for t in self.tracks if t.missed <= self.max_missed]
        out = []
        for i, (box, score, fresh) in enumerate(zip(boxes, scores, computed)):
            track = track_of.get(i)
            if track is None:
                track = Track(self._next_id, tuple(box), deque(maxlen=self.window))
                self._next_id += 1
                self.tracks.append(track)
            track.box = tuple(int(v) for v in box)
            track.scores.append(float(score))
            if fresh:
                track.scored, track.since_scored = float(score), 0
            else:
                track.since_scored += 1
            track.missed = 0
            track.hits += 1
            out.append(TrackedFace(track.id, track.box, float(score), track.smoothed, track.hits))
        return out
