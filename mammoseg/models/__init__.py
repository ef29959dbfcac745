"""One Keras 3 builder per architecture of the paper (section IV), behind a small registry.

Every builder is importable by itself (``from mammoseg.models.unet import build_unet``) and through
`build_model`, which resolves a name once:

    >>> from mammoseg import models
    >>> models.list_models()  # doctest: +SKIP
    ['feedforward_regressor', 'logistic_regression', 'mask_rcnn', 'shallow_cnn', 'unet', ...]
    >>> unet = models.build_model("unet", input_shape=(64, 64, 1), base_filters=8)  # doctest: +SKIP
    >>> pretrained = models.build_model("unet", encoder="resnet50")  # doctest: +SKIP

Builder modules are imported on first use, so ``import mammoseg.models`` is cheap and does not
fail when an optional builder (Mask R-CNN) is absent.

Modules:
    blocks       layers shared by the builders (conv blocks, up-sampling)
    logistic     pixel-wise logistic regression (IV.A) and the authors' baseline
    feedforward  feed-forward regressor of a lesion's circle (IV.B, V.A)
    shallow_cnn  the shallow CNN (IV.C, V.B)
    unet         UNet (IV.D)
    encoders     keras.applications backbones (ResNet, EfficientNet, ...) as the UNet's encoder
    yaroslav     YaroslavNet patch classifier and the segmenters on it (IV.E)
    weights      Keras 2 HDF5 weight files loaded into Keras 3 models by layer name
    mask_rcnn/   matterport's Mask R-CNN on Keras 3 (IV.F; see its docstring)
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import keras

from mammoseg.checks import closest_match

if TYPE_CHECKING:
    from mammoseg.models.mask_rcnn.model import MaskRCNN

# name -> builder, or "module:function" resolved on first use. Every builder returns a
# keras.Model except Mask R-CNN's, which returns matterport's MaskRCNN wrapper.
_REGISTRY: dict[str, Callable[..., keras.Model] | str] = {
    "logistic_regression": "mammoseg.models.logistic:build_pixel_logistic_regression",
    "feedforward_regressor": "mammoseg.models.feedforward:build_feedforward_regressor",
    "shallow_cnn": "mammoseg.models.shallow_cnn:build_shallow_cnn",
    "unet": "mammoseg.models.unet:build_unet",
    "yaroslav_net": "mammoseg.models.yaroslav:build_yaroslav_net",
    "yaroslav_segmenter": "mammoseg.models.yaroslav:build_yaroslav_segmenter",
    "mask_rcnn": "mammoseg.models.mask_rcnn:build_mask_rcnn",
}


def register_model(
    name: str, builder: Callable[..., keras.Model] | str, *, overwrite=False
) -> None:
    """Add a builder to the registry.

    Args:
        name: the registry name (snake_case).
        builder: a callable returning a `keras.Model`, or ``"package.module:function"``, imported
            on first use.
        overwrite: replace an existing entry instead of raising.

    Raises:
        ValueError: ``name`` is already registered and ``overwrite`` is False.
        TypeError: ``builder`` is neither callable nor a ``"module:function"`` string.

    Example:
        >>> register_model("tiny_unet", lambda **kw: build_model("unet", base_filters=8, **kw))
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"`name` must be a non-empty string, received {name!r}")
    if not (callable(builder) or (isinstance(builder, str) and ":" in builder)):
        raise TypeError(
            f"`builder` must be callable or a 'module:function' string, received {builder!r}"
        )
    if name in _REGISTRY and not overwrite:
        raise ValueError(f"model {name!r} is already registered; pass overwrite=True to replace it")
    _REGISTRY[name] = builder


def list_models() -> list[str]:
    """Return the registered model names, sorted.

    Example:
        >>> "unet" in list_models()
        True
    """
    return sorted(_REGISTRY)


def get_builder(name: str) -> Callable[..., keras.Model]:
    """Return the builder registered under ``name``, importing its module if needed.

    Args:
        name: a registered name, see `list_models`.

    Returns:
        The builder function.

    Raises:
        ValueError: unknown name; the message lists the valid names and the closest match.
        ImportError: the builder's module cannot be imported (e.g. not written yet).

    Example:
        >>> get_builder("unet").__name__
        'build_unet'
    """
    if name not in _REGISTRY:
        hint = closest_match(name, list(_REGISTRY))
        raise ValueError(f"unknown model {name!r}{hint} Valid names: {list_models()}")
    entry = _REGISTRY[name]
    if isinstance(entry, str):
        module_name, function_name = entry.split(":")
        entry = getattr(importlib.import_module(module_name), function_name)
        _REGISTRY[name] = entry
    return entry


def build_model(architecture: str, /, **options: Any) -> keras.Model | MaskRCNN:
    """Build a registered architecture by name.

    ``architecture`` is positional-only, so every keyword, ``name`` included, reaches the
    builder: ``build_model("unet", name="my_unet")`` names the model.

    Args:
        architecture: one of `list_models()`: "logistic_regression" (IV.A),
            "feedforward_regressor" (IV.B / V.A), "shallow_cnn" (IV.C), "unet" (IV.D; with
            ``encoder=`` a keras.applications backbone), "yaroslav_net" and "yaroslav_segmenter"
            (IV.E), "mask_rcnn" (IV.F).
        **options: the builder's keyword arguments.

    Returns:
        The (uncompiled) `keras.Model`, except for "mask_rcnn": matterport's ``MaskRCNN``
        wrapper (not a `keras.Model`), whose Keras model is ``.keras_model``.

    Raises:
        ValueError: unknown architecture (with the closest match) or an invalid argument.

    Example:
        >>> model = build_model("unet", input_shape=(64, 64, 1), base_filters=8)  # doctest: +SKIP
        >>> model = build_model("unet", encoder="efficientnetb0", name="effunet")  # doctest: +SKIP
    """
    return get_builder(architecture)(**options)


_LAZY_ATTRIBUTES = {
    "build_pixel_logistic_regression": "mammoseg.models.logistic",
    "PixelLogisticRegression": "mammoseg.models.logistic",
    "build_feedforward_regressor": "mammoseg.models.feedforward",
    "build_shallow_cnn": "mammoseg.models.shallow_cnn",
    "build_unet": "mammoseg.models.unet",
    "build_encoder_unet": "mammoseg.models.encoders",
    "list_encoders": "mammoseg.models.encoders",
    "build_yaroslav_net": "mammoseg.models.yaroslav",
    "build_yaroslav_segmenter": "mammoseg.models.yaroslav",
    "load_yaroslav_weights": "mammoseg.models.yaroslav",
    "LoadReport": "mammoseg.models.weights",
    "load_weights_by_name": "mammoseg.models.weights",
}


def __getattr__(attribute: str) -> Any:
    # ``from mammoseg.models import build_unet`` works without importing every builder up front.
    if attribute in _LAZY_ATTRIBUTES:
        return getattr(importlib.import_module(_LAZY_ATTRIBUTES[attribute]), attribute)
    raise AttributeError(f"module 'mammoseg.models' has no attribute {attribute!r}")


__all__ = ["build_model", "get_builder", "list_models", "register_model", *_LAZY_ATTRIBUTES]
