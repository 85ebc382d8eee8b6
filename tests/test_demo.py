"""Tests for liveness_demo.py: a headless run on a real video, JSON lines from the
script, one batch per frame, Ctrl-C, a full disk, a silent stream, and one clear line
for each kind of bad input or model. The window: tests/test_window.py."""

from __future__ import annotations

import json
import os
import pickle
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

import liveness_demo as demo
from liveness import ROOT
from liveness.cli import UserError
from liveness.detector import FaceDetector, crop_faces
from liveness.errors import ModelError, OutputError, SourceError
from liveness.lbp import LBPClassifier
from liveness.model import MANIFEST, load_model, write_model
from liveness.pipeline import Pipeline
from liveness.sources import Source, iter_frames
from servers import quiet_server

DEMO = ROOT / "liveness_demo.py"
SCRIPT_TIMEOUT = 120


# --- helpers -----------------------------------------------------------------------
def count_frames(path: Path) -> int:
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


def read_frames(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    try:
        return [frame for _, frame in iter_frames(cap)]
    finally:
        cap.release()


def run_demo(*args, env: dict | None = None, timeout: float = SCRIPT_TIMEOUT, preexec_fn=None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    full_env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    return subprocess.run(
        [sys.executable, str(DEMO), *map(str, args)], capture_output=True, text=True,
        env=full_env, timeout=timeout, cwd=ROOT, preexec_fn=preexec_fn,
    )


def assert_one_line_error(proc: subprocess.CompletedProcess, *words: str) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("[ERROR]")]
    assert len(errors) == 1, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last == errors[0], proc.stderr[-2000:]
    for word in words:
        assert word in last, last
    assert proc.stdout == ""
    return last


def leftovers(folder: Path) -> list[str]:
    """Temporary files atomic_path would leave behind (it must not)."""
    return sorted(p.name for p in folder.iterdir() if ".tmp" in p.name)


def write_tiny_model(folder: Path, *, threshold: float = 0.5, padding: float = 0.0) -> Path:
    """A real colour-LBP model folder fitted in a second on random textures: what the
    I/O tests need (a model that loads and scores fast), not one that means anything."""
    rng = np.random.default_rng(0)
    faces = [rng.integers(0, 256, (48, 48, 3), dtype=np.uint8) for _ in range(8)]
    faces += [cv2.GaussianBlur(f, (7, 7), 3) for f in faces]
    lbp = LBPClassifier().fit(faces, np.array([1] * 8 + [0] * 8))
    write_model(folder, {
        "scorer": "lbp", "labels": ["fake", "real"], "live_label": "real", "threshold": threshold,
        "threshold_source": "set by the test", "padding": padding, "lbp_weight": 1.0, "input_size": None,
    }, lbp=lbp)
    return folder


# --- fixtures ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def videos(shared_data) -> Path:
    return shared_data / "videos" / "subject02"


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    return write_tiny_model(tmp_path_factory.mktemp("tiny") / "liveness")


@pytest.fixture(scope="module")
def face_video(tmp_path_factory, face_image) -> Path:
    """A second of the astronaut drifting a pixel a frame (no shared data needed)."""
    path = tmp_path_factory.mktemp("face_video") / "real.mp4"
    base = cv2.resize(face_image, (320, 320), interpolation=cv2.INTER_AREA)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (320, 320))
    assert writer.isOpened()
    for i in range(30):
        writer.write(np.roll(base, i, axis=1))
    writer.release()
    return path


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector()


@pytest.fixture(scope="module")
def fusion(trained_model):
    return load_model(trained_model)


@pytest.fixture(scope="module")
def headless_run(trained_model, videos, tmp_path_factory):
    """A whole in-process run over subject02/fake.mp4 with DISPLAY unset: no window may open."""
    out_dir = tmp_path_factory.mktemp("demo_out")
    output = out_dir / "annotated.mp4"
    output.write_bytes(b"an older file, replaced only at the end")

    def no_window(*args, **kwargs):
        raise AssertionError("cv2.imshow called without a display")

    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("DISPLAY", raising=False)
        mp.setattr(cv2, "imshow", no_window)
        mp.setattr(cv2, "namedWindow", no_window)
        summary = demo.run(input=videos / "fake.mp4", model=trained_model, output=output, display=None)
    return summary, output


