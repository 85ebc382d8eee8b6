"""The benchmark's inputs: the video every line reads (a shared video, centre-cropped and
resized to 640x480, or a synthetic one), a two-face clip, and the training crops.

Split from bench_pipeline.py, which holds the benchmark lines; the harness (rounds,
medians, paired ratios) is benchmarks/harness.py.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from benchmarks.harness import quiet
from liveness.cli import UserError

LOGGER = logging.getLogger("liveness")

DEFAULT_VIDEOS = ("subject02/real.mp4", "subject03/real.mov", "subject06/real.mp4", "subject01/real.mp4")
SIZE = (640, 480)  # width, height of the default benchmark video
SUBJECT_PATTERN = r"subject\d+"


def to_size(frame, size: tuple[int, int] = SIZE):
    """Centre-crop a landscape frame to the target aspect (pad a portrait one), then resize."""
    import cv2

    h, w = frame.shape[:2]
    tw, th = size
    if w * th > h * tw:  # wider than 4:3: crop the sides
        cw = round(h * tw / th)
        x0 = (w - cw) // 2
        frame = frame[:, x0:x0 + cw]
    elif w * th < h * tw:  # taller: pad the sides, the face stays whole
        pw = round(h * tw / th) - w
        frame = cv2.copyMakeBorder(frame, 0, 0, pw // 2, pw - pw // 2, cv2.BORDER_CONSTANT, value=(0, 0, 0))
    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA)


def write_resized(src: Path, dst: Path, frames: int) -> int:
    """The first `frames` frames of `src`, at 640x480, into an mp4 (mp4v): what every line reads."""
    import cv2

    cap = cv2.VideoCapture(str(src))
    fps = cap.get(cv2.CAP_PROP_FPS)
    fps = fps if math.isfinite(fps) and 1 <= fps <= 240 else 30.0
    writer = cv2.VideoWriter(str(dst), cv2.VideoWriter_fourcc(*"mp4v"), fps, SIZE)
    n = 0
    try:
        while n < frames:
            ok, frame = cap.read()
            if not ok or frame is None:
                break
            writer.write(to_size(frame))
            n += 1
    finally:
        writer.release()
        cap.release()
    if n == 0:
        raise UserError(f"{src} has no frames")
    return n


def read_frames(video: Path, limit: int) -> list:
    import cv2

    cap = cv2.VideoCapture(str(video))
    frames = []
    try:
        while len(frames) < limit:
            ok, frame = cap.read()
            if not ok or frame is None:
                break
            frames.append(frame)
    finally:
        cap.release()
    return frames


def timed_file_pass(video: Path, limit: int, per_frame: Callable | None) -> float:
    """Seconds to open `video`, read its first `limit` frames (calling per_frame on each), release."""
    import cv2

    t0 = time.perf_counter()
    cap = cv2.VideoCapture(str(video))
    n = 0
    while n < limit:
        ok, frame = cap.read()
        if not ok or frame is None:
            break
        if per_frame is not None:
            per_frame(frame)
        n += 1
    cap.release()
    seconds = time.perf_counter() - t0
    if n != limit:
        raise RuntimeError(f"{video} gave {n} frames, expected {limit}")
    return seconds


# --- data and model ---------------------------------------------------------------------------
@dataclass
class Inputs:
    video: Path  # what every line reads
    video_source: str
    frames: int
    crops: Path  # training images (line 6, and the default model)
    group_pattern: str | None
    synthetic: bool


def prepare_inputs(*, video: Path | None, data: Path, frames: int, tmp: Path, crops_per_folder: int | None = None) -> Inputs:
    """The benchmark video (first `frames` frames) and a folder of training crops."""
    shared = (data / "videos").is_dir()
    synthetic = False
    if video is not None:
        video = Path(video)
        if not video.is_file():
            raise UserError(f"--video {video} does not exist")
        bench_video, source = video, f"{video} (as it is)"
    elif shared:
        src = next((data / "videos" / v for v in DEFAULT_VIDEOS if (data / "videos" / v).is_file()), None)
        if src is None:
            from liveness.sources import list_videos

            found = list_videos(data / "videos")
            if not found:
                raise UserError(f"no videos under {data / 'videos'}")
            src = found[0]
        bench_video = tmp / "bench_640x480.mp4"
        write_resized(src, bench_video, frames)
        source = f"{src}, first {frames} frames centre-cropped to 4:3 and resized to 640x480 (mp4v)"
    else:
        from liveness.synthetic import make_sample_videos

        LOGGER.warning("no %s: benchmarking on SYNTHETIC sample videos", data / "videos")
        seconds = max(2.0, frames / 15 + 0.5)
        samples = make_sample_videos(tmp / "synthetic", seconds=seconds, fps=15, size=SIZE)
        bench_video, source, synthetic = samples["real"], "synthetic real.mp4 (liveness/synthetic.py), 640x480", True
    n = len(read_frames(bench_video, frames))
    if n < frames:
        LOGGER.warning("%s has %d frames only: measuring on %d", bench_video, n, n)
    if n < 2:
        raise UserError(f"{bench_video} has fewer than 2 frames")
    crops_dir = data / "crops"
    if shared and crops_dir.is_dir():
        if crops_per_folder:
            crops_dir = crop_subset(crops_dir, tmp / "crops_subset", crops_per_folder)
        return Inputs(bench_video, source, n, crops_dir, SUBJECT_PATTERN, synthetic)
    # No crops to train on: gather them from synthetic sample videos.
    import gather_examples

    videos_dir = tmp / "synthetic"
    if not synthetic:
        from liveness.synthetic import make_sample_videos

        LOGGER.warning("no %s: training on crops of SYNTHETIC sample videos", crops_dir)
        make_sample_videos(videos_dir, seconds=4.0, fps=15, size=SIZE)
    crops_dir = tmp / "crops"
    with quiet():
        gather_examples.run(input=videos_dir, output=crops_dir, skip=2, label_from_names=True, progress=False)
    return Inputs(bench_video, source, n, crops_dir, None, synthetic)


def crop_subset(crops: Path, dst: Path, per_folder: int) -> Path:
    """Links to the first `per_folder` images of each folder of `crops` (same layout): --quick trains on these."""
    from liveness.dataset import IMAGE_EXTENSIONS

    for folder in sorted(p for p in crops.rglob("*") if p.is_dir()):
        images = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
        if not images:
            continue
        target = dst / folder.relative_to(crops)
        target.mkdir(parents=True, exist_ok=True)
        for image in images[:per_folder]:
            (target / image.name).symlink_to(image.resolve())
    return dst


# --- models ---------------------------------------------------------------------------------------


def two_face_clip(inputs: Inputs, data: Path, work: Path) -> Path | None:
    """A multi-face clip: the benchmark video side by side with another shared video
    (1280x480, two people), or None without the shared videos."""
    import cv2
    import numpy as np

    other = data / "videos" / "subject01" / "fake.mp4"
    if inputs.synthetic or not other.is_file():
        return None
    second = work / "bench_second_640x480.mp4"
    write_resized(other, second, inputs.frames)
    left, right = read_frames(inputs.video, inputs.frames), read_frames(second, inputs.frames)
    out = work / "bench_two_faces_1280x480.mp4"
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (2 * SIZE[0], SIZE[1]))
    for a, b in zip(left, right):
        writer.write(np.hstack([a, b]))
    writer.release()
    return out
