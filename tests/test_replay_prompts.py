"""benchmarks/replay_prompts.py: a looped replay against random prompts, on scripted landmarks
(what it measures) and on one short shared video (that it runs end to end)."""

from __future__ import annotations

import random

import numpy as np
import pytest

from benchmarks import replay_prompts as rp
from liveness.challenge import FAILED, KINDS, PASSED
from liveness.errors import DataError
from liveness.synthetic import OPEN_EAR, scripted_landmarks

FPS = 30.0


def looped(seconds: float, blink_every: float | None = None) -> np.ndarray:
    """(n, 68, 2) landmarks of a still face that shuts its eyes for 0.15 s every `blink_every` s."""
    t = np.arange(int(seconds * FPS)) / FPS
    shut = (t % blink_every) < 0.15 if blink_every else np.zeros(len(t), bool)
    return np.stack([scripted_landmarks(0.05 if s else OPEN_EAR) for s in shut])


def shares(marks: np.ndarray, kinds, count: int, trials: int = 60) -> dict[str, int]:
    rng = random.Random(3)
    out = [rp.replay_trial(marks, FPS, kinds, count, rng) for _ in range(trials)]
    return {s: out.count(s) for s in (PASSED, FAILED)}


def test_a_replay_that_never_acts_never_passes():
    assert shares(looped(6.0), KINDS, 1) == {PASSED: 0, FAILED: 60}


def test_a_replay_that_blinks_now_and_then_passes_some_blink_prompts_not_all():
    got = shares(looped(9.0, blink_every=3.0), ("blink",), 1)
    assert 0 < got[PASSED] < 60 and got[PASSED] + got[FAILED] == 60, got


def test_a_replay_that_blinks_all_the_time_fails_the_quiet_second():
    assert shares(looped(9.0, blink_every=0.6), ("blink",), 1)[PASSED] == 0


def test_frames_without_a_face_are_skipped():
    marks = looped(9.0, blink_every=3.0)
    marks[::5] = np.nan
    got = shares(marks, ("blink",), 1)
    assert got[PASSED] + got[FAILED] == 60


def test_no_video_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="no video"):
        rp.find_videos(tmp_path)


@pytest.mark.shared_data
def test_runs_on_a_shared_video(shared_data, tmp_path):
    videos = tmp_path / "videos" / "subject02"
    videos.mkdir(parents=True)
    (videos / "fake.mp4").symlink_to(shared_data / "videos" / "subject02" / "fake.mp4")
    out = rp.run(videos=tmp_path / "videos", cache=tmp_path / "cache", trials=4, json_path=tmp_path / "r.json")
    (row,) = out["rows"]
    assert row["video"] == "subject02/fake.mp4" and row["seconds"] > 1
    assert set(row["passed"]) == set(rp.SETUPS) and all(0 <= v <= 1 for v in row["passed"].values())
    assert (tmp_path / "r.json").is_file() and list((tmp_path / "cache").glob("*.npz"))
