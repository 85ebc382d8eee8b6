"""Per-face time of each export (export.py) against the model it was exported from,
as ratios within one run, with the exports' file sizes and score agreement.

Usage:
    python benchmarks/bench_export.py                       # about 2 minutes on 2 cores
    python benchmarks/bench_export.py --arch mobilenetv3small --input-size 64
    python benchmarks/bench_export.py --crops 32 --repeats 3 --json out.json

Lines (one face per call, as the demo scores a frame with one face; the same crops of
../shared/data/crops for all):
  cnn-keras      the CNN as Keras runs it: prepare_faces + a compiled tf.function
  cnn-onnx       its ONNX export on OpenCV's DNN module      -> ratio to cnn-keras
  cnn-tflite     its float TFLite export on LiteRT           -> ratio to cnn-keras
  cnn-tflite-int8  int8 TFLite (calibrated on the same crops) -> ratio to cnn-keras
  lbp            the colour-LBP classifier (LBPClassifier.score_live)
  lbp-json       its JSON export on the plain-NumPy reference scorer -> ratio to lbp
The CNN is built untrained (speed does not depend on the weights), its BatchNorm statistics
estimated on the crops so that its scores differ between them; the LBP model is fitted on
the crops. Every line runs once per round, in rotating order, --repeats
rounds after a warm-up; a ratio is the median of the per-round ratios.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as `python benchmarks/bench_export.py`
    sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.harness import machine_info, paired_ratio, round_robin, spread  # noqa: E402
from liveness.cli import UserError, cli_main, ensure_parent_dir, import_tensorflow, setup_logging  # noqa: E402
from liveness.fileio import write_json  # noqa: E402

LOGGER = logging.getLogger("liveness")

DEFAULT_DATA = ROOT.parent / "shared" / "data"
DEFAULT_JSON = ROOT / "output" / "bench_export.json"
INFO = {"labels": ["fake", "real"], "live_label": "real", "threshold": 0.5}


def shared_crops(data: Path, n: int) -> tuple[list[np.ndarray], np.ndarray]:
    """n crops spread over every set-up and class of data/crops, and their labels (1 = live)."""
    files = sorted(p for p in (data / "crops").rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    if len(files) < n:
        raise UserError(f"{data / 'crops'}: {len(files)} crops, {n} wanted")
    picked = [files[i] for i in np.linspace(0, len(files) - 1, n).round().astype(int)]
    return [cv2.imread(str(p)) for p in picked], np.array([int(p.parent.name == "real") for p in picked])


def per_face(score, faces: list[np.ndarray]):
    """A task: score every face alone, return seconds per face."""

    def task() -> float:
        t = time.perf_counter()
        for f in faces:
            score([f])
        return (time.perf_counter() - t) / len(faces)

    return task


def run(*, data: Path = DEFAULT_DATA, arch: str = "livenessnet", input_size: int = 32, crops: int = 64,
        repeats: int = 5, json_path: Path = DEFAULT_JSON) -> dict:
    from liveness import export as ex
    from liveness.lbp import LBPClassifier
    from liveness.nets import build_model
    from liveness.runtime import prepare_faces
    from liveness.training import make_dataset, refresh_batchnorm

    if not (data / "crops").is_dir():
        raise UserError(f"--data {data}: no crops/ folder (the shared data)")
    ensure_parent_dir(json_path)
    tf = import_tensorflow()
    faces, labels = shared_crops(data, crops)
    cnn = build_model(arch, input_size=input_size)
    # Left at their initial mean 0 and variance 1, a MobileNet's BatchNorm statistics give every
    # crop the same score, and the exports' agreement would compare constants.
    refresh_batchnorm(cnn, make_dataset(prepare_faces(faces, input_size), np.eye(2)[labels], len(faces)))
    lbp = LBPClassifier().fit(faces, labels)
    keras_fn = tf.function(lambda x: cnn(x, training=False), reduce_retracing=True)

    def keras_score(fs):
        return keras_fn(prepare_faces(fs, input_size).astype(np.float32)).numpy()[:, 1]

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        files = {
            "cnn-onnx": ex.export_onnx(cnn, tmp / "m.onnx", **INFO),
            "cnn-tflite": ex.export_tflite(cnn, tmp / "m.tflite", **INFO),
            "cnn-tflite-int8": ex.export_tflite(cnn, tmp / "m8.tflite", **INFO, representative=prepare_faces(faces, input_size)),
            "lbp-json": ex.export_lbp_json(lbp, tmp / "lbp.json", **INFO),
        }
        scorers = {k: ex.ExportedScorer(p) for k, p in files.items()}
        originals = {"cnn-keras": keras_score, "lbp": lbp.score_live}
        base = {k: ("lbp" if k == "lbp-json" else "cnn-keras") for k in files}
        agreement = {k: float(np.abs(s.score(faces) - originals[base[k]](faces)).max()) for k, s in scorers.items()}
        cnn_sd = float(np.std(keras_score(faces)))  # an agreement means little if every crop scores alike
        sizes = {k: p.stat().st_size for k, p in files.items()}
        tasks = {**{k: per_face(f, faces) for k, f in originals.items()}, **{k: per_face(s.score, faces) for k, s in scorers.items()}}
        LOGGER.info("timing %d lines, %d crops one at a time, %d rounds", len(tasks), len(faces), repeats)
        times = round_robin(tasks, repeats)
    lines = []
    for name, values in times.items():
        lo, med, hi = spread(values)
        line = {"id": name, "ms_per_face": {"min": lo * 1e3, "median": med * 1e3, "max": hi * 1e3}}
        if name in base:
            line |= {"ratio_to": base[name], "ratio": paired_ratio(values, times[base[name]]),
                     "max_score_difference": agreement[name], "bytes": sizes[name]}
        lines.append(line)
    result = {"machine": machine_info(), "arch": arch, "input_size": input_size, "crops": len(faces),
              "repeats": repeats, "cnn_score_sd": cnn_sd, "lines": lines}
    write_json(json_path, result)  # atomic: an interrupted run leaves the last JSON whole
    print(f"the CNN's scores over the {len(faces)} crops: standard deviation {cnn_sd:.3f}")
    print(f"{'line':<17}{'ms/face (median)':>17}{'x original':>12}{'max |score diff|':>18}{'size':>11}")
    for line in lines:
        extra = (f"{line['ratio']:>12.2f}{line['max_score_difference']:>18.2g}{line['bytes'] / 1024:>9.0f} KiB"
                 if "ratio" in line else "")
        print(f"{line['id']:<17}{line['ms_per_face']['median']:>17.3f}{extra}")
    return result


def parse_opt(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="Per-face time of each export against the original model.")
    ap.add_argument("--data", default=str(DEFAULT_DATA), help="the shared data folder (its crops/)")
    ap.add_argument("--arch", default="livenessnet", help="CNN architecture (liveness/nets.py)")
    ap.add_argument("--input-size", type=int, default=32)
    ap.add_argument("--crops", type=int, default=64, help="crops timed, one per call")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", default=str(DEFAULT_JSON), help="where the figures go")
    return ap.parse_args(argv)


def main(opt: argparse.Namespace) -> int:
    setup_logging()
    run(data=Path(opt.data), arch=opt.arch, input_size=opt.input_size, crops=opt.crops, repeats=opt.repeats,
        json_path=Path(opt.json))
    return 0


if __name__ == "__main__":
    cli_main(lambda: main(parse_opt()))
