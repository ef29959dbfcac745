"""Training utilities shared by the experiments: precision, distribution, callbacks, fitting.

Everything here is plain Keras 3 (`model.fit` with callbacks) so a user can lift one piece into a
notebook: `set_precision("bf16")`, `make_strategy("mirrored")`, `fit_segmenter(...)`.
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Callable, Sequence
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

PRECISIONS = ("auto", "fp32", "bf16")
STRATEGIES = ("default", "mirrored", "multi-worker")


def cpu_has_bf16() -> bool:
    """True if this CPU has native bfloat16 arithmetic (AVX512-BF16 or AMX)."""
    if platform.system() != "Linux":
        return False
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(precision: str = "auto") -> str:
    """ "auto" → "bf16" where it is faster (a GPU, or a CPU with bf16 units), else "fp32".

    On a 2-core AVX512-BF16 CPU the `mixed_bfloat16` policy trains a UNet about 3x faster than
    float32 (facts.md §7); without bf16 units it is slower.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"`precision` must be one of {PRECISIONS}, received {precision!r}")
    if precision != "auto":
        return precision
    if tf.config.list_physical_devices("GPU") or cpu_has_bf16():
        return "bf16"
    return "fp32"


def set_precision(precision: str = "auto") -> str:
    """Set the global Keras dtype policy; returns "fp32" or "bf16" (what was chosen)."""
    chosen = resolve_precision(precision)
    keras.mixed_precision.set_global_policy("mixed_bfloat16" if chosen == "bf16" else "float32")
    return chosen


def set_determinism(enabled: bool = True) -> None:
    """Make TensorFlow's ops bit-reproducible for a seed, or stop doing so.

    By default two CPU runs with the same seed drift apart from the first steps (threaded
    reductions add in a varying order): after 10 training steps of the recipe's UNet the
    weights differed by up to 0.15; with determinism on they were equal, at no measurable cost
    on a 2-core CPU. Ops without a deterministic kernel then raise instead of running.

    Example:
        >>> set_determinism(True)  # doctest: +SKIP
    """
    if enabled:
        tf.config.experimental.enable_op_determinism()
    else:
        tf.config.experimental.disable_op_determinism()


def make_strategy(name: str = "default") -> tf.distribute.Strategy:
    """A tf.distribute strategy: "default" (one device), "mirrored" (all local GPUs, or every
    logical CPU device), "multi-worker" (reads the standard ``TF_CONFIG``)."""
    if name not in STRATEGIES:
        raise ValueError(f"`strategy` must be one of {STRATEGIES}, received {name!r}")
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices=devices)
    if "TF_CONFIG" not in os.environ:
        raise ValueError("`strategy='multi-worker'` needs the TF_CONFIG environment variable")
    return tf.distribute.MultiWorkerMirroredStrategy()


