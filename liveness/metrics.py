"""Presentation-attack-detection metrics in ISO/IEC 30107-3 terms.

Scores are the probability that a face is live (bona fide); a face is accepted as
live when score >= threshold.

- APCER: attacks accepted as live (attack presentation classification error rate)
- BPCER: live faces rejected as attacks (bona fide presentation classification error rate)
- ACER:  (APCER + BPCER) / 2; computed on test data at a threshold fixed beforehand
         on validation data it is the HTER
- EER:   the rate where APCER == BPCER as the threshold sweeps, and that threshold
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve


def _arrays(is_live, scores) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(is_live, dtype=bool).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"{y.size} labels but {s.size} scores")
    return y, s


def error_rates(is_live, scores, threshold: float) -> dict[str, float]:
    """APCER, BPCER and ACER at `threshold`; NaN for a class that is absent."""
    y, s = _arrays(is_live, scores)
    accepted = s >= threshold
    attacks, live = ~y, y
    apcer = float(accepted[attacks].mean()) if attacks.any() else math.nan
    bpcer = float((~accepted[live]).mean()) if live.any() else math.nan
    acer = (apcer + bpcer) / 2 if not (math.isnan(apcer) or math.isnan(bpcer)) else math.nan
    return {"apcer": apcer, "bpcer": bpcer, "acer": acer}


def equal_error_rate(is_live, scores) -> tuple[float, float]:
    """(EER, threshold at the EER). NaN, 0.5 when one class is missing."""
    y, s = _arrays(is_live, scores)
    if y.all() or not y.any():
        return math.nan, 0.5
    # fpr = APCER, 1 - tpr = BPCER at each threshold. Keep every threshold: the default
    # drop_intermediate removes collinear ROC points, and the EER point can be one of them.
    fpr, tpr, thresholds = roc_curve(y, s, drop_intermediate=False)
    fnr = 1.0 - tpr
    finite = np.isfinite(thresholds)  # roc_curve prepends +inf
    fpr, fnr, thresholds = fpr[finite], fnr[finite], thresholds[finite]
    i = int(np.argmin(np.abs(fnr - fpr)))
    return float((fpr[i] + fnr[i]) / 2), float(thresholds[i])


def summarize(is_live, scores, threshold: float) -> dict[str, float | int | list]:
    """Every number we report for one set of scores at one operating threshold."""
    y, s = _arrays(is_live, scores)
    both = y.any() and not y.all()
    eer, eer_threshold = equal_error_rate(y, s)
    accepted = s >= threshold
    # Confusion matrix rows = truth (attack, live), columns = decision (attack, live).
    confusion = [
        [int((~y & ~accepted).sum()), int((~y & accepted).sum())],
        [int((y & ~accepted).sum()), int((y & accepted).sum())],
    ]
    return {
        "n_live": int(y.sum()),
        "n_attack": int((~y).sum()),
        "threshold": float(threshold),
        **error_rates(y, s, threshold),
        "accuracy": float((accepted == y).mean()) if y.size else math.nan,
        "auc": float(roc_auc_score(y, s)) if both else math.nan,
        "eer": eer,
        "eer_threshold": eer_threshold,
        "confusion": confusion,
    }


def per_source(sources: Sequence[str], is_live, scores, threshold: float) -> list[dict]:
    """Video-level decisions: each source's mean score against the threshold."""
    y, s = _arrays(is_live, scores)
    groups: dict[str, list[int]] = defaultdict(list)
    for i, src in enumerate(sources):
        groups[src].append(i)
    rows = []
    for src in sorted(groups):
        idx = np.asarray(groups[src])
        live = bool(y[idx].mean() >= 0.5)
        mean = float(s[idx].mean())
        rows.append({
            "source": src, "live": live, "frames": int(idx.size), "mean_score": mean,
            "decision_live": mean >= threshold, "correct": (mean >= threshold) == live,
        })
    return rows