# --- a whole run -------------------------------------------------------------------
@pytest.mark.shared_data
def test_headless_run_writes_every_frame(headless_run, videos, fusion):
    summary, output = headless_run
    n_in = count_frames(videos / "fake.mp4")
    assert n_in == 77
    assert summary.frames == n_in
    assert count_frames(output) == n_in  # the older file was replaced by a whole video
    assert cv2.VideoCapture(str(output)).get(cv2.CAP_PROP_FPS) == pytest.approx(30.0, abs=0.5)
    assert leftovers(output.parent) == []
    assert sorted(summary.labels) == sorted(fusion.labels)
    assert sum(summary.labels.values()) == summary.faces
    assert summary.faces >= 0.9 * n_in  # one face in (nearly) every frame
    assert summary.tracks >= 1 and set(summary.mean_scores) <= set(range(1, summary.tracks + 1))
    assert all(0.0 <= v <= 1.0 for v in summary.mean_scores.values())
    assert summary.stopped == "end"
    assert summary.mean_fps > 0 and summary.first_frame_s > 0


@pytest.mark.shared_data
def test_output_frames_are_annotated(headless_run, videos):
    _, output = headless_run
    original, annotated = read_frames(videos / "fake.mp4")[10], read_frames(output)[10]
    assert annotated.shape == original.shape
    # Boxes and label bands are pure green or red; the video's own pixels mostly are not.
    diff = np.abs(annotated.astype(int) - original.astype(int)).sum(axis=2)
    assert (diff > 150).mean() > 0.002


@pytest.mark.shared_data
def test_json_lines_from_the_script(trained_model, fusion, videos):
    video = videos / "real.mp4"
    h, w = read_frames(video)[0].shape[:2]
    proc = run_demo("--input", video, "--model", trained_model, "--json", "--no-display", "--max-frames", 20)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert len(lines) == 20
    records = [json.loads(line) for line in lines]  # every stdout line is JSON: nothing else there
    assert [r["frame"] for r in records] == list(range(20))
    times = [r["time"] for r in records]
    assert times[0] == 0 and times == sorted(times) and times[-1] == pytest.approx(19 / 30, abs=0.01)
    n_faces = 0
    for r in records:
        for face in r["faces"]:
            n_faces += 1
            x1, y1, x2, y2 = face["box"]
            assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h, face
            assert face["label"] in fusion.labels and face["live"] == (face["label"] == fusion.live_label)
            assert 0.0 <= face["score"] <= 1.0 and 0.0 <= face["raw_score"] <= 1.0
            assert isinstance(face["track"], int) and 0.0 <= face["confidence"] <= 1.0
    assert n_faces >= 18
    assert "[INFO]" in proc.stderr and "20 frames" in proc.stderr  # the summary, on stderr


# --- one frame ---------------------------------------------------------------------
@pytest.mark.shared_data
def test_all_faces_of_a_frame_go_in_one_batch(fusion, detector, face_image, monkeypatch):
    row = np.hstack([face_image, face_image])
    frame = np.vstack([row, row])  # four astronauts
    batches = []
    real_score = fusion.score
    monkeypatch.setattr(fusion, "score", lambda crops: batches.append(len(crops)) or real_score(crops))
    monkeypatch.setattr(fusion.cnn, "predict", lambda *a, **k: pytest.fail("model.predict was called"))
    pipeline = Pipeline(fusion, detector, smooth=3, score_every=1)  # every face scored on both frames
    results = pipeline.process(frame)
    assert batches == [4]
    assert len(results) == 4 and {r.track_id for r in results} == {1, 2, 3, 4}
    image = pipeline.annotate(frame, results)
    assert image.shape == frame.shape and not np.array_equal(image, frame)
    for r in results:
        x1, y1, x2, y2 = r.box
        assert 0 <= x1 < x2 <= frame.shape[1] and 0 <= y1 < y2 <= frame.shape[0]
        assert r.label in fusion.labels and 0 <= r.score <= 1 and 0 <= r.raw_score <= 1
    results = pipeline.process(frame)
    assert batches == [4, 4] and {r.track_id for r in results} == {1, 2, 3, 4}


