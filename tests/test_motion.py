"""liveness.motion: boxes carried between detections by optical flow, and the detection schedule."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from liveness.detector import Face
from liveness.motion import DEFAULT_DETECT_EVERY, DetectSchedule, FaceFinder, FlowTracker, small_grey
from liveness.tracking import iou

FRAME = (480, 640)  # h, w


def _texture(seed: int = 0, size: int = 96) -> np.ndarray:
    """A face-sized patch full of corners: blurred noise, high contrast, BGR."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (size // 4, size // 4, 3)).astype(np.uint8)
    return cv2.GaussianBlur(cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC), (3, 3), 0)


def _frame(patch: np.ndarray | None, box: tuple[float, float, float, float]) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """A flat grey frame (no corners: nothing to follow but the patch) with the patch
    resized into `box`; returns the frame and the patch's integer box."""
    h, w = FRAME
    frame = np.full((h, w, 3), 120, dtype=np.uint8)
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    if patch is not None:
        cx1, cy1, cx2, cy2 = max(0, x1), max(0, y1), min(w, x2), min(h, y2)
        if cx2 > cx1 and cy2 > cy1:
            scaled = cv2.resize(patch, (x2 - x1, y2 - y1), interpolation=cv2.INTER_LINEAR)
            frame[cy1:cy2, cx1:cx2] = scaled[cy1 - y1 : cy2 - y1, cx1 - x1 : cx2 - x1]
    return frame, (max(0, x1), max(0, y1), min(w, x2), min(h, y2))


def _moving_box(t: int, dx: float = 4.0, dy: float = -2.5, growth: float = 1.02) -> tuple[float, float, float, float]:
    cx, cy, side = 250 + dx * t, 240 + dy * t, 110 * growth**t
    return cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2


def test_follows_a_patch_that_moves_and_grows() -> None:
    patch = _texture()
    tracker = FlowTracker()
    frame, box = _frame(patch, _moving_box(0))
    tracker.reset(frame, [box])
    for t in range(1, 16):
        frame, truth = _frame(patch, _moving_box(t))
        [(tracked, confidence)] = tracker.step(frame)
        assert tracked is not None, f"lost at frame {t}"
        assert iou(tracked, truth) >= 0.9, (t, tracked, truth)
        assert 0.5 <= confidence <= 1.0
        assert all(isinstance(v, int) for v in tracked)


def test_follows_two_patches_independently_in_order() -> None:
    a, b = _texture(1, 80), _texture(2, 80)
    tracker = FlowTracker()

    def boxes(t: int):
        return (60 + 3 * t, 100, 160 + 3 * t, 200), (420, 220 - 2 * t, 540, 340 - 2 * t)

    def render(t: int) -> np.ndarray:
        frame, _ = _frame(a, boxes(t)[0])
        x1, y1, x2, y2 = boxes(t)[1]
        frame[y1:y2, x1:x2] = cv2.resize(b, (x2 - x1, y2 - y1))
        return frame

    tracker.reset(render(0), list(boxes(0)))
    for t in range(1, 8):
        out = tracker.step(render(t))
        assert len(out) == 2
        for (tracked, _), truth in zip(out, boxes(t)):
            assert tracked is not None and iou(tracked, truth) >= 0.9


def test_reports_a_patch_that_disappears_as_lost_and_it_stays_lost() -> None:
    patch = _texture(3)
    tracker = FlowTracker()
    frame, box = _frame(patch, _moving_box(0))
    tracker.reset(frame, [box])
    assert tracker.step(_frame(patch, _moving_box(1))[0])[0][0] is not None
    blank, _ = _frame(None, _moving_box(2))  # the face is gone: a flat frame
    assert tracker.step(blank) == [(None, 0.0)]
    # Lost until the next reset, even when the patch comes back.
    assert tracker.step(_frame(patch, _moving_box(3))[0]) == [(None, 0.0)]
    tracker.reset(*(lambda f, b: (f, [b]))(*_frame(patch, _moving_box(3))))
    assert tracker.step(_frame(patch, _moving_box(4))[0])[0][0] is not None


def test_a_patch_leaving_the_frame_is_lost_or_clamped() -> None:
    patch = _texture(4)
    tracker = FlowTracker()

    def box(t: int):
        return (480 + 40 * t, 200, 580 + 40 * t, 300)

    tracker.reset(_frame(patch, box(0))[0], [box(0)])
    h, w = FRAME
    lost = False
    for t in range(1, 8):
        frame, truth = _frame(patch, box(t))
        [(tracked, _)] = tracker.step(frame)
        if tracked is None:
            lost = True
            break
        x1, y1, x2, y2 = tracked
        assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h  # clamped to the frame
    assert lost, "a patch pushed out of the frame must end as lost"


def test_no_boxes_and_boxes_without_corners() -> None:
    tracker = FlowTracker()
    frame, _ = _frame(_texture(), _moving_box(0))
    tracker.reset(frame, [])
    assert tracker.step(frame) == [] and tracker.n_tracks == 0
    # A box on the flat background has nothing to follow: lost from the start.
    tracker.reset(frame, [(500, 350, 600, 450)])
    assert tracker.step(frame) == [(None, 0.0)]


