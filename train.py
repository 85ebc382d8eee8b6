"""Train a liveness model on face crops, report how it does on groups it never saw, save it.

Usage:
    python train.py --dataset dataset --model output/liveness
    python train.py --dataset dataset --dataset ../shared/data/crops --group-pattern 'subject\\d+'
    python train.py --dataset dataset --scorer cnn --arch livenessnet --epochs 50 --le output/le.pickle
    python train.py --dataset dataset --group-pattern 'subject\\d+' --loso    # leave one subject out

What it does, in order:
1. holds out test groups (no video, and with --group-pattern no person, on two sides);
2. runs the training procedure on the rest (threshold at the EER point of out-of-fold
   scores, then a refit) and reports APCER / BPCER / ACER, AUC and EER on the test groups;
3. runs the same procedure on ALL the data and saves that model, with the threshold
   from its out-of-fold scores: the model you deploy has seen every group.
The model is one folder (manifest.json, lbp.npz and/or cnn.keras, le.pickle, reports).
"""

from __future__ import annotations

import argparse
import logging
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np

from liveness import DEFAULT_MODEL, LIVE_LABEL
from liveness import distribute as dist
from liveness.cli import (
    UserError, cli_main, ensure_parent_dir, ensure_writable_dir, padding_float, positive_float, positive_int, ranged, setup_logging,
)
from liveness.crossval import format_table, leave_one_group_out, summary
from liveness.dataset import SPLIT_MODES, describe, split_samples
from liveness.errors import DataError
from liveness.fileio import atomic_write_bytes, atomic_write_text, write_json
from liveness.layouts import add_layout_options, official_split
from liveness.lbp import MAX_SYNTHETIC, SYNTHETIC_SETTINGS
from liveness.model import SCORERS, check_model_target, label_encoder_bytes, write_model
from liveness.nets import ARCHS
from liveness.plots import plot_history
from liveness.report import in_folder, write_evaluation
from liveness.streaming import open_dataset
from liveness.training import LOSSES, FaceSet, TrainConfig, fit_with_threshold

LOGGER = logging.getLogger("liveness")
DEFAULTS = TrainConfig()  # every training default lives in TrainConfig; the flags read them from here
DEFAULT_TEST_FRAC = 0.2


def run_loso(cfg: TrainConfig, data: FaceSet, out_prefix: Path) -> dict:
    """Leave-one-group-out: the whole procedure without each group, tested on it."""
    rows, _ = leave_one_group_out(cfg, data)
    s = summary(rows)
    print(format_table(rows, s))
    header = list(rows[0])
    lines = [",".join(header)] + [",".join(f"{r[k]:.4f}" if isinstance(r[k], float) else str(r[k]) for k in header) for r in rows]
    atomic_write_text(Path(f"{out_prefix}_loso.csv"), "\n".join(lines) + "\n")
    payload = {
        "protocol": "leave-one-group-out; threshold at the EER point of the training groups' out-of-fold scores",
        "config": cfg.as_dict(), "folds": rows, "summary": s,
    }
    write_json(Path(f"{out_prefix}_loso.json"), payload)
    LOGGER.info("per-group table saved to %s_loso.csv and .json", out_prefix)
    return payload


def held_out_split(data: FaceSet, split: str, test_frac: float, seed: int) -> tuple[np.ndarray, np.ndarray, str]:
    if split == "official":  # the dataset's own train/test lists (liveness/layouts.py)
        splits, how = official_split(data.samples)
    else:
        splits, how = split_samples(data.samples, split, test_frac=test_frac, val_frac=0.0, seed=seed)
    position = {id(s): i for i, s in enumerate(data.samples)}
    train = np.array(sorted(position[id(s)] for s in splits["train"] + splits["val"]))
    test = np.array(sorted(position[id(s)] for s in splits["test"]))
    for name, idx in (("training", train), ("test", test)):
        missing = sorted({data.live_label, *{s.label for s in data.samples}} - {data.samples[i].label for i in idx})
        if missing:
            raise DataError(
                f"too few images or sources to split: the {name} part has no {', '.join(missing)} images "
                "(add images, or videos, of that class)"
            )
    return train, test, how


