"""liveness.lbp's fast path (4-point LBP at integer radii, the default
settings) gives exactly the general path's features, and scikit-image's."""

from __future__ import annotations


import cv2
import numpy as np
import pytest

from liveness import lbp_kernel
from liveness.lbp import CHANNELS, DEFAULT_SETTINGS, N_MOMENTS, lbp_features_batch

DEFAULTS = DEFAULT_SETTINGS.feature_kwargs()


def _general(faces, **settings) -> np.ndarray:
    """lbp_features_batch with the fast path switched off: the code every setting ran before it."""
    original = lbp_kernel._fast_plan
    lbp_kernel._fast_plan = lambda *a: None
    try:
        return lbp_features_batch(faces, **settings)
    finally:
        lbp_kernel._fast_plan = original


def _random_faces(seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:120, 0:100]
    ramp = np.stack([xx, yy, (xx + yy) // 2], axis=-1).astype(np.uint8)
    return [
        rng.integers(0, 256, (150, 130, 3), dtype=np.uint8),
        rng.integers(100, 103, (90, 90, 3), dtype=np.uint8),  # ties everywhere
        np.full((64, 64, 3), 77, dtype=np.uint8),
        ramp,
        rng.integers(0, 256, (40, 200), dtype=np.uint8),  # grey
        rng.integers(0, 256, (160, 160, 4), dtype=np.uint8),  # BGRA, already the size
    ]


@pytest.mark.parametrize(
    "settings",
    [
        DEFAULTS,
        {**DEFAULTS, "channels": CHANNELS},
        {**DEFAULTS, "channels": ("Cb", "H", "Y"), "radii": (4, 1)},
        {**DEFAULTS, "radii": (2,), "moments": False},
        {**DEFAULTS, "size": 47, "radii": (1, 3)},  # odd size: rows not a whole number of words
        {**DEFAULTS, "size": 9, "radii": (1, 4)},  # the smallest size radius 4 allows
        {**DEFAULTS, "radii": (2, 2)},
        {**DEFAULTS, "radii": (1, 2, 3, 4)},
    ],
)
def test_fast_path_equals_general_path_on_random_faces(settings) -> None:
    assert lbp_kernel._fast_plan(settings["points"], tuple(settings["radii"]), settings["size"], tuple(settings["channels"])) is not None
    faces = _random_faces(1)
    fast = lbp_features_batch(faces, **settings)
    np.testing.assert_array_equal(fast, _general(faces, **settings))
    # One face a call (how the demo calls it) gives the same rows as a batch.
    for row, face in zip(fast, faces):
        np.testing.assert_array_equal(lbp_features_batch([face], **settings)[0], row)


def test_fast_path_equals_general_path_on_more_faces_than_a_chunk() -> None:
    rng = np.random.default_rng(2)
    faces = [rng.integers(0, 256, (60 + i, 50 + 2 * i, 3), dtype=np.uint8) for i in range(lbp_kernel._BATCH_FACES + 3)]
    np.testing.assert_array_equal(lbp_features_batch(faces, **DEFAULTS), _general(faces, **DEFAULTS))


def test_settings_the_fast_path_leaves_to_the_general_one() -> None:
    assert lbp_kernel._fast_plan(8, (1, 2), 64, CHANNELS) is None  # diagonal samples fall between pixels
    assert lbp_kernel._fast_plan(2, (1, 3), 64, CHANNELS) is None  # only 4 points are counted from bit planes
    assert lbp_kernel._fast_plan(16, (2,), 64, CHANNELS) is None


def test_default_lbp_matches_scikit_image() -> None:
    """The oracle, at the default size and channels: scikit-image's uniform LBP histograms."""
    from skimage import data
    from skimage.feature import local_binary_pattern

    face = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)[30:230, 150:330]
    size, points, radii = DEFAULTS["size"], DEFAULTS["points"], DEFAULTS["radii"]
    bgr = cv2.resize(face, (size, size), interpolation=cv2.INTER_AREA if DEFAULTS["area"] else cv2.INTER_LINEAR)
    planes = [*cv2.split(cv2.cvtColor(bgr, cv2.COLOR_BGR2HSV)), *cv2.split(cv2.cvtColor(bgr, cv2.COLOR_BGR2YCrCb))]
    expected = []
    for name in DEFAULTS["channels"]:
        for r in radii:
            codes = local_binary_pattern(planes[CHANNELS.index(name)], points, r, method="uniform")[r:-r, r:-r]
            expected.append(np.bincount(codes.astype(np.intp).ravel(), minlength=points + 2) / codes.size)
    ours = lbp_features_batch([face], **DEFAULTS)[0]
    np.testing.assert_array_equal(ours[:-N_MOMENTS], np.concatenate(expected).astype(np.float32))


@pytest.mark.shared_data
def test_fast_path_equals_general_path_on_real_crops(shared_data) -> None:
    paths = sorted((shared_data / "crops").glob("*/*/*.png"))
    faces = [cv2.imread(str(p)) for p in paths[:: max(1, len(paths) // 60)]]
    assert len(faces) >= 50 and all(f is not None for f in faces)
    np.testing.assert_array_equal(lbp_features_batch(faces, **DEFAULTS), _general(faces, **DEFAULTS))
