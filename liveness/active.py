"""The active challenge beside the per-frame pipeline: what the demo calls with --challenge.

Per frame, after the pipeline has found, scored and tracked the faces:

    check = ActiveCheck(kinds=("blink", "left", "right"), count=2)
    verdicts, events = check.process(frame, results, t)   # results: pipeline FaceResults
    image = check.annotate(image, results)                # the prompts, under each face

A face is live only when the passive score says live AND its challenge passed;
each verdict says which part decided ("passive", "challenge" or "both").
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from liveness.annotate import LIVE_COLOUR, SPOOF_COLOUR, draw_band_below, draw_prompt
from liveness.challenge import (
    DEFAULT_COUNT, DEFAULT_SETTINGS, EXPIRE_S, KINDS, PROMPT_TEXT, ChallengeManager, ChallengeSettings,
    decide,
)

# What the band under a face says when no prompt is up, by the part that decided.
VERDICT_TEXT = {
    "both": "LIVE: texture and challenge",
    "challenge": "not live yet: challenge {status}",
    "passive": "not live: texture",
}


class TrackedFace(Protocol):
    box: tuple[int, int, int, int]
    track_id: int
    live: bool  # the passive verdict


class ActiveCheck:
    """Landmarks of every tracked face -> its challenge -> the combined verdict.

    `landmarker` defaults to liveness.landmarks.Landmarker() (the face mesh and iris
    models, loaded here, so a missing package is reported before the first frame).
    """

    def __init__(self, kinds: Sequence[str] = KINDS, count: int = DEFAULT_COUNT,
                 settings: ChallengeSettings = DEFAULT_SETTINGS, rng: random.Random | None = None,
                 landmarker=None) -> None:
        if landmarker is None:
            from liveness.landmarks import Landmarker

            landmarker = Landmarker()
        self.landmarker = landmarker
        self.manager = ChallengeManager(tuple(kinds), count, settings, rng)
        self.verdicts: dict[int, dict] = {}  # track id -> its latest verdict

    def process(self, frame: np.ndarray, faces: Sequence[TrackedFace], t: float) -> tuple[list[dict], list[dict]]:
        """(one verdict per face, in order; the challenge events of this frame)."""
        verdicts, events = [], []
        for face in faces:
            pts = self.landmarker.landmarks(frame, face.box)
            events.extend(self.manager.update(face.track_id, pts, t))
            status = self.manager.status(face.track_id)
            live, decided_by = decide(bool(face.live), status)
            verdict = {
                "track": face.track_id, "challenge": status, "prompt": self.manager.face(face.track_id).prompt,
                "live": live, "decided_by": decided_by,
            }
            verdicts.append(verdict)
            self.verdicts[face.track_id] = verdict
        for track in self.manager.expire(t, EXPIRE_S):
            self.verdicts.pop(track, None)
        return verdicts, events

    def annotate(self, image: np.ndarray, faces: Sequence[TrackedFace]) -> np.ndarray:
        """Under each face, drawn into `image`: the prompt while one is up (yellow),
        else the combined verdict and which part decided it (green live, red not)."""
        for face in faces:
            verdict = self.verdicts.get(face.track_id)
            if verdict is None:
                continue
            if verdict["prompt"]:
                draw_prompt(image, face.box, PROMPT_TEXT[verdict["prompt"]])
            else:
                text = VERDICT_TEXT[verdict["decided_by"]].format(status=verdict["challenge"])
                draw_band_below(image, face.box, text, LIVE_COLOUR if verdict["live"] else SPOOF_COLOUR)
        return image

    def reset(self) -> None:
        """A new stream: every face starts over."""
        self.manager.reset()
        self.verdicts.clear()
