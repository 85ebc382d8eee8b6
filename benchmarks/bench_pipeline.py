"""How fast the liveness suite runs on this CPU, measured as ratios within one run.

Usage:
    python benchmarks/bench_pipeline.py                  # 3-4 minutes on 2 cores
    python benchmarks/bench_pipeline.py --quick          # about a minute: checks the machinery only
    python benchmarks/bench_pipeline.py --video my.mp4 --frames 100 --repeats 7
    python benchmarks/bench_pipeline.py --model output/liveness.keras --le output/le.pickle
    make bench ARGS="--quick"

Prints a table on stdout and writes every run's figures to --json (default
output/benchmark.json). Nothing here asserts a time: a figure off its target prints
"below target". On a shared, busy machine absolute figures drift; the ratios hold,
because the two things compared run alternately (A, B, A, B, ...) on the same frames
and each ratio is the median of the per-round ratios.

The lines, all on the same video and the same first --frames frames (640x480):
  1   decode only: open the file, read every frame, release it
  2   detector only: 1 + res10 SSD face detection on every frame
  3   the demo's pipeline headless: 1 + LivenessPipeline.process(frame, draw=True)
      (detection, liveness of every face, tracking, annotation; no window, no output
      file) -> ratio to 2: both decode the same file, so decoding is in both
  4a  liveness per face as the demo scores it: LivenessClassifier.scores([face]) with
      the model's own setting (CNN on OpenCV DNN, or colour-LBP when train.py fused it)
  4b, 4c  the CNN alone, OpenCV DNN on its ONNX export / tf.function
  4d  the tutorial: model.predict on one face (same resize and colour order as ours)
      -> ratio 4d/4a (target: ours at least 25x faster)
  4e  as 4a, a batch of 4 faces per call, per face
  5a, 5b  gather_examples.run(--skip 1 / --skip 4), frames read per second of the
      whole call (fresh output folder each time) -> ratio to 2 / to 1
  5c  gather's frame loop with --skip 4 and no detection (3 of 4 frames grabbed, not
      decoded) -> ratio to 1: skipped frames must cost about as little as decoding
  6   training images per second per epoch: train.py's tf.data pipeline with
      augmentation (6a) and without (6b) vs model.fit on in-memory NumPy arrays
      (6c), one compiled model, same batch size and class weights
  7   liveness_demo.py start-up (launch -> its first JSON line, i.e. the first
      processed frame) and peak resident memory of the demo and of train.py, each a
      fresh process (its own VmHWM, written by a small wrapper at exit)
Two things compared always run back to back, in alternating order: lines 2 and 3 per
frame (each frame decoded once, then detected and run through the pipeline, each timed
apart), each gather run next to a file pass, line 4 in short blocks, line 6 by epoch.

Data: the default video is a 640x480 version (centre-cropped to 4:3, resized once into
a temporary file) of ../shared/data/videos/subject02/real.mp4; without the shared data,
synthetic samples (liveness/synthetic.py). The default model is what train.py makes with
its default settings in a couple of epochs, in a temporary folder (accuracy does not
matter to speed; --quick trains on a dozen crops per folder); that run is also line 7's
training memory. Timings are medians of --repeats rounds after one warm-up round.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import logging
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as `python benchmarks/bench_pipeline.py`
    sys.path.insert(0, str(ROOT))

from liveness.cli import UserError, cli_main, ensure_parent_dir, ensure_writable_dir, setup_logging  # noqa: E402

LOGGER = logging.getLogger("liveness")

DEFAULT_JSON = ROOT / "output" / "benchmark.json"
SHARED_DATA = Path(os.environ.get("LIVENESS_SHARED_DATA", ROOT.parent / "shared" / "data"))
DEFAULT_VIDEOS = ("subject02/real.mp4", "subject03/real.mov", "subject06/real.mp4", "subject01/real.mp4")
SIZE = (640, 480)  # width, height of the default benchmark video
SUBJECT_PATTERN = r"subject\d+"
CHILD_TIMEOUT_S = 300

# Per mode: frames per run, measured rounds, fresh demo processes (line 7), epochs of the
# default model, calls per timed block in line 4 (demo / OpenCV DNN / tf / predict / demo x4), and
# training images per subject and class (None: all the shared crops; --quick: a few).
FULL = dict(frames=60, repeats=5, startup_runs=3, epochs=2, face_calls=(200, 200, 100, 8, 60), crops_per_folder=None)
QUICK = dict(frames=6, repeats=1, startup_runs=1, epochs=1, face_calls=(20, 20, 10, 2, 5), crops_per_folder=12)

TARGETS = {  # ratio targets of the issue; rows without one are informational
    "3": (">=", 0.90),
    "4d": (">=", 25.0),  # the tutorial's model.predict over ours: at least 25x slower
    "5c": (">=", 0.90),  # a skipped frame costs about what decoding it costs
}


# --- statistics and rows ----------------------------------------------------------------
@dataclass
class Row:
    """One line of the table."""

    line: str  # "1", "4a", ...
    what: str
    unit: str
    runs: list[float]
    ratio: float | None = None
    ratio_of: str = ""  # e.g. "3/2"
    higher_is_better: bool = True
    extra: dict = field(default_factory=dict)

    @property
    def target(self) -> tuple[str, float] | None:
        return TARGETS.get(self.line)

    @property
    def verdict(self) -> str:
        if self.target is None or self.ratio is None or not math.isfinite(self.ratio):
            return ""
        op, value = self.target
        ok = self.ratio >= value if op == ">=" else self.ratio <= value
        return "ok" if ok else "below target"

    def as_json(self) -> dict:
        lo, med, hi = spread(self.runs)
        return {
            "line": self.line[0], "id": self.line, "what": self.what, "unit": self.unit,
            "min": lo, "median": med, "max": hi, "runs": self.runs,
            "ratio": self.ratio, "ratio_of": self.ratio_of,
            "target": f"{self.target[0]} {self.target[1]:g}" if self.target else None,
            "verdict": self.verdict or None, "better": "higher" if self.higher_is_better else "lower", **self.extra,
        }


def spread(values: list[float]) -> tuple[float, float, float]:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    if not vals:
        return math.nan, math.nan, math.nan
    return min(vals), statistics.median(vals), max(vals)


def paired_ratio(a: list[float], b: list[float]) -> float:
    """Median over rounds of a[i] / b[i]: each pair ran back to back, under the same load."""
    pairs = [x / y for x, y in zip(a, b) if y and math.isfinite(x) and math.isfinite(y)]
    return statistics.median(pairs) if pairs else math.nan


def round_robin(tasks: dict[str, Callable[[], float]], repeats: int, warmup: int = 1) -> dict[str, list[float]]:
    """Run every task once per round, `warmup` + `repeats` rounds, rotating the order.

    Each task returns its own measured seconds (so set-up outside the timed part is
    not counted). Warm-up rounds are discarded.
    """
    names = list(tasks)
    out: dict[str, list[float]] = {n: [] for n in names}
    for r in range(warmup + repeats):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:  # rotation: no task always runs right after another
            seconds = tasks[name]()
            if r >= warmup:
                out[name].append(seconds)
    return out


@contextlib.contextmanager
def quiet(level: int = logging.WARNING) -> Iterator[None]:
    """The product's [INFO] lines (gather summaries, model loading) off while timing."""
    before = LOGGER.level
    LOGGER.setLevel(max(level, before))
    try:
        yield
    finally:
        LOGGER.setLevel(before)


