"""Tests for active liveness (liveness/challenge.py, liveness/landmarks.py): the state
machine on scripted landmark sequences, the blink detector on hand-labelled real
video, and a replayed blinking video against many random prompts."""

from __future__ import annotations

import functools
import math
import os
import random
from collections import defaultdict

import numpy as np
import pytest

from liveness import ROOT
from liveness.blinkeval import evaluate_blinks, read_blink_labels, summarise, summarise_sweep
from liveness.challenge import (
    DEFAULT_SETTINGS, FAILED, PASSED, PENDING, ActionDetector, BlinkDetector, ChallengeManager,
    PROMPT_TEXT, ChallengeSettings, FaceChallenge, decide, eye_aspect_ratio, match_blinks, parse_kinds,
    yaw_ratio,
)
from liveness.synthetic import OPEN_EAR
from liveness.synthetic import scripted_landmarks as face

BLINKS_CSV = ROOT / "tests" / "data" / "blinks.csv"
FPS = 30.0


# --- scripted landmarks -------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def still(ear: float = OPEN_EAR, yaw: float = 0.0) -> np.ndarray:
    """face(ear, yaw) built once (read-only): scripts of thousands of frames stay fast."""
    pts = face(ear, yaw)
    pts.setflags(write=False)
    return pts


def frames(duration: float, t0: float = 0.0, fps: float = FPS):
    n = int(round(duration * fps))
    return [t0 + i / fps for i in range(n)]


def stream(duration: float, blinks=(), turns=(), fps: float = FPS, t0: float = 0.0):
    """(t, landmarks): open eyes, shut (EAR 0.05) for 0.15 s from each time in `blinks`,
    turned (yaw +-0.3) for 0.6 s from each (time, 'left' | 'right') in `turns`."""
    out = []
    for t in frames(duration, t0, fps):
        ear = 0.05 if any(b <= t < b + 0.15 for b in blinks) else OPEN_EAR
        yaw = 0.0
        for start, side in turns:
            if start <= t < start + 0.6:
                yaw = 0.3 if side == "left" else -0.3
        out.append((t, still(ear, yaw)))
    return out


def run(machine, seq) -> list[dict]:
    events = []
    for t, pts in seq:
        events.extend(machine.update(pts, t))
    return events


def prompt_of(events) -> dict:
    prompts = [e for e in events if e["event"] == "prompt"]
    assert prompts, events
    return prompts[-1]


def drive(machine: FaceChallenge, respond, until: float = 20.0, fps: float = FPS) -> list[dict]:
    """Feed frames until the machine is decided; `respond(prompt_event)` -> list of
    (delay after the prompt, action) to script: 'blink', 'left', 'right'."""
    events, plan = [], []
    for t in frames(until, fps=fps):
        ear, yaw = OPEN_EAR, 0.0
        for start, action in plan:
            if action == "blink" and start <= t < start + 0.15:
                ear = 0.05
            if action in ("left", "right") and start <= t < start + 0.6:
                yaw = 0.3 if action == "left" else -0.3
        new = machine.update(still(ear, yaw), t)
        events.extend(new)
        for e in new:
            if e["event"] == "prompt":
                plan.extend((e["t"] + delay, action) for delay, action in respond(e))
        if machine.status != PENDING:
            break
    return events


# --- measurements -------------------------------------------------------------------------
def test_eye_aspect_ratio_and_yaw_of_the_scripted_face():
    assert eye_aspect_ratio(face(0.3)) == pytest.approx(0.3)
    assert eye_aspect_ratio(face(0.05)) == pytest.approx(0.05)
    assert yaw_ratio(face(yaw=0.0)) == pytest.approx(0.0, abs=1e-9)
    assert yaw_ratio(face(yaw=0.2)) == pytest.approx(0.2)
    # Neither depends on where the face is or how large.
    moved = face(0.25, 0.1, shift=(300, 120), scale=2.5)
    assert eye_aspect_ratio(moved) == pytest.approx(0.25)
    assert yaw_ratio(moved) == pytest.approx(0.1)


def blinks_of(ears, ts, settings=DEFAULT_SETTINGS) -> list[float]:
    det = BlinkDetector(settings)
    return [g for e, t in zip(ears, ts) if (g := det.update(e, t)) is not None]


