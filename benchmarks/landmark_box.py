"""Two ways to hand the SSD's box to dlib's shape predictor, compared for both challenge detectors.

Usage:
    pip install -r benchmarks/requirements-dlib.txt       # dlib and its 68-point model, once
    python benchmarks/landmark_box.py                   # every shared video, 5-6 min on 2 cores
    python benchmarks/landmark_box.py --json output/landmark_box.json

Not a test and not the product: it measures what docs/blink-research.md's paragraph on the
landmark box reports. Every frame of every shared video runs through the SSD once; the 68
landmarks are placed from "current" (liveness.landmarks.predictor_box) and from
"dlib-fit" (benchmarks/blink_cues.py's square fitted to dlib's own HOG boxes). Per
video and mapping:

  eyes vs HOG   eye points' distance from the points dlib places in its own HOG box
                (inter-ocular distances; every HOG_EVERY-th frame where HOG finds the face)
  yaw jitter    robust SD (1.4826 x median absolute) of the frame-to-frame change of
                liveness.challenge.yaw_ratio on still frames (the SSD box's centre moved
                < STILL_MOVE and its width changed < STILL_SIZE of its width)
  yaw vs HOG    |yaw_ratio - yaw_ratio of the HOG-box landmarks| on the same frames
  turns         the ActionDetector's turn events (frame, side)
  jumps         frames the landmark-jump guard flags (each voids a closure of the eyes under way)
and on the labelled videos (tests/data/blinks.csv) the blink detector's found / false
blinks, the closures the landmark-jump guard voided, and, at each detected blink, how
far the two mappings' eye points lie apart (inter-ocular distances of dlib-fit's eyes).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as `python benchmarks/landmark_box.py`
    sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.blink_cues import DEFAULT_LABELS, DEFAULT_VIDEOS, MAPPINGS, jumps  # noqa: E402
from benchmarks.hysteresis_blink import HYSTERESIS, HysteresisActionDetector, HysteresisSettings  # noqa: E402
from liveness.blinkeval import read_blink_labels  # noqa: E402
from liveness.challenge import (  # noqa: E402
    eye_aspect_ratio, match_blinks, yaw_ratio,
)
from liveness.cli import cli_main, ensure_parent_dir, setup_logging  # noqa: E402
from liveness.errors import SourceError  # noqa: E402
from liveness.fileio import atomic_write_text  # noqa: E402
from liveness.landmarks import LEFT_EYE, RIGHT_EYE  # noqa: E402
from liveness.sources import iter_frames  # noqa: E402

LOGGER = logging.getLogger("liveness")
HOG_EVERY = 3
STILL_MOVE, STILL_SIZE = 0.02, 0.03
VIDEO_SUFFIXES = (".mp4", ".mov", ".webm")
DIP_S, MERGE_GAP = 0.2, 5  # the threshold-free EAR dip: window, and frames that merge two dips
DIP_THRESHOLDS = (0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45)
# Settings tried with each box beside the default (longest closure, reopening ratio).
BLINK_VARIANTS = {f"max_closed {m} open {o}": HysteresisSettings(max_closed_s=m, open_ratio=o)
                  for m in (0.4, 0.5, 0.6) for o in (0.9, 0.95)}


def parse_opt(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=Path, default=DEFAULT_LABELS, help="blink labels CSV")
    parser.add_argument("--videos", type=Path, default=DEFAULT_VIDEOS, help="folder of subjectNN/ video folders")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    return parser.parse_args(argv)


def _points(shape) -> np.ndarray:
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)


def _iod(pts: np.ndarray) -> float:
    return float(np.hypot(*(pts[RIGHT_EYE].mean(axis=0) - pts[LEFT_EYE].mean(axis=0))))


def _eye_distance(pts: np.ndarray, ref: np.ndarray) -> float:
    return float(np.linalg.norm(pts[36:48] - ref[36:48], axis=1).mean() / max(_iod(ref), 1e-6))


def hog_landmarks(grey, box, predictor, dlib, hog) -> np.ndarray | None:
    """dlib's landmarks in its own HOG box, for the HOG face whose centre lies in the SSD box."""
    scale = min(1.0, 480 / max(grey.shape))
    small = cv2.resize(grey, None, fx=scale, fy=scale) if scale < 1 else grey
    x1, y1, x2, y2 = box
    for r in hog(small, 1):
        rect = [r.left() / scale, r.top() / scale, (r.right() + 1) / scale, (r.bottom() + 1) / scale]
        if x1 < (rect[0] + rect[2]) / 2 < x2 and y1 < (rect[1] + rect[3]) / 2 < y2:
            return _points(predictor(grey, dlib.rectangle(*(int(round(v)) for v in (rect[0], rect[1],
                                                                                      rect[2] - 1, rect[3] - 1)))))
    return None


