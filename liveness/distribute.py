"""CNN training beyond one device, with tf.distribute (``train.py --distribute``).

- ``mirrored``: every GPU of this machine (tf.distribute.MirroredStrategy); with no GPU,
  ``logical_cpus`` splits the CPU into that many devices (how the tests run it).
- ``multiworker``: several machines (MultiWorkerMirroredStrategy) described by the
  ``TF_CONFIG`` environment variable; every worker runs the same command and only the
  chief (worker 0) writes the model where asked.

The strategy must exist before TensorFlow runs anything, so scripts call configure()
first; fit_cnn builds and compiles under strategy_scope(). The batch size is global:
each step's batch is split over the replicas.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os

LOGGER = logging.getLogger("liveness")

MODES = ("none", "mirrored", "multiworker")
_STRATEGY = None
_MODE = "none"


def configure(mode: str = "none", *, logical_cpus: int | None = None):
    """Create the process's strategy (once); returns it (None for 'none')."""
    global _STRATEGY, _MODE
    if mode not in MODES:
        raise ValueError(f"distribute must be one of {', '.join(MODES)}, got {mode!r}")
    if mode == "none" or _MODE == mode:
        return _STRATEGY
    if _STRATEGY is not None:
        raise ValueError(f"a {_MODE} strategy already runs in this process")
    import tensorflow as tf

    if mode == "mirrored":
        gpus = tf.config.list_physical_devices("GPU")
        devices = None
        if not gpus:
            cpu = tf.config.list_physical_devices("CPU")[0]
            n = logical_cpus or 1
            if n > 1:
                tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * n)
            devices = [d.name for d in tf.config.list_logical_devices("CPU")]
        _STRATEGY = tf.distribute.MirroredStrategy(devices=devices)
    else:
        if not os.environ.get("TF_CONFIG"):
            raise ValueError("--distribute multiworker needs TF_CONFIG (the cluster and this worker's index)")
        try:
            json.loads(os.environ["TF_CONFIG"])
        except ValueError as e:
            raise ValueError(f"TF_CONFIG is not valid JSON: {e}") from None
        _STRATEGY = tf.distribute.MultiWorkerMirroredStrategy()
    _MODE = mode
    LOGGER.info("distributed training: %s, %d replica(s) in sync", mode, _STRATEGY.num_replicas_in_sync)
    return _STRATEGY


def strategy_scope():
    return _STRATEGY.scope() if _STRATEGY is not None else contextlib.nullcontext()


def is_chief() -> bool:
    """True unless this is a multi-worker run's worker other than 0 (or a non-chief task)."""
    if _MODE != "multiworker":
        return True
    task = json.loads(os.environ["TF_CONFIG"]).get("task", {})
    return task.get("type") == "chief" or (task.get("type") == "worker" and int(task.get("index", 0)) == 0
                                           and "chief" not in json.loads(os.environ["TF_CONFIG"]).get("cluster", {}))


def shard_options(ds):
    """Multi-worker: shard by element (files are not the unit here), else unchanged."""
    if _MODE != "multiworker":
        return ds
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options)