def run(
    *,
    dataset: list[str | Path],
    model: str | Path = DEFAULT_MODEL,
    le: str | Path | None = None,
    plot: str | Path | None = None,
    scorer: str = DEFAULTS.scorer,
    arch: str = DEFAULTS.arch,
    input_size: int = DEFAULTS.input_size,
    epochs: int = DEFAULTS.epochs,
    batch_size: int = DEFAULTS.batch_size,
    lr: float = DEFAULTS.lr,
    loss: str = DEFAULTS.loss,
    weights: str | None = DEFAULTS.weights,
    augment: bool = DEFAULTS.augment,
    patience: int = DEFAULTS.patience,
    seed: int = DEFAULTS.seed,
    lbp_weight: float = DEFAULTS.lbp_weight,
    synthetic_attacks: float = DEFAULTS.lbp.synthetic,
    folds: int | None = DEFAULTS.folds,
    val_frac: float = DEFAULTS.val_frac,
    split: str = "group",
    group_pattern: str | None = None,
    classes: list[str] | None = None,
    live_label: str = LIVE_LABEL,
    test_frac: float = DEFAULT_TEST_FRAC,
    loso: bool = False,
    padding: float = 0.0,
    verbose: int | None = 0,
    layout: str = "auto",
    max_per_group: int | None = None,
    workers: int | None = None,
    cache_dir: str | Path | None = None,
    cache: bool = True,
    distribute: str = "none",
) -> dict:
    """Train, evaluate and save (or, with loso=True, cross-validate); returns the manifest or LOSO payload."""
    try:
        cfg = TrainConfig(
            scorer=scorer, arch=arch, input_size=input_size, epochs=epochs, batch_size=batch_size, lr=lr, loss=loss,
            weights=weights, augment=augment, patience=patience, seed=seed, lbp_weight=lbp_weight, folds=folds,
            val_frac=val_frac, lbp=replace(DEFAULTS.lbp, synthetic=synthetic_attacks),
        )
    except ValueError as e:
        raise UserError(str(e)) from None
    model = Path(model)
    if loso:
        ensure_writable_dir(model.parent, "the folder of the LOSO table")
    else:
        check_model_target(model)
        for extra, what in ((le, "--le"), (plot, "--plot")):
            if extra is not None:
                ensure_parent_dir(Path(extra), what)  # a folder in the file's place fails now, not after training
    try:
        dist.configure(distribute)  # before TensorFlow runs anything
    except ValueError as e:
        raise UserError(str(e)) from None
    if not dist.is_chief():  # a multi-worker run's other workers train alike but write aside
        import tempfile

        model = Path(tempfile.mkdtemp(prefix="liveness-worker-")) / model.name
        le = plot = None
    data = open_dataset(
        dataset, layout=layout, classes=classes, group_pattern=group_pattern, live_label=live_label, padding=padding,
        max_per_group=max_per_group, workers=workers, cache_dir=cache_dir, cache=cache,
        settings=cfg.lbp if cfg.weight > 0 else None,
    )
    labels = sorted({s.label for s in data.samples})
    if len(labels) != 2:
        raise DataError(f"liveness needs exactly two classes, found {', '.join(labels)}: pass the two class folders' names")
    if cfg.weight > 0:
        LOGGER.info("colour-texture scorer: %s", cfg.lbp.describe())
    if cfg.uses_cnn:
        LOGGER.info("CNN: %s %dx%d, up to %d epochs", cfg.arch, cfg.input_size, cfg.input_size, cfg.epochs)
    if loso:
        return run_loso(cfg, data, model)

    # 1-2: the honest estimate, on groups the procedure never saw.
    train_idx, test_idx, how = held_out_split(data, split, test_frac, seed)
    LOGGER.info("held-out test split %s: %s", how, describe([data.samples[i] for i in test_idx]))
    evaluation = fit_with_threshold(cfg, data, train_idx, verbose=verbose)
    test_scores = evaluation.fitted.score(data, test_idx)
    test_samples = [data.samples[i] for i in test_idx]

    # 3: the model to deploy, fitted on everything.
    all_idx = np.arange(len(data))
    LOGGER.info("fitting the model to save on all %d images (%d groups)", len(data), len(set(data.groups)))
    final = fit_with_threshold(cfg, data, all_idx, verbose=verbose)
    LOGGER.info("operating threshold %.3f: %s", final.threshold, final.threshold_source)
    counts = Counter(s.label for s in data.samples)
    test_metrics: dict = {}

    def reports(folder: Path) -> None:
        test_metrics.update(write_evaluation(
            in_folder(folder), test_samples, test_scores, labels=labels, live_label=live_label,
            threshold=evaluation.threshold, title="test",
            extra={"protocol": f"held-out test groups ({how}); threshold from the other groups' out-of-fold scores",
                   "threshold_source": evaluation.threshold_source},
        ))
        if final.fitted.history:
            plot_history(final.fitted.history, folder / "history.png")

    manifest = write_model(model, {
        "scorer": cfg.scorer,
        "labels": labels,
        "live_label": live_label,
        "threshold": final.threshold,
        "threshold_source": final.threshold_source,
        "live_offset": final.live_offset,  # for one-camera calibration (calibrate.py)
        "padding": padding,  # the demo crops faces as the training crops were cut
        "lbp_weight": cfg.weight,
        "input_size": cfg.input_size if cfg.uses_cnn else None,
        "arch": cfg.arch if cfg.uses_cnn else None,
        "lbp": cfg.lbp.describe() if cfg.weight > 0 else None,
        "config": cfg.as_dict(),
        "data": {
            "datasets": [str(d) for d in dataset], "group_pattern": group_pattern, "layout": layout,
            "images": dict(counts), "groups": len(set(data.groups)),
            "fitted_on": f"all {len(data)} images of {len(set(data.groups))} groups",
        },
    }, lbp=final.fitted.lbp, cnn=final.fitted.cnn, reports=reports)
    if le is not None:  # the tutorial's separate label encoder, for scripts that expect one
        atomic_write_bytes(Path(le), label_encoder_bytes(labels))
    if plot is not None and final.fitted.history:
        plot_history(final.fitted.history, Path(plot))
    m = test_metrics.get("test", {})
    LOGGER.info("held-out test: ACER %.1f%% (APCER %.1f%%, BPCER %.1f%%) on %d images",
                100 * m.get("acer", float("nan")), 100 * m.get("apcer", float("nan")), 100 * m.get("bpcer", float("nan")), len(test_idx))
    LOGGER.info("saved the model folder %s (fitted on all %d images; reports inside)", model, len(data))
    return {**manifest, "evaluation": test_metrics}