class Phases:
    """Logs each step with the time since the start, and keeps how long each took."""

    def __init__(self) -> None:
        self.began = self.last = time.perf_counter()
        self.name: str | None = None
        self.seconds: dict[str, float] = {}

    def __call__(self, name: str | None, message: str = "", *args) -> None:
        now = time.perf_counter()
        if self.name is not None:
            self.seconds[self.name] = round(now - self.last, 1)
        self.name, self.last = name, now
        if message:
            LOGGER.info("[%5.1f s] " + message, now - self.began, *args)

    @property
    def total(self) -> float:
        return time.perf_counter() - self.began


# --- machine ----------------------------------------------------------------------------
def machine_info() -> dict:
    import cv2
    import numpy as np

    info = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu_model": _cpu_model(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "opencv": cv2.__version__,
        "opencv_threads": cv2.getNumThreads(),
        "load_average_start": _loadavg(),
    }
    mem = _meminfo_gib()
    if mem:
        info["memory_gib"] = mem
    return info


def _library_versions() -> dict:
    versions = {}
    for name in ("tensorflow", "keras", "tf2onnx", "onnx"):
        with contextlib.suppress(Exception):
            from importlib.metadata import version

            versions[name] = version(name)
    return versions


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _loadavg() -> list[float] | None:
    with contextlib.suppress(OSError, AttributeError):
        return [round(v, 2) for v in os.getloadavg()]
    return None


def _meminfo_gib() -> float | None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    return None


