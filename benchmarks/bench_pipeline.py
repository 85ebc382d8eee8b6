"""How fast the liveness suite runs on this CPU, measured as ratios within one run.

Usage:
    python benchmarks/bench_pipeline.py                  # 3-4 minutes on 2 cores
    python benchmarks/bench_pipeline.py --quick          # about a minute: checks the machinery only
    python benchmarks/bench_pipeline.py --video my.mp4 --frames 100 --repeats 7
    python benchmarks/bench_pipeline.py --model output/liveness
    make bench ARGS="--quick"

Prints a table on stdout and writes every run's figures to --json (default
output/benchmark.json). Nothing here asserts a time: a figure off its target prints
"below target". On a shared, busy machine absolute figures drift; the ratios hold,
because the two things compared run alternately (A, B, A, B, ...) on the same frames
and each ratio is the median of the per-round ratios (benchmarks/harness.py).

The lines, all on the same video and the same first --frames frames (640x480):
  1   decode only: open the file, read every frame, release it
  2   detector only: 1 + res10 SSD face detection on every frame
  3   the demo's pipeline headless: 1 + Pipeline.process(frame) + Pipeline.annotate
      (detection, liveness of every face, tracking, annotation; no window, no output
      file) -> ratio to 2: both decode the same file, so decoding is in both
  4a  liveness per face as the demo scores it: LivenessModel.score([face]) of the
      demo's model (train.py's default scorer, colour LBP, unless --model says otherwise)
  4b, 4c  the CNN alone, OpenCV DNN on its ONNX export / tf.function
  4d  the tutorial: model.predict on one face (same resize and colour order as ours)
      -> ratio 4d/4a (target: ours at least 25x faster)
  4e  as 4a, a batch of 4 faces per call, per face
  4f  liveness per face as the demo runs it: the seconds line 3b's pipeline spends in
      LivenessModel.score over the faces it returns (a face far from the threshold is
      scored on every --score-every-th frame, its score carried between: liveness/pipeline.py)
  5a, 5b  gather_examples.run(--skip 1 / --skip 4), frames read per second of the
      whole call (fresh output folder each time) -> ratio to 2 / to 1
  5c  gather's frame loop with --skip 4 and no detection: FrameSource(skip=4), 3 of 4
      frames grabbed, not decoded -> ratio to 1: skipped frames must cost about as
      little as decoding
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
synthetic samples (liveness/synthetic.py). The models: train.py --scorer fusion for a
couple of epochs in a temporary folder (accuracy does not matter to speed; --quick
trains on a dozen crops per folder); that run is also line 7's training memory. Its
CNN is lines 4b-4d. The demo's model, unless --model is given, is train.py's default
scorer (colour LBP) trained on the same crops in a second child process. Timings are medians
of --repeats rounds after one warm-up round.
"""

from __future__ import annotations

import argparse
import logging
import math
import re
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as `python benchmarks/bench_pipeline.py`
    sys.path.insert(0, str(ROOT))

from benchmarks.harness import (  # noqa: E402
    Phases, Row, atomic_write_text_json, finish_child, import_tensorflow, kill_child, library_versions, loadavg,
    machine_info, paired_ratio, print_table, quiet, round_robin, start_child,
)
from benchmarks.bench_inputs import Inputs, prepare_inputs, read_frames, timed_file_pass, two_face_clip  # noqa: E402
from benchmarks.bench_training import bench_training  # noqa: E402
from liveness.cli import UserError, cli_main, ensure_parent_dir, ensure_writable_dir, positive_int, ranged, setup_logging  # noqa: E402

LOGGER = logging.getLogger("liveness")

DEFAULT_JSON = ROOT / "output" / "benchmark.json"
SHARED_DATA = ROOT.parent / "shared" / "data"

# Per mode: frames per run, measured rounds, fresh demo processes (line 7), epochs of the
# trained model, calls per timed block in line 4 (demo / OpenCV DNN / tf / predict / demo x4), and
# training images per subject and class (None: all the shared crops; --quick: a few).
FULL = dict(frames=60, repeats=5, startup_runs=3, epochs=2, face_calls=(200, 200, 100, 8, 60), crops_per_folder=None)
QUICK = dict(frames=6, repeats=1, startup_runs=1, epochs=1, face_calls=(20, 20, 10, 2, 5), crops_per_folder=12)

