"""Does train.py's memory follow the batch, not the dataset? And do more workers extract faster?

Usage:
    python benchmarks/bench_memory.py                          # 2,000 vs 20,000 crops (long on 2 cores)
    python benchmarks/bench_memory.py --small 300 --large 3000 --throughput 600
    python benchmarks/bench_memory.py --no-cnn

Crops are copies of ../shared/data/crops, each jittered (shift, brightness) and
re-encoded so no two files are alike, written to a temporary folder deleted after.
Lines:
  1  peak RSS of `train.py` (default scorer) on --small and on --large crops -> ratio
     (target <= 1.5 for 10x the data)
  2  the same with `--scorer cnn` (LivenessNet, --epochs epochs)
  3  LBP feature extraction, images per second with 2 workers vs 1, back to back in
     alternating order on the same images, no cache -> ratio (target >= 1.7)
train.py runs with --workers 1 for lines 1-2, so the process measured holds all the
work (feature workers are separate processes, each bounded by its chunk).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import finish_child, kill_child, start_child

from liveness import ROOT
from liveness.dataset import find_samples

SHARED_CROPS = ROOT.parent / "shared" / "data" / "crops"


def make_crops(src: Path, out: Path, n: int, seed: int = 0) -> None:
    """n jittered, re-encoded copies of the crops under src, in the same subject/class folders.
    The crops are taken in one random order, cycled: any n draws from every subject alike, so
    the 1x and 10x sets hold the same mix of crop sizes (some subjects' crops are far larger)."""
    samples = find_samples([src], group_pattern=r"subject\d+")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(samples))
    for k in range(n):
        s = samples[order[k % len(samples)]]
        img = cv2.imread(str(s.path))
        dx, dy = rng.integers(-3, 4, 2)
        img = np.roll(img, (int(dy), int(dx)), axis=(0, 1))
        img = cv2.convertScaleAbs(img, alpha=1.0, beta=float(rng.integers(-8, 9)))
        rel = s.path.relative_to(src).parent
        dest = out / rel / f"{s.path.stem}-j{k}.png"
        dest.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(dest), img)


def train_peak(data: Path, work: Path, extra: list[str]) -> dict:
    model = work / f"model-{time.perf_counter_ns()}"
    child = start_child(ROOT / "train.py", [
        "-d", str(data), "--group-pattern", r"subject\d+", "-m", str(model), "--workers", "1",
        "--cache-dir", str(work / f"cache-{time.perf_counter_ns()}"), *extra,
    ], timeout=6 * 3600)
    try:
        return finish_child(child)
    except BaseException:
        kill_child(child)
        raise


def throughput(data: Path, n: int, rounds: int = 2) -> dict:
    from liveness.featcache import lbp_features_streamed
    from liveness.lbp import DEFAULT_SETTINGS

    found = find_samples([data], group_pattern=r"subject\d+")
    samples = [found[i % len(found)] for i in range(n)]  # no cache here: a repeated file is computed again
    rates: dict[int, list[float]] = {1: [], 2: []}
    for r in range(rounds):
        for w in ((1, 2) if r % 2 == 0 else (2, 1)):
            t = time.perf_counter()
            lbp_features_streamed(samples, DEFAULT_SETTINGS, workers=w, cache_dir=None, progress=False)
            rates[w].append(len(samples) / (time.perf_counter() - t))
    ratios = [b / a for a, b in zip(rates[1], rates[2])]
    return {"images": len(samples), "img_per_s": rates, "ratio_2_vs_1": float(np.median(ratios))}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--small", type=int, default=2000)
    ap.add_argument("--large", type=int, default=20000)
    ap.add_argument("--throughput", type=int, default=6000, help="images for line 3 (enough that starting the workers does not count)")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--no-cnn", action="store_true")
    ap.add_argument("--throughput-only", action="store_true", help="line 3 only, on the shared crops themselves")
    ap.add_argument("--json", default=str(ROOT / "output" / "bench_memory.json"))
    opt = ap.parse_args()
    if not SHARED_CROPS.is_dir():
        print(f"[ERROR] {SHARED_CROPS} is absent")
        return 2
    results: dict = {"small": opt.small, "large": opt.large}
    if opt.throughput_only:
        results = {"throughput": throughput(SHARED_CROPS, opt.throughput)}
    else:
        with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
            work = Path(tmp)
            for n in (opt.small, opt.large):
                t = time.perf_counter()
                make_crops(SHARED_CROPS, work / f"crops{n}", n)
                print(f"wrote {n} crops in {time.perf_counter() - t:.0f} s", flush=True)
            lines = [("lbp", [])] + ([] if opt.no_cnn else [("cnn", ["--scorer", "cnn", "--epochs", str(opt.epochs)])])
            for name, extra in lines:
                peaks = {}
                for n in (opt.small, opt.large):
                    r = train_peak(work / f"crops{n}", work, extra)
                    peaks[n] = r["peak_rss_mib"]
                    print(f"train.py {name} on {n} crops: peak {r['peak_rss_mib']:.0f} MiB, {r['wall_s']:.0f} s", flush=True)
                results[name] = {"peak_mib": peaks, "ratio": peaks[opt.large] / peaks[opt.small]}
                print(f"{name}: peak ratio {results[name]['ratio']:.2f} for {opt.large / opt.small:.0f}x data (target <= 1.5)", flush=True)
            results["throughput"] = throughput(work / f"crops{opt.small}", opt.throughput)
    print(f"LBP extraction, 2 workers vs 1: {results['throughput']['ratio_2_vs_1']:.2f}x (target >= 1.7)", flush=True)
    results["loadavg"] = list(Path("/proc/loadavg").read_text().split()[:3]) if Path("/proc/loadavg").exists() else None
    Path(opt.json).parent.mkdir(parents=True, exist_ok=True)
    Path(opt.json).write_text(json.dumps(results, indent=1))
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
