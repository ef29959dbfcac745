"""Feed-forward regressor (paper V.A): variants, targets, dead-unit diagnosis."""

import keras
import numpy as np
import pytest

from mammoseg.models.feedforward import (
    build_feedforward_regressor,
    dead_unit_fraction,
    decode_circle,
    encode_circle,
)


def test_paper_variant_layers():
    model = build_feedforward_regressor((16, 16, 1))
    units = [model.get_layer(f"dense{i}").units for i in range(1, 5)]
    assert units == [128, 64, 32, 16]
    assert model.get_layer("circle").get_config()["activation"] == "relu"
    assert model.count_params() == (256 * 128 + 128) + (128 * 64 + 64) + (64 * 32 + 32) + (
        32 * 16 + 16
    ) + (16 * 3 + 3)
    assert "rescale" not in {layer.name for layer in model.layers}


def test_corrected_variant_layers():
    model = build_feedforward_regressor((16, 16, 1), variant="corrected")
    assert model.get_layer("circle").get_config()["activation"] == "sigmoid"
    assert model.get_layer("rescale").scale == pytest.approx(1 / 255)
    out = model.predict(np.full((1, 16, 16, 1), 255.0), verbose=0)
    assert np.all((out > 0) & (out < 1))


def test_encode_decode_circle_hand_values():
    target = encode_circle((256.0, 512.0), 64.0, (1024, 1024))
    np.testing.assert_allclose(target, [0.5, 0.25, 0.0625])
    assert decode_circle(target, (1024, 1024)) == ((256.0, 512.0), 64.0)
    np.testing.assert_allclose(encode_circle((10.0, 20.0), 5.0, (50, 100)), [0.2, 0.2, 0.05])


def test_dead_unit_fraction_hand_built():
    inputs = keras.Input((2,))
    hidden = keras.layers.Dense(2, activation="relu", name="dense1")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(1, activation="relu", name="circle")(hidden))
    # unit 0 = x0 + x1 (alive on positive inputs), unit 1 = -(x0 + x1) - 1 (always dead)
    model.get_layer("dense1").set_weights(
        [np.array([[1, -1], [1, -1]], "float32"), np.array([0, -1], "float32")]
    )
    model.get_layer("circle").set_weights(
        [np.array([[-1], [0]], "float32"), np.zeros(1, "float32")]
    )
    x = np.array([[1.0, 2.0], [0.5, 0.5]], "float32")
    assert dead_unit_fraction(model, x) == {"dense1": 0.5, "circle": 1.0}


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"variant": "papers"}, "`variant` must be one of .*did you mean 'paper'"),
        ({"hidden_units": ()}, "`hidden_units` must be a non-empty sequence"),
        ({"hidden_units": (8, -1)}, "`hidden_units` must be a positive integer, received -1"),
        ({"input_shape": (None, None, 1)}, "`input_shape` height must be an integer >= 1"),
        ({"input_scale": 0}, "`input_scale` must be > 0, received 0"),
    ],
)
def test_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_feedforward_regressor(**kwargs)
