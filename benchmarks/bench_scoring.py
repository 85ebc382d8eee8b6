"""Score sometimes: the demo's decisions when a face far from the threshold keeps its score for a frame.

Usage:
    python benchmarks/bench_scoring.py --model output/liveness            # the shared videos
    python benchmarks/bench_scoring.py --model m --every 2 3 --margins 0.1 0.2 0.3 --videos a.mp4
    python benchmarks/bench_scoring.py --model m --every 1 3 --reference-detect-every 1   # vs everything every frame

liveness.pipeline.Pipeline scores a face whose last computed live probability lies at
least `score_margin` from the threshold only on every `score_every`-th frame, and
carries its score in between. This measures what that changes, per video: every frame
runs through a reference Pipeline (every face scored on every frame) and one Pipeline
per (every, margin), all with the demo's detector schedule, so all see the same boxes
and the same tracks. With --reference-detect-every 1 the reference runs the detector on
every frame too: then the figures are those of the demo's whole default schedule
against everything on every frame. Per video and setting:
  scored    faces whose score was computed / faces returned (summed over frames)
  decide    reference faces whose real/fake decision (smoothed, at the model's
            threshold, as the demo shows it) is also that of the setting's face with the
            most overlapping box / all reference faces (a face the setting lacks differs)
  iou       median IoU of the matched boxes (1.0 when the schedules are the same)
  video     whether the video's decision (the majority of its faces' decisions, as
            evaluate.py --videos decides) equals the reference's

The time per face as the demo runs it is in bench_pipeline.py (line 4f). Nothing asserts
here; tests/test_pipeline.py checks the default on two shared videos.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as `python benchmarks/bench_scoring.py`
    sys.path.insert(0, str(ROOT))

from liveness.cli import UserError, cli_main, ensure_parent_dir, setup_logging  # noqa: E402

LOGGER = logging.getLogger("liveness")

DEFAULT_MAX_FRAMES = 300


class _SameFrameDetector:
    """The SSD once per frame for several pipelines: each asks on the same frame object."""

    def __init__(self, detector) -> None:
        self.detector = detector
        self._last: tuple[int, list] | None = None

    def detect(self, frame):
        if self._last is None or self._last[0] != id(frame):
            self._last = (id(frame), self.detector.detect(frame))
        return self._last[1]


def measure_video(path: Path, model, settings: list[tuple[int, float]], max_frames: int, detector,
                  reference_detect_every: int | None = None) -> dict:
    """One pass over the video: the reference and one pipeline per (every, margin)."""
    import cv2

    from liveness.pipeline import Pipeline
    from liveness.tracking import greedy_match, iou_matrix

    shared = _SameFrameDetector(detector)
    schedule = {} if reference_detect_every is None else {"detect_every": reference_detect_every}
    reference = Pipeline(model, shared, score_every=1, **schedule)
    pipes = {s: Pipeline(model, shared, score_every=s[0], score_margin=s[1]) for s in settings}
    agree = {s: 0 for s in settings}
    ious: dict = {s: [] for s in settings}
    votes = {s: [] for s in [None, *settings]}
    faces = frames = 0
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise UserError(f"cannot open video {path}")
    try:
        while frames < max_frames:
            ok, frame = cap.read()
            if not ok:
                break
            frames += 1
            ref = reference.process(frame)
            faces += len(ref)
            votes[None].extend(r.live for r in ref)
            for s, pipe in pipes.items():
                got = pipe.process(frame)
                overlaps = iou_matrix([r.box for r in ref], [g.box for g in got])
                for i, j in greedy_match(overlaps, min_iou=1e-9):
                    agree[s] += ref[i].live == got[j].live
                    ious[s].append(float(overlaps[i, j]))
                votes[s].extend(r.live for r in got)
    finally:
        cap.release()

    def verdict(v: list[bool]) -> bool | None:
        return None if not v else 2 * sum(v) >= len(v)

    rows = [{
        "every": s[0], "margin": s[1],
        "scored": pipes[s].faces_scored / pipes[s].face_frames if pipes[s].face_frames else float("nan"),
        "decisions": agree[s] / faces if faces else float("nan"),
        "median_iou": statistics.median(ious[s]) if ious[s] else float("nan"),
        "video_same": verdict(votes[s]) == verdict(votes[None]),
    } for s in settings]
    return {"video": str(path), "frames": frames, "faces": faces, "rows": rows}


def run(
    *,
    model: Path,
    videos: list[Path] | None = None,
    data: Path = ROOT.parent / "shared" / "data",
    every: list[int] | None = None,
    margins: list[float] | None = None,
    max_frames: int = DEFAULT_MAX_FRAMES,
    reference_detect_every: int | None = None,
    json_path: Path | None = None,
) -> list[dict]:
    """Measure every video; print one table; optionally write the figures as JSON."""
    from benchmarks.bench_tracking import find_videos
    from liveness.detector import FaceDetector
    from liveness.model import load_model
    from liveness.pipeline import DEFAULT_SCORE_EVERY, DEFAULT_SCORE_MARGIN

    every = every or [DEFAULT_SCORE_EVERY]
    margins = margins if margins is not None else [DEFAULT_SCORE_MARGIN]
    if min(every) < 1 or min(margins) < 0 or max_frames < 1 or (reference_detect_every is not None and reference_detect_every < 1):
        raise UserError("--every and --reference-detect-every need frame counts >= 1, --margins values >= 0, "
                        "--max-frames a positive count")
    if json_path is not None:
        ensure_parent_dir(Path(json_path), "--json file")
    liveness_model = load_model(Path(model))
    videos = [Path(v) for v in videos] if videos else find_videos(Path(data))
    detector = FaceDetector()
    settings = [(e, m) for e in every for m in margins]
    results = []
    for path in videos:
        LOGGER.info("measuring %s", path)
        results.append(measure_video(path, liveness_model, settings, max_frames, detector, reference_detect_every))

    ref_schedule = "the demo's" if reference_detect_every is None else f"every {reference_detect_every}"
    print(f"model {model} (threshold {liveness_model.threshold:.3f}); at most {max_frames} frames per video; "
          f"reference: detector schedule {ref_schedule}, every face scored")
    print(f"{'video':28s} {'every':>5s} {'margin':>6s} {'faces':>6s} {'scored':>6s} {'decide':>6s} {'iou':>6s} {'video':>6s}")
    for r in results:
        name = "/".join(Path(r["video"]).parts[-2:])
        for row in r["rows"]:
            print(f"{name:28s} {row['every']:5d} {row['margin']:6.2f} {r['faces']:6d} {row['scored']:6.3f} "
                  f"{row['decisions']:6.3f} {row['median_iou']:6.3f} {'same' if row['video_same'] else 'DIFF':>6s}")
    for e, m in settings:
        rows = [(r["faces"], row) for r in results for row in r["rows"] if (row["every"], row["margin"]) == (e, m)]
        n = sum(f for f, _ in rows)
        pooled = {k: sum(f * row[k] for f, row in rows) / n if n else float("nan") for k in ("scored", "decisions")}
        worst = min(row["decisions"] for _, row in rows)
        print(f"{'all videos (pooled faces)':28s} {e:5d} {m:6.2f} {n:6d} {pooled['scored']:6.3f} {pooled['decisions']:6.3f} "
              f"{sum(row['video_same'] for _, row in rows):3d}/{len(rows)} same; worst video decide {worst:.3f}; "
              f"median {statistics.median(row['decisions'] for _, row in rows):.3f}")
    if json_path is not None:
        from liveness.fileio import atomic_write_text

        atomic_write_text(Path(json_path), json.dumps({"model": str(model), "max_frames": max_frames,
                                                       "reference_detect_every": reference_detect_every, "videos": results}, indent=1))
    return results


def parse_opt(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("-m", "--model", type=Path, required=True, help="a model folder (train.py's output)")
    ap.add_argument("--videos", type=Path, nargs="+", default=None, help="videos to measure (default: every video under --data)")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data", help="the shared data folder")
    ap.add_argument("--every", type=int, nargs="+", default=None, help="score_every values (default: the pipeline's)")
    ap.add_argument("--margins", type=float, nargs="+", default=None, help="score_margin values (default: the pipeline's)")
    ap.add_argument("--max-frames", type=int, default=DEFAULT_MAX_FRAMES, help="frames read per video, from its start")
    ap.add_argument("--reference-detect-every", type=int, default=None,
                    help="the reference's detector schedule (default: the demo's; 1: the detector on every frame)")
    ap.add_argument("--json", type=Path, default=None, help="write the figures here")
    ap.add_argument("-v", "--verbose", action="store_true")
    return ap.parse_args(argv)


def main(opt: argparse.Namespace) -> int:
    setup_logging(opt.verbose)
    run(model=opt.model, videos=opt.videos, data=opt.data, every=opt.every, margins=opt.margins,
        max_frames=opt.max_frames, reference_detect_every=opt.reference_detect_every, json_path=opt.json)
    return 0


if __name__ == "__main__":
    cli_main(lambda: main(parse_opt()))
