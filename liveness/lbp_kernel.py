"""The colour-LBP kernel: uniform LBP histograms and colour moments of face crops, fast.

Private to liveness/lbp.py, which holds the settings, the public feature functions and
the classifier. Two paths compute the same numbers: a general one, bit for bit
scikit-image's `local_binary_pattern(..., method="uniform")` at any points and radii,
and a fast one for 4-point LBP at integer radii (every sample on the pixel grid), which
tests/test_lbp_fast.py proves equal to the general path.
"""

from __future__ import annotations

import functools
import threading
from typing import NamedTuple

import cv2
import numpy as np

CHANNELS = ("H", "S", "V", "Y", "Cr", "Cb")  # the colour channels, in feature order
N_MOMENTS = 17  # colour_moments: mean, std, skew of S, V, Y, Cr, Cb + the hue's mean direction
_MOMENT_STEP = 2  # colour moments use every _MOMENT_STEP-th pixel of every _MOMENT_STEP-th row


def _as_bgr(face: np.ndarray) -> np.ndarray:
    if not isinstance(face, np.ndarray):
        raise TypeError(f"face must be a numpy array, got {type(face).__name__}")
    if face.dtype != np.uint8:
        raise ValueError(f"face must be uint8 (OpenCV BGR), got dtype {face.dtype}")
    if face.ndim == 3 and face.shape[2] == 1:
        face = face[:, :, 0]
    if face.ndim == 2:
        return cv2.cvtColor(face, cv2.COLOR_GRAY2BGR)
    if face.ndim == 3 and face.shape[2] == 3:
        return face
    if face.ndim == 3 and face.shape[2] == 4:
        return cv2.cvtColor(face, cv2.COLOR_BGRA2BGR)
    raise ValueError(f"face must be HxWx3 BGR (or HxW grey / HxWx4 BGRA), got shape {face.shape}")


# --- uniform LBP, vectorised -------------------------------------------------
#
# These functions give, bit for bit, the codes of scikit-image's
# local_binary_pattern(channel, P, R, method="uniform") at the pixels at least R from
# the border (the only ones lbp_features uses), about ten times faster than calling it
# per channel. scikit-image (skimage/feature/_texture.pyx) samples point p at
# (row + rp[p], col + cp[p]), rp = round(-R sin(2 pi p / P), 5) and
# cp = round(R cos(2 pi p / P), 5), by bilinear interpolation in float64:
#     top    = (1 - dc) * I[minr, minc] + dc * I[minr, maxc]
#     bottom = (1 - dc) * I[maxr, minc] + dc * I[maxr, maxc]
#     value  = (1 - dr) * top + dr * bottom
# where minr = floor(row + rp) and dr = (row + rp) - minr (the same for columns), so
# dr and dc differ in their last bits from one row or column to the next. Bit p is
# value >= centre. A sample can equal the centre exactly (flat patches, linear
# gradients: common in 8-bit images), and then those last bits decide the bit; so the
# same float64 operations run here, in the same order, with the same per-row and
# per-column weights. Only the loops are vectorised.
#
# How: the channel images are laid end to end in one flat array, in which a shift by
# (dy, dx) pixels is a shift of the index by dy * size + dx; each step is then one
# NumPy operation on contiguous 1-D slices. Pixels near a border get samples from the
# next row or image (or the zero padding); their codes are computed and discarded.
# "top" and "bottom" do not depend on the output row, so the horizontal step is done
# once per distinct column offset, for all rows, and shared by the points that use it.
# A sample on the pixel grid is the pixel itself ((1 - 0) * a + 0 * b == a) and is
# compared in uint8.

# Channel images per vectorised block (12: two faces). Each block costs a fixed ~60
# NumPy calls, so small blocks pay overhead; large ones push the float64 working set
# (about 50 bytes a pixel) out of the CPU's L2 cache and run slower per pixel.
_BLOCK_IMAGES = 12
# Faces per call of _features in lbp_features_batch (colour conversion for these at once).
_BATCH_FACES = 16
_POWERS_OF_TWO = np.uint64(1) << np.arange(8, dtype=np.uint64)