def read_video(path: Path, detector, predictor, dlib, hog) -> tuple[float, list[dict]]:
    """(fps, per frame {"box", mapping: landmarks or None, "hog": landmarks or None})."""
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise SourceError(f"cannot open video {path}")
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    rows: list[dict] = []
    try:
        for _, frame in iter_frames(cap):
            faces = detector.detect(frame)
            row = {"box": None, "hog": None, **{name: None for name in MAPPINGS}}
            if faces:
                grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
                row["box"] = faces[0].box
                for name, mapping in MAPPINGS.items():
                    x1, y1, x2, y2 = mapping(faces[0].box)
                    row[name] = _points(predictor(grey, dlib.rectangle(x1, y1, x2 - 1, y2 - 1)))
                if len(rows) % HOG_EVERY == 0:
                    row["hog"] = hog_landmarks(grey, faces[0].box, predictor, dlib, hog)
            rows.append(row)
    finally:
        cap.release()
    return fps, rows


def still_frames(rows: list[dict]) -> np.ndarray:
    """Frame i (i >= 1) is still when the SSD box barely moved since frame i - 1."""
    out = []
    for a, b in zip((r["box"] for r in rows), (r["box"] for r in rows[1:])):
        if a is None or b is None:
            out.append(False)
            continue
        w = b[2] - b[0]
        move = np.hypot((a[0] + a[2] - b[0] - b[2]) / 2, (a[1] + a[3] - b[1] - b[3]) / 2)
        out.append(move < STILL_MOVE * w and abs((a[2] - a[0]) - w) < STILL_SIZE * w)
    return np.array(out, dtype=bool)


def detector_run(rows: list[dict], name: str, fps: float,
                 settings: HysteresisSettings = HYSTERESIS) -> dict:
    """The ActionDetector over one mapping's landmarks: blink onsets, turn events,
    landmark-jump frames and the closures of the eyes those jumps voided."""
    det = HysteresisActionDetector(settings)
    jumped = jumps([r[name] for r in rows], settings.jump_scale)
    blinks, turns, voided = [], [], []
    for i, row in enumerate(rows):
        if row[name] is None:
            continue
        closing = det.blink._closed_at is not None
        for began, kind in det.update(row[name], i / fps):
            if kind == "blink":
                blinks.append(int(round(began * fps)))
            else:
                turns.append((i, kind))
        if closing and jumped[i] and det.blink._closed_at is None:
            voided.append(i)
    return {"blinks": blinks, "turns": turns, "jump_frames": int(sum(jumped)), "voided": voided}


def ear_dips(rows: list[dict], name: str, fps: float) -> np.ndarray:
    """Per frame: 1 - the lowest EAR of the DIP_S window centred there over the median
    EAR of the second before that window (NaN where either is missing)."""
    ear = np.array([eye_aspect_ratio(r[name]) if r[name] is not None else np.nan for r in rows])
    w, pre = max(2, int(round(DIP_S * fps))), int(round(fps))
    out = np.full(len(ear), np.nan)
    for c in range(len(ear)):
        a = c - w // 2
        win, ref = ear[max(0, a):a + w], ear[max(0, a - pre - 2):max(0, a - 2)]
        if np.isfinite(win).any() and np.isfinite(ref).sum() >= 3:
            out[c] = 1 - np.nanmin(win) / np.nanmedian(ref)
    return out


