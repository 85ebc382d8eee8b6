"""The pictures train.py and evaluate.py save: training curves, ROC, confusion matrix."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from liveness.fileio import atomic_path


def _figure():
    import matplotlib

    matplotlib.use("Agg")  # files only: never needs a display
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    with atomic_path(Path(path)) as tmp:
        fig.savefig(tmp, dpi=100, bbox_inches="tight")


def plot_history(history: dict[str, list[float]], path: Path, title: str = "Training loss and accuracy") -> None:
    plt = _figure()
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
    epochs = np.arange(1, len(history.get("loss", [])) + 1)
    for key, ax in (("loss", ax_loss), ("accuracy", ax_acc)):
        for prefix, style in (("", "-"), ("val_", "--")):
            if prefix + key in history:
                ax.plot(epochs, history[prefix + key], style, label=("validation " if prefix else "train ") + key)
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.legend()
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    _save(fig, path)
    plt.close(fig)


def plot_roc(is_live, scores, path: Path, threshold: float, title: str = "ROC (live = positive)") -> None:
    from sklearn.metrics import roc_curve

    plt = _figure()
    fig, ax = plt.subplots(figsize=(5, 5))
    y = np.asarray(is_live, bool)
    if y.any() and not y.all():
        fpr, tpr, _ = roc_curve(y, scores)
        ax.plot(fpr, tpr, label="ROC")
        s = np.asarray(scores)
        apcer = float((s[~y] >= threshold).mean())
        tpr_at = float((s[y] >= threshold).mean())
        ax.plot([apcer], [tpr_at], "o", label=f"threshold {threshold:.3f}")
    ax.plot([0, 1], [0, 1], ":", color="grey")
    ax.set_xlabel("APCER (attacks accepted)")
    ax.set_ylabel("1 - BPCER (live accepted)")
    ax.set_title(title)
    if ax.get_legend_handles_labels()[0]:  # one class only: no ROC curve to label
        ax.legend(loc="lower right")
    _save(fig, path)
    plt.close(fig)


def plot_confusion(confusion: list[list[int]], labels: list[str], path: Path, title: str = "Confusion matrix") -> None:
    plt = _figure()
    fig, ax = plt.subplots(figsize=(4.5, 4))
    cm = np.asarray(confusion)
    ax.imshow(cm, cmap="Blues")
    for (i, j), v in np.ndenumerate(cm):
        ax.text(j, i, str(v), ha="center", va="center", color="black")
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("decision")
    ax.set_ylabel("truth")
    ax.set_title(title)
    _save(fig, path)
    plt.close(fig)
