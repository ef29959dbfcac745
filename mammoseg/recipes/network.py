"""The recipe's network: a batch-normalised UNet with a logits head, sized by `RecipeConfig`.

With ``RecipeConfig.encoder`` set, the UNet's encoder is that keras.applications backbone
(`mammoseg.models.encoders`), its weights from ``RecipeConfig.encoder_weights``.

Training (`train.py`) builds it; inference (`inference.py`) builds it too, to check that a
saved model is the one its ``recipe.json`` describes.

Example:
    >>> from mammoseg.recipes import RecipeConfig, build_recipe_model
    >>> model = build_recipe_model(RecipeConfig(patch_size=64, base_filters=4, depth=2))
    >>> model.output_shape
    (None, 64, 64, 1)
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import keras

from mammoseg.models import build_model
from mammoseg.recipes.config import RecipeConfig


def build_recipe_model(config: RecipeConfig, *, load_encoder_weights: bool = True) -> keras.Model:
    """The recipe's UNet: ``base_filters``/``depth`` from the config, batch norm, no dropout,
    a logits head (float32 under ``mixed_bfloat16``); on ``config.encoder`` when it is set.

    Args:
        config: the recipe's settings.
        load_encoder_weights: load ``config.encoder_weights`` into the encoder; False builds the
            same architecture with random weights (enough to compare a saved model's shapes,
            and needs neither the file nor a download).

    Returns:
        The uncompiled model, (patch, patch, 1) → (patch, patch, 1) logits.

    Example:
        >>> config = RecipeConfig(patch_size=64, encoder="mobilenetv2")
        >>> build_recipe_model(config).get_layer("encoder").name
        'encoder'
    """
    options = {}
    if config.encoder is not None:
        options = {
            "encoder": config.encoder,
            "encoder_weights": config.encoder_weights if load_encoder_weights else None,
        }
    return build_model(
        "unet",
        input_shape=(config.patch_size, config.patch_size, 1),
        base_filters=config.base_filters,
        depth=config.depth,
        batch_norm=True,
        dropout=0.0,
        output="logits",
        **options,
    )


def load_initial_weights(model: keras.Model, path: str | os.PathLike) -> keras.Model:
    """Load the weights of a trained recipe model (``model.keras`` or ``.weights.h5``) into
    ``model``, which must have the same architecture: the start of a fine-tuning run.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file's weights do not fit ``model`` (naming the file and Keras's reason).

    Example:
        >>> config = RecipeConfig(patch_size=64, base_filters=4, depth=2)
        >>> build_recipe_model(config).save("/tmp/pretrained.keras")
        >>> model = load_initial_weights(build_recipe_model(config), "/tmp/pretrained.keras")
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"`init_weights` file not found: {path}")
    hint = (
        "build it with the same base_filters, depth, patch_size and encoder as the pre-trained "
        "model"
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model.load_weights(path)
        except ValueError as err:
            raise ValueError(
                f"{path}: its weights do not fit this recipe's network ({hint}): {err}"
            ) from err
    # Keras only warns when a layer of the model has no weights in the file and keeps its
    # random start: for a fine-tuning start that is an error too.
    # (An optimizer's state is not a weight: a compiled model warns about it and loads fine.)
    skipped = [
        str(w.message)
        for w in caught
        if "Skipping" in str(w.message) and "optimizer" not in str(w.message)
    ]
    if skipped:
        raise ValueError(
            f"{path}: its weights do not fit this recipe's network ({hint}); Keras: {skipped[0]}"
        )
    for w in caught:  # the others, as they were
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return model


__all__ = ["build_recipe_model", "load_initial_weights"]