TARGETS = {  # ratio targets of the issue; rows without one are informational
    "3": (">=", 0.90),
    "3b": (">=", 2.0),  # detect sometimes, track always: at least twice the detector's frame rate
    "3c": (">=", 2.0),  # the same on a multi-face clip
    "4d": (">=", 25.0),  # the tutorial's model.predict over ours: at least 25x slower
    "5c": (">=", 0.90),  # a skipped frame costs about what decoding it costs
}


def row(line: str, *args, **kwargs) -> Row:
    """A table row with its target, if the issue set one."""
    return Row(line, *args, target=TARGETS.get(line), **kwargs)


# --- child processes (line 7) -------------------------------------------------------------
def run_demo_child(video: Path, model: Path, frames: int) -> dict:
    """liveness_demo.py --json in a fresh process: launch -> first JSON line, and peak RSS."""
    args = ["--input", video, "--model", model, "--no-display", "--json", "--max-frames", frames]
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


def train_args(dataset: Path, model: Path, epochs: int | None, group_pattern: str | None) -> list[str]:
    """train.py fusing its CNN with colour LBP (both scorers in one folder), a few epochs;
    with epochs None, train.py's default scorer (colour LBP, its own threshold)."""
    args = ["--dataset", str(dataset), "--model", str(model)]
    args += ["--scorer", "fusion", "--epochs", str(epochs)] if epochs is not None else []
    return args + (["--group-pattern", group_pattern] if group_pattern else [])


# --- video and frames -----------------------------------------------------------------------
def describe_model(model) -> str:
    if model.scorer == "lbp":
        return "colour-LBP only"
    runner = getattr(model, "_runner", None)
    backend = runner.backend if runner is not None else model.backend
    if model.scorer == "fusion":
        return f"CNN ({backend}) fused with colour-LBP (weight {model.lbp_weight:g})"
    return f"CNN, backend {backend}"


# --- line 4: one face ---------------------------------------------------------------------------
def bench_per_face(demo_model, cnn_cv, cnn_tf, faces: list, repeats: int, calls: tuple[int, int, int, int, int]) -> list[Row]:
    """Per-face time of LivenessModel.score as the demo calls it, of the CNN's two
    backends, and of the tutorial's model.predict on one face."""
    import numpy as np

    from liveness.runtime import prepare_faces

    keras_model, size = cnn_cv.cnn, cnn_cv.input_size
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
        return keras_model.predict(prepare_faces(batch, size).astype(np.float32), verbose=0)

    tasks = {
        "demo": block(demo_model.score, calls[0]),
        "cv": block(cnn_cv.cnn_probabilities, calls[1]),
        "tf": block(cnn_tf.cnn_probabilities, calls[2]),
        "predict": block(tutorial, calls[3]),
        "demo4": block(demo_model.score, calls[4], per_call=4),
    }
    times = round_robin(tasks, repeats=repeats, warmup=1)
    ms = {k: [1000 * v for v in vals] for k, vals in times.items()}
    how = describe_model(demo_model)
    return [
        row("4a", f"liveness per face, ours as the demo scores ({how})", "ms/face", ms["demo"],
            higher_is_better=False, extra={"scorer": how}),
        row("4b", "liveness per face, ours, CNN alone: OpenCV DNN on ONNX", "ms/face", ms["cv"],
            ratio=paired_ratio(ms["predict"], ms["cv"]), ratio_of="4d/4b (x faster)", higher_is_better=False,
            extra={"backend": cnn_cv._runner.backend}),
        row("4c", "liveness per face, ours, CNN alone: tf.function", "ms/face", ms["tf"],
            ratio=paired_ratio(ms["predict"], ms["tf"]), ratio_of="4d/4c (x faster)", higher_is_better=False,
            extra={"backend": cnn_tf._runner.backend}),
        row("4d", "liveness per face, tutorial: model.predict(one face), CNN", "ms/face", ms["predict"],
            ratio=paired_ratio(ms["predict"], ms["demo"]), ratio_of="4d/4a (x faster)", higher_is_better=False),
        row("4e", "liveness per face, ours as the demo, batch of 4 faces", "ms/face", ms["demo4"],
            ratio=paired_ratio(ms["demo"], ms["demo4"]), ratio_of="4a/4e (x faster)", higher_is_better=False),
    ]


