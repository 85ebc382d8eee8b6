"""evaluate.py: a saved model folder scored on crops or videos it never saw, the same
scores the demo gives, and bad inputs."""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

import evaluate
import liveness_demo as demo
from liveness import ROOT
from liveness.challenge import DEFAULT_SETTINGS
from liveness.cli import EXIT_OK, EXIT_USAGE, UserError
from liveness.errors import DataError, ModelError
from liveness.lbp import LBPClassifier
from liveness.model import MANIFEST, write_model
from liveness.motion import DEFAULT_DETECT_EVERY
from liveness.pipeline import Pipeline

FILES = ("_metrics.json", "_predictions.csv", "_roc.png", "_confusion.png")


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def is_png(path: Path) -> bool:
    data = path.read_bytes()
    return data[:8] == b"\x89PNG\r\n\x1a\n" and cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) is not None


def saved_threshold(model: Path) -> float:
    return json.loads((model / MANIFEST).read_text())["threshold"]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """A colour-LBP model folder fitted in a second on random textures: loads and scores
    fast, means nothing (for the tests of files, flags and failures)."""
    rng = np.random.default_rng(0)
    faces = [rng.integers(0, 256, (48, 48, 3), dtype=np.uint8) for _ in range(8)]
    faces += [cv2.GaussianBlur(f, (7, 7), 3) for f in faces]
    folder = tmp_path_factory.mktemp("tiny") / "liveness"
    write_model(folder, {
        "scorer": "lbp", "labels": ["fake", "real"], "live_label": "real", "threshold": 0.5,
        "threshold_source": "set by the test", "padding": 0.0, "lbp_weight": 1.0, "input_size": None,
    }, lbp=LBPClassifier().fit(faces, np.array([1] * 8 + [0] * 8)))
    return folder


@pytest.fixture
def crops_dir(tmp_path) -> Path:
    root = tmp_path / "crops"
    rng = np.random.default_rng(1)
    for label in ("real", "fake"):
        (root / label).mkdir(parents=True)
        for i in range(4):
            cv2.imwrite(str(root / label / f"{i}.png"), rng.integers(0, 256, (40, 40, 3), dtype=np.uint8))
    return root


@pytest.fixture(scope="module")
def face_videos(tmp_path_factory, face_image) -> Path:
    """real.mp4 and fake.mp4: a second of the astronaut each (no shared data needed)."""
    folder = tmp_path_factory.mktemp("face_videos")
    base = cv2.resize(face_image, (256, 256), interpolation=cv2.INTER_AREA)
    for name, image in (("real.mp4", base), ("fake.mp4", cv2.flip(base, 1))):
        writer = cv2.VideoWriter(str(folder / name), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (256, 256))
        assert writer.isOpened()
        for i in range(10):
            writer.write(np.roll(image, i, axis=1))
        writer.release()
    return folder


# --- on the shared data ------------------------------------------------------------------


@pytest.mark.shared_data
@pytest.mark.slow
def test_evaluate_crops_of_a_subject(trained_model, shared_data, tmp_path):
    prefix = tmp_path / "eval" / "subject07"
    metrics = evaluate.run(model=trained_model, dataset=[shared_data / "crops" / "subject07"], output=prefix)
    for suffix in FILES:
        assert Path(f"{prefix}{suffix}").is_file(), suffix
    saved = json.loads(Path(f"{prefix}_metrics.json").read_text())
    m = saved["evaluation"]
    assert (m["n_live"], m["n_attack"]) == (99, 98)  # every crop of subject07 (README)
    assert m["threshold"] == pytest.approx(saved_threshold(trained_model))  # the saved operating point
    for key in ("apcer", "bpcer", "acer", "auc", "eer"):
        assert 0.0 <= m[key] <= 1.0
    (tn, fp), (fn, tp) = m["confusion"]
    assert (tn + fp, fn + tp) == (98, 99)
    assert saved["model"] == str(trained_model) and saved["classification_report"]
    assert saved["failed_videos"] == []
    assert m == metrics["evaluation"]
    rows = read_csv(Path(f"{prefix}_predictions.csv"))
    assert len(rows) == 197
    assert all(Path(r["path"]).is_relative_to(shared_data / "crops" / "subject07") for r in rows)
    assert all(r["label"] == Path(r["path"]).parent.name for r in rows)
    assert all(r["decision"] == ("real" if float(r["score_live"]) >= m["threshold"] else "fake") for r in rows)
    assert is_png(Path(f"{prefix}_roc.png")) and is_png(Path(f"{prefix}_confusion.png"))


