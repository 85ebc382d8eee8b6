"""Where frames come from: one helper decides webcam vs file vs folder vs stream URL.

`FrameSource` is the one way the suite reads frames (demo, gather, evaluate, web,
benchmarks): it opens the input with a clear error, reads in a background thread so
decoding overlaps detection, keeps only the newest frame of a live source, grabs
without decoding the frames a `skip` leaves out, and gives up on a silent stream
after a timeout.
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

from liveness.cli import printable
from liveness.errors import SourceError

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
DEFAULT_TIMEOUT_S = 10.0  # a stream that does not open, or goes silent, this long has stopped
FALLBACK_FPS = 30.0


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
    """Decide what `--input` names. Anything that is none of them is a SourceError."""
    text = str(spec).strip()
    if not text:  # Path("") is the working directory: never guess that
        raise SourceError("the input is empty (expected a video file, a folder of videos, a webcam index or a stream URL)")
    if text.isdigit():
        return Source("webcam", int(text))
    if _URL.match(text):
        return Source("url", text)
    path = Path(text).expanduser()
    if path.is_file():
        return Source("file", path)
    if path.is_dir():
        if not allow_folder:
            raise SourceError(f"{text} is a folder; give one video file, a webcam index or a stream URL")
        return Source("folder", path)
    what = "a video file, a folder of videos, " if allow_folder else "a video file, "
    raise SourceError(f"{printable(text)} does not exist (expected {what}a webcam index such as 0, or a stream URL)")


def walk_files(folder: Path, extensions: frozenset[str]) -> list[Path]:
    """Every file under `folder` whose extension is in `extensions`, sorted.

    Path.rglob does not descend into symlinked folders (before Python 3.13): a dataset
    folder of links to subjects' folders would look empty. Each real folder is walked once.
    """
    found, seen = [], set()
    for root, dirs, files in os.walk(folder, followlinks=True):
        real = os.path.realpath(root)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        found.extend(
            Path(root) / f for f in files
            if Path(f).suffix.lower() in extensions and (Path(root) / f).is_file()
        )
    return sorted(found)


def list_videos(folder: Path) -> list[Path]:
    """Every video file under `folder` (recursively, symlinked folders too), sorted."""
    return walk_files(folder, VIDEO_EXTENSIONS)


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


def _open_interruptibly(open_fn) -> cv2.VideoCapture:
    """Run a blocking open in a thread and wait in short slices: Ctrl-C must not wait
    for FFmpeg's timeout (a signal reaches Python only between its C calls)."""
    box: list = []
    thread = threading.Thread(target=lambda: box.append(open_fn()), name="stream-open", daemon=True)
    thread.start()
    while thread.is_alive():  # a KeyboardInterrupt here abandons the daemon thread
        thread.join(0.1)
    if not box:
        raise SourceError("the stream could not be opened (OpenCV failed)")
    return box[0]


def open_capture(source: Source, *, timeout: float = DEFAULT_TIMEOUT_S) -> cv2.VideoCapture:
    """An opened cv2.VideoCapture, or a SourceError that says which input failed and why."""
    if source.kind == "webcam":
        with _quiet_opencv():
            cap = cv2.VideoCapture(source.value)
        if not cap.isOpened():
            cap.release()
            other = 1 if source.value == 0 else 0
            raise SourceError(f"webcam {source.value} does not open (is it connected? try webcam {other}, or a video file)")
        return cap
    if source.kind == "folder":
        raise SourceError(f"{source.value} is a folder, not a single video")
    if source.kind == "url":
        # Without timeouts, a server that accepts and never answers blocks for 30 s and
        # Ctrl-C waits with it.
        ms = int(timeout * 1000)
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms]
        with _quiet_opencv():
            cap = _open_interruptibly(lambda: cv2.VideoCapture(str(source.value), cv2.CAP_FFMPEG, params))
    else:
        cap = cv2.VideoCapture(str(source.value))
    if not cap.isOpened():
        cap.release()
        what = "stream" if source.kind == "url" else "video file OpenCV can decode"
        raise SourceError(f"{printable(source.value)} is not a {what}" + (f" (nothing within {timeout:g} s?)" if source.kind == "url" else ""))
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


