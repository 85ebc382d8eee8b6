"""The blink detector of the dlib era (until 2026-11-30), for the benchmarks that measured it.

benchmarks/blink_cues.py, landmark_box.py and blink_motion.py measured eye cues and landmark
boxes through the blink rule the product used with dlib's 68 points: the eye aspect ratio
against the face's open-eye baseline, closed below close_ratio x baseline and open again above
open_ratio x baseline (hysteresis). The product now judges a dip against the open level on
both sides of it (liveness.challenge.BlinkDetector); this module keeps the old rule so those
benchmarks still reproduce the figures of docs/blink-research.md. Not used by the product.
"""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass

from liveness.challenge import DEFAULT_SETTINGS, ActionDetector, ChallengeSettings


@dataclass(frozen=True)
class HysteresisSettings:
    close_ratio: float = 0.8
    open_ratio: float = 0.95
    max_closed_s: float = 0.4
    min_closed_s: float = 0.09  # lids lowered for less: landmark jitter (1-2 frames at 30 fps)
    baseline_s: float = 1.0  # the open-eye baseline is the median EAR over this long
    calibration_s: float = DEFAULT_SETTINGS.calibration_s
    jump_scale: float = DEFAULT_SETTINGS.jump_scale


HYSTERESIS = HysteresisSettings()


class HysteresisBlinkDetector:
    """Eye aspect ratio -> blink events, against this face's own open-eye baseline.

    The baseline starts as the median EAR of the first `calibration_s` (eyes differ
    from face to face) and then follows the median of the last `baseline_s` of open
    eyes, so a slow change of pose or expression is not taken for a closing eye. A
    blink is a close (below `close_ratio` x baseline) followed within `max_closed_s`
    by a reopening (above `open_ratio` x baseline) no sooner than `min_closed_s`; it
    is reported when the eye reopens.
    """

    def __init__(self, settings: HysteresisSettings = HYSTERESIS) -> None:
        self.settings = settings
        self._history: deque[tuple[float, float]] = deque()  # (t, EAR) of open eyes
        self._closed_at: float | None = None

    @property
    def baseline(self) -> float | None:
        return statistics.median(e for _, e in self._history) if len(self._history) >= 3 else None

    def reset(self) -> None:
        self._history.clear()
        self._closed_at = None

    def update(self, ear: float, t: float, trusted: bool = True) -> float | None:
        """Feed one frame's EAR at time t; when a blink has just ended, the time it began.

        A blink is reported on reopening, but it is dated by its closing: that is
        when the face acted, before or after a prompt.

        `trusted=False` (the landmarks jumped) voids a closure under way:
        no blink is reported across frames the EAR cannot be believed on.
        """
        s = self.settings
        if not trusted:
            self._closed_at = None
            return None
        while self._history and self._history[0][0] < t - s.baseline_s:
            self._history.popleft()
        base = self.baseline
        if base is None:
            self._history.append((t, ear))
            return None
        if self._closed_at is None:
            if ear < s.close_ratio * base:
                self._closed_at = t
            else:
                self._history.append((t, ear))
            return None
        if ear > s.open_ratio * base:
            closed_at, self._closed_at = self._closed_at, None
            self._history.append((t, ear))
            return closed_at if s.min_closed_s <= t - closed_at <= s.max_closed_s else None
        if t - self._closed_at > s.max_closed_s:
            # Shut (or looking down) too long for a blink: take it as the new normal.
            self._closed_at = None
            self._history.clear()
        return None


class HysteresisActionDetector(ActionDetector):
    """liveness.challenge.ActionDetector with the dlib era's blink rule."""

    def __init__(self, settings: HysteresisSettings = HYSTERESIS, challenge: ChallengeSettings = DEFAULT_SETTINGS) -> None:
        super().__init__(challenge)
        self.blink = HysteresisBlinkDetector(settings)


def hysteresis_onsets(stream, settings: HysteresisSettings = HYSTERESIS) -> list[float]:
    """As liveness.challenge.blink_onsets, under the dlib era's rule."""
    detector, onsets = HysteresisActionDetector(settings), []
    for t, landmarks in stream:
        if landmarks is not None:
            onsets.extend(t0 for t0, kind in detector.update(landmarks, t) if kind == "blink")
    return onsets
