"""Candidate blink cues against the hand-labelled videos: recall and false blinks per minute of each.

Usage:
    pip install -r benchmarks/requirements-dlib.txt       # dlib and its 68-point model, once
    python benchmarks/blink_cues.py                     # every video in tests/data/blinks.csv, 3-4 min on 2 cores
    python benchmarks/blink_cues.py --json output/blink_cues.json

Not a test and not the product: it measures the candidates docs/blink-research.md (the blink
detector's research notes) compares, so that its table can be reproduced. Every frame runs through
the SSD once; then, for each of two ways to hand the SSD's box to dlib's shape predictor,
the 68 landmarks and the eye patches (each eye warped from its corner landmarks to a
fixed PATCH_W x PATCH_H grid, 1.6 x 1.0 eye widths) give per-frame measures:

  ear       eye aspect ratio (what liveness.challenge uses)
  darkness  mean darkness of the eye's middle against the patch's median (the iris and
            pupil; a blink hides them)
  height    rows of the eye's middle darker than the skin, contrast-normalised (the
            opening measured in pixels instead of by the eyelid landmarks)
  ear+X     the mean of the two measures, each divided by its median over the last second

Each measure runs through the dlib era's blink detector (benchmarks/hysteresis_blink.py: per-face baseline, hysteresis,
0.09-0.4 s closure, landmark-jump guard) under three hysteresis settings. The two box
mappings: "current" is liveness.landmarks.predictor_box; "dlib-fit" is a square of
FIT_SIDE x the SSD box's height centred FIT_CENTRE_Y of the way down it, the median
relation of dlib's own HOG detector's boxes to the SSD's on the shared videos. A second table gives
each mapping's eye landmarks' distance (in inter-ocular distances) from the landmarks
dlib places in its own HOG box, on every 6th frame where HOG finds the face.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as `python benchmarks/blink_cues.py`
    sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from liveness.blinkeval import read_blink_labels  # noqa: E402
from liveness.challenge import (  # noqa: E402
    DEFAULT_SETTINGS, eye_aspect_ratio, face_scale, match_blinks,
)
from liveness.cli import cli_main, ensure_parent_dir, setup_logging  # noqa: E402
from liveness.errors import SourceError  # noqa: E402
from liveness.fileio import atomic_write_text  # noqa: E402
from liveness.landmarks import LEFT_EYE, RIGHT_EYE, predictor_box  # noqa: E402
from liveness.sources import iter_frames  # noqa: E402
from benchmarks.hysteresis_blink import HYSTERESIS, HysteresisBlinkDetector, HysteresisSettings  # noqa: E402

LOGGER = logging.getLogger("liveness")
DEFAULT_LABELS = ROOT / "tests" / "data" / "blinks.csv"
DEFAULT_VIDEOS = ROOT.parent / "shared" / "data" / "videos"
FIT_SIDE, FIT_CENTRE_Y = 0.79, 0.555  # the "dlib-fit" mapping (module docstring)
PATCH_W, PATCH_H = 32, 24
MIDDLE = slice(11, 21)  # the patch's middle columns: where the iris sits in an open eye
HOG_EVERY = 6
SETTINGS = {
    "0.8/0.95 (default)": HYSTERESIS,
    "0.75/0.9": HysteresisSettings(close_ratio=0.75, open_ratio=0.9),
    "0.7/0.9": HysteresisSettings(close_ratio=0.7, open_ratio=0.9),
}


def parse_opt(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=Path, default=DEFAULT_LABELS, help="blink labels CSV")
    parser.add_argument("--videos", type=Path, default=DEFAULT_VIDEOS, help="folder the CSV's video paths are under")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    return parser.parse_args(argv)


def fitted_box(box) -> tuple[int, int, int, int]:
    x1, y1, x2, y2 = (int(v) for v in box)
    side = FIT_SIDE * (y2 - y1)
    cx, cy = 0.5 * (x1 + x2), y1 + FIT_CENTRE_Y * (y2 - y1)
    return tuple(int(round(v)) for v in (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2))


MAPPINGS = {"current": predictor_box, "dlib-fit": fitted_box}


def eye_patch(grey: np.ndarray, eye: np.ndarray) -> np.ndarray:
    """The eye warped from its corners (landmarks 0 and 3 of its six) to PATCH_W x PATCH_H."""
    a, b = eye[0], eye[3]
    c = eye.mean(axis=0)
    width = float(np.hypot(*(b - a)))
    ux = (b - a) / max(width, 1e-6)
    uy = np.array([-ux[1], ux[0]])
    src = np.float32([c - 0.8 * width * ux - 0.5 * width * uy, c + 0.8 * width * ux - 0.5 * width * uy,
                      c - 0.8 * width * ux + 0.5 * width * uy])
    dst = np.float32([[0, 0], [PATCH_W, 0], [0, PATCH_H]])
    return cv2.warpAffine(grey, cv2.getAffineTransform(src, dst), (PATCH_W, PATCH_H),
                          flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).astype(np.float32)


def patch_measures(patch: np.ndarray) -> tuple[float, float]:
    """(darkness, height) of one eye patch."""
    skin = float(np.median(patch))
    middle = patch[:, MIDDLE]
    darkness = float(np.clip((skin - middle) / max(skin, 1.0), 0, None).mean())
    profile = middle.mean(axis=1)
    low = float(profile.min())
    height = float(np.clip((skin - profile) / max(skin - low, 1.0), 0, 1).sum())
    return darkness, height


def measures(frame: np.ndarray, pts: np.ndarray) -> dict[str, float]:
    grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    eyes = [patch_measures(eye_patch(grey, pts[part])) for part in (RIGHT_EYE, LEFT_EYE)]
    return {"ear": eye_aspect_ratio(pts), "darkness": float(np.mean([e[0] for e in eyes])),
            "height": float(np.mean([e[1] for e in eyes]))}


def running_ratio(values: list[float | None], fps: float, span_s: float = 1.0) -> list[float | None]:
    """Each value over the median of the values of the `span_s` before it (None: no face)."""
    k = max(3, int(round(span_s * fps)))
    out: list[float | None] = []
    for i, v in enumerate(values):
        past = [p for p in values[max(0, i - k):i] if p is not None]
        out.append(None if v is None or len(past) < 3 else v / max(statistics.median(past), 1e-6))
    return out


def onsets(values: list[float | None], jumped: list[bool], fps: float, settings: HysteresisSettings) -> list[int]:
    detector, found = HysteresisBlinkDetector(settings), []
    for i, v in enumerate(values):
        if v is not None:
            began = detector.update(v, i / fps, trusted=not jumped[i])
            if began is not None:
                found.append(int(round(began * fps)))
    return found


def jumps(points: list[np.ndarray | None], jump_scale: float) -> list[bool]:
    """ActionDetector's landmark-jump guard, frame by frame."""
    out, last = [], None
    for pts in points:
        jumped = False
        if pts is not None:
            centre, scale = pts.mean(axis=0), face_scale(pts)
            if last is not None:
                jumped = (float(np.hypot(*(centre - last[0]))) > jump_scale * last[1]
                          or abs(scale - last[1]) > jump_scale * last[1])
            last = (centre, scale)
        out.append(jumped)
    return out


