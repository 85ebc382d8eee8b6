"""The main job end to end, on data it can find or make: gather -> train -> demo.

Usage:
    python quickstart.py                   # what `make demo` runs
    python quickstart.py --skip 1 --no-display

Data, in this order of preference:
1. your recordings in videos/ (file names start with real / fake, e.g. videos/real.mov,
   videos/fake.mp4, or videos/<person>/real.mp4 for several people);
2. ../shared/data beside the project (real videos and crops of many recording set-ups):
   one set-up with both a live and a replay video is kept OUT of training, and the demo
   runs on its two videos, so the verdicts you see are on a person and camera the
   model never saw;
3. otherwise a SYNTHETIC sample pair made from a face photo shipped by scikit-image:
   it shows the pipeline working, nothing about liveness.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass, field
from pathlib import Path

import gather_examples
import liveness_demo
import train
from liveness import DEFAULT_MODEL, LIVE_LABEL, OUTPUT, ROOT, SPOOF_LABEL, label_from_name
from liveness.cli import cli_main, positive_int, setup_logging
from liveness.sources import list_videos

LOGGER = logging.getLogger("liveness")

USER_VIDEOS = ROOT / "videos"
SHARED_DATA = ROOT.parent / "shared" / "data"
DATASET = ROOT / "dataset"
SUBJECT_PATTERN = r"subject\d+"


@dataclass
class Plan:
    what: str  # said to the user
    video_folders: list[Path]  # gathered into dataset/
    crop_folders: list[Path] = field(default_factory=list)  # used as they are
    group_pattern: str | None = None
    demo_videos: list[Path] = field(default_factory=list)  # run through the demo at the end
    held_out: str | None = None  # the set-up kept out of training


def _pair(folder: Path) -> list[Path] | None:
    """[real video, fake video] of a folder, or None."""
    videos = list_videos(folder)
    real = next((v for v in videos if label_from_name(v.name) == LIVE_LABEL), None)
    fake = next((v for v in videos if label_from_name(v.name) == SPOOF_LABEL), None)
    return [real, fake] if real and fake else None


def find_data() -> Plan:
    """What to train on and what to show, from the first data found."""
    labelled = [v for v in list_videos(USER_VIDEOS) if label_from_name(v.name)] if USER_VIDEOS.is_dir() else []
    if labelled:
        pair = _pair(USER_VIDEOS) or labelled[:1]
        return Plan("your videos in videos/ (the demo runs on videos the model trained on)", [USER_VIDEOS], demo_videos=pair)
    shared_videos = SHARED_DATA / "videos"
    if shared_videos.is_dir():
        subjects = sorted(p for p in shared_videos.iterdir() if p.is_dir())
        held = next((s for s in subjects if _pair(s)), None)
        crops = sorted(p for p in (SHARED_DATA / "crops").iterdir() if p.is_dir()) if (SHARED_DATA / "crops").is_dir() else []
        if held is not None:
            return Plan(
                f"the shared recordings in {SHARED_DATA}, except {held.name}, kept out of training for the demo",
                [s for s in subjects if s != held], [c for c in crops if c.name != held.name], SUBJECT_PATTERN,
                _pair(held), held.name,
            )
        return Plan(f"the shared recordings in {SHARED_DATA}", subjects, crops, SUBJECT_PATTERN, list_videos(shared_videos)[:1])
    from liveness.synthetic import make_sample_videos

    folder = OUTPUT / "sample_videos"
    LOGGER.warning("no recordings in videos/ and no ../shared/data: making a SYNTHETIC sample pair in %s", folder)
    make_sample_videos(folder)
    return Plan("a SYNTHETIC sample pair (shows the pipeline works, says nothing about liveness)", [folder], demo_videos=_pair(folder) or [])


def run(*, skip: int = 2, display: bool | None = None, model: Path = DEFAULT_MODEL) -> dict[str, str]:
    """Gather, train, demo; returns {video: verdict}."""
    plan = find_data()
    LOGGER.info("step 0/3: data = %s", plan.what)
    LOGGER.info("step 1/3: gather face crops into %s", DATASET)
    for folder in plan.video_folders:
        # Videos that do not decode are skipped with a warning; none usable is a DataError.
        gather_examples.run(input=folder, output=DATASET, skip=skip, label_from_names=True, progress=False)
    datasets = [DATASET, *plan.crop_folders]
    LOGGER.info("step 2/3: train on %s crop folder(s)%s", len(datasets), f" (without {plan.held_out})" if plan.held_out else "")
    train.run(dataset=datasets, model=model, group_pattern=plan.group_pattern)
    verdicts = {}
    for video in plan.demo_videos:
        out = OUTPUT / f"demo_{video.parent.name}_{video.stem}.mp4"
        LOGGER.info("step 3/3: liveness demo on %s -> %s", video, out)
        summary = liveness_demo.run(input=str(video), model=model, output=out, display=display, hold_last_ms=1500)
        truth = label_from_name(video.name)
        verdict = max(summary.labels, key=summary.labels.get) if summary.faces else "no face"
        share = summary.labels.get(verdict, 0) / summary.faces if summary.faces else 0.0
        verdicts[str(video)] = verdict
        LOGGER.info("VERDICT %s (truly %s): %s on %.0f%% of %d faces -> %s", video, truth, verdict, 100 * share, summary.faces,
                    "right" if verdict == truth else "WRONG")
    if plan.held_out:
        LOGGER.info("those were %s's videos: a set-up the model never saw", plan.held_out)
    LOGGER.info("done. Next: python liveness_demo.py (webcam), python evaluate.py --videos <new person's videos>")
    return verdicts


def parse_opt(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="gather -> train -> demo, end to end")
    ap.add_argument("--skip", type=positive_int, default=2, help="gather every N-th frame")
    ap.add_argument("--no-display", action="store_true", help="never open a window")
    return ap.parse_args(argv)


def main(opt: argparse.Namespace) -> int:
    setup_logging()
    run(skip=opt.skip, display=False if opt.no_display else None)
    return 0


if __name__ == "__main__":
    cli_main(lambda: main(parse_opt()))
