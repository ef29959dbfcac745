"""Pretrained encoders: `keras.applications` backbones as the UNet's encoder (segmentation_models).

A backbone is cut at five named layers whose outputs have strides 2, 4, 8, 16 and 32: the first
four are the skip connections, the fifth the bottleneck (``depth`` < 5 stops earlier, at stride
``2**depth``). The decoder is the package's: per stage an `upsample` step, the skip
concatenated, and a `conv_block`; a last stage without a skip returns to full resolution, then the
1×1 `output_conv`. With ``base_filters=16`` the decoder has segmentation_models' default widths,
256-128-64-32-16.

Around the backbone, inside the model, so a saved model needs nothing else:

* **Grayscale to RGB by a fixed repeat** (layer ``grayscale_to_rgb``): a one-channel image becomes
  R = G = B, which is what ImageNet filters saw for gray objects; a learned 1×1 convolution would
  start random and disturb the pretrained first layer. Three-channel inputs pass unchanged.
* **The backbone's own preprocessing** (layer ``encoder_preprocess``, `BackbonePreprocessing`), for
  images in **[0, 1]** as mammoseg's pipelines produce: the layer multiplies by 255 and then does
  what ``keras.applications.<family>.preprocess_input`` does ("caffe": RGB→BGR and the ImageNet
  mean subtracted, VGG and ResNet; "tf": to [-1, 1], MobileNetV2; "torch": ImageNet mean and
  standard deviation, DenseNet; "raw": nothing more, EfficientNet, which normalises inside).

Weights: ``encoder_weights="imagenet"`` asks Keras to download them (or to use its cache in
``~/.keras/models``); without internet the error names the weights and suggests a path.
``encoder_weights=PATH`` loads a file in the backbone's own layout into the backbone built with
``include_top=False`` before the model is assembled: keras.applications' ``*_notop.h5`` files
(Keras 2 HDF5, matched by layer order, as Keras itself loads them), a ``.weights.h5`` written by
``backbone.save_weights``, or a ``.keras`` model of the backbone.

EfficientNet caveat: keras.applications adds one per-channel rescaling after its normalisation
layer only when built with ``weights="imagenet"``. A PATH is read as ImageNet-derived weights, so
`build_encoder_unet` reproduces that graph by an equivalent rescaling of the backbone's input
(layer ``encoder_imagenet_rescale``) computed from the file's normalisation mean.

Example:
    >>> model = build_encoder_unet((64, 64, 1), "mobilenetv2", encoder_weights=None)
    >>> model.output_shape
    (None, 64, 64, 1)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from mammoseg.checks import (
    check_choice,
    check_fraction,
    check_input_shape,
    check_positive_int,
    closest_match,
)
from mammoseg.models.blocks import (
    OUTPUT_MODES,
    UPSAMPLING_MODES,
    conv_block,
    nearest_multiples,
    output_conv,
    upsample,
)

PREPROCESSING_MODES = ("caffe", "tf", "torch", "raw")
# keras.applications.imagenet_utils' constants (preprocess_input and EfficientNet's stem).
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)
IMAGENET_STD_RGB = (0.229, 0.224, 0.225)
WEIGHT_FILE_SUFFIXES = (".h5", ".hdf5", ".keras")
MAX_DEPTH = 5


@dataclass(frozen=True)
class EncoderSpec:
    """How one keras.applications backbone becomes a UNet encoder.

    Attributes:
        application: the constructor's name in `keras.applications` (``"ResNet50"``).
        preprocessing: its ``preprocess_input`` mode, one of `PREPROCESSING_MODES`.
        features: the layers whose outputs have strides 2, 4, 8, 16 and 32.
    """

    application: str
    preprocessing: str
    features: tuple[str, str, str, str, str]


_EFFICIENTNET_FEATURES = (
    "block2a_expand_activation",
    "block3a_expand_activation",
    "block4a_expand_activation",
    "block6a_expand_activation",
    "top_activation",
)
_DENSENET_FEATURES = ("conv1_relu", "pool2_relu", "pool3_relu", "pool4_relu", "relu")

# The feature layers are segmentation_models' (qubvel/segmentation_models, backbones_factory.py)
# where it uses keras.applications, and the same strides where it used another implementation.
ENCODERS: dict[str, EncoderSpec] = {
    "vgg16": EncoderSpec(
        "VGG16",
        "caffe",
        ("block2_conv2", "block3_conv3", "block4_conv3", "block5_conv3", "block5_pool"),
    ),
    "vgg19": EncoderSpec(
        "VGG19",
        "caffe",
        ("block2_conv2", "block3_conv4", "block4_conv4", "block5_conv4", "block5_pool"),
    ),
    "resnet50": EncoderSpec(
        "ResNet50",
        "caffe",
        (
            "conv1_relu",
            "conv2_block3_out",
            "conv3_block4_out",
            "conv4_block6_out",
            "conv5_block3_out",
        ),
    ),
    "resnet101": EncoderSpec(
        "ResNet101",
        "caffe",
        (
            "conv1_relu",
            "conv2_block3_out",
            "conv3_block4_out",
            "conv4_block23_out",
            "conv5_block3_out",
        ),
    ),
    "resnet152": EncoderSpec(
        "ResNet152",
        "caffe",
        (
            "conv1_relu",
            "conv2_block3_out",
            "conv3_block8_out",
            "conv4_block36_out",
            "conv5_block3_out",
        ),
    ),
    "densenet121": EncoderSpec("DenseNet121", "torch", _DENSENET_FEATURES),
    "densenet169": EncoderSpec("DenseNet169", "torch", _DENSENET_FEATURES),
    "densenet201": EncoderSpec("DenseNet201", "torch", _DENSENET_FEATURES),
    "mobilenetv2": EncoderSpec(
        "MobileNetV2",
        "tf",
        (
            "block_1_expand_relu",
            "block_3_expand_relu",
            "block_6_expand_relu",
            "block_13_expand_relu",
            "out_relu",
        ),
    ),
    **{
        f"efficientnetb{i}": EncoderSpec(f"EfficientNetB{i}", "raw", _EFFICIENTNET_FEATURES)
        for i in range(8)
    },
}


def list_encoders() -> list[str]:
    """The encoder names `build_encoder_unet` accepts, sorted.

    Example:
        >>> "resnet50" in list_encoders()
        True
    """
    return sorted(ENCODERS)


# --- preprocessing -----------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="mammoseg")
class BackbonePreprocessing(keras.layers.Layer):
    """``keras.applications.<family>.preprocess_input`` for images in [0, 1], as a layer.

    The input is multiplied by 255 (preprocess_input expects [0, 255]), then:
    "caffe" reverses the channels (RGB → BGR) and subtracts the ImageNet mean (VGG, ResNet);
    "tf" maps to [-1, 1] (MobileNetV2); "torch" subtracts the ImageNet mean and divides by its
    standard deviation on the [0, 1] scale (DenseNet); "raw" stops at [0, 255] (EfficientNet,
    whose model normalises itself). Computed in float32 under a mixed-precision policy too.

    Args:
        mode: one of `PREPROCESSING_MODES`.
        **kwargs: `keras.layers.Layer` arguments (``name``).

    Raises:
        ValueError: unknown ``mode``, with the closest match.

    Example:
        >>> layer = BackbonePreprocessing("tf")
        >>> float(layer(np.ones((1, 2, 2, 3), "float32"))[0, 0, 0, 0])
        1.0
    """

    def __init__(self, mode: str, **kwargs: Any) -> None:
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.mode = check_choice("mode", mode, PREPROCESSING_MODES)

    def call(self, images: Any) -> Any:
        images = keras.ops.cast(images, self.compute_dtype)
        if self.mode == "caffe":
            bgr = keras.ops.flip(images, axis=-1) * 255.0
            return bgr - keras.ops.convert_to_tensor(CAFFE_MEAN_BGR, self.compute_dtype)
        if self.mode == "tf":
            return images * 2.0 - 1.0
        if self.mode == "torch":
            mean = keras.ops.convert_to_tensor(IMAGENET_MEAN_RGB, self.compute_dtype)
            std = keras.ops.convert_to_tensor(IMAGENET_STD_RGB, self.compute_dtype)
            return (images - mean) / std
        return images * 255.0

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return input_shape

    def get_config(self) -> dict:
        config = super().get_config()
        config["mode"] = self.mode
        return config


# --- the encoder -------------------------------------------------------------------------------


def _check_encoder_weights(encoder_weights: Any) -> str | None:
    """None, "imagenet", or an existing weights file (as a string)."""
    if encoder_weights is None or encoder_weights == "imagenet":
        return encoder_weights
    if not isinstance(encoder_weights, str | os.PathLike):
        raise TypeError(
            "`encoder_weights` must be None, 'imagenet' or the path of a weights file, "
            f"received {encoder_weights!r}"
        )
    path = os.fspath(encoder_weights)
    if not path.endswith(WEIGHT_FILE_SUFFIXES):
        raise ValueError(
            f"`encoder_weights` must be None, 'imagenet' or a weights file ending in "
            f"{WEIGHT_FILE_SUFFIXES} (keras.applications' *_notop.h5, a .weights.h5, or a "
            f".keras backbone), received {path!r}"
        )
    if not os.path.isfile(path):
        raise FileNotFoundError(f"`encoder_weights` file not found: {path}")
    return path


def _build_backbone(
    encoder: str, spec: EncoderSpec, input_shape: tuple, weights: str | None
) -> keras.Model:
    """The keras.applications model without its classifier, weights loaded."""
    application = getattr(keras.applications, spec.application)
    if weights != "imagenet":
        backbone = application(include_top=False, weights=None, input_shape=input_shape)
        if weights is not None:
            try:
                backbone.load_weights(weights)
            except (ValueError, KeyError, OSError) as err:
                raise ValueError(
                    f"`encoder_weights` {weights}: not the weights of keras.applications."
                    f"{spec.application}(include_top=False) ({err}); ImageNet files are the "
                    "*_notop.h5 ones"
                ) from err
        return backbone
    try:
        return application(include_top=False, weights="imagenet", input_shape=input_shape)
    except ValueError:
        raise
    except Exception as err:  # keras.utils.get_file raises a bare Exception when offline
        raise OSError(
            f"`encoder_weights='imagenet'`: cannot get the ImageNet weights of {encoder} "
            f"(keras.applications.{spec.application}, include_top=False): {err}. Keras "
            "downloads them to ~/.keras/models; on a machine without internet, copy that "
            "*_notop.h5 file from a connected one and pass encoder_weights=PATH"
        ) from err


def _efficientnet_imagenet_rescale(backbone: keras.Model) -> keras.layers.Rescaling:
    """The input rescaling that makes a PATH-loaded EfficientNet compute its "imagenet" graph.

    keras.applications' "imagenet" graph divides the normalisation's output n(x) = (x/255 - mu)
    / sqrt(var) by sqrt(IMAGENET_STD_RGB) once more. Feeding x' = 255 (mu + (x/255 - mu) /
    sqrt(s)) instead of x gives n(x') = n(x) / sqrt(s) with the file's own mean ``mu``.
    """
    normalization = next(
        layer for layer in backbone.layers if isinstance(layer, keras.layers.Normalization)
    )
    mean = np.asarray(keras.ops.convert_to_numpy(normalization.mean), "float64").reshape(-1)
    root_std = np.sqrt(np.asarray(IMAGENET_STD_RGB, "float64"))
    scale = 1.0 / root_std
    offset = 255.0 * mean * (1.0 - scale)
    return keras.layers.Rescaling(
        scale=scale.tolist(),
        offset=offset.tolist(),
        dtype="float32",
        name="encoder_imagenet_rescale",
    )


def _decoder(features: list[Any], filters: list[int], name_prefix: str, **block: Any) -> Any:
    """Up-sample from the deepest feature, concatenating each shallower one, then to stride 1."""
    upsampling = block.pop("upsampling")
    x = features[-1]
    skips = features[:-1]
    for stage in range(len(features), 0, -1):
        prefix = f"{name_prefix}{stage}"
        x = upsample(x, filters[stage - 1], prefix, upsampling)
        if stage > 1:
            x = keras.layers.Concatenate(name=f"{prefix}_concat")([skips[stage - 2], x])
        x = conv_block(x, filters[stage - 1], prefix, **block)
    return x


def build_encoder_unet(
    input_shape: tuple[int | None, int | None, int] = (256, 256, 1),
    encoder: str = "resnet50",
    *,
    encoder_weights: str | os.PathLike | None = "imagenet",
    encoder_freeze: bool = False,
    base_filters: int = 16,
    depth: int = 5,
    batch_norm: bool = True,
    dropout: float = 0.0,
    upsampling: str = "transpose",
    output: str = "sigmoid",
    num_classes: int = 1,
    name: str = "unet",
) -> keras.Model:
    """A UNet whose encoder is a keras.applications backbone (segmentation_models' Unet).

    Layers: ``grayscale_to_rgb`` (one-channel inputs), ``encoder_preprocess``, ``encoder`` (a
    nested model: the backbone's layers with their own names, outputs at strides 2 … 2**depth),
    ``decoder{i}_up``, ``decoder{i}_concat``, ``decoder{i}_conv{1,2}`` (i = 1 is full
    resolution and has no skip) and ``output``; ``bottleneck_dropout`` when ``dropout`` > 0.

    Args:
        input_shape: (height, width, channels) with 1 or 3 channels, values in [0, 1]; height and
            width multiples of ``2**depth`` (or None) and at least 32 (keras.applications).
        encoder: one of `list_encoders()`.
        encoder_weights: "imagenet" (downloaded by Keras, or its cache), None (random), or the
            path of a weights file in the backbone's layout (see the module docstring).
        encoder_freeze: make the encoder's layers non-trainable (their batch normalisation then
            runs in inference mode, as in Keras fine-tuning).
        base_filters: filters of the full-resolution decoder stage, doubled per stage up to the
            bottleneck (16: 256-128-64-32-16, segmentation_models' default).
        depth: how many of the backbone's five stride-2 stages to use (5: all of them).
        batch_norm: batch normalisation in the decoder's convolution blocks.
        dropout: dropout rate on the encoder's bottleneck output (0: none).
        upsampling: "transpose", "bilinear" or "nearest", as in `build_unet`.
        output: "sigmoid" or "logits" (float32 under a mixed-precision policy).
        num_classes: output channels.
        name: model name.

    Returns:
        An uncompiled `keras.Model` mapping (B, H, W, C) images to (B, H, W, num_classes).

    Raises:
        ValueError: an invalid argument (an unknown encoder names the closest match), or a
            weights file that does not fit the backbone.
        FileNotFoundError: ``encoder_weights`` is a path that does not exist.
        OSError: ``encoder_weights="imagenet"`` and Keras could not download the weights.

    Example:
        >>> model = build_encoder_unet((64, 64, 1), "efficientnetb0", encoder_weights=None)
        >>> model.get_layer("encoder").output_shape[-1]
        (None, 2, 2, 1280)
    """
    # === arguments ===
    if encoder not in ENCODERS:
        raise ValueError(
            f"unknown encoder {encoder!r}{closest_match(encoder, list(ENCODERS))} "
            f"Valid encoders: {list_encoders()}"
        )
    spec = ENCODERS[encoder]
    weights = _check_encoder_weights(encoder_weights)
    if not isinstance(encoder_freeze, bool):
        raise ValueError(f"`encoder_freeze` must be True or False, received {encoder_freeze!r}")
    check_positive_int("base_filters", base_filters)
    check_positive_int("depth", depth)
    if depth > MAX_DEPTH:
        raise ValueError(
            f"`depth` must be at most {MAX_DEPTH} with an encoder (the backbone has five "
            f"stride-2 stages), received {depth}"
        )
    check_positive_int("num_classes", num_classes)
    dropout = check_fraction("dropout", dropout)
    check_choice("upsampling", upsampling, UPSAMPLING_MODES)
    check_choice("output", output, OUTPUT_MODES)
    input_shape = check_input_shape(input_shape)
    if input_shape[2] not in (1, 3):
        raise ValueError(
            f"`input_shape` channels must be 1 (repeated to RGB) or 3 with an encoder, "
            f"received {input_shape[2]} in {input_shape}"
        )
    factor = 2**depth
    for axis, size in zip(("height", "width"), input_shape[:2]):
        if size is not None and (size % factor or size < 32):
            raise ValueError(
                f"`input_shape` {axis} must be a multiple of 2**depth = {factor} and at least "
                f"32, received {size}; nearest valid sizes: "
                f"{tuple(s for s in nearest_multiples(size, factor) if s >= 32)}"
            )

    # === encoder: the backbone cut at its feature layers ===
    backbone = _build_backbone(encoder, spec, (*input_shape[:2], 3), weights)
    features = [backbone.get_layer(layer).output for layer in spec.features[:depth]]
    encoder_model = keras.Model(backbone.inputs, features, name="encoder")
    if encoder_freeze:
        encoder_model.trainable = False

    # === input: grayscale to RGB, the backbone's preprocessing ===
    inputs = keras.Input(input_shape, name="image")
    x = inputs
    if input_shape[2] == 1:
        x = keras.layers.Concatenate(name="grayscale_to_rgb")([x, x, x])
    x = BackbonePreprocessing(spec.preprocessing, name="encoder_preprocess")(x)
    if spec.application.startswith("EfficientNet") and weights not in (None, "imagenet"):
        x = _efficientnet_imagenet_rescale(backbone)(x)
    skips = encoder_model(x)
    skips = list(skips) if isinstance(skips, list | tuple) else [skips]
    if dropout:
        skips[-1] = keras.layers.Dropout(dropout, name="bottleneck_dropout")(skips[-1])

    # === decoder ===
    filters = [base_filters * 2**stage for stage in range(depth)]
    x = _decoder(skips, filters, "decoder", batch_norm=batch_norm, upsampling=upsampling)
    outputs = output_conv(x, num_classes, output, name="output")
    return keras.Model(inputs, outputs, name=name)


__all__ = [
    "ENCODERS",
    "PREPROCESSING_MODES",
    "BackbonePreprocessing",
    "EncoderSpec",
    "build_encoder_unet",
    "list_encoders",
]
