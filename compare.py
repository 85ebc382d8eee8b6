"""Compare liveness models on the same leave-one-subject-out folds, honestly.

Usage:
    python compare.py --dataset dataset --dataset ../shared/data/crops --group-pattern 'subject\\d+'
    python compare.py --dataset dataset --group-pattern 'subject\\d+' --configs livenessnet lbp fusion
    python compare.py ... --quick          # 2 epochs, 2 folds: checks the machinery only
    python compare.py ... --resume         # after Ctrl-C or a crash: reuse the folds already finished

Every configuration runs the same training procedure as train.py (liveness/training.py)
on the same folds: for each subject holding both classes, train on the other subjects
with the threshold at the EER point of their out-of-fold scores (the tutorial recipe
keeps its 0.5), and test on the held-out subject (liveness/crossval.py). Per
configuration: mean, spread and worst of ACER, APCER, BPCER, ROC AUC and EER,
video-level accuracy, and the time per face on this CPU as the demo runs it.
Writes <output>.md, <output>.csv, <output>.json and <output>.png, and each finished fold
to <output>_folds/ (read back with --resume; liveness.crossval.FoldStore).
"""

from __future__ import annotations

import argparse
import logging
import math
import statistics
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from liveness import LIVE_LABEL, OUTPUT
from liveness.cli import UserError, cli_main, ensure_writable_dir, positive_int, setup_logging
from liveness.crossval import METRICS, FoldStore, leave_one_group_out, loso_groups, samples_digest, summary
from liveness.fileio import atomic_path, atomic_write_text, write_json
from liveness.layouts import add_layout_options
from liveness.lbp import CLASSIC_SETTINGS, DEFAULT_SETTINGS, PREVIOUS_SETTINGS, SYNTHETIC_SETTINGS
from liveness.streaming import open_dataset
from liveness.training import TrainConfig, fit_scorer

LOGGER = logging.getLogger("liveness")
DEFAULT_OUTPUT = OUTPUT / "compare"


@dataclass(frozen=True)
class Candidate:
    name: str
    description: str
    cfg: TrainConfig


CANDIDATES = {
    c.name: c
    for c in (
        Candidate("tutorial", "LivenessNet 32x32, Adam 1e-4, batch 8, 50 epochs, threshold 0.5",
                  TrainConfig(scorer="cnn", lr=1e-4, batch_size=8, epochs=50, patience=50, fixed_threshold=0.5)),
        Candidate("livenessnet", "LivenessNet 32x32, Adam 1e-3, early stopping", TrainConfig(scorer="cnn")),
        Candidate("lbp", f"default: {DEFAULT_SETTINGS.describe()}", TrainConfig()),
        Candidate("lbp-synthetic", f"for calibrated use: {SYNTHETIC_SETTINGS.describe()}", TrainConfig(lbp=SYNTHETIC_SETTINGS)),
        Candidate("lbp-previous", f"the previous default: {PREVIOUS_SETTINGS.describe()}", TrainConfig(lbp=PREVIOUS_SETTINGS)),
        Candidate("lbp-classic", f"as Boulkenafet 2015: {CLASSIC_SETTINGS.describe()}", TrainConfig(lbp=CLASSIC_SETTINGS)),
        Candidate("fusion", "mean of LivenessNet and colour-LBP scores", TrainConfig(scorer="fusion")),
        Candidate("mobilenetv2", "MobileNetV2 a=0.35, 64x64, no pretrained weights",
                  TrainConfig(scorer="cnn", arch="mobilenetv2", input_size=64, epochs=20)),
        Candidate("mobilenetv3small", "MobileNetV3-Small, 64x64, no pretrained weights",
                  TrainConfig(scorer="cnn", arch="mobilenetv3small", input_size=64, epochs=20)),
    )
}
DEFAULT_CONFIGS = tuple(CANDIDATES)


def time_per_face(model, face: np.ndarray, repeats: int) -> float:
    """Median ms to score one face the way the demo does (LivenessModel.score)."""
    for _ in range(10):
        model.score([face])
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        model.score([face])
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def table_row(c: Candidate, folds: list[dict], ms: float) -> dict:
    s = summary(folds)
    row = {"config": c.name, "description": c.description, "folds": len(folds)}
    for k in METRICS:
        row[f"{k}_mean"], row[f"{k}_std"] = s[k]["mean"], s[k]["std"]
    row["acer_max"] = s["acer"]["worst"]
    row["cal_acer_max"] = s["cal_acer"]["worst"]
    row["videos_right"] = s["videos_right"]
    row["ms_per_face"] = ms
    return row


