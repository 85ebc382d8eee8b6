"""Tests for liveness.lbp: colour-texture LBP features and the LBPClassifier."""

from __future__ import annotations

import json
import pathlib

import cv2
import numpy as np
import pytest


from liveness import lbp_kernel
from liveness.lbp import (  # noqa: E402
    CHANNELS, CLASSIC_SETTINGS, DEFAULT_SETTINGS, LBP_SIZE, N_MOMENTS, PREVIOUS_SETTINGS, LBPClassifier, balanced_weights,
    feature_length, lbp_features,
    lbp_features_batch, recapture_face,
)


def _lbp_features_reference(
    face_bgr: np.ndarray, *, size: int = LBP_SIZE, points: int = 8, radii: tuple[int, ...] = (1, 2)
) -> np.ndarray:
    """The definition lbp_features implements, straight from scikit-image (its original,
    slow implementation): per channel H, S, V, Y, Cr, Cb and per radius, the normalised
    histogram of local_binary_pattern(channel, points, radius, "uniform") over the
    pixels at least `radius` from the border."""
    import cv2
    from skimage.feature import local_binary_pattern

    bgr = face_bgr if face_bgr.ndim == 3 else cv2.cvtColor(face_bgr, cv2.COLOR_GRAY2BGR)
    h, w = bgr.shape[:2]
    if (h, w) != (size, size):
        bgr = cv2.resize(bgr, (size, size), interpolation=cv2.INTER_LINEAR)
    bgr = np.ascontiguousarray(bgr)
    channels = [*cv2.split(cv2.cvtColor(bgr, cv2.COLOR_BGR2HSV)), *cv2.split(cv2.cvtColor(bgr, cv2.COLOR_BGR2YCrCb))]
    out = []
    for channel in channels:
        for r in radii:
            codes = local_binary_pattern(channel, points, r, method="uniform")[r:-r, r:-r]
            out.append(np.bincount(codes.astype(np.intp).ravel(), minlength=points + 2) / codes.size)
    return np.concatenate(out).astype(np.float32)


