"""Make a SYNTHETIC pair of sample videos (a "live" face and a screen replay of it).

The output is synthetic, built from one stock photo; it is NOT real liveness data and
only lets a user without recordings try the gather/train/demo pipeline end to end.
Also scripted 68-point landmarks (scripted_landmarks), the input the active challenge's
tests and benchmarks play to it.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Iterable, Iterator

import cv2
import numpy as np

# Face box of the SSD detector on skimage.data.astronaut() (512x512): centre and height.
_FACE_CENTRE = (225.0, 118.0)
_FACE_HEIGHT = 119.0
# Target face height in a 480-px-tall frame: well inside the 150-250 px range the
# SSD detector handles reliably, with room left for motion.
_TARGET_FACE_HEIGHT = 185.0
_REFERENCE_HEIGHT = 480.0

# Region of the photo shown on the replay "screen" (x0, y0, x1, y1), a landscape crop
# around the face, like a photo or video call shown full-screen on a monitor.
_SCREEN_CROP = (60, 0, 390, 250)
_SCREEN_FACE_HEIGHT = 170.0


def _load_face_bgr() -> np.ndarray:
    # Lazy: scikit-image is a heavy import; astronaut() ships inside the package (offline).
    from skimage import data

    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)


def _smooth_path(rng: np.random.Generator, t: np.ndarray, amplitude: float,
                 freq_range: tuple[float, float], terms: int = 2) -> np.ndarray:
    """Sum of a few seeded sinusoids: smooth, bounded by `amplitude`, deterministic."""
    out = np.zeros_like(t)
    weights = rng.uniform(0.5, 1.0, terms)
    weights /= weights.sum()
    for w in weights:
        freq = rng.uniform(*freq_range)
        phase = rng.uniform(0.0, 2.0 * np.pi)
        out += w * np.sin(2.0 * np.pi * freq * t + phase)
    return amplitude * out


def _person_mask(face: np.ndarray) -> np.ndarray:
    """Soft alpha (float32, 0..1) cutting the astronaut out of her grey studio backdrop."""
    # The backdrop is bright and unsaturated; hair, skin, suit are saturated, the collar dark.
    hsv = cv2.cvtColor(face, cv2.COLOR_BGR2HSV)
    sat = cv2.GaussianBlur(hsv[..., 1], (0, 0), 2.0)
    val = cv2.GaussianBlur(hsv[..., 2], (0, 0), 2.0)
    person = (((sat > 45) | (val < 90)) * 255).astype(np.uint8)
    # Coarse hand-drawn silhouette (head, neck ring, suit) keeps the flag and shuttle out.
    coarse = np.zeros(person.shape, np.uint8)
    cv2.ellipse(coarse, (226, 100), (82, 96), 0, 0, 360, 255, -1)
    cv2.ellipse(coarse, (210, 222), (106, 80), 0, 0, 360, 255, -1)
    suit = np.array([[120, 250], [300, 250], [365, 330], [372, 512], [18, 512], [36, 300]],
                    np.int32)
    cv2.fillPoly(coarse, [suit], 255)
    mask = person & coarse
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((5, 5), np.uint8))
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE,
                            cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (15, 15)))
    # Keep the largest blob and fill its holes (the silver inside of the neck ring).
    _, labels, stats, _ = cv2.connectedComponentsWithStats(mask)
    mask = ((labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))) * 255).astype(np.uint8)
    outside = mask.copy()
    cv2.floodFill(outside, np.zeros((mask.shape[0] + 2, mask.shape[1] + 2), np.uint8), (0, 0), 255)
    mask |= cv2.bitwise_not(outside)
    # Feathered edge so the cutout does not look pasted on.
    return cv2.GaussianBlur(mask, (0, 0), 1.5).astype(np.float32) / 255.0


def _wall(rng: np.random.Generator, w: int, h: int, base_bgr: tuple[float, float, float],
          texture: float) -> np.ndarray:
    """Plain-ish background: a colour with a soft gradient and faint low-frequency blotches."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    grad = 1.0 + 0.12 * (xx / w - 0.5) - 0.08 * (yy / h - 0.5)
    blotch = cv2.resize(rng.normal(0.0, 1.0, (6, 8)).astype(np.float32), (w, h),
                        interpolation=cv2.INTER_CUBIC)
    img = np.empty((h, w, 3), np.float32)
    for c in range(3):
        img[..., c] = base_bgr[c] * grad + texture * blotch
    return img


def _affine(centre_src: tuple[float, float], centre_dst: tuple[float, float],
            scale: float, angle_deg: float) -> np.ndarray:
    """2x3 matrix that scales/rotates about centre_src and moves it to centre_dst."""
    m = cv2.getRotationMatrix2D(centre_src, angle_deg, scale)
    m[0, 2] += centre_dst[0] - centre_src[0]
    m[1, 2] += centre_dst[1] - centre_src[1]
    return m


