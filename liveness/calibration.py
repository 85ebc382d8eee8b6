"""One-camera calibration with live faces only.

Leave-one-set-up-out, the ranking of a new camera's faces transfers (the ROC AUC of a
held-out set-up is high in most set-ups) but the scores shift with the camera, so a
fixed threshold does not travel. A few seconds of live faces from that camera fix the
shift: the threshold is placed below the median logit of their scores by the gap the
training set-ups showed, out of fold, between their live median and the threshold
(`live_offset`, saved with the model). A quantile of the camera's live scores instead
(e.g. its 5th percentile) did worse: a few seconds of one person do not show the spread
of that camera's live scores; the median does not need to. README, "Model comparison",
has the figures.
"""

from __future__ import annotations

import numpy as np

_LOGIT_CLIP = 1e-9  # probabilities are clipped to [c, 1 - c] before the logit


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), _LOGIT_CLIP, 1.0 - _LOGIT_CLIP)
    return np.log(p) - np.log1p(-p)


def live_offset(is_live: np.ndarray, scores: np.ndarray, groups: np.ndarray, threshold: float) -> float:
    """Training side, from out-of-fold scores (probabilities of live) of whole held-out
    groups: the median over the groups holding both classes of (median logit of the
    group's live scores - logit of `threshold`). Saved with the model's threshold."""
    y = np.asarray(is_live, dtype=bool)
    s = _logit(scores)
    g = np.asarray(groups)
    t = float(_logit(threshold))
    gaps = [np.median(s[(g == k) & y]) - t for k in np.unique(g) if y[g == k].any() and (~y[g == k]).any()]
    if not gaps:
        raise ValueError("live_offset needs out-of-fold scores of at least one group holding both classes")
    return float(np.median(gaps))


def calibrated_threshold(live_scores: np.ndarray, offset: float) -> float:
    """Camera side: the operating threshold (a probability of live) for one camera,
    from the scores of live faces only that it filmed (a few seconds of video, a dozen
    or more faces), and the `offset` saved with the model (live_offset)."""
    s = np.asarray(live_scores, dtype=np.float64).ravel()
    if s.size == 0 or not np.isfinite(s).all():
        raise ValueError("calibration needs the finite scores of at least one live face")
    z = float(np.median(_logit(s))) - float(offset)
    return float(1.0 / (1.0 + np.exp(-z)))