# --- child processes (line 7) -------------------------------------------------------------
# A script runs in a fresh interpreter under this wrapper, which writes the process's own
# peak resident memory (VmHWM) to $LIVENESS_BENCH_HWM at exit. Not ru_maxrss: Linux carries
# the parent's high-water mark across fork/vfork + exec, so a child started by this (big,
# TensorFlow-loaded) process would report at least this process's size.
_WRAPPER = """\
import atexit, os, resource, runpy, sys
def _peak():
    kib = None
    try:
        with open("/proc/self/status") as f:
            kib = next(int(l.split()[1]) for l in f if l.startswith("VmHWM:"))
    except (OSError, StopIteration, ValueError):
        r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        kib = r // 1024 if sys.platform == "darwin" else r
    with open(os.environ["LIVENESS_BENCH_HWM"], "w") as f:
        f.write(str(kib))
atexit.register(_peak)
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@dataclass
class Child:
    cmd: list[str]
    proc: subprocess.Popen
    started: float
    stderr: object
    timer: threading.Timer
    hwm: Path


def start_child(script: Path, args: list[str], *, stdout_pipe: bool = False, timeout: float = CHILD_TIMEOUT_S) -> Child:
    """`python script args...` in a fresh process (cwd: the project), timed from now."""
    fd, hwm = tempfile.mkstemp(prefix="liveness_bench_hwm_")
    os.close(fd)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1", "LIVENESS_BENCH_HWM": hwm}
    cmd = [sys.executable, "-c", _WRAPPER, str(script), *map(str, args)]
    err = tempfile.TemporaryFile()
    started = time.perf_counter()
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stderr=err,
        stdout=subprocess.PIPE if stdout_pipe else subprocess.DEVNULL,
    )
    timer = threading.Timer(timeout, proc.kill)
    timer.daemon = True
    timer.start()
    return Child([str(script), *map(str, args)], proc, started, err, timer, Path(hwm))


def kill_child(child: Child) -> None:
    """Stop a child this benchmark started (on an error or Ctrl-C here)."""
    child.timer.cancel()
    if child.proc.poll() is None:
        child.proc.kill()
        child.proc.wait()
    for stream in (child.proc.stdout, child.stderr):
        if stream is not None:
            stream.close()
    child.hwm.unlink(missing_ok=True)


def finish_child(child: Child) -> dict:
    """Wait for the child: wall seconds since launch, its own peak RSS, its stderr."""
    try:
        child.proc.wait()
    finally:
        child.timer.cancel()
    wall = time.perf_counter() - child.started
    if child.proc.stdout is not None:
        child.proc.stdout.close()
    child.stderr.seek(0)
    stderr = child.stderr.read().decode("utf-8", errors="replace")
    child.stderr.close()
    try:
        text = child.hwm.read_text().strip()
    finally:
        child.hwm.unlink(missing_ok=True)
    if child.proc.returncode != 0:
        tail = "\n".join(stderr.strip().splitlines()[-8:])
        raise RuntimeError(f"{' '.join(child.cmd)} exited with {child.proc.returncode}:\n{tail}")
    peak = int(text) / 1024 if text else math.nan
    return {"wall_s": wall, "peak_rss_mib": peak, "stderr": stderr}


def run_demo_child(video: Path, model: Path, le: Path, frames: int) -> dict:
    """liveness_demo.py --json in a fresh process: launch -> first JSON line, and peak RSS."""
    args = ["--input", video, "--model", model, "--le", le, "--no-display", "--json", "--max-frames", frames]
    child = start_child(ROOT / "liveness_demo.py", args, stdout_pipe=True)
    try:
        first = child.proc.stdout.readline()
        first_s = time.perf_counter() - child.started if first else math.nan
        lines = 1 + sum(1 for _ in child.proc.stdout) if first else 0
    except BaseException:
        kill_child(child)
        raise
    result = finish_child(child)
    result["first_frame_s"] = first_s
    result["json_lines"] = lines
    m = re.search(r"mean ([\d.]+) FPS, first annotated frame after ([\d.]+) s", result["stderr"])
    if m:  # the demo's own view: its loop's FPS, and run() start (after imports) -> first frame
        result["demo_mean_fps"] = float(m.group(1))
        result["demo_first_frame_after_run_start_s"] = float(m.group(2))
    return result


def train_args(dataset: Path, out: Path, epochs: int, group_pattern: str | None) -> list[str]:
    """train.py with its default settings, a few epochs, into `out`."""
    args = [
        "--dataset", str(dataset), "--model", str(out / "liveness.keras"), "--le", str(out / "le.pickle"),
        "--plot", str(out / "plot.png"), "--epochs", str(epochs),
    ]
    return args + (["--group-pattern", group_pattern] if group_pattern else [])


def _import_tensorflow() -> None:
    try:
        from liveness.cli import import_tensorflow  # keeps TF's C++ start-up lines off stderr
    except ImportError:
        import tensorflow  # noqa: F401
    else:
        import_tensorflow()


# --- video and frames -----------------------------------------------------------------------
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


# --- line 4: one face ---------------------------------------------------------------------------
def cnn_only(model: Path, le: Path, dst: Path) -> tuple[Path, Path]:
    """A copy of the model whose sidecar fuses nothing: LivenessClassifier then scores with the CNN."""
    from liveness.artifacts import read_sidecar, write_sidecar

    dst.mkdir(parents=True, exist_ok=True)
    model_copy, le_copy = dst / model.name, dst / le.name
    shutil.copyfile(model, model_copy)
    shutil.copyfile(le, le_copy)
    sidecar = read_sidecar(model)
    sidecar.pop("format", None)
    sidecar.pop("lbp", None)
    write_sidecar(model_copy, sidecar)
    return model_copy, le_copy


def describe_classifier(clf) -> str:
    weight = float(getattr(clf, "lbp_weight", 0.0) or 0.0)
    if weight >= 1:
        return "colour-LBP only"
    if weight > 0:
        return f"CNN ({clf.backend}) fused with colour-LBP (weight {weight:g})"
    return f"CNN, backend {clf.backend}"


def bench_per_face(clf_demo, clf_cv, clf_tf, faces: list, repeats: int, calls: tuple[int, int, int, int, int]) -> list[Row]:
    """Per-face time of LivenessClassifier.scores as the demo calls it, of the CNN's two
    backends, and of the tutorial's model.predict on one face."""
    import numpy as np

    from liveness.dataset import prepare_faces

    model, size = clf_cv.model, clf_cv.input_size
    state = {"i": 0}

    def block(fn: Callable[[list], object], n_calls: int, per_call: int = 1) -> Callable[[], float]:
        def task() -> float:
            i = state["i"]
            batches = [[faces[(i + k * per_call + m) % len(faces)] for m in range(per_call)] for k in range(n_calls)]
            t0 = time.perf_counter()
            for batch in batches:
                fn(batch)
            seconds = time.perf_counter() - t0
            state["i"] = (i + n_calls * per_call) % len(faces)
            return seconds / (n_calls * per_call)  # per face
        return task

    def tutorial(batch: list) -> object:
        # The tutorial: resize the crop, make it a float array with a batch axis, model.predict.
        # Same resize and channel order as ours, so only the inference call differs.
        return model.predict(prepare_faces(batch, size).astype(np.float32), verbose=0)

    tasks = {
        "demo": block(clf_demo.scores, calls[0]),
        "cv": block(clf_cv.scores, calls[1]),
        "tf": block(clf_tf.scores, calls[2]),
        "predict": block(tutorial, calls[3]),
        "demo4": block(clf_demo.scores, calls[4], per_call=4),
    }
    times = round_robin(tasks, repeats=repeats, warmup=1)
    ms = {k: [1000 * v for v in vals] for k, vals in times.items()}
    how = describe_classifier(clf_demo)
    return [
        Row("4a", f"liveness per face, ours as the demo scores ({how})", "ms/face", ms["demo"],
            higher_is_better=False, extra={"scorer": how}),
        Row("4b", "liveness per face, ours, CNN alone: OpenCV DNN on ONNX", "ms/face", ms["cv"],
            ratio=paired_ratio(ms["predict"], ms["cv"]), ratio_of="4d/4b (x faster)", higher_is_better=False,
            extra={"backend": clf_cv.backend}),
        Row("4c", "liveness per face, ours, CNN alone: tf.function", "ms/face", ms["tf"],
            ratio=paired_ratio(ms["predict"], ms["tf"]), ratio_of="4d/4c (x faster)", higher_is_better=False,
            extra={"backend": clf_tf.backend}),
        Row("4d", "liveness per face, tutorial: model.predict(one face), CNN", "ms/face", ms["predict"],
            ratio=paired_ratio(ms["predict"], ms["demo"]), ratio_of="4d/4a (x faster)", higher_is_better=False),
        Row("4e", "liveness per face, ours as the demo, batch of 4 faces", "ms/face", ms["demo4"],
            ratio=paired_ratio(ms["demo"], ms["demo4"]), ratio_of="4a/4e (x faster)", higher_is_better=False),
    ]