def _to_uint8(img: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def _real_frames(face: np.ndarray, n: int, fps: int, w: int, h: int,
                 rng: np.random.Generator) -> Iterator[np.ndarray]:
    k = h / _REFERENCE_HEIGHT
    t = np.arange(n) / fps
    # Slow, small head motion (a person sitting in front of a webcam).
    dx = _smooth_path(rng, t, 14.0 * k, (0.08, 0.3))
    dy = _smooth_path(rng, t, 9.0 * k, (0.08, 0.3))
    ds = _smooth_path(rng, t, 0.04, (0.05, 0.2))
    rot = _smooth_path(rng, t, 3.0, (0.05, 0.25))
    gain = 1.0 + _smooth_path(rng, t, 0.06, (0.05, 0.2))      # auto-exposure drift
    side = _smooth_path(rng, t, 0.08, (0.05, 0.15))           # light moving left/right

    alpha = _person_mask(face)
    face_f = face.astype(np.float32)
    wall = _wall(rng, w, h, (150.0, 170.0, 182.0), 5.0)       # warm beige wall
    xx = np.linspace(-0.5, 0.5, w, dtype=np.float32)[None, :, None]
    base_scale = _TARGET_FACE_HEIGHT * k / _FACE_HEIGHT
    centre = (w / 2.0, h * 0.42)

    for i in range(n):
        m = _affine(_FACE_CENTRE, (centre[0] + dx[i], centre[1] + dy[i]),
                    base_scale * (1.0 + ds[i]), rot[i])
        fg = cv2.warpAffine(face_f, m, (w, h), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_REFLECT)
        a = cv2.warpAffine(alpha, m, (w, h), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=0)[..., None]
        img = a * fg + (1.0 - a) * wall
        img *= gain[i] * (1.0 + side[i] * xx)
        img += rng.normal(0.0, 3.0, img.shape).astype(np.float32)   # sensor noise
        yield _to_uint8(img)


def _screen_content(face: np.ndarray, sw: int, sh: int) -> np.ndarray:
    """The replayed photo as the screen shows it: lower contrast, bluish, slightly soft."""
    x0, y0, x1, y1 = _SCREEN_CROP
    img = cv2.resize(face[y0:y1, x0:x1], (sw, sh), interpolation=cv2.INTER_AREA)
    img = img.astype(np.float32)
    # Screens re-captured by a camera lose contrast (limited dynamic range, black level).
    img = 0.62 * (img - img.mean()) + img.mean() + 18.0
    # Cool white point of LCD/OLED panels.
    img *= np.array([1.12, 1.0, 0.86], np.float32)
    # Camera focused on the screen surface, slight defocus of the content.
    return cv2.GaussianBlur(img, (0, 0), 1.3)


def _fake_frames(face: np.ndarray, n: int, fps: int, w: int, h: int,
                 rng: np.random.Generator) -> Iterator[np.ndarray]:
    k = h / _REFERENCE_HEIGHT
    t = np.arange(n) / fps
    # Hand-held device: slow sway plus a faster, small tremor.
    dx = _smooth_path(rng, t, 12.0 * k, (0.1, 0.4)) + _smooth_path(rng, t, 3.0 * k, (2.0, 4.0))
    dy = _smooth_path(rng, t, 8.0 * k, (0.1, 0.4)) + _smooth_path(rng, t, 3.0 * k, (2.0, 4.0))
    rot = _smooth_path(rng, t, 2.0, (0.1, 0.4)) + _smooth_path(rng, t, 0.6, (2.0, 4.0))
    moire_drift = _smooth_path(rng, t, 3.0, (0.2, 0.6))        # fringes move with the device
    glare_drift = _smooth_path(rng, t, 0.08, (0.1, 0.3))

    x0, y0, x1, y1 = _SCREEN_CROP
    s = _SCREEN_FACE_HEIGHT * k / _FACE_HEIGHT
    sw, sh = int(round((x1 - x0) * s)), int(round((y1 - y0) * s))
    bezel = int(round(18 * k))
    dw, dh = sw + 2 * bezel, sh + 2 * bezel
    content = _screen_content(face, sw, sh)

    # Moire: beat between the panel's pixel grid and the camera sensor, modelled as two
    # faint, slightly rotated high-frequency gratings in screen coordinates.
    yy, xx = np.mgrid[0:sh, 0:sw].astype(np.float32)
    theta = np.deg2rad(rng.uniform(8.0, 20.0))
    u = xx * np.cos(theta) + yy * np.sin(theta)
    v = -xx * np.sin(theta) + yy * np.cos(theta)
    period_u, period_v = rng.uniform(5.0, 8.0), rng.uniform(9.0, 14.0)

    # Glare: a diagonal specular band from a light source reflecting off the glass.
    diag = (xx / sw + 0.6 * yy / sh) / 1.6
    glare_pos = rng.uniform(0.25, 0.45)

    room = _wall(rng, w, h, (95.0, 100.0, 110.0), 8.0)        # dimmer room behind the device
    device_mask = np.ones((dh, dw), np.float32)
    centre = (w / 2.0, h / 2.0)

    for i in range(n):
        moire = 7.0 * np.sin(2 * np.pi * (u + moire_drift[i]) / period_u) \
            + 4.0 * np.sin(2 * np.pi * (v - 0.5 * moire_drift[i]) / period_v)
        glare = 70.0 * np.exp(-((diag - glare_pos - glare_drift[i]) / 0.06) ** 2)
        screen = content + moire[..., None] + glare[..., None]

        device = np.full((dh, dw, 3), 18.0, np.float32)          # dark bezel
        device[bezel:bezel + sh, bezel:bezel + sw] = screen
        m = _affine((dw / 2.0, dh / 2.0), (centre[0] + dx[i], centre[1] + dy[i]), 1.0, rot[i])
        fg = cv2.warpAffine(device, m, (w, h), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
        a = cv2.warpAffine(device_mask, m, (w, h), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=0)[..., None]
        img = a * fg + (1.0 - a) * room
        img += rng.normal(0.0, 3.0, img.shape).astype(np.float32)   # sensor noise
        yield _to_uint8(img)


def _write_video(path: pathlib.Path, frames: Iterable[np.ndarray], fps: int,
                 size: tuple[int, int]) -> None:
    """Write frames to `path` atomically (temp file in the same folder, then os.replace)."""
    tmp = path.with_name(f".{path.stem}.tmp.mp4")      # .mp4 suffix: OpenCV picks the muxer by it
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), size)
    try:
        if not writer.isOpened():
            raise RuntimeError(
                f"cv2.VideoWriter could not open {tmp} (fourcc mp4v, size {size}, {fps} fps)")
        for frame in frames:
            writer.write(frame)
        writer.release()
        os.replace(tmp, path)
    except BaseException:
        writer.release()
        tmp.unlink(missing_ok=True)
        raise


