"""The benchmarks' measuring machinery: rounds, medians, paired ratios, machine facts,
child processes' own peak memory, the table and the JSON. Nothing here measures the suite.

    from benchmarks.harness import Row, paired_ratio, round_robin
    times = round_robin({"a": task_a, "b": task_b}, repeats=5)   # each task returns its seconds
    Row("3", "what", "frames/s", runs, ratio=paired_ratio(a, b), ratio_of="3/2", target=(">=", 0.9))

Two things compared run back to back, in rotating order, and a ratio is the median of
the per-round ratios: load that shifts over seconds hits both alike.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOGGER = logging.getLogger("liveness")
CHILD_TIMEOUT_S = 300


# --- statistics and rows ----------------------------------------------------------------
@dataclass
class Row:
    """One line of the table."""

    line: str  # "1", "4a", ...
    what: str
    unit: str
    runs: list[float]
    ratio: float | None = None
    ratio_of: str = ""  # e.g. "3/2"
    higher_is_better: bool = True
    extra: dict = field(default_factory=dict)
    target: tuple[str, float] | None = None  # (">=" or "<=", value) the ratio should meet

    @property
    def verdict(self) -> str:
        if self.target is None or self.ratio is None or not math.isfinite(self.ratio):
            return ""
        op, value = self.target
        ok = self.ratio >= value if op == ">=" else self.ratio <= value
        return "ok" if ok else "below target"

    def as_json(self) -> dict:
        lo, med, hi = spread(self.runs)
        return {
            "line": self.line[0], "id": self.line, "what": self.what, "unit": self.unit,
            "min": lo, "median": med, "max": hi, "runs": self.runs,
            "ratio": self.ratio, "ratio_of": self.ratio_of,
            "target": f"{self.target[0]} {self.target[1]:g}" if self.target else None,
            "verdict": self.verdict or None, "better": "higher" if self.higher_is_better else "lower", **self.extra,
        }


def spread(values: list[float]) -> tuple[float, float, float]:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    if not vals:
        return math.nan, math.nan, math.nan
    return min(vals), statistics.median(vals), max(vals)


def paired_ratio(a: list[float], b: list[float]) -> float:
    """Median over rounds of a[i] / b[i]: each pair ran back to back, under the same load."""
    pairs = [x / y for x, y in zip(a, b) if y and math.isfinite(x) and math.isfinite(y)]
    return statistics.median(pairs) if pairs else math.nan


def round_robin(tasks: dict[str, Callable[[], float]], repeats: int, warmup: int = 1) -> dict[str, list[float]]:
    """Run every task once per round, `warmup` + `repeats` rounds, rotating the order.

    Each task returns its own measured seconds (so set-up outside the timed part is
    not counted). Warm-up rounds are discarded.
    """
    names = list(tasks)
    out: dict[str, list[float]] = {n: [] for n in names}
    for r in range(warmup + repeats):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:  # rotation: no task always runs right after another
            seconds = tasks[name]()
            if r >= warmup:
                out[name].append(seconds)
    return out


@contextlib.contextmanager
def quiet(level: int = logging.WARNING) -> Iterator[None]:
    """The product's [INFO] lines (gather summaries, model loading) off while timing."""
    before = LOGGER.level
    LOGGER.setLevel(max(level, before))
    try:
        yield
    finally:
        LOGGER.setLevel(before)


class Phases:
    """Logs each step with the time since the start, and keeps how long each took."""

    def __init__(self) -> None:
        self.began = self.last = time.perf_counter()
        self.name: str | None = None
        self.seconds: dict[str, float] = {}

    def __call__(self, name: str | None, message: str = "", *args) -> None:
        now = time.perf_counter()
        if self.name is not None:
            self.seconds[self.name] = round(now - self.last, 1)
        self.name, self.last = name, now
        if message:
            LOGGER.info("[%5.1f s] " + message, now - self.began, *args)

    @property
    def total(self) -> float:
        return time.perf_counter() - self.began


# --- machine ----------------------------------------------------------------------------
def machine_info() -> dict:
    import cv2
    import numpy as np

    info = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu_model": _cpu_model(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "opencv": cv2.__version__,
        "opencv_threads": cv2.getNumThreads(),
        "load_average_start": loadavg(),
    }
    mem = _meminfo_gib()
    if mem:
        info["memory_gib"] = mem
    return info


def library_versions() -> dict:
    versions = {}
    for name in ("tensorflow", "keras", "tf2onnx", "onnx"):
        with contextlib.suppress(Exception):
            from importlib.metadata import version

            versions[name] = version(name)
    return versions


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def loadavg() -> list[float] | None:
    with contextlib.suppress(OSError, AttributeError):
        return [round(v, 2) for v in os.getloadavg()]
    return None


def _meminfo_gib() -> float | None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    return None