# --- lines 1, 2, 3, 5: one round-robin ----------------------------------------------------------
def bench_video_lines(inputs: Inputs, detector, classifier, repeats: int, work: Path) -> list[Row]:
    """Lines 1, 2, 3 and 5. Two things compared always run back to back, in alternating order.

    Lines 1-3 share one pass over the file per round: each frame is decoded once, then
    detected and run through the demo's pipeline (alternating which goes first), each
    timed on its own; line 2 = decode + detect, line 3 = decode + pipeline. Machine load
    that shifts over seconds thus hits 2 and 3 alike. gather_examples.run is one call
    over the whole video: each run is paired with a file pass right before or after it.
    """
    import cv2

    import gather_examples
    import liveness_demo
    from liveness.sources import iter_frames

    video, n = inputs.video, inputs.frames
    padding = liveness_demo.sidecar_padding(classifier.sidecar)
    faces = {"n": 0, "frames": 0}
    gathered: dict[int, list[dict]] = {1: [], 4: []}

    def interleaved_pass(r: int) -> dict[str, float]:
        pipe = liveness_demo.LivenessPipeline(detector, classifier, padding=padding)  # fresh tracks each round
        spent = {"decode": 0.0, "detect": 0.0, "pipeline": 0.0}
        cap = cv2.VideoCapture(str(video))
        for i in range(n):
            t0 = time.perf_counter()
            ok, frame = cap.read()
            spent["decode"] += time.perf_counter() - t0
            if not ok or frame is None:
                raise RuntimeError(f"{video} ended after {i} frames, expected {n}")
            for what in (("detect", "pipeline") if (i + r) % 2 == 0 else ("pipeline", "detect")):
                t0 = time.perf_counter()
                if what == "detect":
                    detector.detect(frame)
                else:
                    results, _ = pipe.process(frame, draw=True, fps=None)
                spent[what] += time.perf_counter() - t0
            faces["n"] += len(results)
            faces["frames"] += 1
        cap.release()
        return spent

    def gather(skip: int) -> float:
        out = Path(tempfile.mkdtemp(prefix=f"gather_skip{skip}_", dir=work))  # fresh: nothing is "already there"
        try:
            with quiet():
                t0 = time.perf_counter()
                _, summaries = gather_examples.run(input=video, output=out, skip=skip, max_frames=n, progress=False)
                seconds = time.perf_counter() - t0
        finally:
            shutil.rmtree(out, ignore_errors=True)
        s = summaries[0]
        if s.frames_read != n:
            raise RuntimeError(f"gather --skip {skip} read {s.frames_read} frames, expected {n}")
        gathered[skip].append({"searched": s.frames_searched, "saved": s.faces_saved, "loop_s": s.seconds})
        return seconds

    def frames4() -> float:
        # gather_examples' frame loop with --skip 4 and no detection: 3 of 4 frames grabbed, not decoded
        t0 = time.perf_counter()
        cap = cv2.VideoCapture(str(video))
        got = sum(1 for _ in zip(range(n), iter_frames(cap, 4)))
        cap.release()
        seconds = time.perf_counter() - t0
        if got != n:
            raise RuntimeError(f"iter_frames gave {got} frames, expected {n}")
        return seconds

    def pair(r: int, a: Callable[[], float], b: Callable[[], float]) -> tuple[float, float]:
        if r % 2:
            tb = b()
            return a(), tb
        ta = a()
        return ta, b()

    t = {k: [] for k in ("decode", "detect", "pipeline", "gather1", "detect_g", "gather4", "decode_g", "frames4", "decode_f")}
    for r in range(1 + repeats):  # round 0: warm-up, discarded
        spent = interleaved_pass(r)
        g1, dg = pair(r, lambda: gather(1), lambda: timed_file_pass(video, n, detector.detect))
        g4, d4 = pair(r, lambda: gather(4), lambda: timed_file_pass(video, n, None))
        f4, df = pair(r, frames4, lambda: timed_file_pass(video, n, None))
        if r == 0:
            continue
        t["decode"].append(spent["decode"])
        t["detect"].append(spent["decode"] + spent["detect"])
        t["pipeline"].append(spent["decode"] + spent["pipeline"])
        for k, v in (("gather1", g1), ("detect_g", dg), ("gather4", g4), ("decode_g", d4), ("frames4", f4), ("decode_f", df)):
            t[k].append(v)
    fps = {k: [n / x for x in v] for k, v in t.items()}
    ms = lambda k: 1000 * statistics.median(t[k]) / n  # noqa: E731
    return [
        Row("1", "decode only (read every frame of the file)", "frames/s", fps["decode"]),
        Row("2", "detector only: decode + SSD on every frame", "frames/s", fps["detect"],
            extra={"ms_per_frame_median": ms("detect")}),
        Row("3", "demo pipeline headless: decode + detect + liveness + track + annotate", "frames/s", fps["pipeline"],
            ratio=paired_ratio(fps["pipeline"], fps["detect"]), ratio_of="3/2",
            extra={"faces_per_frame": faces["n"] / max(1, faces["frames"]), "ms_per_frame_median": ms("pipeline"),
                   "scorer": describe_classifier(classifier)}),
        Row("5a", "gather_examples --skip 1: frames read/s (whole run() call)", "frames/s", fps["gather1"],
            ratio=paired_ratio(fps["gather1"], fps["detect_g"]), ratio_of="5a/2 (paired)",
            extra={"crops_saved_per_run": gathered[1][-1]["saved"], "paired_detector_fps": fps["detect_g"]}),
        Row("5b", "gather_examples --skip 4: frames read/s (whole run() call)", "frames/s", fps["gather4"],
            ratio=paired_ratio(fps["gather4"], fps["decode_g"]), ratio_of="5b/1 (paired)",
            extra={"frames_searched_per_run": gathered[4][-1]["searched"], "paired_decode_fps": fps["decode_g"]}),
        Row("5c", "gather's frame loop, --skip 4, no detection (grab 3, decode 1)", "frames/s", fps["frames4"],
            ratio=paired_ratio(fps["frames4"], fps["decode_f"]), ratio_of="5c/1 (paired)",
            extra={"paired_decode_fps": fps["decode_f"]}),
    ]