# --- lines 1, 2, 3, 5: one round-robin ----------------------------------------------------------
class TimedScore:
    """The model, with the seconds spent in its `score` counted (line 4f)."""

    def __init__(self, model) -> None:
        self._model = model
        self.seconds = 0.0

    def score(self, faces):
        t0 = time.perf_counter()
        try:
            return self._model.score(faces)
        finally:
            self.seconds += time.perf_counter() - t0

    def __getattr__(self, name):
        return getattr(self._model, name)


def bench_two_faces(clip: Path, detector, model, repeats: int) -> list[Row]:
    """Line 3c: the demo's default pipeline against the detector alone, on a two-face clip,
    frame by frame in alternating order (decoding counted in both, as in lines 2 and 3)."""
    import cv2

    from liveness.pipeline import Pipeline

    frames = read_frames(clip, 10_000)
    t = {"decode": [], "detect": [], "tracked": [], "faces": []}
    for r in range(1 + repeats):
        tracked = Pipeline(model, detector)
        spent = {"decode": 0.0, "detect": 0.0, "tracked": 0.0}
        cap = cv2.VideoCapture(str(clip))
        faces = 0
        for i in range(len(frames)):
            t0 = time.perf_counter()
            ok, frame = cap.read()
            spent["decode"] += time.perf_counter() - t0
            for what in (("detect", "tracked") if (i + r) % 2 == 0 else ("tracked", "detect")):
                t0 = time.perf_counter()
                if what == "detect":
                    detector.detect(frame)
                else:
                    results = tracked.process(frame)
                    tracked.annotate(frame, results)
                    faces += len(results)
                spent[what] += time.perf_counter() - t0
        cap.release()
        if r:
            t["detect"].append(len(frames) / (spent["decode"] + spent["detect"]))
            t["tracked"].append(len(frames) / (spent["decode"] + spent["tracked"]))
            t["faces"].append(faces / len(frames))
    return [
        row("3c", "two-face clip (1280x480): the demo's default pipeline (SSD sometimes, flow between)", "frames/s", t["tracked"],
            ratio=paired_ratio(t["tracked"], t["detect"]), ratio_of="3c/(decode + SSD on every frame of the clip)",
            extra={"faces_per_frame": statistics.median(t["faces"]), "detector_fps": statistics.median(t["detect"])}),
    ]


