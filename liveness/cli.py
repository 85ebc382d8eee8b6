"""What every script shares at its edges: logging, argparse types, one-line errors, exit codes.

Library code raises `liveness.errors.LivenessError` subclasses with plain messages;
only the scripts know flag names (`UserError`) and turn either into one `[ERROR]` line.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

from liveness.crops import MAX_PADDING
from liveness.errors import LivenessError, OutputError

LOGGER = logging.getLogger("liveness")

EXIT_OK = 0
EXIT_PARTIAL = 1  # kept for callers; the scripts skip unreadable inputs and fail only when none was usable
EXIT_USAGE = 2  # bad input: nothing (more) was done
EXIT_INTERRUPTED = 130

# TensorFlow's C++ logging reads this when it is first imported: set before any import.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


class UserError(LivenessError):
    """A problem with what the user asked for on the command line."""


def printable(text: object, limit: int = 300) -> str:
    """`text` safe for a terminal line: control characters escaped, length bounded."""
    s = str(text)
    s = "".join(c if c.isprintable() else repr(c)[1:-1] for c in s)
    return s if len(s) <= limit else s[: limit - 3] + "..."


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    """A library warning as one line: no file:line prefix, no source line, no trailing newline."""
    return printable(f"{category.__name__}: {' '.join(str(message).split())}", 500)


def setup_logging(verbose: bool = False) -> None:
    """`[INFO] ...` lines on stderr, as the tutorial prints them; stdout stays for data."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="[%(levelname)s] %(message)s",
        stream=sys.stderr,
        force=True,
    )
    # Library warnings (matplotlib, scikit-learn) become [WARNING] lines, not raw text.
    logging.captureWarnings(True)
    warnings.formatwarning = _one_line_warning
    for category in (DeprecationWarning, FutureWarning):  # libraries' notes to their developers (tf2onnx: np.object)
        warnings.simplefilter("default" if verbose else "ignore", category)
    import cv2

    if not verbose:  # OpenCV's own [ WARN:0@...] / [ERROR:0@...] lines break the one-line promise
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)


def cli_main(main: Callable[[], int | None]) -> None:
    """Run a script's main(): a LivenessError -> one line + exit 2, Ctrl-C -> exit 130."""
    try:
        code = main()
    except LivenessError as e:
        LOGGER.error("%s", printable(e, 2000))
        sys.exit(EXIT_USAGE)
    except KeyboardInterrupt:
        LOGGER.warning("interrupted")
        sys.exit(EXIT_INTERRUPTED)
    except OSError as e:  # a write that failed after the up-front checks: disk full, permissions
        where = f" ({printable(e.filename)})" if e.filename else ""
        LOGGER.error("%s%s", e.strerror or printable(e), where)
        sys.exit(EXIT_USAGE)
    sys.exit(code or EXIT_OK)


# --- argparse types: every numeric flag is checked here, once -------------------------------
def _number(kind: type, text: str) -> float | int:
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a{'n integer' if kind is int else ' number'}, got {printable(text, 40)!r}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {printable(text, 40)!r}")
    return value


def ranged(kind: type = float, lo: float | None = None, hi: float | None = None, *, lo_open: bool = False) -> Callable[[str], float | int]:
    """An argparse type: a finite `kind` in [lo, hi] (or (lo, hi] with lo_open)."""

    def parse(text: str):
        value = _number(kind, text)
        if lo is not None and (value <= lo if lo_open else value < lo):
            raise argparse.ArgumentTypeError(f"must be {'>' if lo_open else '>='} {lo:g}, got {value:g}")
        if hi is not None and value > hi:
            raise argparse.ArgumentTypeError(f"must be <= {hi:g}, got {value:g}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


fraction = ranged(float, 0.0, 1.0)
positive_int = ranged(int, 1)
nonneg_int = ranged(int, 0)
positive_float = ranged(float, 0.0, lo_open=True)
padding_float = ranged(float, 0.0, MAX_PADDING)


def ensure_writable_dir(path: Path, what: str = "output folder") -> Path:
    """Create `path` if needed; an OutputError if it is a file or cannot be written."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{what} {path} is a file, not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot create {what} {path}: {e.strerror}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise OutputError(f"{what} {path} is not writable")
    return path


def ensure_parent_dir(path: Path, what: str = "output file") -> Path:
    """The folder a file will be written to must exist and be writable (it is not created)."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"the folder of {what} {path} does not exist: {parent}")
    if path.is_dir():
        raise OutputError(f"{what} {path} is a folder, not a file")
    try:  # os.access says yes to root everywhere (/proc too): try it
        fd, probe = tempfile.mkstemp(prefix=".probe.", dir=parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise OutputError(f"the folder of {what} {path} is not writable: {parent} ({e.strerror})") from None
    return path


def import_tensorflow():
    """Import TensorFlow with its C++ start-up chatter (absl, cudart stub) kept off stderr.

    TF 2.21 ignores TF_CPP_MIN_LOG_LEVEL for those lines, so file descriptor 2 is
    pointed at /dev/null for the import only; Python-level errors still surface.
    """
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            import tensorflow
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    tensorflow.get_logger().setLevel(logging.ERROR)  # retracing notices and the like are not the user's business
    return tensorflow
