"""Heatmaps (liveness/explain.py): Grad-CAM on a tiny trained CNN and on the project's
architectures, occlusion on a colour-LBP scorer, overlays and grids.

The synthetic task: a patch of 1-pixel stripes somewhere on a smooth background makes
a crop "live" (class 1); without it the crop is an attack. A heatmap that
explains the decision must sit on the patch, and follow it when it moves."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from liveness import explain

SIZE = 32
PATCH = 8


def _image(rng: np.random.Generator, size: int, patch: int, y: int, x: int, live: bool) -> np.ndarray:
    """uint8 (size, size, 3): a smooth colour gradient plus faint noise, with a patch at (y, x)."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    base = np.stack([80 + 60 * yy, 100 + 40 * xx, 120 - 30 * yy * xx], axis=-1)
    img = base + rng.normal(0, 3, base.shape)
    if live:  # one-pixel stripes: a texture the smooth background never has
        stripes = (np.arange(patch) % 2)[:, None] * 190 + 30
        img[y : y + patch, x : x + patch] = stripes[..., None]
    return np.clip(img, 0, 255).astype(np.uint8)


def _dataset(n: int, size: int, patch: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    images = np.stack([
        _image(rng, size, patch, *rng.integers(0, size - patch + 1, 2), live=bool(k)) for k in labels
    ])
    return images, labels


def _centroid(m: np.ndarray) -> np.ndarray:
    """(row, col) of a map's mass above half its maximum."""
    m = np.where(m >= 0.5 * m.max(), m, 0.0)
    rows, cols = np.indices(m.shape)
    return np.array([(rows * m).sum(), (cols * m).sum()]) / m.sum()


@pytest.fixture(scope="module")
def tiny_cnn():
    """Two 3x3 convolutions, global max pooling (is the texture anywhere?), softmax: trained
    for a few steps to tell the patch."""
    from liveness.cli import import_tensorflow

    import_tensorflow()
    import keras
    from keras import layers

    keras.utils.set_random_seed(0)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = layers.Rescaling(1 / 255)(inputs)
    x = layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    x = layers.Conv2D(8, 3, padding="same", activation="relu", name="last_conv")(x)
    x = layers.GlobalMaxPooling2D()(x)
    model = keras.Model(inputs, layers.Dense(2, activation="softmax")(x))
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy", metrics=["accuracy"])
    images, labels = _dataset(384, SIZE, PATCH, seed=1)
    model.fit(images.astype(np.float32), labels, epochs=4, batch_size=32, verbose=0)
    test, test_labels = _dataset(64, SIZE, PATCH, seed=2)
    accuracy = (model.predict(test.astype(np.float32), verbose=0).argmax(1) == test_labels).mean()
    assert accuracy >= 0.9, f"the tiny CNN did not learn the synthetic task ({accuracy:.2f})"
    return model


def test_gradcam_finds_and_follows_the_decisive_patch(tiny_cnn):
    rng = np.random.default_rng(3)
    corners = [(2, 2), (SIZE - PATCH - 2, SIZE - PATCH - 2), (2, SIZE - PATCH - 2)]
    batch = np.stack([_image(rng, SIZE, PATCH, y, x, live=True) for y, x in corners])
    maps = explain.gradcam(tiny_cnn, batch, class_index=1)
    assert maps.shape == (3, SIZE, SIZE) and maps.dtype == np.float32
    assert np.isfinite(maps).all() and maps.min() >= 0 and maps.max() <= 1
    for m, (y, x) in zip(maps, corners):
        centre = np.array([y, x]) + PATCH / 2
        assert np.abs(_centroid(m) - centre).max() <= PATCH / 2 + 1, (_centroid(m), centre)
    assert explain.find_target_layer(tiny_cnn)[0].name == "last_conv"


@pytest.mark.parametrize("arch", ["livenessnet", "mobilenetv3small", "mobilenetv2"])
def test_gradcam_runs_on_every_architecture(arch):
    """LivenessNet's last convolution is its own layer; a MobileNet's sits in a nested backbone."""
    from liveness.nets import build_model

    model = build_model(arch, input_size=SIZE, weights=None)
    layer, backbone = explain.find_target_layer(model)
    assert (backbone is None) == (arch == "livenessnet")
    batch = np.random.default_rng(0).integers(0, 256, (2, SIZE, SIZE, 3)).astype(np.uint8)
    maps = explain.gradcam(model, batch, class_index=0)
    assert maps.shape == (2, SIZE, SIZE) and np.isfinite(maps).all()
    assert maps.min() >= 0 and maps.max() <= 1
    if arch == "livenessnet":
        assert layer.name == "block2_bn2"  # the last convolution's block output, before pooling


def test_gradcam_rejects_bad_input(tiny_cnn):
    with pytest.raises(ValueError, match="class_index"):
        explain.gradcam(tiny_cnn, np.zeros((1, SIZE, SIZE, 3)), class_index=2)
    with pytest.raises(ValueError, match="N, H, W, 3"):
        explain.gradcam(tiny_cnn, np.zeros((SIZE, SIZE, 3)), class_index=0)


@pytest.fixture(scope="module")
def lbp_scorer():
    """A small colour-LBP classifier fit on 64x64 crops of the synthetic task (BGR)."""
    from liveness.lbp import LBPClassifier

    images, labels = _dataset(80, 64, 16, seed=4)
    clf = LBPClassifier(size=64, points=4, radii=(1,), moments=False, C=0.01).fit(list(images), labels)
    return clf


def test_occlusion_on_lbp_scorer_finds_and_follows_the_patch(lbp_scorer):
    rng = np.random.default_rng(5)
    calls = []

    def score(crops):
        calls.append(len(crops))
        return lbp_scorer.score_live(crops)

    for y, x in [(4, 4), (44, 40)]:
        face = _image(rng, 64, 16, y, x, live=True)
        calls.clear()
        m = explain.occlusion(score, face, patch=16, stride=4)
        assert m.shape == (64, 64) and m.dtype == np.float32 and np.isfinite(m).all()
        # Any grey square changes the score somewhat (flat grey is a texture too); the
        # stripes are where hiding it costs the live score most.
        centre = np.array([y, x]) + 8
        peak = np.array(np.unravel_index(m.argmax(), m.shape))
        assert np.abs(peak - centre).max() <= 8, (peak, centre)
        relative = explain.normalise(m, minmax=True)
        assert np.abs(_centroid(relative) - centre).max() <= 8, (_centroid(relative), centre)
        assert calls == [64, 64, 42]  # the crop and its 169 occluded copies, in batches of 64


def test_occlusion_with_a_stand_in_scorer():
    """Any score function works; the map is the mean score drop over the covering windows."""
    face = np.full((40, 50, 3), 200, np.uint8)

    def brightness_of_the_top_left(crops):  # "live" = the top-left corner is bright
        return np.array([c[:10, :10].mean() / 255 for c in crops])

    m = explain.occlusion(brightness_of_the_top_left, face, patch=10, stride=5, batch_size=7)
    assert m.shape == (40, 50)
    assert m[:10, :10].min() > 0 and m[20:, 20:].max() == 0
    with pytest.raises(ValueError, match="returned"):
        explain.occlusion(lambda crops: np.zeros(1), face, patch=10, stride=5)
    with pytest.raises(ValueError, match="uint8"):
        explain.occlusion(brightness_of_the_top_left, face.astype(np.float32))


def test_overlay_and_grid(tmp_path):
    import cv2

    face = np.full((60, 40, 3), 90, np.uint8)
    heat = np.zeros((10, 10), np.float32)
    heat[:5] = 1.0
    out = explain.overlay(face, heat, alpha=0.5)
    assert out.shape == face.shape and out.dtype == np.uint8
    assert not np.array_equal(out[5], out[-5])  # hot top, cold bottom: different colours
    assert np.array_equal(explain.normalise(np.zeros((3, 3))), np.zeros((3, 3)))
    assert explain.normalise(np.array([[-2.0, 1.0, 0.5]])).tolist() == [[0.0, 1.0, 0.5]]
    assert np.allclose(explain.normalise(np.array([[-2.0, 1.0, 0.5]]), minmax=True), [[0.0, 1.0, 2.5 / 3]])
    path = explain.write_grid(tmp_path / "grid.png", [face, out, heat], ["a", ["b", "0.93 real"], "c"], columns=2, tile_size=32)
    grid = cv2.imread(str(path))
    assert grid is not None and grid.shape[1] == 2 * (32 + 8)  # two columns of padded tiles


# --- explain.py, the script, on model folders ----------------------------------


def _write_crops(folder, n: int, live: bool, seed: int):
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        cv2.imwrite(str(folder / f"{i}.png"), _image(rng, 64, 16, *rng.integers(0, 48, 2), live=live))


@pytest.fixture(scope="module")
def lbp_folder(lbp_scorer, tmp_path_factory):
    from model_folders import write_folder

    return write_folder(tmp_path_factory.mktemp("lbp") / "liveness", lbp=lbp_scorer)


def test_explain_script_occlusion_on_crops(lbp_folder, tmp_path):
    import cv2

    import explain as script

    _write_crops(tmp_path / "in" / "a", 3, live=True, seed=6)
    _write_crops(tmp_path / "in" / "b", 2, live=False, seed=7)
    written = script.run(model=lbp_folder, input=tmp_path / "in", output=tmp_path / "out", crops=True, per_face=True)
    names = sorted(p.name for p in written)
    assert "a_occlusion.png" in names and "b_occlusion.png" in names  # one grid per folder
    assert len(names) == 2 + 5  # and one file per face
    grid = cv2.imread(str(tmp_path / "out" / "a_occlusion.png"))
    assert grid is not None and grid.shape[1] > 6 * explain.TILE_SIZE  # 3 faces: crop + heatmap each


def test_explain_script_gradcam_and_dataset_mode(tiny_cnn, tmp_path):
    import cv2

    import explain as script
    from model_folders import write_folder

    for subject in ("subject01", "subject02"):
        for label, live in (("real", True), ("fake", False)):
            folder = tmp_path / "crops" / subject / label
            folder.mkdir(parents=True)
            rng = np.random.default_rng(len(subject) + live)
            for i in range(3):
                cv2.imwrite(str(folder / f"{i}.png"), _image(rng, SIZE, PATCH, *rng.integers(0, SIZE - PATCH, 2), live=live))
    model = write_folder(tmp_path / "cnn", cnn=tiny_cnn)
    [path] = script.run(model=model, dataset=[tmp_path / "crops"], output=tmp_path / "out", group_pattern=r"subject\d+")
    grid = cv2.imread(str(path))
    assert path.name == "mean_heatmaps.png" and grid is not None
    written = script.run(model=model, input=tmp_path / "crops" / "subject01" / "real" / "0.png", output=tmp_path / "one", crops=True)
    assert [p.name for p in written] == ["0_gradcam.png"]


def test_explain_script_refuses_gradcam_without_cnn(lbp_folder, tmp_path):
    import explain as script
    from liveness.cli import UserError

    _write_crops(tmp_path / "in", 1, live=True, seed=8)
    with pytest.raises(UserError, match="needs a CNN"):
        script.run(model=lbp_folder, input=tmp_path / "in", output=tmp_path / "out", crops=True, method="gradcam")
    with pytest.raises(UserError, match="either --input or --dataset"):
        script.run(model=lbp_folder, output=tmp_path / "out")


@pytest.mark.shared_data
def test_explain_script_finds_faces_in_a_video(lbp_folder, shared_data, tmp_path):
    import explain as script

    video = shared_data / "videos" / "subject02" / "real.mp4"
    written = script.run(model=lbp_folder, input=video, output=tmp_path / "out", skip=10, max_frames=20, per_face=True)
    names = [p.name for p in written]
    assert names[-1] == "real_occlusion.png"  # the grid of the video
    assert [n[:18] for n in names[:-1]] == ["real_f000000_face0", "real_f000010_face0"]  # frames 0 and 10


@pytest.mark.shared_data
def test_demo_explain_draws_the_heatmap_inset(lbp_model, shared_data, tmp_path):
    """liveness_demo.py --explain: the largest face's heatmap is drawn in the top-right
    corner of the annotated frames (and nothing else changes)."""
    import liveness_demo

    video = shared_data / "videos" / "subject02" / "fake.mp4"
    frames = {}
    for shown in (False, True):
        out = tmp_path / f"explain_{shown}.mp4"
        liveness_demo.run(input=video, model=lbp_model, output=out, display=False, max_frames=6, explain=shown)
        cap = cv2.VideoCapture(str(out))
        ok, frame = cap.read()
        cap.release()
        assert ok
        frames[shown] = frame.astype(int)
    corner = (slice(0, 100), slice(-100, None))
    assert np.abs(frames[True][corner] - frames[False][corner]).mean() > 10  # the inset is there
    rest = (slice(200, None), slice(0, -200))
    assert np.abs(frames[True][rest] - frames[False][rest]).mean() < 2  # and only there (codec noise aside)