def test_a_blink_is_a_dip_against_the_face_own_open_level_dated_by_its_start():
    # Two faces with different open eyes: each is judged against its own level.
    ts = frames(3.0)
    for open_ear in (0.22, 0.35):
        # Lids half-way down or more (EAR at most 1 - min_dip of the level) for 0.15 s: a blink.
        dipped = open_ear * (1 - DEFAULT_SETTINGS.min_dip) * 0.95
        ears = [dipped if 45 <= i < 50 else open_ear for i in range(len(ts))]
        assert blinks_of(ears, ts) == [pytest.approx(ts[45])]
        # Lowered by less (a glance down, a squint): not a blink.
        shallow = open_ear * (1 - DEFAULT_SETTINGS.min_dip) * 1.1
        assert blinks_of([shallow if 45 <= i < 50 else open_ear for i in range(len(ts))], ts) == []


def test_a_blink_is_reported_once_and_late_by_the_detector_latency():
    det = BlinkDetector()
    ts = frames(3.0)
    got = [(t, det.update(0.05 if 45 <= i < 50 else OPEN_EAR, t)) for i, t in enumerate(ts)]
    reports = [(t, g) for t, g in got if g is not None]
    assert len(reports) == 1
    reported_at, began = reports[0]
    assert began == pytest.approx(ts[45])
    # Judged once the open level after the dip has been seen, no sooner and not much later.
    assert det.latency_s <= reported_at - ts[49] <= det.latency_s + 2 / FPS


def test_a_change_of_pose_or_eyes_kept_shut_are_not_blinks():
    ts = frames(4.0)
    # The EAR drops for good (the head turns, the gaze goes down): no open level after it.
    assert blinks_of([OPEN_EAR if t < 2.0 else 0.05 for t in ts], ts) == []
    # Shut for a whole second: the open level is never on both sides of it.
    assert blinks_of([0.05 if 1.0 <= t < 2.0 else OPEN_EAR for t in ts], ts) == []
    # One blink made of two dips a frame apart is one blink.
    assert len(blinks_of([0.05 if i in (45, 46, 48, 49) else OPEN_EAR for i in range(len(ts))], ts)) == 1


def test_min_closed_s_rejects_dips_shorter_than_it():
    ts = frames(3.0)
    one_frame = [0.05 if i == 45 else OPEN_EAR for i in range(len(ts))]
    assert blinks_of(one_frame, ts) == [pytest.approx(ts[45])]  # the default takes one frame
    assert blinks_of(one_frame, ts, ChallengeSettings(min_closed_s=0.05)) == []


def test_a_landmark_jump_voids_a_closure():
    det = ActionDetector()
    seq = [(t, face(0.05 if 1.5 <= t < 1.6 else OPEN_EAR, shift=(200, 0) if t >= 1.55 else (0, 0)))
           for t in frames(2.5)]
    actions = [a for t, pts in seq for a in det.update(pts, t)]
    assert actions == []
    # The same blink without the jump is seen.
    det = ActionDetector()
    actions = [a for t, pts in stream(2.5, blinks=[1.5]) for a in det.update(pts, t)]
    assert [k for _, k in actions] == ["blink"]


def test_turns_relative_to_the_face_own_neutral_pose():
    det = ActionDetector()
    # This face sits turned (yaw 0.1) all along: only turns away from that count.
    seq = [(t, face(yaw=0.1 + (0.25 if 2.0 <= t < 2.6 else 0) - (0.25 if 3.5 <= t < 4.1 else 0)))
           for t in frames(5.0)]
    kinds = [k for t, pts in seq for _, k in det.update(pts, t)]
    assert kinds == ["left", "right"]


def test_live_only_when_both_parts_say_so():
    assert decide(True, PASSED) == (True, "both")
    assert decide(True, PENDING) == (False, "challenge")
    assert decide(True, FAILED) == (False, "challenge")
    assert decide(False, PASSED) == (False, "passive")
    assert decide(False, FAILED) == (False, "passive")
    assert set(PROMPT_TEXT) == {"blink", "left", "right"}


