"""Layers shared by the builders (the argument checks they run first are `mammoseg.checks`).

The blocks take a tensor and a name prefix and return a tensor; every layer they create is named
``{prefix}_{role}`` (``encoder2_conv1``, ``decoder1_up``, ``block3_bn2``) because names are the
contract with saved and published weight files.
"""

from __future__ import annotations

from typing import Any

import keras

from mammoseg.checks import check_choice

UPSAMPLING_MODES = ("transpose", "bilinear", "nearest")
OUTPUT_MODES = ("sigmoid", "logits")


def nearest_multiples(size: int, factor: int) -> tuple[int, ...]:
    """The multiples of ``factor`` just below and above ``size`` (only the positive ones).

    Example:
        >>> nearest_multiples(100, 16)
        (96, 112)
    """
    below = (size // factor) * factor
    return tuple(s for s in (below, below + factor) if s > 0)


# --- blocks ------------------------------------------------------------------------------------


def conv_block(
    x: Any,
    filters: int,
    name: str,
    *,
    batch_norm: bool = False,
    convs: int = 2,
    kernel_size: int = 3,
    kernel_initializer: str = "he_normal",
) -> Any:
    """``convs`` × [Conv ``kernel_size`` same → (BatchNorm) → ReLU].

    Layers: ``{name}_conv{j}``; with ``batch_norm`` also ``{name}_bn{j}`` and ``{name}_relu{j}``
    (the convolutions keep their bias, as in YaroslavNet, whose parameter count includes it).

    Args:
        x: input tensor.
        filters: output channels of every convolution.
        name: layer-name prefix.
        batch_norm: insert batch normalisation between each convolution and its ReLU.
        convs: number of convolutions.
        kernel_size: square kernel size.
        kernel_initializer: Keras initializer name ("he_normal" as in UNet and YaroslavNet).

    Returns:
        The block's output tensor.

    Example:
        >>> x = conv_block(keras.Input((32, 32, 1)), 8, "encoder1")
    """
    for j in range(1, convs + 1):
        x = keras.layers.Conv2D(
            filters,
            kernel_size,
            padding="same",
            activation=None if batch_norm else "relu",
            kernel_initializer=kernel_initializer,
            name=f"{name}_conv{j}",
        )(x)
        if batch_norm:
            x = keras.layers.BatchNormalization(name=f"{name}_bn{j}")(x)
            x = keras.layers.Activation("relu", name=f"{name}_relu{j}")(x)
    return x


def upsample(
    x: Any,
    filters: int,
    name: str,
    mode: str = "transpose",
    kernel_initializer: str = "he_normal",
) -> Any:
    """Double the spatial size and set the channels to ``filters``.

    Args:
        x: input tensor.
        filters: output channels.
        name: layer-name prefix; the learned layer is ``{name}_up``.
        mode: "transpose" (2×2 transposed convolution, stride 2: the paper's "transposed
            convolution"), or "bilinear" / "nearest" (``{name}_upsample`` then a 2×2 ReLU
            convolution; "nearest" is what the authors' code did).
        kernel_initializer: Keras initializer name.

    Returns:
        The up-sampled tensor.

    Example:
        >>> y = upsample(keras.Input((8, 8, 16)), 8, "decoder1", "bilinear")
    """
    mode = check_choice("upsampling", mode, UPSAMPLING_MODES)
    if mode == "transpose":
        return keras.layers.Conv2DTranspose(
            filters,
            2,
            strides=2,
            padding="same",
            kernel_initializer=kernel_initializer,
            name=f"{name}_up",
        )(x)
    x = keras.layers.UpSampling2D(2, interpolation=mode, name=f"{name}_upsample")(x)
    return keras.layers.Conv2D(
        filters,
        2,
        padding="same",
        activation="relu",
        kernel_initializer=kernel_initializer,
        name=f"{name}_up",
    )(x)


def output_conv(x: Any, channels: int, output: str, name: str = "output") -> Any:
    """Final 1×1 convolution, always in float32 so mixed-precision models emit float32.

    Args:
        x: input tensor.
        channels: output channels (1 for a binary mask).
        output: "sigmoid" (probabilities) or "logits" (no activation; pair with a loss using
            ``from_logits=True``).
        name: layer name.

    Returns:
        The output tensor (float32).

    Example:
        >>> y = output_conv(keras.Input((8, 8, 4)), 1, "sigmoid")
    """
    output = check_choice("output", output, OUTPUT_MODES)
    return keras.layers.Conv2D(
        channels,
        1,
        activation="sigmoid" if output == "sigmoid" else None,
        dtype="float32",
        name=name,
    )(x)


__all__ = [
    "OUTPUT_MODES",
    "UPSAMPLING_MODES",
    "conv_block",
    "nearest_multiples",
    "output_conv",
    "upsample",
]
