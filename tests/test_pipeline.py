"""Pipeline: which faces are scored on which frame, and what carrying a score changes.

A face whose last computed live score lies far from the threshold keeps it for
score_every - 1 frames; new faces and faces near the threshold are scored every frame.
The unit tests script the detector and the model; the shared-data test compares the
demo's defaults with the detector and the model on every face of every frame.
"""

from __future__ import annotations

import numpy as np
import pytest

from liveness.detector import Face
from liveness.pipeline import DEFAULT_SCORE_MARGIN, Pipeline

THRESHOLD = 0.5


class ScriptedDetector:
    """The same faces on every frame (boxes by frame index when given a list of lists)."""

    def __init__(self, boxes) -> None:
        self.boxes = boxes
        self.calls = 0

    def detect(self, frame):
        self.calls += 1
        return [Face(tuple(b), 0.9) for b in self.boxes]


class ScriptedModel:
    """Live score of a crop = its mean pixel value / 255; counts the crops it scored."""

    padding = 0.0
    threshold = THRESHOLD
    live_label, labels = "real", ["fake", "real"]

    def __init__(self) -> None:
        self.scored: list[int] = []  # crops per call

    def score(self, faces):
        self.scored.append(len(faces))
        return np.array([float(f.mean()) / 255 for f in faces])

    def decide(self, scores):
        return ["real" if s >= self.threshold else "fake" for s in scores]


def frame_with(values: dict[tuple[int, int, int, int], int]) -> np.ndarray:
    frame = np.zeros((120, 240, 3), np.uint8)
    for (x1, y1, x2, y2), v in values.items():
        frame[y1:y2, x1:x2] = v
    return frame


LEFT, RIGHT = (10, 10, 60, 60), (150, 10, 200, 60)


def run_frames(pipe: Pipeline, frames: list[np.ndarray]) -> list[list]:
    return [pipe.process(f) for f in frames]


def test_every_face_on_every_frame_with_score_every_one():
    model = ScriptedModel()
    pipe = Pipeline(model, ScriptedDetector([LEFT]), detect_every=1, score_every=1)
    out = run_frames(pipe, [frame_with({LEFT: 250})] * 5)
    assert model.scored == [1] * 5 and all(r[0].scored for r in out)
    assert pipe.faces_scored == pipe.face_frames == 5


def test_a_face_far_from_the_threshold_is_scored_every_other_frame_and_keeps_its_score():
    model = ScriptedModel()
    pipe = Pipeline(model, ScriptedDetector([LEFT]), detect_every=1, score_every=2)
    # The face brightens after frame 1: a carried frame still shows the last computed score.
    frames = [frame_with({LEFT: v}) for v in (250, 240, 230, 220, 210)]
    out = run_frames(pipe, frames)
    assert [r[0].scored for r in out] == [True, False, True, False, True]
    raw = [r[0].raw_score for r in out]
    np.testing.assert_allclose(raw, [250 / 255, 250 / 255, 230 / 255, 230 / 255, 210 / 255])
    assert (pipe.faces_scored, pipe.face_frames) == (3, 5) and sum(model.scored) == 3
    assert len({r[0].track_id for r in out}) == 1


def test_a_face_near_the_threshold_is_scored_on_every_frame():
    model = ScriptedModel()
    pipe = Pipeline(model, ScriptedDetector([LEFT]), detect_every=1, score_every=3)
    near = int(255 * (THRESHOLD + DEFAULT_SCORE_MARGIN / 2))  # inside the margin
    out = run_frames(pipe, [frame_with({LEFT: near})] * 4)
    assert all(r[0].scored for r in out) and model.scored == [1] * 4


def test_a_new_face_is_scored_at_once_while_another_carries_its_score():
    model = ScriptedModel()
    detector = ScriptedDetector([LEFT])
    pipe = Pipeline(model, detector, detect_every=1, score_every=4)
    pipe.process(frame_with({LEFT: 250}))  # LEFT scored, far from the threshold
    detector.boxes = [LEFT, RIGHT]
    out = pipe.process(frame_with({LEFT: 250, RIGHT: 10}))
    by_box = {r.box: r for r in out}
    assert not by_box[LEFT].scored and by_box[RIGHT].scored
    assert model.scored == [1, 1]  # one batch per frame, holding only the faces scored
    np.testing.assert_allclose(by_box[RIGHT].raw_score, 10 / 255)
    # score_every = 4: LEFT carries for three frames, then is scored again.
    flags = [{r.box: r.scored for r in pipe.process(frame_with({LEFT: 250, RIGHT: 10}))}[LEFT] for _ in range(3)]
    assert flags == [False, False, True]