# --- line 6: training throughput ------------------------------------------------------------------
def bench_training(crops: Path, group_pattern: str | None, repeats: int, seed: int = 42) -> list[Row]:
    """One epoch at a time, the three input pipelines alternating, into one compiled model.

    One model for all three: the same train step (traced once, in the warm-up round),
    so the input pipeline is the only difference. Its weights keep learning; speed does
    not care.
    """
    import keras
    import numpy as np

    from liveness.dataset import check_classes, find_samples, load_images
    from liveness.models import build_model
    from liveness.training import TrainConfig, class_weights, make_augmenter, make_dataset, seed_everything

    cfg = TrainConfig(seed=seed)
    samples = find_samples([crops], None, group_pattern)
    labels = check_classes(samples)
    x, kept = load_images(samples, cfg.input_size)
    y = np.array([labels.index(s.label) for s in kept], dtype=np.int64)
    onehot = keras.utils.to_categorical(y, len(labels))
    weights = class_weights(y, len(labels))
    seed_everything(cfg.seed)  # as liveness.training.fit does: seeds and deterministic ops
    model = build_model(cfg.arch, input_size=cfg.input_size, classes=len(labels))
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=cfg.lr), loss=keras.losses.CategoricalCrossentropy(), metrics=["accuracy"])

    class EpochTimer(keras.callbacks.Callback):
        seconds = math.nan

        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds = time.perf_counter() - self.t0

    def epoch(data, **kw) -> Callable[[], float]:
        def task() -> float:
            timer = EpochTimer()
            model.fit(data, epochs=1, class_weight=weights, verbose=0, callbacks=[timer], **kw)
            return timer.seconds
        return task

    # As liveness.training.fit builds them: shuffled, batched, cast to float32, augmented.
    ds_aug = make_dataset(x, onehot, cfg.batch_size, shuffle_seed=cfg.seed, augmenter=make_augmenter(cfg.seed))
    ds_plain = make_dataset(x, onehot, cfg.batch_size, shuffle_seed=cfg.seed)
    tasks = {
        "aug": epoch(ds_aug, shuffle=False),
        "plain": epoch(ds_plain, shuffle=False),
        "numpy": epoch(x.astype(np.float32), y=onehot, batch_size=cfg.batch_size, shuffle=True),
    }
    times = round_robin(tasks, repeats=repeats, warmup=1)
    ips = {k: [len(x) / t for t in v] for k, v in times.items()}
    extra = {"images": len(x), "batch_size": cfg.batch_size, "input_size": cfg.input_size, "arch": cfg.arch}
    return [
        Row("6a", "training: train.py's tf.data + augmentation, 1 epoch", "images/s", ips["aug"],
            ratio=paired_ratio(ips["aug"], ips["numpy"]), ratio_of="6a/6c", extra=extra),
        Row("6b", "training: train.py's tf.data, --no-augment, 1 epoch", "images/s", ips["plain"],
            ratio=paired_ratio(ips["plain"], ips["numpy"]), ratio_of="6b/6c", extra=extra),
        Row("6c", "training baseline: model.fit on in-memory NumPy arrays", "images/s", ips["numpy"], extra=extra),
    ]


