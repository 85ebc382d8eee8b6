"""Compare liveness models on the same leave-one-subject-out folds, honestly.

Usage:
    python compare.py --dataset dataset --dataset ../shared/data/crops --group-pattern 'subject\\d+'
    python compare.py --dataset dataset --group-pattern 'subject\\d+' --configs livenessnet lbp fusion
    python compare.py ... --quick          # 2 epochs, 2 folds: checks the machinery only

Every configuration sees the same folds: for each subject holding both classes, train on
the other subjects, fix the threshold at the EER point of validation subjects (the
tutorial recipe keeps its 0.5), and test on the held-out subject. Per configuration:
mean and spread of ACER, APCER, BPCER, ROC AUC and EER, video-level accuracy, and the
classification time per face on this CPU, measured the way the demo runs it.
Writes <output>.md, <output>.csv, <output>.json and <output>.png.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import statistics
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from sklearn.preprocessing import LabelEncoder

from liveness import FACE_SIZE, LIVE_LABEL, ROOT
from liveness.artifacts import LivenessClassifier, save_label_encoder, save_model
from liveness.cli import UserError, cli_main, ensure_writable_dir, setup_logging
from liveness.dataset import check_classes, describe, find_samples, prepare_faces, read_images
from liveness.fileio import atomic_path, atomic_write_text
from liveness.lbp import CLASSIC_SETTINGS, DEFAULT_SETTINGS, LBPClassifier, LBPSettings
from liveness.metrics import per_source, summarize
from liveness.training import TrainConfig, fit, loso_folds, predict_live, validation_threshold

LOGGER = logging.getLogger("liveness")
OUTPUT = ROOT / "output" / "compare"


@dataclass(frozen=True)
class Candidate:
    """One configuration: a CNN (train config), the LBP model, or a fusion of two others."""

    name: str
    kind: str  # "cnn" | "lbp" | "fusion"
    description: str
    train: TrainConfig | None = None
    fixed_threshold: float | None = None  # None: EER point on validation subjects
    parts: tuple[str, ...] = ()  # fusion: names of the candidates whose scores are averaged
    lbp: LBPSettings = DEFAULT_SETTINGS  # kind "lbp": what it computes


CANDIDATES = {
    c.name: c
    for c in (
        Candidate(
            "tutorial", "cnn", "LivenessNet 32x32, Adam 1e-4, batch 8, 50 epochs, threshold 0.5",
            TrainConfig(arch="livenessnet", input_size=FACE_SIZE, lr=1e-4, batch_size=8, epochs=50, patience=50),
            fixed_threshold=0.5,
        ),
        Candidate("livenessnet", "cnn", "LivenessNet 32x32, Adam 1e-3, early stopping, validation threshold", TrainConfig()),
        Candidate("lbp", "lbp", f"default: {DEFAULT_SETTINGS.describe()}"),
        Candidate("lbp-classic", "lbp", f"as Boulkenafet 2015: {CLASSIC_SETTINGS.describe()}", lbp=CLASSIC_SETTINGS),
        Candidate("fusion", "fusion", "mean of LivenessNet and colour-LBP scores", parts=("livenessnet", "lbp")),
        Candidate("mobilenetv2", "cnn", "MobileNetV2 a=0.35, 64x64, no pretrained weights", TrainConfig(arch="mobilenetv2", input_size=64, epochs=20)),
        Candidate("mobilenetv3small", "cnn", "MobileNetV3-Small, 64x64, no pretrained weights", TrainConfig(arch="mobilenetv3small", input_size=64, epochs=20)),
    )
}
DEFAULT_CONFIGS = tuple(CANDIDATES)
METRICS = ("acer", "apcer", "bpcer", "auc", "eer")


@dataclass
class Scored:
    val: np.ndarray
    test: np.ndarray
    model: object = None  # the last fold's model, for timing


@dataclass
class Outcome:
    candidate: Candidate
    folds: list[dict] = field(default_factory=list)
    ms_per_face: float = math.nan


def _score_candidate(c: Candidate, done: dict[str, Scored], faces, is_live, labels, live_label, epochs_cap, seed) -> Scored:
    if c.kind == "fusion":
        a, b = (done[p] for p in c.parts)
        return Scored((a.val + b.val) / 2, (a.test + b.test) / 2)
    if c.kind == "lbp":
        model = LBPClassifier.from_settings(c.lbp, seed=seed).fit(faces["train"], is_live["train"].astype(int))
        return Scored(model.score(faces["val"]), model.score(faces["test"]), model)
    cfg = replace(c.train, seed=seed, epochs=min(c.train.epochs, epochs_cap) if epochs_cap else c.train.epochs)
    live_index = labels.index(live_label)
    x = {k: prepare_faces(v, cfg.input_size) for k, v in faces.items()}
    y = {k: np.where(is_live[k], live_index, 1 - live_index) for k in faces}
    model, _ = fit(cfg, x["train"], y["train"], x["val"], y["val"], len(labels), verbose=0)
    return Scored(predict_live(model, x["val"], live_index), predict_live(model, x["test"], live_index), model)


def time_per_face(c: Candidate, models: dict[str, object], face: np.ndarray, live_label: str, labels: list[str], repeats: int = 100) -> float:
    """Median ms to classify one face the way the demo does (ONNX in OpenCV's DNN for CNNs)."""
    if c.kind == "fusion":
        return sum(time_per_face(CANDIDATES[p], models, face, live_label, labels, repeats) for p in c.parts)
    model = models.get(c.name)
    if model is None:
        return math.nan
    if c.kind == "lbp":
        fn = lambda: model.score([face])  # noqa: E731
    else:
        with tempfile.TemporaryDirectory() as tmp:
            save_model(model, Path(tmp) / "m.keras")
            save_label_encoder(Path(tmp) / "le.pickle", LabelEncoder().fit(labels))
            clf = LivenessClassifier(Path(tmp) / "m.keras", Path(tmp) / "le.pickle")
        fn = lambda: clf.scores([face])  # noqa: E731
    for _ in range(10):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def aggregate(o: Outcome) -> dict:
    row = {"config": o.candidate.name, "description": o.candidate.description, "folds": len(o.folds)}
    for k in METRICS:
        vals = [f[k] for f in o.folds if not math.isnan(f[k])]
        row[f"{k}_mean"] = statistics.fmean(vals) if vals else math.nan
        row[f"{k}_std"] = statistics.pstdev(vals) if len(vals) > 1 else 0.0
    row["acer_max"] = max((f["acer"] for f in o.folds), default=math.nan)
    row["videos_right"] = f"{sum(f['videos_right'] for f in o.folds)}/{sum(f['videos'] for f in o.folds)}"
    row["ms_per_face"] = o.ms_per_face
    return row


def markdown_table(rows: list[dict]) -> str:
    pct = lambda m, s: f"{100 * m:.1f} ± {100 * s:.1f}"  # noqa: E731
    lines = [
        "| config | ACER % | APCER % | BPCER % | AUC | EER % | worst ACER % | videos right | ms / face |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['config']} | {pct(r['acer_mean'], r['acer_std'])} | {pct(r['apcer_mean'], r['apcer_std'])} | "
            f"{pct(r['bpcer_mean'], r['bpcer_std'])} | {r['auc_mean']:.3f} ± {r['auc_std']:.3f} | "
            f"{pct(r['eer_mean'], r['eer_std'])} | {100 * r['acer_max']:.1f} | {r['videos_right']} | {r['ms_per_face']:.2f} |"
        )
    return "\n".join(lines)


def plot_bars(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1.4 * len(rows) + 2, 4))
    names = [r["config"] for r in rows]
    pos = np.arange(len(rows))
    for i, (k, label) in enumerate((("acer", "ACER"), ("apcer", "APCER"), ("bpcer", "BPCER"))):
        ax.bar(pos + (i - 1) * 0.27, [100 * r[f"{k}_mean"] for r in rows], 0.27,
               yerr=[100 * r[f"{k}_std"] for r in rows], capsize=3, label=label)
    ax.set_xticks(pos, names, rotation=20)
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
    output: str | Path = OUTPUT,
    classes: list[str] | None = None,
    live_label: str = LIVE_LABEL,
    val_frac: float = 0.25,
    seed: int = 42,
    epochs: int | None = None,
    max_folds: int | None = None,
    timing_repeats: int = 100,
) -> list[dict]:
    unknown = [c for c in configs if c not in CANDIDATES]
    if unknown:
        raise UserError(f"unknown --configs {', '.join(unknown)} (choose from {', '.join(CANDIDATES)})")
    wanted = list(dict.fromkeys(p for c in configs for p in (*CANDIDATES[c].parts, c)))  # parts first
    prefix = Path(output)
    ensure_writable_dir(prefix.parent)
    samples = find_samples([Path(d) for d in dataset], classes, group_pattern)
    labels = check_classes(samples, live_label)
    LOGGER.info("dataset: %s", describe(samples))
    folds = list(loso_folds(samples, val_frac=val_frac, seed=seed))[:max_folds]
    if not folds:
        raise UserError("no group holds both classes: check --group-pattern")
    outcomes = {name: Outcome(CANDIDATES[name]) for name in wanted}
    last_models: dict[str, object] = {}
    for i, (group, splits) in enumerate(folds, 1):
        LOGGER.info("fold %d/%d: held-out %s (%s)", i, len(folds), group, describe(splits["test"]))
        faces, is_live, kept = {}, {}, {}
        for k, v in splits.items():
            faces[k], kept[k] = read_images(v)
            is_live[k] = np.array([s.label == live_label for s in kept[k]])
        done: dict[str, Scored] = {}
        for name in wanted:
            c = CANDIDATES[name]
            t0 = time.perf_counter()
            done[name] = _score_candidate(c, done, faces, is_live, labels, live_label, epochs, seed)
            if done[name].model is not None:
                last_models[name] = done[name].model
            if c.fixed_threshold is not None:
                threshold = c.fixed_threshold
            else:
                threshold, _ = validation_threshold(is_live["val"], done[name].val)
            m = summarize(is_live["test"], done[name].test, threshold)
            videos = per_source([s.source for s in kept["test"]], is_live["test"], done[name].test, threshold)
            outcomes[name].folds.append({
                "group": group, "threshold": threshold, **{k: m[k] for k in METRICS},
                "videos": len(videos), "videos_right": sum(v["correct"] for v in videos),
            })
            LOGGER.info("  %-16s ACER %5.1f%%  APCER %5.1f%%  BPCER %5.1f%%  AUC %.3f  (%.0f s)",
                        name, 100 * m["acer"], 100 * m["apcer"], 100 * m["bpcer"], m["auc"], time.perf_counter() - t0)
    probe = read_images(folds[0][1]["test"][:1])[0][0]
    for name in wanted:
        outcomes[name].ms_per_face = time_per_face(CANDIDATES[name], last_models, probe, live_label, labels, timing_repeats)
    rows = [aggregate(outcomes[name]) for name in configs]
    table = markdown_table(rows)
    print(table)
    header = list(rows[0])
    csv_lines = [",".join(header)] + [
        ",".join(f"{r[k]:.4f}" if isinstance(r[k], float) else f'"{r[k]}"' if "," in str(r[k]) else str(r[k]) for k in header)
        for r in rows
    ]
    atomic_write_text(Path(f"{prefix}.csv"), "\n".join(csv_lines) + "\n")
    atomic_write_text(Path(f"{prefix}.md"), table + "\n")
    atomic_write_text(Path(f"{prefix}.json"), json.dumps({
        "protocol": "leave-one-subject-out; threshold at the validation-subject EER point unless fixed",
        "dataset": [str(d) for d in dataset], "seed": seed, "epochs_cap": epochs,
        "summary": rows, "folds": {n: o.folds for n, o in outcomes.items()},
    }, indent=2, default=float) + "\n")
    plot_bars(rows, Path(f"{prefix}.png"))
    LOGGER.info("saved %s.{md,csv,json,png}", prefix)
    return rows