def video_measures(path: Path, detector, predictor, dlib, hog) -> tuple[float, dict, list]:
    """(fps, {mapping: {measure: [value or None per frame], "_jumped": [...]}}, eye errors)."""
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise SourceError(f"cannot open video {path}")
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    per = {name: {"ear": [], "darkness": [], "height": [], "_points": []} for name in MAPPINGS}
    errors = []  # (current, dlib-fit) eye-point error on frames where HOG finds the face
    index = 0
    try:
        for _, frame in iter_frames(cap):
            faces = detector.detect(frame)
            grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
            shapes = {}
            for name, mapping in MAPPINGS.items():
                if faces:
                    x1, y1, x2, y2 = mapping(faces[0].box)
                    shape = predictor(grey, dlib.rectangle(x1, y1, x2 - 1, y2 - 1))
                    pts = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)
                    shapes[name] = pts
                    m = measures(frame, pts)
                else:
                    pts, m = None, {"ear": None, "darkness": None, "height": None}
                for key, value in m.items():
                    per[name][key].append(value)
                per[name]["_points"].append(pts)
            if faces and index % HOG_EVERY == 0:
                errors.extend(hog_errors(grey, faces[0].box, shapes, predictor, dlib, hog))
            index += 1
    finally:
        cap.release()
    for name in MAPPINGS:
        per[name]["_jumped"] = jumps(per[name].pop("_points"), DEFAULT_SETTINGS.jump_scale)
    return fps, per, errors