# --- the run ----------------------------------------------------------------------------------
def run(
    *,
    video: str | Path | None = None,
    frames: int | None = None,
    repeats: int | None = None,
    quick: bool = False,
    json_path: str | Path = DEFAULT_JSON,
    model: str | Path | None = None,
    le: str | Path | None = None,
    data: str | Path = SHARED_DATA,
    startup_runs: int | None = None,
) -> dict:
    """Measure every line and write the JSON; returns what was written."""
    defaults = QUICK if quick else FULL
    frames = frames if frames is not None else defaults["frames"]
    repeats = repeats if repeats is not None else defaults["repeats"]
    startup_runs = startup_runs if startup_runs is not None else defaults["startup_runs"]
    if frames < 2:
        raise UserError(f"--frames must be 2 or more, got {frames}")
    if repeats < 1:
        raise UserError(f"--repeats must be 1 or more, got {repeats}")
    if startup_runs < 1:
        raise UserError(f"--startup-runs must be 1 or more, got {startup_runs}")
    if (model is None) != (le is None):
        raise UserError("give --model and --le together (or neither, to train a small model here)")
    json_path = Path(json_path)
    ensure_writable_dir(json_path.parent, "folder of --json")
    ensure_parent_dir(json_path, "--json")
    data = Path(data)
    phase = Phases()
    machine = machine_info()

    with tempfile.TemporaryDirectory(prefix="liveness_bench_") as tmp_name:
        tmp = Path(tmp_name)
        phase("prepare", "preparing the video and the training crops")
        inputs = prepare_inputs(
            video=Path(video) if video else None, data=data, frames=frames, tmp=tmp,
            crops_per_folder=defaults["crops_per_folder"],
        )
        frames = inputs.frames
        LOGGER.info("video: %s; %d frames", inputs.video_source, frames)

        # train.py in a fresh process: line 7's training memory, and the model when none is given.
        # Meanwhile this process imports TensorFlow (not timed).
        trained = tmp / "trained"
        trained.mkdir()
        phase("train_child", "training a LivenessNet for %d epoch(s) with train.py (a child process) on %s", defaults["epochs"], inputs.crops)
        train_child = start_child(ROOT / "train.py", train_args(inputs.crops, trained, defaults["epochs"], inputs.group_pattern))
        try:
            _import_tensorflow()  # seconds: overlapped with the child

            from liveness.artifacts import LivenessClassifier
            from liveness.detector import FaceDetector
        except BaseException:
            kill_child(train_child)
            raise
        train_result = finish_child(train_child)
        if model is None:
            model, le = trained / "liveness.keras", trained / "le.pickle"
        model, le = Path(model), Path(le)
        machine.update(_library_versions())

        phase("load_models", "loading the detector and the classifier (OpenCV DNN and tf.function backends)")
        detector = FaceDetector()
        with quiet(), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # tf2onnx on numpy 2: not ours to fix
            clf_demo = LivenessClassifier(model, le)  # as liveness_demo.py builds it (--backend auto)
            cnn_model, cnn_le = cnn_only(model, le, tmp / "cnn_only")
            clf_cv = LivenessClassifier(cnn_model, cnn_le, backend="opencv")
            clf_tf = LivenessClassifier(cnn_model, cnn_le, backend="tf")
        LOGGER.info("the demo scores faces with: %s", describe_classifier(clf_demo))
        rows: list[Row] = []

        phase("lines_1235", "lines 1, 2, 3, 5: decode / detector / demo pipeline / gather, %d round(s) of %d frames", repeats, frames)
        video_rows = bench_video_lines(inputs, detector, clf_demo, repeats, tmp)
        rows += [r for r in video_rows if r.line[0] in "123"]

        phase("line_4", "line 4: liveness per face")
        from liveness.detector import crop_faces

        faces = [crop for f in read_frames(inputs.video, frames) for _, crop in crop_faces(f, detector.detect(f), 0.0)]
        if not faces:
            raise UserError(f"the detector finds no face in {inputs.video}: line 4 needs faces")
        rows += bench_per_face(clf_demo, clf_cv, clf_tf, faces, repeats, defaults["face_calls"])
        rows += [r for r in video_rows if r.line[0] == "5"]

        phase("line_7", "line 7: liveness_demo.py start-up and memory, %d fresh process(es)", startup_runs)
        demo_runs = [run_demo_child(inputs.video, model, le, frames) for _ in range(startup_runs)]
        for d in demo_runs:
            if d["json_lines"] != frames:
                raise RuntimeError(f"liveness_demo.py wrote {d['json_lines']} JSON lines for {frames} frames")
        demo_extra = {
            k: [d[k] for d in demo_runs if k in d]
            for k in ("wall_s", "demo_mean_fps", "demo_first_frame_after_run_start_s")
        }
        # Line 6 last: seed_everything turns on deterministic ops in this process.
        phase("line_6", "line 6: training throughput")
        rows += bench_training(inputs.crops, inputs.group_pattern, repeats)
        rows += [
            Row("7a", "start-up: launch liveness_demo.py -> first processed frame", "s",
                [d["first_frame_s"] for d in demo_runs], higher_is_better=False, extra=demo_extra),
            Row("7b", f"peak resident memory, liveness_demo.py ({frames} frames)", "MiB",
                [d["peak_rss_mib"] for d in demo_runs], higher_is_better=False),
            Row("7c", f"peak resident memory, train.py ({defaults['epochs']} epoch(s), {inputs.crops.name})", "MiB",
                [train_result["peak_rss_mib"]], higher_is_better=False, extra={"wall_s": train_result["wall_s"]}),
        ]
    phase(None)
    rows.sort(key=lambda r: (r.line[0], r.line))
    machine["load_average_end"] = _loadavg()
    results = {
        "benchmark": "liveness suite, benchmarks/bench_pipeline.py",
        "command": " ".join(["python", "benchmarks/bench_pipeline.py", *sys.argv[1:]]) if sys.argv[0].endswith("bench_pipeline.py") else None,
        "quick": quick,
        "settings": {
            "video": inputs.video_source, "frames": frames, "repeats": repeats, "warmup_rounds": 1,
            "startup_runs": startup_runs, "synthetic": inputs.synthetic,
            "model": "trained here by train.py" if model.parent == trained else str(model),
            "demo_scorer": describe_classifier(clf_demo),
            "training_crops": str(inputs.crops),
        },
        "machine": machine,
        "seconds_total": round(phase.total, 1),
        "phase_seconds": phase.seconds,
        "lines": [r.as_json() for r in rows],
    }
    print_table(rows, results)
    atomic_write_text_json(json_path, results)
    LOGGER.info("wrote %s (%.0f s in all)", json_path, results["seconds_total"])
    return results


