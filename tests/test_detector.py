"""Tests for liveness.detector: the res10 SSD wrapper on a real face photo, its box
helpers, its plausibility filter and how it finds (or refuses) its two files."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from liveness import detector as det
from liveness.errors import LivenessError
from liveness.detector import Face, FaceDetector, clamp_box, expand_box, locate_detector_files
from liveness.fileio import file_digest

# Where the SSD finds the astronaut's face in skimage.data.astronaut() (512x512):
# about (179, 58, 272, 177), centre (225, 118), height 119 (see liveness/synthetic.py).
FACE_CENTRE = (225.0, 118.0)
FACE_HEIGHT = 119.0


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector()


@pytest.fixture
def fresh_detector(detector: FaceDetector) -> FaceDetector:
    """The shared detector with its rejection counter emptied."""
    detector.rejected.clear()
    return detector


def assert_inside(face: Face, w: int, h: int) -> None:
    x1, y1, x2, y2 = face.box
    assert all(isinstance(v, int) for v in face.box), face.box
    assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h, (face.box, (w, h))


# --- a real face -------------------------------------------------------------------


def test_finds_the_astronaut_face(fresh_detector: FaceDetector, face_image: np.ndarray) -> None:
    h, w = face_image.shape[:2]
    faces = fresh_detector.detect(face_image)
    assert len(faces) == 1, faces
    face = faces[0]
    assert fresh_detector.confidence <= face.confidence <= 1.0
    assert face.confidence > 0.9  # a frontal, well-lit face: the SSD is sure
    assert_inside(face, w, h)
    cx, cy = (face.box[0] + face.box[2]) / 2, (face.box[1] + face.box[3]) / 2
    assert abs(cx - FACE_CENTRE[0]) < 15 and abs(cy - FACE_CENTRE[1]) < 15, face.box
    assert 0.8 * FACE_HEIGHT < face.height < 1.2 * FACE_HEIGHT
    assert face.width == face.box[2] - face.box[0] and face.height == face.box[3] - face.box[1]
    assert not fresh_detector.rejected


# The photo cut so that the face touches a border: the SSD's raw box then reaches past
# the frame (the `raw` check proves the case is real), and the Face must be clamped.
BORDER_CASES = {
    "left": (np.s_[:, 190:], lambda r: r[0] < 0, lambda b, w, h: b[0] == 0),
    "right": (np.s_[:, :255], lambda r: r[2] > 1, lambda b, w, h: b[2] == w),
    "top": (np.s_[75:, :], lambda r: r[1] < 0, lambda b, w, h: b[1] == 0),
    "top-left corner": (np.s_[80:, 195:], lambda r: r[0] < 0 and r[1] < 0, lambda b, w, h: b[0] == 0 and b[1] == 0),
}


@pytest.mark.parametrize("case", list(BORDER_CASES))
def test_face_cut_by_the_border_is_clamped(fresh_detector: FaceDetector, face_image: np.ndarray, case: str) -> None:
    window, raw_beyond, touches = BORDER_CASES[case]
    frame = np.ascontiguousarray(face_image[window])
    h, w = frame.shape[:2]
    raw = fresh_detector.raw_detections(frame)
    best = raw[np.argmax(raw[:, 2])]
    assert raw_beyond(best[3:7]), f"the raw box {best[3:7]} does not reach past the {case} border"

    faces = fresh_detector.detect(frame)
    assert faces, f"no face found with the face at the {case} border"
    face = faces[0]
    assert 0.5 <= face.confidence <= 1.0
    assert_inside(face, w, h)
    assert touches(face.box, w, h), face.box
    assert face.box == clamp_box(best[3:7], w, h)


def test_detect_sorts_by_confidence_and_drops_low_rows(fresh_detector: FaceDetector, monkeypatch) -> None:
    rows = np.array([
        [0, 1, 0.70, 0.10, 0.10, 0.30, 0.35],
        [0, 1, 0.95, 0.50, 0.50, 0.70, 0.75],
        [0, 1, 0.49, 0.20, 0.20, 0.40, 0.45],  # below 0.5: ignored, not counted as rejected
        [0, 0, 0.00, 0.00, 0.00, 0.00, 0.00],  # the SSD's zero padding
    ], np.float32)
    monkeypatch.setattr(fresh_detector, "raw_detections", lambda frame: rows)
    faces = fresh_detector.detect(np.zeros((200, 200, 3), np.uint8))
    assert [round(f.confidence, 2) for f in faces] == [0.95, 0.70]
    assert faces[0].box == (100, 100, 140, 150)
    assert faces[1].box == (20, 20, 60, 70)
    assert not fresh_detector.rejected


# --- the plausibility filter, on crafted SSD rows ----------------------------------

FRAME = np.zeros((200, 300, 3), np.uint8)  # w=300, h=200


@pytest.mark.parametrize(
    ("rel_box", "reason"),
    [
        ((-0.60, 0.10, 0.30, 0.60), "mostly outside the frame"),  # 2/3 of its area left of the frame
        ((0.80, 0.70, 1.40, 1.50), "mostly outside the frame"),  # off the bottom-right corner
        ((0.40, 0.40, 0.45, 0.45), "too small"),  # 15 x 10 px
        ((0.05, 0.30, 0.95, 0.60), "not face-shaped"),  # 270 x 60 px
        ((0.50, 0.50, 0.50, 0.60), "empty box"),
    ],
)
def test_implausible_box_is_rejected_and_counted(fresh_detector: FaceDetector, monkeypatch, rel_box, reason) -> None:
    good = (0.30, 0.20, 0.50, 0.70)  # 60 x 100 px, inside
    rows = np.array([[0, 1, 0.99, *rel_box], [0, 1, 0.80, *good]], np.float32)
    monkeypatch.setattr(fresh_detector, "raw_detections", lambda frame: rows)
    faces = fresh_detector.detect(FRAME)
    assert [f.box for f in faces] == [(90, 40, 150, 140)], "only the plausible box survives"
    assert fresh_detector.rejected == {reason: 1}


def test_box_slightly_outside_is_kept_and_clamped(fresh_detector: FaceDetector, monkeypatch) -> None:
    # 10% of its area past the left border: a face cut by the frame, not a shirt.
    rows = np.array([[0, 1, 0.9, -0.02, 0.20, 0.18, 0.70]], np.float32)
    monkeypatch.setattr(fresh_detector, "raw_detections", lambda frame: rows)
    faces = fresh_detector.detect(FRAME)
    assert len(faces) == 1 and faces[0].box == (0, 40, 54, 140)
    assert_inside(faces[0], 300, 200)
    assert not fresh_detector.rejected


def test_max_outside_is_the_threshold(monkeypatch) -> None:
    rows = np.array([[0, 1, 0.99, -0.60, 0.10, 0.30, 0.60]], np.float32)  # 2/3 outside
    lenient = FaceDetector(max_outside=0.7)
    monkeypatch.setattr(lenient, "raw_detections", lambda frame: rows)
    faces = lenient.detect(FRAME)
    assert len(faces) == 1 and faces[0].box == (0, 20, 90, 120)
    assert not lenient.rejected


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"confidence": 1.5}, "confidence must be between 0 and 1, got 1.5"),
        ({"confidence": -0.1}, "confidence must be between 0 and 1, got -0.1"),
        ({"max_outside": 2.0}, "max outside fraction"),
        ({"min_size": 0}, "minimum face size"),
        ({"aspect": (1.2, 0.8)}, "aspect"),
    ],
)
def test_bad_settings_are_value_errors(kwargs, message) -> None:
    # Library code: a caller's mistake is a ValueError; the scripts' argparse types catch flags first.
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        FaceDetector(**kwargs)


# --- box helpers ---------------------------------------------------------------------


def test_clamp_box_inside_is_scaled_and_rounded() -> None:
    box = clamp_box(np.array([0.1, 0.25, 0.5, 0.755]), 200, 100)
    assert box == (20, 25, 100, 76)
    assert all(isinstance(v, int) for v in box)


def test_clamp_box_clips_to_the_frame() -> None:
    assert clamp_box((-0.2, -0.1, 1.3, 1.05), 640, 480) == (0, 0, 640, 480)
    assert clamp_box((0.9, 0.5, 1.5, 0.8), 100, 100) == (90, 50, 100, 80)
    assert clamp_box((-1.0, -1.0, -0.5, -0.5), 100, 100) == (0, 0, 0, 0)


def test_expand_box() -> None:
    assert expand_box((40, 40, 60, 80), 1.0, 200, 200) == (40, 40, 60, 80)
    assert expand_box((40, 40, 60, 80), 2.0, 200, 200) == (30, 20, 70, 100)  # same centre, twice the size
    assert expand_box((40, 40, 60, 80), 0.5, 200, 200) == (45, 50, 55, 70)
    # Near a corner the grown box stops at the frame.
    assert expand_box((0, 5, 30, 45), 2.0, 50, 50) == (0, 0, 45, 50)
    x1, y1, x2, y2 = expand_box((150, 80, 200, 100), 3.0, 200, 100)
    assert (x2, y2) == (200, 100) and 0 <= x1 < x2 and 0 <= y1 < y2


# --- locating the detector's files -------------------------------------------------


def test_default_files_are_found_and_verified() -> None:
    files = locate_detector_files()
    assert files.prototxt.is_file() and files.caffemodel.name == det.CAFFEMODEL_NAME
    assert file_digest(files.caffemodel) == det.CAFFEMODEL_SHA256


def test_explicit_folder_with_the_files_is_used(tmp_path: Path) -> None:
    real = locate_detector_files()
    (tmp_path / "deploy.prototxt").symlink_to(real.prototxt)
    (tmp_path / det.CAFFEMODEL_NAME).symlink_to(real.caffemodel)
    files = locate_detector_files(tmp_path)
    assert files.origin == "folder" and files.prototxt.parent == tmp_path


def test_explicit_empty_folder_is_an_error_not_a_fallback(tmp_path: Path) -> None:
    with pytest.raises(LivenessError, match="has neither deploy.prototxt nor"):
        locate_detector_files(tmp_path)


def test_explicit_missing_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(LivenessError, match="does not exist"):
        locate_detector_files(tmp_path / "nope")


def test_folder_with_one_file_says_which_is_missing(tmp_path: Path) -> None:
    shutil.copy(locate_detector_files().prototxt, tmp_path / "deploy.prototxt.txt")
    with pytest.raises(LivenessError, match=f"lacks {det.CAFFEMODEL_NAME}"):
        locate_detector_files(tmp_path)


def test_corrupt_caffemodel_fails_its_checksum(tmp_path: Path) -> None:
    shutil.copy(locate_detector_files().prototxt, tmp_path / "deploy.prototxt.txt")
    (tmp_path / det.CAFFEMODEL_NAME).write_bytes(b"\x00not the res10 weights" * 100)
    with pytest.raises(LivenessError, match="corrupt or not the res10 SSD.*sha256"):
        FaceDetector(detector_dir=tmp_path)