def test_faceless_frame_classifies_nothing(tiny_model, detector, monkeypatch):
    model = load_model(tiny_model)
    monkeypatch.setattr(model, "score", lambda crops: pytest.fail("classified a frame without faces"))
    pipeline = Pipeline(model, detector)
    frame = np.zeros((240, 320, 3), np.uint8)
    results = pipeline.process(frame)
    assert results == [] and pipeline.annotate(frame, results).shape == (240, 320, 3)


def test_crops_use_the_padding_the_model_was_trained_with(tmp_path, detector, face_image):
    faces = detector.detect(face_image)
    for padding in (0.0, 0.25):
        model = load_model(write_tiny_model(tmp_path / f"pad{padding}", padding=padding))
        assert model.padding == padding
        seen = []
        real_score = model.score
        model.score = lambda crops: seen.extend(crops) or real_score(crops)
        Pipeline(model, detector).process(face_image)  # no padding given: the model's
        expected = crop_faces(face_image, faces, padding)
        assert len(seen) == len(expected) == 1
        np.testing.assert_array_equal(seen[0], expected[0][1])


# --- stopping: max frames, Ctrl-C --------------------------------------------------
def test_ctrl_c_finalises_the_output(tiny_model, face_video, tmp_path, monkeypatch):
    real_process = Pipeline.process
    calls = []

    def interrupted(self, frame):
        calls.append(1)
        if len(calls) == 6:
            raise KeyboardInterrupt
        return real_process(self, frame)

    monkeypatch.setattr(Pipeline, "process", interrupted)
    output = tmp_path / "out.mp4"
    summary = demo.run(input=face_video, model=tiny_model, output=output, display=False)
    assert summary.stopped == "interrupted" and summary.frames == 5
    assert count_frames(output) == 5  # a whole, playable video of what was processed
    assert leftovers(tmp_path) == []


class CameraLike:
    """A video file delivered at camera pace (a frame every 20 ms), then silence."""

    def __init__(self, path: Path) -> None:
        self.cap = cv2.VideoCapture(str(path))

    def read(self):
        time.sleep(0.02)
        return self.cap.read()

    def grab(self):
        time.sleep(0.02)
        return self.cap.grab()

    def get(self, prop):
        return 0.0  # webcams often do not know their rate

    def release(self):
        self.cap.release()


def test_a_camera_that_stops_ends_with_a_summary(tiny_model, face_video, tmp_path, monkeypatch):
    """A 'webcam' (a file behind the live-source path: newest frame only) that runs dry."""
    import liveness.sources

    monkeypatch.setattr(demo, "resolve_source", lambda spec, allow_folder: Source("webcam", 0))
    monkeypatch.setattr(liveness.sources, "open_capture", lambda source, timeout: CameraLike(face_video))
    lines = tmp_path / "lines.jsonl"
    with open(lines, "w") as stream:
        summary = demo.run(input=0, model=tiny_model, display=False, json_lines=True, json_stream=stream)
    assert summary.live and summary.stopped == "source stopped"
    assert 1 <= summary.frames <= 30  # a slow consumer sees the newest frames, not a backlog
    records = [json.loads(line) for line in lines.read_text().splitlines()]
    assert len(records) == summary.frames
    frames = [r["frame"] for r in records]
    assert frames == sorted(set(frames))  # frames may be dropped, never repeated or reordered
    assert all(b["time"] >= a["time"] for a, b in zip(records, records[1:]))  # seconds since start


