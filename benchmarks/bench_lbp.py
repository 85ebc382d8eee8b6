"""Colour-LBP features per face: the 4-point fast path against the general path, one process.

Usage:
    python benchmarks/bench_lbp.py                   # real crops from ../shared/data/crops
    python benchmarks/bench_lbp.py --faces 40 --rounds 15 --batch 4

Times `lbp_features_batch([face], **DEFAULT_SETTINGS)` as the demo calls it (one face a
call; --batch for more) and the same call forced onto the general path (what every
setting took before the fast path), in alternating rounds over the same crops, and
prints the median ms per face of each, wall clock and this thread's CPU time (on a
shared machine the CPU time is the steadier; it leaves out OpenCV's worker threads),
and the median of the per-round ratios. It also
checks the two give equal features on these crops (it is not a test: it says so and
goes on). Crops are real ones when ../shared/data is there, else random noise.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as `python benchmarks/bench_lbp.py`
    sys.path.insert(0, str(ROOT))

from liveness.cli import cli_main, setup_logging  # noqa: E402

LOGGER = logging.getLogger("liveness")


def load_faces(data: Path, count: int) -> list:
    import cv2
    import numpy as np

    paths = sorted((data / "crops").glob("*/*/*.png"))
    if paths:
        step = max(1, len(paths) // count)
        faces = [cv2.imread(str(p)) for p in paths[::step][:count]]
        return [f for f in faces if f is not None]
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (150, 130, 3), dtype=np.uint8) for _ in range(count)]


def run(*, data: Path = ROOT.parent / "shared" / "data", faces: int = 40, rounds: int = 15, batch: int = 1) -> dict:
    import numpy as np

    from liveness import lbp, lbp_kernel

    settings = lbp.DEFAULT_SETTINGS.feature_kwargs()
    crops = load_faces(Path(data), faces)
    groups = [crops[i : i + batch] for i in range(0, len(crops), batch)]

    def fast() -> tuple[float, float]:
        """(wall, this thread's CPU) seconds per face."""
        t, c = time.perf_counter(), time.thread_time()
        for g in groups:
            lbp.lbp_features_batch(g, **settings)
        return (time.perf_counter() - t) / len(crops), (time.thread_time() - c) / len(crops)

    def general() -> tuple[float, float]:
        with mock.patch.object(lbp_kernel, "_fast_plan", lambda *a: None):
            return fast()

    with mock.patch.object(lbp_kernel, "_fast_plan", lambda *a: None):
        before = lbp.lbp_features_batch(crops, **settings)
    same = np.array_equal(lbp.lbp_features_batch(crops, **settings), before)
    fast(), general()  # warm-up: caches, tables
    times: dict[str, list[tuple[float, float]]] = {"fast": [], "general": []}
    for r in range(rounds):
        order = (("fast", fast), ("general", general)) if r % 2 == 0 else (("general", general), ("fast", fast))
        for name, fn in order:
            times[name].append(fn())
    out = {"faces": len(crops), "batch": batch, "rounds": rounds, "equal_features": bool(same)}
    print(f"{len(crops)} crops, {batch} per call, {rounds} rounds; settings: {lbp.DEFAULT_SETTINGS.describe()}")
    for k, clock in enumerate(("wall", "cpu")):  # CPU: this thread's time, less disturbed by other processes
        g, f = [t[k] for t in times["general"]], [t[k] for t in times["fast"]]
        out[f"general_ms_{clock}"], out[f"fast_ms_{clock}"] = 1000 * statistics.median(g), 1000 * statistics.median(f)
        out[f"ratio_{clock}"] = statistics.median(a / b for a, b in zip(g, f))
        print(f"{clock:4s}  general path {out[f'general_ms_{clock}']:.3f} ms/face, fast path {out[f'fast_ms_{clock}']:.3f} "
              f"ms/face (medians); ratio {out[f'ratio_{clock}']:.2f}x (median of per-round ratios)")
    print(f"features equal: {same}")
    return out


def parse_opt(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data", help="the shared data folder")
    ap.add_argument("--faces", type=int, default=40, help="crops measured")
    ap.add_argument("--rounds", type=int, default=15, help="alternating rounds")
    ap.add_argument("--batch", type=int, default=1, help="faces per call")
    ap.add_argument("-v", "--verbose", action="store_true")
    return ap.parse_args(argv)


def main(opt: argparse.Namespace) -> int:
    setup_logging(opt.verbose)
    run(data=opt.data, faces=opt.faces, rounds=opt.rounds, batch=opt.batch)
    return 0


if __name__ == "__main__":
    cli_main(lambda: main(parse_opt()))
