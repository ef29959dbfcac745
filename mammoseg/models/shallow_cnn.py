"""The shallow CNN of paper sections IV.C and V.B.

The paper's layer list: 5×5 conv with 16 filters, 5×5 conv with 8, max-pool 50×50, dropout 0.25,
5×5 conv with 16, two dense layers and a softmax over 2 classes at every pixel. The authors' code
(facts.md §1): the third convolution had 4 filters (``filters=(16, 8, 4)``); the dense layers were
Dense(10, relu) and Dense(H·W·2), reshaped to (H·W, 2) with a softmax, trained with categorical
cross-entropy at batch 1. This builder reshapes to (H, W, 2) instead of (H·W, 2): the same numbers,
in the layout of the masks. At 1024² the last Dense layer holds 23 M of the 23.1 M parameters.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras

from mammoseg.checks import check_fraction, check_input_shape, check_positive_int


def build_shallow_cnn(
    input_shape: tuple[int, int, int] = (1024, 1024, 1),
    filters: Sequence[int] = (16, 8, 16),
    kernel_size: int = 5,
    pool_size: int = 50,
    dropout: float = 0.25,
    dense_units: int = 10,
    num_classes: int = 2,
    name: str = "shallow_cnn",
) -> keras.Model:
    """Build the paper's shallow CNN for any fixed input size (section IV.C).

    Layers: ``conv1``, ``conv2`` (``same`` padding, ReLU), ``pool`` (``pool_size`` window and
    stride), ``dropout``, ``conv3``, ``flatten``, ``dense1`` (ReLU), ``dense2``
    (H·W·num_classes), ``reshape`` and ``softmax`` (float32 under mixed precision).

    Args:
        input_shape: (height, width, channels), fixed (the dense layers need it).
        filters: filters of the three convolutions ((16, 8, 16) in the paper, (16, 8, 4) in the
            authors' code).
        kernel_size: kernel size of the convolutions (5).
        pool_size: max-pool window and stride (50); at most the input's height and width.
        dropout: dropout rate after the pool (0.25).
        dense_units: units of the first dense layer (10 in the authors' code).
        num_classes: classes of the per-pixel softmax (2: background, tumour).
        name: model name.

    Returns:
        An uncompiled `keras.Model` mapping (B, H, W, C) to per-pixel probabilities
        (B, H, W, num_classes); train it with ``keras.losses.CategoricalCrossentropy`` and
        one-hot masks.

    Raises:
        ValueError: an invalid argument, e.g. ``pool_size`` larger than the input.

    Example:
        >>> model = build_shallow_cnn((64, 64, 1), pool_size=16)
        >>> model.output_shape
        (None, 64, 64, 2)
    """
    input_shape = check_input_shape(input_shape, allow_none=False)
    if isinstance(filters, int | str) or len(filters) != 3:
        raise ValueError(f"`filters` must be three positive integers, received {filters!r}")
    for value in filters:
        check_positive_int("filters", value)
    check_positive_int("kernel_size", kernel_size)
    check_positive_int("pool_size", pool_size)
    check_positive_int("dense_units", dense_units)
    check_positive_int("num_classes", num_classes)
    dropout = check_fraction("dropout", dropout)
    height, width, _ = input_shape
    if pool_size > min(height, width):
        raise ValueError(
            f"`pool_size` must be at most the input's height and width ({height}×{width}), "
            f"received {pool_size}"
        )

    def conv(index: int, value: int) -> keras.layers.Layer:
        return keras.layers.Conv2D(
            value, kernel_size, padding="same", activation="relu", name=f"conv{index}"
        )

    inputs = keras.Input(input_shape, name="image")
    x = conv(1, filters[0])(inputs)
    x = conv(2, filters[1])(x)
    x = keras.layers.MaxPooling2D(pool_size, name="pool")(x)
    x = keras.layers.Dropout(dropout, name="dropout")(x)
    x = conv(3, filters[2])(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(dense_units, activation="relu", name="dense1")(x)
    x = keras.layers.Dense(height * width * num_classes, name="dense2")(x)
    x = keras.layers.Reshape((height, width, num_classes), name="reshape")(x)
    outputs = keras.layers.Softmax(axis=-1, dtype="float32", name="softmax")(x)
    return keras.Model(inputs, outputs, name=name)


__all__ = ["build_shallow_cnn"]
