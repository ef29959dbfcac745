"""The recipe's network: a batch-normalised UNet with a logits head, sized by `RecipeConfig`.

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


def build_recipe_model(config: RecipeConfig) -> keras.Model:
    """The recipe's UNet: ``base_filters``/``depth`` from the config, batch norm, no dropout,
    a logits head (float32 under ``mixed_bfloat16``)."""
    return build_model(
        "unet",
        input_shape=(config.patch_size, config.patch_size, 1),
        base_filters=config.base_filters,
        depth=config.depth,
        batch_norm=True,
        dropout=0.0,
        output="logits",
    )


__all__ = ["build_recipe_model"]
