"""Drawing the demo's verdicts on a frame: boxes, labels, scores, track ids, FPS.

Live faces get a green box, everything else red (BGR (0, 255, 0) and (0, 0, 255),
exact, so a test can find them on a screenshot). Text sits on a filled band in the
box's colour, above the box, or inside it when the box touches the top edge.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

import cv2
import numpy as np

LIVE_COLOUR = (0, 255, 0)
SPOOF_COLOUR = (0, 0, 255)
TEXT_COLOUR = (0, 0, 0)
FPS_COLOUR = (255, 255, 255)
FONT = cv2.FONT_HERSHEY_SIMPLEX


class Drawable(Protocol):
    box: tuple[int, int, int, int]
    label: str
    score: float
    track_id: int


def text_scale(shape: tuple[int, ...]) -> tuple[float, int]:
    """Font scale and line thickness that read well at this frame size."""
    short = min(shape[:2])
    scale = max(0.45, short / 720 * 0.8)
    return scale, max(1, round(scale * 2))


def _label_band(image: np.ndarray, text: str, x: int, y_top: int, colour, scale: float, thickness: int) -> None:
    """`text` on a filled band whose top-left corner is (x, y_top), kept inside the image."""
    h, w = image.shape[:2]
    (tw, th), base = cv2.getTextSize(text, FONT, scale, thickness)
    pad = max(2, thickness * 2)
    bw, bh = tw + 2 * pad, th + base + 2 * pad
    x = int(min(max(0, x), max(0, w - bw)))
    y_top = int(min(max(0, y_top), max(0, h - bh)))
    cv2.rectangle(image, (x, y_top), (x + bw, y_top + bh), colour, cv2.FILLED)
    cv2.putText(image, text, (x + pad, y_top + pad + th), FONT, scale, TEXT_COLOUR, thickness, cv2.LINE_AA)


def draw_faces(image: np.ndarray, faces: Iterable[Drawable], live_label: str) -> np.ndarray:
    """Box and `label live:score #id` for each face, drawn into `image` (returned)."""
    scale, thickness = text_scale(image.shape)
    line = max(2, thickness + 1)
    for face in faces:
        colour = LIVE_COLOUR if face.label == live_label else SPOOF_COLOUR
        x1, y1, x2, y2 = face.box
        cv2.rectangle(image, (x1, y1), (max(x1, x2 - 1), max(y1, y2 - 1)), colour, line)
        text = f"{face.label} live:{face.score:.2f} #{face.track_id}"
        (_, th), base = cv2.getTextSize(text, FONT, scale, thickness)
        band_h = th + base + 2 * max(2, thickness * 2)
        top = y1 - band_h if y1 - band_h >= 0 else y1  # above the box, else inside it
        _label_band(image, text, x1, top, colour, scale, thickness)
    return image


def draw_fps(image: np.ndarray, fps: float | None) -> np.ndarray:
    """`FPS 12.3` in the top-left corner, white on black."""
    if fps is None or not np.isfinite(fps):
        return image
    scale, thickness = text_scale(image.shape)
    text = f"FPS {fps:.1f}"
    (tw, th), base = cv2.getTextSize(text, FONT, scale, thickness)
    pad = max(2, thickness * 2)
    cv2.rectangle(image, (0, 0), (tw + 2 * pad, th + base + 2 * pad), (0, 0, 0), cv2.FILLED)
    cv2.putText(image, text, (pad, pad + th), FONT, scale, FPS_COLOUR, thickness, cv2.LINE_AA)
    return image


def annotate(frame: np.ndarray, faces: Iterable[Drawable], live_label: str, fps: float | None = None) -> np.ndarray:
    """A copy of `frame` with every face and the FPS drawn on it."""
    image = frame.copy()
    draw_faces(image, faces, live_label)
    return draw_fps(image, fps)


PROMPT_COLOUR = (0, 255, 255)  # yellow: neither verdict's colour, so a test can find it


def draw_band_below(image: np.ndarray, box: tuple[int, int, int, int], text: str, colour,
                    emphasis: float = 1.0) -> np.ndarray:
    """`text` on a band of `colour` just below the face's box, or inside its bottom when
    the box reaches the frame's foot; drawn into `image`. `emphasis` scales the font."""
    scale, thickness = text_scale(image.shape)
    scale *= emphasis
    x1, _, _, y2 = box
    (_, th), base = cv2.getTextSize(text, FONT, scale, thickness)
    band_h = th + base + 2 * max(2, thickness * 2)
    top = y2 if y2 + band_h <= image.shape[0] else y2 - band_h
    _label_band(image, text, x1, top, colour, scale, thickness)
    return image


def draw_prompt(image: np.ndarray, box: tuple[int, int, int, int], text: str) -> np.ndarray:
    """An active-liveness prompt, the one thing the user must read at a glance: larger, yellow."""
    return draw_band_below(image, box, text, PROMPT_COLOUR, emphasis=1.2)