def dip_counts(dips: np.ndarray, spans, threshold: float, slack: int = 2) -> tuple[int, int]:
    """(labelled blinks with a dip >= threshold within `slack` frames, separate dips
    >= threshold elsewhere: runs of such frames, merged across gaps of MERGE_GAP frames)."""
    hit = np.nan_to_num(dips) >= threshold
    found = sum(bool(hit[max(0, a - slack):b + slack + 1].any()) for a, b in spans)
    near = np.zeros(len(hit), dtype=bool)
    for a, b in spans:
        near[max(0, a - 2 * slack):b + 2 * slack + 1] = True
    false, last = 0, -MERGE_GAP - 1
    for i in np.flatnonzero(hit & ~near):
        false += i - last > MERGE_GAP
        last = i
    return found, false


def video_figures(rows: list[dict], fps: float) -> dict:
    still = still_frames(rows)
    out = {"frames": len(rows), "still": int(still.sum())}
    for name in MAPPINGS:
        yaw = np.array([yaw_ratio(r[name]) if r[name] is not None else np.nan for r in rows])
        dy = np.diff(yaw)[still]
        dy = dy[np.isfinite(dy)]
        ref = [(r[name], r["hog"]) for r in rows if r["hog"] is not None]
        eyes = [_eye_distance(p, h) for p, h in ref]
        yaw_err = [abs(yaw_ratio(p) - yaw_ratio(h)) for p, h in ref]
        out[name] = {
            "yaw_jitter": float(1.4826 * np.median(np.abs(dy))) if len(dy) else None,
            "eyes_vs_hog": eyes, "yaw_vs_hog": yaw_err,
        }
    return out


def _q(values, p) -> float:
    return float(np.percentile(values, p)) if len(values) else float("nan")


