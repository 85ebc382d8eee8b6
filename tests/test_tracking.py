"""Tests for liveness.tracking: IoU, greedy matching, per-face score smoothing,
track expiry and ids. Pure numbers: no model, no video."""

from __future__ import annotations

import numpy as np
import pytest

from liveness.tracking import FaceTracker, greedy_match, iou, iou_matrix

A = (0, 0, 10, 10)


# --- IoU ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "a, b, expected",
    [
        (A, A, 1.0),
        (A, (20, 20, 30, 30), 0.0),  # apart
        (A, (10, 0, 20, 10), 0.0),  # touching edges (x2 exclusive): no overlap
        (A, (5, 0, 15, 10), 50 / 150),  # half of each
        (A, (0, 0, 5, 5), 25 / 100),  # one inside the other
        (A, (2, 2, 2, 8), 0.0),  # empty box
        ((0, 0, 0, 0), (0, 0, 0, 0), 0.0),  # two empty boxes: 0, not NaN
    ],
)
def test_iou(a, b, expected):
    assert iou(a, b) == pytest.approx(expected)
    assert iou(b, a) == pytest.approx(expected)


def test_iou_matrix_shape_and_values():
    m = iou_matrix([A, (5, 0, 15, 10)], [A, (100, 100, 110, 110), (5, 0, 15, 10)])
    assert m.shape == (2, 3)
    np.testing.assert_allclose(m, [[1, 0, 1 / 3], [1 / 3, 0, 1]])
    assert iou_matrix([], [A]).shape == (0, 1)
    assert iou_matrix([A], []).shape == (1, 0)


# --- matching ----------------------------------------------------------------------
def test_greedy_match_takes_best_pairs_first_one_to_one():
    overlaps = np.array([
        [0.9, 0.8, 0.0],
        [0.85, 0.0, 0.0],
        [0.0, 0.7, 0.6],
    ])
    # (0,0) first; row 1 then has nothing >= min_iou left; (2,1) before (2,2).
    assert sorted(greedy_match(overlaps, 0.3)) == [(0, 0), (2, 1)]


def test_greedy_match_is_greedy_not_optimal():
    # The optimal assignment would be (0,1)+(1,0) = 1.6; greedy takes 0.9 first.
    overlaps = np.array([[0.9, 0.8], [0.8, 0.1]])
    assert greedy_match(overlaps, 0.3) == [(0, 0)]


def test_greedy_match_threshold_and_empty():
    assert greedy_match(np.array([[0.29]]), 0.3) == []
    assert greedy_match(np.array([[0.3]]), 0.3) == [(0, 0)]
    assert greedy_match(np.zeros((0, 3)), 0.3) == []
    assert greedy_match(np.zeros((2, 0)), 0.3) == []


# --- smoothing ---------------------------------------------------------------------
def shifted(box, dx):
    x1, y1, x2, y2 = box
    return (x1 + dx, y1, x2 + dx, y2)


def test_smoothed_score_is_mean_of_last_n():
    tracker = FaceTracker(window=3)
    face = (100, 100, 200, 220)
    got = []
    for k, score in enumerate([0.9, 0.6, 0.3, 0.0, 1.0]):
        (t,) = tracker.update([shifted(face, 2 * k)], [score])  # a slowly moving face
        got.append(t.smoothed)
        assert t.score == score
        assert t.track_id == 1
        assert t.hits == k + 1
    assert got == pytest.approx([0.9, 0.75, 0.6, 0.3, (0.3 + 0.0 + 1.0) / 3])


def test_window_one_turns_smoothing_off():
    tracker = FaceTracker(window=1)
    for score in [0.9, 0.1, 0.7]:
        (t,) = tracker.update([A], [score])
        assert t.smoothed == pytest.approx(score)
        assert t.track_id == 1


def test_results_follow_detection_order_and_ids():
    tracker = FaceTracker(window=5)
    left, right = (0, 0, 50, 60), (200, 0, 250, 60)
    first = tracker.update([left, right], [0.9, 0.1])
    assert [t.track_id for t in first] == [1, 2]
    # Next frame lists them the other way round (the detector sorts by confidence).
    second = tracker.update([shifted(right, 3), shifted(left, -2)], [0.2, 0.8])
    assert [t.track_id for t in second] == [2, 1]
    assert [t.box for t in second] == [shifted(right, 3), shifted(left, -2)]
    assert second[0].smoothed == pytest.approx(0.15)
    assert second[1].smoothed == pytest.approx(0.85)


def test_continuing_names_the_tracks_update_will_extend_and_changes_nothing():
    tracker = FaceTracker(window=5)
    tracker.update([A], [0.9])
    far = (300, 300, 340, 350)
    before = [(t.id, t.box, list(t.scores), t.hits) for t in tracker.tracks]
    [same, new] = tracker.continuing([shifted(A, 2), far])
    assert same.id == 1 and new is None
    assert [(t.id, t.box, list(t.scores), t.hits) for t in tracker.tracks] == before
    # A carried score joins the smoothing but keeps the last computed one as it was.
    tracker.update([shifted(A, 2)], [0.9], computed=[False])
    [track] = tracker.tracks
    assert (track.scored, track.since_scored, len(track.scores)) == (0.9, 1, 2)
    tracker.update([A], [0.7])
    assert (track.scored, track.since_scored) == (0.7, 0)


def test_new_face_gets_new_id_and_fresh_history():
    tracker = FaceTracker(window=5)
    tracker.update([A], [0.9])
    far = (300, 300, 340, 350)
    a, b = tracker.update([A, far], [0.9, 0.2])
    assert (a.track_id, b.track_id) == (1, 2)
    assert b.smoothed == pytest.approx(0.2)  # no history borrowed from face 1


def test_jump_beyond_min_iou_starts_a_new_track():
    tracker = FaceTracker(window=5, min_iou=0.3)
    tracker.update([A], [0.9])
    (t,) = tracker.update([(8, 0, 18, 10)], [0.1])  # IoU 2/18 < 0.3
    assert t.track_id == 2


# --- expiry ------------------------------------------------------------------------
def test_track_survives_max_missed_frames_then_expires():
    tracker = FaceTracker(window=5, max_missed=2)
    tracker.update([A], [0.9])
    for _ in range(2):  # missed twice: still remembered
        assert tracker.update([], []) == []
    assert [t.id for t in tracker.tracks] == [1]
    (t,) = tracker.update([A], [0.5])
    assert t.track_id == 1
    assert t.smoothed == pytest.approx(0.7)  # history kept across the gap

    for _ in range(3):  # missed three times: gone
        tracker.update([], [])
    assert tracker.tracks == []
    (t,) = tracker.update([A], [0.4])
    assert t.track_id == 2  # ids are never reused
    assert t.smoothed == pytest.approx(0.4)


def test_reset_forgets_faces_but_not_the_id_counter():
    tracker = FaceTracker()
    tracker.update([A], [0.9])
    tracker.reset()
    (t,) = tracker.update([A], [0.1])
    assert t.track_id == 2 and t.smoothed == pytest.approx(0.1)
    assert tracker.tracks_started == 2


def test_bad_arguments():
    with pytest.raises(ValueError):
        FaceTracker(window=0)
    with pytest.raises(ValueError):
        FaceTracker(min_iou=0.0)
    with pytest.raises(ValueError):
        FaceTracker(max_missed=-1)
    with pytest.raises(ValueError):
        FaceTracker().update([A], [])
