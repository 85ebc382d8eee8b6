"""Export a trained liveness model for phones, single-board computers and browsers.

Usage:
    python export.py --model output/liveness --format onnx --output liveness.onnx
    python export.py --model output/liveness --format tflite --output liveness.tflite
    python export.py --model output/liveness --format tflite --int8 --representative dataset --output liveness_int8.tflite
    python export.py --model output/liveness --format lbp-json --output liveness_lbp.json

onnx and tflite export the CNN (pixel scaling inside: feed (N, S, S, 3) float32 RGB
0..255, the crop resized with OpenCV's INTER_AREA); --int8 quantises weights and
activations, calibrated on up to 200 crops of --representative (a folder of face
crops, searched recursively). lbp-json exports the colour-LBP scorer as a documented
JSON file that liveness/lbp_reference.py (plain NumPy) scores. Each export records the
labels, the live label and the threshold (README, "Explain and export").

After writing, the export is loaded the way a device would load it (OpenCV DNN,
LiteRT, the NumPy reference; no TensorFlow) and its scores are compared with the
original model's on a few crops; the largest difference is logged.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import cv2
import numpy as np

from liveness import DEFAULT_MODEL
from liveness import export as ex
from liveness.cli import UserError, cli_main, ensure_parent_dir, setup_logging
from liveness.dataset import list_images
from liveness.model import load_model
from liveness.runtime import prepare_faces

LOGGER = logging.getLogger("liveness")

CHECK_CROPS = 16  # crops the written export is checked on


def read_crops(folder: Path, limit: int) -> list[np.ndarray]:
    """Up to `limit` BGR images under `folder`, evenly spaced in name order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"--representative {folder} is not a folder")
    files = sorted(list_images(folder))
    if len(files) > limit:
        files = [files[i] for i in np.linspace(0, len(files) - 1, limit).round().astype(int)]
    crops = [c for c in (cv2.imread(str(p), cv2.IMREAD_COLOR) for p in files) if c is not None and c.size]
    if not crops:
        raise UserError(f"--representative {folder}: no readable images")
    return crops


def run(
    *,
    model: Path = DEFAULT_MODEL,
    format: str,
    output: Path,
    int8: bool = False,
    representative: Path | None = None,
) -> Path:
    """Write the export to `output`; returns its path."""
    if format not in ex.FORMATS:
        raise UserError(f"--format must be one of {', '.join(ex.FORMATS)}")
    output = Path(output)
    if output.suffix != ex.SUFFIXES[format]:
        raise UserError(f"--output of --format {format} must end in {ex.SUFFIXES[format]}, got {output.name}")
    if int8 and format != "tflite":
        raise UserError("--int8 applies to --format tflite only")
    if int8 and representative is None:
        raise UserError("--int8 needs --representative FOLDER of face crops to calibrate on")
    ensure_parent_dir(output)
    m = load_model(model)
    info = {"labels": list(m.labels), "live_label": m.live_label, "threshold": float(m.threshold),
            "padding": float(m.padding), "source_model": Path(model).name, "scorer": m.scorer}
    crops = read_crops(representative, ex.REPRESENTATIVE_LIMIT) if representative is not None else None
    if format == "lbp-json":
        if m.lbp is None:
            raise UserError(f"{model} has no colour-LBP scorer (scorer {m.scorer}); export it as onnx or tflite")
        original = m.lbp.score_live
        ex.export_lbp_json(m.lbp, output, **info)
    else:
        cnn = m.cnn
        if cnn is None:
            raise UserError(f"{model} has no CNN (scorer {m.scorer}); export it with --format lbp-json")
        size = int(cnn.input_shape[1])
        live = list(m.labels).index(m.live_label)

        def original(faces):
            return cnn(prepare_faces(faces, size).astype(np.float32), training=False).numpy()[:, live]

        if format == "onnx":
            ex.export_onnx(cnn, output, **info)
        else:
            calib = prepare_faces(crops, size) if int8 else None
            ex.export_tflite(cnn, output, **info, representative=calib)
    if m.scorer == "fusion":
        LOGGER.warning("%s is fused: this export is its %s part alone, and the recorded threshold %.3f was fixed on "
                       "the fused score", model, "colour-LBP" if format == "lbp-json" else "CNN", m.threshold)
    check = crops[:CHECK_CROPS] if crops else list(np.random.default_rng(0).integers(0, 256, (CHECK_CROPS, 64, 64, 3), np.uint8))
    diff = np.abs(ex.ExportedScorer(output).score(check) - np.asarray(original(check), np.float64)).max()
    LOGGER.info("wrote %s (%.1f KiB); on %d %s its live scores differ from the original's by at most %.2g",
                output, output.stat().st_size / 1024, len(check), "crops" if crops else "noise images", diff)
    return output


def parse_opt(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="Export a liveness model to ONNX, TFLite or a dependency-free JSON (colour LBP).")
    ap.add_argument("-m", "--model", default=str(DEFAULT_MODEL), help="model folder written by train.py")
    ap.add_argument("-f", "--format", required=True, choices=ex.FORMATS)
    ap.add_argument("-o", "--output", required=True, help="file to write (.onnx, .tflite or .json)")
    ap.add_argument("--int8", action="store_true", help="tflite: int8 weights and activations")
    ap.add_argument("--representative", default=None, help="folder of face crops: int8 calibration, and the check after export")
    ap.add_argument("-v", "--verbose", action="store_true")
    return ap.parse_args(argv)


def main(opt: argparse.Namespace) -> int:
    setup_logging(opt.verbose)
    run(model=Path(opt.model), format=opt.format, output=Path(opt.output), int8=opt.int8,
        representative=Path(opt.representative) if opt.representative else None)
    return 0


if __name__ == "__main__":
    cli_main(lambda: main(parse_opt()))