def atomic_write_text_json(path: Path, data: dict) -> None:
    from liveness.fileio import atomic_write_text

    atomic_write_text(path, json.dumps(data, indent=2, default=float, allow_nan=True) + "\n")


def _num(v: float) -> str:
    if v is None or not math.isfinite(v):
        return "-"
    a = abs(v)
    return f"{v:.0f}" if a >= 100 else f"{v:.1f}" if a >= 10 else f"{v:.2f}" if a >= 1 else f"{v:.3f}"


def print_table(rows: list[Row], results: dict) -> None:
    s, m = results["settings"], results["machine"]
    print(f"liveness benchmark{' (--quick: checks the machinery; figures not for publishing)' if results['quick'] else ''}")
    print(f"video: {s['video']}; {s['frames']} frames; median of {s['repeats']} rounds after 1 warm-up round")
    print(f"model: {s['model']}; the demo scores faces with {s['demo_scorer']}")
    header = f"{'line':<4} {'what':<72} {'min':>7} {'median':>7} {'max':>7} {'unit':<9} {'ratio':>7} {'of':<18} {'target':<7} verdict"
    print(header)
    print("-" * len(header))
    for r in rows:
        lo, med, hi = spread(r.runs)
        target = f"{r.target[0]}{r.target[1]:g}" if r.target else ""
        print(
            f"{r.line:<4} {r.what[:72]:<72} {_num(lo):>7} {_num(med):>7} {_num(hi):>7} {r.unit:<9} "
            f"{_num(r.ratio) if r.ratio is not None else '':>7} {r.ratio_of:<18} {target:<7} {r.verdict}"
        )
    versions = ", ".join(f"{k} {m[k]}" for k in ("python", "numpy", "opencv", "tensorflow", "keras", "tf2onnx") if k in m)
    print(
        f"machine: {m['cpu_count']} CPUs ({m['cpus_usable']} usable, {m['cpu_model']}), {m.get('memory_gib', '?')} GiB, "
        f"{m['platform']}; load average {m['load_average_start']} -> {m['load_average_end']}"
    )
    print(f"versions: {versions}; measured {m['date']}; {results['seconds_total']:.0f} s in all")


