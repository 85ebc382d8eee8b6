"""liveness.metrics against values worked out by hand (ISO/IEC 30107-3 terms).

Scores are P(live); a face is accepted as live when score >= threshold.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from liveness.metrics import equal_error_rate, error_rates, per_source, summarize

# A known set: 3 live faces, 4 attacks.
LIVE = [0.9, 0.8, 0.4]
ATTACK = [0.1, 0.6, 0.3, 0.2]


def labelled(live, attack):
    return [True] * len(live) + [False] * len(attack), list(live) + list(attack)


def test_error_rates_match_hand_computed_values():
    y, s = labelled(LIVE, ATTACK)
    r = error_rates(y, s, 0.5)
    # attacks accepted as live: only 0.6 of 4 -> 1/4; live rejected: only 0.4 of 3 -> 1/3
    assert r["apcer"] == pytest.approx(1 / 4)
    assert r["bpcer"] == pytest.approx(1 / 3)
    assert r["acer"] == pytest.approx((1 / 4 + 1 / 3) / 2)


def test_threshold_is_inclusive():
    """score == threshold counts as accepted (live)."""
    r = error_rates([True, False], [0.5, 0.5], 0.5)
    assert r["apcer"] == 1.0 and r["bpcer"] == 0.0


def test_summarize_confusion_accuracy_and_auc():
    y, s = labelled(LIVE, ATTACK)
    m = summarize(y, s, 0.5)
    # rows truth (attack, live), columns decision (attack, live)
    assert m["confusion"] == [[3, 1], [1, 2]]
    assert (m["n_live"], m["n_attack"]) == (3, 4)
    assert m["threshold"] == 0.5
    assert m["accuracy"] == pytest.approx(5 / 7)
    # live > attack in 4 + 4 + 3 of the 12 pairs
    assert m["auc"] == pytest.approx(11 / 12)
    assert m["apcer"] == pytest.approx(1 / 4) and m["bpcer"] == pytest.approx(1 / 3)
    assert m["acer"] == pytest.approx(7 / 24)


def test_equal_error_rate_exactly_known():
    # Sorted: 0.9L 0.8A 0.6L 0.5L 0.4L 0.3A 0.2A 0.1A. At threshold 0.5 one attack of 4
    # is accepted (APCER 1/4) and one live face of 4 is rejected (BPCER 1/4).
    live, attack = [0.9, 0.6, 0.5, 0.4], [0.8, 0.3, 0.2, 0.1]
    y, s = labelled(live, attack)
    eer, thr = equal_error_rate(y, s)
    assert eer == pytest.approx(0.25)
    assert thr == pytest.approx(0.5)
    r = error_rates(y, s, thr)
    assert r["apcer"] == pytest.approx(0.25) and r["bpcer"] == pytest.approx(0.25)


def test_equal_error_rate_of_symmetric_overlap():
    # Mirror-image score sets: at 0.5 one of 5 attacks is in, one of 5 live faces is out.
    live, attack = [0.95, 0.85, 0.75, 0.65, 0.45], [0.55, 0.35, 0.25, 0.15, 0.05]
    eer, thr = equal_error_rate(*labelled(live, attack))
    assert eer == pytest.approx(0.2)
    assert 0.45 < thr <= 0.55


def test_perfect_separation_gives_eer_zero_and_auc_one():
    y, s = labelled([0.99, 0.8, 0.7], [0.3, 0.2, 0.01])
    m = summarize(y, s, 0.5)
    assert m["eer"] == 0.0
    assert m["auc"] == 1.0
    assert m["apcer"] == 0.0 and m["bpcer"] == 0.0 and m["acer"] == 0.0
    assert m["accuracy"] == 1.0
    assert m["confusion"] == [[3, 0], [0, 3]]
    # the EER threshold separates the classes
    assert 0.3 < m["eer_threshold"] <= 0.7


def test_fully_inverted_scores():
    y, s = labelled([0.1, 0.2], [0.8, 0.9])
    m = summarize(y, s, 0.5)
    assert m["auc"] == 0.0
    assert m["apcer"] == 1.0 and m["bpcer"] == 1.0
    assert m["eer"] == pytest.approx(1.0)


def test_missing_class_gives_nan_not_a_crash():
    m = summarize([True, True], [0.9, 0.2], 0.5)
    assert math.isnan(m["apcer"]) and math.isnan(m["acer"]) and math.isnan(m["auc"]) and math.isnan(m["eer"])
    assert m["bpcer"] == pytest.approx(0.5)
    assert m["eer_threshold"] == 0.5
    assert m["confusion"] == [[0, 0], [1, 1]]


def test_labels_and_scores_must_match_in_length():
    with pytest.raises(ValueError, match="3 labels but 2 scores"):
        error_rates([True, False, True], [0.1, 0.2], 0.5)


def test_per_source_video_level_decisions():
    sources = ["vidA", "vidA", "vidB", "vidB", "vidC", "vidC"]
    is_live = [True, True, False, False, True, True]
    scores = [0.9, 0.7, 0.6, 0.2, 0.3, 0.6]
    rows = per_source(sources, is_live, scores, 0.5)
    assert [r["source"] for r in rows] == ["vidA", "vidB", "vidC"]
    by = {r["source"]: r for r in rows}
    # vidA: live, mean 0.8 -> accepted, right
    assert by["vidA"]["live"] is True and by["vidA"]["frames"] == 2
    assert by["vidA"]["mean_score"] == pytest.approx(0.8)
    assert by["vidA"]["decision_live"] and by["vidA"]["correct"]
    # vidB: attack, mean 0.4 -> rejected, right (even though one frame was accepted)
    assert by["vidB"]["live"] is False
    assert by["vidB"]["mean_score"] == pytest.approx(0.4)
    assert not by["vidB"]["decision_live"] and by["vidB"]["correct"]
    # vidC: live, mean 0.45 -> rejected, wrong
    assert by["vidC"]["mean_score"] == pytest.approx(0.45)
    assert not by["vidC"]["decision_live"] and not by["vidC"]["correct"]


def test_accepts_numpy_inputs():
    y = np.array([1, 1, 1, 0, 0, 0, 0])
    s = np.array(LIVE + ATTACK, dtype=np.float32)
    assert error_rates(y, s, 0.5)["apcer"] == pytest.approx(0.25)
