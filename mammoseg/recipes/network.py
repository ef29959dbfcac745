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


__all__ = ["build_recipe_model"]
