"""Issue 12, "nothing silent, nothing lost": one test per numbered case of the issue that
no other test file covers (the others are named in a comment at their case).

Every failure must end in ONE `[ERROR]` line (or the right `[WARNING]`), the documented
exit code, and leave what the user had: the previous model folder, video, crops or
reports, and no temporary file. Full disks are a child process under
`RLIMIT_FSIZE` (a write past it fails with EFBIG, as on a full disk); the silent stream
is a local socket that accepts and never answers (`silent_server` in test_demo.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

import evaluate
import gather_examples
import train
from liveness import ROOT
from liveness.cli import EXIT_INTERRUPTED, EXIT_USAGE
from liveness.crops import MANIFEST_NAME, crop_name, read_manifest
from liveness.errors import ModelError, OutputError
from liveness.model import MANIFEST
from servers import quiet_server
from test_demo import silent_server, write_tiny_model  # noqa: F401  (silent_server is a fixture)
from test_train import write_dataset

GROUP_PATTERN = r"subj\d+"
LIBRARY_NOISE = ("libpng", "[ERROR:0@", "[ WARN:0@", "absl::InitializeLog", "oneDNN", "cuda", "Traceback")


# --- helpers -------------------------------------------------------------------------------
def run_script(script: str, *args, limit: int | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """A script as a user runs it; with `limit`, no file it writes may pass that many bytes."""

    def cap_files() -> None:  # in the child, before exec
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENCV_", "TF_CPP"))}
    return subprocess.run(
        [sys.executable, str(ROOT / script), *map(str, args)], cwd=ROOT, env=env, capture_output=True,
        text=True, timeout=timeout, preexec_fn=cap_files if limit else None,
    )


def one_error_line(proc: subprocess.CompletedProcess, *words: str, code: int = EXIT_USAGE) -> str:
    """Exit `code`, no traceback, exactly one [ERROR] line and it is the last; returns it."""
    assert proc.returncode == code, (proc.returncode, proc.stderr[-3000:])
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("[ERROR]")]
    assert len(errors) == 1 and proc.stderr.strip().splitlines()[-1] == errors[0], proc.stderr[-3000:]
    for word in words:
        assert word in errors[0], errors[0]
    return errors[0]


def only_log_lines(stderr: str) -> None:
    """stderr holds our [INFO]/[WARNING]/[ERROR] lines and nothing a library printed."""
    for line in stderr.splitlines():
        assert line.startswith(("[INFO]", "[WARNING]", "[ERROR]")) or not line.strip(), stderr[-3000:]
        assert not any(noise in line for noise in LIBRARY_NOISE), line


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under `folder` (hidden ones too): its sha1."""
    return {str(p.relative_to(folder)): hashlib.sha1(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def temporaries(folder: Path) -> list[str]:
    """What atomic writes and the model's staging folder leave behind on failure (nothing)."""
    return sorted(p.name for p in folder.rglob("*") if ".tmp" in p.name or ".previous" in p.name or ".probe" in p.name)


def no_control_characters(text: str) -> None:
    assert not any(ord(c) < 32 and c not in "\n\t" or c == "\x7f" for c in text), repr(text[-500:])


# --- fixtures ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """3 subjects x (real, fake) x 6 frames of 24x24 crops, plus one corrupt PNG."""
    root = write_dataset(tmp_path_factory.mktemp("robust") / "dataset", subjects=3, frames=6, size=24)
    (root / "real" / crop_name(f"subj0_real_{0:08x}", 99)).write_bytes(b"\x89PNG\r\n\x1a\n" + b"broken" * 20)
    return root


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    return write_tiny_model(tmp_path_factory.mktemp("tiny") / "liveness")


@pytest.fixture(scope="module")
def face_video(tmp_path_factory, face_image) -> Path:
    """subjectA/real.mp4: 6 frames of a face photo, each crop larger than 2 KB."""
    path = tmp_path_factory.mktemp("videos") / "subjectA" / "real.mp4"
    path.parent.mkdir()
    base = cv2.resize(face_image, (320, 320), interpolation=cv2.INTER_AREA)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (320, 320))
    for i in range(6):
        writer.write(np.roll(base, i, axis=1))
    writer.release()
    return path


@pytest.fixture
def old_model(tmp_path) -> tuple[Path, dict[str, str]]:
    """A model folder the user already has, and its snapshot."""
    folder = write_tiny_model(tmp_path / "out" / "liveness", threshold=0.42)
    (folder / "metrics.json").write_text('{"old": true}\n')
    return folder, snapshot(folder)


# --- 1, 2, 5, 9: the model loader ---------------------------------------------------------------
# 1  no manifest / a list / a folder: test_demo.py::test_broken_model_folder_is_refused_script["no manifest"],
#    test_model.py::test_manifests_that_are_not_a_json_object_are_refused[b"[1, 2]"],
#    test_model.py::test_a_manifest_that_is_a_folder_is_refused; evaluate.py below.
# 2  NaN, live_label, threshold true / "0.5", padding 1e6: test_model.py::test_every_manifest_field_is_validated,
#    test_model.py::test_an_edited_manifest_is_refused (any edit breaks the checksum).
# 5  null, "x", 5, "abc", invalid UTF-8, 100,000 '[', 5,001 digits: the same two test_model.py tests.
# 9  an lbp.npz asking for size 4,000: test_model.py::test_an_lbp_file_asking_for_huge_features_is_refused.
def test_1_evaluate_refuses_a_model_without_its_manifest(tiny_model, dataset, tmp_path):
    copy = tmp_path / "copied"
    shutil.copytree(tiny_model, copy)
    (copy / MANIFEST).unlink()
    prefix = tmp_path / "reports" / "e"
    proc = run_script("evaluate.py", "--model", copy, "--dataset", dataset, "--output", prefix)
    one_error_line(proc, str(copy), "has no manifest.json")
    assert not list(tmp_path.glob("reports/e_*"))  # no report at a threshold nobody chose


def test_2_json_lines_stay_valid_json_when_a_score_is_nan(tiny_model, face_video, monkeypatch):
    """Whatever a model computes, --json writes JSON (NaN is not JSON: it becomes null)."""
    import io

    import liveness_demo
    from liveness.model import LivenessModel

    monkeypatch.setattr(LivenessModel, "score", lambda self, faces: np.full(len(faces), np.nan))
    stream = io.StringIO()
    liveness_demo.run(input=face_video, model=tiny_model, display=False, json_lines=True, json_stream=stream, max_frames=3)

    def refuse(constant):
        raise ValueError(f"{constant} in a JSON line")

    lines = [json.loads(line, parse_constant=refuse) for line in stream.getvalue().splitlines()]
    faces = [f for line in lines for f in line["faces"]]
    assert len(lines) == 3 and faces and all(f["raw_score"] is None for f in faces)


# --- 3, 6: full disks and unwritable targets ------------------------------------------------------
# 3  demo --output on a full disk: test_demo.py::test_full_disk_keeps_the_previous_output_script.
def test_3_json_lines_to_a_full_disk_end_with_one_line(tiny_model, face_video, tmp_path):
    """`--json > file` on a full disk: the shell owns the file, the demo stops with one line."""
    out = tmp_path / "verdicts.jsonl"
    with open(out, "w") as fh:
        proc = subprocess.run(
            [sys.executable, str(ROOT / "liveness_demo.py"), "--input", str(face_video), "--model", str(tiny_model),
             "--no-display", "--json"], cwd=ROOT, stdout=fh, stderr=subprocess.PIPE, text=True, timeout=120,
            preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (300, 300)),
        )
    proc.stdout = ""
    one_error_line(proc, "JSON lines")


