"""`mammoseg.training`: a simulated interruption (`StopAfterEpoch`) passed to `fit_segmenter`
as a callback leaves the interrupted epoch committed, and a resumed fit continues after it."""

from __future__ import annotations

import csv
import json

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
