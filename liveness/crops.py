"""How face crops are named and recorded, so train-time splits know their origin.

A crop's file name says which video and which frame it came from:

    <subject>_<video stem>_<8 hex of the video's sha1>_f<frame:06d>[_<face>].png

e.g. ``subject01_real_3fa2c1d9_f000042.png``. The hash is of the video's bytes, so
the same video always gives the same names (re-running is idempotent) and two
different ``real.mp4`` files never collide. ``manifest.csv`` beside the crops holds
the full source path, subject, frame, box and confidence of every crop.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from liveness.errors import DataError
from liveness.fileio import atomic_write_text, file_digest

MANIFEST_NAME = "manifest.csv"
MAX_PADDING = 2.0  # context per side as a fraction of the box (2 = a crop 5x the face)
CROP_SUFFIX = ".png"
_NAME = re.compile(r"^(?P<source>.+_[0-9a-f]{8})_f(?P<frame>\d{6,})(?:_(?P<face>\d+))?$")
_SLUG = re.compile(r"[^A-Za-z0-9-]+")


def slug(text: str) -> str:
    """File-name-safe text: letters, digits and '-' only (underscore separates fields)."""
    return _SLUG.sub("-", text).strip("-") or "x"


def video_digest(path: Path) -> str:
    """Hex sha1 of a video file's bytes: its identity, whatever its name."""
    return file_digest(path, "sha1")


def source_key(video: Path, digest: str) -> str:
    """`<subject>_<stem>_<hash8>`: the subject is the video's folder name."""
    subject = slug(video.resolve().parent.name)
    return f"{subject}_{slug(video.stem)}_{digest[:8]}"


def crop_name(source: str, frame: int, face: int = 0) -> str:
    """File name of the `face`-th face (0 = most confident) of `frame` of `source`."""
    extra = f"_{face}" if face else ""
    return f"{source}_f{frame:06d}{extra}{CROP_SUFFIX}"


def parse_crop_name(name: str) -> tuple[str, int] | None:
    """(source key, frame index) from a crop's file name, or None for foreign names."""
    m = _NAME.match(Path(name).stem)
    return (m["source"], int(m["frame"])) if m else None


@dataclass
class ManifestRow:
    file: str  # crop file name, relative to the manifest's folder
    source: str  # the source key in the name
    video: str  # the video's path as given, or 'webcam N'
    subject: str  # folder the video was in
    frame: int
    x1: int
    y1: int
    x2: int
    y2: int
    confidence: float
    padding: float | None = None  # gather's --padding; None in manifests written before it was recorded


def read_manifest(folder: Path) -> dict[str, ManifestRow]:
    path = Path(folder) / MANIFEST_NAME
    if not path.is_file():
        return {}
    rows = {}
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            raw_rows = list(csv.DictReader(fh))
    except (UnicodeDecodeError, csv.Error) as e:  # rewriting it would lose the user's rows: refuse
        raise DataError(f"{path} is not a crop manifest this suite can read ({type(e).__name__}); move it aside") from None
    for raw in raw_rows:
        try:
            row = ManifestRow(
                file=raw["file"], source=raw["source"], video=raw["video"], subject=raw["subject"],
                frame=int(raw["frame"]), x1=int(raw["x1"]), y1=int(raw["y1"]), x2=int(raw["x2"]),
                y2=int(raw["y2"]), confidence=float(raw["confidence"]),
                padding=float(raw["padding"]) if raw.get("padding") not in (None, "") else None,
            )
        except (KeyError, TypeError, ValueError):
            continue  # a hand-edited or foreign row: the file name still carries the origin
        rows[row.file] = row
    return rows


def paddings(folder: Path) -> set[float]:
    """The crop paddings the folder's manifest records (unrecorded rows left out)."""
    return {r.padding for r in read_manifest(folder).values() if r.padding is not None}


def write_manifest(folder: Path, new_rows: list[ManifestRow]) -> None:
    """Merge `new_rows` into the folder's manifest (rewritten atomically, sorted; untouched if unchanged)."""
    rows = read_manifest(folder)
    rows.update({r.file: r for r in new_rows})
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=[f.name for f in fields(ManifestRow)], lineterminator="\n")
    writer.writeheader()
    for key in sorted(rows):
        row = asdict(rows[key])
        row["confidence"] = f"{row['confidence']:.4f}"
        row["padding"] = "" if row["padding"] is None else f"{row['padding']:g}"
        writer.writerow(row)
    path = Path(folder) / MANIFEST_NAME
    text = buf.getvalue()
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return  # a re-run that found nothing new rewrites nothing
    atomic_write_text(path, text)