def parse_opt(argv: list[str] | None = None) -> argparse.Namespace:
    d = DEFAULTS
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("-d", "--dataset", action="append", required=True, help="folder of <label>/ crops; repeat to combine folders")
    ap.add_argument("-m", "--model", default=str(DEFAULT_MODEL), help="model folder to write")
    ap.add_argument("-l", "--le", default=None, help="also write the label encoder here (the tutorial's le.pickle; the model folder holds one)")
    ap.add_argument("-p", "--plot", default=None, help="also write the CNN's training curves here")
    ap.add_argument("--scorer", choices=SCORERS, default=d.scorer, help="what scores a face: colour-LBP texture, a CNN, or their fusion")
    ap.add_argument("--arch", choices=ARCHS, default=d.arch, help="the CNN (scorer cnn or fusion)")
    ap.add_argument("--weights", default=d.weights, help="MobileNet backbones: none, imagenet (downloads once) or a local file")
    ap.add_argument("--input-size", type=ranged(int, 8, 512), default=d.input_size, help="square CNN input in pixels")
    ap.add_argument("--epochs", type=positive_int, default=d.epochs)
    ap.add_argument("--batch-size", type=positive_int, default=d.batch_size)
    ap.add_argument("--lr", type=positive_float, default=d.lr, help="Adam learning rate")
    ap.add_argument("--loss", choices=LOSSES, default=d.loss, help="cross-entropy or focal (gamma 2, alpha 0.25)")
    ap.add_argument("--no-augment", action="store_true", help="train the CNN without augmentation")
    ap.add_argument("--patience", type=positive_int, default=d.patience, help="early-stopping patience in epochs")
    ap.add_argument("--seed", type=ranged(int, 0), default=d.seed)
    ap.add_argument("--lbp-weight", type=ranged(float, 0.0, 1.0, lo_open=True), default=d.lbp_weight, help="fusion: score = (1-w) CNN + w LBP")
    ap.add_argument("--synthetic-attacks", type=ranged(float, 0.0, MAX_SYNTHETIC), nargs="?", default=d.lbp.synthetic,
                    const=SYNTHETIC_SETTINGS.synthetic, metavar="W",
                    help="colour-LBP: add a simulated screen re-capture of each live crop as an attack, weighing W x "
                         f"its set-up's attacks (alone: {SYNTHETIC_SETTINGS.synthetic:g}); for a model you will calibrate "
                         "with calibrate.py, worse without (README)")
    ap.add_argument("--folds", type=positive_int, default=d.folds, help="group folds whose out-of-fold scores fix the threshold (default 5 for lbp, 1 validation split for CNNs)")
    ap.add_argument("--val-frac", type=ranged(float, 0.0, 0.9, lo_open=True), default=d.val_frac, help="with one fold: the fraction of groups held out")
    ap.add_argument("--split", choices=(*SPLIT_MODES, "official"), default="group", help="the held-out test split: group (no video/subject on two sides), time, or random (the tutorial's leaky split)")
    ap.add_argument("--group-pattern", default=None, help="regex over a crop's path naming its subject, e.g. 'subject\\d+'")
    ap.add_argument("--classes", nargs=2, default=None, help="the two class folder names (default: the dataset's first-level folders)")
    ap.add_argument("--live-label", default=LIVE_LABEL, help="the class that is a live face")
    ap.add_argument("--test-frac", type=ranged(float, 0.0, 0.9, lo_open=True), default=DEFAULT_TEST_FRAC)
    ap.add_argument("--padding", type=padding_float, default=0.0, help="the --padding the crops were gathered with; saved so the demo crops alike")
    ap.add_argument("--loso", action="store_true", help="leave-one-group-out cross-validation: a per-group table, no model saved")
    add_layout_options(ap)
    ap.add_argument("--distribute", choices=dist.MODES, default="none", help="CNN training over several GPUs (mirrored) or machines (multiworker, TF_CONFIG)")
    ap.add_argument("-v", "--verbose", action="store_true")
    return ap.parse_args(argv)


def main(opt: argparse.Namespace) -> int:
    setup_logging(opt.verbose)
    run(
        dataset=opt.dataset, model=opt.model, le=opt.le, plot=opt.plot, scorer=opt.scorer, arch=opt.arch,
        input_size=opt.input_size, epochs=opt.epochs, batch_size=opt.batch_size, lr=opt.lr, loss=opt.loss,
        weights=opt.weights, augment=not opt.no_augment, patience=opt.patience, seed=opt.seed,
        lbp_weight=opt.lbp_weight, synthetic_attacks=opt.synthetic_attacks, folds=opt.folds, val_frac=opt.val_frac, split=opt.split,
        group_pattern=opt.group_pattern, classes=opt.classes, live_label=opt.live_label, test_frac=opt.test_frac,
        loso=opt.loso, padding=opt.padding, verbose=2 if opt.verbose else 0, layout=opt.layout,
        max_per_group=opt.max_per_group, workers=opt.workers, cache_dir=opt.cache_dir, cache=not opt.no_cache,
        distribute=opt.distribute,
    )
    return 0


if __name__ == "__main__":
    cli_main(lambda: main(parse_opt()))
