"""Tests for liveness_demo.py: a headless run on a real video, JSON lines from the
script, the window under a virtual X server (Xvfb), one batch per frame, Ctrl-C,
and one clear line for each kind of bad input."""

from __future__ import annotations

import json
import os
import pickle
import select
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

import liveness_demo as demo
from liveness import ROOT
from liveness.annotate import LIVE_COLOUR, SPOOF_COLOUR
from liveness.artifacts import load_label_encoder
from liveness.cli import UserError
from liveness.detector import FaceDetector
from liveness.sources import iter_frames

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


def run_demo(*args, env: dict | None = None, timeout: float = SCRIPT_TIMEOUT) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    full_env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    return subprocess.run(
        [sys.executable, str(DEMO), *map(str, args)], capture_output=True, text=True,
        env=full_env, timeout=timeout, cwd=ROOT,
    )


def assert_one_line_error(proc: subprocess.CompletedProcess, *words: str) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("[ERROR]"), proc.stderr[-2000:]
    for word in words:
        assert word in last, last
    assert proc.stdout == ""
    return last


def leftovers(folder: Path) -> list[str]:
    """Temporary files atomic_path would leave behind (it must not)."""
    return sorted(p.name for p in folder.iterdir() if ".tmp" in p.name)


class ConstantClassifier:
    """Stands in for LivenessClassifier where the model does not matter (I/O tests)."""

    labels = ["fake", "real"]
    live_label = "real"
    threshold = 0.5
    sidecar: dict = {}
    backend = "constant"

    def __init__(self, *args, **kwargs) -> None:
        self.calls: list[int] = []

    def scores(self, faces):
        self.calls.append(len(faces))
        return np.full(len(faces), 0.8, np.float32)

    def decide(self, scores):
        return ["real" if s >= self.threshold else "fake" for s in scores]


# --- fixtures ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def videos(shared_data) -> Path:
    return shared_data / "videos" / "subject02"


@pytest.fixture(scope="module")
def classifier(trained_model):
    model, le = trained_model
    return demo.LivenessClassifier(model, le)


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector()


@pytest.fixture(scope="module")
def headless_run(trained_model, videos, tmp_path_factory):
    """A whole in-process run over subject02/fake.mp4 with DISPLAY unset: no window may open."""
    model, le = trained_model
    out_dir = tmp_path_factory.mktemp("demo_out")
    output = out_dir / "annotated.mp4"
    output.write_bytes(b"an older file, replaced only at the end")

    def no_window(*args, **kwargs):
        raise AssertionError("cv2.imshow called without a display")

    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("DISPLAY", raising=False)
        mp.setattr(cv2, "imshow", no_window)
        mp.setattr(cv2, "namedWindow", no_window)
        summary = demo.run(input=videos / "fake.mp4", model=model, le=le, output=output, display=None)
    return summary, output


# --- a whole run -------------------------------------------------------------------
@pytest.mark.shared_data
def test_headless_run_writes_every_frame(headless_run, videos, trained_model):
    summary, output = headless_run
    n_in = count_frames(videos / "fake.mp4")
    assert n_in == 77
    assert summary.frames == n_in
    assert count_frames(output) == n_in  # the older file was replaced by a whole video
    assert cv2.VideoCapture(str(output)).get(cv2.CAP_PROP_FPS) == pytest.approx(30.0, abs=0.5)
    assert leftovers(output.parent) == []
    classes = [str(c) for c in load_label_encoder(trained_model[1]).classes_]
    assert sorted(summary.labels) == sorted(classes)
    assert sum(summary.labels.values()) == summary.faces
    assert summary.faces >= 0.9 * n_in  # one face in (nearly) every frame
    assert summary.tracks >= 1
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
def test_json_lines_from_the_script(trained_model, videos):
    model, le = trained_model
    video = videos / "real.mp4"
    h, w = read_frames(video)[0].shape[:2]
    proc = run_demo("--input", video, "--model", model, "--le", le, "--json", "--no-display", "--max-frames", 20)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert len(lines) == 20
    records = [json.loads(line) for line in lines]  # every stdout line is JSON: nothing else there
    classes = {str(c) for c in load_label_encoder(le).classes_}
    assert [r["frame"] for r in records] == list(range(20))
    times = [r["time"] for r in records]
    assert times[0] == 0 and times == sorted(times) and times[-1] == pytest.approx(19 / 30, abs=0.01)
    n_faces = 0
    for r in records:
        for face in r["faces"]:
            n_faces += 1
            x1, y1, x2, y2 = face["box"]
            assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h, face
            assert face["label"] in classes
            assert 0.0 <= face["score"] <= 1.0 and 0.0 <= face["raw_score"] <= 1.0
            assert isinstance(face["track"], int)
    assert n_faces >= 18
    assert "[INFO]" in proc.stderr and "20 frames" in proc.stderr  # the summary, on stderr