def run(*, labels: Path = DEFAULT_LABELS, videos: Path = DEFAULT_VIDEOS, json_path: Path | None = None) -> dict:
    from liveness.detector import FaceDetector
    from liveness.landmarks import import_dlib, locate_model_file

    dlib = import_dlib()

    if json_path is not None:
        ensure_parent_dir(Path(json_path))
    spans_of = read_blink_labels(Path(labels))
    paths = sorted(p for p in Path(videos).glob("*/*") if p.suffix.lower() in VIDEO_SUFFIXES)
    detector, hog = FaceDetector(), dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(locate_model_file()))
    names = list(MAPPINGS)
    per_video: dict[str, dict] = {}
    pooled = {name: {"eyes_vs_hog": [], "yaw_vs_hog": []} for name in names}
    variants = {name: {v: [0, 0] for v in BLINK_VARIANTS} for name in names}  # [found, false]
    dips = {name: {t: [0, 0] for t in DIP_THRESHOLDS} for name in names}
    labelled, minutes = 0, 0.0
    for path in paths:
        video = path.relative_to(videos).as_posix()
        LOGGER.info("%s", video)
        fps, rows = read_video(path, detector, predictor, dlib, hog)
        fig = video_figures(rows, fps)
        spans = spans_of.get(video)
        if spans is not None:
            labelled += len(spans)
            minutes += len(rows) / fps / 60
        for name in names:
            r = detector_run(rows, name, fps)
            fig[name].update(turns=r["turns"], jump_frames=r["jump_frames"])
            for key in ("eyes_vs_hog", "yaw_vs_hog"):
                pooled[name][key] += fig[name][key]
            if spans is None:
                continue
            found, false = match_blinks(r["blinks"], spans)
            fig[name]["blinks"] = {
                "onsets": r["blinks"], "found": found, "false": false, "voided_at": r["voided"],
                "eyes_apart_at_onsets": [round(_eye_distance(rows[f][names[0]], rows[f][names[1]]), 2)
                                         for f in r["blinks"]],
            }
            for variant, settings in BLINK_VARIANTS.items():
                f, fa = match_blinks(detector_run(rows, name, fps, settings)["blinks"], spans)
                variants[name][variant][0] += f
                variants[name][variant][1] += fa
            d = ear_dips(rows, name, fps)
            for t in DIP_THRESHOLDS:
                f, fa = dip_counts(d, spans, t)
                dips[name][t][0] += f
                dips[name][t][1] += fa
        per_video[video] = fig

    print(f"{'video':22} {'still':>5}  " + "  ".join(
        f"{n + ': yaw jitter, eyes vs HOG med/p90, yaw vs HOG med/p90, turns, jumps':70}" for n in names))
    for video, fig in per_video.items():
        cells = []
        for name in names:
            f = fig[name]
            jit = f["yaw_jitter"] if f["yaw_jitter"] is not None else float("nan")
            cells.append(f"{jit:.4f}  {_q(f['eyes_vs_hog'], 50):.3f}/{_q(f['eyes_vs_hog'], 90):.3f}  "
                         f"{_q(f['yaw_vs_hog'], 50):.3f}/{_q(f['yaw_vs_hog'], 90):.3f}  {len(f['turns']):2d} "
                         f"{f['jump_frames']:3d} ({len(f['eyes_vs_hog'])} HOG)".ljust(70))
        print(f"{video:22} {fig['still']:>5}  " + "  ".join(cells))
    summary = {}
    for name in names:
        p = pooled[name]
        found = sum(fig[name]["blinks"]["found"] for fig in per_video.values() if "blinks" in fig[name])
        false = sum(fig[name]["blinks"]["false"] for fig in per_video.values() if "blinks" in fig[name])
        summary[name] = {
            "eyes_vs_hog_median": _q(p["eyes_vs_hog"], 50), "eyes_vs_hog_p90": _q(p["eyes_vs_hog"], 90),
            "yaw_vs_hog_median": _q(p["yaw_vs_hog"], 50), "yaw_vs_hog_p90": _q(p["yaw_vs_hog"], 90),
            "hog_frames": len(p["eyes_vs_hog"]), "blinks_found": found, "false_blinks": false,
            "false_per_minute": false / minutes if minutes else float("nan"),
            "variants": {v: {"found": c[0], "false_per_minute": c[1] / minutes if minutes else float("nan")}
                         for v, c in variants[name].items()},
            "ear_dips": {str(t): {"found": c[0], "false_per_minute": c[1] / minutes if minutes else float("nan")}
                         for t, c in dips[name].items()},
        }
        s = summary[name]
        print(f"{name:10} all videos: eyes vs HOG median {s['eyes_vs_hog_median']:.3f} p90 {s['eyes_vs_hog_p90']:.3f}; "
              f"yaw vs HOG median {s['yaw_vs_hog_median']:.3f} p90 {s['yaw_vs_hog_p90']:.3f} "
              f"({s['hog_frames']} frames); blinks {found}/{labelled} found, {false} false "
              f"({s['false_per_minute']:.1f}/min)")
    print(f"blink detector settings, found/{labelled}, false per minute:")
    for variant in BLINK_VARIANTS:
        print(f"  {variant:24} " + "  ".join(
            f"{n}: {summary[n]['variants'][variant]['found']}/{labelled} "
            f"{summary[n]['variants'][variant]['false_per_minute']:4.1f}" for n in names))
    print(f"threshold-free EAR dips (no hysteresis, no guards), found/{labelled}, false dips per minute:")
    for t in DIP_THRESHOLDS:
        print(f"  dip >= {t:<5} " + "  ".join(
            f"{n}: {summary[n]['ear_dips'][str(t)]['found']}/{labelled} "
            f"{summary[n]['ear_dips'][str(t)]['false_per_minute']:4.1f}" for n in names))
    for video in spans_of:
        for name in names:
            b = per_video.get(video, {}).get(name, {}).get("blinks")
            if b is not None:
                print(f"  {video:22} {name:10} onsets {b['onsets']} found {b['found']}/{len(spans_of[video])} "
                      f"false {b['false']}; closures voided by jumps at {b['voided_at']}; "
                      f"eye points apart at onsets {b['eyes_apart_at_onsets']}")
    result = {"videos": per_video, "summary": summary, "labelled": labelled, "minutes": minutes}
    if json_path is not None:
        atomic_write_text(Path(json_path), json.dumps(result, indent=1, default=float) + "\n")
    return result


def main(opt: argparse.Namespace) -> None:
    setup_logging()
    run(labels=opt.labels, videos=opt.videos, json_path=opt.json)


if __name__ == "__main__":
    cli_main(lambda: main(parse_opt()))