def test_parse_kinds():
    assert parse_kinds("blink, LEFT,blink") == ("blink", "left")
    with pytest.raises(ValueError, match="nod"):
        parse_kinds("blink,nod")
    with pytest.raises(ValueError):
        parse_kinds("")


# --- the state machine ----------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["blink", "left", "right"])
def test_passes_on_the_prompted_action_in_the_window(kind):
    machine = FaceChallenge(1, kinds=(kind,), count=2, rng=random.Random(3))
    events = drive(machine, lambda e: [(0.8, e["kind"])])
    names = [e["event"] for e in events]
    assert names == ["calibrated", "prompt", "answered", "prompt", "answered", "passed"], events
    assert machine.status == PASSED
    answered = [e for e in events if e["event"] == "answered"]
    assert all(e["kind"] == kind and 0.7 <= e["reaction_s"] <= 0.9 for e in answered)
    assert [e["index"] for e in answered] == [1, 2]
    assert events[-1] == {"event": "passed", "track": 1, "t": events[-1]["t"]}


def test_fails_on_timeout_and_on_the_wrong_action():
    machine = FaceChallenge(1, kinds=("blink",), count=2, rng=random.Random(0))
    events = drive(machine, lambda e: [])
    assert events[-1]["event"] == "failed" and events[-1]["reason"] == "timeout"
    # A blink is judged latency_s after it began: one begun just before the deadline still counts.
    waited = DEFAULT_SETTINGS.timeout_s + machine.detector.blink.latency_s
    assert events[-1]["t"] - prompt_of(events)["t"] == pytest.approx(waited, abs=0.05)
    assert machine.status == FAILED
    # Turning the head when asked to blink is no answer either.
    machine = FaceChallenge(1, kinds=("blink",), count=1, rng=random.Random(0))
    events = drive(machine, lambda e: [(0.8, "left")])
    assert events[-1]["reason"] == "timeout"


def test_an_action_too_soon_after_the_prompt_is_not_an_answer():
    # Closing the eyes 50 ms after the prompt means the blink was under way before it.
    machine = FaceChallenge(1, kinds=("blink",), count=1, rng=random.Random(0))
    events = drive(machine, lambda e: [(0.05, "blink")])
    assert events[-1]["reason"] == "timeout"


def test_fails_on_the_action_just_before_the_prompt():
    rng_seed = 5
    # Find when the prompt will come by a dry run with the same seed ...
    probe = FaceChallenge(1, kinds=("blink",), count=1, rng=random.Random(rng_seed))
    prompt_t = prompt_of(drive(probe, lambda e: [(0.8, "blink")]))["t"]
    # ... then blink 0.5 s before it, and again when prompted.
    machine = FaceChallenge(1, kinds=("blink",), count=1, rng=random.Random(rng_seed))
    events = run(machine, stream(prompt_t + 3.0, blinks=[prompt_t - 0.5, prompt_t + 0.8]))
    assert prompt_of(events)["t"] == pytest.approx(prompt_t)
    assert events[-1]["event"] == "failed" and events[-1]["reason"] == "blink before the prompt"
    # A blink well before the quiet window does no harm.
    machine = FaceChallenge(1, kinds=("blink",), count=1, rng=random.Random(rng_seed))
    early = prompt_t - DEFAULT_SETTINGS.quiet_s - 0.4
    assert early > DEFAULT_SETTINGS.calibration_s + 0.2
    events = run(machine, stream(prompt_t + 3.0, blinks=[early, prompt_t + 0.8]))
    assert machine.status == PASSED, events


@pytest.mark.parametrize("seed", range(10))
def test_continuous_blinking_never_passes(seed):
    blinks = np.arange(0.3, 30, 0.7)  # a blink every 0.7 s, shorter than the quiet window
    machine = FaceChallenge(1, kinds=("blink",), count=1, rng=random.Random(seed))
    events = run(machine, stream(30, blinks=blinks))
    assert machine.status == FAILED, events
    assert events[-1]["reason"] == "blink before the prompt"