def _golden_image() -> np.ndarray:
    """Seeded 64x64 BGR image: colour gradients plus Gaussian noise (no resize involved)."""
    rng = np.random.default_rng(1234)
    yy, xx = np.mgrid[0:64, 0:64]
    base = np.stack([60 + 2 * xx, 90 + yy, 150 + xx + yy // 2], axis=-1).astype(np.float64)
    return np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)


def _smooth_patch(rng: np.random.Generator, size: int = LBP_SIZE) -> np.ndarray:
    """Skin-ish BGR patch: low-frequency random shading plus sensor noise."""
    import cv2

    coarse = rng.normal(0, 25, (6, 6, 3))
    shading = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
    skin = np.array([120, 150, 200], dtype=np.float64) + rng.normal(0, 15, 3)  # B, G, R
    noise = rng.normal(0, 4, (size, size, 3))
    return np.clip(skin + shading + noise, 0, 255).astype(np.uint8)


def _replayed(patch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The same patch as a screen replay would show it: moire sinusoid and a blue cast."""
    h, w = patch.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    theta = rng.uniform(0, np.pi)
    freq = rng.uniform(0.15, 0.3)  # cycles per pixel
    moire = 18 * np.sin(2 * np.pi * freq * (xx * np.cos(theta) + yy * np.sin(theta)) + rng.uniform(0, 2 * np.pi))
    out = patch.astype(np.float64) + moire[..., None]
    out += np.array([30.0, 0.0, -20.0])  # B up, R down
    return np.clip(out, 0, 255).astype(np.uint8)


def _two_class_set(n_per_class: int, seed: int) -> tuple[list[np.ndarray], np.ndarray]:
    rng = np.random.default_rng(seed)
    live = [_smooth_patch(rng) for _ in range(n_per_class)]
    fake = [_replayed(_smooth_patch(rng), rng) for _ in range(n_per_class)]
    return live + fake, np.array([1] * n_per_class + [0] * n_per_class)


@pytest.fixture(scope="module")
def fitted() -> tuple[LBPClassifier, list[np.ndarray], np.ndarray, np.ndarray]:
    """(model, training faces, labels, the model's scores on those faces), built once."""
    faces, labels = _two_class_set(30, seed=7)
    model = LBPClassifier(seed=0).fit(faces, labels)
    return model, faces, labels, model.score_live(faces)


# --- features -----------------------------------------------------------------


@pytest.mark.parametrize(("points", "radii"), [(8, (1, 2)), (8, (1,)), (16, (2, 3))])
def test_features_shape_normalised_finite_deterministic(points: int, radii: tuple[int, ...]) -> None:
    img = _golden_image()
    f = lbp_features(img, points=points, radii=radii)
    assert f.dtype == np.float32 and f.ndim == 1
    assert len(f) == 6 * len(radii) * (points + 2) == feature_length(points, radii)
    assert np.isfinite(f).all() and (f >= 0).all()
    np.testing.assert_allclose(f.reshape(-1, points + 2).sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(f, lbp_features(img, points=points, radii=radii))


def test_features_golden() -> None:
    # Catches any change to the feature definition (colour spaces, channel order, LBP
    # method, border handling, normalisation). Block 0 is H at radius 1, block 6 is V at radius 1.
    f = lbp_features(_golden_image())
    np.testing.assert_allclose(f[:5], [0.1530, 0.1199, 0.0395, 0.0385, 0.0216], atol=1e-4)
    np.testing.assert_allclose(f[60:65], [0.1576, 0.1158, 0.0416, 0.0362, 0.0258], atol=1e-4)


def test_features_any_size_and_grey() -> None:
    rng = np.random.default_rng(0)
    for shape in [(200, 150, 3), (20, 31, 3), (64, 64), (64, 64, 4)]:
        f = lbp_features(rng.integers(0, 256, shape, dtype=np.uint8))
        assert f.shape == (feature_length(),)
    # Resizing happens first: a 2x pixel-repeated image resized back to 64 is the same crop.
    img = _golden_image()
    big = np.repeat(np.repeat(img, 2, axis=0), 2, axis=1)
    np.testing.assert_array_equal(lbp_features(big), lbp_features(img))


def test_features_reject_bad_input() -> None:
    with pytest.raises(ValueError, match="uint8"):
        lbp_features(np.zeros((64, 64, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="shape"):
        lbp_features(np.zeros((64, 64, 2), dtype=np.uint8))
    with pytest.raises(ValueError, match="empty"):
        lbp_features(np.zeros((0, 64, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="size"):
        lbp_features(_golden_image(), size=4, radii=(1, 2))
    with pytest.raises(TypeError):
        lbp_features([[1, 2], [3, 4]])  # type: ignore[arg-type]


def _equivalence_images() -> list[tuple[str, np.ndarray]]:
    """Random, natural and tie-heavy BGR images. Ties (a sample exactly equal to the
    centre: flat areas, linear gradients) are where float rounding decides the bit."""
    import cv2
    from skimage import data

    rng = np.random.default_rng(2024)
    yy, xx = np.mgrid[0:LBP_SIZE, 0:LBP_SIZE]
    astronaut = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    lfw = (data.lfw_subset()[[0, 57, 123]] * 255).round().astype(np.uint8)  # 25x25 grey faces
    images = [
        ("golden", _golden_image()),
        ("uniform noise", rng.integers(0, 256, (LBP_SIZE, LBP_SIZE, 3), dtype=np.uint8)),
        ("4-level noise", rng.integers(100, 104, (LBP_SIZE, LBP_SIZE, 3), dtype=np.uint8)),
        ("noise 150x120", rng.integers(0, 256, (150, 120, 3), dtype=np.uint8)),
        ("flat", np.full((LBP_SIZE, LBP_SIZE, 3), 77, dtype=np.uint8)),
        ("gradient", np.stack([xx * 3, yy * 3, (xx + yy) * 2], axis=-1).clip(0, 255).astype(np.uint8)),
        ("diagonal ramp", np.repeat(((xx + 2 * yy) % 256).astype(np.uint8)[..., None], 3, axis=-1)),
        ("skin patch", _smooth_patch(rng)),
        ("replayed patch", _replayed(_smooth_patch(rng), rng)),
        ("astronaut face", astronaut[30:230, 150:330]),
        ("astronaut", astronaut),
        ("chelsea", cv2.cvtColor(data.chelsea(), cv2.COLOR_RGB2BGR)[40:260, 120:340]),
        ("coffee", cv2.cvtColor(data.coffee(), cv2.COLOR_RGB2BGR)),
        ("camera (grey)", data.camera()[60:316, 180:436]),
    ]
    images += [(f"lfw face {i}", face) for i, face in enumerate(lfw)]
    return images


# (4, (1,)) and (4, (1, 4)) count raw codes and map them to uniform bins afterwards.
@pytest.mark.parametrize(
    ("points", "radii"), [(8, (1, 2)), (8, (1, 2, 3)), (16, (2, 3)), (12, (2,)), (4, (1,)), (4, (1, 4)), (4, (1, 2, 4))]
)
def test_features_match_scikit_image(points: int, radii: tuple[int, ...]) -> None:
    # The contract: the vectorised features equal scikit-image's within 1e-3 per bin.
    # They are in fact bit-identical (same sample points, same float64 interpolation in
    # the same order), and this checks that too: a saved model scores the same.
    worst = 0.0
    for name, image in _equivalence_images():
        ours = lbp_features(image, points=points, radii=radii)
        ref = _lbp_features_reference(image, points=points, radii=radii)
        worst = max(worst, float(np.abs(ours - ref).max()))
        np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-3, err_msg=name)
        np.testing.assert_array_equal(ours, ref, err_msg=f"{name}: close but not bit-identical")
    assert worst == 0.0


def test_features_match_scikit_image_other_sizes() -> None:
    # Odd sizes (rows that are not whole uint64s of codes) and the smallest legal size.
    rng = np.random.default_rng(5)
    for size, radii in [(31, (1, 2)), (5, (1, 2)), (3, (1,)), (97, (3,))]:
        for image in (rng.integers(0, 256, (40, 40, 3), dtype=np.uint8), _golden_image()):
            np.testing.assert_array_equal(
                lbp_features(image, size=size, radii=radii), _lbp_features_reference(image, size=size, radii=radii)
            )


def test_lbp_codes_match_scikit_image_pixel_by_pixel() -> None:
    # Stronger than equal histograms: every interior code is scikit-image's, on images
    # full of exact ties (flat runs, linear ramps, few grey levels).
    from skimage.feature import local_binary_pattern

    rng = np.random.default_rng(11)
    yy, xx = np.mgrid[0:48, 0:48]
    chans = np.stack(
        [
            rng.integers(0, 256, (48, 48)),
            rng.integers(10, 13, (48, 48)),
            (xx + yy) % 256,
            (3 * xx + 7 * yy) % 256,
            np.full((48, 48), 200),
            (yy // 4) * 10 + (xx // 6),
        ]
    ).astype(np.uint8)
    for points, radii in [(8, (1, 2, 3)), (16, (2,)), (12, (2,)), (5, (1,))]:
        codes = np.empty((len(radii), chans.size), dtype=np.intp)
        lbp_kernel._uniform_lbp_codes(chans, points, radii, codes)
        codes = codes.reshape(len(radii), *chans.shape)
        for i, r in enumerate(radii):
            for c, channel in enumerate(chans):
                ref = local_binary_pattern(channel, points, r, method="uniform")
                np.testing.assert_array_equal(
                    codes[i, c, r:-r, r:-r], ref[r:-r, r:-r], err_msg=f"P={points} R={r} channel {c}"
                )


def test_different_textures_give_different_features() -> None:
    yy, xx = np.mgrid[0:LBP_SIZE, 0:LBP_SIZE]
    gradient = np.stack([xx * 3, yy * 3, (xx + yy) * 2], axis=-1).clip(0, 255).astype(np.uint8)
    noisy = np.random.default_rng(3).integers(0, 256, (LBP_SIZE, LBP_SIZE, 3), dtype=np.uint8)
    fg, fn = lbp_features(gradient), lbp_features(noisy)
    # 12 histograms each summing to 1: L1 distance 0 is identical, 24 is disjoint.
    assert np.abs(fg - fn).sum() > 6.0


def test_batch() -> None:
    faces = [_golden_image(), np.random.default_rng(1).integers(0, 256, (80, 70, 3), dtype=np.uint8)]
    batch = lbp_features_batch(faces, radii=(1,))
    assert batch.shape == (2, feature_length(8, (1,))) and batch.dtype == np.float32
    np.testing.assert_array_equal(batch[0], lbp_features(faces[0], radii=(1,)))
    assert lbp_features_batch([], radii=(1, 2, 3)).shape == (0, feature_length(8, (1, 2, 3)))


@pytest.mark.parametrize(("points", "radii"), [(8, (1, 2)), (16, (2, 3))])
def test_batch_rows_equal_single_faces(points: int, radii: tuple[int, ...]) -> None:
    # More faces than one colour-conversion chunk, a count that leaves a partial LBP
    # block, mixed shapes and kinds (grey, BGRA), and an array of faces as input.
    rng = np.random.default_rng(3)
    shapes = [(64, 64, 3), (80, 70, 3), (30, 41, 3), (64, 64), (64, 64, 4), (64, 64, 1)]
    faces = [rng.integers(0, 256, shapes[i % len(shapes)], dtype=np.uint8) for i in range(lbp_kernel._BATCH_FACES + 5)]
    batch = lbp_features_batch(faces, points=points, radii=radii)
    assert batch.shape == (len(faces), feature_length(points, radii)) and batch.dtype == np.float32
    for row, face in zip(batch, faces):
        np.testing.assert_array_equal(row, lbp_features(face, points=points, radii=radii))
    stack = np.stack([f for f in faces if f.shape == (64, 64, 3)])
    np.testing.assert_array_equal(lbp_features_batch(stack), np.stack([lbp_features(f) for f in stack]))


def test_batch_validates_every_face() -> None:
    good = _golden_image()
    with pytest.raises(ValueError, match="uint8"):
        lbp_features_batch([good, good.astype(np.float32)])
    with pytest.raises(ValueError, match="empty"):
        lbp_features_batch([good, np.zeros((0, 5, 3), dtype=np.uint8)])
    with pytest.raises(ValueError, match="radii"):
        lbp_features_batch([good], radii=(0,))


# --- classifier ---------------------------------------------------------------


def test_classifier_separates_and_scores_in_range(fitted) -> None:
    model, faces, labels, s = fitted
    assert s.shape == (len(faces),) and s.dtype == np.float64
    assert ((s >= 0) & (s <= 1)).all()
    assert ((s > 0.5).astype(int) == labels).mean() > 0.9
    # And on faces it has not seen.
    test_faces, test_labels = _two_class_set(10, seed=99)
    assert ((model.score_live(test_faces) > 0.5).astype(int) == test_labels).mean() > 0.9


def test_scores_equal_scikit_learns_own_pipeline(fitted) -> None:
    """The plain-NumPy scorer computes what StandardScaler + LogisticRegression would."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    _, faces, labels, _ = fitted
    model = LBPClassifier(seed=0, augment=0, balance="class").fit(faces, labels)  # plain: no copies, classes balanced
    scores = model.score_live(faces)
    feats = model.features(faces)
    reference = make_pipeline(
        StandardScaler(), LogisticRegression(C=model.C, class_weight="balanced", max_iter=5000, random_state=model.seed)
    ).fit(feats, labels)
    np.testing.assert_allclose(scores, reference.predict_proba(feats)[:, 1], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(model.predict_proba(faces), np.stack([1 - scores, scores], axis=1), rtol=1e-12)


def test_classifier_is_deterministic_within_round_off(fitted) -> None:
    # Same data, same seed: the same scores, up to BLAS round-off, which differs with
    # batch size and CPU (6 faces vs the same faces in a batch of 40).
    _, faces, labels, scores = fitted
    again = LBPClassifier(seed=0).fit(faces, labels)
    np.testing.assert_allclose(again.score_live(faces[:6]), scores[:6], rtol=1e-9, atol=1e-12)


def test_classifier_rejects_bad_use() -> None:
    faces, labels = _two_class_set(2, seed=1)
    with pytest.raises(RuntimeError):
        LBPClassifier().score_live(faces)
    with pytest.raises(ValueError):
        LBPClassifier().fit(faces, labels[:-1])
    with pytest.raises(ValueError):
        LBPClassifier().fit(faces, np.ones(len(faces), dtype=int))
    with pytest.raises(ValueError):
        LBPClassifier().fit(faces, labels * 2)
    with pytest.raises(ValueError):
        LBPClassifier(C=0)


def test_save_load_round_trip(fitted, tmp_path: pathlib.Path) -> None:
    model, faces, _, scores = fitted
    path = tmp_path / "lbp_model.npz"
    model.save(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lbp_model.npz"]  # no temp file left behind
    loaded = LBPClassifier.load(path)
    assert (loaded.size, loaded.points, loaded.radii, loaded.channels, loaded.moments, loaded.C, loaded.seed) == (
        model.size, model.points, model.radii, model.channels, model.moments, model.C, model.seed,
    )
    np.testing.assert_allclose(loaded.score_live(faces), scores, rtol=1e-12, atol=1e-15)
    # Overwriting an existing file goes through the same atomic replace.
    loaded.save(path)
    np.testing.assert_allclose(LBPClassifier.load(path).score_live(faces[:4]), scores[:4], rtol=1e-9, atol=1e-12)  # another batch size: BLAS round-off


def test_save_keeps_the_given_name(fitted, tmp_path: pathlib.Path) -> None:
    path = tmp_path / "model.bin"
    fitted[0].save(path)
    assert path.is_file() and not (tmp_path / "model.bin.npz").exists()


def test_load_corrupt_file_raises_value_error(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "corrupt.npz"
    path.write_bytes(np.random.default_rng(0).bytes(2048))
    with pytest.raises(ValueError, match="corrupt.npz") as info:
        LBPClassifier.load(path)
    assert "\n" not in str(info.value)
    # A zip-looking header with garbage after it.
    path.write_bytes(b"PK\x03\x04" + np.random.default_rng(1).bytes(500))
    with pytest.raises(ValueError, match="corrupt.npz"):
        LBPClassifier.load(path)


def _resave(src: pathlib.Path, dst: pathlib.Path, **changes) -> None:
    with np.load(src, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    arrays.update(changes)
    for k, v in list(arrays.items()):
        if v is None:
            del arrays[k]
    np.savez(dst, **arrays)


def test_load_refuses_object_arrays_and_malformed_models(fitted, tmp_path: pathlib.Path) -> None:
    good = tmp_path / "good.npz"
    fitted[0].save(good)
    bad = tmp_path / "bad.npz"
    d = feature_length(DEFAULT_SETTINGS.points, DEFAULT_SETTINGS.radii, DEFAULT_SETTINGS.moments, DEFAULT_SETTINGS.channels)
    # np.savez pickles an object array; load must refuse it rather than unpickle.
    _resave(good, bad, coef=np.array([{"payload": 1}] * d, dtype=object).reshape(1, d))
    with pytest.raises(ValueError, match=r"bad\.npz.*[Oo]bject"):
        LBPClassifier.load(bad)
    cases = [
        {"coef": None},
        {"format": np.array("something-else/1")},
        {"params": np.array("{not json")},
        {"params": np.array('{"size": 64, "points": 8, "radii": [1, 2], "C": 1.0}')},
        {"params": np.array('{"size": 64, "points": 8, "radii": [1, 2], "channels": ["Y"], "moments": 1, "C": 1.0, "seed": 0}')},
        {"params": np.array('{"size": 64, "points": 8, "radii": [1, 2], "channels": ["Q"], "moments": true, "C": 1.0, "seed": 0}')},
        {"scaler_mean": np.zeros(d - 1)},
        {"scaler_scale": np.zeros(d)},
        {"classes": np.array([0, 2])},
        {"intercept": np.array(["x"])},
    ]
    for change in cases:
        _resave(good, bad, **change)
        with pytest.raises(ValueError, match="bad.npz"):
            LBPClassifier.load(bad)
    # A plain .npy array is not a model either.
    np.save(tmp_path / "arr.npy", np.zeros(3))
    with pytest.raises(ValueError, match="arr.npy"):
        LBPClassifier.load(tmp_path / "arr.npy")
    # A missing file is an ordinary OSError, not a malformed model.
    with pytest.raises(FileNotFoundError):
        LBPClassifier.load(tmp_path / "missing.npz")


# --- colour moments and settings ------------------------------------------------


def test_colour_moments_of_known_images() -> None:
    """The moments that end each row with moments=True, checked against images whose
    moments are known by construction."""
    n_lbp = feature_length(4, (1,))
    # Flat mid-grey: every channel constant (std and skew 0, no nan), hue 0 (cos 1, sin 0).
    grey = np.full((40, 40, 3), 128, dtype=np.uint8)
    m = lbp_features_batch([grey], size=32, points=4, radii=(1,), moments=True)[0]
    assert m.shape == (n_lbp + N_MOMENTS,) and np.isfinite(m).all()
    mean, std, skew, hue = m[n_lbp : n_lbp + 5], m[n_lbp + 5 : n_lbp + 10], m[n_lbp + 10 : n_lbp + 15], m[n_lbp + 15 :]
    np.testing.assert_allclose(std, 0, atol=1e-6)
    np.testing.assert_allclose(skew, 0, atol=1e-6)
    np.testing.assert_allclose(hue, [1, 0], atol=1e-6)
    # S, V, Y, Cr, Cb of mid-grey in OpenCV's 8-bit conversions: 0, 128, 128, 128, 128.
    np.testing.assert_allclose(mean, np.array([0, 128, 128, 128, 128]) / 255, atol=1e-6)
    # Half black, half white: V and Y have mean 0.5, std 0.5, skew 0.
    half = np.zeros((32, 32, 3), dtype=np.uint8)
    half[:, 16:] = 255
    m = lbp_features_batch([half], size=32, points=4, radii=(1,), moments=True)[0]
    np.testing.assert_allclose(m[n_lbp + 1], 0.5, atol=1e-6)  # V mean
    np.testing.assert_allclose(m[n_lbp + 6], 0.5, atol=1e-6)  # V std
    np.testing.assert_allclose(m[n_lbp + 11], 0.0, atol=1e-6)  # V skew
    # Pure red and pure blue: hue directions 0 and 240 degrees.
    red = np.zeros((32, 32, 3), dtype=np.uint8)
    red[..., 2] = 255
    blue = np.zeros((32, 32, 3), dtype=np.uint8)
    blue[..., 0] = 255
    rows = lbp_features_batch([red, blue], size=32, points=4, radii=(1,), moments=True)
    np.testing.assert_allclose(rows[0, -2:], [1, 0], atol=1e-6)
    np.testing.assert_allclose(rows[1, -2:], [np.cos(np.radians(240)), np.sin(np.radians(240))], atol=1e-6)


def test_moments_extend_the_lbp_rows_unchanged() -> None:
    faces, _ = _two_class_set(3, seed=5)
    plain = lbp_features_batch(faces, size=96, points=4, radii=(1, 2))
    both = lbp_features_batch(faces, size=96, points=4, radii=(1, 2), moments=True)
    assert both.shape == (len(faces), feature_length(4, (1, 2), moments=True))
    np.testing.assert_array_equal(both[:, : plain.shape[1]], plain)


def test_settings_build_the_classifier_they_name() -> None:
    for settings in (DEFAULT_SETTINGS, CLASSIC_SETTINGS):
        model = LBPClassifier.from_settings(settings, seed=3)
        assert (model.size, model.points, model.radii, model.channels, model.moments, model.C, model.seed) == (
            settings.size, settings.points, settings.radii, settings.channels, settings.moments, settings.C, 3,
        )
    with pytest.raises(ValueError, match="moments"):
        LBPClassifier(moments="yes")  # type: ignore[arg-type]
    assert DEFAULT_SETTINGS.describe().startswith(
        f"{DEFAULT_SETTINGS.points}-point uniform LBP, radii {'/'.join(map(str, DEFAULT_SETTINGS.radii))}, "
    )
    assert "colour moments" in DEFAULT_SETTINGS.describe() and "colour moments" not in CLASSIC_SETTINGS.describe()
    for bad in ("Y", ("Y", "Y"), ("R",), ()):
        with pytest.raises(ValueError, match="channels"):
            LBPClassifier(channels=bad)  # type: ignore[arg-type]


def test_a_channel_subset_is_those_channels_of_the_full_features() -> None:
    faces, _ = _two_class_set(3, seed=8)
    full = lbp_features_batch(faces, size=48, points=4, radii=(1, 3)).reshape(len(faces), 6, 2, 6)
    subset = ("Cb", "H", "Y")
    part = lbp_features_batch(faces, size=48, points=4, radii=(1, 3), channels=subset)
    assert part.shape == (len(faces), feature_length(4, (1, 3), channels=subset))
    np.testing.assert_array_equal(part.reshape(len(faces), 3, 2, 6), full[:, [CHANNELS.index(c) for c in subset]])
    np.testing.assert_array_equal(lbp_features(faces[0], size=48, points=4, radii=(1, 3), channels=subset), part[0])


def test_version_1_models_still_load(tmp_path: pathlib.Path) -> None:
    """Files saved before colour moments existed (format /1, no "moments") load as
    moment-free models and score as before."""
    faces, labels = _two_class_set(8, seed=11)
    old = LBPClassifier.from_settings(CLASSIC_SETTINGS).fit(faces, labels)
    path = tmp_path / "v2.npz"
    old.save(path)
    params = {k: v for k, v in old.params().items() if k not in ("channels", "moments")}
    _resave(path, tmp_path / "v1.npz", format=np.array("liveness.lbp.LBPClassifier/1"), params=np.array(json.dumps(params)))
    loaded = LBPClassifier.load(tmp_path / "v1.npz")
    assert loaded.moments is False and loaded.channels == CHANNELS
    np.testing.assert_allclose(loaded.score_live(faces), old.score_live(faces), rtol=1e-12, atol=1e-15)


def test_group_balance_gives_every_group_and_class_the_same_weight() -> None:
    labels = np.array([1, 1, 1, 1, 0, 1, 0, 0])
    groups = np.array(["a", "a", "a", "a", "a", "b", "b", "b"])
    w = balanced_weights(labels, groups)
    assert w.mean() == pytest.approx(1.0)
    cells = {(g, y): w[(groups == g) & (labels == y)].sum() for g, y in {(g, y) for g, y in zip(groups, labels)}}
    assert np.allclose(list(cells.values()), next(iter(cells.values())))
    by_class = balanced_weights(labels, None)
    assert by_class[labels == 1].sum() == pytest.approx(by_class[labels == 0].sum())


def test_augmented_copies_are_seeded_and_aligned() -> None:
    faces, labels = _two_class_set(5, seed=3)
    model = LBPClassifier(seed=4, augment=2)
    a, b = model.augmented_features(faces), LBPClassifier(seed=4, augment=2).augmented_features(faces)
    assert a.shape == (2 * len(faces), model.n_features)
    np.testing.assert_array_equal(a, b)  # same seed, same copies
    assert not np.array_equal(a, LBPClassifier(seed=5, augment=2).augmented_features(faces))
    fitted = LBPClassifier(seed=4, augment=2).fit(faces, labels, groups=np.array(["x", "y"] * 5))
    assert np.isfinite(fitted.coef_).all()
    with pytest.raises(ValueError, match="whole copies"):
        model.fit_features(model.features(faces), labels, None, a[:-1])


def test_previous_default_models_still_load_and_score_alike(tmp_path: pathlib.Path) -> None:
    """A model saved before area / augment / balance existed (format /2) loads as bilinear,
    unaugmented, class-balanced, and scores exactly as it did."""
    faces, labels = _two_class_set(8, seed=12)
    old = LBPClassifier.from_settings(PREVIOUS_SETTINGS).fit(faces, labels)
    path = tmp_path / "v3.npz"
    old.save(path)
    params = {k: v for k, v in old.params().items() if k not in ("area", "augment", "balance")}
    _resave(path, tmp_path / "v2.npz", format=np.array("liveness.lbp.LBPClassifier/2"), params=np.array(json.dumps(params)))
    loaded = LBPClassifier.load(tmp_path / "v2.npz")
    assert (loaded.area, loaded.augment, loaded.balance) == (False, 0, "class")
    np.testing.assert_allclose(loaded.score_live(faces), old.score_live(faces), rtol=1e-12, atol=1e-15)


def test_a_recapture_raises_the_black_and_softens_the_detail() -> None:
    """What a screen and a second camera do to a live crop: the black level rises, fine
    detail blurs; the crop keeps its size, and one seed gives one recapture."""
    face = np.kron((np.indices((16, 16)).sum(axis=0) % 2 * 255).astype(np.uint8), np.ones((4, 4), np.uint8))
    face = np.dstack([face] * 3)  # a 64 x 64 black-and-white checkerboard of 4 px squares
    for seed in range(5):
        out = recapture_face(face, np.random.default_rng(seed))
        assert out.shape == face.shape and out.dtype == np.uint8
        np.testing.assert_array_equal(out, recapture_face(face, np.random.default_rng(seed)))
        dark = out[face == 0].astype(float)
        assert np.median(dark) >= 5, seed  # the black squares are no longer black
        detail = lambda im: cv2.Laplacian(cv2.cvtColor(im, cv2.COLOR_BGR2GRAY), cv2.CV_64F).var()  # noqa: E731
        assert detail(out) < 0.5 * detail(face), seed


def test_synthetic_attacks_are_seeded_weighted_and_saved(tmp_path: pathlib.Path, monkeypatch) -> None:
    """One re-capture per live face, labelled attack; a set-up's re-captures together weigh
    `synthetic` times its attacks (with their augmented copies); the setting is saved."""
    from sklearn.linear_model import LogisticRegression

    faces, labels = _two_class_set(6, seed=7)
    groups = np.array(["a", "b"] * 6)
    live = [f for f, y in zip(faces, labels) if y == 1]
    model = LBPClassifier(seed=3, synthetic=0.1)
    x_syn = model.synthetic_features(live)
    assert x_syn.shape == (len(live), model.n_features)
    np.testing.assert_array_equal(x_syn, LBPClassifier(seed=3, synthetic=0.1).synthetic_features(live))
    assert LBPClassifier(seed=3).synthetic_features(live).shape == (0, model.n_features)  # off: none

    seen = {}
    original = LogisticRegression.fit

    def spy(self, x, y, sample_weight=None):
        seen.update(y=np.asarray(y), w=np.asarray(sample_weight))
        return original(self, x, y, sample_weight=sample_weight)

    monkeypatch.setattr(LogisticRegression, "fit", spy)
    fitted = LBPClassifier(seed=3, synthetic=0.1).fit(faces, labels, groups)
    n, copies = len(faces), 2  # each face and its one augmented copy, then the re-captures
    y, w = seen["y"], seen["w"]
    assert len(y) == copies * n + len(live) and (y[copies * n:] == 0).all()
    syn_groups = groups[labels == 1]
    all_groups = np.tile(groups, copies)
    for g in ("a", "b"):
        attacks = w[: copies * n][(all_groups == g) & (y[: copies * n] == 0)].sum()
        assert w[copies * n:][syn_groups == g].sum() == pytest.approx(0.1 * attacks)
    monkeypatch.undo()

    assert not np.allclose(fitted.coef_, LBPClassifier(seed=3).fit(faces, labels, groups).coef_)
    with pytest.raises(ValueError, match="one row per live face"):
        model.fit_features(model.features(faces), labels, None, None, x_syn[:-1])
    fitted.save(tmp_path / "m.npz")
    loaded = LBPClassifier.load(tmp_path / "m.npz")
    assert loaded.synthetic == 0.1 and loaded.settings() == fitted.settings()
    for bad in (-0.1, 1.5, True, float("nan")):
        with pytest.raises(ValueError, match="synthetic"):
            LBPClassifier(synthetic=bad)


def test_models_saved_before_synthetic_attacks_load_without_them(tmp_path: pathlib.Path) -> None:
    faces, labels = _two_class_set(8, seed=13)
    old = LBPClassifier(seed=0).fit(faces, labels)
    old.save(tmp_path / "v4.npz")
    params = {k: v for k, v in old.params().items() if k != "synthetic"}
    _resave(tmp_path / "v4.npz", tmp_path / "v3.npz", format=np.array("liveness.lbp.LBPClassifier/3"),
            params=np.array(json.dumps(params)))
    loaded = LBPClassifier.load(tmp_path / "v3.npz")
    assert loaded.synthetic == 0.0 and loaded.settings() == DEFAULT_SETTINGS
    np.testing.assert_allclose(loaded.score_live(faces), old.score_live(faces), rtol=1e-12, atol=1e-15)
