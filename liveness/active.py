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

from liveness.annotate import draw_prompt
from liveness.challenge import (
    DEFAULT_SETTINGS, EXPIRE_S, KINDS, PROMPT_TEXT, ChallengeManager, ChallengeSettings, decide,
)


class TrackedFace(Protocol):
    box: tuple[int, int, int, int]
    track_id: int
    live: bool  # the passive verdict


class ActiveCheck:
    """Landmarks of every tracked face -> its challenge -> the combined verdict.

    `landmarker` defaults to liveness.landmarks.Landmarker() (dlib, loaded here, so a
    missing package is reported before the first frame).
    """

    def __init__(self, kinds: Sequence[str] = KINDS, count: int = 2,
                 settings: ChallengeSettings = DEFAULT_SETTINGS, rng: random.Random | None = None,
                 landmarker=None) -> None:
        if landmarker is None:
            from liveness.landmarks import Landmarker

            landmarker = Landmarker()
        self.landmarker = landmarker
        self.manager = ChallengeManager(tuple(kinds), count, settings, rng)

    def process(self, frame: np.ndarray, faces: Sequence[TrackedFace], t: float) -> tuple[list[dict], list[dict]]:
        """(one verdict per face, in order; the challenge events of this frame)."""
        verdicts, events = [], []
        for face in faces:
            pts = self.landmarker.landmarks(frame, face.box)
            events.extend(self.manager.update(face.track_id, pts, t))
            status = self.manager.status(face.track_id)
            live, decided_by = decide(bool(face.live), status)
            verdicts.append({
                "track": face.track_id, "challenge": status, "prompt": self.manager.face(face.track_id).prompt,
                "live": live, "decided_by": decided_by,
            })
        self.manager.expire(t, EXPIRE_S)
        return verdicts, events

    def annotate(self, image: np.ndarray, faces: Sequence[TrackedFace]) -> np.ndarray:
        """The prompt under each face that has one now, drawn into `image`."""
        for face in faces:
            challenge = self.manager.faces.get(face.track_id)
            if challenge is not None and challenge.prompt:
                draw_prompt(image, face.box, PROMPT_TEXT[challenge.prompt])
        return image

    def reset(self) -> None:
        """A new stream: every face starts over."""
        self.manager.reset()
