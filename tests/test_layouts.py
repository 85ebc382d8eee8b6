"""Public dataset layouts (liveness/layouts.py): tiny replicas built here are recognised,
labelled, grouped by subject, cropped by their boxes, and their attack types reach the reports."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from liveness.dataset import crop_scaled_box, read_images, split_samples
from liveness.layouts import (
    detect_layout, find_layout_samples, limit_per_group, official_split, video_attack_type, video_label,
)


def _image(seed: int, live: bool, size: int = 48) -> np.ndarray:
    """A textured patch; attacks are smoother and bluer, so a scorer can tell them apart."""
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    if not live:
        img = cv2.GaussianBlur(img, (7, 7), 0)
        img[..., 0] = np.minimum(255, img[..., 0].astype(int) + 60)
    return img


def _write(path: Path, img: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), img)
    return path


def make_nuaa(root: Path, subjects=4, per=3) -> Path:
    for s in range(1, subjects + 1):
        for i in range(per):
            _write(root / "ClientFace" / f"{s:04d}" / f"{s:04d}_00_00_01_{i}.jpg", _image(100 * s + i, True))
            _write(root / "ImposterFace" / f"{s:04d}" / f"{s:04d}_00_00_01_{i}.jpg", _image(200 * s + i, False))
    return root


def make_lcc(root: Path, per=6) -> Path:
    for part in ("LCC_FASD_training", "LCC_FASD_evaluation"):
        for i in range(per):
            _write(root / part / "real" / f"real_{part[-4:]}_{i}.png", _image(i, True))
            _write(root / part / "spoof" / f"spoof_{part[-4:]}_{i}.png", _image(50 + i, False))
    return root


CELEBA_BOX = (56, 56, 112, 112)  # the centre half of the 224-scaled photo


def make_celeba(root: Path, subjects=4, per=2, types=(1, 8)) -> Path:
    labels = {"train": {}, "test": {}}
    for s in range(subjects):
        part = "train" if s < subjects - 1 else "test"
        for cls in ("live", "spoof"):
            for i in range(per):
                photo = np.zeros((120, 100, 3), np.uint8)  # not square: the box scales per axis
                photo[30:90, 25:75] = _image(10 * s + i, cls == "live", 60)[:, :50]
                path = _write(root / "Data" / part / str(1000 + s) / cls / f"{s}{i}{cls[0]}.jpg", photo)
                path.with_name(f"{path.stem}_BB.txt").write_text(" ".join(map(str, CELEBA_BOX)) + " 0.99\n")
                code = 0 if cls == "live" else types[i % len(types)]
                values = [0] * 40 + [code, 0, 0, int(cls == "spoof")]
                labels[part][path.relative_to(root).as_posix()] = values
    (root / "metas" / "intra_test").mkdir(parents=True)
    for part, table in labels.items():
        (root / "metas" / "intra_test" / f"{part}_label.json").write_text(json.dumps(table))
    return root


def test_nuaa_is_recognised_labelled_and_split_by_subject(tmp_path):
    root = make_nuaa(tmp_path / "NUAA")
    assert detect_layout(root) == "nuaa"
    samples = find_layout_samples([root])
    assert {s.label for s in samples} == {"real", "fake"}
    assert {s.group for s in samples} == {f"nuaa/{s:04d}" for s in range(1, 5)}
    assert {s.attack_type for s in samples if s.label == "fake"} == {"photo"}
    splits, how = split_samples(samples, "group", test_frac=0.25, val_frac=0.25, seed=0)
    sides = [{s.group for s in part} for part in splits.values()]
    assert not (sides[0] & sides[1] or sides[0] & sides[2] or sides[1] & sides[2]), how


def test_lcc_fasd_is_recognised_and_its_parts_are_the_official_split(tmp_path):
    root = make_lcc(tmp_path / "LCC")
    assert detect_layout(root) == "lcc-fasd"
    samples = find_layout_samples([root])
    assert {s.label for s in samples} == {"real", "fake"}  # real / spoof mapped
    splits, _ = official_split(samples)
    assert all("training" in str(s.path) for s in splits["train"])
    assert all("evaluation" in str(s.path) for s in splits["test"])


def test_celeba_spoof_boxes_types_and_official_lists(tmp_path):
    root = make_celeba(tmp_path / "CelebA_Spoof")
    assert detect_layout(root) == "celeba-spoof"
    samples = find_layout_samples([root])
    assert {s.group for s in samples} == {"1000", "1001", "1002", "1003"}
    assert {s.attack_type for s in samples if s.label == "fake"} == {"photo", "pad"}  # from the label files
    splits, _ = official_split(samples)
    assert {s.group for s in splits["test"]} == {"1003"}
    faces, kept = read_images(samples[:1])
    assert faces[0].shape[:2] == (60, 50)  # the box, scaled from 224 to 120x100
    padded = find_layout_samples([root], padding=0.25)
    assert read_images(padded[:1])[0][0].shape[:2] == (90, 75)


def test_crop_scaled_box_clamps_to_the_image():
    img = np.zeros((100, 200, 3), np.uint8)
    assert crop_scaled_box(img, (-50, 0, 112, 300)).shape[:2] == (100, 55)  # x to 62 of 224 -> 55 of 200 px


def test_project_folders_still_read_as_before(tmp_path):
    for sub in ("subject01", "subject02"):
        for cls in ("real", "fake"):
            for i in range(2):
                _write(tmp_path / "crops" / sub / cls / f"{i}.png", _image(i, cls == "real"))
    assert detect_layout(tmp_path / "crops") == "folders"
    samples = find_layout_samples([tmp_path / "crops"], group_pattern=r"subject\d+")
    assert {s.group for s in samples} == {"subject01", "subject02"}
    assert {s.attack_type for s in samples if s.label == "fake"} == {"fake"}


def test_max_per_group_keeps_n_of_each_class_per_group(tmp_path):
    samples = find_layout_samples([make_nuaa(tmp_path / "NUAA", per=5)])
    kept = limit_per_group(samples, 2)
    assert len(kept) == 4 * 2 * 2


def test_video_names_give_class_and_attack_type(tmp_path):
    root = tmp_path / "replay"
    assert video_label(root / "client001" / "attack_highdef_print_client001.mov", root) == "fake"
    assert video_attack_type(root / "client001" / "attack_highdef_print_client001.mov", root) == "highdef_print"
    assert video_label(root / "train" / "real" / "client001_session01.mov", root) == "real"
    assert video_attack_type(root / "attack" / "hand" / "client001_x.mov", root) == "hand"


def test_video_layout_is_cut_once_and_cached(tmp_path, monkeypatch):
    from liveness import detector as det
    from liveness.synthetic import make_sample_videos

    root = tmp_path / "videos"
    for subject in ("client01", "client02"):
        paths = make_sample_videos(root / subject, seconds=0.7, fps=10, size=(320, 240), seed=len(subject))
        paths["fake"].rename(paths["fake"].with_name(f"attack_replay_{subject}.mp4"))
    assert detect_layout(root) == "videos"
    cache = tmp_path / "cache"
    samples = find_layout_samples([root], cache_dir=cache)
    assert {s.group for s in samples} == {"client01", "client02"}
    assert {s.label for s in samples} == {"real", "fake"}
    assert {s.attack_type for s in samples if s.label == "fake"} == {"replay"}

    def no_detector(*a, **k):
        raise AssertionError("the cached crops should have been reused")

    monkeypatch.setattr(det, "FaceDetector", no_detector)
    again = find_layout_samples([root], cache_dir=cache)
    assert [s.path for s in again] == [s.path for s in samples]


def test_attack_types_reach_train_reports(tmp_path):
    import train

    root = make_nuaa(tmp_path / "NUAA", subjects=5, per=4)
    folder = tmp_path / "model"
    train.run(dataset=[root], model=folder, seed=0, folds=2, cache_dir=tmp_path / "cache", workers=1)
    metrics = json.loads((folder / "metrics.json").read_text())
    assert set(metrics["apcer_per_attack_type"]) == {"photo"}
    assert metrics["apcer_per_attack_type"]["photo"]["n"] == metrics["test"]["n_attack"]
    rows = list(csv.reader((folder / "predictions.csv").open()))
    assert rows[0] == ["path", "group", "source", "label", "score_live", "decision", "attack_type"]
    assert {r[-1] for r in rows[1:] if r[3] == "fake"} == {"photo"}


def test_unknown_layout_is_refused(tmp_path):
    with pytest.raises(ValueError):
        find_layout_samples([tmp_path], "kinetics")


def test_evaluate_reads_a_public_layout_and_reports_its_attack_types(tmp_path):
    import evaluate
    import train

    folder = tmp_path / "model"
    train.run(dataset=[make_nuaa(tmp_path / "NUAA", subjects=5, per=4)], model=folder, seed=0, folds=2,
              cache_dir=tmp_path / "cache", workers=1)
    out = tmp_path / "eval"
    metrics = evaluate.run(model=folder, dataset=[make_celeba(tmp_path / "CelebA")], output=out)
    assert set(metrics["apcer_per_attack_type"]) == {"photo", "pad"}
    rows = list(csv.reader(Path(f"{out}_predictions.csv").open()))
    assert rows[0][-1] == "attack_type" and {r[-1] for r in rows[1:] if r[3] == "fake"} == {"photo", "pad"}