def hog_errors(grey, box, shapes, predictor, dlib, hog) -> list[tuple[float, ...]]:
    """Eye-point distance of each mapping's landmarks from dlib's in its own HOG box."""
    scale = min(1.0, 480 / max(grey.shape))
    small = cv2.resize(grey, None, fx=scale, fy=scale) if scale < 1 else grey
    x1, y1, x2, y2 = box
    out = []
    for r in hog(small, 1):
        rect = [r.left() / scale, r.top() / scale, (r.right() + 1) / scale, (r.bottom() + 1) / scale]
        cx, cy = (rect[0] + rect[2]) / 2, (rect[1] + rect[3]) / 2
        if not (x1 < cx < x2 and y1 < cy < y2):
            continue
        ref = predictor(grey, dlib.rectangle(*(int(round(v)) for v in (rect[0], rect[1], rect[2] - 1, rect[3] - 1))))
        ref = np.array([(p.x, p.y) for p in ref.parts()], dtype=np.float64)
        iod = float(np.hypot(*(ref[RIGHT_EYE].mean(axis=0) - ref[LEFT_EYE].mean(axis=0))))
        out.append(tuple(float(np.linalg.norm(shapes[name][36:48] - ref[36:48], axis=1).mean() / iod)
                         for name in MAPPINGS))
    return out


def run(*, labels: Path = DEFAULT_LABELS, videos: Path = DEFAULT_VIDEOS, json_path: Path | None = None) -> dict:
    from liveness.detector import FaceDetector
    from liveness.landmarks import import_dlib, locate_model_file

    dlib = import_dlib()

    if json_path is not None:
        ensure_parent_dir(Path(json_path))
    spans_of = read_blink_labels(Path(labels))
    detector, hog = FaceDetector(), dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(locate_model_file()))
    data, errors, minutes = {}, [], 0.0
    for video, spans in spans_of.items():
        LOGGER.info("%s", video)
        fps, per, errs = video_measures(Path(videos) / video, detector, predictor, dlib, hog)
        data[video] = (fps, per, spans)
        errors.extend(errs)
        minutes += len(per["current"]["ear"]) / fps / 60
    labelled = sum(len(s) for s in spans_of.values())
    rows = []
    for mapping in MAPPINGS:
        for cue in ("ear", "darkness", "height", "ear+darkness", "ear+height"):
            for setting_name, settings in SETTINGS.items():
                found = false = 0
                for fps, per, spans in data.values():
                    m = per[mapping]
                    if "+" in cue:
                        a, b = (running_ratio(m[k], fps) for k in cue.split("+"))
                        values = [None if x is None or y is None else 0.5 * (x + y) for x, y in zip(a, b)]
                    else:
                        values = m[cue]
                    f, fa = match_blinks(onsets(values, m["_jumped"], fps, settings), spans)
                    found, false = found + f, false + fa
                rows.append({"mapping": mapping, "cue": cue, "hysteresis": setting_name, "found": found,
                             "labelled": labelled, "false": false, "false_per_minute": false / minutes})
    err = np.array(errors) if errors else np.zeros((0, len(MAPPINGS)))
    agreement = {name: {"frames": len(err), "median": float(np.median(err[:, i])) if len(err) else None,
                        "p90": float(np.percentile(err[:, i], 90)) if len(err) else None}
                 for i, name in enumerate(MAPPINGS)}
    print(f"{labelled} labelled blinks in {len(spans_of)} videos, {minutes:.2f} min")
    print(f"{'mapping':10} {'cue':14} {'close/open':20} {'found':>7} {'false':>6} {'per min':>8}")
    for r in rows:
        print(f"{r['mapping']:10} {r['cue']:14} {r['hysteresis']:20} {r['found']:>3}/{r['labelled']:<3} "
              f"{r['false']:>6} {r['false_per_minute']:>8.1f}")
    print("eye landmarks' distance from dlib's own-box landmarks, in inter-ocular distances:")
    for name, a in agreement.items():
        if a["frames"]:
            print(f"  {name:10} median {a['median']:.3f}  p90 {a['p90']:.3f}  ({a['frames']} frames)")
    result = {"labelled": labelled, "minutes": minutes, "rows": rows, "landmark_agreement": agreement}
    if json_path is not None:
        atomic_write_text(Path(json_path), json.dumps(result, indent=2) + "\n")
    return result


def main(opt: argparse.Namespace) -> None:
    setup_logging()
    run(labels=opt.labels, videos=opt.videos, json_path=opt.json)


if __name__ == "__main__":
    cli_main(lambda: main(parse_opt()))
