"""Shared fixtures. Tests that need ../shared/data skip when it is absent (a user's
clone) but fail under CI (CI=true), where skipping would hide that they never ran."""

from __future__ import annotations

import os
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


@pytest.fixture(scope="session")
def trained_model(shared_data, tmp_path_factory):
    """A LivenessNet fused with colour LBP, trained briefly on the shared crops: (model, le).

    Good enough to exercise the demo and evaluate.py; its accuracy means nothing.
    """
    import train

    out = tmp_path_factory.mktemp("model")
    model, le = out / "liveness.keras", out / "le.pickle"
    train.run(
        dataset=[shared_data / "crops"], model=model, le=le, plot=out / "plot.png",
        epochs=3, batch_size=32, group_pattern=r"subject\d+", seed=1,
        lbp_weight=0.5,  # fused: the tests exercise the CNN (ONNX in OpenCV) and the LBP paths both
    )
    return model, le
