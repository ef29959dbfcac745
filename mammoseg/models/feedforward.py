"""Feed-forward regressor of a lesion's circle (paper sections IV.B and V.A).

The paper's first experiment flattened the whole 1024² image into a Dense 128-64-32-16-3 network
predicting (x, y, radius), ReLU at every layer including the output, trained with logcosh then
MSE; it predicted [0, 0, 0] for every image. Raw 0-255 intensities over a million inputs give
pre-activations of thousands, so a bad first step can push every output unit negative: the
output ReLU then passes zero gradient and the units never recover ("dead ReLUs").

``variant="paper"`` builds that network; ``variant="corrected"`` rescales inputs to [0, 1], uses
he_normal initialisation for the hidden ReLUs and a sigmoid output for targets normalised to
[0, 1] by `encode_circle`, so the output cannot die. `dead_unit_fraction` measures the effect.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np

from mammoseg.checks import check_choice, check_input_shape, check_positive_int

FEEDFORWARD_VARIANTS = ("paper", "corrected")


def build_feedforward_regressor(
    input_shape: tuple[int, int, int] = (1024, 1024, 1),
    hidden_units: Sequence[int] = (128, 64, 32, 16),
    variant: str = "paper",
    input_scale: float = 1 / 255,
    name: str = "feedforward_regressor",
) -> keras.Model:
    """Image → Dense layers → (x, y, radius) (paper section V.A).

    Layers: ``flatten``, ``dense1``…``dense{n}`` (ReLU), ``circle`` (3 units, float32); the
    corrected variant starts with ``rescale``.

    Args:
        input_shape: (height, width, channels), fixed (the first Dense layer needs it).
        hidden_units: hidden layer sizes (128, 64, 32, 16 in the paper).
        variant: "paper" (ReLU output, raw inputs, Keras' default glorot initialisation: the
            network that output [0, 0, 0]) or "corrected" (inputs × ``input_scale``,
            he_normal, sigmoid output for `encode_circle` targets).
        input_scale: the corrected variant's input rescaling.
        name: model name.

    Returns:
        An uncompiled `keras.Model` mapping (B, H, W, C) to (B, 3).

    Raises:
        ValueError: an invalid argument, named in the message.

    Example:
        >>> model = build_feedforward_regressor((32, 32, 1), variant="corrected")
        >>> model.output_shape
        (None, 3)
    """
    variant = check_choice("variant", variant, FEEDFORWARD_VARIANTS)
    input_shape = check_input_shape(input_shape, allow_none=False)
    if isinstance(hidden_units, int | str) or len(hidden_units) == 0:
        raise ValueError(
            f"`hidden_units` must be a non-empty sequence of positive integers, received "
            f"{hidden_units!r}"
        )
    for units in hidden_units:
        check_positive_int("hidden_units", units)
    if not input_scale > 0:
        raise ValueError(f"`input_scale` must be > 0, received {input_scale!r}")

    corrected = variant == "corrected"
    inputs = keras.Input(input_shape, name="image")
    x = keras.layers.Rescaling(input_scale, name="rescale")(inputs) if corrected else inputs
    x = keras.layers.Flatten(name="flatten")(x)
    initializer = "he_normal" if corrected else "glorot_uniform"
    for i, units in enumerate(hidden_units, start=1):
        x = keras.layers.Dense(
            units, activation="relu", kernel_initializer=initializer, name=f"dense{i}"
        )(x)
    outputs = keras.layers.Dense(
        3, activation="sigmoid" if corrected else "relu", dtype="float32", name="circle"
    )(x)
    return keras.Model(inputs, outputs, name=name)


def encode_circle(
    center: tuple[float, float], radius: float, image_shape: tuple[int, int]
) -> np.ndarray:
    """A circle as the regressor's target ``(x / W, y / H, radius / max(H, W))``.

    Args:
        center: (row, col) in pixels, as in `mammoseg.data.Lesion` (origin top-left).
        radius: in pixels.
        image_shape: (H, W) of the image.

    Returns:
        float32 array of 3 values in [0, 1] for circles inside the image.

    Example:
        >>> encode_circle((256.0, 512.0), 64.0, (1024, 1024))
        array([0.5   , 0.25  , 0.0625], dtype=float32)
    """
    height, width = image_shape
    row, col = center
    return np.array([col / width, row / height, radius / max(height, width)], np.float32)


def decode_circle(
    target: Sequence[float], image_shape: tuple[int, int]
) -> tuple[tuple[float, float], float]:
    """Invert `encode_circle`: ``((row, col), radius)`` in pixels.

    Example:
        >>> decode_circle([0.5, 0.25, 0.0625], (1024, 1024))
        ((256.0, 512.0), 64.0)
    """
    height, width = image_shape
    x, y, r = (float(v) for v in target)
    return (y * height, x * width), r * max(height, width)


def dead_unit_fraction(model: keras.Model, images: np.ndarray) -> dict[str, float]:
    """Share of each ReLU Dense layer's units that output 0 for every one of ``images``.

    A unit that is zero on every input receives no gradient and never recovers; at 1.0 for the
    output layer the model predicts [0, 0, 0] for everything, as the paper observed.

    Args:
        model: a model from `build_feedforward_regressor` (any model with ReLU Dense layers).
        images: a batch (N, H, W, C).

    Returns:
        {layer name: fraction of dead units}.

    Example:
        >>> dead_unit_fraction(model, images)  # doctest: +SKIP
        {'dense1': 0.02, 'dense2': 0.0, 'dense3': 0.0, 'dense4': 0.0, 'circle': 1.0}
    """
    layers = [
        layer
        for layer in model.layers
        if isinstance(layer, keras.layers.Dense) and layer.get_config().get("activation") == "relu"
    ]
    probe = keras.Model(model.inputs, [layer.output for layer in layers])
    outputs = probe.predict(images, verbose=0)
    if len(layers) == 1:
        outputs = [outputs]
    return {
        layer.name: float(np.mean(np.all(np.asarray(out) <= 0, axis=0)))
        for layer, out in zip(layers, outputs)
    }


__all__ = [
    "FEEDFORWARD_VARIANTS",
    "build_feedforward_regressor",
    "dead_unit_fraction",
    "decode_circle",
    "encode_circle",
]
