"""The main job end to end, on data it can find or make: gather -> train -> demo.

Usage:
    python -m liveness.pipeline            # what `make demo` runs
    python -m liveness.pipeline --skip 1 --epochs 50

Data, in this order of preference:
1. your recordings in videos/ (file names start with real / fake, e.g. videos/real.mov,
   videos/fake.mp4, or videos/<person>/real.mp4 for several people);
2. ../shared/data beside the project (real videos and crops of nine people);
3. otherwise a SYNTHETIC sample pair made from a face photo shipped by scikit-image:
   it shows the pipeline working, nothing about liveness.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from liveness import ROOT, SPOOF_LABEL, label_from_name
from liveness.cli import UserError, cli_main, setup_logging
from liveness.sources import list_videos

LOGGER = logging.getLogger("liveness")

USER_VIDEOS = ROOT / "videos"
SHARED_DATA = ROOT.parent / "shared" / "data"
DATASET = ROOT / "dataset"
OUTPUT = ROOT / "output"
SUBJECT_PATTERN = r"subject\d+"


def find_data() -> tuple[str, Path, list[Path], str | None]:
    """(what, videos folder, extra crop folders, group pattern) for the first data found."""
    labelled = [v for v in list_videos(USER_VIDEOS) if label_from_name(v.name)] if USER_VIDEOS.is_dir() else []
    if labelled:
        return "your videos in videos/", USER_VIDEOS, [], None
    if (SHARED_DATA / "videos").is_dir():
        crops = [SHARED_DATA / "crops"] if (SHARED_DATA / "crops").is_dir() else []
        return f"the shared recordings in {SHARED_DATA}", SHARED_DATA / "videos", crops, SUBJECT_PATTERN
    from liveness.synthetic import make_sample_videos

    folder = OUTPUT / "sample_videos"
    LOGGER.warning("no recordings in videos/ and no ../shared/data: making a SYNTHETIC sample pair in %s", folder)
    make_sample_videos(folder)
    return "a SYNTHETIC sample pair (shows the pipeline works, says nothing about liveness)", folder, [], None


def demo_video(videos: Path) -> Path:
    """A fake video if there is one (the interesting case), else any video."""
    candidates = list_videos(videos)
    return next((v for v in candidates if label_from_name(v.name) == SPOOF_LABEL), candidates[0])


def run(*, skip: int = 2, epochs: int = 50, display: bool | None = None) -> int:
    import gather_examples
    import liveness_demo
    import train

    what, videos, extra_crops, pattern = find_data()
    LOGGER.info("step 0/3: data = %s", what)
    LOGGER.info("step 1/3: gather face crops from %s into %s", videos, DATASET)
    code, _ = gather_examples.run(input=videos, output=DATASET, skip=skip, label_from_names=True)
    if code:
        LOGGER.warning("some videos failed; training on the rest")
    LOGGER.info("step 2/3: train on %s", ", ".join(str(d) for d in [DATASET, *extra_crops]))
    train.run(dataset=[DATASET, *extra_crops], group_pattern=pattern, epochs=epochs)
    video = demo_video(videos)
    out = OUTPUT / "demo.mp4"
    LOGGER.info("step 3/3: liveness demo on %s -> %s", video, out)
    liveness_demo.run(input=str(video), output=out, display=display)
    LOGGER.info("done. Next: python liveness_demo.py (webcam), python evaluate.py --videos <new person's videos>")
    return 0


def parse_opt(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="gather -> train -> demo, end to end")
    ap.add_argument("--skip", type=int, default=2, help="gather every N-th frame")
    ap.add_argument("--epochs", type=int, default=50)
    ap.add_argument("--no-display", action="store_true", help="never open a window")
    return ap.parse_args(argv)


def main(opt: argparse.Namespace) -> int:
    setup_logging()
    if opt.skip < 1 or opt.epochs < 1:
        raise UserError("--skip and --epochs must be 1 or more")
    return run(skip=opt.skip, epochs=opt.epochs, display=False if opt.no_display else None)


if __name__ == "__main__":
    cli_main(lambda: main(parse_opt()))