def test_max_frames_and_no_smoothing(tmp_path, face_video):
    model = write_tiny_model(tmp_path / "accept_all", threshold=0.0)  # every face is live
    summary = demo.run(input=face_video, model=model, display=False, smooth=1, max_frames=4)
    assert summary.frames == 4 and summary.stopped == "max-frames"
    assert summary.faces >= 3 and summary.labels == {"fake": 0, "real": summary.faces}
    summary = demo.run(input=face_video, model=model, display=False, threshold=1.0, max_frames=2)
    assert summary.labels == {"fake": summary.faces, "real": 0}  # --threshold overrides the saved one


# --- bad input: one line, exit 2, before anything slow ----------------------------
def test_cheap_checks_come_before_the_model(tmp_path):
    missing = tmp_path / "nope"  # no model there: these must fail before it is opened
    with pytest.raises(SourceError, match="missing.mp4 does not exist"):
        demo.run(input=tmp_path / "missing.mp4", model=missing)
    with pytest.raises(SourceError, match="is a folder"):
        demo.run(input=tmp_path, model=missing)
    (tmp_path / "v.mp4").write_bytes(b"x")
    with pytest.raises(UserError, match="--output .*out.gif: give a video file name"):
        demo.run(input=tmp_path / "v.mp4", model=missing, output=tmp_path / "out.gif")
    with pytest.raises(OutputError, match="does not exist"):
        demo.run(input=tmp_path / "v.mp4", model=missing, output=tmp_path / "no" / "out.mp4")
    with pytest.raises(ModelError, match="does not exist"):
        demo.run(input=tmp_path / "v.mp4", model=missing)


def test_missing_video_script(tmp_path):
    proc = run_demo("--input", tmp_path / "missing.mp4", "--model", tmp_path / "m", "--no-display")
    assert_one_line_error(proc, "missing.mp4", "does not exist")


@pytest.mark.parametrize("argv, message", [
    (["--threshold", "1.5"], "--threshold"), (["--smooth", "0"], "--smooth"), (["--timeout", "nan"], "--timeout"),
])
def test_bad_numbers_script(argv, message, tmp_path):
    proc = run_demo("--input", tmp_path / "missing.mp4", "--model", tmp_path / "m", "--no-display", *argv)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert message in proc.stderr.strip().splitlines()[-1], proc.stderr


def test_output_folder_missing_script(face_video, tiny_model, tmp_path):
    out = tmp_path / "no" / "such" / "out.mp4"
    proc = run_demo("--input", face_video, "--model", tiny_model, "--output", out, "--no-display")
    assert_one_line_error(proc, "does not exist", str(out.parent))
    assert not out.parent.exists()


def test_undecodable_video_script(tiny_model, tmp_path):
    bad = tmp_path / "x.mp4"
    bad.write_text("this is not a video\n" * 50)
    proc = run_demo("--input", bad, "--model", tiny_model, "--no-display")
    assert_one_line_error(proc, "x.mp4")


def test_missing_webcam_script(tiny_model):
    proc = run_demo("--input", 7, "--model", tiny_model, "--no-display")
    last = assert_one_line_error(proc, "webcam 7 does not open")
    assert "webcam 0" in last  # suggests another index


