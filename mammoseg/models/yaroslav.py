"""YaroslavNet patch classifier and the segmenters built on it (paper section IV.E).

YaroslavNet (Shen et al., github.com/lishen/end2end-all-conv; facts.md §3) classifies grey patches
into 5 classes (background, calcification benign/malignant, mass benign/malignant). Six blocks of
[3×3 conv → batch norm → ReLU] × 2 and a 2×2 max-pool, filters 32-64-128-256-256-512, global
average pooling and ``Dense(5, softmax)`` named "predictions": 5,904,357 parameters. The paper
calls it a network with shortcut connections; the patch net has none (they are in the
whole-image top), so none are built here.

The paper's transfer model drops "predictions" and adds Dense layers to a per-pixel output; the
authors' code: ``Dense(10, relu) → Dense(H·W) → reshape → Dense(1, sigmoid)``, i.e. the whole mask
is decoded from 10 numbers (``head="dense"``). ``head="fcn"`` instead sums 1×1 projections of the
six block outputs, top-down with bilinear up-sampling, and needs no H·W-unit layer.
"""

from __future__ import annotations

import os
import re

import keras

from mammoseg.checks import check_choice, check_input_shape, check_positive_int
from mammoseg.models.blocks import OUTPUT_MODES, conv_block, nearest_multiples, output_conv
from mammoseg.models.weights import LoadReport, iter_h5_layer_weights, load_weights_by_name

YAROSLAV_FILTERS = (32, 64, 128, 256, 256, 512)
YAROSLAV_SOURCE_HINT = (
    "The published YaroslavNet patch classifier, s10_YaroslavNet.h5 (Keras 2 weights), comes "
    "from https://github.com/lishen/end2end-all-conv (model downloads in its README); mammoseg "
    "never downloads it."
)
SEGMENTER_HEADS = ("fcn", "dense")
# The input YaroslavNet's patch classifier was trained on (end2end-all-conv, facts only): pixel
# values rescaled so that the maximum is 255, then the training set's mean pixel subtracted
# (Keras' featurewise centring, no division by a standard deviation). The repository's patch
# training script centres on 59.6 (`--featurewise-mean 59.6`, with histogram equalisation);
# the command line of s10_YaroslavNet itself is not published.
YAROSLAV_PIXEL_MAX = 255.0
YAROSLAV_FEATUREWISE_MEAN = 59.6
_BN_WEIGHTS = ("gamma", "beta", "moving_mean", "moving_variance")


def _backbone(inputs: keras.KerasTensor) -> list[keras.KerasTensor]:
    """The six blocks; returns each block's output before its pool, then the last pool."""
    features, x = [], inputs
    for i, filters in enumerate(YAROSLAV_FILTERS, start=1):
        x = conv_block(x, filters, f"block{i}", batch_norm=True)
        features.append(x)
        x = keras.layers.MaxPooling2D(2, strides=2, name=f"block{i}_pool")(x)
    return features + [x]


def build_yaroslav_net(
    input_shape: tuple[int | None, int | None, int] = (None, None, 1),
    num_classes: int = 5,
    name: str = "yaroslav_net",
) -> keras.Model:
    """Build the YaroslavNet patch classifier exactly as published (section IV.E).

    Layer names: ``block{i}_conv{1,2}``, ``block{i}_bn{1,2}``, ``block{i}_relu{1,2}``,
    ``block{i}_pool`` (i = 1…6), ``avg_pool``, ``predictions``.

    Args:
        input_shape: (height, width, channels); grey patches (256² or 224²) in the published
            model, any size from 64 up works (six 2× pools).
        num_classes: classes of the softmax (5 in the published weights).
        name: model name.

    Returns:
        An uncompiled `keras.Model` with 5,904,357 parameters for 1 channel and 5 classes.

    Raises:
        ValueError: an invalid argument, named in the message.

    Example:
        >>> model = build_yaroslav_net()
        >>> model.count_params()
        5904357
    """
    check_positive_int("num_classes", num_classes)
    input_shape = check_input_shape(input_shape, min_size=64)
    inputs = keras.Input(input_shape, name="patch")
    x = _backbone(inputs)[-1]
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = keras.layers.Dense(
        num_classes, activation="softmax", dtype="float32", name="predictions"
    )(x)
    return keras.Model(inputs, outputs, name=name)


