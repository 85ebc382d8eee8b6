"""Shared fixtures. Tests that need ../shared/data skip when it is absent (a user's
clone) but fail under CI (CI=true), where skipping would hide that they never ran."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from liveness import ROOT

SHARED_DATA = Path(os.environ.get("LIVENESS_SHARED_DATA", ROOT.parent / "shared" / "data"))


def _require_shared() -> Path:
    if (SHARED_DATA / "videos").is_dir():
        return SHARED_DATA
    if os.environ.get("CI"):
        pytest.fail(f"CI must run the shared-data tests, but {SHARED_DATA} is missing")
    pytest.skip(f"{SHARED_DATA} is absent (a user's clone)")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data, read in place (never copied into the project)."""
    return _require_shared()


@pytest.fixture(scope="session")
def face_image():
    """A real face photo shipped by scikit-image (BGR, 512x512)."""
    import cv2
    from skimage import data

    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)


SMALL_SUBJECTS = ("subject04", "subject05", "subject07", "subject08", "subject09", "subject13", "subject14", "subject16")


def built_once(tmp_path_factory, name: str, build: Callable[[Path], None]) -> Path:
    """The folder `build(folder)` makes, made once per test run however many xdist workers
    ask for it: the first builds it under a file lock, the others wait and then reuse it.
    Callers must treat it as read-only, as any session fixture's result."""
    try:
        import fcntl
    except ImportError:  # no flock (Windows): each worker builds its own
        fcntl = None
    root = tmp_path_factory.getbasetemp()
    if fcntl is not None and os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # pytest-N/, this run's folder; each worker has its own popen-gwK/ below it
    folder, done = root / name, root / f"{name}.done"
    with open(root / f"{name}.lock", "w") as lock:
        if fcntl is not None:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)  # what a failed build left
            folder.mkdir()
            build(folder)
            done.touch()
    return folder


@pytest.fixture(scope="session")
def trained_model(shared_data, tmp_path_factory) -> Path:
    """A model folder fusing LivenessNet with colour LBP, trained briefly on the shared crops,
    with crop padding recorded as 0.1 (so the demo and evaluate.py pad their crops).

    Fused so the tests exercise both scorers (the CNN through OpenCV's DNN, and LBP).
    Good enough to exercise the demo and evaluate.py; its accuracy means nothing.
    Trained once per run, not again in the other xdist worker.
    """
    import train

    def build(folder: Path) -> None:
        # A dataset of symlinked folders (as users assemble them), of the smaller set-ups: quick to train.
        data = folder / "linked-crops"
        data.mkdir()
        for subject in SMALL_SUBJECTS:
            (data / subject).symlink_to(shared_data / "crops" / subject, target_is_directory=True)
        train.run(
            dataset=[data], model=folder / "liveness", scorer="fusion",
            epochs=2, batch_size=64, group_pattern=r"subject\d+", seed=1, padding=0.1,
        )

    return built_once(tmp_path_factory, "trained-model", build) / "liveness"


@pytest.fixture(scope="session")
def lbp_model(shared_data, tmp_path_factory) -> Path:
    """The default scorer (colour LBP alone), trained on the shared crops: a model folder."""
    import train

    def build(folder: Path) -> None:
        train.run(dataset=[shared_data / "crops"], model=folder / "liveness", group_pattern=r"subject\d+", seed=1)

    return built_once(tmp_path_factory, "lbp-model", build) / "liveness"