class Exploit:
    """Unpickling this would run a shell command."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_malicious_label_encoder_is_refused_unrun_script(tiny_model, face_video, tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "le.pickle"
    evil.write_bytes(pickle.dumps(Exploit(marker)))
    proc = run_demo("--input", face_video, "--model", tiny_model, "--le", evil, "--no-display")
    assert_one_line_error(proc, "LabelEncoder")
    assert not marker.exists()


@pytest.mark.parametrize("problem", ["dict pickle", "3 classes", "other classes"])
def test_bad_label_encoder(problem, tiny_model, face_video, tmp_path):
    from sklearn.preprocessing import LabelEncoder

    output = tmp_path / "out.mp4"
    output.write_bytes(b"older")
    le = tmp_path / "le.pickle"
    if problem == "dict pickle":
        le.write_bytes(pickle.dumps({"classes_": ["fake", "real"]}))
        error, match = ModelError, "LabelEncoder"
    elif problem == "3 classes":
        le.write_bytes(pickle.dumps(LabelEncoder().fit(["fake", "real", "print"])))
        error, match = ModelError, "two different classes"
    else:
        le.write_bytes(pickle.dumps(LabelEncoder().fit(["live", "spoof"])))
        error, match = UserError, "other classes than the model"
    with pytest.raises(error, match=match):
        demo.run(input=face_video, model=tiny_model, le=le, output=output, display=False, max_frames=2)
    assert output.read_bytes() == b"older"  # nothing was written
    assert leftovers(tmp_path) == []


def _edit_threshold(folder: Path) -> None:
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["threshold"] = 0.01  # checksum left as it was
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2))


BROKEN_MODELS = {
    # name: (how to break a copy of a good model folder, words the one error line holds)
    "no manifest": (lambda f: (f / MANIFEST).unlink(), ("has no manifest.json",)),
    "edited manifest": (_edit_threshold, ("edited after training", "give the threshold when running")),
    "no lbp.npz": (lambda f: (f / "lbp.npz").unlink(), ("lbp.npz is missing",)),
    "truncated lbp.npz": (lambda f: (f / "lbp.npz").write_bytes((f / "lbp.npz").read_bytes()[:100]), ("lbp.npz",)),
}


@pytest.mark.parametrize("problem", list(BROKEN_MODELS))
def test_broken_model_folder_is_refused_script(problem, tiny_model, face_video, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(tiny_model, folder)
    breaks, words = BROKEN_MODELS[problem]
    breaks(folder)
    output = tmp_path / "out.mp4"
    output.write_bytes(b"older")
    proc = run_demo("--input", face_video, "--model", folder, "--output", output, "--no-display")
    assert_one_line_error(proc, str(folder), *words)
    assert output.read_bytes() == b"older"


def test_single_file_keras_model_of_the_previous_release_is_refused_script(face_video, tmp_path):
    old = tmp_path / "liveness.keras"
    old.write_bytes(b"PK\x03\x04 a Keras 3 archive of the previous release")
    proc = run_demo("--input", face_video, "--model", old, "--no-display")
    assert_one_line_error(proc, "liveness.keras", "previous release", "train.py")
    folder = tmp_path / "old_output"  # the old output/ folder: .keras files, no manifest
    folder.mkdir()
    (folder / "liveness.keras").write_bytes(b"PK\x03\x04")
    proc = run_demo("--input", face_video, "--model", folder, "--no-display")
    assert_one_line_error(proc, "previous release", "manifest.json")


# --- output and stream failures: one line, the previous file kept -------------------
FILE_LIMIT = 32 * 1024  # bytes any file the child writes may reach: far below the annotated video (~100 KB)


def _limit_file_size() -> None:  # runs in the child before exec
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_LIMIT, FILE_LIMIT))


def test_full_disk_keeps_the_previous_output_script(tiny_model, face_video, tmp_path):
    """A write past RLIMIT_FSIZE fails with EFBIG (Python ignores SIGXFSZ) as on a full disk."""
    output = tmp_path / "out.mp4"
    output.write_bytes(b"the previous annotated video")
    proc = run_demo("--input", face_video, "--model", tiny_model, "--output", output, "--no-display",
                    preexec_fn=_limit_file_size)
    assert_one_line_error(proc, "out.mp4", "previous file")
    assert output.read_bytes() == b"the previous annotated video"
    assert leftovers(tmp_path) == []


@pytest.fixture
def silent_server():
    """A TCP server that accepts connections and never sends a byte: its URL, its connections."""
    with quiet_server("stream.mjpg") as url_and_held:
        yield url_and_held


def test_silent_stream_times_out_with_one_line_script(tiny_model, silent_server):
    url, held = silent_server
    started = time.monotonic()
    proc = run_demo("--input", url, "--model", tiny_model, "--no-display", "--timeout", 1, timeout=60)
    took = time.monotonic() - started
    assert_one_line_error(proc, "127.0.0.1")
    assert held, "the demo never connected"
    # Python and OpenCV start in a few seconds; without the timeout FFmpeg waits 30 s or more.
    assert took < 20, took
