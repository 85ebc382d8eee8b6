"""quickstart.py's choice of data: the user's videos, else shared data (one set-up held out), else synthetic."""

from __future__ import annotations

from pathlib import Path

import pytest

import quickstart


@pytest.fixture
def places(tmp_path, monkeypatch):
    user, shared, out = tmp_path / "videos", tmp_path / "shared" / "data", tmp_path / "output"
    user.mkdir()
    monkeypatch.setattr(quickstart, "USER_VIDEOS", user)
    monkeypatch.setattr(quickstart, "SHARED_DATA", shared)
    monkeypatch.setattr(quickstart, "OUTPUT", out)
    return user, shared, out


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def shared_layout(shared: Path, subjects: dict[str, tuple[str, ...]]) -> None:
    """videos/<subject>/<name> and crops/<subject>/ for each subject."""
    for subject, names in subjects.items():
        for name in names:
            touch(shared / "videos" / subject / name)
        (shared / "crops" / subject / "real").mkdir(parents=True)


def test_user_videos_come_first(places):
    user, shared, _ = places
    shared_layout(shared, {"subject01": ("real.mp4", "fake.mp4")})
    real, fake = touch(user / "real.mov"), touch(user / "fake.mp4")
    plan = quickstart.find_data()
    assert plan.video_folders == [user] and plan.crop_folders == [] and plan.group_pattern is None
    assert "your videos" in plan.what and plan.held_out is None
    assert plan.demo_videos == [real, fake]


def test_one_labelled_user_video_is_shown_alone(places):
    user, _, _ = places
    fake = touch(user / "fake.mp4")
    touch(user / "holiday.mp4")  # says neither real nor fake
    assert quickstart.find_data().demo_videos == [fake]


def test_unlabelled_user_videos_are_not_used(places):
    user, shared, _ = places
    shared_layout(shared, {"subject01": ("real.mp4", "fake.mp4")})
    touch(user / "holiday.mp4")
    plan = quickstart.find_data()
    assert user not in plan.video_folders and "shared" in plan.what


def test_shared_data_holds_one_set_up_with_both_videos_out(places):
    _, shared, _ = places
    shared_layout(shared, {
        "subject01": ("real.mp4",),  # no replay video: cannot be the demo's set-up
        "subject02": ("real.mp4", "fake.mp4"),
        "subject03": ("real.mov", "fake.mov"),
    })
    plan = quickstart.find_data()
    videos, crops = shared / "videos", shared / "crops"
    assert plan.held_out == "subject02"
    assert plan.demo_videos == [videos / "subject02" / "real.mp4", videos / "subject02" / "fake.mp4"]
    # The held-out set-up is in neither what is gathered nor what is trained on as crops.
    assert plan.video_folders == [videos / "subject01", videos / "subject03"]
    assert plan.crop_folders == [crops / "subject01", crops / "subject03"]
    assert all("subject02" not in str(p) for p in plan.video_folders + plan.crop_folders)
    assert plan.group_pattern == quickstart.SUBJECT_PATTERN
    assert "subject02" in plan.what and "shared" in plan.what


def test_shared_data_without_a_pair_trains_on_everything(places):
    _, shared, _ = places
    shared_layout(shared, {"subject01": ("real.mp4",), "subject02": ("fake.mp4",)})
    plan = quickstart.find_data()
    assert plan.held_out is None
    assert plan.video_folders == [shared / "videos" / "subject01", shared / "videos" / "subject02"]
    assert plan.crop_folders == [shared / "crops" / "subject01", shared / "crops" / "subject02"]
    assert len(plan.demo_videos) == 1


@pytest.mark.shared_data
def test_the_real_shared_data_holds_a_set_up_out(shared_data, monkeypatch, tmp_path):
    monkeypatch.setattr(quickstart, "USER_VIDEOS", tmp_path / "no-videos")
    monkeypatch.setattr(quickstart, "SHARED_DATA", shared_data)
    plan = quickstart.find_data()
    assert plan.held_out and len(plan.demo_videos) == 2
    assert {quickstart.label_from_name(v.name) for v in plan.demo_videos} == {"real", "fake"}
    assert all(v.parent.name == plan.held_out for v in plan.demo_videos)
    assert plan.held_out not in {p.name for p in plan.video_folders + plan.crop_folders}
    assert plan.video_folders and plan.crop_folders


def test_synthetic_sample_last_and_said_so(places, monkeypatch):
    _, _, out = places
    made = []

    def make(folder):
        made.append(folder)
        touch(folder / "real.mp4")
        touch(folder / "fake.mp4")

    monkeypatch.setattr("liveness.synthetic.make_sample_videos", make)
    plan = quickstart.find_data()
    assert made == [out / "sample_videos"] and plan.video_folders == [out / "sample_videos"]
    assert "SYNTHETIC" in plan.what and plan.crop_folders == [] and plan.group_pattern is None
    assert [v.name for v in plan.demo_videos] == ["real.mp4", "fake.mp4"]