def bench_video_lines(inputs: Inputs, detector, model, repeats: int, work: Path) -> list[Row]:
    """Lines 1, 2, 3 and 5. Two things compared always run back to back, in alternating order.

    Lines 1-3 share one pass over the file per round: each frame is decoded once, then
    detected and run through the demo's pipeline (alternating which goes first), each
    timed on its own; line 2 = decode + detect, line 3 = decode + pipeline. Machine load
    that shifts over seconds thus hits 2 and 3 alike. gather_examples.run is one call
    over the whole video: each run is paired with a file pass right before or after it.
    """
    import cv2

    import gather_examples
    from liveness.pipeline import Pipeline
    from liveness.sources import FrameSource

    video, n = inputs.video, inputs.frames
    faces = {"n": 0, "frames": 0}
    scoring = {"ms_per_face": [], "scored": [], "ms_per_scored_face": []}  # line 4f, from the tracked pipeline
    gathered: dict[int, list[dict]] = {1: [], 4: []}

    def interleaved_pass(r: int) -> dict[str, float]:
        # fresh tracks each round; the model's own padding
        pipe = Pipeline(model, detector, detect_every=1)  # the SSD on every frame
        timed = TimedScore(model)
        tracked = Pipeline(timed, detector)  # the demo's default: the SSD sometimes, optical flow between
        spent = {"decode": 0.0, "detect": 0.0, "pipeline": 0.0, "tracked": 0.0}
        cap = cv2.VideoCapture(str(video))
        for i in range(n):
            t0 = time.perf_counter()
            ok, frame = cap.read()
            spent["decode"] += time.perf_counter() - t0
            if not ok or frame is None:
                raise RuntimeError(f"{video} ended after {i} frames, expected {n}")
            order = ("detect", "pipeline", "tracked")
            for what in (order if (i + r) % 2 == 0 else order[::-1]):
                t0 = time.perf_counter()
                if what == "detect":
                    detector.detect(frame)
                elif what == "pipeline":
                    results = pipe.process(frame)
                    pipe.annotate(frame, results)
                else:
                    tracked.annotate(frame, tracked.process(frame))
                spent[what] += time.perf_counter() - t0
            faces["n"] += len(results)
            faces["frames"] += 1
        cap.release()
        if r and tracked.face_frames:
            scoring["ms_per_face"].append(1000 * timed.seconds / tracked.face_frames)
            scoring["scored"].append(tracked.faces_scored / tracked.face_frames)
            scoring["ms_per_scored_face"].append(1000 * timed.seconds / max(1, tracked.faces_scored))
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
        with FrameSource(video, skip=4) as source:
            got = sum(1 for _ in zip(range(n), source))
        seconds = time.perf_counter() - t0
        if got != n:
            raise RuntimeError(f"FrameSource gave {got} frames, expected {n}")
        return seconds

    def pair(r: int, a: Callable[[], float], b: Callable[[], float]) -> tuple[float, float]:
        if r % 2:
            tb = b()
            return a(), tb
        ta = a()
        return ta, b()

    t = {k: [] for k in ("decode", "detect", "pipeline", "tracked", "gather1", "detect_g", "gather4", "decode_g", "frames4", "decode_f")}
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
        t["tracked"].append(spent["decode"] + spent["tracked"])
        for k, v in (("gather1", g1), ("detect_g", dg), ("gather4", g4), ("decode_g", d4), ("frames4", f4), ("decode_f", df)):
            t[k].append(v)
    fps = {k: [n / x for x in v] for k, v in t.items()}
    ms = lambda k: 1000 * statistics.median(t[k]) / n  # noqa: E731
    return [
        row("1", "decode only (read every frame of the file)", "frames/s", fps["decode"]),
        row("2", "detector only: decode + SSD on every frame", "frames/s", fps["detect"],
            extra={"ms_per_frame_median": ms("detect")}),
        row("3", "demo pipeline headless, SSD on every frame: decode + detect + liveness + track + annotate", "frames/s", fps["pipeline"],
            ratio=paired_ratio(fps["pipeline"], fps["detect"]), ratio_of="3/2",
            extra={"faces_per_frame": faces["n"] / max(1, faces["frames"]), "ms_per_frame_median": ms("pipeline"),
                   "scorer": describe_model(model)}),
        row("3b", "demo pipeline as the demo runs by default: the SSD sometimes (--detect-every), optical flow between",
            "frames/s", fps["tracked"], ratio=paired_ratio(fps["tracked"], fps["detect"]), ratio_of="3b/2",
            extra={"ms_per_frame_median": ms("tracked")}),
        row("4f", "liveness per face as the demo runs it: time in LivenessModel.score over line 3b's faces", "ms/face",
            scoring["ms_per_face"], higher_is_better=False,
            extra={"fraction_scored": statistics.median(scoring["scored"]) if scoring["scored"] else None,
                   "ms_per_scored_face": statistics.median(scoring["ms_per_scored_face"]) if scoring["scored"] else None}),
        row("5a", "gather_examples --skip 1: frames read/s (whole run() call)", "frames/s", fps["gather1"],
            ratio=paired_ratio(fps["gather1"], fps["detect_g"]), ratio_of="5a/2 (paired)",
            extra={"crops_saved_per_run": gathered[1][-1]["saved"], "paired_detector_fps": fps["detect_g"]}),
        row("5b", "gather_examples --skip 4: frames read/s (whole run() call)", "frames/s", fps["gather4"],
            ratio=paired_ratio(fps["gather4"], fps["decode_g"]), ratio_of="5b/1 (paired)",
            extra={"frames_searched_per_run": gathered[4][-1]["searched"], "paired_decode_fps": fps["decode_g"]}),
        row("5c", "gather's frame loop, --skip 4, no detection (grab 3, decode 1)", "frames/s", fps["frames4"],
            ratio=paired_ratio(fps["frames4"], fps["decode_f"]), ratio_of="5c/1 (paired)",
            extra={"paired_decode_fps": fps["decode_f"]}),
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
    data: str | Path = SHARED_DATA,
    startup_runs: int | None = None,
) -> dict:
    """Measure every line and write the JSON; returns what was written."""
    defaults = QUICK if quick else FULL
    frames = frames if frames is not None else defaults["frames"]
    repeats = repeats if repeats is not None else defaults["repeats"]
    startup_runs = startup_runs if startup_runs is not None else defaults["startup_runs"]
    if frames < 2 or repeats < 1 or startup_runs < 1:
        raise ValueError(f"frames must be 2 or more, repeats and startup_runs 1 or more; got {frames}, {repeats}, {startup_runs}")
    json_path = Path(json_path)
    ensure_writable_dir(json_path.parent, "folder of --json")
    ensure_parent_dir(json_path, "--json")
    data = Path(data)
    phase = Phases()
    machine = machine_info()
    from liveness.model import load_model

    given = load_model(model) if model is not None else None  # a bad --model fails now, not after training

    with tempfile.TemporaryDirectory(prefix="liveness_bench_") as tmp_name:
        tmp = Path(tmp_name)
        phase("prepare", "preparing the video and the training crops")
        inputs = prepare_inputs(
            video=Path(video) if video else None, data=data, frames=frames, tmp=tmp,
            crops_per_folder=defaults["crops_per_folder"],
        )
        frames = inputs.frames
        LOGGER.info("video: %s; %d frames", inputs.video_source, frames)

        # train.py in a fresh process: line 7's training memory, and the models.
        # Meanwhile this process imports TensorFlow (not timed).
        trained = tmp / "trained"
        phase("train_child", "training a fusion model for %d epoch(s) with train.py (a child process) on %s", defaults["epochs"], inputs.crops)
        train_child = start_child(ROOT / "train.py", train_args(inputs.crops, trained, defaults["epochs"], inputs.group_pattern))
        # The demo's model: train.py's default scorer, with the threshold it fits for itself
        # (line 4f depends on it: faces far from the threshold are scored less often).
        lbp_child = None
        try:
            if given is None:
                lbp_child = start_child(ROOT / "train.py", train_args(inputs.crops, tmp / "lbp", None, inputs.group_pattern))
            import_tensorflow()  # seconds: overlapped with the children

            from liveness.detector import FaceDetector
        except BaseException:
            for child in (train_child, lbp_child):
                if child is not None:
                    kill_child(child)
            raise
        train_result = finish_child(train_child)
        if lbp_child is not None:
            finish_child(lbp_child)
        machine.update(library_versions())

        phase("load_models", "loading the detector and the models (CNN on OpenCV DNN and on tf.function)")
        detector = FaceDetector()
        with quiet(), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # tf2onnx on numpy 2: not ours to fix
            fusion = load_model(trained)
            demo_folder = Path(model) if given is not None else tmp / "lbp"
            demo_model = given if given is not None else load_model(demo_folder)  # as liveness_demo.py loads it
            cnn_source = given if given is not None and given.cnn is not None else fusion
            cnn_cv = load_model(cnn_source.path, backend="opencv")
            cnn_tf = load_model(cnn_source.path, backend="tf")
            probe = [probe_face()]
            for m in (demo_model, cnn_cv, cnn_tf):  # CNN runners are built on first use: not timed
                m.score(probe)
        LOGGER.info("the demo scores faces with: %s", describe_model(demo_model))
        rows: list[Row] = []

        phase("lines_1235", "lines 1, 2, 3, 5: decode / detector / demo pipeline / gather, %d round(s) of %d frames", repeats, frames)
        video_rows = bench_video_lines(inputs, detector, demo_model, repeats, tmp)
        rows += [r for r in video_rows if r.line[0] in "123"]
        clip = two_face_clip(inputs, data, tmp)
        if clip is not None:
            phase("line_3c", "line 3c: the demo's pipeline on a two-face clip")
            rows += bench_two_faces(clip, detector, demo_model, repeats)

        phase("line_4", "line 4: liveness per face")
        from liveness.detector import crop_faces

        faces = [crop for f in read_frames(inputs.video, frames) for _, crop in crop_faces(f, detector.detect(f), 0.0)]
        if not faces:
            raise UserError(f"the detector finds no face in {inputs.video}: line 4 needs faces")
        rows += bench_per_face(demo_model, cnn_cv, cnn_tf, faces, repeats, defaults["face_calls"])
        rows += [r for r in video_rows if r.line[0] in "45"]

        phase("line_7", "line 7: liveness_demo.py start-up and memory, %d fresh process(es)", startup_runs)
        demo_runs = [run_demo_child(inputs.video, demo_folder, frames) for _ in range(startup_runs)]
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
            row("7a", "start-up: launch liveness_demo.py -> first processed frame", "s",
                [d["first_frame_s"] for d in demo_runs], higher_is_better=False, extra=demo_extra),
            row("7b", f"peak resident memory, liveness_demo.py ({frames} frames)", "MiB",
                [d["peak_rss_mib"] for d in demo_runs], higher_is_better=False),
            row("7c", f"peak resident memory, train.py --scorer fusion ({defaults['epochs']} epoch(s), {inputs.crops.name})", "MiB",
                [train_result["peak_rss_mib"]], higher_is_better=False, extra={"wall_s": train_result["wall_s"]}),
        ]
    phase(None)
    rows.sort(key=lambda r: (r.line[0], r.line))
    machine["load_average_end"] = loadavg()
    results = {
        "benchmark": "liveness suite, benchmarks/bench_pipeline.py",
        "command": " ".join(["python", "benchmarks/bench_pipeline.py", *sys.argv[1:]]) if sys.argv[0].endswith("bench_pipeline.py") else None,
        "quick": quick,
        "settings": {
            "video": inputs.video_source, "frames": frames, "repeats": repeats, "warmup_rounds": 1,
            "startup_runs": startup_runs, "synthetic": inputs.synthetic,
            "model": str(model) if given is not None else "train.py's default scorer (colour LBP), trained here on the same crops",
            "demo_scorer": describe_model(demo_model),
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


def probe_face():
    import numpy as np

    return np.full((64, 64, 3), 128, np.uint8)


def parse_opt(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--video", default=None, help="video to measure on, used as it is (default: a 640x480 version of a shared video)")
    ap.add_argument("--frames", type=ranged(int, 2), default=None, help=f"frames per run (default {FULL['frames']}, --quick {QUICK['frames']})")
    ap.add_argument("--repeats", type=positive_int, default=None, help=f"measured rounds after the warm-up (default {FULL['repeats']}, --quick {QUICK['repeats']})")
    ap.add_argument("--startup-runs", type=positive_int, default=None, help=f"fresh demo processes for line 7 (default {FULL['startup_runs']}, --quick {QUICK['startup_runs']})")
    ap.add_argument("--quick", action="store_true", help="few frames and rounds: under a minute, checks the benchmark still runs")
    ap.add_argument("--json", default=str(DEFAULT_JSON), help="where to write every figure")
    ap.add_argument("--model", default=None, help="model folder the demo lines use (default: colour LBP trained here)")
    ap.add_argument("--data", default=str(SHARED_DATA), help="the shared data folder (videos/, crops/); synthetic samples when absent")
    ap.add_argument("-v", "--verbose", action="store_true")
    return ap.parse_args(argv)


def main(opt: argparse.Namespace) -> int:
    setup_logging(opt.verbose)
    run(
        video=opt.video, frames=opt.frames, repeats=opt.repeats, quick=opt.quick, json_path=opt.json,
        model=opt.model, data=opt.data, startup_runs=opt.startup_runs,
    )
    return 0


if __name__ == "__main__":
    cli_main(lambda: main(parse_opt()))