# --- one frame ---------------------------------------------------------------------
@pytest.mark.shared_data
def test_all_faces_of_a_frame_go_in_one_batch(classifier, detector, face_image, monkeypatch):
    row = np.hstack([face_image, face_image])
    frame = np.vstack([row, row])  # four astronauts
    batches = []
    real_scores = classifier.scores
    monkeypatch.setattr(classifier, "scores", lambda crops: batches.append(len(crops)) or real_scores(crops))
    monkeypatch.setattr(classifier.model, "predict", lambda *a, **k: pytest.fail("model.predict was called"))
    pipeline = demo.LivenessPipeline(detector, classifier, smooth=3)
    results, image = pipeline.process(frame)
    assert batches == [4]
    assert len(results) == 4 and {r.track_id for r in results} == {1, 2, 3, 4}
    assert image.shape == frame.shape and not np.array_equal(image, frame)
    for r in results:
        x1, y1, x2, y2 = r.box
        assert 0 <= x1 < x2 <= frame.shape[1] and 0 <= y1 < y2 <= frame.shape[0]
        assert r.label in classifier.labels and 0 <= r.score <= 1
    results, image = pipeline.process(frame, draw=False)
    assert image is None and batches == [4, 4] and {r.track_id for r in results} == {1, 2, 3, 4}


@pytest.mark.shared_data
def test_faceless_frame_classifies_nothing(classifier, detector, monkeypatch):
    monkeypatch.setattr(classifier, "scores", lambda crops: pytest.fail("classified a frame without faces"))
    results, image = demo.LivenessPipeline(detector, classifier).process(np.zeros((240, 320, 3), np.uint8))
    assert results == [] and image.shape == (240, 320, 3)


def test_crops_use_the_padding_the_model_was_trained_with(detector, face_image):
    from liveness import detector as det

    clf = ConstantClassifier()
    seen = []
    clf.scores = lambda crops: seen.extend(crops) or np.full(len(crops), 0.8)
    faces = detector.detect(face_image)
    for padding in (0.0, 0.25):
        seen.clear()
        demo.LivenessPipeline(detector, clf, padding=padding).process(face_image, draw=False)
        expected = det.crop_faces(face_image, faces, padding)
        assert len(seen) == len(expected) == 1
        np.testing.assert_array_equal(seen[0], expected[0][1])
    assert demo.sidecar_padding({}) == 0.0
    assert demo.sidecar_padding({"padding": 0.1}) == 0.1
    for bad in (-0.1, "wide", True, float("nan")):
        with pytest.raises(UserError, match="padding"):
            demo.sidecar_padding({"padding": bad})


# --- stopping: max frames, Ctrl-C --------------------------------------------------
def fake_model_files(folder: Path) -> tuple[Path, Path]:
    model, le = folder / "m.keras", folder / "le.pickle"
    model.write_bytes(b"never loaded")
    le.write_bytes(b"never loaded")
    return model, le


