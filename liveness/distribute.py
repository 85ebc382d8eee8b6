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


# Train steps Keras runs per Python call. One step of a small CNN at a small batch is
# mostly Python and dispatch overhead on a CPU; running several per call changes no number
# (the same batches in the same order, the same updates) and only epoch-level callbacks
# are used. Distributed runs keep one: their log reduction is patched per step.
STEPS_PER_EXECUTION = 32


def is_distributed() -> bool:
    return _MODE != "none"


def steps_per_execution() -> int:
    return 1 if is_distributed() else STEPS_PER_EXECUTION


def strategy_scope():
    return _STRATEGY.scope() if _STRATEGY is not None else contextlib.nullcontext()


def is_chief() -> bool:
    """False only for a multi-worker run's workers other than the chief (the task typed
    'chief', else worker 0): they train alike but must not write the model."""
    if _MODE != "multiworker":
        return True
    config = json.loads(os.environ["TF_CONFIG"])
    task = config.get("task", {})
    if "chief" in config.get("cluster", {}):
        return task.get("type") == "chief"
    return task.get("type") == "worker" and int(task.get("index", 0)) == 0


def shard_options(ds):
    """Multi-worker: shard by element (files are not the unit here), else unchanged."""
    if _MODE != "multiworker":
        return ds
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options)


def prepare_fit(model, input_size: int) -> None:
    """Multi-worker only: build the compiled model's loss, metrics and optimizer from
    shapes before fit. Keras 3's own symbolic build at fit time averages a real batch
    with strategy.reduce, which MultiWorkerMirroredStrategy refuses in eager mode
    ("Attempt to convert a value (PerReplica...) to a Tensor")."""
    if _MODE != "multiworker":
        return
    import numpy as np

    batch = (np.zeros((1, input_size, input_size, 3), np.float32), np.zeros((1, 2), np.float32), np.ones((1,), np.float32))
    with _STRATEGY.scope():
        model._symbolic_build(data_batch=batch)
    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None  # built above
    _patch_log_reduction()


def _patch_log_reduction() -> None:
    """Keras 3 averages each step's logs over the workers with reduce(axis=0), which fails
    for scalar logs (loss, accuracy) under MultiWorkerMirroredStrategy: average scalars
    with axis=None instead. Every worker then sees the same global figures, so early
    stopping and the learning-rate schedule decide alike everywhere (else they would
    stop at different epochs and wait on each other for ever)."""
    from keras.src.backend.tensorflow import trainer

    if getattr(trainer.reduce_per_replica, "_liveness", False):
        return
    original = trainer.reduce_per_replica

    def reduce_per_replica(values, strategy, reduction="auto"):
        if reduction not in ("auto", "mean") or not trainer._collective_all_reduce_multi_worker(strategy):
            return original(values, strategy, reduction)

        def mean(v):
            rank = strategy.experimental_local_results(v)[0].shape.rank if trainer._is_per_replica_instance(v) else v.shape.rank
            return strategy.reduce("MEAN", v, axis=None if rank == 0 else 0)

        from keras.src import tree

        return tree.map_structure(mean, values)

    reduce_per_replica._liveness = True
    trainer.reduce_per_replica = reduce_per_replica
