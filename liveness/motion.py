"""Carry face boxes from frame to frame without the face detector.

The SSD is the cost of every frame. Between detections, `FlowTracker` moves each
box with sparse optical flow on a small grey copy of the frame: corners inside the
box (`cv2.goodFeaturesToTrack`) are followed forward and back
(`cv2.calcOpticalFlowPyrLK`); points whose backward track does not return to where
they started are dropped (the forward-backward check of Kalal et al.'s Median Flow);
the box moves by the median shift of the rest and scales by the median ratio of
their pairwise distances. A face that turns away, leaves the frame or is covered
keeps too few good points and is reported lost. `DetectSchedule` says when to run
the detector: on every `every`-th frame and whenever tracking lost a face (or has
none to follow: an empty scene is searched on every frame).

`FaceFinder` puts the two together, one per stream: the detector when the schedule says
so, the flow in between (the per-frame pipeline and the blink evaluation both use it)::

    finder = FaceFinder(detector)              # the SSD every DEFAULT_DETECT_EVERY frames
    for frame in frames:
        faces = finder.find(frame)             # [Face], most confident first

Boxes are pixel (x1, y1, x2, y2) ints with x2/y2 exclusive, clamped to the frame, in
the frame's own coordinates, as `liveness.detector.Face.box`. Frames may be BGR or
grey; the tracker shrinks them itself. New faces appear at the next detection.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

Box = tuple[int, int, int, int]

DEFAULT_DETECT_EVERY = 4  # frames per SSD run while tracking holds: chosen in benchmarks/bench_tracking.py
DEFAULT_MAX_SIDE = 320  # the flow runs on the frame halved until its longest side is at most 1.5x this
DEFAULT_MAX_POINTS = 48  # corners followed per box
DEFAULT_MIN_POINTS = 8  # fewer good points than this: the face is lost
DEFAULT_FB_ERROR = 1.0  # forward-backward distance (pixels of the small frame) a good point may have
DEFAULT_MIN_CONFIDENCE = 0.5  # fraction of a box's points that must stay good
_SHRINK = 0.15  # corners come from the box without this fraction per side (hair, background)
_LK_PARAMS = dict(winSize=(15, 15), maxLevel=2, criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 20, 0.03))


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def small_grey(frame: np.ndarray, max_side: int = DEFAULT_MAX_SIDE) -> tuple[np.ndarray, float]:
    """(grey image, scale): the frame halved until its longest side is at most 1.5 *
    max_side, in grey; its pixel (x, y) is the frame's (x / scale, y / scale)."""
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim not in (2, 3) or not frame.size:
        raise ValueError("frame must be a non-empty uint8 BGR or grey image")
    scale = 1.0
    # Halving is a 2x2 mean: cheap and free of aliasing, where a shrink by a
    # non-integer factor is either slow (INTER_AREA) or aliased (INTER_LINEAR).
    while max(frame.shape[:2]) > 1.5 * max_side and min(frame.shape[:2]) >= 2:
        frame = cv2.resize(frame, (frame.shape[1] // 2, frame.shape[0] // 2), interpolation=cv2.INTER_LINEAR)
        scale /= 2
    if frame.ndim == 3:  # after shrinking: the conversion then touches fewer pixels
        frame = cv2.cvtColor(frame, cv2.COLOR_BGRA2GRAY if frame.shape[2] == 4 else cv2.COLOR_BGR2GRAY)
    return frame, scale


class DetectSchedule:
    """When to run the face detector: on the first frame, when `every` frames have
    passed since the last detection, and whenever tracking lost a face.

    `need_detection` assumes the caller detects whenever it answers True (it counts
    from there); calling it again for the same frame with `tracking_lost=True` is how
    a lost track asks for a detection on that frame. A frame index lower than the last
    detection's (a new stream) also triggers one.
    """

    def __init__(self, every: int = DEFAULT_DETECT_EVERY) -> None:
        self.every = _positive_int("every", every)
        self._last: int | None = None

    def need_detection(self, frame_index: int, tracking_lost: bool = False) -> bool:
        last = self._last
        due = tracking_lost or last is None or frame_index < last or frame_index - last >= self.every
        if due:
            self._last = frame_index
        return due

    def reset(self) -> None:
        """Detect on the next frame asked about."""
        self._last = None


class FlowTracker:
    """Moves boxes between detections by sparse optical flow (see the module's docstring).

    reset(frame, boxes): start from these boxes (after a detection); step(frame): the
    boxes in this frame, one (box, confidence) per reset box, in the same order, box
    None once that face is lost (it stays lost until the next reset). Confidence is the
    fraction of the box's points that passed the forward-backward check, 0.0 when lost.
    """

    def __init__(
        self,
        *,
        max_points: int = DEFAULT_MAX_POINTS,
        min_points: int = DEFAULT_MIN_POINTS,
        max_side: int = DEFAULT_MAX_SIDE,
        fb_error: float = DEFAULT_FB_ERROR,
        min_confidence: float = DEFAULT_MIN_CONFIDENCE,
    ) -> None:
        self.max_points = _positive_int("max_points", max_points)
        self.min_points = _positive_int("min_points", min_points)
        if self.min_points > self.max_points:
            raise ValueError(f"min_points ({min_points}) must not exceed max_points ({max_points})")
        self.max_side = _positive_int("max_side", max_side)
        if not np.isfinite(fb_error) or fb_error <= 0:
            raise ValueError(f"fb_error must be a positive number, got {fb_error!r}")
        if not 0.0 <= min_confidence <= 1.0:
            raise ValueError(f"min_confidence must be between 0 and 1, got {min_confidence!r}")
        self.fb_error = float(fb_error)
        self.min_confidence = float(min_confidence)
        self._prev: np.ndarray | None = None  # small grey frame of the last reset/step
        self._frame_size: tuple[int, int] = (0, 0)  # (w, h) of the full frame
        self._scale = 1.0  # small frame = full frame * _scale
        # Per box: (x1, y1, x2, y2) float in small-frame pixels, or None when lost; its points (k, 2) float32.
        self._boxes: list[np.ndarray | None] = []
        self._points: list[np.ndarray] = []

    # -- frames ------------------------------------------------------------------

    def _small_grey(self, frame: np.ndarray) -> np.ndarray:
        h, w = frame.shape[:2]
        if self._prev is not None and (w, h) != self._frame_size:
            raise ValueError(f"frame size changed from {self._frame_size} to {(w, h)} without a reset")
        grey, self._scale = small_grey(frame, self.max_side)
        self._frame_size = (w, h)
        return grey

    def _corners(self, grey: np.ndarray, box: np.ndarray) -> np.ndarray:
        """Up to max_points corners inside the box's central part, (k, 2) float32."""
        x1, y1, x2, y2 = box
        dx, dy = (x2 - x1) * _SHRINK, (y2 - y1) * _SHRINK
        h, w = grey.shape
        ix1, iy1 = int(np.clip(round(x1 + dx), 0, w)), int(np.clip(round(y1 + dy), 0, h))
        ix2, iy2 = int(np.clip(round(x2 - dx), 0, w)), int(np.clip(round(y2 - dy), 0, h))
        if ix2 - ix1 < 3 or iy2 - iy1 < 3:
            return np.zeros((0, 2), np.float32)
        found = cv2.goodFeaturesToTrack(
            grey[iy1:iy2, ix1:ix2], maxCorners=self.max_points, qualityLevel=0.01, minDistance=3, blockSize=3
        )
        if found is None:
            return np.zeros((0, 2), np.float32)
        return found.reshape(-1, 2) + np.array([ix1, iy1], np.float32)

    def _to_full(self, box: np.ndarray) -> Box | None:
        """Small-frame float box -> clamped int box in the full frame; None when nothing is left inside."""
        w, h = self._frame_size
        x1, y1, x2, y2 = (float(v) / self._scale for v in box)
        out = (
            int(np.clip(round(x1), 0, w)), int(np.clip(round(y1), 0, h)),
            int(np.clip(round(x2), 0, w)), int(np.clip(round(y2), 0, h)),
        )
        return out if out[2] > out[0] and out[3] > out[1] else None

    # -- the API -----------------------------------------------------------------

    @property
    def n_tracks(self) -> int:
        """Boxes given at the last reset (lost ones included)."""
        return len(self._boxes)

    def reset(self, frame: np.ndarray, boxes: Sequence[Sequence[int]]) -> None:
        """Start following `boxes` (full-frame pixels) from this frame on."""
        self._prev = None  # a new reference: the frame size may change here
        grey = self._small_grey(frame)
        self._prev = grey
        self._boxes, self._points = [], []
        for box in boxes:
            b = np.asarray(box, dtype=np.float64).reshape(4) * self._scale
            if not np.isfinite(b).all() or b[2] <= b[0] or b[3] <= b[1]:
                raise ValueError(f"box must be (x1, y1, x2, y2) with x2 > x1 and y2 > y1, got {tuple(box)}")
            pts = self._corners(grey, b)
            ok = len(pts) >= self.min_points
            self._boxes.append(b if ok else None)
            self._points.append(pts if ok else np.zeros((0, 2), np.float32))

    def step(self, frame: np.ndarray) -> list[tuple[Box | None, float]]:
        """Each reset box moved to this frame: (box, confidence), or (None, 0.0) once lost."""
        if self._prev is None:
            raise RuntimeError("FlowTracker.step before reset")
        grey = self._small_grey(frame)
        live = [i for i, b in enumerate(self._boxes) if b is not None]
        out: list[tuple[Box | None, float]] = [(None, 0.0)] * len(self._boxes)
        if live:
            p0 = np.concatenate([self._points[i] for i in live]).reshape(-1, 1, 2)
            p1, st1, _ = cv2.calcOpticalFlowPyrLK(self._prev, grey, p0, None, **_LK_PARAMS)
            back, st2, _ = cv2.calcOpticalFlowPyrLK(grey, self._prev, p1, None, **_LK_PARAMS)
            fb = np.linalg.norm((back - p0).reshape(-1, 2), axis=1)
            good_all = (st1.ravel() == 1) & (st2.ravel() == 1) & (fb <= self.fb_error)
            p0, p1 = p0.reshape(-1, 2), p1.reshape(-1, 2)
            start = 0
            for i in live:
                k = len(self._points[i])
                sl = slice(start, start + k)
                start += k
                out[i] = self._move(i, grey, p0[sl], p1[sl], good_all[sl])
        self._prev = grey
        return out

    def _move(self, i: int, grey: np.ndarray, p0: np.ndarray, p1: np.ndarray, good: np.ndarray) -> tuple[Box | None, float]:
        n_good = int(good.sum())
        confidence = n_good / max(1, len(p0))
        if n_good < self.min_points or confidence < self.min_confidence:
            return self._lose(i)
        a, b = p0[good].astype(np.float64), p1[good].astype(np.float64)
        shift = np.median(b - a, axis=0)
        iu = np.triu_indices(len(a), k=1)
        d0 = np.linalg.norm(a[iu[0]] - a[iu[1]], axis=1)
        d1 = np.linalg.norm(b[iu[0]] - b[iu[1]], axis=1)
        far = d0 > 2.0  # pairs of near-coincident points say nothing about scale
        scale = float(np.median(d1[far] / d0[far])) if far.any() else 1.0
        x1, y1, x2, y2 = self._boxes[i]
        cx, cy = (x1 + x2) / 2 + shift[0], (y1 + y2) / 2 + shift[1]
        hw, hh = (x2 - x1) * scale / 2, (y2 - y1) * scale / 2
        box = np.array([cx - hw, cy - hh, cx + hw, cy + hh])
        full = self._to_full(box)
        if full is None:
            return self._lose(i)
        self._boxes[i] = box
        # Keep the points that held; top up from the new box when half have gone.
        pts = b.astype(np.float32)
        if len(pts) < self.max_points // 2:
            fresh = self._corners(grey, box)
            if len(fresh) >= self.min_points:
                pts = fresh
        self._points[i] = pts
        return full, confidence

    def _lose(self, i: int) -> tuple[None, float]:
        self._boxes[i] = None
        self._points[i] = np.zeros((0, 2), np.float32)
        return None, 0.0


class FaceFinder:
    """The faces of one stream's frames, found as the demo finds them: the detector on the
    first frame, every `every` frames and whenever tracking loses a face; in between,
    each detected face's box carried forward by `FlowTracker` (keeping the confidence of
    the detection it came from). `every` 1 runs the detector on every frame.

    `detector` is anything with `detect(frame) -> [Face]` (liveness.detector.FaceDetector);
    `find(frame)` returns that frame's faces, most confident first, as `detect` does.
    """

    def __init__(self, detector, every: int = DEFAULT_DETECT_EVERY) -> None:
        self.detector = detector
        self.every = _positive_int("every", every)
        self.detections = 0  # frames the detector ran on
        self.reset()

    def reset(self) -> None:
        """A new stream: detect on the next frame."""
        self._frame = 0
        self._faces: list = []
        self._schedule = DetectSchedule(self.every)
        self._flow = FlowTracker()

    def find(self, frame: np.ndarray) -> list:
        index = self._frame
        self._frame += 1
        if self.every > 1 and not self._schedule.need_detection(index):
            moved = self._flow.step(frame)
            lost = not moved or any(box is None for box, _ in moved)  # a face lost, or none to follow
            if not self._schedule.need_detection(index, tracking_lost=lost):
                # Each face as its detection gave it (the detector's own type), the box moved.
                return [type(face)(box, face.confidence) for (box, _), face in zip(moved, self._faces)]
        faces = self.detector.detect(frame)
        self.detections += 1
        if self.every > 1:
            self._flow.reset(frame, [f.box for f in faces])
            self._faces = faces
        return faces