@functools.lru_cache(maxsize=None)
def _uniform_lut(points: int) -> np.ndarray:
    """uint8 table, code -> uniform bin, for codes 0 .. 2**points - 1 (bit p is sample
    p), padded with zeros to at least 256 entries (cv2.LUT wants exactly 256).

    As scikit-image's 'uniform' method: the number of 1 bits if the bits 0, 1, ..., P-1
    change value at most twice along the way (not counting P-1 -> 0; for a circular
    pattern that is the same test), otherwise P + 1.
    """
    codes = np.arange(2**points, dtype=np.int64)
    bits = (codes[:, None] >> np.arange(points)) & 1
    changes = np.abs(np.diff(bits, axis=1)).sum(axis=1)
    lut = np.zeros(max(256, 2**points), dtype=np.uint8)
    lut[: 2**points] = np.where(changes <= 2, bits.sum(axis=1), points + 1)
    lut.flags.writeable = False
    return lut


class _Axis(NamedTuple):
    """One coordinate of a sample point relative to its pixel: the sample lies between
    pixel offsets lo and hi (equal when it is on the grid), and at output coordinate k
    it weighs w[k] on hi and one_minus_w[k] on lo: scikit-image's dr (or dc) and
    1 - dr, to the last bit."""

    lo: int
    hi: int
    w: np.ndarray  # (size,) float64
    one_minus_w: np.ndarray  # (size,) float64

    @property
    def on_grid(self) -> bool:
        return self.lo == self.hi


def _axis(offset: float, radius: int, size: int) -> _Axis:
    k = np.arange(size, dtype=np.float64)
    pos = k + offset  # as in the .pyx: an integer coordinate plus a double
    low = np.floor(pos)
    w = pos - low
    one_minus_w = 1.0 - w
    inner = slice(radius, size - radius)
    lo = np.unique(low[inner] - k[inner])
    hi = np.unique(np.ceil(pos)[inner] - k[inner])
    # The flat-index shifts need the same pixel offsets at every interior coordinate:
    # true, as |offset| <= radius and a fractional offset never lands on an integer.
    if len(lo) != 1 or len(hi) != 1:
        raise AssertionError(f"LBP sample offset {offset} does not map to fixed pixel offsets")
    w.flags.writeable = one_minus_w.flags.writeable = False
    return _Axis(int(lo[0]), int(hi[0]), w, one_minus_w)


class _Plan(NamedTuple):
    """Where scikit-image samples, for one (points, radius, size)."""

    pixels: tuple[tuple[int, int], ...]  # (p, flat offset) of the samples on the pixel grid
    # The others, grouped by column axis: (column axis, ((p, row axis, index of the row
    # axis in row_axes or -1 when it is on the grid), ...)).
    groups: tuple[tuple[_Axis, tuple[tuple[int, _Axis, int], ...]], ...]
    row_axes: tuple[_Axis, ...]  # the distinct fractional row axes


@functools.lru_cache(maxsize=64)
def _lbp_plan(points: int, radius: int, size: int) -> _Plan:
    # The expressions of skimage/feature/_texture.pyx (where R is a C float, which
    # holds integer radii exactly).
    R = float(np.float32(radius))
    rr = -R * np.sin(2 * np.pi * np.arange(points, dtype=np.double) / points)
    cc = R * np.cos(2 * np.pi * np.arange(points, dtype=np.double) / points)
    rp, cp = np.round(rr, 5), np.round(cc, 5)
    pixels: list[tuple[int, int]] = []
    groups: dict[tuple, tuple[_Axis, list]] = {}
    row_axes: dict[tuple, int] = {}
    rows: list[_Axis] = []
    for p in range(points):
        row, col = _axis(float(rp[p]), radius, size), _axis(float(cp[p]), radius, size)
        if row.on_grid and col.on_grid:
            pixels.append((p, row.lo * size + col.lo))
            continue
        row_index = -1
        if not row.on_grid:
            row_index = row_axes.setdefault((row.lo, row.hi, row.w.tobytes()), len(rows))
            if row_index == len(rows):
                rows.append(row)
        groups.setdefault((col.lo, col.hi, col.w.tobytes()), (col, []))[1].append((p, row, row_index))
    return _Plan(tuple(pixels), tuple((col, tuple(s)) for col, s in groups.values()), tuple(rows))


