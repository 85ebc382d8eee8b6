"""Tests for gather_examples.py and the crop naming / frame helpers it stands on.

Unit tests use a short video of the scikit-image astronaut written into tmp_path;
the `shared_data` tests run the script on real recordings in ../shared/data.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

import gather_examples
from liveness import ROOT
from liveness import detector as det
from liveness.cli import EXIT_OK, EXIT_USAGE
from liveness.errors import DataError, LivenessError, OutputError
from liveness.crops import MANIFEST_NAME, crop_name, parse_crop_name, read_manifest, source_key, video_digest
from liveness.sources import iter_frames, list_videos

N_FRAMES = 10
SIZE = 320


# --- helpers -------------------------------------------------------------------------


def write_face_video(path: Path, face_image: np.ndarray, *, n: int = N_FRAMES, mirror: bool = False) -> Path:
    """`n` frames of the astronaut at SIZE x SIZE, drifting a pixel a frame (mp4v)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    base = cv2.resize(face_image, (SIZE, SIZE), interpolation=cv2.INTER_AREA)
    if mirror:
        base = cv2.flip(base, 1)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (SIZE, SIZE))
    assert writer.isOpened()
    for i in range(n):
        writer.write(np.roll(base, i, axis=1))
    writer.release()
    return path


def header_only_copy(video: Path, dest: Path) -> Path:
    """The MP4 with its media data box removed: a valid header that says N frames, no frames."""
    data, boxes, i = video.read_bytes(), [], 0
    while i < len(data):
        size, kind = struct.unpack(">I4s", data[i:i + 8])
        boxes.append((kind, data[i:i + size]))
        i += size
    assert b"mdat" in dict(boxes) and b"moov" in dict(boxes)
    dest.write_bytes(b"".join(body for kind, body in boxes if kind != b"mdat"))
    return dest


def snapshot(folder: Path) -> dict[str, tuple[int, str]]:
    """Every file under `folder`: (mtime in ns, sha1 of the bytes)."""
    return {
        str(p.relative_to(folder)): (p.stat().st_mtime_ns, hashlib.sha1(p.read_bytes()).hexdigest())
        for p in sorted(folder.rglob("*")) if p.is_file()
    }


