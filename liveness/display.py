"""Showing frames in a window, only where a window can be shown, and timing a loop.

OpenCV's Qt backend aborts the whole process (uncatchably) when it cannot reach the
display, so `display_available` decides before any cv2.imshow.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
import sys
import time

import cv2
import numpy as np

LOGGER = logging.getLogger("liveness")

WINDOW = "Liveness demo (q or Esc quits)"
QUIT_KEYS = (ord("q"), ord("Q"), 27)  # 27: Esc
_X_DISPLAY = re.compile(r"^(?P<host>[^:]*):(?P<num>\d+)(?:\.\d+)?$")


def display_available(env: dict | None = None) -> bool:
    """Whether a window can be opened. On Linux: DISPLAY is set and its X server answers.

    OpenCV's Qt backend aborts the whole process (uncatchably) when it cannot reach
    the display, so this is decided before any cv2.imshow.
    """
    env = os.environ if env is None else env
    if not sys.platform.startswith("linux"):
        return True
    name = env.get("DISPLAY", "").strip()
    if not name:
        return False
    m = _X_DISPLAY.match(name)
    if not m:
        LOGGER.warning("DISPLAY=%s is not an X display name; running headless", name)
        return False
    host, num = m["host"], int(m["num"])
    try:
        if host in ("", "unix"):
            path = f"/tmp/.X11-unix/X{num}"
            for address in (path, "\0" + path):  # the file, then Linux's abstract socket
                with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                    s.settimeout(1.0)
                    s.connect(address)
                    return True
            return False
        with socket.create_connection((host, 6000 + num), timeout=1.0):
            return True
    except OSError:
        return False


class Window:
    """cv2.imshow with its failure modes handled: a headless OpenCV build, a closed window."""

    def __init__(self) -> None:
        self.open = False

    def show(self, image: np.ndarray) -> str | None:
        """Show `image`; 'quit' on q/Esc, 'window closed' when the user closed it, else None."""
        try:
            if not self.open:
                cv2.namedWindow(WINDOW, cv2.WINDOW_AUTOSIZE)
            cv2.imshow(WINDOW, image)
        except cv2.error as e:  # opencv-python-headless: no GUI compiled in
            LOGGER.warning("cannot open a window (%s); running headless", str(e).strip().splitlines()[-1][:120])
            return "no window"
        self.open = True
        key = cv2.waitKey(1) & 0xFF
        if key in QUIT_KEYS:
            return "quit"
        if cv2.getWindowProperty(WINDOW, cv2.WND_PROP_VISIBLE) < 1:
            return "window closed"
        return None

    def hold(self, ms: int) -> None:
        """Keep the last frame up for `ms` milliseconds, or until q/Esc."""
        end = time.perf_counter() + ms / 1000
        while self.open and time.perf_counter() < end:
            if (cv2.waitKey(50) & 0xFF) in QUIT_KEYS or cv2.getWindowProperty(WINDOW, cv2.WND_PROP_VISIBLE) < 1:
                return

    def close(self) -> None:
        if self.open:
            cv2.destroyAllWindows()
            cv2.waitKey(1)  # let the GUI loop actually take the window down
            self.open = False



class FpsMeter:
    """Smoothed frames per second of a loop, for the overlay."""

    def __init__(self, alpha: float = 0.1) -> None:
        self.alpha, self.last, self.period = alpha, None, None

    def tick(self) -> None:
        now = time.perf_counter()
        if self.last is not None:
            dt = now - self.last
            self.period = dt if self.period is None else (1 - self.alpha) * self.period + self.alpha * dt
        self.last = now

    @property
    def fps(self) -> float | None:
        return 1.0 / self.period if self.period else None