def test_6_gather_on_a_full_disk_keeps_the_crops_and_manifest(face_video, tmp_path):
    out = tmp_path / "crops"
    code, _ = gather_examples.run(input=face_video, output=out, max_frames=1, progress=False)
    assert code == 0
    before = snapshot(out)
    proc = run_script("gather_examples.py", "--input", face_video, "--output", out, "--no-progress", limit=2 * 1024)
    one_error_line(proc, "File too large")
    assert snapshot(out) == before and temporaries(out) == []


def test_6_train_on_a_full_disk_keeps_the_previous_model(dataset, old_model, tmp_path):
    folder, before = old_model
    proc = run_script("train.py", "--dataset", dataset, "--model", folder, "--group-pattern", GROUP_PATTERN,
                      "--folds", "2", limit=8 * 1024)
    one_error_line(proc, "File too large")
    assert snapshot(folder) == before
    assert temporaries(folder.parent) == []


def test_6_train_to_proc_fails_before_training(dataset, monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr(train, "open_dataset", never)
    with pytest.raises(OutputError, match="/proc") as e:
        train.run(dataset=[dataset], model="/proc/liveness")
    assert "\n" not in str(e.value)


def test_6_demo_output_under_proc_is_refused_before_anything_runs(tiny_model, face_video):
    proc = run_script("liveness_demo.py", "--input", face_video, "--model", tiny_model, "--no-display",
                      "--output", "/proc/x.mp4")
    one_error_line(proc, "/proc/x.mp4", "not writable")


def test_6_evaluate_reports_on_a_full_disk_keep_the_previous_ones(tiny_model, dataset, tmp_path):
    prefix = tmp_path / "e"
    evaluate.run(model=tiny_model, dataset=[dataset], output=prefix)
    before = snapshot(tmp_path)
    assert 1024 < (tmp_path / "e_predictions.csv").stat().st_size < 8 * 1024 < (tmp_path / "e_roc.png").stat().st_size
    # predictions.csv fits under the limit, roc.png does not: the four reports are one unit
    proc = run_script("evaluate.py", "--model", tiny_model, "--dataset", dataset, "--output", prefix, limit=8 * 1024)
    one_error_line(proc, "File too large")
    assert snapshot(tmp_path) == before and temporaries(tmp_path) == []


# --- 7, 8: odd values ----------------------------------------------------------------------------
# 7  train --padding nan/inf/1e308, --input-size 0: test_train.py::test_numeric_flags_are_range_checked.
@pytest.mark.parametrize("value", ["nan", "inf", "1e308", "-0.1"])
def test_7_gather_padding_must_be_a_finite_fraction(value, capsys):
    with pytest.raises(SystemExit) as e:
        gather_examples.parse_opt(["--input", "v.mp4", "--output", "o", "--padding", value])
    assert e.value.code == EXIT_USAGE
    assert "--padding" in capsys.readouterr().err


def test_8_label_encoder_with_one_class_twice_is_refused(tiny_model, face_video, tmp_path):
    from sklearn.preprocessing import LabelEncoder

    le = LabelEncoder().fit(["fake", "real"])
    le.classes_ = np.array(["real", "real"])
    path = tmp_path / "le.pickle"
    path.write_bytes(pickle.dumps(le))
    output = tmp_path / "out.mp4"
    output.write_bytes(b"the previous video")
    proc = run_script("liveness_demo.py", "--input", face_video, "--model", tiny_model, "--le", path,
                      "--no-display", "--output", output)
    one_error_line(proc, "le.pickle", "two different classes")
    assert output.read_bytes() == b"the previous video" and temporaries(tmp_path) == []


# --- 10: a stream that accepts and never answers ----------------------------------------------------
def ctrl_c(proc: subprocess.Popen) -> tuple[str, float]:
    """Send SIGINT (Ctrl-C); (its stderr, seconds it took to end)."""
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=10)
    return stderr, time.monotonic() - sent


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.communicate()