@pytest.mark.shared_data
@pytest.mark.slow
def test_threshold_overrides_the_saved_one(trained_model, shared_data, tmp_path):
    prefix = tmp_path / "accept_all"
    metrics = evaluate.run(
        model=trained_model, dataset=[shared_data / "crops" / "subject09"], output=prefix, threshold=0.0, backend="tf",
    )
    m = metrics["evaluation"]
    assert m["threshold"] == 0.0
    assert (m["n_live"], m["n_attack"]) == (26, 26)
    assert m["apcer"] == 1.0 and m["bpcer"] == 0.0  # every face accepted as live


@pytest.mark.shared_data
@pytest.mark.slow
def test_evaluate_videos(trained_model, shared_data, tmp_path):
    prefix = tmp_path / "videos"
    folder = shared_data / "videos" / "subject02"
    metrics = evaluate.run(model=trained_model, videos=folder, output=prefix, skip=10)
    for suffix in FILES:
        assert Path(f"{prefix}{suffix}").is_file(), suffix
    rows = read_csv(Path(f"{prefix}_predictions.csv"))
    assert {Path(r["path"]).name for r in rows} == {"real.mp4", "fake.mp4"}
    for r in rows:
        assert r["label"] == Path(r["path"]).stem  # the label comes from the file name
        assert r["group"] == "subject02"
        assert 0.0 <= float(r["score_live"]) <= 1.0
    m = metrics["evaluation"]
    assert m["n_live"] > 0 and m["n_attack"] > 0
    assert m["n_live"] + m["n_attack"] == len(rows)
    # 3.7 s and 2.6 s at 30 fps, every 10th frame: at most 12 and 8 faces
    assert m["n_live"] <= 12 and m["n_attack"] <= 8
    sources = metrics["per_source"]
    assert len(sources) == 2 and sorted(s["live"] for s in sources) == [False, True]
    assert all(re.fullmatch(r"subject02_(real|fake)_[0-9a-f]{8}", s["source"]) for s in sources)


class Recording(Pipeline):
    """The pipeline as it is, keeping every frame's raw scores at full precision."""

    calls: list[list[float]]

    def process(self, frame):
        results = super().process(frame)
        type(self).calls.append([r.raw_score for r in results])
        return results


@pytest.mark.shared_data
@pytest.mark.slow
def test_evaluate_videos_scores_what_the_demo_scores(trained_model, shared_data, tmp_path, monkeypatch):
    """The same frames of a shared video give the same per-face raw scores in
    `evaluate.py --videos` (score_live) and in `liveness_demo.py --json` (raw_score),
    with the fixture's crop padding of 0.1."""
    assert json.loads((trained_model / MANIFEST).read_text())["padding"] == 0.1
    # The first 24 frames of a shared video (re-encoded once: both read the same file). Every
    # frame, as the demo sees them: both run the detector on every 4th frame and carry the
    # boxes between by optical flow, so the same frames give the same boxes.
    video, skip = tmp_path / "subject02" / "fake.mp4", 1
    video.parent.mkdir()
    cap = cv2.VideoCapture(str(shared_data / "videos" / "subject02" / "fake.mp4"))
    writer = None
    for _ in range(24):
        ok, frame = cap.read()
        assert ok
        if writer is None:
            writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, frame.shape[1::-1])
        writer.write(frame)
    writer.release()
    cap.release()

    class EvaluateRecording(Recording):
        calls = []

    class DemoRecording(Recording):
        calls = []

    monkeypatch.setattr(evaluate, "Pipeline", EvaluateRecording)
    prefix = tmp_path / "parity"
    evaluate.run(model=trained_model, videos=video, output=prefix, skip=skip)
    monkeypatch.setattr(demo, "Pipeline", DemoRecording)
    stream = io.StringIO()
    n_frames = skip * (len(EvaluateRecording.calls) - 1) + 1
    demo.run(input=video, model=trained_model, display=False, json_lines=True, json_stream=stream, max_frames=n_frames)

    evaluated, shown = EvaluateRecording.calls, DemoRecording.calls
    assert len(evaluated) == len(shown) == n_frames == 24
    compared = 0
    for k, scores in enumerate(evaluated):  # evaluate's k-th frame is the video's frame skip * k
        assert len(scores) == len(shown[skip * k]), k
        np.testing.assert_allclose(scores, shown[skip * k], rtol=1e-9, atol=0)
        compared += len(scores)
    assert compared >= 6
    # What the files hold is those numbers, rounded for print: score_live to 6 places, raw_score to 4.
    rows = read_csv(Path(f"{prefix}_predictions.csv"))
    np.testing.assert_allclose([float(r["score_live"]) for r in rows], [s for c in evaluated for s in c], rtol=0, atol=5e-7)
    records = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [r["frame"] for r in records] == list(range(n_frames))
    np.testing.assert_allclose(
        [f["raw_score"] for r in records for f in r["faces"]], [s for c in shown for s in c], rtol=0, atol=5e-5,
    )