@functools.lru_cache(maxsize=32)
def _plan_weights(points: int, radius: int, size: int, n_images: int) -> tuple[tuple, tuple]:
    """(1 - w, w) of the fractional axes of _lbp_plan(points, radius, size), laid out
    flat over a block of n_images images: per group, its column axis' over the block
    plus `radius` rows above and below (None for a column on the grid); per row axis,
    over the block."""
    plan = _lbp_plan(points, radius, size)

    def frozen(a: np.ndarray) -> np.ndarray:
        a.flags.writeable = False
        return a

    n_rows = n_images * size + 2 * radius
    columns = tuple(
        None if col.on_grid else (frozen(np.tile(col.one_minus_w, n_rows)), frozen(np.tile(col.w, n_rows)))
        for col, _ in plan.groups
    )
    rows = tuple(
        (frozen(np.tile(np.repeat(row.one_minus_w, size), n_images)), frozen(np.tile(np.repeat(row.w, size), n_images)))
        for row in plan.row_axes
    )
    return columns, rows


def _lerp(src: np.ndarray, lo: int, hi: int, weights: tuple[np.ndarray, np.ndarray], out: np.ndarray, tmp: np.ndarray) -> None:
    """out = (1 - w) * src[lo:][:n] + w * src[hi:][:n], with n = len(out), evaluated in
    that order (scikit-image's)."""
    n = out.size
    np.multiply(weights[0], src[lo : lo + n], out=out)
    np.multiply(weights[1], src[hi : hi + n], out=tmp[:n])
    np.add(out, tmp[:n], out=out)