# The timeout itself: test_demo.py::test_silent_stream_times_out_with_one_line_script.
def test_10_ctrl_c_while_a_stream_is_silent_ends_at_once(tiny_model, silent_server):  # noqa: F811
    url, held = silent_server
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "liveness_demo.py"), "--input", url, "--model", str(tiny_model),
         "--no-display", "--timeout", "60"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not held and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert held, "the demo never connected"
        time.sleep(0.5)  # inside OpenCV's open, waiting for an answer
        stderr, took = ctrl_c(proc)
    finally:
        stop(proc)
    assert proc.returncode == EXIT_INTERRUPTED, stderr[-2000:]
    assert took < 2.0, took
    assert "Traceback" not in stderr and stderr.strip().splitlines()[-1] == "[WARNING] interrupted", stderr[-2000:]


@pytest.fixture
def stalling_server():
    """An MJPEG-over-HTTP server that sends a few frames per connection, then nothing: its URL."""
    frame = cv2.imencode(".jpg", np.full((120, 160, 3), 90, np.uint8))[1].tobytes()
    part = b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(frame) + frame + b"\r\n"
    header = b"HTTP/1.0 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=frame\r\n\r\n"
    with quiet_server("live.mjpg", reply=header + part * 30) as (url, _):
        yield url