@pytest.mark.shared_data
def test_ctrl_c_finalises_the_output(videos, tmp_path, monkeypatch):
    monkeypatch.setattr(demo, "LivenessClassifier", ConstantClassifier)
    real_process = demo.LivenessPipeline.process
    calls = []

    def interrupted(self, frame, **kwargs):
        calls.append(1)
        if len(calls) == 6:
            raise KeyboardInterrupt
        return real_process(self, frame, **kwargs)

    monkeypatch.setattr(demo.LivenessPipeline, "process", interrupted)
    model, le = fake_model_files(tmp_path)
    output = tmp_path / "out.mp4"
    summary = demo.run(input=videos / "real.mp4", model=model, le=le, output=output, display=False)
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

    def get(self, prop):
        return 0.0  # webcams often do not know their rate

    def release(self):
        self.cap.release()


@pytest.mark.shared_data
def test_a_camera_that_stops_ends_with_a_summary(videos, tmp_path, monkeypatch):
    """A 'webcam' (a file behind the live-source path: newest frame only) that runs dry."""
    from liveness.sources import Source

    monkeypatch.setattr(demo, "LivenessClassifier", ConstantClassifier)
    monkeypatch.setattr(demo, "resolve_source", lambda spec, allow_folder: Source("webcam", 0))
    monkeypatch.setattr(demo, "open_capture", lambda source: CameraLike(videos / "fake.mp4"))
    model, le = fake_model_files(tmp_path)
    lines = tmp_path / "lines.jsonl"
    with open(lines, "w") as stream:
        summary = demo.run(input=0, model=model, le=le, display=False, json_lines=True, json_stream=stream)
    assert summary.live and summary.stopped == "source stopped"
    assert 1 <= summary.frames <= 77  # a slow consumer sees the newest frames, not a backlog
    records = [json.loads(line) for line in lines.read_text().splitlines()]
    assert [r["frame"] for r in records] == list(range(summary.frames))
    assert all(b["time"] >= a["time"] for a, b in zip(records, records[1:]))  # seconds since start


@pytest.mark.shared_data
def test_max_frames_and_no_smoothing(videos, tmp_path, monkeypatch):
    monkeypatch.setattr(demo, "LivenessClassifier", ConstantClassifier)
    model, le = fake_model_files(tmp_path)
    summary = demo.run(input=videos / "real.mp4", model=model, le=le, display=False, smooth=1, max_frames=4)
    assert summary.frames == 4 and summary.stopped == "max-frames"
    assert summary.labels == {"fake": 0, "real": summary.faces}


# --- display detection -------------------------------------------------------------
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="X11 display names are a Linux matter")
def test_display_detection_never_trusts_an_unreachable_display():
    assert demo.display_available({}) is False
    assert demo.display_available({"DISPLAY": ""}) is False
    assert demo.display_available({"DISPLAY": ":4711"}) is False  # no such server
    assert demo.display_available({"DISPLAY": "not a display"}) is False


# --- the window, for real, on a virtual X server ----------------------------------
def read_xwd(path: Path) -> np.ndarray:
    """An X window dump (as Xvfb -fbdir keeps it) -> BGR image. 24/32-bit TrueColor only."""
    data = path.read_bytes()
    names = (
        "header_size file_version pixmap_format pixmap_depth pixmap_width pixmap_height xoffset "
        "byte_order bitmap_unit bitmap_bit_order bitmap_pad bits_per_pixel bytes_per_line visual_class "
        "red_mask green_mask blue_mask bits_per_rgb colormap_entries ncolors"
    ).split()
    hdr = dict(zip(names, struct.unpack(">20I", data[:80])))  # the header is big-endian
    assert hdr["file_version"] == 7 and hdr["bits_per_pixel"] == 32, hdr
    w, h, stride = hdr["pixmap_width"], hdr["pixmap_height"], hdr["bytes_per_line"]
    offset = hdr["header_size"] + hdr["ncolors"] * 12
    dtype = "<u4" if hdr["byte_order"] == 0 else ">u4"  # pixels follow the server's byte order
    rows = np.frombuffer(data, np.uint8, count=stride * h, offset=offset).reshape(h, stride)
    px = rows[:, : w * 4].copy().view(dtype).reshape(h, w)
    out = np.empty((h, w, 3), np.uint8)
    for channel, mask in enumerate((hdr["blue_mask"], hdr["green_mask"], hdr["red_mask"])):
        shift = (mask & -mask).bit_length() - 1
        out[..., channel] = (px & mask) >> shift
    return out