def test_continuous_head_shaking_never_passes():
    turns = [(t, "left" if i % 2 else "right") for i, t in enumerate(np.arange(1.5, 30, 0.9))]
    for seed in range(5):
        machine = FaceChallenge(1, kinds=("left", "right"), count=1, rng=random.Random(seed))
        run(machine, stream(30, turns=turns))
        assert machine.status == FAILED


def test_tracks_are_independent():
    manager = ChallengeManager(kinds=("blink",), count=1, rng=random.Random(1))
    plans: dict[int, list[float]] = defaultdict(list)
    events = []
    for t in frames(12):
        for track in (1, 2):
            ear = 0.05 if any(b <= t < b + 0.15 for b in plans[track]) else OPEN_EAR
            for e in manager.update(track, face(ear, shift=(400 * track, 0)), t):
                events.append(e)
                if e["event"] == "prompt" and track == 1:
                    plans[1].append(e["t"] + 0.8)  # only face 1 answers
    assert manager.status(1) == PASSED
    assert manager.status(2) == FAILED
    assert {e["track"] for e in events} == {1, 2}
    assert manager.status(99) == PENDING  # never seen
    manager.forget(2)
    assert manager.status(2) == PENDING
    assert manager.face(2).phase == "calibrating"  # a face that comes back starts over


def test_tracks_that_left_expire():
    manager = ChallengeManager(rng=random.Random(0))
    manager.update(1, still(), 0.0)
    manager.update(2, still(), 0.0)
    manager.update(2, still(), 1.5)
    assert manager.expire(2.5) == [1]  # 1 unseen for 2.5 s, 2 for 1 s
    assert set(manager.faces) == {2}
    assert manager.expire(10.0) == [2] and not manager.faces


def test_kinds_and_timing_are_random_but_seeded():
    def prompts(seed):
        manager = ChallengeManager(count=3, rng=random.Random(seed))
        machine = manager.face(1)
        return [(e["kind"], e["t"]) for e in drive(machine, lambda e: [(0.8, e["kind"])]) if e["event"] == "prompt"]

    assert prompts(7) == prompts(7)
    seen = [prompts(seed) for seed in range(12)]
    assert len({p[0][0] for p in seen}) == 3  # every kind comes first for some seed
    assert len({p[0][1] for p in seen}) == 12  # and the moment differs


def test_events_are_json_ready():
    import json

    machine = FaceChallenge(4, kinds=("left",), count=1, rng=random.Random(0))
    events = drive(machine, lambda e: [(0.5, "left")])
    for e in events:
        assert json.loads(json.dumps(e)) == e
        assert e["track"] == 4 and isinstance(e["t"], float)


def test_bad_arguments():
    with pytest.raises(ValueError, match="kinds"):
        ChallengeManager(kinds=("wink",))
    with pytest.raises(ValueError, match="count"):
        ChallengeManager(count=0)
    with pytest.raises(ValueError):
        ChallengeSettings(min_dip=1.5)
    with pytest.raises(ValueError, match="landmarks"):
        FaceChallenge(1).update(np.zeros((5, 2)), 0.0)


# --- a replayed video against random prompts -----------------------------------------------
def chance_of_passing(onsets: np.ndarray, period: float, s: ChallengeSettings, step: float = 1e-3) -> float:
    """Fraction of prompt times T in one loop of a replay whose blink onsets are `onsets`
    (looped with `period`) at which a blind replay would pass one blink challenge: an
    onset in [T + min_reaction_s, T + timeout_s] and none in [T - quiet_s, T)."""
    looped = np.concatenate([onsets - period, onsets, onsets + period, onsets + 2 * period])
    ts = np.arange(0.0, period, step)
    after = ((looped[None, :] >= ts[:, None] + s.min_reaction_s) & (looped[None, :] <= ts[:, None] + s.timeout_s)).any(1)
    before = ((looped[None, :] >= ts[:, None] - s.quiet_s) & (looped[None, :] < ts[:, None])).any(1)
    return float(np.mean(after & ~before))