def test_grey_input_and_the_small_frame() -> None:
    patch = _texture(5)
    frame, box = _frame(patch, _moving_box(0))
    grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    tracker = FlowTracker()
    tracker.reset(grey, [box])
    nxt, truth = _frame(patch, _moving_box(1))
    [(tracked, _)] = tracker.step(cv2.cvtColor(nxt, cv2.COLOR_BGR2GRAY))
    assert tracked is not None and iou(tracked, truth) >= 0.9
    small, scale = small_grey(np.zeros((1080, 1920, 3), np.uint8), 320)
    assert small.shape == (270, 480) and scale == 0.25
    small, scale = small_grey(np.zeros((480, 640), np.uint8), 320)
    assert small.shape == (240, 320) and scale == 0.5


def test_rejects_bad_use() -> None:
    tracker = FlowTracker()
    frame, box = _frame(_texture(), _moving_box(0))
    with pytest.raises(RuntimeError):
        tracker.step(frame)
    with pytest.raises(ValueError):
        tracker.reset(frame, [(10, 10, 5, 40)])
    with pytest.raises(ValueError):
        tracker.reset(frame.astype(np.float32), [box])
    tracker.reset(frame, [box])
    with pytest.raises(ValueError, match="size changed"):
        tracker.step(frame[:100])
    for bad in (dict(max_points=0), dict(min_points=10, max_points=5), dict(fb_error=0), dict(min_confidence=2)):
        with pytest.raises(ValueError):
            FlowTracker(**bad)
    for bad_every in (0, -1, 1.5, True):
        with pytest.raises(ValueError):
            DetectSchedule(bad_every)


def test_schedule_detects_every_n_frames_and_on_loss() -> None:
    s = DetectSchedule(every=3)
    assert [s.need_detection(i) for i in range(7)] == [True, False, False, True, False, False, True]
    # A lost track at frame 8 detects there, and the count restarts from it.
    assert s.need_detection(7) is False
    assert s.need_detection(8) is False and s.need_detection(8, tracking_lost=True) is True
    assert [s.need_detection(i) for i in range(9, 12)] == [False, False, True]
    # A new stream (frame numbers start again) detects at once; so does reset().
    assert s.need_detection(0) is True
    s.reset()
    assert s.need_detection(1) is True
    one = DetectSchedule(1)
    assert [one.need_detection(i) for i in range(4)] == [True] * 4


class _ScriptedDetector:
    """Finds the patch where the test put it, and counts its calls."""

    def __init__(self) -> None:
        self.truth: tuple[int, int, int, int] | None = None
        self.calls = 0

    def detect(self, frame: np.ndarray) -> list[Face]:
        self.calls += 1
        return [Face(self.truth, 0.87)] if self.truth is not None else []


def test_face_finder_detects_on_schedule_and_carries_boxes_between() -> None:
    patch, detector = _texture(), _ScriptedDetector()
    finder = FaceFinder(detector, every=4)
    for t in range(12):
        frame, detector.truth = _frame(patch, _moving_box(t))
        [face] = finder.find(frame)
        assert iou(face.box, detector.truth) >= 0.9 and face.confidence == 0.87, (t, face)  # carried: its detection's
    assert detector.calls == finder.detections == 3  # frames 0, 4 and 8
    # The patch gone: tracking loses it and the detector runs at once, finding nothing; an
    # empty scene is searched on every frame.
    detector.truth = None
    empty = np.full((*FRAME, 3), 120, np.uint8)
    assert finder.find(empty) == [] and finder.find(empty) == [] and detector.calls == 5
    # A new stream detects on its first frame; every=1 detects on every frame.
    finder.reset()
    frame, detector.truth = _frame(patch, _moving_box(0))
    finder.find(frame)
    assert detector.calls == 6
    every = FaceFinder(detector, every=1)
    for _ in range(3):
        every.find(frame)
    assert detector.calls == 9 and every.detections == 3
    with pytest.raises(ValueError):
        FaceFinder(detector, every=0)


@pytest.fixture(scope="module")
def lbp_model(shared_data):
    """A colour-LBP model fitted in memory on an eighth of the shared crops: the
    decisions compared below need one; its accuracy does not matter."""
    from benchmarks.bench_tracking import fit_lbp_model

    return fit_lbp_model(shared_data, every=8)


@pytest.mark.shared_data
# subject02/real is the source of the speed benchmark's video; subject01/fake a portrait
# phone recording. (subject01/real and subject02/fake disagree on one frame of the 60
# here, a second would fail: benchmarks/bench_tracking.py --decisions reports every video.)
@pytest.mark.parametrize("video", ["subject02/real.mp4", "subject01/fake.mp4"])
def test_tracked_boxes_agree_with_every_frame_detection(shared_data, lbp_model, video) -> None:
    from benchmarks.bench_tracking import measure_video
    from liveness.detector import FaceDetector

    result = measure_video(
        shared_data / "videos" / video, [DEFAULT_DETECT_EVERY], FaceDetector(), max_frames=60, model=lbp_model
    )
    [row] = result["rows"]
    assert row["tracked_faces"] >= 20  # the tracker did carry faces, not only the detector
    assert row["median_iou"] >= 0.8, row
    assert row["both"] >= 0.95, row
    assert row["decisions_smoothed"] >= 0.98, row  # real/fake as the pipeline decides, smoothed
