"""Active liveness: a random challenge (blink, turn the head) each tracked face must answer.

A photo or a pre-recorded video cannot follow a prompt it did not know. Per tracked
face, a small state machine calibrates the face's neutral head pose (blinks are
judged against the eyes' own open level around them), then at a random moment
prompts a random action, and passes the face only when the action comes within
`timeout_s` after the prompt and did NOT happen in the `quiet_s` just before it (so
a face blinking all the time, or a video of one, does not pass by luck). A sequence of `count` challenges must all pass.

Plain arithmetic on 68-point landmarks (liveness.landmarks' layout): no image, no
model, no clock. Time is passed in (seconds, any origin), so a video file's timestamps work
as well as a webcam's; randomness comes from an injectable `random.Random`.

Events are small dicts ready for JSON lines:
  {"event": "calibrated", "track": 1, "t": 1.0}
  {"event": "prompt", "track": 1, "kind": "blink", "index": 1, "of": 2, "t": 2.3, "deadline": 6.3}
  {"event": "answered", "track": 1, "kind": "blink", "index": 1, "of": 2, "t": 2.9, "reaction_s": 0.6}
  {"event": "passed", "track": 1, "t": 5.1}
  {"event": "failed", "track": 1, "kind": "blink", "index": 1, "of": 2, "t": 6.3, "reason": "timeout"}
"""

from __future__ import annotations

import math
import random
import statistics
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from liveness.landmarks import JAW, LEFT_EYE, N_POINTS, NOSE_TIP, RIGHT_EYE

KINDS = ("blink", "left", "right")  # "left" / "right": the subject's own left / right
TURNS = ("left", "right")
PENDING, PASSED, FAILED = "pending", "passed", "failed"
DEFAULT_COUNT = 2  # challenges in a face's sequence
EXPIRE_S = 2.0  # a track not updated this long has left: ChallengeManager.expire forgets it


# --- measurements from landmarks -------------------------------------------------------
def _dist(a, b) -> float:
    return math.hypot(a[0] - b[0], a[1] - b[1])  # scalar math: numpy's overhead dwarfs 2-vectors


def _eye_ratio(eye) -> float:
    # Soukupova & Cech 2016: lid-to-lid heights over the corner-to-corner width.
    height = _dist(eye[1], eye[5]) + _dist(eye[2], eye[4])
    width = _dist(eye[0], eye[3])
    return height / (2.0 * width) if width > 0 else 0.0


def eye_aspect_ratio(landmarks: np.ndarray) -> float:
    """Mean eye aspect ratio of both eyes: about 0.2-0.35 open, near 0 shut."""
    pts = np.asarray(landmarks, dtype=np.float64).tolist()
    return 0.5 * (_eye_ratio(pts[RIGHT_EYE]) + _eye_ratio(pts[LEFT_EYE]))


def yaw_ratio(landmarks: np.ndarray) -> float:
    """Head yaw from the nose tip's place between the jaw's ends: 0 when it is halfway.

    Positive when the subject turns to their own left (in an unmirrored camera image
    the nose moves towards the jaw end at image right, landmark 16), negative to
    their right. A ratio of distances, so it needs no camera intrinsics and does not
    change with the face's size or place.
    """
    pts = np.asarray(landmarks, dtype=np.float64)
    jaw = pts[JAW]
    right_end, left_end = jaw[0], jaw[-1]
    axis = left_end - right_end
    span = float(axis @ axis)
    if span <= 0:
        return 0.0
    return float((pts[NOSE_TIP] - right_end) @ axis / span) - 0.5


def face_scale(landmarks: np.ndarray) -> float:
    """Distance between the outer eye corners, in pixels."""
    pts = np.asarray(landmarks, dtype=np.float64)
    return _dist(pts[RIGHT_EYE.start], pts[LEFT_EYE.start + 3])


