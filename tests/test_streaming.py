"""Streaming (liveness/featcache.py, streaming.py) and distributed CNN training
(liveness/distribute.py): cache reuse and invalidation, parallel equals serial, files
read by tf.data as the in-memory path reads them, both tf.distribute modes train and save."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest

from liveness import ROOT, featcache
from liveness.dataset import Sample, read_images
from liveness.lbp import LBPClassifier, LBPSettings

SMALL = LBPSettings(size=32, points=4, radii=(1,), moments=True)


def _samples(folder: Path, n: int = 12) -> list[Sample]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        label = "real" if i % 2 else "fake"
        path = folder / label / f"{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), rng.integers(0, 256, (40 + i, 36, 3), dtype=np.uint8))
        out.append(Sample(path, label, f"s{i % 3}", f"g{i % 3}", i))
    return out


def test_parallel_equals_serial_equals_in_memory(tmp_path, monkeypatch):
    monkeypatch.setattr(featcache, "CHUNK", 4)  # several chunks, so the pool really splits the work
    samples = _samples(tmp_path)
    faces, _ = read_images(samples)
    expected = LBPClassifier.from_settings(SMALL).features(faces)
    serial, ok1 = featcache.lbp_features_streamed(samples, SMALL, workers=1, cache_dir=None, progress=False)
    parallel, ok2 = featcache.lbp_features_streamed(samples, SMALL, workers=2, cache_dir=None, progress=False)
    assert ok1.all() and ok2.all()
    np.testing.assert_array_equal(serial, expected)
    np.testing.assert_array_equal(parallel, expected)


def test_feature_cache_is_reused_and_invalidated(tmp_path, monkeypatch):
    samples = _samples(tmp_path / "data")
    cache = tmp_path / "cache"
    first, _ = featcache.lbp_features_streamed(samples, SMALL, workers=1, cache_dir=cache, progress=False)
    assert list((cache / "lbp").iterdir())
    calls = []
    real_extract = featcache._extract
    monkeypatch.setattr(featcache, "_extract", lambda st, ss: calls.append(len(ss)) or real_extract(st, ss))
    again, _ = featcache.lbp_features_streamed(samples, SMALL, workers=1, cache_dir=cache, progress=False)
    assert calls == []  # every row from the cache
    np.testing.assert_array_equal(again, first)
    other = LBPSettings(size=32, points=4, radii=(1, 2), moments=False)
    featcache.lbp_features_streamed(samples, other, workers=1, cache_dir=cache, progress=False)
    assert calls == [len(samples)]  # new settings: all computed again
    cv2.imwrite(str(samples[0].path), np.zeros((30, 30, 3), np.uint8))
    os.utime(samples[0].path, ns=(1, 1))  # a changed file: a new key
    changed, _ = featcache.lbp_features_streamed(samples, SMALL, workers=1, cache_dir=cache, progress=False)
    assert calls[-1] == 1
    assert not np.array_equal(changed[0], first[0]) and np.array_equal(changed[1:], first[1:])


def test_unreadable_images_are_skipped_not_fatal(tmp_path):
    from liveness.streaming import load_streaming_faceset

    samples = _samples(tmp_path)
    samples[0].path.write_bytes(b"not an image")
    data = load_streaming_faceset(samples, "real", settings=SMALL, workers=1, cache_dir=None, progress=False)
    assert len(data) == len(samples) - 1
    assert data.lbp_features(SMALL).shape[0] == len(data)


def test_streamed_cnn_input_matches_the_in_memory_one(tmp_path):
    from liveness.streaming import StreamingFaceSet
    from liveness.training import FaceSet, make_dataset

    samples = _samples(tmp_path)
    faces, _ = read_images(samples)
    memory = FaceSet(faces, samples, "real").cnn_input(16)
    lazy = StreamingFaceSet(samples, "real", workers=1).cnn_input(16)
    idx = np.array([3, 1, 7])
    np.testing.assert_array_equal(lazy[idx].astype(np.uint8), memory[idx])
    y = np.eye(2)[np.arange(len(samples)) % 2]
    a = [x.numpy() for x, _ in make_dataset(memory, y, 5, shuffle_seed=3)]
    b = [x.numpy() for x, _ in make_dataset(lazy, y, 5, shuffle_seed=3)]
    assert len(a) == len(b)
    for xa, xb in zip(a, b):
        np.testing.assert_array_equal(xa, xb)


# --- distributed training ------------------------------------------------------------------------
TRAIN = textwrap.dedent("""
    import json, sys
    import numpy as np
    from liveness import distribute
    mode, out = sys.argv[1], sys.argv[2]
    distribute.configure(mode, logical_cpus=2)
    from liveness.training import TrainConfig, fit_cnn
    rng = np.random.default_rng(0)
    y = np.arange(32) % 2
    x = rng.integers(0, 60, (32, 32, 32, 3)) + 180 * y[:, None, None, None]  # live faces brighter
    cfg = TrainConfig(scorer="cnn", input_size=32, batch_size=8, epochs=1, augment=False, lr=3e-3)
    model, hist, _ = fit_cnn(cfg, x.astype(np.uint8), y, epochs=2, verbose=0)
    # Training accuracy of the last epoch: a few dozen steps leave BatchNorm's moving
    # statistics unsettled, so inference-mode scores would say nothing yet.
    acc = hist["accuracy"][-1]
    if distribute.is_chief():
        model.save(out + "/cnn.keras")
        json.dump({"accuracy": acc, "replicas": distribute._STRATEGY.num_replicas_in_sync if distribute._STRATEGY else 1},
                  open(out + "/result.json", "w"))