def test_a_replayed_blinking_video_passes_no_more_often_than_chance():
    """A replay cannot see the prompt: it passes only when the prompt happens to land
    just before one of its recorded blinks (an onset within the response window) and
    not just after one (none in the quiet window). The fraction p of prompt times
    where that holds is computed here from the blink times alone, independently of
    the state machine. Over N random prompts the machine's pass count must not exceed
    N*p by more than 3 binomial standard deviations (+1 for rounding): a machine that
    credited blinks before the prompt or after the deadline would exceed it.

    The replayed video is subject01/real.mp4's hand-labelled blink times (tests/data/
    blinks.csv), looped, as landmarks whose eyes shut for the labelled frames. (A
    video of someone blinking every 0.7 s never passes: test_continuous_blinking.)"""
    spans = read_blink_labels(BLINKS_CSV)["subject01/real.mp4"]
    period = 621 / FPS  # the video's length
    onsets = np.array([a / FPS for a, _ in spans])
    s = DEFAULT_SETTINGS
    p = chance_of_passing(onsets, period, s)

    rng = random.Random(2024)
    n = 300
    passes = sum(replay_passes(spans, period, FaceChallenge(1, kinds=("blink",), count=1, rng=rng), rng)
                 for _ in range(n))
    assert passes <= n * p + 3 * math.sqrt(n * p * (1 - p)) + 1, (passes, n, p)
    # The machine is not stricter than it should be either: a replay passes about as
    # often as chance says (the same margin below), so the bound above is not vacuous.
    assert passes >= n * p - 3 * math.sqrt(n * p * (1 - p)) - 1, (passes, n, p)

    # The default sequence (two prompts, kinds drawn from blink / left / right): a replay
    # that only blinks passes only if both kinds drawn are blink (1 in 9, whatever the
    # replay does) and its first blink prompt passes (at most p, as above).
    q = p / 9
    passes = sum(replay_passes(spans, period, FaceChallenge(1, rng=rng), rng) for _ in range(n))
    assert passes <= n * q + 3 * math.sqrt(n * q * (1 - q)) + 1, (passes, n, q)


def replay_passes(spans, period: float, machine: FaceChallenge, rng: random.Random) -> bool:
    """Run `machine` on a looped replay whose eyes are shut on the labelled frames,
    started at a random point of the loop (the attacker cannot aim at the prompt)."""
    offset = rng.uniform(0, period)
    s = machine.settings
    longest = s.calibration_s + machine.count * (s.max_delay_s + s.timeout_s + s.dip_far_s) + 0.5  # blink latency
    for i in range(int(longest * FPS)):
        t = i / FPS
        frame = ((offset + t) % period) * FPS
        shut = any(a <= frame <= b for a, b in spans)
        machine.update(still(0.05 if shut else OPEN_EAR), t)
        if machine.status != PENDING:
            break
    return machine.status == PASSED


# --- the blink detector on hand-labelled real video ----------------------------------------
@pytest.fixture(scope="module")
def blink_results(shared_data):
    """The detector over every hand-labelled video as the demo runs it (landmarks on every frame,
    the SSD every few frames), one process a core."""
    return evaluate_blinks(read_blink_labels(BLINKS_CSV), shared_data / "videos", workers=os.cpu_count() or 1)


@pytest.mark.shared_data
def test_blink_detector_on_labelled_video(blink_results):
    """The measured floor (README: 6 of 11 blinks, 4 false in 102 s; one more false allowed, for
    another CPU's arithmetic): no losing ground."""
    total = summarise(blink_results)
    assert total["labelled"] == 11 and total["minutes"] > 1.5, total
    assert total["found"] >= 6, blink_results
    assert total["false"] <= 5, blink_results


@pytest.mark.shared_data
@pytest.mark.xfail(strict=True, reason="issue 14's target is not met on the shared videos: two of the 11 "
                   "labelled blinks make no dip in the eye aspect ratio, so no --blink-depth finds 10 "
                   "(README, Active liveness)")
def test_blink_detector_meets_the_issue_target(blink_results):
    total = summarise(blink_results)
    assert total["recall"] >= 0.9 and total["false_per_minute"] <= 1.0