class HalfEpochEvaluation(keras.callbacks.Callback):
    """Evaluate segmentation metrics on fixed images at every half epoch (the paper's Fig. 4).

    Args:
        images, masks: (N, H, W, 1) arrays to predict on.
        steps_per_epoch: batches per epoch (the half-way point is ``steps_per_epoch // 2``).
        evaluate: function (probabilities, masks) → dict of metric values.
        batch_size: prediction batch size.

    After training, ``self.rows`` holds one dict per evaluation with an ``epoch`` key
    (0.5, 1.0, 1.5, ...).
    """

    def __init__(self, images, masks, steps_per_epoch: int, evaluate: Callable, batch_size=8):
        super().__init__()
        self.images, self.masks = images, masks
        self.half = max(int(steps_per_epoch) // 2, 1)
        self.evaluate = evaluate
        self.batch_size = batch_size
        self.rows: list[dict] = []
        self._epoch = 0

    def _record(self, epoch: float) -> None:
        probabilities = self.model.predict(self.images, batch_size=self.batch_size, verbose=0)
        row = {"epoch": epoch, **self.evaluate(probabilities, self.masks)}
        self.rows.append(row)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if batch + 1 == self.half:
            self._record(self._epoch + 0.5)

    def on_epoch_end(self, epoch, logs=None):
        self._record(epoch + 1.0)


class StopAfterEpoch(keras.callbacks.Callback):
    """Simulate an interruption: raise `KeyboardInterrupt` once epoch ``epoch`` (1-based) ends.

    Used to test ``--resume``; keep it last in the callback list so every other callback has
    saved that epoch first.
    """

    def __init__(self, epoch: int):
        super().__init__()
        self.stop_epoch = int(epoch)

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.stop_epoch:
            raise KeyboardInterrupt(f"stopped after epoch {self.stop_epoch} (--stop-after-epoch)")


def fit_segmenter(
    model_fn: Callable[[], keras.Model],
    compile_fn: Callable[[keras.Model], None],
    train_data: tf.data.Dataset,
    val_data: tf.data.Dataset | None,
    epochs: int,
    run_dir: str | os.PathLike,
    strategy: tf.distribute.Strategy | None = None,
    steps_per_epoch: int | None = None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    resume: bool = False,
    stop_after_epoch: int | None = None,
    verbose: int | str = "auto",
) -> tuple[keras.Model, dict[str, list[float]]]:
    """Build, compile and fit a model with history, TensorBoard and resumable checkpoints.

    Writes into ``run_dir``: ``history.csv`` (one row per epoch, appended on resume),
    ``tensorboard/``, ``backup/`` (Keras `BackupAndRestore`; removed when training completes)
    and ``model.keras``.

    Args:
        model_fn: builds the (uncompiled) model; called inside the strategy's scope.
        compile_fn: compiles it (optimizer, loss, metrics); called inside the scope.
        train_data, val_data: batched datasets (global batch size).
        epochs: total epochs.
        run_dir: output folder of this training run.
        strategy: a tf.distribute strategy (None: the default one).
        steps_per_epoch: for repeated datasets.
        callbacks: extra callbacks.
        resume: continue from ``backup/`` if a previous run was interrupted; without it an
            old backup is discarded.
        stop_after_epoch: interrupt after this epoch (to test resuming).
        verbose: Keras progress-bar setting.

    Returns:
        (trained model, history dict of the epochs run in this call and earlier ones).
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    backup = run_dir / "backup"
    history_csv = run_dir / "history.csv"
    if not resume:
        import shutil

        shutil.rmtree(backup, ignore_errors=True)
        history_csv.unlink(missing_ok=True)
    strategy = strategy or tf.distribute.get_strategy()
    with strategy.scope():
        model = model_fn()
        compile_fn(model)
    # User callbacks come before the loggers, so a value they add to the epoch's logs (a
    # whole-image validation Dice, say) reaches history.csv and TensorBoard.
    all_callbacks = [
        keras.callbacks.BackupAndRestore(str(backup), delete_checkpoint=True),
        *callbacks,
        keras.callbacks.CSVLogger(str(history_csv), append=True),
        keras.callbacks.TensorBoard(str(run_dir / "tensorboard"), write_graph=False),
    ]
    if stop_after_epoch is not None:
        all_callbacks.append(StopAfterEpoch(stop_after_epoch))
    model.fit(
        train_data,
        validation_data=val_data,
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        callbacks=all_callbacks,
        verbose=verbose,
    )
    model.save(run_dir / "model.keras")
    return model, read_history(history_csv)


def read_history(path: str | os.PathLike) -> dict[str, list[float]]:
    """Read a Keras CSVLogger file into {column: values}."""
    import csv

    path = Path(path)
    if not path.is_file():
        return {}
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    return {key: [_number(row[key]) for row in rows] for key in (rows[0] if rows else {})}


def _number(text: str) -> float:
    """A CSVLogger cell as a float; Keras writes "NA" for a value an epoch did not have."""
    try:
        return float(text)
    except (TypeError, ValueError):
        return float("nan")


def to_probability_map(outputs, height: int, width: int) -> np.ndarray:
    """Model outputs of any segmentation head → tumour probabilities (N, H, W) float32.

    Handles a sigmoid map (N, H, W, 1), logits (a sigmoid is applied when values leave
    [0, 1]), and the shallow CNN's per-pixel softmax (N, H*W, 2) or (N, H, W, 2).
    """
    out = np.asarray(outputs, dtype=np.float32)
    if out.ndim == 3 and out.shape[1] == height * width:  # (N, H*W, classes)
        out = out.reshape(len(out), height, width, -1)
    if out.shape[-1] == 2:
        return out[..., 1]
    out = out[..., 0]
    if out.min() < 0.0 or out.max() > 1.0:
        out = 1.0 / (1.0 + np.exp(-out))
    return out


def predict_probabilities(model: keras.Model, images: np.ndarray, batch_size: int = 8):
    """Predicted tumour probabilities (N, H, W) float32, whatever the model's head."""
    outputs = model.predict(images, batch_size=batch_size, verbose=0)
    return to_probability_map(outputs, images.shape[1], images.shape[2])


def save_json(path: str | os.PathLike, data) -> None:
    """Write JSON atomically (temporary name, then rename)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=_to_builtin))
    os.replace(tmp, path)


def _to_builtin(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot serialise {type(value).__name__} to JSON")