def build_yaroslav_segmenter(
    input_shape: tuple[int | None, int | None, int] = (256, 256, 1),
    head: str = "fcn",
    weights: str | os.PathLike | None = None,
    freeze_backbone: bool = False,
    head_filters: int = 32,
    dense_units: int = 10,
    output: str = "sigmoid",
    name: str = "yaroslav_segmenter",
    featurewise_mean: float | None = None,
) -> keras.Model:
    """YaroslavNet backbone with a per-pixel head (section IV.E, transfer learning).

    Args:
        input_shape: (height, width, channels). ``head="dense"`` needs a fixed size;
            ``head="fcn"`` needs multiples of 32 (or None).
        head: "dense", the paper's head (``head_dense1`` Dense(dense_units, relu) on the pooled
            features → ``head_dense2`` Dense(H·W) → ``head_reshape`` → ``output`` Dense(1)),
            or "fcn" (``head_lateral{i}`` 1×1 convolutions of each block's output summed
            top-down through ``head_up{i}`` bilinear up-sampling, ``head_conv`` 3×3, ``output``
            1×1); with 32 filters the fcn head has 49 k parameters, the dense head 0.73 M at
            256² and 11.5 M at 1024².
        weights: path of the published ``s10_YaroslavNet.h5`` to initialise the backbone with,
            or None for random initialisation.
        freeze_backbone: make the ``block*`` layers non-trainable (their batch norms then run
            in inference mode).
        head_filters: channels of the fcn head.
        dense_units: units of the dense head's first layer (10 in the authors' code).
        output: "sigmoid" or "logits" (float32 under mixed precision).
        name: model name.
        featurewise_mean: None feeds the image as given; a number adds ``input_rescale``, a
            weightless layer mapping mammoseg's [0, 1] images to the input YaroslavNet was
            trained on: ``x * 255 - featurewise_mean`` (`YAROSLAV_FEATUREWISE_MEAN`, 59.6).

    Returns:
        An uncompiled `keras.Model` mapping (B, H, W, C) to (B, H, W, 1).

    Raises:
        ValueError: an invalid argument, named in the message.
        FileNotFoundError: ``weights`` does not exist (the message says where it comes from).

    Example:
        >>> model = build_yaroslav_segmenter((64, 64, 1), head="fcn", head_filters=8)
        >>> model.output_shape
        (None, 64, 64, 1)
    """
    check_choice("head", head, SEGMENTER_HEADS)
    check_choice("output", output, OUTPUT_MODES)
    check_positive_int("head_filters", head_filters)
    check_positive_int("dense_units", dense_units)
    input_shape = check_input_shape(input_shape, allow_none=head == "fcn", min_size=64)
    if head == "fcn":
        for axis, size in zip(("height", "width"), input_shape[:2]):
            if size is not None and size % 32:
                raise ValueError(
                    f"`input_shape` {axis} must be a multiple of 32 for head='fcn', received "
                    f"{size}; nearest valid sizes: {nearest_multiples(size, 32)}"
                )

    inputs = keras.Input(input_shape, name="image")
    x = inputs
    if featurewise_mean is not None:
        if isinstance(featurewise_mean, bool) or not isinstance(featurewise_mean, (int, float)):
            raise ValueError(f"`featurewise_mean` must be a number, received {featurewise_mean!r}")
        x = keras.layers.Rescaling(
            YAROSLAV_PIXEL_MAX, offset=-float(featurewise_mean), name="input_rescale"
        )(x)
    features = _backbone(x)
    if head == "dense":
        height, width = input_shape[:2]
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(features[-1])
        x = keras.layers.Dense(dense_units, activation="relu", name="head_dense1")(x)
        x = keras.layers.Dense(height * width, name="head_dense2")(x)
        x = keras.layers.Reshape((height, width, 1), name="head_reshape")(x)
        outputs = keras.layers.Dense(
            1, activation="sigmoid" if output == "sigmoid" else None, dtype="float32", name="output"
        )(x)
    else:
        x = keras.layers.Conv2D(head_filters, 1, name="head_lateral6")(features[5])
        for i in range(5, 0, -1):
            x = keras.layers.UpSampling2D(2, interpolation="bilinear", name=f"head_up{i}")(x)
            lateral = keras.layers.Conv2D(head_filters, 1, name=f"head_lateral{i}")(features[i - 1])
            x = keras.layers.Add(name=f"head_add{i}")([x, lateral])
        x = keras.layers.Conv2D(
            head_filters, 3, padding="same", activation="relu", name="head_conv"
        )(x)
        outputs = output_conv(x, 1, output, name="output")
    model = keras.Model(inputs, outputs, name=name)

    if weights is not None:
        load_yaroslav_weights(model, weights)
    if freeze_backbone:
        for layer in model.layers:
            if layer.name.startswith("block"):
                layer.trainable = False
    return model


