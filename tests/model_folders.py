"""Model folders (liveness/model.py) around a fitted colour-LBP scorer and/or a Keras
CNN, for the tests of explain.py and export.py."""

from __future__ import annotations

from pathlib import Path

from liveness.model import write_model


def write_folder(folder: Path, *, lbp=None, cnn=None, threshold: float = 0.5, padding: float = 0.0) -> Path:
    scorer = "fusion" if lbp is not None and cnn is not None else ("lbp" if lbp is not None else "cnn")
    write_model(folder, {
        "scorer": scorer, "labels": ["fake", "real"], "live_label": "real", "threshold": threshold,
        "threshold_source": "set by the test", "padding": padding,
        "lbp_weight": {"lbp": 1.0, "cnn": 0.0, "fusion": 0.5}[scorer],
        "input_size": int(cnn.input_shape[1]) if cnn is not None else None,
    }, lbp=lbp, cnn=cnn)
    return folder
