"""Printing and saving the held-out evaluation: shared by train.py and evaluate.py."""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np

from liveness.dataset import Sample
from liveness.fileio import atomic_path, write_json
from liveness.metrics import per_source, summarize
from liveness.plots import plot_confusion, plot_roc

LOGGER = logging.getLogger("liveness")
REPORT_FILES = ("metrics.json", "predictions.csv", "roc.png", "confusion.png")


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


def prefixed(prefix: Path) -> Callable[[str], Path]:
    """evaluate.py's naming: output/evaluation -> output/evaluation_metrics.json, ..."""
    return lambda name: Path(f"{prefix}_{name}")


def in_folder(folder: Path) -> Callable[[str], Path]:
    """A model folder's naming: output/liveness/metrics.json, ..."""
    return lambda name: Path(folder) / name


def apcer_per_attack_type(samples: list[Sample], is_live: np.ndarray, scores: np.ndarray, threshold: float) -> dict:
    """APCER of each presentation-attack species (ISO/IEC 30107-3 reports them apart, and
    the worst one): attacks without a recorded type count under their class name."""
    out: dict[str, dict] = {}
    for kind in sorted({s.attack_type or s.label for s, live in zip(samples, is_live) if not live}):
        pick = np.array([not live and (s.attack_type or s.label) == kind for s, live in zip(samples, is_live)])
        accepted = int((np.asarray(scores)[pick] >= threshold).sum())
        out[kind] = {"n": int(pick.sum()), "accepted": accepted, "apcer": accepted / int(pick.sum())}
    return out


def write_evaluation(
    where: Callable[[str], Path],
    samples: list[Sample],
    scores: np.ndarray,
    *,
    labels: list[str],
    live_label: str,
    threshold: float,
    extra: dict | None = None,
    title: str = "test",
) -> dict:
    """metrics.json, predictions.csv, roc.png and confusion.png, named by `where`.

    Returns the metrics dict (also per source video, and sklearn's classification report).
    """
    from sklearn.metrics import classification_report

    is_live = np.array([s.label == live_label for s in samples])
    metrics = summarize(is_live, scores, threshold)
    attack_label = next(label for label in labels if label != live_label)
    decisions = [live_label if sc >= threshold else attack_label for sc in scores]
    truth = [s.label for s in samples]
    report = classification_report(truth, decisions, labels=[attack_label, live_label], zero_division=0)
    sources = per_source([s.source for s in samples], is_live, scores, threshold)
    video_correct = sum(r["correct"] for r in sources)
    log_metrics(title, metrics, labels)
    LOGGER.info("  per source video (mean score vs threshold): %d of %d decided right", video_correct, len(sources))
    for line in report.rstrip().splitlines():
        LOGGER.info("  %s", line)

    by_type = apcer_per_attack_type(samples, is_live, scores, threshold)
    for kind, row in by_type.items():
        LOGGER.info("  attack type %s: APCER %s of %d", kind, fmt(row["apcer"]), row["n"])
    payload = {
        **(extra or {}),
        title: metrics,
        "apcer_per_attack_type": by_type,
        "max_apcer": max((r["apcer"] for r in by_type.values()), default=math.nan),
        "classification_report": report,
        "per_source": sources,
        "video_level": {"correct": video_correct, "total": len(sources)},
    }
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["path", "group", "source", "label", "score_live", "decision", "attack_type"])
    for s, sc, d in zip(samples, scores, decisions):
        writer.writerow([s.path, s.group, s.source, s.label, f"{sc:.6f}", d, s.attack_type])
    # The four files are one unit: each is written to a temporary name, and all are renamed
    # into place only once every one is written (a full disk leaves the previous set, not a mix).
    with contextlib.ExitStack() as stack:
        tmp = {name: stack.enter_context(atomic_path(where(name))) for name in REPORT_FILES}
        tmp["predictions.csv"].write_text(buf.getvalue(), encoding="utf-8")
        plot_roc(is_live, scores, tmp["roc.png"], threshold, title=f"ROC, {title} data")
        plot_confusion(metrics["confusion"], [attack_label, live_label], tmp["confusion.png"], title=f"Confusion, {title} data")
        write_json(tmp["metrics.json"], payload)
    return payload