""")


def _run(mode: str, out: Path, env: dict | None = None) -> subprocess.Popen:
    out.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [sys.executable, "-c", TRAIN, mode, str(out)], cwd=ROOT, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def _result(proc: subprocess.Popen, out: Path) -> dict:
    log, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0, log[-3000:]
    assert (out / "cnn.keras").is_file()
    return json.loads((out / "result.json").read_text())


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def test_mirrored_trains_and_saves_like_the_plain_run(tmp_path):
    plain = _run("none", tmp_path / "plain")
    mirrored = _run("mirrored", tmp_path / "mirrored")
    base = _result(plain, tmp_path / "plain")
    m = _result(mirrored, tmp_path / "mirrored")
    assert m["replicas"] == 2  # two logical CPU devices, in sync
    assert base["accuracy"] >= 0.9
    assert abs(m["accuracy"] - base["accuracy"]) <= 0.1


def test_multiworker_trains_and_saves_on_two_local_workers(tmp_path):
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    workers = [
        _run("multiworker", tmp_path / f"worker{i}", {"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})})
        for i in range(2)
    ]
    chief = _result(workers[0], tmp_path / "worker0")
    log, _ = workers[1].communicate(timeout=240)
    assert workers[1].returncode == 0, log[-3000:]
    assert not (tmp_path / "worker1" / "cnn.keras").exists()  # only the chief writes
    assert chief["replicas"] == 2 and chief["accuracy"] >= 0.9  # the plain run's quality (see above)


@pytest.mark.parametrize("synthetic", [0.0, 0.1])
def test_parallel_folds_equal_serial_folds(tmp_path, synthetic):
    """Worker processes get the features (and the augmented copies' and re-captures'),
    never the images, and score every fold as the serial run does."""
    from dataclasses import replace

    from liveness.crossval import leave_one_group_out
    from liveness.streaming import load_streaming_faceset
    from liveness.training import TrainConfig

    samples = _samples(tmp_path, 18)
    data = load_streaming_faceset(samples, "real", settings=SMALL, workers=1, cache_dir=None, progress=False)
    cfg = TrainConfig(lbp=replace(SMALL, synthetic=synthetic), folds=2)
    serial, _ = leave_one_group_out(cfg, data, workers=1)
    parallel, last = leave_one_group_out(cfg, data, workers=2)
    assert [r["group"] for r in parallel] == [r["group"] for r in serial]
    for a, b in zip(serial, parallel):
        for k in ("threshold", "apcer", "bpcer", "auc"):
            assert a[k] == pytest.approx(b[k], abs=1e-9, nan_ok=True)
    assert last.fitted.lbp is not None  # the last fold's scorer comes back (compare.py times it)
    assert last.fitted.lbp.synthetic == synthetic


def test_settings_that_differ_in_training_only_share_their_features(tmp_path):
    """compare.py's candidates that differ only in how they are trained (C, augmented copies,
    re-captures, balance) compute each image's features once, in memory and on disk."""
    from dataclasses import replace

    from liveness.featcache import settings_key
    from liveness.training import FaceSet

    trained_otherwise = replace(SMALL, C=0.5, augment=0, synthetic=0.2, balance="class")
    assert settings_key(trained_otherwise) == settings_key(SMALL)
    assert settings_key(replace(SMALL, radii=(1, 2))) != settings_key(SMALL)
    faces = [np.full((40, 40, 3), v, np.uint8) for v in (10, 200)]
    data = FaceSet(faces, _samples(tmp_path, 2)[:2], "real")
    assert data.lbp_features(trained_otherwise) is data.lbp_features(SMALL)


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"  # a zombie has exited; only its parent's successor has not reaped it yet


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_a_worker_leaves_when_its_parent_is_killed(tmp_path):
    """A compare.py killed alone (not Ctrl-C, which reaches the workers too) must not leave
    its fold workers training for nobody."""
    import time

    parent = tmp_path / "parent.py"
    parent.write_text(textwrap.dedent(f"""
        import os, sys, time
        sys.path.insert(0, {str(ROOT)!r})
        from concurrent.futures import ProcessPoolExecutor
        from liveness.featcache import one_thread, pool_context

        if __name__ == "__main__":
            pool = ProcessPoolExecutor(1, mp_context=pool_context(), initializer=one_thread)
            print(pool.submit(os.getpid).result(), flush=True)
            pool.submit(time.sleep, 300)  # a long job, as a CNN fold is
            time.sleep(300)
    """))
    proc = subprocess.Popen([sys.executable, str(parent)], stdout=subprocess.PIPE, text=True)
    try:
        worker = int(proc.stdout.readline())
        assert _running(worker)
    finally:
        proc.kill()
        proc.wait()
    deadline = time.monotonic() + 60
    while _running(worker) and time.monotonic() < deadline:
        time.sleep(0.2)
    alive = _running(worker)
    if alive:
        os.kill(worker, 9)
    assert not alive