def test_blink_labels_and_matching(tmp_path):
    labels = read_blink_labels(BLINKS_CSV)
    assert labels["subject02/real.mp4"] == [] and len(labels["subject01/real.mp4"]) == 4
    # A detection within 2 frames of a labelled span finds it; one far away is false;
    # two detections of one blink count it once.
    assert match_blinks([159, 163, 300], [(161, 165), (400, 404)]) == (1, 1)
    bad = tmp_path / "bad.csv"
    bad.write_text("video,start_frame,end_frame\nx.mp4,9,3\n")
    from liveness.errors import DataError

    with pytest.raises(DataError, match="row 1"):
        read_blink_labels(bad)


def test_blink_depth_sweep_scores_other_depths_on_one_pass_of_landmarks(tmp_path):
    """A shallow dip (to 0.6 of the open level) and a deep one (0.2): the default depth (0.5)
    finds the deep one only, 0.3 both, 0.9 neither; the landmarks run once for all depths."""
    import cv2

    from liveness.detector import Face

    writer = cv2.VideoWriter(str(tmp_path / "v.avi"), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (64, 48))
    for _ in range(150):
        writer.write(np.zeros((48, 64, 3), np.uint8))
    writer.release()
    ears = {**dict.fromkeys(range(30, 34), 0.6 * OPEN_EAR), **dict.fromkeys(range(90, 94), 0.2 * OPEN_EAR)}

    class ScriptedLandmarks:  # the n-th call gets frame n's eyes
        calls = 0

        def landmarks(self, frame, box):
            self.calls += 1
            return still(ears.get(self.calls - 1, OPEN_EAR))

    class OneFace:
        def detect(self, frame):
            return [Face((8, 8, 40, 40), 0.9)]

    marks = ScriptedLandmarks()
    [r] = evaluate_blinks({"v.avi": [(30, 33), (90, 93)]}, tmp_path, OneFace(), marks, detect_every=1,
                          sweep=(0.3, DEFAULT_SETTINGS.min_dip, 0.9))
    assert marks.calls == 150
    assert (r.found, r.false, r.onsets) == (1, 0, [90])
    assert r.sweep == {0.3: (2, 0), DEFAULT_SETTINGS.min_dip: (1, 0), 0.9: (0, 0)}
    rows = summarise_sweep([r])
    assert [row["depth"] for row in rows] == [0.3, DEFAULT_SETTINGS.min_dip, 0.9]
    assert rows[1] == {"depth": DEFAULT_SETTINGS.min_dip, **summarise([r])}
    [r] = evaluate_blinks({"v.avi": [(30, 33), (90, 93)]}, tmp_path, OneFace(), ScriptedLandmarks(), detect_every=1,
                          settings=ChallengeSettings(min_dip=0.3))
    assert (r.found, r.false, r.sweep) == (2, 0, {})


def test_prompt_is_drawn_below_the_face():
    from liveness.annotate import PROMPT_COLOUR, draw_prompt

    image = np.zeros((480, 640, 3), np.uint8)
    draw_prompt(image, (200, 100, 360, 300), PROMPT_TEXT["left"])
    ys, xs = np.nonzero(np.all(image == PROMPT_COLOUR, axis=2))
    assert len(ys) > 500 and ys.min() >= 300 and xs.min() >= 200
    # At the frame's foot the band moves inside the box, still within the frame.
    image = np.zeros((480, 640, 3), np.uint8)
    draw_prompt(image, (200, 280, 360, 480), PROMPT_TEXT["blink"])
    ys, _ = np.nonzero(np.all(image == PROMPT_COLOUR, axis=2))
    assert len(ys) > 200 and ys.max() < 480 and ys.min() >= 280


@pytest.mark.shared_data
def test_benchmark_runs(shared_data, tmp_path):
    """benchmarks/bench_challenge.py has not rotted (a couple of frames; no time asserted)."""
    import json

    from benchmarks import bench_challenge

    out = tmp_path / "bench.json"
    bench_challenge.run(video=shared_data / "videos" / "subject02" / "real.mp4", frames=3, repeats=1, json_path=out)
    data = json.loads(out.read_text())
    assert data["faces_per_round"] == 3
    for key in ("ssd_ms_per_frame", "landmarks_ms_per_face", "challenge_ms_per_face", "throughput_kept", "demo_throughput_kept"):
        assert math.isfinite(data[key]) and data[key] > 0, data