def parse_opt(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--video", default=None, help="video to measure on, used as it is (default: a 640x480 version of a shared video)")
    ap.add_argument("--frames", type=int, default=None, help=f"frames per run (default {FULL['frames']}, --quick {QUICK['frames']})")
    ap.add_argument("--repeats", type=int, default=None, help=f"measured rounds after the warm-up (default {FULL['repeats']}, --quick {QUICK['repeats']})")
    ap.add_argument("--startup-runs", type=int, default=None, help=f"fresh demo processes for line 7 (default {FULL['startup_runs']}, --quick {QUICK['startup_runs']})")
    ap.add_argument("--quick", action="store_true", help="few frames and rounds: under a minute, checks the benchmark still runs")
    ap.add_argument("--json", default=str(DEFAULT_JSON), help="where to write every figure")
    ap.add_argument("--model", default=None, help="trained model (.keras); default: train a small one here")
    ap.add_argument("--le", default=None, help="its label encoder (with --model)")
    ap.add_argument("--data", default=str(SHARED_DATA), help="the shared data folder (videos/, crops/); synthetic samples when absent")
    ap.add_argument("-v", "--verbose", action="store_true")
    return ap.parse_args(argv)


def main(opt: argparse.Namespace) -> int:
    setup_logging(opt.verbose)
    run(
        video=opt.video, frames=opt.frames, repeats=opt.repeats, quick=opt.quick, json_path=opt.json,
        model=opt.model, le=opt.le, data=opt.data, startup_runs=opt.startup_runs,
    )
    return 0


if __name__ == "__main__":
    cli_main(lambda: main(parse_opt()))
