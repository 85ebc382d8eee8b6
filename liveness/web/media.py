"""Untrusted bytes -> frames, refusing what is not a whole, reasonably sized image or video.

Sizes are read from the header before anything is decoded, so a small file that
claims 20000x20000 pixels is refused without allocating them. Only JPEG and PNG
images and MP4/MOV, WebM/Matroska and AVI videos are accepted: FFmpeg would open
far more (playlists that name other files or URLs among them).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import cv2
import numpy as np

from liveness.errors import LivenessError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SOI = b"\xff\xd8"
JPEG_EOI = b"\xff\xd9"
# Start-of-frame markers carry the size; C4 (DHT), C8 (JPG) and CC (DAC) do not.
JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})  # TEM, RST0-7: no length field
JPEG_SOS = 0xDA
ACCEPTED_IMAGES = "JPEG or PNG"
ACCEPTED_VIDEOS = "MP4/MOV, WebM/Matroska or AVI"


class MediaError(LivenessError):
    """Input the server refuses; `status` is the HTTP status that says why (400 or 413)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ImageInfo:
    format: str  # "jpeg" | "png"
    width: int
    height: int


def _jpeg_info(data: bytes) -> ImageInfo:
    """Walk the JPEG segments up to the first scan: the SOF gives the size."""
    i, size = 2, None
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            raise MediaError("not a valid JPEG (bad segment marker)")
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte before a marker
            i += 1
            continue
        if marker in JPEG_STANDALONE:
            i += 2
            continue
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if length < 2:
            raise MediaError("not a valid JPEG (bad segment length)")
        if marker in JPEG_SOF:
            if i + 9 > len(data):
                break
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            size = (width, height)
        if marker == JPEG_SOS:
            if size is None:
                raise MediaError("not a valid JPEG (no frame header before the image data)")
            # 0xFF in entropy-coded data is always followed by 0x00 or RSTn, so the
            # first FFD9 after the scan starts is the end of the image.
            if data.find(JPEG_EOI, i) < 0:
                raise MediaError("truncated JPEG (no end-of-image marker)")
            return ImageInfo("jpeg", *size)
        i += 2 + length
    raise MediaError("truncated JPEG (ends before its image data)")


def _png_info(data: bytes) -> ImageInfo:
    if len(data) < 33 or data[12:16] != b"IHDR":
        raise MediaError("truncated PNG (no header chunk)")
    width, height = struct.unpack(">II", data[16:24])
    # The last chunk is IEND: length 0, type, CRC. Anything short of it is truncated.
    if data[-8:-4] != b"IEND":
        raise MediaError("truncated PNG (no end chunk)")
    return ImageInfo("png", width, height)


def image_info(data: bytes) -> ImageInfo:
    """Format and size from the header alone; MediaError for anything else."""
    if data.startswith(JPEG_SOI):
        info = _jpeg_info(data)
    elif data.startswith(PNG_SIGNATURE):
        info = _png_info(data)
    else:
        raise MediaError(f"not an image this server reads ({ACCEPTED_IMAGES})")
    if info.width < 1 or info.height < 1:
        raise MediaError(f"{info.format.upper()} header gives an empty image ({info.width}x{info.height})")
    return info


def check_size(width: int, height: int, *, max_side: int, max_pixels: int, what: str = "image") -> None:
    if max(width, height) > max_side or width * height > max_pixels:
        raise MediaError(
            f"{what} is {width}x{height} pixels; the limit is {max_side} pixels a side "
            f"and {max_pixels / 1e6:g} megapixels"
        )


def decode_image(data: bytes, *, max_side: int, max_pixels: int) -> np.ndarray:
    """A BGR frame from JPEG/PNG bytes, size-checked from the header before decoding."""
    info = image_info(data)
    check_size(info.width, info.height, max_side=max_side, max_pixels=max_pixels)
    # cv2 applies EXIF orientation, as browsers do when they show the file: a phone
    # photo's boxes then fit the picture its user sees (width and height may swap).
    frame = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if frame is None or sorted(frame.shape[:2]) != sorted((info.height, info.width)):
        raise MediaError(f"cannot decode this {info.format.upper()} (corrupt data)")
    return frame


def video_suffix(data: bytes) -> str:
    """The file suffix for a video container recognised by its magic bytes, else MediaError."""
    if len(data) >= 12 and data[4:8] == b"ftyp":
        return ".mp4"
    if data.startswith(b"\x1a\x45\xdf\xa3"):
        return ".webm"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"AVI ":
        return ".avi"
    raise MediaError(f"not a video this server reads ({ACCEPTED_VIDEOS})")


def encode_jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()


def fit_within(image: np.ndarray, max_side: int) -> np.ndarray:
    """`image` scaled down (never up) so that its longer side is at most `max_side`."""
    h, w = image.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1.0:
        return image
    size = (max(2, round(w * scale) // 2 * 2), max(2, round(h * scale) // 2 * 2))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)