# --- child processes (line 7) -------------------------------------------------------------
# A script runs in a fresh interpreter under this wrapper, which writes the process's own
# peak resident memory (VmHWM) to $LIVENESS_BENCH_HWM at exit. Not ru_maxrss: Linux carries
# the parent's high-water mark across fork/vfork + exec, so a child started by this (big,
# TensorFlow-loaded) process would report at least this process's size.
_WRAPPER = """\
import atexit, os, resource, runpy, sys
def _peak():
    kib = None
    try:
        with open("/proc/self/status") as f:
            kib = next(int(l.split()[1]) for l in f if l.startswith("VmHWM:"))
    except (OSError, StopIteration, ValueError):
        r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        kib = r // 1024 if sys.platform == "darwin" else r
    with open(os.environ["LIVENESS_BENCH_HWM"], "w") as f:
        f.write(str(kib))
atexit.register(_peak)
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@dataclass
class Child:
    cmd: list[str]
    proc: subprocess.Popen
    started: float
    stderr: object
    timer: threading.Timer
    hwm: Path


def start_child(script: Path, args: list[str], *, stdout_pipe: bool = False, timeout: float = CHILD_TIMEOUT_S) -> Child:
    """`python script args...` in a fresh process (cwd: the project), timed from now."""
    fd, hwm = tempfile.mkstemp(prefix="liveness_bench_hwm_")
    os.close(fd)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1", "LIVENESS_BENCH_HWM": hwm}
    cmd = [sys.executable, "-c", _WRAPPER, str(script), *map(str, args)]
    err = tempfile.TemporaryFile()
    started = time.perf_counter()
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stderr=err,
        stdout=subprocess.PIPE if stdout_pipe else subprocess.DEVNULL,
    )
    timer = threading.Timer(timeout, proc.kill)
    timer.daemon = True
    timer.start()
    return Child([str(script), *map(str, args)], proc, started, err, timer, Path(hwm))


def kill_child(child: Child) -> None:
    """Stop a child this benchmark started (on an error or Ctrl-C here)."""
    child.timer.cancel()
    if child.proc.poll() is None:
        child.proc.kill()
        child.proc.wait()
    for stream in (child.proc.stdout, child.stderr):
        if stream is not None:
            stream.close()
    child.hwm.unlink(missing_ok=True)


def finish_child(child: Child) -> dict:
    """Wait for the child: wall seconds since launch, its own peak RSS, its stderr."""
    try:
        child.proc.wait()
    finally:
        child.timer.cancel()
    wall = time.perf_counter() - child.started
    if child.proc.stdout is not None:
        child.proc.stdout.close()
    child.stderr.seek(0)
    stderr = child.stderr.read().decode("utf-8", errors="replace")
    child.stderr.close()
    try:
        text = child.hwm.read_text().strip()
    finally:
        child.hwm.unlink(missing_ok=True)
    if child.proc.returncode != 0:
        tail = "\n".join(stderr.strip().splitlines()[-8:])
        raise RuntimeError(f"{' '.join(child.cmd)} exited with {child.proc.returncode}:\n{tail}")
    peak = int(text) / 1024 if text else math.nan
    return {"wall_s": wall, "peak_rss_mib": peak, "stderr": stderr}


def import_tensorflow() -> None:
    from liveness.cli import import_tensorflow as quiet_import  # keeps TF's C++ start-up lines off stderr

    quiet_import()


# --- output ---------------------------------------------------------------------------
def atomic_write_text_json(path: Path, data: dict) -> None:
    from liveness.fileio import atomic_write_text

    atomic_write_text(path, json.dumps(data, indent=2, default=float, allow_nan=True) + "\n")


def _num(v: float) -> str:
    if v is None or not math.isfinite(v):
        return "-"
    a = abs(v)
    return f"{v:.0f}" if a >= 100 else f"{v:.1f}" if a >= 10 else f"{v:.2f}" if a >= 1 else f"{v:.3f}"


def print_table(rows: list[Row], results: dict) -> None:
    s, m = results["settings"], results["machine"]
    print(f"liveness benchmark{' (--quick: checks the machinery; figures not for publishing)' if results['quick'] else ''}")
    print(f"video: {s['video']}; {s['frames']} frames; median of {s['repeats']} rounds after 1 warm-up round")
    print(f"model: {s['model']}; the demo scores faces with {s['demo_scorer']}")
    header = f"{'line':<4} {'what':<72} {'min':>7} {'median':>7} {'max':>7} {'unit':<9} {'ratio':>7} {'of':<18} {'target':<7} verdict"
    print(header)
    print("-" * len(header))
    for r in rows:
        lo, med, hi = spread(r.runs)
        target = f"{r.target[0]}{r.target[1]:g}" if r.target else ""
        print(
            f"{r.line:<4} {r.what[:72]:<72} {_num(lo):>7} {_num(med):>7} {_num(hi):>7} {r.unit:<9} "
            f"{_num(r.ratio) if r.ratio is not None else '':>7} {r.ratio_of:<18} {target:<7} {r.verdict}"
        )
    versions = ", ".join(f"{k} {m[k]}" for k in ("python", "numpy", "opencv", "tensorflow", "keras", "tf2onnx") if k in m)
    print(
        f"machine: {m['cpu_count']} CPUs ({m['cpus_usable']} usable, {m['cpu_model']}), {m.get('memory_gib', '?')} GiB, "
        f"{m['platform']}; load average {m['load_average_start']} -> {m['load_average_end']}"
    )
    print(f"versions: {versions}; measured {m['date']}; {results['seconds_total']:.0f} s in all")