def nested_choice(folds: dict[str, list[dict]], criterion: str = "inner_acer") -> tuple[list[dict], str]:
    """The honest figure for choosing among the candidates: for each held-out subject,
    the candidate that did best on the TRAINING subjects alone (mean ACER of their
    out-of-fold scores; with criterion "inner_cal_acer", after each one's calibration),
    and that candidate's result on the held-out subject."""
    names = list(folds)
    out, picked = [], {}
    for i in range(len(folds[names[0]])):
        inner = {n: folds[n][i].get(criterion) for n in names}
        best = min(names, key=lambda n: (math.inf if inner[n] is None else inner[n], names.index(n)))
        out.append({**folds[best][i], "picked": best})
        picked[best] = picked.get(best, 0) + 1
    return out, ", ".join(f"{n} {k}x" for n, k in picked.items())


def markdown_table(rows: list[dict]) -> str:
    pct = lambda m, s: f"{100 * m:.1f} ± {100 * s:.1f}"  # noqa: E731
    lines = [
        "| config | ACER % | APCER % | BPCER % | AUC | EER % | worst ACER % | calibrated ACER % (worst) | videos right | ms / face |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['config']} | {pct(r['acer_mean'], r['acer_std'])} | {pct(r['apcer_mean'], r['apcer_std'])} | "
            f"{pct(r['bpcer_mean'], r['bpcer_std'])} | {r['auc_mean']:.3f} ± {r['auc_std']:.3f} | "
            f"{pct(r['eer_mean'], r['eer_std'])} | {100 * r['acer_max']:.1f} | "
            f"{100 * r['cal_acer_mean']:.1f} ({100 * r['cal_acer_max']:.1f}) | {r['videos_right']} | "
            f"{'-' if math.isnan(r['ms_per_face']) else format(r['ms_per_face'], '.2f')} |"
        )
    return "\n".join(lines)


def plot_bars(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1.4 * len(rows) + 2, 4))
    pos = np.arange(len(rows))
    bars = (("acer", "ACER"), ("apcer", "APCER"), ("bpcer", "BPCER"), ("cal_acer", "ACER, calibrated per camera"))
    width = 0.8 / len(bars)
    for i, (k, label) in enumerate(bars):
        ax.bar(pos + (i - (len(bars) - 1) / 2) * width, [100 * r[f"{k}_mean"] for r in rows], width,
               yerr=[100 * r[f"{k}_std"] for r in rows], capsize=3, label=label)
    ax.set_xticks(pos, [r["config"] for r in rows], rotation=20)
    ax.set_ylabel("% (mean ± std over held-out subjects)")
    ax.set_title("Leave-one-subject-out comparison")
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, bbox_inches="tight")
    plt.close(fig)