def test_a_carried_score_is_in_the_json_line():
    model = ScriptedModel()
    pipe = Pipeline(model, ScriptedDetector([LEFT]), detect_every=1, score_every=2)
    first, second = (pipe.process(frame_with({LEFT: 250}))[0].as_json() for _ in range(2))
    assert first["scored"] is True and second["scored"] is False
    assert first["raw_score"] == second["raw_score"]


@pytest.mark.parametrize("bad", [{"score_every": 0}, {"score_every": -2}, {"score_margin": -0.1}, {"score_margin": float("nan")}])
def test_bad_schedule_arguments(bad):
    with pytest.raises(ValueError):
        Pipeline(ScriptedModel(), ScriptedDetector([LEFT]), **bad)


@pytest.mark.shared_data
@pytest.mark.parametrize("video", ["subject02/real.mp4", "subject01/fake.mp4"])
def test_the_demo_defaults_decide_as_every_face_on_every_frame(shared_data, lbp_model, video):
    """Issue 13's 'same decisions': the demo's defaults (the SSD every few frames, optical
    flow between, a face far from the threshold scored every 3rd frame) against the
    SSD and the model on every frame, decisions as the demo shows them (smoothed)."""
    import cv2

    from liveness.detector import FaceDetector
    from liveness.model import load_model
    from liveness.tracking import greedy_match, iou_matrix

    model, detector = load_model(lbp_model), FaceDetector()
    default, full = Pipeline(model, detector), Pipeline(model, detector, detect_every=1, score_every=1)
    cap = cv2.VideoCapture(str(shared_data / "videos" / video))
    agree = compared = 0
    for _ in range(90):
        ok, frame = cap.read()
        if not ok:
            break
        ref, got = full.process(frame), default.process(frame)
        if not ref:
            continue
        pairs = dict(greedy_match(iou_matrix([r.box for r in ref], [g.box for g in got]), min_iou=1e-9))
        compared += 1
        agree += len(pairs) == len(ref) and all(ref[i].live == got[j].live for i, j in pairs.items())
    cap.release()
    assert compared >= 60
    assert agree / compared >= 0.98, (agree, compared)
    assert default.detections < full.detections  # the defaults did skip work ...
    assert default.faces_scored < default.face_frames  # ... both kinds


@pytest.mark.shared_data
def test_bench_scoring_compares_each_setting_with_every_face_scored(shared_data, lbp_model, capsys):
    from benchmarks import bench_scoring

    video = shared_data / "videos" / "subject02" / "fake.mp4"
    [result] = bench_scoring.run(model=lbp_model, videos=[video], every=[1, 3], margins=[0.2], max_frames=12)
    assert result["frames"] == 12 and result["faces"] >= 8
    one, three = result["rows"]
    assert (one["every"], one["scored"], one["decisions"], one["median_iou"], one["video_same"]) == (1, 1.0, 1.0, 1.0, True)  # the reference itself
    assert three["every"] == 3 and 0 < three["scored"] < 1 and 0 <= three["decisions"] <= 1
    assert "all videos (pooled faces)" in capsys.readouterr().out


def test_the_detector_and_scoring_schedule_reach_every_pipeline(lbp_model):
    import liveness_web
    from liveness.detector import FaceDetector
    from liveness.model import load_model
    from liveness.pipeline import DEFAULT_SCORE_EVERY
    from liveness.web.app import default_pipeline_factory

    model, detector = load_model(lbp_model), FaceDetector()

    opt = liveness_web.parse_opt(["--detect-every", "1", "--score-every", "1"])
    assert (opt.detect_every, opt.score_every) == (1, 1)
    pipe = default_pipeline_factory(model, detector, detect_every=opt.detect_every, score_every=opt.score_every)()
    assert (pipe.detect_every, pipe.score_every) == (1, 1)
    assert liveness_web.parse_opt([]).score_every == default_pipeline_factory(model, detector)().score_every == DEFAULT_SCORE_EVERY