def parse_opt(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("-d", "--dataset", action="append", required=True, help="folder of crops (repeatable)")
    ap.add_argument("--group-pattern", default=r"subject\d+", help="regex naming each crop's subject")
    ap.add_argument("--configs", nargs="+", default=list(DEFAULT_CONFIGS), help=f"from: {', '.join(CANDIDATES)}")
    ap.add_argument("-o", "--output", default=str(OUTPUT), help="prefix of the files written")
    ap.add_argument("--classes", nargs="+", default=None)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--epochs", type=int, default=None, help="cap every CNN's epochs")
    ap.add_argument("--max-folds", type=int, default=None, help="only the first N folds")
    ap.add_argument("--quick", action="store_true", help="2 epochs, 2 folds: checks that it all runs")
    ap.add_argument("-v", "--verbose", action="store_true")
    return ap.parse_args(argv)


def main(opt: argparse.Namespace) -> int:
    setup_logging(opt.verbose)
    run(
        dataset=opt.dataset, group_pattern=opt.group_pattern, configs=opt.configs, output=opt.output,
        classes=opt.classes, seed=opt.seed, epochs=2 if opt.quick else opt.epochs,
        max_folds=2 if opt.quick else opt.max_folds,
    )
    return 0


if __name__ == "__main__":
    cli_main(lambda: main(parse_opt()))