def run(
    *,
    dataset: list[str | Path],
    group_pattern: str = r"subject\d+",
    configs: list[str] | tuple[str, ...] = DEFAULT_CONFIGS,
    output: str | Path = DEFAULT_OUTPUT,
    classes: list[str] | None = None,
    live_label: str = LIVE_LABEL,
    seed: int = 42,
    epochs: int | None = None,
    max_folds: int | None = None,
    timing_repeats: int = 100,
    layout: str = "auto",
    max_per_group: int | None = None,
    workers: int | None = None,
    cache_dir: str | Path | None = None,
    cache: bool = True,
    resume: bool = False,
) -> list[dict]:
    unknown = [c for c in configs if c not in CANDIDATES]
    if unknown:
        raise UserError(f"unknown --configs {', '.join(unknown)} (choose from {', '.join(CANDIDATES)})")
    prefix = Path(output)
    ensure_writable_dir(prefix.parent)
    data = open_dataset(dataset, layout=layout, classes=classes, group_pattern=group_pattern, live_label=live_label,
                        max_per_group=max_per_group, workers=workers, cache_dir=cache_dir, cache=cache)
    labels = sorted({s.label for s in data.samples})
    groups = loso_groups(data.samples)[:max_folds]
    if not groups:
        raise UserError("no group holds both classes: check --group-pattern")
    rows, folds = [], {}
    data_digest = samples_digest(data.samples)
    for name in configs:
        c = CANDIDATES[name]
        cfg = replace(c.cfg, seed=seed, epochs=min(c.cfg.epochs, epochs) if epochs else c.cfg.epochs)
        LOGGER.info("config %s: %s", name, c.description)
        t0 = time.perf_counter()
        store = FoldStore(Path(f"{prefix}_folds"), name, cfg, data_digest, reuse=resume)
        fold_rows, last = leave_one_group_out(cfg, data, groups=groups, store=store)
        if last is None:  # every fold read back: time a stand-in (the time depends on the architecture, not the weights)
            fitted = fit_scorer(cfg, data, np.arange(len(data)), epochs=1)
            model = fitted.as_model(0.5, labels, live_label)
        else:
            model = last.fitted.as_model(last.threshold, labels, live_label)
        ms = time_per_face(model, data.faces[0], timing_repeats)
        rows.append(table_row(c, fold_rows, ms))
        folds[name] = fold_rows
        LOGGER.info("config %s: mean ACER %.1f%% over %d folds (%.0f s)", name, 100 * rows[-1]["acer_mean"], len(fold_rows), time.perf_counter() - t0)
    if len(configs) > 1:
        candidates = dict(folds)
        for name, criterion, what in (("nested", "inner_acer", "ACER"),
                                      ("nested (calibrated)", "inner_cal_acer", "calibrated ACER")):
            nested, picks = nested_choice(candidates, criterion)
            rows.append(table_row(Candidate(name, f"per held-out subject, the candidate whose training subjects' "
                                            f"out-of-fold {what} was lowest (picked: {picks})", TrainConfig()), nested, math.nan))
            folds[name] = nested
    table = markdown_table(rows)
    print(table)
    header = list(rows[0])
    csv_lines = [",".join(header)] + [
        ",".join(f"{r[k]:.4f}" if isinstance(r[k], float) else f'"{r[k]}"' if "," in str(r[k]) else str(r[k]) for k in header)
        for r in rows
    ]
    atomic_write_text(Path(f"{prefix}.csv"), "\n".join(csv_lines) + "\n")
    atomic_write_text(Path(f"{prefix}.md"), table + "\n")
    write_json(Path(f"{prefix}.json"), {
        "protocol": "leave-one-subject-out; threshold at the EER point of the training subjects' out-of-fold scores unless fixed",
        "dataset": [str(d) for d in dataset], "seed": seed, "epochs_cap": epochs, "summary": rows, "folds": folds,
    })
    plot_bars(rows, Path(f"{prefix}.png"))
    LOGGER.info("saved %s.{md,csv,json,png}", prefix)
    return rows


def parse_opt(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("-d", "--dataset", action="append", required=True, help="folder of crops (repeatable)")
    ap.add_argument("--group-pattern", default=r"subject\d+", help="regex naming each crop's subject")
    ap.add_argument("--configs", nargs="+", default=list(DEFAULT_CONFIGS), help=f"from: {', '.join(CANDIDATES)}")
    ap.add_argument("-o", "--output", default=str(DEFAULT_OUTPUT), help="prefix of the files written")
    ap.add_argument("--classes", nargs=2, default=None)
    ap.add_argument("--seed", type=positive_int, default=42)
    ap.add_argument("--epochs", type=positive_int, default=None, help="cap every CNN's epochs")
    ap.add_argument("--max-folds", type=positive_int, default=None, help="only the first N folds")
    ap.add_argument("--quick", action="store_true", help="2 epochs, 2 folds: checks that it all runs")
    ap.add_argument("--resume", action="store_true",
                    help="reuse the folds a stopped run of the same configs on the same data finished (<output>_folds/)")
    add_layout_options(ap)
    ap.add_argument("-v", "--verbose", action="store_true")
    return ap.parse_args(argv)


def main(opt: argparse.Namespace) -> int:
    setup_logging(opt.verbose)
    run(
        dataset=opt.dataset, group_pattern=opt.group_pattern, configs=opt.configs, output=opt.output,
        classes=opt.classes, seed=opt.seed, epochs=2 if opt.quick else opt.epochs,
        max_folds=2 if opt.quick else opt.max_folds, layout=opt.layout, max_per_group=opt.max_per_group,
        workers=opt.workers, cache_dir=opt.cache_dir, cache=not opt.no_cache, resume=opt.resume,
    )
    return 0


if __name__ == "__main__":
    cli_main(lambda: main(parse_opt()))
