"""Printing and saving the held-out evaluation: shared by train.py and evaluate.py."""

from __future__ import annotations

import csv
import io
import json
import logging
import math
from pathlib import Path

import numpy as np

from liveness.dataset import Sample
from liveness.fileio import atomic_write_text
from liveness.metrics import per_source, summarize
from liveness.plots import plot_confusion, plot_roc

LOGGER = logging.getLogger("liveness")


def fmt(value: float, pct: bool = True) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "  n/a"
    return f"{value * 100:5.1f}%" if pct else f"{value:.3f}"


def log_metrics(title: str, m: dict, labels: list[str]) -> None:
    LOGGER.info("%s: %d live, %d attack images", title, m["n_live"], m["n_attack"])
    LOGGER.info(
        "  threshold %.3f -> APCER %s  BPCER %s  ACER %s  accuracy %s",
        m["threshold"], fmt(m["apcer"]), fmt(m["bpcer"]), fmt(m["acer"]), fmt(m["accuracy"]),
    )
    LOGGER.info("  ROC AUC %s  EER %s (at threshold %.3f)", fmt(m["auc"], pct=False), fmt(m["eer"]), m["eer_threshold"])
    (tn, fp), (fn, tp) = m["confusion"]
    LOGGER.info("  confusion (rows truth, columns decision; attack, live): [[%d %d] [%d %d]]", tn, fp, fn, tp)


def write_evaluation(
    prefix: Path,
    samples: list[Sample],
    scores: np.ndarray,
    *,
    labels: list[str],
    live_label: str,
    threshold: float,
    extra: dict | None = None,
    title: str = "test",
) -> dict:
    """Metrics JSON, predictions CSV, ROC and confusion images under `prefix`_*.

    Returns the metrics dict (also per source video, and sklearn's classification report).
    """
    from sklearn.metrics import classification_report

    is_live = np.array([s.label == live_label for s in samples])
    metrics = summarize(is_live, scores, threshold)
    attack_label = next(l for l in labels if l != live_label)
    decisions = [live_label if sc >= threshold else attack_label for sc in scores]
    truth = [s.label for s in samples]
    report = classification_report(truth, decisions, labels=[attack_label, live_label], zero_division=0)
    sources = per_source([s.source for s in samples], is_live, scores, threshold)
    video_correct = sum(r["correct"] for r in sources)
    log_metrics(title, metrics, labels)
    LOGGER.info("  per source video (mean score vs threshold): %d of %d decided right", video_correct, len(sources))
    for line in report.rstrip().splitlines():
        LOGGER.info("  %s", line)

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["path", "group", "source", "label", "score_live", "decision"])
    for s, sc, d in zip(samples, scores, decisions):
        writer.writerow([s.path, s.group, s.source, s.label, f"{sc:.6f}", d])
    atomic_write_text(Path(f"{prefix}_predictions.csv"), buf.getvalue())
    plot_roc(is_live, scores, Path(f"{prefix}_roc.png"), threshold, title=f"ROC, {title} data")
    plot_confusion(metrics["confusion"], [attack_label, live_label], Path(f"{prefix}_confusion.png"), title=f"Confusion, {title} data")
    payload = {
        **(extra or {}),
        title: metrics,
        "classification_report": report,
        "per_source": sources,
        "video_level": {"correct": video_correct, "total": len(sources)},
    }
    atomic_write_text(Path(f"{prefix}_metrics.json"), json.dumps(payload, indent=2, default=float) + "\n")
    return payload