_END = object()


class FrameSource:
    """Frames of a file, webcam or stream, read in a background thread.

        with FrameSource("video.mp4", skip=2) as src:
            for index, frame in src:      # frame is None for frames `skip` leaves out
                ...

    A file delivers every frame in order (the reader blocks, never drops); a webcam or
    stream keeps only the newest frame, so a slow consumer sees the present rather
    than a backlog. A file must decode at least one frame, checked on opening. A live
    source that delivers nothing for `timeout` seconds ends the iteration
    (`stopped` says why). Waiting is in short slices, so Ctrl-C is handled at once.
    """

    def __init__(self, spec: str | int | Path | Source, *, skip: int = 1, timeout: float = DEFAULT_TIMEOUT_S,
                 buffer: int = 8) -> None:
        if skip < 1:
            raise ValueError(f"skip must be 1 or more, got {skip}")
        self.source = spec if isinstance(spec, Source) else resolve_source(spec, allow_folder=False)
        self.skip, self.timeout = skip, timeout
        self.stopped = ""  # "end" | "timeout" | "closed"
        self.cap = open_capture(self.source, timeout=timeout)
        fps = self.cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if np.isfinite(fps) and 1.0 <= fps <= 240.0 else FALLBACK_FPS
        frames = int(self.cap.get(cv2.CAP_PROP_FRAME_COUNT)) if self.source.kind == "file" else 0
        self.frame_count_hint = frames if frames > 0 else None  # some containers lie: a hint only
        self._first = None
        if self.source.kind == "file":  # a file must decode; its first frame is kept, not re-read
            ok, first = self.cap.read()
            if not ok or first is None:
                self.cap.release()
                raise SourceError(f"{printable(self.source.value)} has no frames (empty, truncated or not a video)")
            self._first = first
        self._queue: queue.Queue = queue.Queue(maxsize=1 if self.is_live else buffer)
        self._closing = threading.Event()
        self._release_when_done = False
        self._thread = threading.Thread(target=self._run, name="frame-reader", daemon=True)
        self._thread.start()

    @property
    def is_live(self) -> bool:
        return self.source.is_live

    def __str__(self) -> str:
        return str(self.source)

    def _run(self) -> None:
        index = 0
        try:
            while not self._closing.is_set():
                if index == 0 and self._first is not None:
                    frame = self._first
                elif index % self.skip:
                    frame = None if self.cap.grab() else _END
                else:
                    ok, frame = self.cap.read()
                    frame = frame if ok and frame is not None else _END
                if frame is _END:
                    break
                self._put((index, frame))
                index += 1
        finally:
            self._put(_END)
            if self._release_when_done:
                self.cap.release()

    def _put(self, item) -> None:
        if self.is_live:
            with contextlib.suppress(queue.Empty):
                self._queue.get_nowait()  # drop the stale frame
            with contextlib.suppress(queue.Full):
                self._queue.put_nowait(item)
            return
        while not self._closing.is_set():  # a file: block, never drop
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def read(self) -> tuple[int, np.ndarray | None] | None:
        """The next (index, frame), or None at the end (see `stopped`)."""
        waited = 0.0
        while True:
            try:
                item = self._queue.get(timeout=0.1)
                break
            except queue.Empty:
                waited += 0.1
                if waited >= self.timeout and self.is_live:
                    self.stopped = "timeout"
                    return None
                if not self._thread.is_alive() and self._queue.empty():
                    self.stopped = self.stopped or "end"
                    return None
        if item is _END:
            self.stopped = self.stopped or "end"
            return None
        return item

    def __iter__(self) -> Iterator[tuple[int, np.ndarray | None]]:
        while (item := self.read()) is not None:
            yield item

    def close(self) -> None:
        self.stopped = self.stopped or "closed"
        self._closing.set()
        # A live reader can sit in FFmpeg's read until the stream's timeout: Ctrl-C must not
        # wait for it, nor release the capture under it (a capture is not thread-safe).
        self._thread.join(timeout=0.2 if self.is_live else 2.0)
        if self._thread.is_alive():
            self._release_when_done = True  # the reader releases it when its read returns
            return
        self.cap.release()

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
