"""Exports (liveness/export.py, liveness/lbp_reference.py): each scores the shared crops
as the original does, records labels and threshold, and runs without TensorFlow."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import cv2
import numpy as np
import pytest

from liveness import ROOT, export

FLOAT_TOLERANCE = 1e-4
# int8 weights and activations move the live probability by a few hundredths on
# average, up to about 0.06 on the model below (README, "Explain and export").
INT8_TOLERANCE = 0.1
INFO = {"labels": ["fake", "real"], "live_label": "real", "threshold": 0.37}
INPUT_SIZE = 32
CROPS_PER_SET = 8  # crops per (subject, class) folder: 18 set-ups, both classes
REFERENCE_STEP = 4  # the plain-NumPy LBP scorer takes tens of ms a face: every 4th crop


def _shared_crops(shared_data, per_folder: int = CROPS_PER_SET) -> tuple[list, list[np.ndarray], np.ndarray]:
    paths, labels = [], []
    for folder in sorted((shared_data / "crops").glob("*/*")):
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
        step = max(1, len(files) // per_folder)
        for p in files[::step][:per_folder]:
            paths.append(p)
            labels.append(int(folder.name == "real"))
    return paths, [cv2.imread(str(p)) for p in paths], np.array(labels)


@pytest.fixture(scope="module")
def crops(shared_data):
    return _shared_crops(shared_data)


@pytest.fixture(scope="module")
def cnn(crops):
    return spread_cnn(crops)


def spread_cnn(crops):
    """LivenessNet trained for a few epochs on the shared crops, its scores spread over 0..1."""
    from liveness.cli import import_tensorflow
    from liveness.runtime import prepare_faces
    from liveness.nets import build_model

    import_tensorflow()
    import keras

    keras.utils.set_random_seed(0)
    _, faces, labels = crops
    x = prepare_faces(faces, INPUT_SIZE).astype(np.float32)
    model = build_model("livenessnet", input_size=INPUT_SIZE)
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    model.fit(x, labels, epochs=3, batch_size=32, verbose=0)
    # So briefly trained, it scores every crop 0.9-1.0 live. Rescale its last layer so
    # the live-minus-attack logit has median 0 and spread 2 over these crops: scores then
    # span 0..1, where an export's disagreement would change decisions.
    last = model.get_layer("probabilities")
    hidden = keras.Model(model.inputs[0], last.input)(x, training=False).numpy()
    kernel, bias = last.get_weights()
    margin = hidden @ (kernel[:, 1] - kernel[:, 0]) + (bias[1] - bias[0])
    gain = 2.0 / margin.std()
    bias = bias * gain
    bias[1] -= gain * np.median(margin)
    last.set_weights([kernel * gain, bias])
    return model


def _keras_scores(model, faces) -> np.ndarray:
    from liveness.runtime import prepare_faces

    return model(prepare_faces(faces, INPUT_SIZE).astype(np.float32), training=False).numpy()[:, 1].astype(np.float64)


@pytest.fixture(scope="module")
def exports(cnn, crops, tmp_path_factory):
    """{kind: path} of every export of the one model, written once for the module."""
    from liveness.runtime import prepare_faces
    from liveness.lbp import LBPClassifier

    out = tmp_path_factory.mktemp("exports")
    _, faces, labels = crops
    lbp = LBPClassifier().fit(faces, labels)
    return {
        "onnx": export.export_onnx(cnn, out / "model.onnx", **INFO),
        "tflite": export.export_tflite(cnn, out / "model.tflite", **INFO),
        "int8": export.export_tflite(
            cnn, out / "model_int8.tflite", **INFO, representative=prepare_faces(faces[::2], INPUT_SIZE)
        ),
        "lbp-json": export.export_lbp_json(lbp, out / "lbp.json", **INFO),
        "lbp": lbp,
    }


@pytest.mark.shared_data
@pytest.mark.parametrize("kind, tolerance", [("onnx", FLOAT_TOLERANCE), ("tflite", FLOAT_TOLERANCE), ("int8", INT8_TOLERANCE)])
def test_cnn_export_scores_as_keras(cnn, crops, exports, kind, tolerance):
    _, faces, _ = crops
    scorer = export.ExportedScorer(exports[kind])
    expected = _keras_scores(cnn, faces)
    assert expected.std() > 0.2  # scores spread over 0..1: the agreement means something
    got = scorer.score(faces)
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() <= tolerance
    assert scorer.score(faces[:1]) == pytest.approx(got[:1], abs=tolerance)  # batch size 1 too
    assert (scorer.labels, scorer.live_label, scorer.threshold) == (INFO["labels"], "real", INFO["threshold"])
    assert scorer.decide([0.9, 0.1]) == ["real", "fake"]


@pytest.mark.shared_data
def test_int8_is_smaller(exports):
    assert exports["int8"].stat().st_size < 0.4 * exports["tflite"].stat().st_size
    assert export.read_metadata(exports["int8"])["quantization"] == "int8"


@pytest.mark.shared_data
def test_lbp_json_scores_as_the_classifier(crops, exports):
    from liveness.lbp import feature_length
    from liveness.lbp_reference import ReferenceScorer

    faces = crops[1][::REFERENCE_STEP]
    doc = json.loads(exports["lbp-json"].read_text())
    assert doc["threshold"] == INFO["threshold"] and doc["labels"] == INFO["labels"]
    assert doc["features"]["length"] == len(doc["coef"]) == feature_length(
        exports["lbp"].points, exports["lbp"].radii, exports["lbp"].moments, exports["lbp"].channels
    )
    assert doc["features"]["resize"] == ("area" if exports["lbp"].area else "bilinear")
    got = ReferenceScorer(exports["lbp-json"]).score(faces)
    assert np.abs(got - exports["lbp"].score_live(faces)).max() <= FLOAT_TOLERANCE


def test_lbp_reference_features_are_the_classifiers(face_image):
    """The LBP histograms bit for bit, also for eight points (samples between pixels) and
    all six channels; the colour moments to float32 rounding (sums in another order)."""
    from liveness import lbp_reference
    from liveness.lbp import CLASSIC_SETTINGS, DEFAULT_SETTINGS, lbp_features_batch
    from liveness.lbp_kernel import _MOMENT_STEP

    faces = [face_image[40:260, 150:330], face_image[:90, :120], np.full((50, 50, 3), 77, np.uint8)]
    for s in (DEFAULT_SETTINGS, CLASSIC_SETTINGS):
        recipe = {"size": s.size, "points": s.points, "radii": list(s.radii), "channels": list(s.channels),
                  "moments": s.moments, "moment_step": _MOMENT_STEP, "resize": "area" if s.area else "bilinear"}
        expected = lbp_features_batch(faces, size=s.size, points=s.points, radii=s.radii, channels=s.channels,
                                      moments=s.moments, area=s.area)
        got = np.stack([lbp_reference.features(f, recipe) for f in faces])
        n_lbp = len(s.channels) * len(s.radii) * (s.points + 2)
        assert np.array_equal(got[:, :n_lbp], expected[:, :n_lbp])
        assert np.allclose(got[:, n_lbp:], expected[:, n_lbp:], rtol=1e-6, atol=1e-7)


def test_lbp_json_refuses_what_it_cannot_describe(tmp_path):
    from liveness import lbp_reference
    from liveness.lbp import LBPClassifier

    with pytest.raises(ValueError, match="not fitted"):
        export.export_lbp_json(LBPClassifier(), tmp_path / "x.json", **INFO)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": "something else"}))
    with pytest.raises(ValueError, match="not a liveness-lbp/1 file"):
        lbp_reference.load(bad)
    with pytest.raises(ValueError, match="live label"):
        export.export_info(labels=["a", "b"], live_label="real", threshold=0.5)


@pytest.mark.slow
@pytest.mark.shared_data
def test_exports_run_in_a_fresh_process_without_tensorflow(cnn, crops, exports):
    paths, faces = crops[0][::REFERENCE_STEP], crops[1][::REFERENCE_STEP]
    code = textwrap.dedent(
        """
        import json, sys
        import cv2
        from liveness.export import ExportedScorer
        exports, crops = json.loads(sys.argv[1]), json.loads(sys.argv[2])
        faces = [cv2.imread(p) for p in crops]
        scores = {k: ExportedScorer(p).score(faces).tolist() for k, p in exports.items()}
        heavy = [m for m in ("tensorflow", "keras") if m in sys.modules]
        print(json.dumps({"scores": scores, "heavy": heavy}))
        """
    )
    files = {k: str(exports[k]) for k in ("onnx", "tflite", "int8", "lbp-json")}
    proc = subprocess.run(
        [sys.executable, "-c", code, json.dumps(files), json.dumps([str(p) for p in paths])],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["heavy"] == []
    keras_scores = _keras_scores(cnn, faces)
    for kind, tolerance in (("onnx", FLOAT_TOLERANCE), ("tflite", FLOAT_TOLERANCE), ("int8", INT8_TOLERANCE)):
        assert np.abs(np.array(result["scores"][kind]) - keras_scores).max() <= tolerance, kind
    assert np.abs(np.array(result["scores"]["lbp-json"]) - exports["lbp"].score_live(faces)).max() <= FLOAT_TOLERANCE


# --- export.py, the script (a stand-in for the model folder) ---------------------


@pytest.mark.shared_data
def test_export_script_writes_and_checks_each_format(cnn, exports, tmp_path, shared_data, caplog):
    import export as script
    from model_folders import write_folder

    model = write_folder(tmp_path / "fused", cnn=cnn, lbp=exports["lbp"], threshold=0.42, padding=0.1)
    caplog.set_level("INFO", logger="liveness")
    onnx = script.run(model=model, format="onnx", output=tmp_path / "m.onnx")
    assert export.read_metadata(onnx)["threshold"] == 0.42 and export.read_metadata(onnx)["padding"] == 0.1
    lbp = script.run(model=model, format="lbp-json", output=tmp_path / "m.json", representative=shared_data / "crops" / "subject09")
    assert export.read_metadata(lbp)["scorer"] == "fusion"
    checks = [r.getMessage() for r in caplog.records if "differ from the original's" in r.getMessage()]
    assert len(checks) == 2 and "noise images" in checks[0] and "16 crops" in checks[1]
    assert any("fused" in r.getMessage() for r in caplog.records)


def test_export_script_refuses_bad_requests(tmp_path):
    import export as script
    from liveness.cli import UserError
    from liveness.lbp import LBPClassifier
    from model_folders import write_folder

    rng = np.random.default_rng(0)
    faces = [rng.integers(0, 256, (40, 40, 3), dtype=np.uint8) for _ in range(6)]
    model = write_folder(tmp_path / "lbp", lbp=LBPClassifier().fit(faces, np.array([0, 1] * 3)))
    with pytest.raises(UserError, match=r"must end in \.tflite"):
        script.run(model=model, format="tflite", output=tmp_path / "m.onnx")
    with pytest.raises(UserError, match="--int8 needs --representative"):
        script.run(model=model, format="tflite", output=tmp_path / "m.tflite", int8=True)
    with pytest.raises(UserError, match="--int8 applies to --format tflite"):
        script.run(model=model, format="onnx", output=tmp_path / "m.onnx", int8=True)
    with pytest.raises(UserError, match="has no CNN"):
        script.run(model=model, format="onnx", output=tmp_path / "m.onnx")


def test_export_script_prints_one_error_line(tmp_path):
    proc = subprocess.run(
        [sys.executable, "export.py", "--format", "onnx", "--output", str(tmp_path / "x.txt")],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["[ERROR] --output of --format onnx must end in .onnx, got x.txt"]


def test_a_broken_export_is_one_error(tmp_path):
    from liveness.errors import ModelError

    for name in ("x.onnx", "x.tflite", "x.json"):
        (tmp_path / name).write_bytes(b"not a model")
        with pytest.raises(ModelError, match=f"cannot load export .*{name}"):
            export.ExportedScorer(tmp_path / name)
    assert export.is_export(tmp_path / "x.onnx") and not export.is_export(tmp_path)  # two exports: ambiguous


@pytest.mark.slow
@pytest.mark.shared_data
@pytest.mark.parametrize("kind", ["onnx", "lbp-json"])
def test_the_demo_runs_an_export(exports, shared_data, kind, tmp_path):
    """liveness_demo.py --model FILE: a user checks an export before shipping it.
    (The demo still imports its own modules; only the scorer is the export's.)"""
    import shutil

    folder = tmp_path / "shipped"  # a folder holding one export works too
    folder.mkdir()
    shutil.copy(exports[kind], folder)
    model = folder if kind == "onnx" else exports[kind]
    proc = subprocess.run(
        [sys.executable, "liveness_demo.py", "--model", str(model), "--input", str(shared_data / "videos" / "subject02" / "fake.mp4"),
         "--max-frames", "3", "--no-display", "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    frames = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert len(frames) == 3 and any(f["faces"] for f in frames)
    assert {face["label"] for f in frames for face in f["faces"]} <= {"real", "fake"}
    assert f"{kind} export" in proc.stderr
