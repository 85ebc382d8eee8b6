"""Colour-LBP features per face: the on-grid fast path against the general path, one process.

Usage:
    python benchmarks/bench_lbp.py                   # real crops from ../shared/data/crops
    python benchmarks/bench_lbp.py --faces 40 --rounds 15 --batch 4

Times `lbp_features_batch([face], **DEFAULT_SETTINGS)` as the demo calls it (one face a
call; --batch for more) and the same call forced onto the general path (what every
setting took before the fast path), in alternating rounds over the same crops, and
prints the median ms per face of each and the median of the per-round ratios. It also
checks the two give equal features on these crops (it is not a test: it says so and
goes on). Crops are real ones when ../shared/data is there, else random noise.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from dataclasses import asdict
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

    from liveness import lbp

    settings = {k: v for k, v in asdict(lbp.DEFAULT_SETTINGS).items() if k != "C"}
    crops = load_faces(Path(data), faces)
    groups = [crops[i : i + batch] for i in range(0, len(crops), batch)]

    def fast() -> float:
        t = time.perf_counter()
        for g in groups:
            lbp.lbp_features_batch(g, **settings)
        return (time.perf_counter() - t) / len(crops)

    def general() -> float:
        with mock.patch.object(lbp, "_fast_plan", lambda *a: None):
            return fast()

    with mock.patch.object(lbp, "_fast_plan", lambda *a: None):
        before = lbp.lbp_features_batch(crops, **settings)
    same = np.array_equal(lbp.lbp_features_batch(crops, **settings), before)
    fast(), general()  # warm-up: caches, tables
    times: dict[str, list[float]] = {"fast": [], "general": []}
    for r in range(rounds):
        order = (("fast", fast), ("general", general)) if r % 2 == 0 else (("general", general), ("fast", fast))
        for name, fn in order:
            times[name].append(fn())
    ratios = [g / f for g, f in zip(times["general"], times["fast"])]
    out = {
        "faces": len(crops), "batch": batch, "rounds": rounds, "equal_features": bool(same),
        "fast_ms": 1000 * statistics.median(times["fast"]), "general_ms": 1000 * statistics.median(times["general"]),
        "fast_ms_min": 1000 * min(times["fast"]), "general_ms_min": 1000 * min(times["general"]),
        "ratio": statistics.median(ratios),
    }
    print(f"{len(crops)} crops, {batch} per call, {rounds} rounds; settings: {lbp.DEFAULT_SETTINGS.describe()}")
    print(f"general path  {out['general_ms']:.3f} ms/face median ({out['general_ms_min']:.3f} min)")
    print(f"on-grid path  {out['fast_ms']:.3f} ms/face median ({out['fast_ms_min']:.3f} min)")
    print(f"ratio general/on-grid {out['ratio']:.2f}x (median of per-round ratios); features equal: {same}")
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
