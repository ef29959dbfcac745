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

from mammoseg.checks import check_positive_int

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


def set_determinism(*, enabled: bool = True) -> None:
    """Make TensorFlow's ops bit-reproducible for a seed for the rest of this process.

    By default two CPU runs with the same seed drift apart from the first steps (threaded
    reductions add in a varying order): after 10 training steps of the recipe's UNet the
    weights differed by up to 0.15; with determinism on they were equal, at no measurable cost
    on a 2-core CPU. Ops without a deterministic kernel then raise instead of running.

    TensorFlow's public API can turn op determinism on but not off again, so
    ``enabled=False`` does nothing in a process where it was never turned on, and raises a
    ``RuntimeError`` (start a new process) where this function turned it on.

    Example:
        >>> set_determinism(enabled=True)  # doctest: +SKIP
    """
    global _DETERMINISM_ON
    if enabled:
        tf.config.experimental.enable_op_determinism()
        _DETERMINISM_ON = True
    elif _DETERMINISM_ON:
        raise RuntimeError(
            "op determinism was turned on in this process and TensorFlow offers no public way "
            "to turn it off: run the non-deterministic work in a new process"
        )


_DETERMINISM_ON = False


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
    return MultiWorkerStrategy()


class MultiWorkerStrategy(tf.distribute.MultiWorkerMirroredStrategy):
    """`tf.distribute.MultiWorkerMirroredStrategy` whose `reduce` works with Keras 3's ``fit``.

    Two measured failures of the stock strategy under Keras 3.15 ``fit`` (two worker
    processes, tests/test_multi_worker.py), fixed here by reducing differently, nothing else:

    - ``fit`` averages every per-replica log (the loss, a metric: scalars) with
      ``strategy.reduce("MEAN", value, axis=0)``, which fails on a scalar ("Invalid reduction
      dimension 0 for input with 0 dimensions", tensorflow/tensorflow#72388): a scalar is
      averaged over the replicas instead (axis None), its only meaning.
    - Before building the model ``fit`` reduces the first (image, mask) batch in one call; from
      ``distribute_datasets_from_function`` (each worker reading its own shards:
      `mammoseg.data.pipeline.distributed_dataset`) that is a tuple of per-replica values, which
      the stock strategy cannot reduce ("Attempt to convert a value (PerReplica:...) to a
      Tensor"): each element is reduced on its own, as MirroredStrategy does.

    Example:
        >>> strategy = MultiWorkerStrategy()  # doctest: +SKIP  (reads TF_CONFIG)
    """

    def reduce(self, reduce_op, value, axis):
        reduce = super().reduce

        def one(item):
            local = tf.nest.flatten(self.experimental_local_results(item))[0]
            scalar = axis is not None and tf.convert_to_tensor(local).shape.rank == 0
            return reduce(reduce_op, item, None if scalar else axis)

        return tf.nest.map_structure(one, value)


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

    It raises when the next epoch would begin (or training would end), never inside
    ``on_epoch_end``, so every callback, wherever it stands in the list, has finished that
    epoch first: `EpochCheckpoint` has committed it, as a real interruption between epochs
    would find it. Only an epoch that ends during this ``fit`` counts, so a resumed run that
    starts after ``epoch`` trains on.

    Args:
        epoch: the last epoch to complete, counted from 1.

    Raises:
        ValueError: ``epoch`` is not a positive integer.

    Example:
        >>> fit_segmenter(..., callbacks=[StopAfterEpoch(1)])  # doctest: +SKIP
    """

    def __init__(self, epoch: int) -> None:
        super().__init__()
        self.stop_epoch = check_positive_int("epoch", epoch)
        self._completed: int | None = None

    def on_train_begin(self, logs=None):
        self._completed = None

    def on_epoch_end(self, epoch, logs=None):
        self._completed = epoch + 1

    def on_epoch_begin(self, epoch, logs=None):
        self._interrupt_if_done()

    def on_train_end(self, logs=None):
        self._interrupt_if_done()

    def _interrupt_if_done(self) -> None:
        if self._completed == self.stop_epoch:
            raise KeyboardInterrupt(f"stopped after epoch {self.stop_epoch} (--stop-after-epoch)")


class CheckpointError(RuntimeError):
    """A training checkpoint exists but cannot be read: the run cannot resume from it."""


class EpochCheckpoint(keras.callbacks.Callback):
    """Crash-safe training state, committed once per epoch by one atomic rename.

    At each epoch's end the weights (with the optimizer's state) go to a temporary name in
    ``folder`` and are renamed to ``epoch-NNNN.weights.h5``; then ``state.json`` (the epoch, the
    history rows and every recorder's ``rows``) replaces the previous one; only then is the
    previous weights file deleted. A kill at any instant therefore leaves either the old or the
    new epoch complete, never a mixture, and the history and Fig. 4 rows of each epoch exist
    exactly once. Keep it after the callbacks that add to the epoch's logs or rows.

    Args:
        folder: the checkpoint folder.
        recorders: callbacks with a ``rows`` list (`HalfEpochEvaluation`) saved and restored
            with the weights.
        history_csv: where to write the history (one row per complete epoch), if anywhere.

    Example:
        >>> checkpoint = EpochCheckpoint(run_dir / "checkpoint", recorders=[curve])
        >>> initial_epoch = checkpoint.restore(model)  # 0 when there is nothing to resume
    """

    def __init__(self, folder, recorders: Sequence = (), history_csv=None):
        super().__init__()
        self.folder = Path(folder)
        self.recorders = list(recorders)
        self.history_csv = None if history_csv is None else Path(history_csv)
        self.history: list[dict] = []
        self.epoch = 0

    @property
    def state_file(self) -> Path:
        return self.folder / "state.json"

    def restore(self, model: keras.Model) -> int:
        """Load the last complete epoch into ``model`` and the recorders; return its number.

        Raises:
            CheckpointError: ``state.json`` or its weights file cannot be read.
        """
        if not self.state_file.is_file():
            return 0
        try:
            state = json.loads(self.state_file.read_text())
            epoch, weights = int(state["epoch"]), self.folder / state["weights"]
            history, rows = list(state["history"]), list(state["rows"])
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise CheckpointError(
                f"{self.state_file}: cannot be read ({type(err).__name__}: {err}); "
                "start the run again with --overwrite"
            ) from err
        if len(rows) != len(self.recorders) or len(history) != epoch:
            raise CheckpointError(
                f"{self.state_file}: holds {len(history)} history row(s) for epoch {epoch} "
                f"and {len(rows)} recorder(s), expected {epoch} and {len(self.recorders)}"
            )
        if model.optimizer is not None and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        try:
            model.load_weights(weights)
        except Exception as err:  # h5py/Keras raise several types for a damaged file
            raise CheckpointError(
                f"{weights}: the checkpoint of epoch {epoch} cannot be loaded "
                f"({type(err).__name__}: {err}); start the run again with --overwrite"
            ) from err
        self.epoch, self.history = epoch, history
        for recorder, saved in zip(self.recorders, rows):
            recorder.rows[:] = saved
        return epoch

    def on_epoch_end(self, epoch, logs=None):
        self.folder.mkdir(parents=True, exist_ok=True)
        number = epoch + 1
        name = f"epoch-{number:04d}.weights.h5"
        tmp = self.folder / f"epoch-{number:04d}.part.weights.h5"
        self.model.save_weights(tmp)
        os.replace(tmp, self.folder / name)
        row = {"epoch": epoch, **{k: float(v) for k, v in (logs or {}).items()}}
        history = [*self.history, row]
        state = {
            "epoch": number,
            "weights": name,
            "history": history,
            "rows": [list(recorder.rows) for recorder in self.recorders],
        }
        save_json(self.state_file, state)  # the commit point
        self.epoch, self.history = number, history
        for old in self.folder.glob("epoch-*.weights.h5"):
            if old.name != name:
                old.unlink(missing_ok=True)
        if self.history_csv is not None:
            write_history(self.history_csv, history)

    def history_dict(self) -> dict[str, list[float]]:
        """The history as {column: values}, one value per complete epoch."""
        keys = [k for k in dict.fromkeys(k for row in self.history for k in row) if k != "epoch"]
        return {k: [float(row.get(k, float("nan"))) for row in self.history] for k in keys}


def fit_segmenter(
    model_fn: Callable[[], keras.Model],
    compile_fn: Callable[[keras.Model], None],
    train_data: tf.data.Dataset,
    val_data: tf.data.Dataset | None,
    *,
    epochs: int,
    run_dir: str | os.PathLike,
    strategy: tf.distribute.Strategy | None = None,
    steps_per_epoch: int | None = None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    resume: bool = False,
    verbose: int | str = "auto",
) -> tuple[keras.Model, dict[str, list[float]]]:
    """Build, compile and fit a model with history, TensorBoard and crash-safe checkpoints.

    Writes into ``run_dir``: ``history.csv`` (one row per complete epoch), ``tensorboard/``,
    ``checkpoint/`` (`EpochCheckpoint`: the last complete epoch) and ``model.keras``, each
    written to a temporary name and renamed.

    Args:
        model_fn: builds the (uncompiled) model; called inside the strategy's scope.
        compile_fn: compiles it (optimizer, loss, metrics); called inside the scope.
        train_data, val_data: batched datasets (global batch size).
        epochs: total epochs.
        run_dir: output folder of this training run.
        strategy: a tf.distribute strategy (None: the default one).
        steps_per_epoch: for repeated datasets.
        callbacks: extra callbacks, run before the checkpoint; those with a ``rows`` list
            (`HalfEpochEvaluation`) are checkpointed with the weights, so their rows survive a
            resume exactly once. `StopAfterEpoch` here simulates an interruption.
        resume: continue from ``checkpoint/`` if a previous run was interrupted; without it
            an old checkpoint is discarded.
        verbose: Keras progress-bar setting.

    Returns:
        (trained model, history dict of every complete epoch, earlier runs included).

    Raises:
        CheckpointError: ``resume`` and the checkpoint cannot be read.

    Example:
        >>> model, history = fit_segmenter(
        ...     lambda: build_model("unet", input_shape=(64, 64, 1)),
        ...     lambda m: m.compile(optimizer="adam", loss=DiceLoss()),
        ...     train_data,
        ...     val_data,
        ...     epochs=2,
        ...     run_dir="runs/unet",
        ... )  # doctest: +SKIP
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    history_csv = run_dir / "history.csv"
    recorders = [c for c in callbacks if isinstance(getattr(c, "rows", None), list)]
    checkpoint = EpochCheckpoint(run_dir / "checkpoint", recorders, history_csv=history_csv)
    if not resume:
        import shutil

        shutil.rmtree(checkpoint.folder, ignore_errors=True)
        shutil.rmtree(run_dir / "backup", ignore_errors=True)  # the former BackupAndRestore
        history_csv.unlink(missing_ok=True)
    strategy = strategy or tf.distribute.get_strategy()
    with strategy.scope():
        model = model_fn()
        compile_fn(model)
        initial_epoch = checkpoint.restore(model) if resume else 0
    if initial_epoch:
        print(f"  resuming after epoch {initial_epoch} from {checkpoint.folder}")
    # User callbacks come before the checkpoint, so a value they add to the epoch's logs (a
    # whole-image validation Dice, say) and their rows are part of the epoch it commits.
    all_callbacks = [
        *callbacks,
        checkpoint,
        keras.callbacks.TensorBoard(str(run_dir / "tensorboard"), write_graph=False),
    ]
    if initial_epoch < epochs:
        model.fit(
            train_data,
            validation_data=val_data,
            epochs=epochs,
            initial_epoch=initial_epoch,
            steps_per_epoch=steps_per_epoch,
            callbacks=all_callbacks,
            verbose=verbose,
        )
    tmp = run_dir / "model.part.keras"
    model.save(tmp)
    os.replace(tmp, run_dir / "model.keras")
    return model, checkpoint.history_dict()


def write_history(path: str | os.PathLike, rows: Sequence[dict]) -> None:
    """Write history rows ({"epoch": ..., metric: value}) as CSV, atomically."""
    import csv
    import io

    keys = list(dict.fromkeys(k for row in rows for k in row))
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=keys, restval="NA", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, text.getvalue())


def read_history(path: str | os.PathLike) -> dict[str, list[float]]:
    """Read a history CSV (``write_history`` or Keras CSVLogger) into {column: values}."""
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


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write a text file to a temporary name in its folder, then rename it into place."""
    path = Path(path)
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def save_json(path: str | os.PathLike, data) -> None:
    """Write JSON atomically (temporary name, then rename)."""
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False, default=_to_builtin))


def _to_builtin(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot serialise {type(value).__name__} to JSON")
