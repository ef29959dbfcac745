"""Phantom pre-training: the recipe's first step, a model trained on built-in phantom mammograms
that every real training run then starts from.

The phantom gives as many labelled mammograms as one wants; real databases hold a few dozen
masses. In 5 patient folds of mias-dev, starting from a phantom model cut the empty-prediction
rate by 0.20 [0.05, 0.40] and, with false-positive reduction, raised the FROC mean by 0.111
[0.022, 0.250] over training from scratch (docs/results/recipe_folds_miasdev.md).

Example:
    >>> start = pretrain_on_phantom(RecipeConfig(), "runs/pretrain")  # doctest: +SKIP
    >>> config = replace(config, init_weights=start["model"])  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from mammoseg.recipes.config import RecipeConfig, save_recipe

PRETRAIN_MINUTES = 10.0  # the measured setting (#17)
PRETRAIN_EPOCHS = 16  # the cosine schedule's length; the time budget stops it first on a CPU
PRETRAIN_DIR = "pretrain"


def pretrain_phantom_seed(data: str) -> int:
    """The seed of the phantom set to pre-train on: 0 (the built-in phantom) for real data, 1
    when the data is the built-in phantom (seed 0) itself, so no image that is tested was seen
    in pre-training.

    Example:
        >>> pretrain_phantom_seed("mias:/data/mias"), pretrain_phantom_seed("phantom")
        (0, 1)
    """
    return 1 if data.split(":", 1)[0] == "phantom" else 0


def pretrain_config(
    config: RecipeConfig, *, minutes: float = PRETRAIN_MINUTES, epochs: int = PRETRAIN_EPOCHS
) -> RecipeConfig:
    """The recipe of the pre-training: ``config`` (the network it will start) with a budget of
    ``minutes``, at most ``epochs`` epochs (fewer when ``config`` has fewer) and a random start.

    Raises:
        ValueError: a budget that is not positive (naming it).

    Example:
        >>> cfg = pretrain_config(RecipeConfig(epochs=30, init_weights="a.keras"))
        >>> cfg.time_budget_minutes, cfg.epochs, cfg.init_weights
        (10.0, 16, None)
    """
    if not minutes > 0:
        raise ValueError(f"the pre-training budget must be positive minutes, received {minutes}")
    return replace(
        config,
        time_budget_minutes=float(minutes),
        epochs=min(epochs, config.epochs),
        init_weights=None,
    )


def pretrain_on_phantom(
    config: RecipeConfig,
    folder: str | os.PathLike,
    *,
    n_images: int = 322,
    size: int = 1024,
    phantom_seed: int = 0,
    split_seed: int = 0,
    seed: int = 0,
    strategy=None,
    resume: bool = False,
    callbacks: Sequence = (),
    verbose: int | str = 2,
) -> dict:
    """Train ``config`` (see `pretrain_config`) on ``n_images`` phantom mammograms of ``size``
    pixels, split by patient (``split_seed``): training part for the weights, validation part
    for early stopping. Writes ``folder/model.keras`` and its ``recipe.json``.

    Returns:
        {"model": path of model.keras, "phantom_seed", "images": {"train", "val"}, "recipe",
        "training" (summary of `train_recipe`), "history"}.
    """
    from mammoseg.data import load_records, split_by_patient
    from mammoseg.recipes.preprocess import prepare_records
    from mammoseg.recipes.train import train_recipe

    folder = Path(folder)
    records = load_records("phantom", n_images=n_images, size=size, seed=phantom_seed)
    train, val, _ = split_by_patient(records, seed=split_seed, kinds=config.kinds)
    _, info = train_recipe(
        prepare_records(train, config),
        prepare_records(val, config),
        config,
        folder,
        seed=seed,
        strategy=strategy,
        resume=resume,
        callbacks=callbacks,
        verbose=verbose,
    )
    save_recipe(folder, config, data=f"phantom (seed {phantom_seed})", seed=seed)
    return {
        "model": str(folder / "model.keras"),
        "phantom_seed": phantom_seed,
        "images": {"train": len(train), "val": len(val)},
        "recipe": config.to_dict(),
        "training": {k: v for k, v in info.items() if k not in ("history", "validation")},
        "history": info["history"],
    }


__all__ = [
    "PRETRAIN_DIR",
    "PRETRAIN_EPOCHS",
    "PRETRAIN_MINUTES",
    "pretrain_config",
    "pretrain_on_phantom",
    "pretrain_phantom_seed",
]