# --- failures that skip one input, not the run ----------------------------------------------


def test_undecodable_video_is_reported_and_skipped(tiny_model, face_videos, tmp_path):
    folder = tmp_path / "videos"
    folder.mkdir()
    for name in ("real.mp4", "fake.mp4"):
        (folder / name).symlink_to(face_videos / name)
    (folder / "fake_broken.mp4").write_text("this is not a video\n" * 20)
    prefix = tmp_path / "out" / "e"
    (tmp_path / "out").mkdir()
    opt = evaluate.parse_opt(["--model", str(tiny_model), "--videos", str(folder), "--output", str(prefix), "--skip", "2"])
    code = evaluate.main(opt)
    assert code == EXIT_OK  # skipped, counted, reported: non-zero only when nothing was usable
    saved = json.loads(Path(f"{prefix}_metrics.json").read_text())
    assert saved["failed_videos"] == [str(folder / "fake_broken.mp4")]
    rows = read_csv(Path(f"{prefix}_predictions.csv"))
    assert {Path(r["path"]).name for r in rows} == {"real.mp4", "fake.mp4"}  # the rest were evaluated
    assert saved["evaluation"]["n_live"] == saved["evaluation"]["n_attack"] == 5  # 10 frames, every 2nd


def test_unreadable_images_are_skipped_with_a_warning(tiny_model, crops_dir, tmp_path, caplog):
    (crops_dir / "real" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"junk" * 20)
    (crops_dir / "fake" / "empty.jpg").write_bytes(b"")
    prefix = tmp_path / "e"
    with caplog.at_level(logging.WARNING, logger="liveness"):
        metrics = evaluate.run(model=tiny_model, dataset=[crops_dir], output=prefix)
    assert any("skipped" in r.getMessage() and "unreadable" in r.getMessage() for r in caplog.records)
    assert (metrics["evaluation"]["n_live"], metrics["evaluation"]["n_attack"]) == (4, 4)
    rows = read_csv(Path(f"{prefix}_predictions.csv"))
    assert len(rows) == 8 and not any(Path(r["path"]).name in ("broken.png", "empty.jpg") for r in rows)


def test_only_unreadable_images_is_a_data_error(tiny_model, tmp_path):
    for label in ("real", "fake"):
        (tmp_path / "ds" / label).mkdir(parents=True)
        (tmp_path / "ds" / label / "0.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="no readable images"):
        evaluate.run(model=tiny_model, dataset=[tmp_path / "ds"], output=tmp_path / "e")
    assert not list(tmp_path.glob("e_*"))


# --- bad inputs ----------------------------------------------------------------------------


def test_refuses_both_dataset_and_videos(tiny_model, crops_dir, tmp_path):
    with pytest.raises(UserError, match="either --dataset .* or --videos"):
        evaluate.run(model=tiny_model, dataset=[crops_dir], videos=tmp_path, output=tmp_path / "e")


def test_refuses_neither_dataset_nor_videos(tiny_model, tmp_path):
    with pytest.raises(UserError, match="either --dataset .* or --videos"):
        evaluate.run(model=tiny_model, output=tmp_path / "e")


def test_refuses_missing_model(crops_dir, tmp_path):
    with pytest.raises(ModelError, match=r"model .*missing does not exist"):
        evaluate.run(model=tmp_path / "missing", dataset=[crops_dir], output=tmp_path / "e")
    assert not list(tmp_path.glob("e_*"))


def test_refuses_missing_videos(tiny_model, tmp_path):
    with pytest.raises(UserError, match="--videos .* does not exist"):
        evaluate.run(model=tiny_model, videos=tmp_path / "nope", output=tmp_path / "e")


def test_refuses_labels_the_model_does_not_know(tiny_model, crops_dir, tmp_path):
    (crops_dir / "fake").rename(crops_dir / "print")
    with pytest.raises(DataError, match="labels print are not among the model's classes"):
        evaluate.run(model=tiny_model, dataset=[crops_dir], output=tmp_path / "e")


def test_tiny_crops_write_every_file(tiny_model, crops_dir, tmp_path):
    prefix = tmp_path / "out" / "tiny"
    metrics = evaluate.run(model=tiny_model, dataset=[crops_dir], output=prefix)
    for suffix in FILES:
        assert Path(f"{prefix}{suffix}").is_file(), suffix
    assert (metrics["evaluation"]["n_live"], metrics["evaluation"]["n_attack"]) == (4, 4)
    assert metrics["evaluation"]["threshold"] == saved_threshold(tiny_model)
    assert len(read_csv(Path(f"{prefix}_predictions.csv"))) == 8


def run_script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "evaluate.py"), *args],
        cwd=ROOT, capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, timeout=300,
    )


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "either --dataset"),
        (["--dataset", "{crops}", "--model", "{tmp}/missing"], "missing does not exist"),
        (["--dataset", "{crops}", "--model", "{tmp}/old.keras"], "previous release"),
        (["--videos", "{tmp}/nope"], "--videos"),
    ],
    ids=["neither", "missing-model", "old-keras-file", "missing-videos"],
)
def test_script_exits_2_with_one_error_line(tiny_model, crops_dir, tmp_path, args, message):
    (tmp_path / "old.keras").write_bytes(b"PK\x03\x04")
    base = ["--model", str(tiny_model), "--output", str(tmp_path / "e")]
    proc = run_script(*base, *[a.format(crops=crops_dir, tmp=tmp_path) for a in args])
    assert proc.returncode == EXIT_USAGE, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("[ERROR]")]
    assert len(errors) == 1 and message in errors[0], proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == errors[0]
    assert "Traceback" not in proc.stderr + proc.stdout