def crops_in(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.png"))


def gather(**kwargs):
    kwargs.setdefault("progress", False)
    return gather_examples.run(**kwargs)


def run_script(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENCV_")}
    return subprocess.run(
        [sys.executable, str(ROOT / "gather_examples.py"), *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )


@pytest.fixture(scope="module")
def face_video(tmp_path_factory: pytest.TempPathFactory, face_image: np.ndarray) -> Path:
    """subjectA/real.mp4: 10 frames of a real face photo."""
    path = write_face_video(tmp_path_factory.mktemp("videos") / "subjectA" / "real.mp4", face_image)
    cap = cv2.VideoCapture(str(path))
    count = 0
    while cap.read()[0]:
        count += 1
    cap.release()
    assert count == N_FRAMES
    return path


# --- a good video -------------------------------------------------------------------


def test_gathers_face_crops_with_manifest(face_video: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    code, [summary] = gather(input=face_video, output=out)
    assert code == EXIT_OK and summary.error is None
    assert summary.frames_read == summary.frames_searched == N_FRAMES
    assert summary.faces_saved == N_FRAMES  # one face in every frame
    crops = crops_in(out)
    assert len(crops) == N_FRAMES
    for crop in crops:
        image = cv2.imread(str(crop))
        assert image is not None and 50 < image.shape[0] < 120  # the face, not the whole frame

    rows = read_manifest(out)
    assert sorted(rows) == [c.name for c in crops]
    key = source_key(face_video, video_digest(face_video))
    assert sorted(r.frame for r in rows.values()) == list(range(N_FRAMES))
    for name, row in rows.items():
        assert parse_crop_name(name) == (key, row.frame)
        assert row.source == key and row.subject == "subjectA" and row.video == str(face_video)
        assert 0 <= row.x1 < row.x2 <= SIZE and 0 <= row.y1 < row.y2 <= SIZE
        assert 0.5 <= row.confidence <= 1.0


def test_second_run_adds_nothing_and_overwrites_nothing(face_video: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    _, [first] = gather(input=face_video, output=out)
    before = snapshot(out)
    assert first.faces_saved > 0 and MANIFEST_NAME in before

    code, [second] = gather(input=face_video, output=out)
    assert code == EXIT_OK
    assert second.faces_saved == 0
    assert second.already_there == first.faces_saved
    assert snapshot(out) == before  # same files, same bytes, same mtimes (manifest included)


def test_padding_keeps_context_around_the_face(face_video: Path, tmp_path: Path) -> None:
    _, [tight] = gather(input=face_video, output=tmp_path / "tight", max_frames=1)
    _, [wide] = gather(input=face_video, output=tmp_path / "wide", max_frames=1, padding=0.25)
    assert tight.frames_read == wide.frames_read == 1
    [t], [w] = crops_in(tmp_path / "tight"), crops_in(tmp_path / "wide")
    th, tw = cv2.imread(str(t)).shape[:2]
    wh, ww = cv2.imread(str(w)).shape[:2]
    assert wh == pytest.approx(1.5 * th, abs=2) and ww == pytest.approx(1.5 * tw, abs=2)


def test_skip_searches_every_nth_frame(face_video: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    code, [summary] = gather(input=face_video, output=out, skip=3)
    assert code == EXIT_OK
    assert summary.frames_read == N_FRAMES
    assert summary.frames_searched == 4  # frames 0, 3, 6, 9
    assert sorted(r.frame for r in read_manifest(out).values()) == [0, 3, 6, 9]


class CountingCapture:
    """A real capture that counts how often each method is called."""

    def __init__(self, path: Path) -> None:
        self.cap = cv2.VideoCapture(str(path))
        self.calls = {"grab": 0, "read": 0, "retrieve": 0}

    def grab(self):
        self.calls["grab"] += 1
        return self.cap.grab()

    def read(self):
        self.calls["read"] += 1
        return self.cap.read()

    def retrieve(self, *args):
        self.calls["retrieve"] += 1
        return self.cap.retrieve(*args)


def test_iter_frames_grabs_skipped_frames_without_decoding(face_video: Path) -> None:
    cap = CountingCapture(face_video)
    frames = list(iter_frames(cap, skip=3))
    cap.cap.release()
    assert [i for i, _ in frames] == list(range(N_FRAMES))
    assert [i for i, f in frames if f is not None] == [0, 3, 6, 9]
    assert all(f.shape == (SIZE, SIZE, 3) for _, f in frames if f is not None)
    # 4 decoded frames; 6 skipped frames grabbed, plus the grab that found the end.
    assert cap.calls == {"read": 4, "grab": 7, "retrieve": 0}


def test_iter_frames_skip_1_decodes_every_frame(face_video: Path) -> None:
    cap = CountingCapture(face_video)
    frames = list(iter_frames(cap, skip=1))
    cap.cap.release()
    assert len(frames) == N_FRAMES and all(f is not None for _, f in frames)
    assert cap.calls["grab"] == 0 and cap.calls["read"] == N_FRAMES + 1


def test_ctrl_c_keeps_a_manifest_of_every_crop_on_disk(face_video: Path, tmp_path: Path, monkeypatch) -> None:
    detect = det.FaceDetector.detect
    calls = []

    def interrupted_detect(self, frame):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return detect(self, frame)

    monkeypatch.setattr(det.FaceDetector, "detect", interrupted_detect)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        gather(input=face_video, output=out)
    crops = crops_in(out)
    assert len(crops) == 3
    assert sorted(read_manifest(out)) == [c.name for c in crops]


# --- naming -------------------------------------------------------------------------


def test_crop_name_round_trips() -> None:
    key = "subject01_real_0123abcd"
    assert crop_name(key, 12, 1) == "subject01_real_0123abcd_f000012_1.png"
    assert parse_crop_name(crop_name(key, 12, 1)) == (key, 12)
    assert parse_crop_name(crop_name(key, 0)) == (key, 0)
    assert parse_crop_name(crop_name(key, 1234567)) == (key, 1234567)
    assert parse_crop_name("0.png") is None and parse_crop_name("face_12.png") is None


def test_same_name_in_two_subjects_never_collides(face_video: Path, face_image: np.ndarray, tmp_path: Path) -> None:
    videos = tmp_path / "videos"
    (videos / "subjectA").mkdir(parents=True)
    shutil.copy(face_video, videos / "subjectA" / "real.mp4")
    write_face_video(videos / "subjectB" / "real.mp4", face_image, mirror=True)
    out = tmp_path / "out"
    code, summaries = gather(input=videos, output=out)
    assert code == EXIT_OK and len(summaries) == 2
    saved = sum(s.faces_saved for s in summaries)
    assert all(s.faces_saved > 0 and s.already_there == 0 for s in summaries)

    names = [c.name for c in crops_in(out)]
    assert len(names) == saved  # nothing overwritten
    a = {n for n in names if n.startswith("subjectA_real_")}
    b = {n for n in names if n.startswith("subjectB_real_")}
    assert a and b and len(a) + len(b) == saved
    assert {parse_crop_name(n)[0] for n in a}.isdisjoint({parse_crop_name(n)[0] for n in b})
    rows = read_manifest(out)
    assert sorted(rows) == sorted(names)
    assert {r.subject for r in rows.values()} == {"subjectA", "subjectB"}


def test_identical_bytes_in_two_subject_folders_get_different_keys(face_video: Path, tmp_path: Path) -> None:
    a, b = tmp_path / "s1" / "real.mp4", tmp_path / "s2" / "real.mp4"
    for p in (a, b):
        p.parent.mkdir()
        shutil.copy(face_video, p)
    digest = video_digest(a)
    assert digest == video_digest(b)
    assert source_key(a, digest) != source_key(b, digest)
    assert crop_name(source_key(a, digest), 5) != crop_name(source_key(b, digest), 5)


# --- bad inputs: a one-line LivenessError, nothing written --------------------------------


@pytest.fixture
def bad(tmp_path: Path, face_video: Path) -> dict[str, Path]:
    """Bad inputs and broken detector folders, made in tmp_path."""
    text = tmp_path / "x.mp4"
    text.write_text("this is not a video\n")
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    header_only = header_only_copy(face_video, tmp_path / "header_only.mp4")
    no_files = tmp_path / "no_detector"
    no_files.mkdir()
    corrupt = tmp_path / "corrupt_detector"
    corrupt.mkdir()
    shutil.copy(det.locate_detector_files().prototxt, corrupt / "deploy.prototxt.txt")
    (corrupt / det.CAFFEMODEL_NAME).write_bytes(os.urandom(4096))
    unlabelled = tmp_path / "clip.mp4"
    shutil.copy(face_video, unlabelled)
    no_videos = tmp_path / "no_videos"
    no_videos.mkdir()
    (no_videos / "notes.txt").write_text("no videos here")
    return {
        "text": text, "empty": empty, "header_only": header_only, "no_files": no_files, "corrupt": corrupt,
        "unlabelled": unlabelled, "no_videos": no_videos,
    }


BAD_RUNS = {
    # name: (run() keyword arguments, with "{x}" naming bad[x] or "video"; message regex)
    "missing input": ({"input": "{tmp}/nope.mp4"}, r"nope\.mp4 does not exist"),
    "not a video": ({"input": "{text}"}, r"x\.mp4 is not a video file OpenCV can decode"),
    "0-byte video": ({"input": "{empty}"}, r"empty\.mp4 is not a video file OpenCV can decode"),
    "header-only video": ({"input": "{header_only}"}, r"header_only\.mp4 has no frames"),
    "empty detector folder": ({"detector": "{no_files}"}, r"no_detector has neither deploy\.prototxt nor"),
    "missing detector folder": ({"detector": "{tmp}/nowhere"}, r"detector folder .*nowhere does not exist"),
    "corrupt caffemodel": ({"detector": "{corrupt}"}, r"corrupt or not the res10 SSD \(sha256 "),
    "webcam that does not open": ({"input": "7"}, r"webcam 7 does not open"),
    "empty input": ({"input": " "}, r"the input is empty"),
    "folder without videos": ({"input": "{no_videos}"}, r"no video files under .*no_videos"),
    "unlabelled name with --label-from-name": (
        {"input": "{unlabelled}", "label_from_names": True}, r"clip\.mp4 says neither real nor fake"),
    "webcam with --label-from-name": ({"input": "0", "label_from_names": True}, r"--label-from-name needs video files"),
}


def resolve_args(args: dict, bad: dict[str, Path], tmp_path: Path, face_video: Path) -> dict:
    names = {k: str(v) for k, v in bad.items()} | {"tmp": str(tmp_path)}
    resolved = {"input": str(face_video)}
    resolved.update({k: v.format(**names) if isinstance(v, str) else v for k, v in args.items()})
    return resolved


@pytest.mark.parametrize("case", list(BAD_RUNS))
def test_bad_input_is_a_liveness_error_and_writes_nothing(case, bad, tmp_path: Path, face_video: Path) -> None:
    args, message = BAD_RUNS[case]
    out = tmp_path / "out"
    with pytest.raises(LivenessError, match=message) as err:
        gather(output=out, **resolve_args(args, bad, tmp_path, face_video))
    assert "\n" not in str(err.value)
    assert not out.exists(), f"{case}: the output folder was created: {list(out.rglob('*'))}"


@pytest.mark.parametrize(
    "args, message",
    [
        ({"skip": 0}, r"skip and max_frames must be >= 1"),
        ({"max_frames": 0}, r"skip and max_frames must be >= 1"),
        ({"confidence": 1.5}, r"confidence must be between 0 and 1, got 1\.5"),
        ({"confidence": -0.1}, r"confidence must be between 0 and 1, got -0\.1"),
    ],
    ids=["skip 0", "max-frames 0", "confidence 1.5", "confidence -0.1"],
)
def test_bad_numbers_from_python_are_value_errors(args, message, tmp_path: Path, face_video: Path) -> None:
    """Flags are range-checked by argparse; a Python caller's bad number is a ValueError."""
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=message):
        gather(input=face_video, output=out, **args)
    assert not out.exists()


def test_output_that_is_a_file(face_video: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.write_text("keep me")
    with pytest.raises(OutputError, match=r"out is a file, not a folder"):
        gather(input=face_video, output=out)
    assert out.read_text() == "keep me"


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores file permissions")
def test_output_not_writable(face_video: Path, tmp_path: Path) -> None:
    out = tmp_path / "locked"
    out.mkdir()
    out.chmod(0o500)
    try:
        with pytest.raises(OutputError, match=r"locked is not writable"):
            gather(input=face_video, output=out)
        assert list(out.iterdir()) == []
    finally:
        out.chmod(0o700)


def test_output_not_writable_simulated(face_video: Path, tmp_path: Path, monkeypatch) -> None:
    """The same check where permissions cannot bite (root): os.access says no."""
    out = tmp_path / "locked"
    out.mkdir()
    access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if Path(p) == out else access(p, mode, **kw))
    with pytest.raises(OutputError, match=r"locked is not writable"):
        gather(input=face_video, output=out)
    assert list(out.iterdir()) == []


def test_folder_with_a_bad_file_processes_the_good_one(face_video: Path, tmp_path: Path) -> None:
    videos = tmp_path / "videos"
    videos.mkdir()
    shutil.copy(face_video, videos / "good.mp4")
    (videos / "bad.mp4").write_text("not a video")
    header_only_copy(face_video, videos / "hollow.mp4")
    out = tmp_path / "out"
    code, summaries = gather(input=videos, output=out)
    assert code == EXIT_OK  # skipped, counted, reported: non-zero only when nothing was usable
    by_name = {Path(s.video).name: s for s in summaries}
    assert set(by_name) == {"good.mp4", "bad.mp4", "hollow.mp4"}
    good = by_name["good.mp4"]
    assert good.error is None and good.frames_read == N_FRAMES and good.faces_saved == N_FRAMES
    assert "bad.mp4 is not a video file" in by_name["bad.mp4"].error
    assert "hollow.mp4 has no frames" in by_name["hollow.mp4"].error
    crops = crops_in(out)
    assert len(crops) == N_FRAMES and all(c.name.startswith("videos_good_") for c in crops)
    assert {Path(r.video).name for r in read_manifest(out).values()} == {"good.mp4"}


def test_folder_whose_videos_all_fail_gets_no_manifest(tmp_path: Path) -> None:
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "bad.mp4").write_text("not a video")
    out = tmp_path / "out"
    with pytest.raises(DataError, match="none of the 1 videos"):
        gather(input=videos, output=out)
    assert list(out.iterdir()) == []


def test_list_videos_follows_symlinked_folders_once(face_video: Path, tmp_path: Path) -> None:
    data = tmp_path / "data" / "subjectA"
    data.mkdir(parents=True)
    shutil.copy(face_video, data / "real.mp4")
    (data / "notes.txt").write_text("not a video")
    top = tmp_path / "videos"
    top.mkdir()
    (top / "subjectA").symlink_to(data, target_is_directory=True)
    (top / "subjectA-again").symlink_to(data, target_is_directory=True)
    (data / "loop").symlink_to(top, target_is_directory=True)  # a cycle must not hang
    found = list_videos(top)
    assert len(found) == 1 and found[0].name == "real.mp4"
    assert found[0].resolve() == (data / "real.mp4").resolve()


# --- the script as a user runs it -----------------------------------------------------

SCRIPT_BAD_RUNS = ["missing input", "not a video", "header-only video", "corrupt caffemodel"]


@pytest.mark.parametrize("case", SCRIPT_BAD_RUNS)
def test_script_bad_input_prints_one_error_line(case, bad, tmp_path: Path, face_video: Path) -> None:
    args, message = BAD_RUNS[case]
    resolved = resolve_args(args, bad, tmp_path, face_video)
    out = tmp_path / "out"
    argv = ["--output", str(out), "--input", resolved["input"]]
    if "detector" in resolved:
        argv += ["--detector", resolved["detector"]]
    proc = run_script(*argv)
    assert proc.returncode == EXIT_USAGE, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("[ERROR] "), proc.stderr
    assert re.search(message, lines[0]), lines[0]
    assert proc.stdout == ""
    assert not out.exists()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--skip", "0"], "must be >= 1"),
        (["--confidence", "1.5"], "must be <= 1"),
        (["--padding", "nan"], "finite"),
        (["--aspect", "1.2", "0.8"], "aspect"),
    ],
    ids=["skip 0", "confidence 1.5", "padding nan", "aspect reversed"],
)
def test_script_bad_numbers_exit_2_without_traceback(argv, message, tmp_path: Path, face_video: Path) -> None:
    out = tmp_path / "out"
    proc = run_script("--input", str(face_video), "--output", str(out), *argv)
    assert proc.returncode == EXIT_USAGE, proc.stderr
    assert "Traceback" not in proc.stderr and message in proc.stderr.strip().splitlines()[-1], proc.stderr
    assert not out.exists()


def test_script_help() -> None:
    proc = run_script("--help")
    assert proc.returncode == 0
    assert "--input" in proc.stdout and "--skip" in proc.stdout and "--label-from-name" in proc.stdout


def test_importing_the_script_runs_nothing(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items()} | {"PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", "import gather_examples; print(gather_examples.run.__name__)"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "run\n" and proc.stderr == ""
    assert list(tmp_path.iterdir()) == []


# --- real recordings ------------------------------------------------------------------

SHARED_SUBJECTS = ("subject01", "subject03")  # subject03: WebM under .mov/.mp4 names
SHARED_SKIP = 10
# Measured: 141 of 146 crops (97%) get a face >= 0.5 on a second pass when padded by a
# quarter of their size; the misses are subject03 fake frames where the phone hides
# the face (a known flaw of that video). 0.9 leaves room for codec/version drift.
SECOND_PASS_RATE = 0.9


@pytest.fixture(scope="module")
def shared_run(shared_data: Path, tmp_path_factory: pytest.TempPathFactory):
    """One gather over symlinks to two subjects' folders, spying on the SSD's raw boxes."""
    tmp = tmp_path_factory.mktemp("shared")
    videos = tmp / "videos"
    videos.mkdir()
    for subject in SHARED_SUBJECTS:
        (videos / subject).symlink_to(shared_data / "videos" / subject, target_is_directory=True)
    raw_boxes: dict[tuple[tuple[int, int, int, int], float], float] = {}  # (box, conf) -> outside fraction
    raw_detections = det.FaceDetector.raw_detections

    def spy(self, frame):
        rows = raw_detections(self, frame)
        h, w = frame.shape[:2]
        for r in rows:
            x1, y1, x2, y2 = (float(v) for v in r[3:7])
            area = (x2 - x1) * (y2 - y1)
            if r[2] >= self.confidence and area > 0:
                inside = max(0.0, min(1.0, x2) - max(0.0, x1)) * max(0.0, min(1.0, y2) - max(0.0, y1))
                raw_boxes[(det.clamp_box(r[3:7], w, h), round(float(r[2]), 4))] = 1.0 - inside / area
        return rows

    out = tmp / "out"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(det.FaceDetector, "raw_detections", spy)
        code, summaries = gather(input=videos, output=out, skip=SHARED_SKIP, label_from_names=True)
    return {"code": code, "summaries": summaries, "out": out, "videos": videos, "raw_boxes": raw_boxes}


@pytest.mark.shared_data
def test_shared_videos_give_crops_of_faces(shared_run) -> None:
    out, summaries = shared_run["out"], shared_run["summaries"]
    assert shared_run["code"] == EXIT_OK
    assert len(summaries) == 2 * len(SHARED_SUBJECTS)
    for s in summaries:
        assert s.error is None and s.faces_saved > 0, s
        assert s.frames_searched == -(-s.frames_read // SHARED_SKIP)
    crops = crops_in(out)
    assert len(crops) == sum(s.faces_saved for s in summaries)
    assert {c.parent.name for c in crops} == {"real", "fake"}
    assert {c.name.split("_")[0] for c in crops} == set(SHARED_SUBJECTS)
    for label in ("real", "fake"):
        assert sorted(read_manifest(out / label)) == sorted(c.name for c in crops if c.parent.name == label)

    second = det.FaceDetector()
    found = 0
    for crop in crops:
        image = cv2.imread(str(crop))
        pad = max(image.shape[:2]) // 4  # a tight crop leaves the SSD no context
        padded = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(0, 0, 0))
        found += bool(second.detect(padded))
    rate = found / len(crops)
    assert rate >= SECOND_PASS_RATE, f"only {found} of {len(crops)} crops ({rate:.0%}) hold a face"


@pytest.mark.shared_data
def test_shared_subject01_boxes_off_the_frame_are_filtered(shared_run) -> None:
    summaries = {Path(s.video).parent.name + "/" + Path(s.video).name: s for s in shared_run["summaries"]}
    # The SSD's 0.95+ boxes on subject01's shirt and monitor edge are there, and dropped.
    rejected = sum(summaries[f"subject01/{n}"].rejected.get("mostly outside the frame", 0) for n in ("real.mp4", "fake.mp4"))
    assert rejected > 0
    rows = [r for label in ("real", "fake") for r in read_manifest(shared_run["out"] / label).values()
            if r.subject == "subject01"]
    assert rows
    for row in rows:
        cap = cv2.VideoCapture(row.video)
        w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        cap.release()
        assert 0 <= row.x1 < row.x2 <= w and 0 <= row.y1 < row.y2 <= h, row
        outside = shared_run["raw_boxes"][((row.x1, row.y1, row.x2, row.y2), round(row.confidence, 4))]
        assert outside <= det.DEFAULT_MAX_OUTSIDE, (row.file, outside)


@pytest.mark.shared_data
def test_shared_second_run_adds_and_overwrites_nothing(shared_run) -> None:
    out = shared_run["out"]
    before = snapshot(out)
    code, summaries = gather(input=shared_run["videos"], output=out, skip=SHARED_SKIP, label_from_names=True)
    assert code == EXIT_OK
    first = {s.video: s for s in shared_run["summaries"]}
    for s in summaries:
        assert s.faces_saved == 0 and s.already_there == first[s.video].faces_saved, s
    assert snapshot(out) == before
