"""UNet (paper section IV.D; Ronneberger et al. 2015), with the paper's defaults.

The paper's UNet: encoder 64-128-256-512 and a 1024-filter bottleneck (two 3×3 convolutions
each, he_normal initialisation), dropout 0.5 on the two deepest stages, "transposed convolution"
up-sampling, skip connections by concatenation, a 1×1 sigmoid output: 31,030,593 parameters for
one input channel. The authors' code up-sampled with ``UpSampling2D`` + a 2×2 convolution instead
(``upsampling="nearest"``) and used a 1024² input (facts.md §1).

``encoder="resnet50"`` (or another of `mammoseg.models.encoders.list_encoders`) swaps the encoder
for a keras.applications backbone, with ImageNet weights by default, as segmentation_models does;
`build_unet` then hands over to `mammoseg.models.encoders.build_encoder_unet`.
"""

from __future__ import annotations

import os

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
from mammoseg.models.encoders import build_encoder_unet


def build_unet(
    input_shape: tuple[int | None, int | None, int] = (256, 256, 1),
    base_filters: int | None = None,
    depth: int | None = None,
    batch_norm: bool | None = None,
    dropout: float | None = None,
    dropout_stages: int = 2,
    upsampling: str = "transpose",
    output: str = "sigmoid",
    num_classes: int = 1,
    name: str = "unet",
    encoder: str | None = None,
    encoder_weights: str | os.PathLike | None = "imagenet",
    encoder_freeze: bool = False,
) -> keras.Model:
    """Build the paper's UNet (section IV.D), or a UNet on a pretrained encoder.

    Layers are named ``encoder{i}_conv{1,2}``, ``encoder{i}_pool``, ``encoder{i}_dropout``,
    ``bottleneck_conv{1,2}``, ``decoder{i}_up``, ``decoder{i}_concat``, ``decoder{i}_conv{1,2}``
    and ``output`` (i = 1 is the full-resolution stage).

    With ``encoder``, the defaults marked "encoder:" apply and the model is
    `mammoseg.models.encoders.build_encoder_unet`'s (its docstring names its layers).

    Args:
        input_shape: (height, width, channels); height and width must be multiples of
            ``2**depth`` or None (any multiple at call time). With an encoder: values in [0, 1],
            1 or 3 channels, at least 32 pixels.
        base_filters: filters of the first stage, doubled at each stage down; None: 64 (the
            paper: 64 → 1024); encoder: 16 (decoder 256-128-64-32-16, segmentation_models').
        depth: number of pooling steps; None: 4 (the paper: five resolution levels); encoder: 5
            (the whole backbone; at most 5).
        batch_norm: batch normalisation after every 3×3 convolution; None: False (not in the
            paper); encoder: True in the decoder (segmentation_models').
        dropout: dropout rate on the deepest ``dropout_stages`` stages; None: 0.5 (the paper);
            encoder: 0, and a rate applies to the encoder's bottleneck output only.
        dropout_stages: how many of the deepest stages (bottleneck included) get dropout
            (unused with an encoder).
        upsampling: "transpose" (paper), "bilinear", or "nearest" (the authors' code).
        output: "sigmoid" (probabilities) or "logits"; the output layer is float32 under a
            mixed-precision policy.
        num_classes: output channels (1: binary tumour mask).
        name: model name.
        encoder: None (the paper's encoder) or a keras.applications backbone, one of
            `mammoseg.models.encoders.list_encoders()` ("resnet50", "efficientnetb0",
            "mobilenetv2", "vgg16", "densenet121", ...).
        encoder_weights: with an encoder, "imagenet" (downloaded by Keras), None (random) or the
            path of a weights file in the backbone's layout (keras.applications' *_notop.h5).
        encoder_freeze: with an encoder, make its layers non-trainable.

    Returns:
        An uncompiled `keras.Model` mapping (B, H, W, C) images to (B, H, W, num_classes).

    Raises:
        ValueError: an invalid argument, e.g. a height that is not a multiple of ``2**depth``
            (the message names the nearest valid sizes).

    Example:
        >>> model = build_unet((64, 64, 1), base_filters=8, depth=3)
        >>> model.output_shape
        (None, 64, 64, 1)
        >>> pretrained = build_unet((64, 64, 1), encoder="resnet50", encoder_weights=None)
    """
    if encoder is not None:
        return build_encoder_unet(
            input_shape,
            encoder,
            encoder_weights=encoder_weights,
            encoder_freeze=encoder_freeze,
            base_filters=16 if base_filters is None else base_filters,
            depth=5 if depth is None else depth,
            batch_norm=True if batch_norm is None else batch_norm,
            dropout=0.0 if dropout is None else dropout,
            upsampling=upsampling,
            output=output,
            num_classes=num_classes,
            name=name,
        )
    if encoder_weights != "imagenet" or encoder_freeze is not False:
        raise ValueError(
            "`encoder_weights` and `encoder_freeze` need an `encoder`, received "
            f"encoder=None, encoder_weights={encoder_weights!r}, encoder_freeze={encoder_freeze!r}"
        )
    base_filters = 64 if base_filters is None else base_filters
    depth = 4 if depth is None else depth
    batch_norm = False if batch_norm is None else batch_norm
    dropout = 0.5 if dropout is None else dropout
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
