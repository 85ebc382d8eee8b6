"""How often a replayed recording passes the active challenge's random prompts, with the real detector.

Usage:
    python benchmarks/replay_prompts.py                         # every video under ../shared/data/videos
    python benchmarks/replay_prompts.py --videos DIR --trials 1000 --json out.json
    python benchmarks/replay_prompts.py --cache /tmp/replay_prompts   # where the landmarks are kept

Not a test and not the product: the figures of the README's paragraph on replays. An attacker
who replays a recording cannot know when a prompt comes or what it asks, so a replay passes
only when the actions the detector sees in it (true blinks and turns, and the false ones its
landmark jitter makes) happen to fall in a prompt's window with none in the quiet second
before. Here every video runs through the SSD and the product's landmarker once
(liveness.landmarks.Landmarker on the most confident face, found as the demo finds it: the
SSD every few frames, optical flow between; cached per
video under --cache), then, for each of --trials seeded trials, a fresh
liveness.challenge.FaceChallenge watches the video played in a loop from a random frame
(frames without a face are skipped, as the demo skips faces without landmarks) until it passes,
fails or runs out of time. Four challenge set-ups: one blink prompt, one turn prompt (left
or right), the default (two prompts of any kind) and one prompt more (`--challenge-count 3`). Also printed: the actions the unchanged
ActionDetector reports per minute in one pass over each video (what the replay offers).
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as `python benchmarks/replay_prompts.py`
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from benchmarks.blink_motion import DEFAULT_VIDEOS  # noqa: E402
from liveness.challenge import (DEFAULT_COUNT, DEFAULT_SETTINGS, KINDS, PASSED, PENDING, TURNS,  # noqa: E402
                                ActionDetector, FaceChallenge)
from liveness.cli import cli_main, ensure_parent_dir, ensure_writable_dir, positive_int, setup_logging  # noqa: E402
from liveness.errors import DataError  # noqa: E402
from liveness.fileio import atomic_path, atomic_write_text  # noqa: E402
from liveness.motion import DEFAULT_DETECT_EVERY  # noqa: E402
from liveness.sources import list_videos  # noqa: E402

LOGGER = logging.getLogger("liveness")
DEFAULT_CACHE = Path("/tmp") / "replay_prompts"
SETUPS = {"one blink prompt": (("blink",), 1), "one turn prompt": (TURNS, 1),
          f"default ({DEFAULT_COUNT} of any kind)": (KINDS, DEFAULT_COUNT), f"{DEFAULT_COUNT + 1} of any kind": (KINDS, DEFAULT_COUNT + 1)}
DEFAULT_TRIALS = 500


def parse_opt(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=Path, default=DEFAULT_VIDEOS, help="folder searched for videos")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="folder for the landmarks per video")
    parser.add_argument("--trials", type=positive_int, default=DEFAULT_TRIALS, help="random prompt schedules per video and set-up")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    return parser.parse_args(argv)


def find_videos(root: Path) -> list[Path]:
    out = list_videos(Path(root))
    if not out:
        raise DataError(f"no video under {root}")
    return out


def video_landmarks(video: Path, cache: Path, detector, landmarker) -> tuple[np.ndarray, float]:
    """((n, 68, 2) landmarks of the most confident face per frame, NaN without one; fps), cached."""
    from liveness.blinkeval import face_landmarks
    from liveness.landmarks import N_POINTS

    # The demo's detector schedule is part of the key: other boxes, other landmarks.
    path = Path(cache) / (str(video).strip("/").replace("/", "_") + f"_d{DEFAULT_DETECT_EVERY}.npz")
    if path.is_file():
        with np.load(path) as z:
            return z["marks"], float(z["fps"])
    fps, seq = face_landmarks(video, detector, landmarker, DEFAULT_DETECT_EVERY)
    missing = np.full((N_POINTS, 2), np.nan)
    marks = np.array([missing if m is None else m for _, m in seq], dtype=np.float64).reshape(-1, N_POINTS, 2)
    with atomic_path(path) as tmp:  # a killed run leaves no half cache
        np.savez(tmp, marks=marks, fps=np.float64(fps))
    return marks, fps


def actions_per_minute(marks: np.ndarray, fps: float) -> dict[str, float]:
    """The actions one pass of ActionDetector reports, per minute of the video, by kind."""
    detector, counts = ActionDetector(DEFAULT_SETTINGS), dict.fromkeys(KINDS, 0)
    for i, pts in enumerate(marks):
        if np.isfinite(pts).all():
            for _, kind in detector.update(pts, i / fps):
                counts[kind] += 1
    minutes = len(marks) / fps / 60
    return {k: v / minutes for k, v in counts.items()}


def replay_trial(marks: np.ndarray, fps: float, kinds: tuple[str, ...], count: int, rng: random.Random) -> str:
    """One replay in a loop from a random frame against one fresh challenge: its final status."""
    s = DEFAULT_SETTINGS
    face = FaceChallenge(0, kinds, count, s, rng)
    longest = s.calibration_s + count * (s.max_delay_s + s.timeout_s + s.dip_far_s) + 0.5  # then it has timed out
    start, seen = rng.randrange(len(marks)), np.isfinite(marks).all(axis=(1, 2))
    for i in range(int(longest * fps) + 1):
        j = (start + i) % len(marks)
        if seen[j]:
            face.update(marks[j], i / fps)
        if face.status != PENDING:
            break
    return face.status


def run(*, videos: Path = DEFAULT_VIDEOS, cache: Path = DEFAULT_CACHE, trials: int = DEFAULT_TRIALS, seed: int = 0,
        json_path: Path | None = None) -> dict:
    from liveness.detector import FaceDetector
    from liveness.landmarks import Landmarker

    if json_path is not None:
        ensure_parent_dir(Path(json_path))
    ensure_writable_dir(Path(cache), "cache folder")
    paths = find_videos(Path(videos))
    detector, landmarker = FaceDetector(), Landmarker()
    rows = []
    for path in paths:
        name = str(path.relative_to(videos))
        LOGGER.info("%s", name)
        marks, fps = video_landmarks(path, Path(cache), detector, landmarker)
        if not np.isfinite(marks).all(axis=(1, 2)).any():
            LOGGER.warning("%s: no face found, skipped", name)
            continue
        row = {"video": name, "seconds": len(marks) / fps, "actions_per_minute": actions_per_minute(marks, fps), "passed": {}}
        for label, (kinds, count) in SETUPS.items():
            rng = random.Random(f"{seed}:{name}:{label}")
            row["passed"][label] = sum(replay_trial(marks, fps, kinds, count, rng) == PASSED for _ in range(trials)) / trials
        rows.append(row)
    if not rows:
        raise DataError(f"no face found in any video under {videos}")
    print(f"a replay looped from a random frame against {trials} random prompt schedules per video; share passed:")
    print(f"{'video':<22} {'s':>5} {'blinks/min':>10} {'turns/min':>9}  " + "  ".join(f"{k:>24}" for k in SETUPS))
    for r in rows:
        apm = r["actions_per_minute"]
        print(f"{r['video']:<22} {r['seconds']:5.1f} {apm['blink']:10.1f} {apm['left'] + apm['right']:9.1f}  "
              + "  ".join(f"{r['passed'][k]:24.1%}" for k in SETUPS))
    mean = {k: float(np.mean([r["passed"][k] for r in rows])) for k in SETUPS}
    print(f"{'mean over videos':<49}  " + "  ".join(f"{mean[k]:24.1%}" for k in SETUPS))
    result = {"trials": trials, "seed": seed, "rows": rows, "mean": mean}
    if json_path is not None:
        atomic_write_text(Path(json_path), json.dumps(result, indent=1))
    return result


def main(opt: argparse.Namespace) -> None:
    setup_logging()
    run(videos=opt.videos, cache=opt.cache, trials=opt.trials, seed=opt.seed, json_path=opt.json)


if __name__ == "__main__":
    cli_main(lambda: main(parse_opt()))