# --- settings -----------------------------------------------------------------------------
@dataclass(frozen=True)
class ChallengeSettings:
    """Every threshold and duration of the active check, defined once."""

    calibration_s: float = 1.0  # first seconds of a face: its open-eye EAR and neutral yaw
    min_delay_s: float = 0.5  # a prompt comes this long ...
    max_delay_s: float = 2.5  # ... to this long after calibration or the last answer
    timeout_s: float = 4.0  # the action must come within this long after the prompt
    min_reaction_s: float = 0.15  # faster than a human reacts: it was under way before the prompt
    quiet_s: float = 1.0  # the prompted action must be absent this long before the prompt
    # Blink: a short dip of the eye aspect ratio to at most (1 - min_dip) of the open level
    # around it, the lower of its medians dip_near_s-dip_far_s before and after (so a change
    # of pose, which moves the EAR for good, is not a dip). Decided dip_far_s after the frame.
    min_dip: float = 0.5
    dip_near_s: float = 0.25
    dip_far_s: float = 0.6
    min_closed_s: float = 0.0  # a dip must span at least this long (0: one frame is enough)
    blink_gap_s: float = 0.2  # dips closer than this to the last blink are the same blink
    # A landmark jump (centre moved by more than jump_scale x the eye distance, or the
    # eye distance changed by more than that fraction) is a detector glitch: reset the eye.
    jump_scale: float = 0.15
    # Head turn: yaw ratio this far from the neutral pose; re-armed below half of it.
    turn_threshold: float = 0.15

    def __post_init__(self) -> None:
        if not 0 < self.min_dip < 1:
            raise ValueError("need 0 < min_dip < 1")
        if not 0 <= self.dip_near_s < self.dip_far_s:
            raise ValueError("need 0 <= dip_near_s < dip_far_s")
        if not 0 <= self.min_delay_s <= self.max_delay_s:
            raise ValueError("need 0 <= min_delay_s <= max_delay_s")
        if self.min_closed_s < 0 or self.blink_gap_s < 0:
            raise ValueError("min_closed_s and blink_gap_s must not be negative")
        if not 0 <= self.min_reaction_s < self.timeout_s:
            raise ValueError("need 0 <= min_reaction_s < timeout_s")
        for name in ("calibration_s", "quiet_s", "turn_threshold"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")


DEFAULT_SETTINGS = ChallengeSettings()


PROMPT_TEXT = {"blink": "Blink", "left": "Turn your head to your left", "right": "Turn your head to your right"}


def decide(passive_live: bool, challenge_status: str) -> tuple[bool, str]:
    """(live, which part decided) for a face: live only when the passive score says
    live AND the challenge passed. 'passive' when the score said not live, 'challenge'
    when the challenge is pending or failed, 'both' when both agreed on live."""
    if not passive_live:
        return False, "passive"
    if challenge_status != PASSED:
        return False, "challenge"
    return True, "both"


def parse_kinds(text: str) -> tuple[str, ...]:
    """'blink,left' -> ('blink', 'left'); ValueError naming an unknown kind."""
    kinds = tuple(k.strip().lower() for k in text.split(",") if k.strip())
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        raise ValueError(f"challenge kinds must be among {', '.join(KINDS)}, got {text!r}")
    return tuple(dict.fromkeys(kinds))


# --- detectors of the actions -------------------------------------------------------------
class BlinkDetector:
    """Eye aspect ratio -> blink events: short dips below the open level around them.

    A blink is a frame whose EAR is at most (1 - min_dip) of the eye's open level
    around it: the lower of the EAR's medians over dip_near_s..dip_far_s before and
    after. Both sides must be open, so a change of pose or gaze that lowers the EAR for
    good (or eyes kept shut) is not a blink, and the level is this face's own (eyes
    differ). A frame is judged once dip_far_s of frames after it have been seen:
    blinks are reported that late (`latency_s`), dated by the first frame of the dip.
    """

    def __init__(self, settings: ChallengeSettings = DEFAULT_SETTINGS) -> None:
        self.settings = settings
        self._frames: deque[tuple[float, float]] = deque()  # (t, EAR; NaN when untrusted)
        self._next = 0  # index in _frames of the first frame not judged yet
        self._run: tuple[float, float] | None = None  # (first, last) time of the dip under way
        self._last_blink = -math.inf

    @property
    def latency_s(self) -> float:
        return self.settings.dip_far_s

    def reset(self) -> None:
        self._frames.clear()
        self._next, self._run, self._last_blink = 0, None, -math.inf

    def update(self, ear: float, t: float, trusted: bool = True) -> float | None:
        """Feed one frame's EAR at time t; when a blink has just been judged, the time it began.

        `trusted=False` (the landmarks jumped) voids that frame and any dip it is part of.
        """
        s = self.settings
        self._frames.append((t, float(ear) if trusted else math.nan))
        found = None
        while self._next < len(self._frames) and self._frames[self._next][0] <= t - s.dip_far_s:
            found = self._judge(self._next) or found
            self._next += 1
        while self._frames and self._frames[0][0] < t - 2 * s.dip_far_s - 1.0:  # keep what judging needs
            self._frames.popleft()
            self._next -= 1
        return found

    def _level(self, lo: float, hi: float) -> float:
        w = [e for t, e in self._frames if lo <= t <= hi and e == e]  # e == e: not NaN
        return statistics.median(w) if len(w) >= 2 else math.nan

    def _judge(self, i: int) -> float | None:
        s = self.settings
        t, ear = self._frames[i]
        level = min(self._level(t - s.dip_far_s, t - s.dip_near_s), self._level(t + s.dip_near_s, t + s.dip_far_s))
        if ear == ear and level > 0 and ear <= (1 - s.min_dip) * level:  # NaN compares False
            self._run = (self._run[0], t) if self._run else (t, t)
            return None
        run, self._run = self._run, None
        if ear != ear or run is None:  # an untrusted frame voids the dip under way
            return None
        start, end = run
        if end - start < s.min_closed_s or start - self._last_blink < s.blink_gap_s:
            return None
        self._last_blink = end
        return start


class TurnDetector:
    """Yaw ratio relative to the face's neutral pose -> 'left' / 'right' events."""

    def __init__(self, settings: ChallengeSettings = DEFAULT_SETTINGS) -> None:
        self.settings = settings
        self.neutral: float | None = None
        self._armed = True

    def update(self, yaw: float) -> str | None:
        if self.neutral is None:
            return None
        rel = yaw - self.neutral
        thr = self.settings.turn_threshold
        if self._armed and abs(rel) >= thr:
            self._armed = False
            return "left" if rel > 0 else "right"
        if not self._armed and abs(rel) < thr / 2:
            self._armed = True
        return None


class ActionDetector:
    """One face's landmarks, frame by frame -> the actions it completes: blinks and turns.

    Calibrates itself over the face's first `calibration_s`: the neutral yaw (median),
    so "left" means turned left of how this face sits, not of the camera's axis. A frame whose landmarks jump (a
    detector glitch) voids any closure of the eyes under way.
    """

    def __init__(self, settings: ChallengeSettings = DEFAULT_SETTINGS) -> None:
        self.settings = settings
        self.blink = BlinkDetector(settings)
        self.turn = TurnDetector(settings)
        self.started: float | None = None
        self._yaws: list[float] = []
        self._last: tuple[np.ndarray, float] | None = None  # (centre, scale) of the last frame

    @property
    def calibrated(self) -> bool:
        return self.turn.neutral is not None

    def update(self, landmarks: np.ndarray, t: float) -> list[tuple[float, str]]:
        """(time it began, kind) of each action this frame completes."""
        s = self.settings
        pts = np.asarray(landmarks, dtype=np.float64)
        if pts.shape != (N_POINTS, 2) or not np.isfinite(pts).all():
            raise ValueError(f"expected ({N_POINTS}, 2) finite landmarks, got {pts.shape}")
        if self.started is None:
            self.started = t
        centre, scale = pts.mean(axis=0), face_scale(pts)
        jumped = False
        if self._last is not None:
            last_centre, last_scale = self._last
            jumped = (_dist(centre, last_centre) > s.jump_scale * last_scale
                      or abs(scale - last_scale) > s.jump_scale * last_scale)
        self._last = (centre, scale)
        yaw = yaw_ratio(pts)
        if not self.calibrated:
            self._yaws.append(yaw)
            if t - self.started >= s.calibration_s:
                self.turn.neutral = float(np.median(self._yaws))
        actions = []
        closed_at = self.blink.update(eye_aspect_ratio(pts), t, trusted=not jumped)
        if closed_at is not None:
            actions.append((closed_at, "blink"))
        if not jumped:
            turn = self.turn.update(yaw)
            if turn:
                actions.append((t, turn))
        return actions


# --- one face's challenge ------------------------------------------------------------------
@dataclass
class FaceChallenge:
    """The state machine of one tracked face:

    calibrating -> waiting for the prompt (random delay) -> prompted (until timeout)
    -> next challenge ... -> passed; or failed (timeout, or the action came before
    the prompt). passed and failed are final.
    """

    track: int
    kinds: tuple[str, ...] = KINDS
    count: int = DEFAULT_COUNT
    settings: ChallengeSettings = DEFAULT_SETTINGS
    rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        if not self.kinds or any(k not in KINDS for k in self.kinds):
            raise ValueError(f"challenge kinds must be among {KINDS}, got {self.kinds}")
        if self.count < 1:
            raise ValueError(f"challenge count must be at least 1, got {self.count}")
        self.status = PENDING
        self.phase = "calibrating"
        self.detector = ActionDetector(self.settings)
        self.index = 0  # challenges answered so far
        self.kind: str | None = None
        self.prompt_at: float | None = None  # when the current prompt is (to be) shown
        self.deadline: float | None = None
        self._actions: deque[tuple[float, str]] = deque()  # recent (time began, kind) actions

    # -- public ------------------------------------------------------------------------
    @property
    def prompt(self) -> str | None:
        """The action being asked for now (for the overlay), else None."""
        return self.kind if self.phase == "prompted" else None

    def update(self, landmarks: np.ndarray, t: float) -> list[dict]:
        """One frame of this face at time t (seconds): the events it caused."""
        if self.status != PENDING:
            return []
        s = self.settings
        actions = self.detector.update(landmarks, t)
        self._actions.extend(actions)
        while self._actions and self._actions[0][0] < t - s.quiet_s - s.timeout_s:
            self._actions.popleft()
        events: list[dict] = []
        if self.phase == "calibrating":
            if self.detector.calibrated:
                self.phase = "waiting"
                self._schedule(t)
                events.append(self._event("calibrated", t))
        elif self.phase == "waiting" and t >= self.prompt_at:
            self.phase = "prompted"
            self.prompt_at = t  # the frame it is first shown on
            self.deadline = t + s.timeout_s
            events.append(self._event("prompt", t, kind=self.kind, index=self.index + 1,
                                      of=self.count, deadline=round(self.deadline, 3)))
        elif self.phase == "prompted":
            events.extend(self._judge(actions, t))
        return events

    # -- internals -----------------------------------------------------------------------
    def _schedule(self, t: float) -> None:
        s = self.settings
        self.kind = self.rng.choice(self.kinds)
        self.prompt_at = t + self.rng.uniform(s.min_delay_s, s.max_delay_s)

    def _judge(self, actions: list[tuple[float, str]], t: float) -> list[dict]:
        s = self.settings
        kind, prompt_at = self.kind, self.prompt_at
        # Before a turn prompt the head must be still: a head shaken all the time
        # would otherwise meet the prompted side by luck.
        related = TURNS if kind in TURNS else (kind,)
        before = [a for a_t, a in self._actions if a in related and prompt_at - s.quiet_s <= a_t < prompt_at]
        if before:
            return self._fail(t, f"{before[0]} before the prompt")
        answers = [a_t for a_t, a in actions if a == kind and a_t - prompt_at >= s.min_reaction_s]
        if answers and answers[0] <= self.deadline:
            events = [self._event("answered", t, kind=kind, index=self.index + 1, of=self.count,
                                  reaction_s=round(answers[0] - prompt_at, 3))]
            self.index += 1
            if self.index == self.count:
                self.status, self.phase = PASSED, "done"
                events.append(self._event("passed", t))
            else:
                self.phase = "waiting"
                self._schedule(t)
            return events
        # A blink is judged latency_s after it began: wait that long for one begun in time.
        grace = self.detector.blink.latency_s if kind == "blink" else 0.0
        if t > self.deadline + grace:
            return self._fail(t, "timeout")
        return []

    def _fail(self, t: float, reason: str) -> list[dict]:
        self.status, self.phase = FAILED, "done"
        return [self._event("failed", t, kind=self.kind, index=self.index + 1, of=self.count, reason=reason)]

    def _event(self, name: str, t: float, **extra) -> dict:
        return {"event": name, "track": self.track, "t": round(float(t), 3), **extra}


class ChallengeManager:
    """One FaceChallenge per track id; the tracker's ids are the keys.

    `rng` (a seeded `random.Random` in tests) draws every face's kinds and timings.
    """

    def __init__(self, kinds: tuple[str, ...] = KINDS, count: int = DEFAULT_COUNT,
                 settings: ChallengeSettings = DEFAULT_SETTINGS, rng: random.Random | None = None) -> None:
        self.kinds = tuple(kinds)
        self.count = count
        self.settings = settings
        self.rng = rng if rng is not None else random.Random()
        self.faces: dict[int, FaceChallenge] = {}
        self._seen: dict[int, float] = {}  # track id -> time of its last update
        FaceChallenge(-1, self.kinds, count, settings, self.rng)  # validate now, not on the first face

    def face(self, track_id: int) -> FaceChallenge:
        if track_id not in self.faces:
            self.faces[track_id] = FaceChallenge(track_id, self.kinds, self.count, self.settings, self.rng)
        return self.faces[track_id]

    def update(self, track_id: int, landmarks: np.ndarray, t: float) -> list[dict]:
        self._seen[track_id] = t
        return self.face(track_id).update(landmarks, t)

    def expire(self, t: float, after_s: float = EXPIRE_S) -> list[int]:
        """Forget the tracks not updated since `t - after_s` (their faces left); their ids."""
        gone = [track for track, seen in self._seen.items() if seen < t - after_s]
        for track in gone:
            self.forget(track)
        return gone

    def status(self, track_id: int) -> str:
        """'pending' | 'passed' | 'failed' ('pending' for a track never seen)."""
        face = self.faces.get(track_id)
        return face.status if face else PENDING

    def forget(self, track_id: int) -> None:
        """Drop a track that ended: a face that comes back starts over."""
        self.faces.pop(track_id, None)
        self._seen.pop(track_id, None)

    def reset(self) -> None:
        self.faces.clear()
        self._seen.clear()


# --- measuring the blink detector against labels ----------------------------------------------
def blink_onsets(stream, settings: ChallengeSettings = DEFAULT_SETTINGS) -> list[float]:
    """Times at which blinks began, from (t, landmarks or None) pairs of one face.

    None (no face on that frame) is skipped, as a tracker would; used to score the
    detector against hand-labelled video.
    """
    detector = ActionDetector(settings)
    onsets = []
    for t, landmarks in stream:
        if landmarks is not None:
            onsets.extend(t0 for t0, kind in detector.update(landmarks, t) if kind == "blink")
    return onsets


def match_blinks(detected: list[int], labelled: list[tuple[int, int]], slack: int = 2) -> tuple[int, int]:
    """(labelled blinks found, false detections) for detected onset frames.

    A detection finds a labelled blink when its onset lies within the blink's frame
    range widened by `slack` frames on each side (the lids move before they look shut).
    """
    found, false = set(), 0
    for frame in detected:
        hits = [i for i, (a, b) in enumerate(labelled) if a - slack <= frame <= b + slack]
        found.update(hits)
        false += not hits
    return len(found), false


def blink_depth(text: str) -> float:
    """argparse type of --blink-depth: ChallengeSettings.min_dip, validated where it is defined."""
    import argparse

    from liveness.cli import ranged

    value = ranged(float)(text)
    try:
        return ChallengeSettings(min_dip=value).min_dip
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (exclusive), got {value:g}") from None


def add_blink_depth_option(ap, when: str) -> None:
    """--blink-depth: one definition for the demo, the web page and evaluate.py --blinks."""
    ap.add_argument("--blink-depth", type=blink_depth, default=DEFAULT_SETTINGS.min_dip, metavar="FRACTION",
                    help=f"{when}a blink is the eye aspect ratio falling by at least this fraction of the open "
                         "level around it (lower finds more blinks and more false ones; evaluate.py --blinks "
                         "--blink-sweep measures it)")


def add_challenge_options(ap, what: str = "prompt each face to act") -> None:
    """--challenge [KINDS], --challenge-count, --challenge-seed, --blink-depth: one definition
    for the demo and the web page."""
    import argparse

    from liveness.cli import ranged

    def kinds(text: str) -> tuple[str, ...]:
        try:
            return parse_kinds(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    ap.add_argument("--challenge", nargs="?", const=",".join(KINDS), default=None, type=kinds, metavar="KINDS",
                    help=f"active check: {what} (comma-separated among {','.join(KINDS)}; alone: all)")
    ap.add_argument("--challenge-count", type=ranged(int, 1, 20), default=DEFAULT_COUNT,
                    help="prompts a face must answer in turn (with --challenge)")
    ap.add_argument("--challenge-seed", type=int, default=None, help="seed for the prompts' kinds and moments (none: different every run)")
    add_blink_depth_option(ap, "with --challenge: ")
