"""Where frames come from: one helper decides webcam vs file vs folder vs stream URL.

Also the small capture helpers the scripts share: listing videos, opening a capture
with a clear error, and a threaded reader so grabbing frames overlaps inference.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from liveness.cli import UserError

LOGGER = logging.getLogger("liveness")

# FFmpeg prints its own complaint ("moov atom not found", "header damaged") for every
# undecodable file, on top of our one-line error. OpenCV reads this once, at the first
# capture it opens, so it is set at import; a user's own OPENCV_FFMPEG_LOGLEVEL wins.
# 8 = AV_LOG_FATAL.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "8")

# Extensions OpenCV's FFmpeg backend decodes; the container is probed from the bytes,
# so a WebM in an .mp4 name still decodes.
VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".mov", ".webm", ".avi", ".mkv", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp", ".ogv", ".ts"}
)
STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp")
_URL = re.compile(rf"^({'|'.join(STREAM_SCHEMES)})://\S+$", re.IGNORECASE)

SourceKind = Literal["webcam", "file", "folder", "url"]


@dataclass(frozen=True)
class Source:
    kind: SourceKind
    value: int | Path | str

    @property
    def is_live(self) -> bool:
        """Webcams and streams never end by themselves."""
        return self.kind in ("webcam", "url")

    def __str__(self) -> str:
        return f"webcam {self.value}" if self.kind == "webcam" else str(self.value)


def resolve_source(spec: str | int | Path, *, allow_folder: bool = True) -> Source:
    """Decide what `--input` names. Anything that is none of them is a UserError."""
    text = str(spec).strip()
    if not text:  # Path("") is the working directory: never guess that
        raise UserError("--input is empty (expected a video file, a folder of videos, a webcam index or a stream URL)")
    if text.isdigit():
        return Source("webcam", int(text))
    if _URL.match(text):
        return Source("url", text)
    path = Path(text).expanduser()
    if path.is_file():
        return Source("file", path)
    if path.is_dir():
        if not allow_folder:
            raise UserError(f"--input {text} is a folder; give one video file, a webcam index or a stream URL")
        return Source("folder", path)
    what = "a video file, a folder of videos, " if allow_folder else "a video file, "
    raise UserError(f"--input {text} does not exist (expected {what}a webcam index such as 0, or a stream URL)")


def list_videos(folder: Path) -> list[Path]:
    """Every file under `folder` (recursively, symlinked folders too) with a video extension, sorted."""
    found, seen = [], set()
    # Path.rglob does not descend into symlinked folders (before 3.13): a dataset folder
    # of links to subjects' folders would look empty. Each real folder is walked once.
    for root, dirs, files in os.walk(folder, followlinks=True):
        real = os.path.realpath(root)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        found.extend(
            Path(root) / f for f in files
            if Path(f).suffix.lower() in VIDEO_EXTENSIONS and (Path(root) / f).is_file()
        )
    return sorted(found)


@contextlib.contextmanager
def _quiet_opencv() -> Iterator[None]:
    """Silence OpenCV's own WARN/ERROR lines (a missing webcam prints a dozen) unless -v."""
    if LOGGER.isEnabledFor(logging.DEBUG):
        yield
        return
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        cv2.utils.logging.setLogLevel(level)


def open_capture(source: Source) -> cv2.VideoCapture:
    """An opened cv2.VideoCapture, or a UserError that says which input failed and why."""
    if source.kind == "webcam":
        with _quiet_opencv():
            cap = cv2.VideoCapture(source.value)
        if not cap.isOpened():
            cap.release()
            other = 1 if source.value == 0 else 0
            raise UserError(f"webcam {source.value} does not open (is it connected? try --input {other}, or a video file)")
        return cap
    if source.kind == "folder":
        raise UserError(f"{source.value} is a folder, not a single video")
    cap = cv2.VideoCapture(str(source.value))
    if not cap.isOpened():
        cap.release()
        what = "stream" if source.kind == "url" else "video file OpenCV can decode"
        raise UserError(f"{source.value} is not a {what}")
    return cap


def iter_frames(cap: cv2.VideoCapture, skip: int = 1) -> Iterator[tuple[int, np.ndarray | None]]:
    """(index, frame) for every frame; frames off the `skip` grid come as None.

    Skipped frames are grabbed, never decoded into an image: `grab()` advances the
    stream for a fraction of what `read()` costs.
    """
    index = 0
    while True:
        if index % skip:
            if not cap.grab():
                return
            yield index, None
        else:
            ok, frame = cap.read()
            if not ok or frame is None:
                return
            yield index, frame
        index += 1


class ThreadedReader:
    """Reads frames in a background thread so decoding overlaps detection and inference.

    For a webcam or stream (`latest_only=True`) only the newest frame is kept, so a
    slow consumer sees the present rather than a growing backlog; for a file every
    frame is delivered in order. `read()` returns None once the source is exhausted.
    """

    def __init__(self, cap: cv2.VideoCapture, *, latest_only: bool = False, buffer: int = 8) -> None:
        self.cap = cap
        self.latest_only = latest_only
        self.frames: queue.Queue = queue.Queue(maxsize=1 if latest_only else buffer)
        self.closing = threading.Event()
        self.thread = threading.Thread(target=self._run, name="frame-reader", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.closing.is_set():
            ok, frame = self.cap.read()
            if not ok or frame is None:
                break
            self._put(frame)
        self._put(None)  # end of stream

    def _put(self, item: np.ndarray | None) -> None:
        if self.latest_only:
            try:
                self.frames.get_nowait()  # drop the stale frame
            except queue.Empty:
                pass
            self.frames.put(item)
            return
        while not self.closing.is_set():  # a file: block, never drop
            try:
                self.frames.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def read(self, timeout: float = 10.0) -> np.ndarray | None:
        """The next frame, or None at the end (or when nothing arrived for `timeout` s)."""
        try:
            return self.frames.get(timeout=timeout)
        except queue.Empty:
            return None

    def close(self) -> None:
        self.closing.set()
        self.thread.join(timeout=2.0)
        self.cap.release()
