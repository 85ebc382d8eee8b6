"""liveness.dataset: finding crops, knowing their source and group, honest splits."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest

from liveness.crops import crop_name
from liveness.crossval import loso_groups
from liveness.dataset import Sample, check_classes, find_samples, read_images, split_samples
from liveness.errors import DataError


def touch(path: Path, data: bytes = b"") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def write_png(path: Path, bgr=(0, 0, 255), size=(40, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.zeros((size[1], size[0], 3), np.uint8)
    img[:] = bgr
    assert cv2.imwrite(str(path), img)
    return path


def synthetic_samples(seed: int = 0) -> list[Sample]:
    """Uneven groups: 12 subjects, 1..25 frames per video, some with one class only."""
    rng = np.random.default_rng(seed)
    out = []
    for g in range(12):
        labels = ["real", "fake"] if g % 3 else (["real"] if g % 2 else ["fake"])
        for label in labels:
            source = f"subj{g}_{label}"
            for f in range(int(rng.integers(1, 26))):
                out.append(Sample(Path(f"/x/{label}/{source}_{f}.png"), label, source, f"subj{g}", f))
    return out


# --- find_samples ----------------------------------------------------------------------


def test_label_folder_layout_ignores_non_images(tmp_path):
    root = tmp_path / "ds"
    for i in range(3):
        touch(root / "real" / f"{i}.png")
        touch(root / "fake" / f"{i}.jpg")
    touch(root / "real" / "notes.txt", b"hello")
    touch(root / "fake" / ".DS_Store", b"\0\0")
    touch(root / "fake" / "clip.mp4", b"\0")
    touch(root / "README.md", b"# data")
    (root / "real" / "dir.png").mkdir()  # a folder with an image's name is not an image
    samples = find_samples([root])
    assert Counter(s.label for s in samples) == {"real": 3, "fake": 3}
    assert all(s.path.suffix in (".png", ".jpg") and s.path.is_file() for s in samples)
    # not a gather_examples name: the source (and, without a pattern, the group) is its folder
    assert {s.source for s in samples} == {"ds/real", "ds/fake"}
    assert all(s.group == s.source for s in samples)


def test_natural_frame_order_for_plain_names(tmp_path):
    root = tmp_path / "ds"
    for name in ("10.png", "2.png", "1.png"):
        touch(root / "real" / name)
    frames = {s.path.name: s.frame for s in find_samples([root])}
    assert frames == {"1.png": 0, "2.png": 1, "10.png": 2}


def test_subject_label_layout_like_the_shared_crops(tmp_path):
    """crops/<subject>/<label>/: no first-level 'real', so real/fake are found deeper."""
    root = tmp_path / "crops"
    for subject in ("subject07", "subject08"):
        for label in ("real", "fake"):
            for i in range(2):
                touch(root / subject / label / f"{i}.png")
    samples = find_samples([root])
    assert len(samples) == 8
    assert all(s.label == s.path.parent.name for s in samples)
    assert {s.source for s in samples} == {f"crops/subject0{k}/{lab}" for k in (7, 8) for lab in ("real", "fake")}
    grouped = find_samples([root], group_pattern=r"subject\d+")
    assert {s.group for s in grouped} == {"subject07", "subject08"}
    assert all(s.group == s.path.parent.parent.name for s in grouped)


def test_explicit_classes_pick_those_folders(tmp_path):
    root = tmp_path / "ds"
    for label in ("live", "spoof", "other"):
        touch(root / "s1" / label / "0.png")
    samples = find_samples([root], classes=["live", "spoof"])
    assert sorted(s.label for s in samples) == ["live", "spoof"]


def test_gather_crop_names_map_to_their_source(tmp_path):
    root = tmp_path / "ds"
    key_a, key_b = "subj1_real_0000abcd", "subj2_fake_deadbeef"
    for f in (3, 7, 12):
        touch(root / "real" / crop_name(key_a, f))
    touch(root / "real" / crop_name(key_a, 7, face=1))  # a second face in frame 7
    for f in (0, 1):
        touch(root / "fake" / crop_name(key_b, f))
    samples = find_samples([root])
    by_source = {}
    for s in samples:
        by_source.setdefault(s.source, []).append(s)
    assert set(by_source) == {key_a, key_b}
    assert sorted(s.frame for s in by_source[key_a]) == [3, 7, 7, 12]  # the frame comes from the name
    assert all(s.label == "real" for s in by_source[key_a])
    assert all(s.group == key_a for s in by_source[key_a])


def test_group_pattern_sets_the_group(tmp_path):
    root = tmp_path / "ds"
    for k in (1, 2):
        for label in ("real", "fake"):
            touch(root / label / crop_name(f"subject{k}_{label}_{k:08x}", 0))
    samples = find_samples([root], group_pattern=r"subject\d+")
    assert {(s.group, s.source) for s in samples} == {
        (f"subject{k}", f"subject{k}_{label}_{k:08x}") for k in (1, 2) for label in ("real", "fake")
    }
    # a pattern that does not match leaves the group at the source
    assert all(s.group == s.source for s in find_samples([root], group_pattern=r"person\d+"))


def test_bad_group_pattern_is_a_data_error(tmp_path):
    touch(tmp_path / "ds" / "real" / "0.png")
    with pytest.raises(DataError, match="group pattern .* is not a valid regular expression"):
        find_samples([tmp_path / "ds"], group_pattern="subject(\\d+")


def test_missing_dataset_folder_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        find_samples([tmp_path / "nope"])


# --- check_classes ---------------------------------------------------------------------


def _samples(**counts):
    return [Sample(Path(f"{label}/{i}.png"), label, label, label, i) for label, n in counts.items() for i in range(n)]


def test_check_classes_accepts_two_classes():
    assert check_classes(_samples(real=3, fake=5)) == ["fake", "real"]


@pytest.mark.parametrize(
    "samples, message",
    [
        ([], "no images"),
        (_samples(real=10), "one class only"),
        (_samples(attack=5, fake=5), "no 'real' class"),
        (_samples(real=10, fake=2), r"too few images to split in class fake \(2\)"),
    ],
    ids=["empty", "single-class", "no-live-class", "too-few"],
)
def test_check_classes_refuses(samples, message):
    with pytest.raises(DataError, match=message):
        check_classes(samples)


# --- read_images -----------------------------------------------------------------------


def test_read_images_skips_and_counts_corrupt_files(tmp_path, caplog):
    good = [write_png(tmp_path / f"good{i}.png", bgr=(255, 0, 0)) for i in range(3)]
    bad = [touch(tmp_path / "empty.png"), touch(tmp_path / "garbage.png", b"\x89PNG\r\n\x1a\n" + b"junk" * 50)]
    samples = [Sample(p, "real", "s", "s", i) for i, p in enumerate(good + bad)]
    with caplog.at_level(logging.WARNING, logger="liveness"):
        faces, kept = read_images(samples)
    assert [s.path for s in kept] == good
    # BGR as stored, at the stored size: resizing is the scorers' business
    assert len(faces) == 3 and all(f.shape == (30, 40, 3) and f.dtype == np.uint8 for f in faces)
    assert all((f[..., 0] == 255).all() and (f[..., 2] == 0).all() for f in faces)
    assert any("skipped 2 unreadable" in r.getMessage() for r in caplog.records)


def test_read_images_with_nothing_readable_is_a_data_error(tmp_path):
    samples = [Sample(touch(tmp_path / f"{i}.png", b"not a png"), "real", "s", "s", i) for i in range(2)]
    with pytest.raises(DataError, match="no readable images"):
        read_images(samples)
    faces, kept = read_images(samples, allow_empty=True)  # evaluate.py reads in batches
    assert faces == [] and kept == []


# --- splits ----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(8))
def test_group_split_never_puts_a_group_on_both_sides(seed):
    samples = synthetic_samples(seed)
    splits, how = split_samples(samples, "group", test_frac=0.2, val_frac=0.2, seed=seed)
    assert how.startswith("by group")
    groups = {k: {s.group for s in v} for k, v in splits.items()}
    assert not groups["train"] & groups["val"]
    assert not groups["train"] & groups["test"]
    assert not groups["val"] & groups["test"]
    # every sample lands in exactly one split, and every split holds both classes
    assert sorted(s.path for v in splits.values() for s in v) == sorted(s.path for s in samples)
    for v in splits.values():
        assert {s.label for s in v} == {"real", "fake"}


def test_group_split_depends_on_the_seed_only():
    samples = synthetic_samples(3)
    a, _ = split_samples(samples, "group", seed=5)
    b, _ = split_samples(samples, "group", seed=5)
    assert a == b


def test_group_split_falls_back_to_time_split_with_one_source_per_class(caplog):
    samples = [
        Sample(Path(f"/x/{label}/{f}.png"), label, f"{label}_video", f"{label}_video", f)
        for label in ("real", "fake") for f in range(10)
    ]
    with caplog.at_level(logging.WARNING, logger="liveness"):
        splits, how = split_samples(samples, "group", test_frac=0.2, val_frac=0.2, seed=0)
    assert how.startswith("by time")
    assert any("by time" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)
    for source in ("real_video", "fake_video"):
        frames = {k: sorted(s.frame for s in v if s.source == source) for k, v in splits.items()}
        assert frames == {"train": list(range(6)), "val": [6, 7], "test": [8, 9]}  # last frames are test


def test_time_split_holds_out_the_end_of_every_source():
    samples = [
        Sample(Path(f"/x/{src}/{f}.png"), "real" if src.startswith("r") else "fake", src, "g", f)
        for src in ("r1", "r2", "f1") for f in range(20)
    ]
    splits, _ = split_samples(samples, "time", test_frac=0.25, val_frac=0.25, seed=0)
    for src in ("r1", "r2", "f1"):
        test = [s.frame for s in splits["test"] if s.source == src]
        train = [s.frame for s in splits["train"] if s.source == src]
        assert sorted(test) == list(range(15, 20))
        assert max(train) < min(test)


def test_random_split_warns_that_it_leaks(caplog):
    samples = synthetic_samples(1)
    with caplog.at_level(logging.WARNING, logger="liveness"):
        splits, how = split_samples(samples, "random", test_frac=0.2, val_frac=0.2, seed=0)
    assert "leaks" in how
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("--split random" in m and "both sides" in m for m in warnings)
    assert sum(len(v) for v in splits.values()) == len(samples)
    assert len(splits["test"]) == round(0.2 * len(samples))


def test_unknown_split_mode_is_a_value_error():
    with pytest.raises(ValueError, match="split must be one of"):
        split_samples(synthetic_samples(0), "kfold")


def test_loso_holds_out_only_groups_with_both_classes():
    samples = synthetic_samples(2)
    both = {g for g in {s.group for s in samples} if {s.label for s in samples if s.group == g} == {"real", "fake"}}
    assert loso_groups(samples) == sorted(both)  # one-class groups are never a test set
    assert len(both) < len({s.group for s in samples})


# --- datasets assembled from symlinks ---------------------------------------------------


def test_symlinked_class_folders_are_found_and_train(tmp_path):
    """real/ and fake/ are links to folders elsewhere (as users assemble datasets)."""
    import train

    elsewhere = tmp_path / "elsewhere"
    rng = np.random.default_rng(0)
    for label in ("real", "fake"):
        for subject in range(4):
            for i in range(4):
                img = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
                if label == "fake":  # a different texture, so the classes are learnable
                    img = cv2.GaussianBlur(img, (7, 7), 3)
                path = elsewhere / f"{label}_store" / f"subject{subject}" / f"{i}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                assert cv2.imwrite(str(path), img)
    root = tmp_path / "ds"
    root.mkdir()
    for label in ("real", "fake"):
        (root / label).symlink_to(elsewhere / f"{label}_store", target_is_directory=True)
    samples = find_samples([root], group_pattern=r"subject\d+")
    assert Counter(s.label for s in samples) == {"real": 16, "fake": 16}
    assert {s.group for s in samples} == {f"subject{k}" for k in range(4)}
    model = tmp_path / "model"
    manifest = train.run(dataset=[root], model=model, group_pattern=r"subject\d+", seed=0, folds=2, test_frac=0.25)
    assert manifest["scorer"] == "lbp" and manifest["data"]["images"] == {"real": 16, "fake": 16}
    assert (model / "manifest.json").is_file() and (model / "lbp.npz").is_file()