def label_pixels(image: np.ndarray) -> int:
    """Pixels of exactly the demo's box colours."""
    return int(sum(np.all(image == colour, axis=2).sum() for colour in (LIVE_COLOUR, SPOOF_COLOUR)))


@pytest.fixture(scope="session")
def xvfb_exe() -> str:
    """Session-scoped, so a missing Xvfb skips before the model is trained."""
    exe = shutil.which("Xvfb")
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("CI must test the window: install Xvfb (Debian package xvfb)")
        pytest.skip("Xvfb is not installed (Debian: apt-get install xvfb)")
    return exe


@pytest.fixture
def xvfb(xvfb_exe, tmp_path):
    """A private virtual X server: (DISPLAY value, its framebuffer file)."""
    exe = xvfb_exe
    fbdir = tmp_path / "fb"
    fbdir.mkdir()
    read_fd, write_fd = os.pipe()
    # -displayfd: Xvfb picks a free display number itself, so parallel runs never collide.
    proc = subprocess.Popen(
        [exe, "-displayfd", str(write_fd), "-screen", "0", "1280x1024x24", "-fbdir", str(fbdir), "-nolisten", "tcp"],
        pass_fds=(write_fd,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    os.close(write_fd)
    try:
        ready, _, _ = select.select([read_fd], [], [], 20)
        number = os.read(read_fd, 64).decode().strip() if ready else ""
        if not number.isdigit():
            pytest.fail(f"Xvfb did not start (exit code {proc.poll()})")
        yield f":{number}", fbdir / "Xvfb_screen0"
    finally:
        os.close(read_fd)
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.shared_data
def test_window_shows_the_annotated_frames(xvfb_exe, xvfb, trained_model, videos, tmp_path):
    display, framebuffer = xvfb
    assert demo.display_available({"DISPLAY": display}) is True
    model, le = trained_model
    output = tmp_path / "shown.mp4"
    args = [
        sys.executable, str(DEMO), "--input", videos / "real.mp4", "--model", model, "--le", le,
        "--max-frames", 12, "--output", output, "--hold-last-ms", 2500,
    ]
    env = {**os.environ, "DISPLAY": display, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.Popen(list(map(str, args)), env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    shot, deadline = None, time.monotonic() + SCRIPT_TIMEOUT
    try:
        # Watch the screen while the demo runs; keep the last view that shows a labelled face.
        while proc.poll() is None and time.monotonic() < deadline:
            screen = read_xwd(framebuffer)
            if label_pixels(screen) > 200:
                shot = screen
            time.sleep(0.2)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, stderr[-3000:]
    assert "Traceback" not in stderr
    assert "headless" not in stderr, stderr[-2000:]  # it did decide to open the window
    assert shot is not None, "the window never showed a labelled face"
    cv2.imwrite(str(tmp_path / "screenshot.png"), shot)

    # The screen holds the last annotated frame at 1:1 (autosize): find it there.
    last = read_frames(output)[-1]
    assert len(read_frames(output)) == 12
    screen_gray = cv2.cvtColor(shot, cv2.COLOR_BGR2GRAY)
    frame_gray = cv2.cvtColor(last, cv2.COLOR_BGR2GRAY)
    small = cv2.resize(frame_gray, None, fx=0.25, fy=0.25, interpolation=cv2.INTER_AREA)
    match = cv2.matchTemplate(cv2.resize(screen_gray, None, fx=0.25, fy=0.25, interpolation=cv2.INTER_AREA), small, cv2.TM_CCOEFF_NORMED)
    _, best, _, (x, y) = cv2.minMaxLoc(match)
    assert best > 0.9, best
    # At full resolution, at the place found: the window's pixels are the frame's.
    x, y = 4 * x, 4 * y
    h, w = frame_gray.shape
    best_full = max(
        float(np.corrcoef(screen_gray[y + dy : y + dy + h, x + dx : x + dx + w].ravel(), frame_gray.ravel())[0, 1])
        for dy in range(-3, 4) for dx in range(-3, 4)
        if 0 <= y + dy and y + dy + h <= screen_gray.shape[0] and 0 <= x + dx and x + dx + w <= screen_gray.shape[1]
    )
    assert best_full > 0.95, best_full


# --- bad input: one line, exit 2, before anything slow ----------------------------
def test_cheap_checks_come_before_the_model(tmp_path):
    missing = tmp_path / "nope.keras"
    with pytest.raises(UserError, match="--threshold"):
        demo.run(input=tmp_path / "missing.mp4", model=missing, le=missing, threshold=1.5)
    with pytest.raises(UserError, match="missing.mp4 does not exist"):
        demo.run(input=tmp_path / "missing.mp4", model=missing, le=missing)
    with pytest.raises(UserError, match="--smooth"):
        demo.run(input=tmp_path, model=missing, le=missing, smooth=0)
    with pytest.raises(UserError, match="is a folder"):
        demo.run(input=tmp_path, model=missing, le=missing)


def test_missing_video_script(tmp_path):
    proc = run_demo("--input", tmp_path / "missing.mp4", "--model", tmp_path / "m.keras", "--no-display")
    assert_one_line_error(proc, "missing.mp4", "does not exist")


@pytest.mark.shared_data
def test_output_folder_missing_script(videos, trained_model, tmp_path):
    model, le = trained_model
    out = tmp_path / "no" / "such" / "out.mp4"
    proc = run_demo("--input", videos / "real.mp4", "--model", model, "--le", le, "--output", out, "--no-display")
    assert_one_line_error(proc, "does not exist", str(out.parent))
    assert not out.parent.exists()


@pytest.mark.shared_data
def test_undecodable_video_script(trained_model, tmp_path):
    model, le = trained_model
    bad = tmp_path / "x.mp4"
    bad.write_text("this is not a video\n" * 50)
    proc = run_demo("--input", bad, "--model", model, "--le", le, "--no-display")
    assert_one_line_error(proc, "x.mp4")


@pytest.mark.shared_data
def test_missing_webcam_script(trained_model):
    model, le = trained_model
    proc = run_demo("--input", 7, "--model", model, "--le", le, "--no-display")
    last = assert_one_line_error(proc, "webcam 7 does not open")
    assert "--input 0" in last  # suggests another index


class Exploit:
    """Unpickling this would run a shell command."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.shared_data
def test_malicious_label_encoder_is_refused_unrun_script(trained_model, videos, tmp_path):
    model, _ = trained_model
    marker = tmp_path / "pwned"
    evil = tmp_path / "le.pickle"
    evil.write_bytes(pickle.dumps(Exploit(marker)))
    proc = run_demo("--input", videos / "real.mp4", "--model", model, "--le", evil, "--no-display")
    assert_one_line_error(proc, "LabelEncoder")
    assert not marker.exists()


@pytest.mark.shared_data
@pytest.mark.parametrize("problem", ["missing model", "corrupt model", "dict pickle", "3 classes"])
def test_bad_model_or_encoder(problem, trained_model, videos, tmp_path):
    from sklearn.preprocessing import LabelEncoder

    model, le = trained_model
    output = tmp_path / "out.mp4"
    output.write_bytes(b"older")
    if problem == "missing model":
        model, match = tmp_path / "missing.keras", "does not exist"
    elif problem == "corrupt model":
        model, match = tmp_path / "corrupt.keras", "cannot load model"
        model.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, np.uint8).tobytes())
    elif problem == "dict pickle":
        le, match = tmp_path / "le.pickle", "LabelEncoder"
        le.write_bytes(pickle.dumps({"classes_": ["fake", "real"]}))
    else:
        le, match = tmp_path / "le3.pickle", "3 classes"
        le.write_bytes(pickle.dumps(LabelEncoder().fit(["fake", "real", "print"])))
    with pytest.raises(UserError, match=match):
        demo.run(input=videos / "real.mp4", model=model, le=le, output=output, display=False, max_frames=2)
    assert output.read_bytes() == b"older"  # nothing was written
    assert leftovers(tmp_path) == []
