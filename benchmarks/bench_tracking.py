"""Detect sometimes, track always: agreement with every-frame detection, and the speed-up.

Usage:
    python benchmarks/bench_tracking.py                          # the shared videos, N = 2 3 5 8
    python benchmarks/bench_tracking.py --every 3 --max-frames 100 --videos a.mp4 b.mp4
    python benchmarks/bench_tracking.py --mil                    # also cv2.TrackerMIL at the default N
    python benchmarks/bench_tracking.py --decisions              # also real/fake decision agreement

One pass over each video's frames. Every frame is decoded and run through the SSD
(the reference), each timed; then, for every N, the schedule liveness.motion describes
runs on the same frame: when it asks for a detection it takes that frame's SSD faces
(the SSD is deterministic, so running it again would give the same boxes) and resets
its FlowTracker, otherwise it steps the tracker (timed; the tracker's own resize and
grey conversion included). So every figure compared comes from the same frames in the
same process, measured in alternation.

Per N and video:
  iou       median IoU of the tracked boxes with the SSD's, over the frames that were
            tracked (not detected) and where the SSD found a face; each SSD face is
            matched to one tracked box (greedy by IoU), unmatched counts as 0
  both      frames where both found a face / frames where the SSD found one
  extra     frames where only the tracked boxes show a face / all frames
  detect    fraction of frames that ran the SSD (every N-th, plus lost tracks, plus
            every frame while no face is tracked unless --no-search-empty)
  step ms   median time of one tracker step (reset time is counted in the speed-up)
  speed-up  (decode + SSD on every frame) / (decode + SSD on the detected frames +
            tracker resets and steps), summed over the video's frames
  decide    (with --decisions) frames where the SSD found a face and every one of its
            faces gets the same real/fake decision from its tracked box as from its SSD box
            (threshold 0.5), by a colour-LBP model (DEFAULT_SETTINGS) fitted in memory on
            ../shared/data/crops; the videos' subjects are in those crops, so the model is
            optimistic, but agreement is what is measured, not accuracy
  smooth    the same, each stream's scores smoothed as the pipeline does
            (liveness.tracking.FaceTracker, its default window)

Nothing asserts here; tests/test_motion.py checks the default on two videos.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as `python benchmarks/bench_tracking.py`
    sys.path.insert(0, str(ROOT))

from liveness.cli import UserError, cli_main, ensure_parent_dir, setup_logging  # noqa: E402

LOGGER = logging.getLogger("liveness")

DEFAULT_EVERY = (2, 3, 5, 8)
DEFAULT_MAX_FRAMES = 300
VIDEO_SUFFIXES = (".mp4", ".mov", ".webm", ".avi", ".mkv")
DECISION_THRESHOLD = 0.5  # live when the probability is at least this


@dataclass
class Run:
    """One detection policy on one video."""

    name: str
    ious: list[float] = field(default_factory=list)
    ref_frames: int = 0  # frames where the SSD found a face
    both: int = 0
    extra: int = 0
    detections: int = 0
    frames: int = 0
    seconds: float = 0.0  # decode + SSD where it ran + tracker time
    steps: list[float] = field(default_factory=list)
    agree: int = 0  # frames with a face whose decisions all match the every-frame SSD's
    agree_smooth: int = 0  # the same for the decisions on smoothed scores
    smoother: object = None  # a liveness.tracking.FaceTracker
    decided: bool = False  # decisions were measured

    def row(self, reference_seconds: float) -> dict:
        return {
            "policy": self.name,
            "frames": self.frames,
            "median_iou": statistics.median(self.ious) if self.ious else float("nan"),
            "p10_iou": statistics.quantiles(self.ious, n=10)[0] if len(self.ious) > 1 else float("nan"),
            "tracked_faces": len(self.ious),
            "both": self.both / self.ref_frames if self.ref_frames else float("nan"),
            "extra": self.extra / self.frames if self.frames else float("nan"),
            "detect_fraction": self.detections / self.frames if self.frames else float("nan"),
            "step_ms": 1000 * statistics.median(self.steps) if self.steps else float("nan"),
            "speedup": reference_seconds / self.seconds if self.seconds else float("nan"),
            "decisions": self.agree / self.ref_frames if self.ref_frames and self.decided else float("nan"),
            "decisions_smoothed": self.agree_smooth / self.ref_frames if self.ref_frames and self.decided else float("nan"),
        }


class _MILTracker:
    """cv2.TrackerMIL per box on the same small grey frame size as FlowTracker, same API."""

    def __init__(self, max_side: int) -> None:
        self.max_side = max_side
        self.trackers: list = []

    def _small(self, frame):
        from liveness.motion import small_grey

        self.size = (frame.shape[1], frame.shape[0])
        small, self.scale = small_grey(frame, self.max_side)
        return small

    def reset(self, frame, boxes) -> None:
        import cv2

        small = self._small(frame)
        self.trackers = []
        for x1, y1, x2, y2 in boxes:
            t = cv2.TrackerMIL_create()
            s = self.scale
            t.init(small, (round(x1 * s), round(y1 * s), max(1, round((x2 - x1) * s)), max(1, round((y2 - y1) * s))))
            self.trackers.append(t)

    def step(self, frame):
        small = self._small(frame)
        out = []
        w, h = self.size
        for t in self.trackers:
            ok, (x, y, bw, bh) = t.update(small)
            if not ok:
                out.append((None, 0.0))
                continue
            s = self.scale
            box = (max(0, round(x / s)), max(0, round(y / s)), min(w, round((x + bw) / s)), min(h, round((y + bh) / s)))
            out.append((box if box[2] > box[0] and box[3] > box[1] else None, 1.0))
        return out


def _score(run: Run, ref_boxes: list, boxes: list, tracked: bool, scorer=None, ref_scores=None, ref_smooth=None) -> None:
    """Add one frame's figures to `run`. With `scorer` (boxes -> live probabilities of
    their crops in this frame), also its decisions: raw, and smoothed as the pipeline
    smooths them (liveness.tracking.FaceTracker over each stream), against the SSD's
    (ref_scores, ref_smooth: per reference box)."""
    from liveness.tracking import greedy_match, iou_matrix

    run.frames += 1
    if scorer is not None:
        run.decided = True
        scores = list(ref_scores) if not tracked else (scorer(boxes) if boxes else [])
        smooth = [t.smoothed for t in run.smoother.update(boxes, scores)]
    if ref_boxes:
        run.ref_frames += 1
        run.both += bool(boxes)
        overlaps = iou_matrix(ref_boxes, boxes)
        pairs = {r: r for r in range(len(ref_boxes))} if not tracked else dict(greedy_match(overlaps, min_iou=1e-9))
        if tracked:
            run.ious.extend(float(overlaps[r, pairs[r]]) if r in pairs else 0.0 for r in range(len(ref_boxes)))
        if scorer is not None and len(pairs) == len(ref_boxes):
            threshold = DECISION_THRESHOLD
            run.agree += all((scores[pairs[r]] >= threshold) == (ref_scores[r] >= threshold) for r in pairs)
            run.agree_smooth += all((smooth[pairs[r]] >= threshold) == (ref_smooth[r] >= threshold) for r in pairs)
    elif boxes:
        run.extra += 1


def crop_scorer(model, frame):
    """boxes -> live probabilities of their crops in `frame` (no padding), by `model`."""
    def score(boxes):
        return [float(p) for p in model.score_live([frame[y1:y2, x1:x2] for x1, y1, x2, y2 in boxes])]
    return score


def fit_lbp_model(data: Path, every: int = 1):
    """A colour-LBP model (DEFAULT_SETTINGS) fitted in memory on every `every`-th shared crop."""
    import cv2
    import numpy as np

    from liveness.lbp import DEFAULT_SETTINGS, LBPClassifier

    faces, labels = [], []
    for label, live in (("real", 1), ("fake", 0)):
        for path in sorted((data / "crops").glob(f"*/{label}/*.png"))[::every]:
            image = cv2.imread(str(path))
            if image is not None:
                faces.append(image)
                labels.append(live)
    if not faces:
        raise UserError(f"no crops under {data / 'crops'} to fit the decision model on")
    LOGGER.info("fitting a colour-LBP model on %d crops", len(faces))
    return LBPClassifier.from_settings(DEFAULT_SETTINGS).fit(faces, np.array(labels))


def measure_video(
    path: Path, every: list[int], detector, max_frames: int, mil_every: int | None = None, search_empty: bool = True,
    model=None,
) -> dict:
    """One pass over the video; returns {"video", "frames", "ssd_ms", "decode_ms", "rows": [...]}.
    search_empty: detect on every frame while no face is tracked (as liveness.motion's
    docstring does); else only every N-th. model: an LBPClassifier, to measure decisions."""
    import cv2

    from liveness.motion import DEFAULT_MAX_SIDE, DetectSchedule, FlowTracker
    from liveness.tracking import FaceTracker

    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise UserError(f"cannot open video {path}")
    policies = [(f"N={n}", DetectSchedule(n), FlowTracker(), Run(f"N={n}")) for n in every]
    if mil_every:
        name = f"MIL N={mil_every}"
        policies.append((name, DetectSchedule(mil_every), _MILTracker(DEFAULT_MAX_SIDE), Run(name)))
    ref_smoother = FaceTracker()
    for *_, run in policies:
        run.smoother = FaceTracker()
    decode_s, ssd_s, n = [], [], 0
    try:
        while n < max_frames:
            t0 = time.perf_counter()
            ok, frame = cap.read()
            t1 = time.perf_counter()
            if not ok:
                break
            ref = [f.box for f in detector.detect(frame)]
            t2 = time.perf_counter()
            decode_s.append(t1 - t0)
            ssd_s.append(t2 - t1)
            scorer = crop_scorer(model, frame) if model is not None else None
            ref_scores = ref_smooth = None
            if scorer is not None:
                ref_scores = scorer(ref) if ref else []
                ref_smooth = [t.smoothed for t in ref_smoother.update(ref, ref_scores)]
            for _, schedule, tracker, run in policies:
                spent = t1 - t0
                tracked = None
                if not schedule.need_detection(n):
                    s0 = time.perf_counter()
                    tracked = tracker.step(frame)
                    step = time.perf_counter() - s0
                    run.steps.append(step)
                    spent += step
                    lost = any(b is None for b, _ in tracked) or (search_empty and not tracked)
                    if schedule.need_detection(n, tracking_lost=lost):
                        tracked = None
                if tracked is None:
                    s0 = time.perf_counter()
                    tracker.reset(frame, ref)
                    spent += time.perf_counter() - s0 + (t2 - t1)
                    run.detections += 1
                    boxes = ref
                else:
                    boxes = [b for b, _ in tracked]
                run.seconds += spent
                _score(run, ref, boxes, tracked is not None, scorer, ref_scores, ref_smooth)
            n += 1
    finally:
        cap.release()
    if not n:
        raise UserError(f"no frames decoded from {path}")
    reference = sum(decode_s) + sum(ssd_s)
    return {
        "video": str(path),
        "frames": n,
        "decode_ms": 1000 * statistics.median(decode_s),
        "ssd_ms": 1000 * statistics.median(ssd_s),
        "rows": [run.row(reference) for _, _, _, run in policies],
    }


def find_videos(data: Path) -> list[Path]:
    videos = sorted(p for p in (data / "videos").glob("*/*") if p.suffix.lower() in VIDEO_SUFFIXES)
    if not videos:
        raise UserError(f"no videos under {data / 'videos'}")
    return videos


def run(
    *,
    videos: list[Path] | None = None,
    data: Path = ROOT.parent / "shared" / "data",
    every: list[int] = list(DEFAULT_EVERY),
    max_frames: int = DEFAULT_MAX_FRAMES,
    mil: bool = False,
    search_empty: bool = True,
    decisions: bool = False,
    json_path: Path | None = None,
) -> list[dict]:
    """Measure every video; print one table; optionally write the figures as JSON."""
    import cv2

    from liveness.detector import FaceDetector
    from liveness.motion import DEFAULT_DETECT_EVERY

    if not every or min(every) < 1 or max_frames < 1:
        raise UserError("--every needs positive frame counts and --max-frames a positive count")
    if json_path is not None:
        ensure_parent_dir(Path(json_path), "--json file")
    videos = [Path(v) for v in videos] if videos else find_videos(Path(data))
    detector = FaceDetector()
    model = fit_lbp_model(Path(data)) if decisions else None
    results = []
    for path in videos:
        LOGGER.info("measuring %s", path)
        mil_every = DEFAULT_DETECT_EVERY if mil else None
        results.append(measure_video(path, every, detector, max_frames, mil_every, search_empty, model))

    print(f"{'video':32s} {'policy':10s} {'frames':>6s} {'iou':>6s} {'p10':>6s} {'both':>6s} {'extra':>6s} "
          f"{'detect':>6s} {'step ms':>7s} {'ssd ms':>7s} {'speed-up':>8s} {'decide':>6s} {'smooth':>6s}")
    for r in results:
        name = "/".join(Path(r["video"]).parts[-2:])
        for row in r["rows"]:
            print(f"{name:32s} {row['policy']:10s} {row['frames']:6d} {row['median_iou']:6.3f} {row['p10_iou']:6.3f} "
                  f"{row['both']:6.3f} {row['extra']:6.3f} {row['detect_fraction']:6.3f} {row['step_ms']:7.2f} "
                  f"{r['ssd_ms']:7.1f} {row['speedup']:7.2f}x {row['decisions']:6.3f} {row['decisions_smoothed']:6.3f}")
    # Over all videos: pooled medians would weight long videos; these are medians of the per-video figures.
    for policy in [row["policy"] for row in results[0]["rows"]]:
        rows = [row for r in results for row in r["rows"] if row["policy"] == policy]
        keys = ("median_iou", "both", "detect_fraction", "step_ms", "speedup", "decisions", "decisions_smoothed")
        med = {k: statistics.median(row[k] for row in rows) for k in keys}
        print(f"{'median over videos':32s} {policy:10s} {'':6s} {med['median_iou']:6.3f} {'':6s} {med['both']:6.3f} {'':6s} "
              f"{med['detect_fraction']:6.3f} {med['step_ms']:7.2f} {'':7s} {med['speedup']:7.2f}x "
              f"{med['decisions']:6.3f} {med['decisions_smoothed']:6.3f}")
    print(f"opencv {cv2.__version__}, {cv2.getNumThreads()} threads; at most {max_frames} frames per video")
    if json_path is not None:
        from liveness.fileio import atomic_write_text

        atomic_write_text(Path(json_path), json.dumps({"max_frames": max_frames, "videos": results}, indent=1))
    return results


def parse_opt(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--videos", type=Path, nargs="+", default=None, help="videos to measure (default: every video under --data)")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data", help="the shared data folder")
    ap.add_argument("--every", type=int, nargs="+", default=list(DEFAULT_EVERY), help="detection every N frames, one run per N")
    ap.add_argument("--max-frames", type=int, default=DEFAULT_MAX_FRAMES, help="frames read per video, from its start")
    ap.add_argument("--mil", action="store_true", help="also cv2.TrackerMIL at the default N")
    ap.add_argument("--no-search-empty", dest="search_empty", action="store_false",
                    help="while no face is tracked, detect every N-th frame only (default: every frame)")
    ap.add_argument("--decisions", action="store_true",
                    help="also real/fake decision agreement (fits an LBP model on the shared crops)")
    ap.add_argument("--json", type=Path, default=None, help="write the figures here")
    ap.add_argument("-v", "--verbose", action="store_true")
    return ap.parse_args(argv)


def main(opt: argparse.Namespace) -> int:
    setup_logging(opt.verbose)
    run(videos=opt.videos, data=opt.data, every=opt.every, max_frames=opt.max_frames, mil=opt.mil, search_empty=opt.search_empty,
        decisions=opt.decisions, json_path=opt.json)
    return 0


if __name__ == "__main__":
    cli_main(lambda: main(parse_opt()))