def test_10_ctrl_c_while_a_stream_stalls_ends_at_once(tiny_model, stalling_server):
    """A stream that delivered frames and went silent: Ctrl-C ends the demo (exit 0, a live
    source has no end) with its summary, without waiting for the read timeout."""
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "liveness_demo.py"), "--input", stalling_server, "--model", str(tiny_model),
         "--no-display", "--json", "--timeout", "60"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert json.loads(proc.stdout.readline())["frame"] >= 0  # it runs
        time.sleep(1.0)  # the frames are used up: the reader waits in FFmpeg
        stderr, took = ctrl_c(proc)
    finally:
        stop(proc)
    assert proc.returncode == 0, stderr[-2000:]
    assert took < 2.0, took
    only_log_lines(stderr)
    assert "(interrupted)" in stderr.strip().splitlines()[-1], stderr[-2000:]


# --- 11: Ctrl-C while train.py saves ------------------------------------------------------------
def _interrupt(*args, **kwargs):
    raise KeyboardInterrupt


@pytest.mark.parametrize("where", ["saving lbp.npz", "writing the reports"])
def test_11_ctrl_c_while_saving_keeps_the_old_model_and_its_reports(where, dataset, old_model, monkeypatch):
    folder, before = old_model
    if where == "saving lbp.npz":
        from liveness.lbp import LBPClassifier

        monkeypatch.setattr(LBPClassifier, "save", _interrupt)
    else:
        monkeypatch.setattr(train, "write_evaluation", _interrupt)
    with pytest.raises(KeyboardInterrupt):
        train.run(dataset=[dataset], model=folder, group_pattern=GROUP_PATTERN, folds=2)
    assert snapshot(folder) == before
    assert json.loads((folder / MANIFEST).read_text())["threshold"] == 0.42
    assert temporaries(folder.parent) == []


# --- 12: one crop geometry per folder --------------------------------------------------------------
def test_12_gather_refuses_to_mix_paddings(face_video, tmp_path):
    out = tmp_path / "crops"
    gather_examples.run(input=face_video, output=out, max_frames=1, padding=0.0, progress=False)
    assert {r.padding for r in read_manifest(out).values()} == {0.0}
    before = snapshot(out)
    proc = run_script("gather_examples.py", "--input", face_video, "--output", out, "--padding", "0.2", "--no-progress")
    one_error_line(proc, "--padding 0", "--mixed-padding")
    assert snapshot(out) == before
    code, _ = gather_examples.run(input=face_video, output=out, max_frames=2, padding=0.2, mixed_padding=True, progress=False)
    rows = sorted(read_manifest(out).values(), key=lambda r: r.frame)
    assert code == 0 and [(r.frame, r.padding) for r in rows] == [(0, 0.0), (1, 0.2)]  # the frame-0 crop was cut at 0


# --- 4, 13: one policy for unreadable inputs --------------------------------------------------------
# 13 evaluate --videos goes on past an undecodable video: test_evaluate.py::test_undecodable_video_is_reported_and_skipped;
#    gather does the same: test_gather.py::test_folder_with_a_bad_file_processes_the_good_one.
# 4  warned: test_evaluate.py::test_unreadable_images_are_skipped_with_a_warning; counted in the summary here.
def test_4_evaluate_counts_unreadable_images_in_its_summary(tiny_model, dataset, tmp_path):
    proc = run_script("evaluate.py", "--model", tiny_model, "--dataset", dataset, "--output", tmp_path / "e")
    assert proc.returncode == 0, proc.stderr[-2000:]
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("[WARNING]")]
    assert len(warnings) == 1 and "skipped 1 unreadable image" in warnings[0], proc.stderr
    saved = json.loads((tmp_path / "e_metrics.json").read_text())
    assert saved["unreadable"] == [str(dataset / "real" / crop_name(f"subj0_real_{0:08x}", 99))]
    only_log_lines(proc.stderr)