# --- beside the pipeline (liveness/active.py) ---------------------------------------------------
class ScriptedLandmarker:
    """Stands in for Landmarker: returns the landmarks a test sets for the next frame."""

    def __init__(self):
        self.next = still()

    def landmarks(self, frame, box):
        return self.next


def test_active_check_combines_the_two_verdicts():
    from dataclasses import dataclass

    from liveness.active import ActiveCheck
    from liveness.annotate import PROMPT_COLOUR

    @dataclass
    class Face:
        box: tuple
        track_id: int
        live: bool

    lm = ScriptedLandmarker()
    check = ActiveCheck(kinds=("blink",), count=1, rng=random.Random(0), landmarker=lm)
    faces = [Face((100, 100, 260, 300), 1, True), Face((300, 100, 460, 300), 2, False)]
    frame = np.zeros((480, 640, 3), np.uint8)
    all_events, shown, blink_at = [], False, None
    for t in frames(10):
        lm.next = still(0.05 if blink_at is not None and blink_at <= t < blink_at + 0.15 else OPEN_EAR)
        verdicts, events = check.process(frame, faces, t)
        all_events += events
        if any(e["event"] == "prompt" and e["track"] == 1 for e in events):
            blink_at = t + 0.6
            image = check.annotate(frame.copy(), faces)
            shown = np.all(image == PROMPT_COLOUR, axis=2).sum() > 200
        if check.manager.status(1) != PENDING:
            break
    assert shown
    # Face 1: passive live and challenge passed -> live, decided by both. Face 2 blinked
    # at the same moments (one landmarker), so its challenge may pass, but the passive
    # score said spoof: not live, and the passive part decided.
    assert verdicts[0] == {"track": 1, "challenge": PASSED, "prompt": None, "live": True, "decided_by": "both"}
    assert verdicts[1]["live"] is False and verdicts[1]["decided_by"] == "passive"
    assert {"prompt", "answered", "passed"} <= {e["event"] for e in all_events if e["track"] == 1}
    # A face that left is forgotten after a while; one that comes back starts over.
    check.process(frame, faces[:1], 20.0)
    assert 2 not in check.manager.faces


# --- the demo with --challenge ---------------------------------------------------------------
@pytest.mark.shared_data
def test_demo_json_with_challenge(shared_data, tmp_path):
    """liveness_demo.py --challenge --no-display --json on a shared live video: prompt and
    result events in the JSON lines, and every face's verdict says which part decided.
    (The model is a tiny random one, so the texture verdict means nothing; the video is
    a recording, so its blinks answer prompts only by luck.)"""
    import json

    from test_demo import run_demo, write_tiny_model

    model = write_tiny_model(tmp_path / "liveness", threshold=0.0)  # texture: everything live
    proc = run_demo("--input", shared_data / "videos" / "subject01" / "real.mp4", "--model", model,
                    "--challenge", "--challenge-seed", 1, "--blink-depth", 0.45, "--no-display", "--json",
                    "--max-frames", 240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    events = [x for x in lines if "event" in x]
    frames_ = [x for x in lines if "faces" in x]
    assert len(frames_) == 240
    prompts = [e for e in events if e["event"] == "prompt"]
    assert prompts and all(e["kind"] in ("blink", "left", "right") for e in prompts)
    # Each prompt is answered or failed (240 frames leave time for the first one's deadline).
    first = prompts[0]
    after = [e for e in events if e["track"] == first["track"] and e["frame"] > first["frame"]
             and e["event"] in ("answered", "failed")]
    assert after, events
    assert any(e["event"] in ("passed", "failed") for e in events)
    for line in frames_:
        for got in line["faces"]:
            assert got["challenge"] in ("pending", "passed", "failed")
            assert got["passive_live"] is True  # threshold 0
            assert got["live"] == (got["challenge"] == "passed")
            assert got["decided_by"] == ("both" if got["live"] else "challenge")
            if got["prompt"] is not None:
                assert got["challenge"] == "pending"
    # An event line comes before the line of the frame it happened on.
    order = [(x["frame"], "faces" in x) for x in lines]
    assert order == sorted(order)
    assert "challenges:" in proc.stderr and "blink depth 0.45" in proc.stderr
