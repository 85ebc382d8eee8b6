"""Blink cues that do not rest on dlib's eyelid points, against hand-labelled videos, without a threshold.

Usage:
    pip install -r benchmarks/requirements-dlib.txt       # dlib and its 68-point model, once
    python benchmarks/blink_motion.py                      # tests/data/blinks.csv; 4-5 min on 2 cores, 2 once cached
    python benchmarks/blink_motion.py --labels my_blinks.csv --videos ../shared/data/videos --json out.json
    python benchmarks/blink_motion.py --cache /tmp/blink_motion    # where the SSD's landmarks are kept

Not a test and not the product: the figures of docs/blink-research.md's paragraph on these cues. Each
labelled video runs through the SSD once (its boxes and the 68 landmarks of the most confident
face, for two ways to hand the box to dlib: "current" = liveness.landmarks.predictor_box,
"dlib-fit" = benchmarks/blink_cues.py's fitted square) and is cached as an .npz per video in
--cache. Every frame is then mapped to a canonical eye band (a similarity transform from the
two eye centres: inter-ocular distance IOD px, band BAND_W x BAND_H) and these per-frame
signals are measured in each eye's patch of the band:

  ear      eye aspect ratio (what liveness.challenge uses), for reference
  flow     Farneback optical flow between the previous and this frame, both warped with THIS
           frame's transform (so landmark jitter cancels): the eye patch's mean vertical flow
           minus the band's median (head motion); summed over time it is the lids' position
  diff     the mean absolute difference of the same two warped frames in the eye patch, minus
           the band's (a burst of change where the lids move)
  ncc      normalised cross-correlation of the eye patch against the face's own open-eye
           template (median of its first TEMPLATE_FRAMES patches, then updated slowly while
           the correlation stays high), best over +-SEARCH px shifts
  haar     OpenCV's shipped cascades trained on open eyes (haarcascade_eye, ..._eye_tree_
           eyeglasses) on a larger band: the best detection's level weight at each eye
           (NO_EYE when none)
  return   how much the patch differs from the patches RETURN_S before and after it, given
           that those two agree (a blink is a transient that comes back; a turn does not)

Frames whose landmarks jump (the blink detector's own guard) and the frame after are void.
Each signal becomes a per-frame blink score: its transient dip (the lower of its medians
over the windows 0.25-0.6 s before and after, minus the value, over its robust frame-to-frame
SD of the last 3 s), "both" eyes = the smaller eye's score, "mean" = the score of the mean,
"A&B" = both cues' scores at once (the smaller, B's taken within +-2 frames); "flow pattern"
scores a downward lid burst followed within 0.4 s by an upward one. Peaks at least 0.2 s apart
are the candidate blinks; a peak finds a labelled blink as liveness.challenge.match_blinks
matches (within 2 frames of its span). Printed per cue: the most blinks found, over every
threshold, with at most 0, 1, 2, 4 and 7 false peaks in all, and the rank of each labelled blink among its video's peaks ("-": no
peak on it). No threshold is chosen here, so nothing is fitted to the labels. Then today's
detector's found / false on the same cached landmarks (benchmarks/hysteresis_blink.py, the dlib era's rule, as the
labelled-video test runs it: the reference on any labels), and the mean ncc through the
unchanged BlinkDetector under blink_cues.py's three hysteresis settings (its found / false
figures compare with that file's table). Last, the per-face cost
of each cue against the SSD's per frame, timed back to back with it on each of the first
video's first COST_FRAMES frames (as benchmarks/bench_challenge.py times the landmarks).
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as `python benchmarks/blink_motion.py`
    sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.blink_cues import MAPPINGS, SETTINGS, jumps, onsets  # noqa: E402
from liveness.blinkeval import read_blink_labels  # noqa: E402
from benchmarks.hysteresis_blink import hysteresis_onsets  # noqa: E402
from liveness.challenge import DEFAULT_SETTINGS, eye_aspect_ratio, match_blinks  # noqa: E402
from liveness.cli import cli_main, ensure_parent_dir, ensure_writable_dir, setup_logging  # noqa: E402
from liveness.errors import SourceError  # noqa: E402
from liveness.fileio import atomic_write_text  # noqa: E402
from liveness.sources import iter_frames  # noqa: E402

LOGGER = logging.getLogger("liveness")
DEFAULT_LABELS = ROOT / "tests" / "data" / "blinks.csv"
DEFAULT_VIDEOS = ROOT.parent / "shared" / "data" / "videos"
DEFAULT_CACHE = Path("/tmp") / "blink_motion"
IOD, BAND_W, BAND_H = 48, 96, 40  # canonical band: eye centres at (24, 20) and (72, 20)
EYE_X, EYE_Y, HALF_W, HALF_H = (24, 72), 20, 17, 10  # eye patches: 34 x 20 px
HAAR_IOD, HAAR_W, HAAR_H = 72, 144, 60  # the cascades' minimum window is 20 px: a larger band
HAAR_FILES = {"haar eye": "haarcascade_eye.xml", "haar glasses": "haarcascade_eye_tree_eyeglasses.xml"}
NO_EYE = -5.0
TEMPLATE_FRAMES, TEMPLATE_KEEP, TEMPLATE_RATE, SEARCH = 15, 0.6, 0.05, 4
RETURN_S, RETURN_SEARCH = 0.25, 3
NEAR_S, FAR_S, NOISE_S, PEAK_GAP_S, MAX_CLOSED_S, BURST_S = 0.25, 0.6, 3.0, 0.2, 0.4, 0.07
FALSE_LIMITS = (0, 1, 2, 4, 7)
COST_FRAMES, COST_ROUNDS = 60, 3


def parse_opt(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=Path, default=DEFAULT_LABELS, help="blink labels CSV")
    parser.add_argument("--videos", type=Path, default=DEFAULT_VIDEOS, help="folder the CSV's video paths are under")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE,
                        help="folder for the SSD's landmarks per video (delete it after changing the detector or box)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    return parser.parse_args(argv)


# --- pass 1: the SSD and the landmarks, cached -------------------------------------------
def landmarks_of(video: Path, cache: Path, detector, predictor, dlib) -> dict:
    """{"fps", "ssd_s", "<mapping>": (n, 68, 2) landmarks, NaN without a face}, from the cache if there."""
    path = cache / (str(video).strip("/").replace("/", "_") + ".npz")
    if path.is_file():
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    cap = cv2.VideoCapture(str(video))
    if not cap.isOpened():
        raise SourceError(f"cannot open video {video}")
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    out = {name: [] for name in MAPPINGS}
    try:
        for _, frame in iter_frames(cap):
            faces = detector.detect(frame)
            grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
            for name, mapping in MAPPINGS.items():
                if faces:
                    x1, y1, x2, y2 = mapping(faces[0].box)
                    shape = predictor(grey, dlib.rectangle(x1, y1, x2 - 1, y2 - 1))
                    out[name].append([(p.x, p.y) for p in shape.parts()])
                else:
                    out[name].append(np.full((68, 2), np.nan))
    finally:
        cap.release()
    result = {"fps": np.float64(fps), **{k: np.array(v, dtype=np.float64) for k, v in out.items()}}
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **result)
    tmp.replace(path)  # atomic: a killed run leaves no half cache
    return result


# --- pass 2: the cues, frame by frame -----------------------------------------------------
def band_transform(pts: np.ndarray, iod: float = IOD, width: int = BAND_W, height: int = BAND_H) -> np.ndarray:
    """2x3 similarity: image -> band, the eye centres level and `iod` apart, centred."""
    right, left = pts[36:42].mean(axis=0), pts[42:48].mean(axis=0)
    d = left - right
    norm = max(float(np.hypot(*d)), 1e-6)
    c, s = d / norm
    rot = (iod / norm) * np.array([[c, s], [-s, c]])
    shift = np.array([width / 2, height / 2]) - rot @ ((right + left) / 2)
    return np.hstack([rot, shift[:, None]])


def warp(grey: np.ndarray, m: np.ndarray, width: int = BAND_W, height: int = BAND_H) -> np.ndarray:
    return cv2.warpAffine(grey, m, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def eye(band: np.ndarray, x: int, margin: int = 0) -> np.ndarray:
    return band[EYE_Y - HALF_H - margin:EYE_Y + HALF_H + margin, x - HALF_W - margin:x + HALF_W + margin]


def best_ncc(search: np.ndarray, template: np.ndarray) -> float:
    return float(cv2.matchTemplate(search, template, cv2.TM_CCOEFF_NORMED).max())


class Cues:
    """Per-frame signals of one face (see the module docstring), and the time each takes."""

    KEYS = ("ear", "flow R", "flow L", "diff R", "diff L", "ncc R", "ncc L") + tuple(
        f"{h} {e}" for h in HAAR_FILES for e in "RL")

    def __init__(self) -> None:
        self.values = {k: [] for k in self.KEYS}
        self.bands: list[np.ndarray | None] = []
        # "band": this frame's warp to the band (flow, diff and ncc read it); "haar band": the larger one
        self.seconds = dict.fromkeys(("band", "flow", "ncc", "haar band", *HAAR_FILES), 0.0)
        self.faces = 0
        self._prev: np.ndarray | None = None
        self._patches: list[list[np.ndarray]] = [[], []]
        self._templates: list[np.ndarray | None] = [None, None]
        self._cascades = {h: cv2.CascadeClassifier(cv2.data.haarcascades + f) for h, f in HAAR_FILES.items()}

    def add(self, grey: np.ndarray, pts: np.ndarray | None) -> None:
        prev, self._prev = self._prev, grey
        if pts is None:
            for k in self.KEYS:
                self.values[k].append(np.nan)
            self.bands.append(None)
            return
        self.faces += 1
        v = self.values
        v["ear"].append(eye_aspect_ratio(pts))
        tb = time.perf_counter()
        m = band_transform(pts)
        band = warp(grey, m).astype(np.float32)
        t0 = time.perf_counter()
        self.seconds["band"] += t0 - tb
        self.bands.append(band)
        if prev is not None:
            before = warp(prev, m).astype(np.float32)
            flow = cv2.calcOpticalFlowFarneback(before, band, None, 0.5, 2, 9, 3, 5, 1.1, 0)[..., 1]
            head = float(np.median(flow))
            change = np.abs(band - before)
            for e, x in zip("RL", EYE_X):
                v[f"flow {e}"].append(float(eye(flow, x).mean()) - head)
                v[f"diff {e}"].append(float(eye(change, x).mean() - change.mean()))
        else:
            for k in ("flow R", "flow L", "diff R", "diff L"):
                v[k].append(np.nan)
        t1 = time.perf_counter()
        for i, (e, x) in enumerate(zip("RL", EYE_X)):
            v[f"ncc {e}"].append(self._template_ncc(i, eye(band, x)))
        t2 = time.perf_counter()
        self.seconds["flow"] += t1 - t0
        self.seconds["ncc"] += t2 - t1
        big = warp(grey, band_transform(pts, HAAR_IOD, HAAR_W, HAAR_H), HAAR_W, HAAR_H)
        self.seconds["haar band"] += time.perf_counter() - t2
        for name, cascade in self._cascades.items():
            t3 = time.perf_counter()
            rects, _, weights = cascade.detectMultiScale3(big, scaleFactor=1.1, minNeighbors=1, minSize=(18, 18),
                                                          maxSize=(60, 60), outputRejectLevels=True)
            for e, x in zip("RL", (HAAR_W / 4, 3 * HAAR_W / 4)):
                near = [float(w) for (rx, ry, rw, rh), w in zip(rects, np.ravel(weights) if len(rects) else [])
                        if abs(rx + rw / 2 - x) < HAAR_IOD / 4 and abs(ry + rh / 2 - HAAR_H / 2) < HAAR_H / 4]
                v[f"{name} {e}"].append(max(near, default=NO_EYE))
            self.seconds[name] += time.perf_counter() - t3

    def _template_ncc(self, i: int, patch: np.ndarray) -> float:
        if self._templates[i] is None:
            self._patches[i].append(patch.copy())
            if len(self._patches[i]) == TEMPLATE_FRAMES:
                self._templates[i] = np.median(np.array(self._patches[i]), axis=0).astype(np.float32)
            return np.nan
        t = self._templates[i]
        c = best_ncc(patch, t[SEARCH:-SEARCH, SEARCH:-SEARCH])
        if c > TEMPLATE_KEEP:  # follow slow changes of light and pose, not a shut eye
            self._templates[i] = ((1 - TEMPLATE_RATE) * t + TEMPLATE_RATE * patch).astype(np.float32)
        return c


def video_cues(video: Path, marks: np.ndarray) -> Cues:
    cap = cv2.VideoCapture(str(video))
    if not cap.isOpened():
        raise SourceError(f"cannot open video {video}")
    cues = Cues()
    try:
        for pts in marks:
            ok, frame = cap.read()
            if not ok:
                break
            cues.add(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), pts if np.isfinite(pts).all() else None)
    finally:
        cap.release()
    return cues


def return_signal(bands: list, fps: float) -> dict[str, np.ndarray]:
    """Per eye: NCC(before, after) - max(NCC(now, before), NCC(now, after)), RETURN_S either side."""
    g, n = max(1, int(round(RETURN_S * fps))), len(bands)
    out = {e: np.full(n, np.nan) for e in "RL"}
    for i in range(g, n - g):
        b, now, a = bands[i - g], bands[i], bands[i + g]
        if b is None or now is None or a is None:
            continue
        for e, x in zip("RL", EYE_X):
            def ncc(p, q, x=x):
                return best_ncc(eye(p, x, RETURN_SEARCH), eye(q, x))
            out[e][i] = ncc(b, a) - max(ncc(now, b), ncc(now, a))
    return out


# --- scores, peaks, the threshold sweep -----------------------------------------------------
def _median(w: np.ndarray) -> float:
    w = w[np.isfinite(w)]
    return float(np.median(w)) if len(w) >= 2 else np.nan


def noise(x: np.ndarray, i: int, fps: float) -> float:
    """Robust SD of the frame-to-frame change of x over the NOISE_S before frame i."""
    w = x[max(0, i - int(round(NOISE_S * fps))):i]
    w = w[np.isfinite(w)]
    return 1.4826 * float(np.median(np.abs(np.diff(w)))) + 1e-9 if len(w) >= 5 else np.nan


def dip(x: np.ndarray, fps: float) -> np.ndarray:
    """Transient dip of x (high = open) at each frame, in units of its own noise."""
    n, near, far = len(x), int(round(NEAR_S * fps)), int(round(FAR_S * fps))
    z = np.full(n, np.nan)
    for i in range(n):
        if np.isfinite(x[i]):
            around = np.minimum(_median(x[max(0, i - far):max(0, i - near + 1)]), _median(x[i + near:i + far + 1]))
            z[i] = (around - x[i]) / noise(x, i, fps)
    return z


def lid_position(v: np.ndarray) -> np.ndarray:
    """Flow summed over time, upward positive (open); NaN where the face is void."""
    p = -np.cumsum(np.nan_to_num(v))
    p[~np.isfinite(v)] = np.nan
    return p


def pattern(v: np.ndarray, fps: float) -> np.ndarray:
    """A downward lid burst (over BURST_S) then an upward one within MAX_CLOSED_S, in noise units."""
    n, b, m = len(v), max(1, int(round(BURST_S * fps))), int(round(MAX_CLOSED_S * fps))
    burst = np.convolve(np.nan_to_num(v), np.ones(b))[:n]
    z = np.full(n, np.nan)
    for i in range(n - 1):
        if np.isfinite(v[i]):
            w = v[max(0, i - int(round(NOISE_S * fps))):i]
            w = w[np.isfinite(w)]
            if len(w) >= 5:
                sd = 1.4826 * float(np.median(np.abs(w - np.median(w)))) * np.sqrt(b) + 1e-9
                z[i] = min(burst[i], float((-burst[i + 1:i + m + 1]).max())) / sd
    return z


def peaks(z: np.ndarray, fps: float) -> list[tuple[int, float]]:
    """(frame, score) of positive local maxima at least PEAK_GAP_S apart, highest first."""
    gap, out = int(round(PEAK_GAP_S * fps)), []
    for i in np.argsort(-np.nan_to_num(z, nan=-np.inf), kind="stable"):
        if not np.isfinite(z[i]) or z[i] <= 0:
            break
        if all(abs(int(i) - j) > gap for j, _ in out):
            out.append((int(i), float(z[i])))
    return out


def sweep(scores: dict[str, np.ndarray], fps: dict[str, float], spans: dict[str, list]) -> dict[int, int]:
    """{false limit: the most labelled blinks found by one threshold with at most that many false peaks}."""
    ranked = sorted(((s, v, i) for v, z in scores.items() for i, s in peaks(z, fps[v])), reverse=True)
    chosen = {v: [] for v in scores}
    best = dict.fromkeys(FALSE_LIMITS, 0)
    for _, v, i in ranked:
        chosen[v].append(i)
        tallies = [match_blinks(chosen[w], spans[w]) for w in scores]
        found, false = sum(t[0] for t in tallies), sum(t[1] for t in tallies)
        for limit in FALSE_LIMITS:
            if false <= limit:
                best[limit] = max(best[limit], found)
    return best


def ranks(scores: dict[str, np.ndarray], fps: dict[str, float], spans: dict[str, list]) -> list[str]:
    """Each labelled blink's rank among its video's peaks (1 = its strongest), '-' when none is on it."""
    out = []
    for v, z in scores.items():
        pk = peaks(z, fps[v])
        for a, b in spans[v]:
            hit = [r for r, (i, _) in enumerate(pk, 1) if a - 2 <= i <= b + 2]
            out.append(str(hit[0]) if hit else "-")
    return out


def void_jumps(marks: np.ndarray) -> np.ndarray:
    """Frames whose landmarks jumped (ActionDetector's guard) and the frame after (flow reads it)."""
    j = np.array(jumps([p if np.isfinite(p).all() else None for p in marks], DEFAULT_SETTINGS.jump_scale), bool)
    return j | np.r_[False, j[:-1]]


def both(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.fmin(a, b)


def cue_scores(s: dict[str, np.ndarray], fps: float) -> dict[str, np.ndarray]:
    """Every scored cue of one video, from its void-masked signals."""
    out = {"ear": dip(s["ear"], fps)}
    for name in ("ncc",) + tuple(HAAR_FILES):
        out[f"{name} mean"] = dip(0.5 * (s[f"{name} R"] + s[f"{name} L"]), fps)
        out[f"{name} both"] = both(dip(s[f"{name} R"], fps), dip(s[f"{name} L"], fps))
    out["flow mean"] = dip(lid_position(0.5 * (s["flow R"] + s["flow L"])), fps)
    out["flow both"] = both(dip(lid_position(s["flow R"]), fps), dip(lid_position(s["flow L"]), fps))
    out["flow pattern mean"] = pattern(0.5 * (s["flow R"] + s["flow L"]), fps)
    out["flow pattern both"] = both(pattern(s["flow R"], fps), pattern(s["flow L"], fps))
    out["diff burst mean"] = dip(-0.5 * (s["diff R"] + s["diff L"]), fps)
    out["diff burst both"] = both(dip(-s["diff R"], fps), dip(-s["diff L"], fps))
    out["return mean"] = 0.5 * (s["return R"] + s["return L"])
    out["return both"] = both(s["return R"], s["return L"])
    singles = ["ear", "ncc mean", "ncc both", "flow mean", "haar eye mean", "haar glasses mean"]
    for a, b in itertools.combinations(singles, 2):
        near = np.nan_to_num(out[b], nan=-np.inf)
        near = np.max([np.roll(near, k) for k in range(-2, 3)], axis=0)  # B within +-2 frames
        out[f"{a} & {b}"] = np.where(np.isfinite(near), np.fmin(out[a], near), np.nan)
    return out


def run(*, labels: Path = DEFAULT_LABELS, videos: Path = DEFAULT_VIDEOS, cache: Path = DEFAULT_CACHE,
        json_path: Path | None = None) -> dict:
    from liveness.detector import FaceDetector
    from liveness.landmarks import Landmarker, import_dlib, locate_model_file

    dlib = import_dlib()

    if json_path is not None:
        ensure_parent_dir(Path(json_path))
    ensure_writable_dir(Path(cache), "cache folder")
    spans = read_blink_labels(Path(labels))
    detector, predictor = FaceDetector(), dlib.shape_predictor(str(locate_model_file()))
    fps, scores, minutes = {}, {name: {} for name in MAPPINGS}, 0.0
    through_detector = {name: {k: [0, 0] for k in SETTINGS} for name in MAPPINGS}
    today = {name: [0, 0] for name in MAPPINGS}
    for video in spans:
        LOGGER.info("%s", video)
        marks = landmarks_of(Path(videos) / video, Path(cache), detector, predictor, dlib)
        fps[video] = float(marks["fps"])
        for name in MAPPINGS:
            stream = [(i / fps[video], p if np.isfinite(p).all() else None) for i, p in enumerate(marks[name])]
            found, false = match_blinks([round(t * fps[video]) for t in hysteresis_onsets(stream)], spans[video])
            today[name] = [today[name][0] + found, today[name][1] + false]
            cues = video_cues(Path(videos) / video, marks[name])
            signals = {k: np.array(v, dtype=np.float64) for k, v in cues.values.items()}
            signals.update({f"return {e}": r for e, r in return_signal(cues.bands, fps[video]).items()})
            void = void_jumps(marks[name][:len(cues.bands)])
            signals = {k: np.where(void, np.nan, v) for k, v in signals.items()}
            for cue, z in cue_scores(signals, fps[video]).items():
                scores[name].setdefault(cue, {})[video] = z
            ncc = [None if not np.isfinite(c) else float(c) for c in 0.5 * (signals["ncc R"] + signals["ncc L"])]
            for setting, tally in through_detector[name].items():
                found, false = match_blinks(onsets(ncc, list(void), fps[video], SETTINGS[setting]), spans[video])
                tally[0], tally[1] = tally[0] + found, tally[1] + false
        minutes += len(cues.bands) / fps[video] / 60
    cost = cost_per_face(Path(videos) / next(iter(spans)), detector, Landmarker())
    labelled = sum(len(s) for s in spans.values())
    rows = [{"mapping": name, "cue": cue, "found_at_most_false": sweep(z, fps, spans), "ranks": ranks(z, fps, spans)}
            for name in MAPPINGS for cue, z in scores[name].items()]
    print(f"{labelled} labelled blinks in {len(spans)} videos, {minutes:.2f} min; "
          f"most blinks found by one threshold with at most N false peaks in all:")
    print(f"{'mapping':9} {'cue':42} " + " ".join(f"F<={n:<3}" for n in FALSE_LIMITS) + "  ranks of the labels")
    for r in rows:
        print(f"{r['mapping']:9} {r['cue']:42} " + " ".join(f"{r['found_at_most_false'][n]:>2}/{labelled:<3}"
                                                          for n in FALSE_LIMITS) + "  " + " ".join(r["ranks"]))
    print("today's blink detector (liveness.challenge.blink_onsets on the same landmarks): found / false, per minute")
    for name, (f, fa) in today.items():
        print(f"  {name:9} {f}/{labelled}, {fa} false, {fa / minutes:.1f} per minute")
    print("mean ncc through the BlinkDetector (found / false blinks per minute):")
    for name, tallies in through_detector.items():
        print(f"  {name:9} " + "   ".join(f"{k}: {f}/{labelled}, {fa / minutes:.1f}" for k, (f, fa) in tallies.items()))
    print(f"cost per face, timed back to back with the SSD ({cost['ssd_ms_per_frame']:.1f} ms per frame) on the first "
          f"{COST_FRAMES} frames of {next(iter(spans))}, median of {COST_ROUNDS} rounds:")
    print(f"  {'landmarks':14} {cost['landmarks_ms_per_face']:6.2f} ms")
    for k in Cues().seconds:
        print(f"  {k:14} {cost[k + '_ms_per_face']:6.2f} ms  {cost[k + '_over_ssd']:.3f} of the SSD")
    result = {"labelled": labelled, "minutes": minutes, "cost": cost, "rows": rows,
              "today": {name: {"found": f, "false": fa} for name, (f, fa) in today.items()},
              "ncc_through_blink_detector": {name: {k: {"found": f, "false": fa} for k, (f, fa) in t.items()}
                                             for name, t in through_detector.items()}}
    if json_path is not None:
        atomic_write_text(Path(json_path), json.dumps(result, indent=2) + "\n")
    return result


def cost_per_face(video: Path, detector, landmarker, frames: int = COST_FRAMES, rounds: int = COST_ROUNDS) -> dict:
    """bench_challenge.py's way: on each of the video's first frames, back to back, the SSD, the 68
    landmarks in its box and each cue; per round each cue's summed time over the SSD's; median of rounds."""
    cap = cv2.VideoCapture(str(video))
    images = []
    while len(images) < frames:
        ok, frame = cap.read()
        if not ok:
            break
        images.append(frame)
    cap.release()
    per_round = []
    for _ in range(rounds + 1):  # the first is a warm-up
        cues, ssd, marks = Cues(), 0.0, 0.0
        for frame in images:
            t0 = time.perf_counter()
            faces = detector.detect(frame)
            t1 = time.perf_counter()
            pts = landmarker.landmarks(frame, faces[0].box) if faces else None
            t2 = time.perf_counter()
            ssd, marks = ssd + t1 - t0, marks + t2 - t1
            cues.add(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), pts)
        n = max(cues.faces, 1)
        per_round.append({"ssd_ms_per_frame": 1000 * ssd / len(images), "landmarks_ms_per_face": 1000 * marks / n,
                          **{f"{k}_ms_per_face": 1000 * t / n for k, t in cues.seconds.items()},
                          **{f"{k}_over_ssd": (t / n) / (ssd / len(images)) for k, t in cues.seconds.items()}})
    return {k: float(np.median([r[k] for r in per_round[1:]])) for k in per_round[0]}


def main(opt: argparse.Namespace) -> None:
    setup_logging()
    run(labels=opt.labels, videos=opt.videos, cache=opt.cache, json_path=opt.json)


if __name__ == "__main__":
    cli_main(lambda: main(parse_opt()))
