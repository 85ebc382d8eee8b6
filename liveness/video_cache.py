"""Faces of a video cut once by the detector and kept: later runs read the crops.

A video's crops live in ``<cache>/<source key>/`` (the key names the video's hash, as
gather_examples.py names its crops), with a ``done.json`` written last: a folder
without it (an interrupted run) is cut again.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

from liveness.crops import crop_name, parse_crop_name, source_key, video_digest
from liveness.fileio import atomic_write_text, write_image

LOGGER = logging.getLogger("liveness")
DONE = "done.json"


def cached_crops(video: Path, cache: Path, *, padding: float, skip: int, detector=None):
    """([(frame, crop path)], source key, detector): the video's first face every `skip` frames.

    The detector is made on first need and handed back, so a folder of videos loads it once.
    """
    key = source_key(video, video_digest(video))
    folder = Path(cache) / f"{key}_p{padding:g}_s{skip}"
    done = folder / DONE
    if not done.is_file():
        from liveness import detector as det
        from liveness.sources import FrameSource

        if detector is None:
            detector = det.FaceDetector()
        if folder.exists():
            shutil.rmtree(folder)  # an interrupted cut: start it again
        folder.mkdir(parents=True)
        n = 0
        with FrameSource(video, skip=skip) as frames:
            for index, frame in frames:
                if frame is None:
                    continue
                faces = detector.detect(frame)[:1]
                for _, crop in det.crop_faces(frame, faces, padding):
                    write_image(folder / crop_name(key, index), crop)
                    n += 1
        atomic_write_text(done, json.dumps({"video": str(video), "crops": n, "padding": padding, "skip": skip}))
        LOGGER.info("cut %d face(s) from %s into %s", n, video, folder)
    crops = []
    for path in sorted(folder.glob("*.png")):
        parsed = parse_crop_name(path.name)
        if parsed:
            crops.append((parsed[1], path))
    return crops, key, detector
