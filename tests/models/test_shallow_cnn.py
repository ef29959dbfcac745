"""Shallow CNN (paper IV.C / V.B)."""

import numpy as np
import pytest

from mammoseg.models.shallow_cnn import build_shallow_cnn


def test_layer_list_and_parameter_count():
    model = build_shallow_cnn((128, 128, 1))
    conv = [model.get_layer(f"conv{i}") for i in (1, 2, 3)]
    assert [(c.filters, c.kernel_size) for c in conv] == [(16, (5, 5)), (8, (5, 5)), (16, (5, 5))]
    assert model.get_layer("pool").pool_size == (50, 50)
    assert model.get_layer("dropout").rate == 0.25
    assert model.get_layer("pool").output.shape[1:3] == (2, 2)  # 128 // 50
    # 416 + 3208 + 3216 + (2*2*16*10 + 10) + (10 * 128*128*2 + 128*128*2)
    assert model.count_params() == 416 + 3208 + 3216 + 650 + 360_448


def test_per_pixel_softmax_and_authors_filters():
    model = build_shallow_cnn((32, 32, 1), filters=(16, 8, 4), pool_size=8)
    assert model.get_layer("conv3").filters == 4
    probs = model.predict(np.random.default_rng(0).uniform(size=(2, 32, 32, 1)), verbose=0)
    assert probs.shape == (2, 32, 32, 2)
    np.testing.assert_allclose(probs.sum(axis=-1), 1.0, rtol=1e-5)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"input_shape": (32, 32, 1)}, r"`pool_size` must be at most .*\(32×32\), received 50"),
        (
            {"input_shape": (None, 64, 1)},
            "`input_shape` height must be an integer >= 1, received None",
        ),
        ({"filters": (16, 8)}, "`filters` must be three positive integers, received"),
        ({"filters": (16, 0, 4)}, "`filters` must be a positive integer, received 0"),
        ({"dropout": -0.1}, r"`dropout` must be a number in \[0, 1\), received -0.1"),
        ({"num_classes": 0}, "`num_classes` must be a positive integer, received 0"),
    ],
)
def test_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_shallow_cnn(**kwargs)