# --- 14: stray library output, control characters -------------------------------------------------
def test_14_train_prints_only_log_lines(dataset, tmp_path):
    """The corrupt PNG of `dataset` makes libpng and OpenCV complain, unless silenced."""
    proc = run_script("train.py", "--dataset", dataset, "--model", tmp_path / "m", "--group-pattern", GROUP_PATTERN,
                      "--folds", "2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    only_log_lines(proc.stderr)
    assert any("skipped 1 unreadable image" in line for line in proc.stderr.splitlines()), proc.stderr[-3000:]


# What train.py --scorer cnn does with TensorFlow, in a tenth of its time (four fits there):
# import Keras the suite's way, fit one epoch, run the CNN as the demo does (ONNX export).
# `train.py --scorer cnn --epochs 1` on `dataset` gave the same clean stderr when run by hand.
CNN_RUN = """
import numpy as np
from liveness.cli import setup_logging
setup_logging()
from liveness.nets import LivenessNet
from liveness.runtime import CNNRunner
model = LivenessNet.build(16, 16, 3, 2)
model.compile(optimizer="adam", loss="categorical_crossentropy")
x = np.random.default_rng(0).integers(0, 256, (8, 16, 16, 3)).astype(np.float32)
model.fit(x, np.eye(2)[[0, 1] * 4], epochs=1, verbose=0)
print(CNNRunner(model).probabilities([np.zeros((20, 20, 3), np.uint8)]).shape)
# Case 2 for the CNN: a cnn.keras whose weights are NaN would call every face an attack.
import sys
from liveness.errors import ModelError
from liveness.model import load_model, write_model
model.set_weights([np.full_like(w, np.nan) for w in model.get_weights()])
folder = sys.argv[1]
write_model(folder, {"scorer": "cnn", "labels": ["fake", "real"], "live_label": "real", "threshold": 0.5,
                     "threshold_source": "test", "padding": 0.0, "lbp_weight": 0.0, "input_size": 16}, cnn=model)
try:
    load_model(folder)
except ModelError as e:
    print(e)
"""


@pytest.mark.slow
def test_14_tensorflow_start_up_prints_nothing_and_2_nan_cnn_weights_are_refused(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TF_CPP")}
    proc = subprocess.run([sys.executable, "-c", CNN_RUN, str(tmp_path / "nan")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.splitlines() == ["(1, 2)", f"model {tmp_path / 'nan'}: cnn.keras holds weights that are not finite numbers"]
    assert proc.stderr == "", proc.stderr[-3000:]


def test_14_library_warnings_are_one_log_line(tmp_path):
    """matplotlib's UserWarning (one class evaluated: no curve to label) reaches the user as one [WARNING] line."""
    code = (
        "from liveness.cli import setup_logging; setup_logging()\n"
        "import matplotlib; matplotlib.use('Agg'); import matplotlib.pyplot as plt\n"
        "fig, ax = plt.subplots(); ax.legend()\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("[WARNING] UserWarning: No artists with labels"), proc.stderr


@pytest.mark.parametrize("edit", [{"threshold": 0.01}, {"threshold": None}, {"padding": 1e6}])
def test_14_model_errors_name_no_flag(edit, tiny_model, tmp_path):
    """The user gave no flag: a bad manifest is blamed on the file and field, never on --threshold."""
    from liveness.model import load_model

    copy = tmp_path / "model"
    shutil.copytree(tiny_model, copy)
    manifest = json.loads((copy / MANIFEST).read_text())
    (copy / MANIFEST).write_text(json.dumps({**manifest, **edit}))
    with pytest.raises(ModelError) as e:
        load_model(copy)
    assert str(copy / MANIFEST) in str(e.value) or f"model {copy}" in str(e.value)
    assert "--" not in str(e.value) and "\n" not in str(e.value)


def test_14_control_characters_from_files_are_not_echoed(tiny_model, face_video, tmp_path):
    # A model manifest field holding NUL and an escape sequence: the error names it escaped.
    copy = tmp_path / "model"
    shutil.copytree(tiny_model, copy)
    manifest = json.loads((copy / MANIFEST).read_text())
    manifest["format"] = "liveness\x00\x1b[2J"
    (copy / MANIFEST).write_text(json.dumps(manifest))
    proc = run_script("liveness_demo.py", "--input", face_video, "--model", copy, "--no-display")
    line = one_error_line(proc, "format")
    no_control_characters(proc.stderr)
    assert "\\x00" in line
    # A video whose name holds an escape sequence and a bell, and a crop manifest with a NUL
    # byte and invalid UTF-8: gather says what failed, in printable text.
    out = tmp_path / "crops"
    out.mkdir()
    (out / MANIFEST_NAME).write_bytes(b"file,source\nx\x00y,\xff\xfe\n")
    bad = tmp_path / "bad\x1b[31m\x07.mp4"
    bad.write_text("not a video")
    proc = run_script("gather_examples.py", "--input", bad, "--output", out, "--no-progress")
    one_error_line(proc, "bad")
    no_control_characters(proc.stderr)
    proc = run_script("gather_examples.py", "--input", face_video, "--output", out, "--no-progress", "--max-frames", "1")
    one_error_line(proc, "manifest.csv", "move it aside")
    assert (out / MANIFEST_NAME).read_bytes() == b"file,source\nx\x00y,\xff\xfe\n"  # the user's file, untouched
