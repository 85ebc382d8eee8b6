"""The end-to-end job's choice of data: the user's videos, else shared data, else synthetic."""

from __future__ import annotations

import pytest

from liveness import pipeline


@pytest.fixture
def places(tmp_path, monkeypatch):
    user, shared, out = tmp_path / "videos", tmp_path / "shared" / "data", tmp_path / "output"
    user.mkdir()
    monkeypatch.setattr(pipeline, "USER_VIDEOS", user)
    monkeypatch.setattr(pipeline, "SHARED_DATA", shared)
    monkeypatch.setattr(pipeline, "OUTPUT", out)
    return user, shared, out


def test_user_videos_come_first(places):
    user, shared, _ = places
    (shared / "videos").mkdir(parents=True)
    (user / "real.mov").write_bytes(b"x")
    what, videos, crops, pattern = pipeline.find_data()
    assert videos == user and crops == [] and pattern is None and "your videos" in what


def test_unlabelled_user_videos_are_not_used(places):
    user, shared, _ = places
    (shared / "videos").mkdir(parents=True)
    (user / "holiday.mp4").write_bytes(b"x")  # says neither real nor fake
    _, videos, _, _ = pipeline.find_data()
    assert videos == shared / "videos"


def test_shared_data_next_with_its_crops_and_subjects(places):
    _, shared, _ = places
    (shared / "videos").mkdir(parents=True)
    (shared / "crops").mkdir()
    what, videos, crops, pattern = pipeline.find_data()
    assert videos == shared / "videos" and crops == [shared / "crops"] and pattern == pipeline.SUBJECT_PATTERN
    assert "shared" in what


def test_synthetic_sample_last_and_said_so(places, monkeypatch):
    _, _, out = places
    made = []
    monkeypatch.setattr("liveness.synthetic.make_sample_videos", lambda folder: made.append(folder))
    what, videos, crops, pattern = pipeline.find_data()
    assert made == [out / "sample_videos"] and videos == out / "sample_videos"
    assert "SYNTHETIC" in what and crops == [] and pattern is None


def test_demo_video_prefers_an_attack(tmp_path):
    for name in ("real.mp4", "fake.mp4"):
        (tmp_path / name).write_bytes(b"x")
    assert pipeline.demo_video(tmp_path).name == "fake.mp4"