@pytest.mark.parametrize("flag, value", [("--threshold", "1.5"), ("--threshold", "-0.1"), ("--skip", "0"), ("--confidence", "nan"),
                                         ("--blink-depth", "1"), ("--blink-sweep", "0")])
def test_script_refuses_bad_numbers(tiny_model, tmp_path, flag, value):
    proc = run_script("--model", str(tiny_model), "--videos", str(tmp_path), "--output", str(tmp_path / "e"), flag, value)
    assert proc.returncode == EXIT_USAGE, proc.stderr
    assert flag in proc.stderr.strip().splitlines()[-1] and "Traceback" not in proc.stderr
    assert not list(tmp_path.glob("e_*"))


# --- the blink detector against hand-labelled videos (--blinks) -------------------------------


@pytest.mark.shared_data
def test_blinks_per_video_and_in_all(shared_data, tmp_path):
    labels = tmp_path / "blinks.csv"  # a label where subject02/fake shows no blink: found 0 of 1
    labels.write_text("# a note\nvideo,start_frame,end_frame\nsubject02/fake.mp4,10,14\n")
    prefix = tmp_path / "out" / "e"
    (tmp_path / "out").mkdir()
    code = evaluate.main(evaluate.parse_opt(["--blinks", str(labels), "--videos", str(shared_data / "videos"), "--output", str(prefix)]))
    assert code == EXIT_OK
    saved = json.loads(Path(f"{prefix}_blinks.json").read_text())
    (row,) = saved["per_video"]
    assert row["video"] == "subject02/fake.mp4" and (row["labelled"], row["found"]) == (1, 0)
    assert row["false"] == len(row["detected_onsets"]) and row["seconds"] == pytest.approx(77 / 30, abs=0.01)
    assert saved["total"]["recall"] == 0.0 and saved["total"]["labelled"] == 1
    assert saved["detect_every"] == DEFAULT_DETECT_EVERY  # the faces found as the demo finds them
    assert saved["blink_depth"] == DEFAULT_SETTINGS.min_dip and saved["sweep"] == []
    # --detect-every reaches the blink evaluation (1 = the SSD on every frame), --blink-depth the
    # detector, and --blink-sweep scores other depths on the same landmarks.
    code = evaluate.main(evaluate.parse_opt(["--blinks", str(labels), "--videos", str(shared_data / "videos"),
                                             "--output", str(prefix), "--detect-every", "1",
                                             "--blink-depth", "0.3", "--blink-sweep", "0.3", "0.6"]))
    saved = json.loads(Path(f"{prefix}_blinks.json").read_text())
    assert code == EXIT_OK and saved["detect_every"] == 1 and saved["blink_depth"] == 0.3
    assert [row["depth"] for row in saved["sweep"]] == [0.3, 0.6]
    assert saved["sweep"][0] == {"depth": 0.3, **saved["total"]}


def test_blinks_bad_inputs(tmp_path):
    labels = tmp_path / "blinks.csv"
    labels.write_text("video,start_frame,end_frame\nnope.mp4,1,2\n")
    with pytest.raises(UserError, match="--blinks needs --videos"):
        evaluate.run(blinks=labels, output=tmp_path / "e")
    with pytest.raises(UserError, match=r"names 1 video\(s\) not under --videos"):
        evaluate.run(blinks=labels, videos=tmp_path, output=tmp_path / "e")
    labels.write_text("video,start_frame,end_frame\nnope.mp4,5,2\n")
    with pytest.raises(DataError, match="row 1"):
        evaluate.run(blinks=labels, videos=tmp_path, output=tmp_path / "e")
    assert not list(tmp_path.glob("e_*"))
