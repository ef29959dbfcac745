"""UNet (paper section IV.D; Ronneberger et al. 2015), with the paper's defaults.

The paper's UNet: encoder 64-128-256-512 and a 1024-filter bottleneck (two 3×3 convolutions
each, he_normal initialisation), dropout 0.5 on the two deepest stages, "transposed convolution"
up-sampling, skip connections by concatenation, a 1×1 sigmoid output: 31,030,593 parameters for
one input channel. The authors' code up-sampled with ``UpSampling2D`` + a 2×2 convolution instead
(``upsampling="nearest"``) and used a 1024² input (facts.md §1).
"""

from __future__ import annotations

import keras

from mammoseg.checks import check_choice, check_fraction, check_input_shape, check_positive_int
from mammoseg.models.blocks import (
    OUTPUT_MODES,
    UPSAMPLING_MODES,
    conv_block,
    nearest_multiples,
    output_conv,
    upsample,
)


def build_unet(
    input_shape: tuple[int | None, int | None, int] = (256, 256, 1),
    base_filters: int = 64,
    depth: int = 4,
    batch_norm: bool = False,
    dropout: float = 0.5,
    dropout_stages: int = 2,
    upsampling: str = "transpose",
    output: str = "sigmoid",
    num_classes: int = 1,
    name: str = "unet",
) -> keras.Model:
    """Build the paper's UNet (section IV.D).

    Layers are named ``encoder{i}_conv{1,2}``, ``encoder{i}_pool``, ``encoder{i}_dropout``,
    ``bottleneck_conv{1,2}``, ``decoder{i}_up``, ``decoder{i}_concat``, ``decoder{i}_conv{1,2}``
    and ``output`` (i = 1 is the full-resolution stage).

    Args:
        input_shape: (height, width, channels); height and width must be multiples of
            ``2**depth`` or None (any multiple at call time).
        base_filters: filters of the first stage, doubled at each stage down (64 → 1024).
        depth: number of pooling steps (4 in the paper: five resolution levels).
        batch_norm: batch normalisation after every 3×3 convolution (not in the paper).
        dropout: dropout rate on the deepest ``dropout_stages`` stages (0.5 in the paper).
        dropout_stages: how many of the deepest stages (bottleneck included) get dropout.
        upsampling: "transpose" (paper), "bilinear", or "nearest" (the authors' code).
        output: "sigmoid" (probabilities) or "logits"; the output layer is float32 under a
            mixed-precision policy.
        num_classes: output channels (1: binary tumour mask).
        name: model name.

    Returns:
        An uncompiled `keras.Model` mapping (B, H, W, C) images to (B, H, W, num_classes).

    Raises:
        ValueError: an invalid argument, e.g. a height that is not a multiple of ``2**depth``
            (the message names the nearest valid sizes).

    Example:
        >>> model = build_unet((64, 64, 1), base_filters=8, depth=3)
        >>> model.output_shape
        (None, 64, 64, 1)
    """
    check_positive_int("base_filters", base_filters)
    check_positive_int("depth", depth)
    check_positive_int("num_classes", num_classes)
    dropout = check_fraction("dropout", dropout)
    if isinstance(dropout_stages, bool) or not isinstance(dropout_stages, int):
        raise ValueError(f"`dropout_stages` must be an integer, received {dropout_stages!r}")
    if not 0 <= dropout_stages <= depth + 1:
        raise ValueError(
            f"`dropout_stages` must be in [0, depth + 1 = {depth + 1}], received {dropout_stages}"
        )
    check_choice("upsampling", upsampling, UPSAMPLING_MODES)
    check_choice("output", output, OUTPUT_MODES)
    input_shape = check_input_shape(input_shape)
    factor = 2**depth
    for axis, size in zip(("height", "width"), input_shape[:2]):
        if size is not None and size % factor:
            raise ValueError(
                f"`input_shape` {axis} must be a multiple of 2**depth = {factor}, received "
                f"{size}; nearest valid sizes: {nearest_multiples(size, factor)}"
            )

    inputs = keras.Input(input_shape, name="image")
    x = inputs
    skips = []
    for stage in range(1, depth + 1):
        x = conv_block(x, base_filters * 2 ** (stage - 1), f"encoder{stage}", batch_norm=batch_norm)
        if dropout and stage > depth + 1 - dropout_stages:
            x = keras.layers.Dropout(dropout, name=f"encoder{stage}_dropout")(x)
        skips.append(x)
        x = keras.layers.MaxPooling2D(2, name=f"encoder{stage}_pool")(x)

    x = conv_block(x, base_filters * 2**depth, "bottleneck", batch_norm=batch_norm)
    if dropout and dropout_stages > 0:
        x = keras.layers.Dropout(dropout, name="bottleneck_dropout")(x)

    for stage in range(depth, 0, -1):
        filters = base_filters * 2 ** (stage - 1)
        x = upsample(x, filters, f"decoder{stage}", upsampling)
        x = keras.layers.Concatenate(name=f"decoder{stage}_concat")([skips[stage - 1], x])
        x = conv_block(x, filters, f"decoder{stage}", batch_norm=batch_norm)

    outputs = output_conv(x, num_classes, output, name="output")
    return keras.Model(inputs, outputs, name=name)


__all__ = ["build_unet"]