def make_sample_videos(
    out_dir: pathlib.Path, *, seconds: float = 4.0, fps: int = 15,
    size: tuple[int, int] = (640, 480), seed: int = 0,
) -> dict[str, pathlib.Path]:
    """Write out_dir/real.mp4 and out_dir/fake.mp4; return {"real": path, "fake": path}.

    Both are SYNTHETIC: "real" is the skimage astronaut moving slowly in front of a wall,
    "fake" is the same photo replayed on a hand-held screen. `size` is (width, height).
    """
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    w, h = int(size[0]), int(size[1])
    n = max(1, int(round(seconds * fps)))
    face = _load_face_bgr()
    # Separate streams so changing one video's recipe does not change the other.
    real_seq, fake_seq = np.random.SeedSequence(seed).spawn(2)
    real_rng, fake_rng = np.random.default_rng(real_seq), np.random.default_rng(fake_seq)

    paths = {"real": out_dir / "real.mp4", "fake": out_dir / "fake.mp4"}
    _write_video(paths["real"], _real_frames(face, n, fps, w, h, real_rng), fps, (w, h))
    _write_video(paths["fake"], _fake_frames(face, n, fps, w, h, fake_rng), fps, (w, h))
    return paths


OPEN_EAR = 0.3  # eye aspect ratio of an open eye (Soukupova and Cech: about 0.25-0.35)


def scripted_landmarks(ear: float = OPEN_EAR, yaw: float = 0.0, shift=(0.0, 0.0), scale: float = 1.0) -> np.ndarray:
    """68 points of a frontal face 160 px wide whose eyes have aspect ratio `ear` and
    whose nose tip sits at yaw ratio `yaw` (see yaw_ratio). Only the points the
    challenge reads are placed with care; the rest sit on plausible spots."""
    pts = np.zeros((68, 2))
    angle = np.linspace(np.pi, 0, 17)
    pts[0:17] = np.c_[80 + 80 * np.cos(angle), 90 + 90 * np.sin(angle)]  # jaw: 0 at x=0, 16 at x=160
    pts[17:27] = np.c_[np.linspace(20, 140, 10), np.full(10, 40)]  # brows
    pts[27:31] = np.c_[np.full(4, 80), np.linspace(60, 110, 4)]  # nose bridge
    pts[30] = (80 + 160 * yaw, 110)  # nose tip
    pts[31:36] = np.c_[np.linspace(65, 95, 5), np.full(5, 118)]
    for start, cx in ((36, 50), (42, 110)):  # right eye, left eye: width 30
        h = ear * 30 / 2
        pts[start:start + 6] = [(cx - 15, 60), (cx - 5, 60 - h), (cx + 5, 60 - h),
                                (cx + 15, 60), (cx + 5, 60 + h), (cx - 5, 60 + h)]
    angle = np.linspace(0, 2 * np.pi, 20, endpoint=False)
    pts[48:68] = np.c_[80 + 25 * np.cos(angle), 145 + 8 * np.sin(angle)]
    return pts * scale + np.asarray(shift)
