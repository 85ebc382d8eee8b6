"""Train a liveness classifier on face crops and report how it does on unseen videos.

Usage:
    python train.py --dataset dataset --model output/liveness.keras --le output/le.pickle --plot output/plot.png
    python train.py --dataset dataset --dataset ../shared/data/crops --group-pattern 'subject\\d+'
    python train.py --dataset dataset --group-pattern 'subject\\d+' --loso    # leave one subject out
    python train.py --dataset dataset --split random                          # the tutorial's leaky split

Splits keep each source video (and each subject, with --group-pattern) on one side;
the operating threshold is fixed on validation groups and then applied to the test
groups. Metrics are APCER / BPCER / ACER (ISO/IEC 30107-3), ROC AUC and EER.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import math
import statistics
from pathlib import Path

import numpy as np

from liveness import LIVE_LABEL, ROOT
from liveness.artifacts import check_model_path, save_label_encoder, save_model, write_sidecar
from liveness.cli import UserError, cli_main, ensure_parent_dir, ensure_writable_dir, setup_logging
from liveness.dataset import SPLIT_MODES, check_classes, describe, find_samples, split_samples
from liveness.fileio import atomic_write_text
from liveness.lbp import DEFAULT_SETTINGS
from liveness.models import ARCHS
from liveness.plots import plot_history
from liveness.report import fmt, write_evaluation
from liveness.training import LOSSES, TrainConfig, loso_folds, train_and_test

LOGGER = logging.getLogger("liveness")
OUTPUT = ROOT / "output"
# Leave-one-subject-out on the shared data (compare.py): the colour-texture model alone
# had a mean ACER of 8% against LivenessNet's 38% and their fusion's 14%, so it scores
# by default.
DEFAULT_LBP_WEIGHT = 1.0


def artifact_prefix(model: Path) -> Path:
    """output/liveness.keras -> output/liveness (then _roc.png, _metrics.json, ...)."""
    return model.with_suffix("")


def run_loso(samples, labels, cfg: TrainConfig, *, live_label: str, val_frac: float, prefix: Path, lbp_weight: float = 0.0) -> dict:
    """Leave-one-group-out: train without each group, test on it; table + mean and spread."""
    folds = list(loso_folds(samples, val_frac=val_frac, seed=cfg.seed))
    if not folds:
        raise UserError("--loso needs groups holding both classes: set --group-pattern (e.g. 'subject\\d+')")
    rows = []
    for i, (group, splits) in enumerate(folds, 1):
        LOGGER.info("fold %d/%d: testing on %s (%s), training on %s", i, len(folds), group, describe(splits["test"]), describe(splits["train"]))
        result = train_and_test(cfg, splits, labels, live_label=live_label, lbp_weight=lbp_weight, train_cnn=False, verbose=0)
        m = result.test
        rows.append({
            "group": group, "n_live": m["n_live"], "n_attack": m["n_attack"], "threshold": result.threshold,
            "apcer": m["apcer"], "bpcer": m["bpcer"], "acer": m["acer"], "auc": m["auc"], "eer": m["eer"],
            "epochs": len(result.history.get("loss", [])),
        })
        LOGGER.info("  %s: APCER %s BPCER %s ACER %s AUC %s", group, fmt(m["apcer"]), fmt(m["bpcer"]), fmt(m["acer"]), fmt(m["auc"], False))
    summary = {}
    for key in ("apcer", "bpcer", "acer", "auc", "eer"):
        vals = [r[key] for r in rows if not math.isnan(r[key])]
        summary[key] = {"mean": statistics.fmean(vals) if vals else math.nan, "std": statistics.pstdev(vals) if len(vals) > 1 else 0.0}
    print_loso_table(rows, summary)
    header = list(rows[0])
    lines = [",".join(header)] + [",".join(f"{r[k]:.4f}" if isinstance(r[k], float) else str(r[k]) for k in header) for r in rows]
    atomic_write_text(Path(f"{prefix}_loso.csv"), "\n".join(lines) + "\n")
    payload = {"protocol": "leave-one-group-out, threshold at the validation EER point", "config": cfg.as_dict(), "lbp_weight": lbp_weight, "folds": rows, "summary": summary}
    atomic_write_text(Path(f"{prefix}_loso.json"), json.dumps(payload, indent=2) + "\n")
    LOGGER.info("per-group table saved to %s_loso.csv and .json", prefix)
    return payload


def print_loso_table(rows: list[dict], summary: dict) -> None:
    print(f"{'held-out group':<16} {'live':>5} {'attack':>6} {'APCER':>7} {'BPCER':>7} {'ACER':>7} {'AUC':>6} {'EER':>7}")
    for r in rows:
        print(f"{r['group']:<16} {r['n_live']:>5} {r['n_attack']:>6} {fmt(r['apcer']):>7} {fmt(r['bpcer']):>7} {fmt(r['acer']):>7} {fmt(r['auc'], False):>6} {fmt(r['eer']):>7}")
    s = summary
    print(f"{'mean':<16} {'':>5} {'':>6} {fmt(s['apcer']['mean']):>7} {fmt(s['bpcer']['mean']):>7} {fmt(s['acer']['mean']):>7} {fmt(s['auc']['mean'], False):>6} {fmt(s['eer']['mean']):>7}")
    print(f"{'std':<16} {'':>5} {'':>6} {fmt(s['apcer']['std']):>7} {fmt(s['bpcer']['std']):>7} {fmt(s['acer']['std']):>7} {fmt(s['auc']['std'], False):>6} {fmt(s['eer']['std']):>7}")


def run(
    *,
    dataset: list[str | Path],
    model: str | Path = OUTPUT / "liveness.keras",
    le: str | Path = OUTPUT / "le.pickle",
    plot: str | Path = OUTPUT / "plot.png",
    arch: str = "livenessnet",
    input_size: int | None = None,
    epochs: int = 50,
    batch_size: int = 32,
    lr: float = 1e-3,
    loss: str = "ce",
    weights: str | None = None,
    augment: bool = True,
    patience: int = 10,
    seed: int = 42,
    split: str = "group",
    group_pattern: str | None = None,
    classes: list[str] | None = None,
    live_label: str = LIVE_LABEL,
    val_frac: float = 0.2,
    test_frac: float = 0.2,
    loso: bool = False,
    lbp_weight: float = DEFAULT_LBP_WEIGHT,
    padding: float = 0.0,
) -> dict:
    """Train (or, with loso=True, cross-validate) and return the metrics written."""
    from liveness import FACE_SIZE

    cfg = TrainConfig(
        arch=arch, input_size=input_size or FACE_SIZE, epochs=epochs, batch_size=batch_size, lr=lr,
        loss=loss, weights=weights, augment=augment, patience=patience, seed=seed,
    )
    cfg.check()
    if padding < 0:
        raise UserError(f"--padding must be 0 or more, got {padding}")
    if not 0.0 <= lbp_weight <= 1.0:
        raise UserError(f"--lbp-weight must be between 0 and 1, got {lbp_weight}")
    if not (0 < test_frac < 1 and 0 <= val_frac < 1 and test_frac + val_frac < 1):
        raise UserError("--test-frac and --val-frac must be fractions that leave training data")
    model, le, plot = check_model_path(Path(model)), Path(le), Path(plot)
    for folder in {model.parent, le.parent, plot.parent}:
        ensure_writable_dir(folder)
    for path, what in ((model, "--model"), (le, "--le"), (plot, "--plot")):
        ensure_parent_dir(path, what)  # a folder in the file's place fails now, not after training
    samples = find_samples([Path(d) for d in dataset], classes, group_pattern)
    labels = check_classes(samples, live_label)
    LOGGER.info("dataset: %s", describe(samples))
    prefix = artifact_prefix(model)

    if loso:
        return run_loso(samples, labels, cfg, live_label=live_label, val_frac=val_frac, prefix=prefix, lbp_weight=lbp_weight)

    splits, how = split_samples(samples, split, test_frac=test_frac, val_frac=val_frac, seed=seed)
    LOGGER.info("split %s", how)
    for name in ("train", "val", "test"):
        LOGGER.info("  %-5s %s", name, describe(splits[name]) if splits[name] else "empty")
    for name in ("train", "test"):
        missing = sorted(set(labels) - {s.label for s in splits[name]})
        if missing:
            raise UserError(
                f"too few images or sources to split: the {name} split has no {', '.join(missing)} images "
                "(add images, or videos, of that class)"
            )
    checkpoint = model.with_name(f".{model.stem}.checkpoint.keras")  # best-so-far, survives a crash
    LOGGER.info("training %s (%dx%d) for up to %d epochs", cfg.arch, cfg.input_size, cfg.input_size, cfg.epochs)
    if lbp_weight > 0:
        LOGGER.info(
            "and a colour-texture model (%s); score = %.2g x CNN + %.2g x LBP%s", DEFAULT_SETTINGS.describe(),
            1 - lbp_weight, lbp_weight,
            " (LBP only: the CNN is saved but not used; --lbp-weight 0 scores with the CNN alone)" if lbp_weight >= 1 else "",
        )
    result = train_and_test(cfg, splits, labels, live_label=live_label, lbp_weight=lbp_weight, checkpoint=checkpoint)
    LOGGER.info("operating threshold %.3f from the %s", result.threshold, result.threshold_source)

    from sklearn.preprocessing import LabelEncoder

    encoder = LabelEncoder().fit(labels)
    extra = {
        "validation": result.val,
        "split": how,
        "threshold_source": result.threshold_source,
        "config": cfg.as_dict(),
    }
    metrics = write_evaluation(
        prefix, result.test_samples, result.test_scores, labels=labels, live_label=live_label,
        threshold=result.threshold, extra=extra, title="test",
    )
    save_model(result.model, model)
    lbp_file = Path(f"{prefix}_lbp.npz")
    if result.lbp_model is not None:
        result.lbp_model.save(lbp_file)
    save_label_encoder(le, encoder)
    write_sidecar(model, {
        "labels": labels,
        "live_label": live_label,
        "input_size": cfg.input_size,
        "padding": padding,  # the demo crops faces as the training crops were cut
        "arch": cfg.arch,
        "threshold": result.threshold,
        "threshold_source": result.threshold_source,
        "trained": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "dataset": [str(d) for d in dataset],
        "group_pattern": group_pattern,
        "split": how,
        "counts": {k: len(v) for k, v in splits.items()},
        "config": cfg.as_dict(),
        "lbp": {"file": lbp_file.name, "weight": lbp_weight} if result.lbp_model is not None else None,
        "test": metrics["test"],
        "video_level": metrics["video_level"],
    })
    plot_history(result.history, plot)
    checkpoint.unlink(missing_ok=True)
    LOGGER.info("saved %s, %s, %s and %s_{metrics.json,predictions.csv,roc.png,confusion.png}", model, le, plot, prefix)
    return metrics


def parse_opt(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("-d", "--dataset", action="append", required=True, help="folder of <label>/ crops; repeat to combine folders")
    ap.add_argument("-m", "--model", default=str(OUTPUT / "liveness.keras"), help="trained model to write (.keras)")
    ap.add_argument("-l", "--le", default=str(OUTPUT / "le.pickle"), help="label encoder to write")
    ap.add_argument("-p", "--plot", default=str(OUTPUT / "plot.png"), help="training-curve image to write")
    ap.add_argument("--arch", choices=ARCHS, default="livenessnet")
    ap.add_argument("--weights", default=None, help="MobileNet backbones: none, imagenet (downloads once) or a local file")
    ap.add_argument("--input-size", type=int, default=None, help="square model input in pixels (default 32)")
    ap.add_argument("--epochs", type=int, default=50)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    ap.add_argument("--loss", choices=LOSSES, default="ce", help="cross-entropy or focal (gamma 2, alpha 0.25)")
    ap.add_argument("--no-augment", action="store_true", help="train without augmentation")
    ap.add_argument("--patience", type=int, default=10, help="early-stopping patience in epochs")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--split", choices=SPLIT_MODES, default="group", help="group: no video/subject on two sides; time: last part of each video; random: the tutorial's leaky split")
    ap.add_argument("--group-pattern", default=None, help="regex over a crop's path naming its subject, e.g. 'subject\\d+'")
    ap.add_argument("--classes", nargs="+", default=None, help="class folder names (default: the dataset's first-level folders)")
    ap.add_argument("--live-label", default=LIVE_LABEL, help="the class that is a live face")
    ap.add_argument("--val-frac", type=float, default=0.2)
    ap.add_argument("--test-frac", type=float, default=0.2)
    ap.add_argument("--lbp-weight", type=float, default=DEFAULT_LBP_WEIGHT, help="fuse the CNN with a colour-LBP texture model: score = (1-w) CNN + w LBP (0: CNN only, 1: LBP only)")
    ap.add_argument("--padding", type=float, default=0.0, help="the --padding the crops were gathered with; saved so the demo crops alike")
    ap.add_argument("--loso", action="store_true", help="leave-one-group-out cross-validation: a per-group table, no model saved")
    ap.add_argument("-v", "--verbose", action="store_true")
    return ap.parse_args(argv)


def main(opt: argparse.Namespace) -> int:
    setup_logging(opt.verbose)
    run(
        dataset=opt.dataset, model=opt.model, le=opt.le, plot=opt.plot, arch=opt.arch, input_size=opt.input_size,
        epochs=opt.epochs, batch_size=opt.batch_size, lr=opt.lr, loss=opt.loss, weights=opt.weights,
        augment=not opt.no_augment, patience=opt.patience, seed=opt.seed, split=opt.split,
        group_pattern=opt.group_pattern, classes=opt.classes, live_label=opt.live_label,
        val_frac=opt.val_frac, test_frac=opt.test_frac, loso=opt.loso, lbp_weight=opt.lbp_weight,
        padding=opt.padding,
    )
    return 0


if __name__ == "__main__":
    cli_main(lambda: main(parse_opt()))