def yaroslav_layer_renames(path: str | os.PathLike) -> dict[str, str]:
    """Map a YaroslavNet file's batch-norm layer names to ``block{i}_bn{j}``.

    A file whose batch norms carry Keras 2 automatic names (``batch_normalization_1``…) lists
    them in model order, so the k-th one is the k-th of ``block1_bn1, block1_bn2, block2_bn1…``.
    A file that already uses ``block{i}_bn{j}`` needs no renaming.

    Args:
        path: the weights file.

    Returns:
        {file layer name: model layer name}; empty when no renaming is needed.

    Raises:
        MammosegDataError: the file does not hold exactly 12 batch-norm layers.

    Example:
        >>> yaroslav_layer_renames("s10_YaroslavNet.h5")  # doctest: +SKIP
        {'batch_normalization_1': 'block1_bn1', ...}
    """
    from mammoseg.data.errors import MammosegDataError

    bn_layers = [
        name
        for name, weights in iter_h5_layer_weights(path)
        if sorted(re.sub(r":\d+$", "", w).split("/")[-1] for w, _ in weights) == sorted(_BN_WEIGHTS)
    ]
    targets = [f"block{i}_bn{j}" for i in range(1, 7) for j in (1, 2)]
    if bn_layers == targets:
        return {}
    if len(bn_layers) != len(targets):
        raise MammosegDataError(
            f"expected 12 batch-norm layers in a YaroslavNet file, found {len(bn_layers)}",
            path,
        )
    return dict(zip(bn_layers, targets))


def load_yaroslav_weights(
    model: keras.Model,
    path: str | os.PathLike,
    exclude: tuple[str, ...] = (),
    skip_mismatch: bool = False,
) -> LoadReport:
    """Load the published ``s10_YaroslavNet.h5`` into a YaroslavNet or a YaroslavNet segmenter.

    Convolutions and "predictions" load by name; batch norms by name, or by order when the file
    uses Keras 2 automatic names (see `yaroslav_layer_renames`).

    Args:
        model: a model built by `build_yaroslav_net` or `build_yaroslav_segmenter`.
        path: the weights file.
        exclude: regular expressions of layer names not to load (e.g. ``("predictions",)``).
        skip_mismatch: skip layers whose shapes differ (e.g. another ``num_classes``).

    Returns:
        The `LoadReport`.

    Raises:
        FileNotFoundError: ``path`` does not exist; the message says where the file comes from.
        MammosegDataError: a shape mismatch (without ``skip_mismatch``), or not a weights file.

    Example:
        >>> model = build_yaroslav_net()
        >>> report = load_yaroslav_weights(model, "s10_YaroslavNet.h5")  # doctest: +SKIP
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"weights file not found: {path}. {YAROSLAV_SOURCE_HINT}")
    return load_weights_by_name(
        model,
        path,
        exclude=exclude,
        skip_mismatch=skip_mismatch,
        source_hint=YAROSLAV_SOURCE_HINT,
        rename=yaroslav_layer_renames(path),
    )


__all__ = [
    "YAROSLAV_FEATUREWISE_MEAN",
    "YAROSLAV_FILTERS",
    "YAROSLAV_PIXEL_MAX",
    "build_yaroslav_net",
    "build_yaroslav_segmenter",
    "load_yaroslav_weights",
    "yaroslav_layer_renames",
]
