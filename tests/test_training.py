"""`mammoseg.training`: a simulated interruption (`StopAfterEpoch`) passed to `fit_segmenter`
as a callback leaves the interrupted epoch committed, and a resumed fit continues after it."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from mammoseg.training import StopAfterEpoch, fit_segmenter


def _data() -> tf.data.Dataset:
    rng = np.random.default_rng(0)
    images = rng.random((4, 8, 8, 1)).astype("float32")
    masks = (images > 0.5).astype("float32")
    return tf.data.Dataset.from_tensor_slices((images, masks)).batch(2)


def _fit(folder, epochs: int, callbacks=(), resume: bool = False):
    def model_fn():
        inputs = keras.Input((8, 8, 1))
        return keras.Model(inputs, keras.layers.Conv2D(1, 1, activation="sigmoid")(inputs))

    return fit_segmenter(
        model_fn,
        lambda model: model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse"),
        _data(),
        None,
        epochs=epochs,
        run_dir=folder,
        callbacks=callbacks,
        resume=resume,
        verbose=0,
    )


def _history_epochs(folder) -> list[int]:
    with open(folder / "history.csv", newline="") as handle:
        return [int(row["epoch"]) for row in csv.DictReader(handle)]


def test_stop_after_epoch_leaves_that_epoch_committed_and_resume_finishes(tmp_path):
    # First in the list, before fit_segmenter's checkpoint: the interruption still comes only
    # once the checkpoint has committed epoch 1.
    with pytest.raises(KeyboardInterrupt, match="stopped after epoch 1"):
        _fit(tmp_path, 3, callbacks=[StopAfterEpoch(1)])
    state = json.loads((tmp_path / "checkpoint" / "state.json").read_text())
    assert state["epoch"] == 1 and len(state["history"]) == 1
    assert _history_epochs(tmp_path) == [0]
    assert not (tmp_path / "model.keras").exists()  # the run did not finish

    # The same callback on the resumed fit: epoch 1 does not end in this fit, so it trains on.
    _, history = _fit(tmp_path, 3, callbacks=[StopAfterEpoch(1)], resume=True)
    assert len(history["loss"]) == 3
    assert _history_epochs(tmp_path) == [0, 1, 2]
    assert (tmp_path / "model.keras").is_file()


def test_stop_after_the_last_epoch_still_interrupts(tmp_path):
    with pytest.raises(KeyboardInterrupt, match="stopped after epoch 2"):
        _fit(tmp_path, 2, callbacks=[StopAfterEpoch(2)])
    assert json.loads((tmp_path / "checkpoint" / "state.json").read_text())["epoch"] == 2
    assert not (tmp_path / "model.keras").exists()


@pytest.mark.parametrize("epoch", [0, -1, 1.5, True])
def test_stop_after_epoch_needs_a_positive_integer(epoch):
    with pytest.raises(ValueError, match=f"`epoch` must be a positive integer, received {epoch}"):
        StopAfterEpoch(epoch)


# --------------------------------------------------------------------------- torn writes (issue 15)


class _Killed(BaseException):
    """A kill at one exact instant of the checkpoint write (nothing after it runs)."""


def _kill_at_rename(monkeypatch, name: str, occurrence: int) -> None:
    import os

    real_replace = os.replace
    seen = []

    def replace(src, dst):
        if str(dst).endswith(name):
            seen.append(dst)
            if len(seen) == occurrence:
                raise _Killed(f"killed before {name} was renamed into place")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)


def _weights_of(folder, file_name):
    inputs = keras.Input((8, 8, 1))
    model = keras.Model(inputs, keras.layers.Conv2D(1, 1, activation="sigmoid")(inputs))
    model.load_weights(folder / "checkpoint" / file_name)
    return [w.numpy() for w in model.weights]


@pytest.mark.parametrize(
    "torn", ["state.json", "epoch-0002.weights.h5"], ids=["before-commit", "mid-weights"]
)
def test_a_kill_inside_the_checkpoint_write_resumes_from_the_last_complete_epoch(
    tmp_path, monkeypatch, torn
):
    # Kill epoch 2's checkpoint write just before its commit (state.json) or just before its
    # weights file is renamed into place: epoch 1 must stay the complete one.
    with monkeypatch.context() as patch:
        # state.json is committed once per epoch: its second rename is epoch 2's commit.
        _kill_at_rename(patch, torn, 2 if torn == "state.json" else 1)
        with pytest.raises(_Killed):
            _fit(tmp_path, 3)
    folder = tmp_path / "checkpoint"
    state = json.loads((folder / "state.json").read_text())
    assert state["epoch"] == 1 and state["weights"] == "epoch-0001.weights.h5"
    assert [row["epoch"] for row in state["history"]] == [0]
    assert (folder / "epoch-0001.weights.h5").is_file()  # kept until a newer epoch commits
    assert _history_epochs(tmp_path) == [0]
    if torn == "state.json":  # epoch 2's weights were complete but never committed
        orphan = _weights_of(tmp_path, "epoch-0002.weights.h5")
        assert not all(
            np.array_equal(a, b)
            for a, b in zip(orphan, _weights_of(tmp_path, "epoch-0001.weights.h5"))
        )

    expected_start = _weights_of(tmp_path, "epoch-0001.weights.h5")
    inputs = keras.Input((8, 8, 1))
    probe = keras.Model(inputs, keras.layers.Conv2D(1, 1, activation="sigmoid")(inputs))
    probe.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    from mammoseg.training import EpochCheckpoint

    assert EpochCheckpoint(folder).restore(probe) == 1
    for got, want in zip(probe.weights, expected_start):
        np.testing.assert_array_equal(got.numpy(), want)

    _, history = _fit(tmp_path, 3, resume=True)
    assert len(history["loss"]) == 3
    assert _history_epochs(tmp_path) == [0, 1, 2]  # every epoch exactly once
    final = json.loads((folder / "state.json").read_text())
    assert final["epoch"] == 3 and [row["epoch"] for row in final["history"]] == [0, 1, 2]
    assert sorted(p.name for p in folder.glob("epoch-*.weights.h5")) == ["epoch-0003.weights.h5"]


def test_an_unreadable_checkpoint_is_an_error_naming_the_file(tmp_path):
    from mammoseg.training import CheckpointError

    _fit(tmp_path, 1)
    folder = tmp_path / "checkpoint"
    weights = folder / "epoch-0001.weights.h5"
    weights.write_bytes(weights.read_bytes()[:200])  # damaged on disk after its commit
    with pytest.raises(
        CheckpointError, match=r"epoch-0001\.weights\.h5: the checkpoint of epoch 1"
    ):
        _fit(tmp_path, 2, resume=True)
    (folder / "state.json").write_text('{"epoch": 1, "wei')  # a torn state file
    with pytest.raises(CheckpointError, match=r"state\.json: cannot be read \(JSONDecodeError"):
        _fit(tmp_path, 2, resume=True)


def test_determinism_cannot_be_turned_off_once_on_and_says_so():
    # In a child process: op determinism is process-wide and cannot be undone.
    code = (
        "from mammoseg import training\n"
        "training.set_determinism(enabled=False)\n"  # never on: nothing to do
        "training.set_determinism(enabled=True)\n"
        "import tensorflow as tf\n"
        "from tensorflow.python.framework import config\n"
        "assert config.is_op_determinism_enabled()\n"
        "try:\n"
        "    training.set_determinism(enabled=False)\n"
        "except RuntimeError as err:\n"
        "    print('refused:', err)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "refused: op determinism was turned on in this process" in done.stdout
