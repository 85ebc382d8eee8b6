"""What every script shares at its edges: logging, one-line errors, exit codes."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

LOGGER = logging.getLogger("liveness")

EXIT_OK = 0
EXIT_PARTIAL = 1  # ran to the end, but some inputs failed
EXIT_USAGE = 2  # bad input: nothing (more) was done
EXIT_INTERRUPTED = 130


class UserError(Exception):
    """A problem with what the user asked for. Printed as one line, never a traceback."""


def setup_logging(verbose: bool = False) -> None:
    """`[INFO] ...` lines on stderr, as the tutorial prints them; stdout stays for data."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="[%(levelname)s] %(message)s",
        stream=sys.stderr,
        force=True,
    )
    # TensorFlow's C++ start-up chatter drowns the [INFO] lines.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def cli_main(main: Callable[[], int | None]) -> None:
    """Run a script's main(): UserError -> one line + exit 2, Ctrl-C -> exit 130."""
    try:
        code = main()
    except UserError as e:
        LOGGER.error("%s", e)
        sys.exit(EXIT_USAGE)
    except KeyboardInterrupt:
        LOGGER.warning("interrupted")
        sys.exit(EXIT_INTERRUPTED)
    sys.exit(code or EXIT_OK)


def ensure_writable_dir(path: Path, what: str = "output folder") -> Path:
    """Create `path` if needed; a UserError if it is a file or cannot be written."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{what} {path} is a file, not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create {what} {path}: {e.strerror}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise UserError(f"{what} {path} is not writable")
    return path


def ensure_parent_dir(path: Path, what: str = "output file") -> Path:
    """The folder a file will be written to must exist and be writable (it is not created)."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise UserError(f"the folder of {what} {path} does not exist: {parent}")
    if path.is_dir():
        raise UserError(f"{what} {path} is a folder, not a file")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"the folder of {what} {path} is not writable: {parent}")
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
    return tensorflow