def _uniform_lbp_codes(chans: np.ndarray, points: int, radii: tuple[int, ...], out: np.ndarray, raw: bool = False) -> None:
    """out[i] = scikit-image's uniform LBP code (0 .. points + 1) at radius radii[i] of
    every pixel of chans ((m, size, size) uint8), flat. Codes of pixels closer than the
    radius to the border are meaningless (samples from the next row or image).
    With `raw` (points <= 8 only), the code before the uniform mapping: bit p is sample p."""
    m, size, _ = chans.shape
    n = m * size * size
    r_max = max(radii)
    # Zero padding both sides keeps every shifted slice inside: index pad + j is pixel j.
    pad = r_max * (size + 1)
    flat8 = np.zeros(n + 2 * pad, dtype=np.uint8)
    flat8[pad : pad + n] = chans.reshape(-1)
    centre8 = flat8[pad : pad + n]
    if any(_lbp_plan(points, r, size).groups for r in radii):  # some samples fall between pixels
        flat = flat8.astype(np.float64)
        centre = flat[pad : pad + n]
        horizontal = np.empty(n + 2 * r_max * size, dtype=np.float64)
        val = np.empty(n, dtype=np.float64)
        tmp = np.empty_like(horizontal)
    bits = np.empty((points, -(-n // 8) * 8), dtype=np.bool_)  # rows of whole uint64s
    for ri, r in enumerate(radii):
        plan = _lbp_plan(points, r, size)
        col_weights, row_weights = _plan_weights(points, r, size, m)
        for p, off in plan.pixels:
            np.greater_equal(flat8[pad + off : pad + off + n], centre8, out=bits[p, :n])
        n_h = n + 2 * r * size  # "top" for every row of the block and r rows either side
        for (col, samples), weights in zip(plan.groups, col_weights):
            if col.on_grid:  # dc == 0: "top" and "bottom" are pixels
                src, base = flat, pad + col.lo
            else:  # horizontal[r * size + j] is "top" for pixel j's row
                _lerp(flat, pad - r * size + col.lo, pad - r * size + col.hi, weights, horizontal[:n_h], tmp)
                src, base = horizontal, r * size
            for p, row, row_index in samples:
                start = base + row.lo * size
                if row_index < 0:  # dr == 0: the value is "top" itself
                    sample = src[start : start + n]
                else:
                    _lerp(src, start, base + row.hi * size, row_weights[row_index], val, tmp)
                    sample = val
                np.greater_equal(sample, centre, out=bits[p, :n])
        if points <= 8:
            # code = sum of bit p << p, eight pixels per uint64: each byte holds one
            # pixel's 0 or 1, and with p < 8 no sum carries out of its byte.
            code = np.einsum("p,pk->k", _POWERS_OF_TWO[:points], bits[:points].view(np.uint64))
            if raw:
                out[ri] = code.view(np.uint8)[:n]
            else:
                out[ri] = cv2.LUT(code.view(np.uint8)[:n], _uniform_lut(points)[:256]).reshape(-1)
        else:  # count ones and changes directly: a 2**points table would be too big
            b8 = bits.view(np.uint8)[:, :n]
            ones = b8.sum(axis=0, dtype=np.intp)
            changes = np.not_equal(b8[1:], b8[:-1]).sum(axis=0, dtype=np.intp)
            out[ri] = np.where(changes <= 2, ones, points + 1)


@functools.lru_cache(maxsize=None)
def _raw_to_uniform(points: int) -> np.ndarray:
    """(2**points, points + 2) float32 0/1: raw code -> its uniform bin, for counts."""
    table = np.zeros((1 << points, points + 2), dtype=np.float32)
    table[np.arange(1 << points), _uniform_lut(points)[: 1 << points]] = 1
    table.flags.writeable = False
    return table


@functools.lru_cache(maxsize=64)
def _bin_offsets(size: int, radii: tuple[int, ...], stride: int, n_chan: int) -> np.ndarray:
    """uint8 (len(radii), n_chan * size * size): at radius i, channel c's interior pixels
    hold (i * n_chan + c) * stride, border pixels 255. `code | offsets` then numbers the
    (radius, channel, code) triples of a face, and puts every border pixel in 255."""
    off = np.full((len(radii), n_chan, size, size), 255, dtype=np.uint8)
    for i, r in enumerate(radii):
        off[i, :, r : size - r, r : size - r] = ((i * n_chan + np.arange(n_chan)) * stride).astype(np.uint8)[:, None, None]
    off = off.reshape(len(radii), -1)
    off.flags.writeable = False
    return off


def _uniform_lbp_histograms(chans: np.ndarray, points: int, radii: tuple[int, ...], n_chan: int) -> np.ndarray:
    """(n, n_chan, len(radii), points + 2) float64: for the n_chan channel images of each
    of n faces (chans: (n * n_chan, size, size) uint8), per radius, the normalised
    histogram of scikit-image's uniform LBP codes over the pixels at least `radius`
    from the border."""
    m, size, _ = chans.shape
    n_faces, image = m // n_chan, size * size
    n_bins = points + 2
    # With few points, count the raw codes (2**points of them) and map the counts to
    # uniform bins afterwards: that skips a table lookup per pixel, and more distinct
    # values in a row make OpenCV's histogram faster. Labels must stay below 255.
    raw = (1 << points) * len(radii) * n_chan <= 255
    stride = 1 << points if raw else 1 << (n_bins - 1).bit_length()  # a power of two >= the codes
    small = len(radii) * n_chan * stride <= 256  # a face's (radius, channel, code) fit in a uint8
    codes = np.empty((len(radii), m * image), dtype=np.uint8 if small else np.intp)
    for b in range(0, m, _BLOCK_IMAGES):
        e = min(b + _BLOCK_IMAGES, m)
        _uniform_lbp_codes(chans[b:e], points, radii, codes[:, b * image : e * image], raw=raw)
    if small:  # OpenCV's histogram of a uint8 image is several times faster than np.bincount
        offsets = _bin_offsets(size, radii, stride, n_chan)
        labelled = codes.reshape(len(radii), n_faces, n_chan * image).transpose(1, 0, 2) | offsets
        hist = np.empty((n_faces, len(radii) * n_chan, n_bins), dtype=np.float64)
        for f in range(n_faces):
            counts = cv2.calcHist([labelled[f].reshape(-1, size)], [0], None, [256], [0, 256])
            counts = counts[: len(radii) * n_chan * stride, 0].reshape(-1, stride)
            hist[f] = counts @ _raw_to_uniform(points) if raw else counts[:, :n_bins]
        hist = hist.reshape(n_faces, len(radii), n_chan, n_bins).transpose(0, 2, 1, 3)
    else:
        hist = np.empty((n_faces, n_chan, len(radii), n_bins), dtype=np.float64)
        for i, r in enumerate(radii):
            inner = codes[i].reshape(m, size, size)[:, r : size - r, r : size - r]
            idx = inner + (np.arange(m, dtype=np.intp) * n_bins)[:, None, None]
            hist[:, :, i, :] = np.bincount(idx.ravel(), minlength=m * n_bins).reshape(n_faces, n_chan, n_bins)
    return hist / np.array([(size - 2 * r) ** 2 for r in radii], dtype=np.float64)[:, None]


def _resized(face_bgr: np.ndarray, size: int, area: bool = False) -> np.ndarray:
    """The face as a C-contiguous size x size x 3 uint8 BGR image (validated), resized
    bilinearly or, with `area`, with an area filter."""
    bgr = _as_bgr(face_bgr)
    h, w = bgr.shape[:2]
    if h == 0 or w == 0:
        raise ValueError(f"face is empty, shape {face_bgr.shape}")
    if area and (h, w) != (size, size):
        # At a small size (80 px) an area filter gives every crop, large or small, the
        # same detail: leave-one-set-up-out that generalised better than bilinear.
        return np.ascontiguousarray(cv2.resize(bgr, (size, size), interpolation=cv2.INTER_AREA))
    if (h, w) != (size, size):
        # Bilinear both ways (settings without `area`, e.g. the previous default at 160 px):
        # there an area filter averaged away the fine screen texture these settings read.
        bgr = cv2.resize(bgr, (size, size), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(bgr)


def _channel_stack(crops: list[np.ndarray], size: int) -> np.ndarray:
    """(len(crops) * 6, size, size) uint8: per face its H, S, V, Y, Cr and Cb images.
    One colour conversion for all crops, stacked vertically (OpenCV converts pixel by
    pixel, so each converts exactly as it would alone)."""
    bgr = crops[0] if len(crops) == 1 else np.concatenate(crops, axis=0)
    n = len(crops)
    out = np.empty((n, 6, size, size), dtype=np.uint8)
    out[:, :3] = cv2.cvtColor(bgr, cv2.COLOR_BGR2HSV).reshape(n, size, size, 3).transpose(0, 3, 1, 2)
    out[:, 3:] = cv2.cvtColor(bgr, cv2.COLOR_BGR2YCrCb).reshape(n, size, size, 3).transpose(0, 3, 1, 2)
    return out.reshape(n * 6, size, size)


@functools.lru_cache(maxsize=1)
def _moment_tables() -> np.ndarray:
    """(5, 256) float64: per 8-bit value v, the terms whose histogram-weighted sums give
    the moments: x, x**2, x**3 with x = v / 255, and the cos and sin of v as OpenCV's
    8-bit hue (0-179 = 0-358 degrees)."""
    v = np.arange(256, dtype=np.float64)
    x = v / 255.0
    angle = v * (2 * np.pi / 180)
    table = np.stack([x, x**2, x**3, np.cos(angle), np.sin(angle)])
    table.flags.writeable = False
    return table


def _colour_moments(chans: np.ndarray) -> np.ndarray:
    """(n, N_MOMENTS) float64 from (n * 6, size, size) H, S, V, Y, Cr, Cb images: mean,
    standard deviation and skewness of S, V, Y, Cr and Cb (scaled to 0-1), then the
    mean of the hue as a direction (cos, sin): hue is an angle, so its plain mean
    would put red (0 and 179) halfway round the wheel.

    Over every other pixel of every other row: colour statistics of a whole face need
    no more, and this costs a quarter. From each channel's 256-bin histogram (exact
    sums, and a tenth of the cost of float arithmetic on the pixels)."""
    m = len(chans)
    sample = np.ascontiguousarray(chans[:, ::_MOMENT_STEP, ::_MOMENT_STEP])
    hist = np.empty((m, 256), dtype=np.float64)
    for i in range(m):
        hist[i] = cv2.calcHist([sample[i]], [0], None, [256], [0, 256])[:, 0]
    return _moments_from_histograms(hist.reshape(m // 6, 6, 256), sample[0].size)


def _moments_from_histograms(hist: np.ndarray, count: int) -> np.ndarray:
    """_colour_moments from (n, 6, 256) pixel counts per value of H, S, V, Y, Cr, Cb
    over `count` sampled pixels."""
    n = len(hist)
    # E[x], E[x^2], E[x^3], E[cos h], E[sin h] of each channel
    sums = (np.dot(hist.reshape(n * 6, 256), _moment_tables_t()) / count).reshape(n, 6, 5)
    e1, e2, e3 = sums[:, 1:, 0], sums[:, 1:, 1], sums[:, 1:, 2]  # S, V, Y, Cr, Cb
    var = e2 - e1 * e1
    std = np.sqrt(np.maximum(var, 0.0, out=var), out=var)
    third = e3 - e1 * (3 * e2 - 2 * e1 * e1)  # E[(x - mean)^3]
    skew = third / np.maximum(std, 1e-6) ** 3
    skew[std <= 1e-6] = 0.0  # a flat channel: 0, not nan
    return np.concatenate([e1, std, skew, sums[:, 0, 3:]], axis=1)


@functools.lru_cache(maxsize=1)
def _moment_tables_t() -> np.ndarray:
    """_moment_tables() transposed, C-contiguous: (256, 5)."""
    table = np.ascontiguousarray(_moment_tables().T)
    table.flags.writeable = False
    return table


# --- the 4-point fast path ------------------------------------------------------
#
# With 4 points at an integer radius (the default settings) every sample is a pixel
# (right, up, left, down), so a bit is one uint8 comparison and no float64 is needed.
# And the uniform bin of a 4-point code follows from two facts: which opposite pairs
# (right/left, up/down) differ, and whether the pairs that do not differ are ones.
# Both pairs differ: two adjacent ones (bin 2). One differs: one or three ones. Neither:
# 0000 (bin 0), 1111 (bin 4), or two opposite ones (0101, 1010: not uniform, bin 5). So
# the codes are never formed: each comparison is packed to one bit per pixel
# (np.packbits), and the bins are counted on those bit planes, 64 pixels a word, with
# bitwise logic and np.bitwise_count. The channels are laid as planes, each starting on
# a whole word, so that one reshape gives every channel's counts. Same bits, same
# counts: the histograms equal the general path's exactly.

_WORD = 64  # pixels per packed uint64 word


class _FastPlan(NamedTuple):
    """Tables of the 4-point fast path for one (radii, size, channels)."""

    offsets: tuple[int, ...]  # flat offsets (dy * size + dx) of radius 0's points 0-3, then radius 1's, ...
    plane: int  # pixels per channel plane: size * size rounded up to whole words
    picks: tuple[int, ...]  # mixChannels' fromTo pairs, HSV + YCrCb channel -> plane: the LBP channels, then the rest
    order: tuple[int, ...]  # the CHANNELS index of each plane
    masks: np.ndarray  # (len(radii), planes * plane / 64) uint64: the pixels each radius counts, packed
    count: np.ndarray  # (len(radii),) float64: pixels counted per channel at each radius


@functools.lru_cache(maxsize=16)
def _fast_plan(points: int, radii: tuple[int, ...], size: int, channels: tuple[str, ...]) -> _FastPlan | None:
    """The fast path's tables, or None when these settings need the general path (or
    NumPy is older than 2.0, which brought np.bitwise_count)."""
    if points != 4 or not hasattr(np, "bitwise_count"):
        return None
    offsets = []
    for r in radii:
        plan = _lbp_plan(points, r, size)
        if plan.groups or [p for p, _ in plan.pixels] != list(range(points)):
            return None
        offsets += [off for _, off in plan.pixels]
    plane = -(-size * size // _WORD) * _WORD
    n = len(channels)
    # All six planes (the colour moments need them), the LBP channels first, so that the
    # comparisons run over those alone. HSV then YCrCb: CHANNELS' order is mixChannels' numbering.
    order = tuple(CHANNELS.index(c) for c in channels) + tuple(i for i, c in enumerate(CHANNELS) if c not in channels)
    picks = [v for j, i in enumerate(order) for v in (i, j)]
    masks = np.zeros((len(radii), n, plane), dtype=bool)
    for i, r in enumerate(radii):
        inside = np.zeros((size, size), dtype=bool)
        inside[r : size - r, r : size - r] = True
        masks[i, :, : size * size] = inside.reshape(-1)
    masks = np.packbits(masks.reshape(len(radii), -1), axis=1).view(np.uint64)
    masks.flags.writeable = False
    count = np.array([(size - 2 * r) ** 2 for r in radii], dtype=np.float64)
    return _FastPlan(tuple(offsets), plane, tuple(picks), order, masks, count)


_work = threading.local()  # per thread: the fast path's buffers, reused from call to call


def _fast_buffers(size: int, n_lbp: int, plan: _FastPlan) -> tuple[np.ndarray, np.ndarray, list[np.ndarray], int]:
    """(flat, ge, planes, pad) for this thread: `flat` is the six channel planes end to
    end with `pad` zeros either side (zeros also in the gaps that round planes up to
    whole words: border pixels' samples land there and are never counted, so they stay
    zero); `planes` are its (size, size) views; `ge` is the buffer of one comparison
    over the first n_lbp planes. Reusing them saves the page faults of fresh ones on
    every call."""
    key = (size, plan)
    cached = getattr(_work, "buffers", None)
    if cached is None or cached[0] != key:
        pad = max(plan.offsets)  # the largest shift
        flat = np.zeros(6 * plan.plane + 2 * pad, dtype=np.uint8)
        planes = [flat[pad + j * plan.plane : pad + j * plan.plane + size * size].reshape(size, size) for j in range(6)]
        cached = (key, (flat, np.empty(n_lbp * plan.plane, dtype=np.bool_), planes, pad))
        _work.buffers = cached
    return cached[1]


def _features_fast(
    crops: list[np.ndarray], size: int, radii: tuple[int, ...], channels: tuple[str, ...], moments: bool, plan: _FastPlan
) -> np.ndarray:
    """_features for 4-point settings (see "the 4-point fast path")."""
    n_chan = len(channels)
    flat, ge, planes, pad = _fast_buffers(size, n_chan, plan)
    total = len(ge)
    centre = flat[pad : pad + total]
    bits = np.empty((len(plan.offsets), total // 8), dtype=np.uint8)  # the comparisons, packed
    sel = np.empty((5, len(radii), total // _WORD), dtype=np.uint64)  # the pixels of each count
    tmp = np.empty((4, len(radii), total // _WORD), dtype=np.uint64)
    counts = np.empty((len(crops), n_chan, len(radii), 6), dtype=np.float64)
    mhist = np.empty((len(crops), 6, 256), dtype=np.float64) if moments else None
    for f, crop in enumerate(crops):
        cv2.mixChannels([cv2.cvtColor(crop, cv2.COLOR_BGR2HSV), cv2.cvtColor(crop, cv2.COLOR_BGR2YCrCb)], planes, plan.picks)
        for k, off in enumerate(plan.offsets):  # radius by radius, point by point
            # One comparison at a time, packed at once: the bools of all would not stay in cache.
            np.greater_equal(flat[pad + off : pad + off + total], centre, out=ge)
            bits[k] = np.packbits(ge)
        a, b, c, d = bits.view(np.uint64).reshape(len(radii), 4, -1).transpose(1, 0, 2)
        # Points 0-3 lie right, up, left, down. x: the horizontal pair differs; y: the
        # vertical one (see "the 4-point fast path" above).
        x, y, t, u = tmp
        np.bitwise_xor(a, c, out=x)
        np.bitwise_xor(b, d, out=y)
        np.bitwise_xor(x, y, out=sel[0])  # one pair differs
        np.bitwise_or(np.bitwise_and(x, b, out=t), np.bitwise_and(y, a, out=u), out=t)
        np.bitwise_and(sel[0], t, out=sel[1])  # ... and the other pair is ones
        np.bitwise_and(x, y, out=sel[2])  # both differ
        np.invert(np.bitwise_or(x, y, out=t), out=t)  # neither differs
        np.bitwise_and(t, np.bitwise_and(a, b, out=u), out=sel[3])
        np.bitwise_and(t, np.bitwise_xor(a, b, out=u), out=sel[4])
        sel &= plan.masks  # the pixels each radius counts
        # per radius and channel: ones + threes, threes, twos, fours, opposite ones
        k13, k3, k2, k4, k5 = np.bitwise_count(sel).reshape(5, len(radii), n_chan, -1).sum(axis=3, dtype=np.int64)
        bins = counts[f].transpose(2, 1, 0)  # bin, radius, channel
        bins[1], bins[2], bins[3], bins[4], bins[5] = k13 - k3, k2, k3, k4, k5
        bins[0] = plan.count[:, None] - bins[1:].sum(axis=0)
        if moments:
            mhist[f] = _moment_histograms(planes, plan.order)
    feats = (counts / plan.count[:, None]).reshape(len(crops), -1)
    if moments:
        sampled = (-(-size // _MOMENT_STEP)) ** 2  # pixels per channel in the sample
        feats = np.concatenate([feats, _moments_from_histograms(mhist, sampled)], axis=1)
    return feats.astype(np.float32)


def _moment_histograms(planes: list[np.ndarray], order: tuple[int, ...]) -> np.ndarray:
    """(6, 256) counts of each value of H, S, V, Y, Cr, Cb over the pixels _colour_moments
    samples, from the fast path's six (size, size) planes (plane j is CHANNELS[order[j]])."""
    step, size = _MOMENT_STEP, len(planes[0])
    out = np.empty((6, 256), dtype=np.float64)
    for j, i in enumerate(order):
        if size % step == 0:
            # No copy: every step-th row, seen as an image of `step` channels whose first
            # channel is every step-th pixel, which calcHist counts in place.
            sample = planes[j].reshape(size // step, step, size // step, step)[:, 0]
        else:
            sample = np.ascontiguousarray(planes[j][::step, ::step, None])
        out[i] = cv2.calcHist([sample], [0], None, [256], [0, 256])[:, 0]
    return out


def _features(
    crops: list[np.ndarray], size: int, points: int, radii: tuple[int, ...], channels: tuple[str, ...], moments: bool
) -> np.ndarray:
    """(N, D) float32 features of resized BGR crops: the 4-point fast path where it applies."""
    plan = _fast_plan(points, radii, size, channels)
    if plan is not None:
        return _features_fast(crops, size, radii, channels, moments, plan)
    return _features_general(crops, size, points, radii, channels, moments)


def _features_general(
    crops: list[np.ndarray], size: int, points: int, radii: tuple[int, ...], channels: tuple[str, ...], moments: bool
) -> np.ndarray:
    """(N, D) float32 features of resized BGR crops, for any settings."""
    chans = _channel_stack(crops, size)  # (N * 6, size, size)
    lbp_chans = chans
    if channels != CHANNELS:
        pick = [CHANNELS.index(c) for c in channels]
        lbp_chans = chans.reshape(len(crops), 6, size, size)[:, pick].reshape(-1, size, size)
    hist = _uniform_lbp_histograms(lbp_chans, points, radii, len(channels))
    # (N, len(channels), len(radii), points + 2): face, channel, radius, bin.
    feats = hist.reshape(len(crops), -1)
    if moments:
        feats = np.concatenate([feats, _colour_moments(chans)], axis=1)
    return feats.astype(np.float32)
