"""Facial landmarks in the 68-point layout: which model the product uses, and dlib's.

`Landmarker` is the product's landmarker: MediaPipe's face mesh with its iris model's
eye contours (liveness/facemesh.py). `DlibLandmarker` is dlib's shape predictor
(iBUG 300-W 68-point layout) shipped inside the pinned `face-recognition-models`
package, run by the prebuilt `dlib-bin` wheel: the product's landmarker until the mesh
replaced it (its blinks were too often missed or invented, README "Active liveness"),
kept for the research benchmarks that measured it. Nothing is downloaded: each file is
found where pip put it and its sha256 is checked, as liveness/detector.py does for the
SSD. dlib is imported only when a DlibLandmarker is built.

Swap the model here and nowhere else: callers see `Landmarker().landmarks(frame, box)`
-> (68, 2) float pixel coordinates in the 68-point order below.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

from liveness.errors import ModelError
from liveness.facemesh import MeshLandmarker
from liveness.fileio import check_sha256, package_folder

LOGGER = logging.getLogger("liveness")

MODEL_PACKAGE = "face_recognition_models"
MODEL_RELPATH = Path("models") / "shape_predictor_68_face_landmarks.dat"
MODEL_SHA256 = "fbdc2cb80eb9aa7a758672cbfdda32ba6300efe9b6e6c7a299ff7e736b11b92f"
INSTALL_HINT = "pip install -r benchmarks/requirements-dlib.txt (dlib-bin and face-recognition-models: the benchmarks' only)"
N_POINTS = 68
ROI_MARGIN = 0.25  # of the predictor box's width, per side: the pixels it may read

# The parts of the 68-point layout the challenge reads (0-based; slices end exclusive).
JAW = slice(0, 17)  # from the subject's right ear (image left) to the left
RIGHT_EYE = slice(36, 42)  # the subject's right eye: left in an unmirrored image
LEFT_EYE = slice(42, 48)
NOSE_TIP = 30


def locate_model_file() -> Path:
    """The .dat inside the installed package, checksum-verified; ModelError when missing."""
    folder = package_folder(MODEL_PACKAGE)
    if folder is None:
        raise ModelError(f"the facial landmark model is not installed: {INSTALL_HINT}")
    path = folder / MODEL_RELPATH
    if not path.is_file():
        raise ModelError(f"{path} is missing from the {MODEL_PACKAGE} package: {INSTALL_HINT}")
    return check_sha256(path, MODEL_SHA256, "dlib's 68-point landmark predictor", ModelError)


def predictor_box(box: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    """The SSD's box as the shape predictor expects its face box (x2/y2 exclusive).

    dlib's predictor was trained on its own HOG detector's boxes: square, from the
    brows to the chin. The SSD's box is taller (it holds the forehead), and the
    predictor places the eyelids too high in it, which flattens a blink's dip in
    the eye aspect ratio. The square of the box's width, standing on its bottom
    edge, is close to dlib's box.
    """
    x1, _, x2, y2 = (int(v) for v in box)
    return x1, y2 - (x2 - x1), x2, y2


def import_dlib():
    """The dlib module; ModelError naming the install command when it is absent."""
    try:
        import dlib
    except ImportError:
        raise ModelError(f"the dlib package is not installed: {INSTALL_HINT}") from None
    return dlib


class DlibLandmarker:
    """dlib's 68 facial landmarks inside a face box found by the SSD (or any detector).

    Not thread-safe: one per thread, or guard calls with a lock.
    """

    def __init__(self, model_path: Path | None = None) -> None:
        self._dlib = import_dlib()
        self.model_path = Path(model_path) if model_path is not None else locate_model_file()
        try:
            self._predictor = self._dlib.shape_predictor(str(self.model_path))
        except RuntimeError as e:
            raise ModelError(f"cannot load landmark model {self.model_path}: {e}") from None
        LOGGER.info("landmark model: %s", self.model_path)

    def landmarks(self, frame: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
        """(68, 2) float64 pixel (x, y) of the face in `box` = (x1, y1, x2, y2).

        `frame` is BGR (H, W, 3) or grey (H, W), uint8. The predictor reads only the
        pixels around the box, so pass the whole frame, not a crop.
        """
        x1, y1, x2, y2 = (int(v) for v in box)
        if x2 <= x1 or y2 <= y1:
            raise ValueError(f"empty face box {box}")
        if frame.dtype != np.uint8 or frame.ndim not in (2, 3):
            raise ValueError(f"expected a uint8 BGR or grey image, got {frame.dtype} {frame.shape}")
        px1, py1, px2, py2 = predictor_box(box)
        # Convert only the predictor's box and a margin around it (its points may stray
        # outside the box): a whole HD frame's grey conversion costs more than the model.
        h, w = frame.shape[:2]
        m = int((px2 - px1) * ROI_MARGIN)
        rx1, ry1, rx2, ry2 = max(0, px1 - m), max(0, py1 - m), min(w, px2 + m), min(h, py2 + m)
        roi = frame[ry1:ry2, rx1:rx2]
        if roi.ndim == 3:
            roi = cv2.cvtColor(roi, cv2.COLOR_BGR2GRAY)
        roi = np.ascontiguousarray(roi)  # dlib reads a C-contiguous buffer only
        # dlib's rectangle is inclusive on the right and bottom; our boxes are exclusive.
        rect = self._dlib.rectangle(px1 - rx1, py1 - ry1, px2 - 1 - rx1, py2 - 1 - ry1)
        shape = self._predictor(roi, rect)
        pts = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)
        pts += (rx1, ry1)
        return pts


Landmarker = MeshLandmarker  # the product's landmarker
