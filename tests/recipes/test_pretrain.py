"""Phantom pre-training: which phantom, which budget, and a model that the recipe can start from."""

import json

import numpy as np
import pytest

from mammoseg.recipes import (
    Predictor,
    RecipeConfig,
    build_recipe_model,
    load_initial_weights,
    pretrain_config,
    pretrain_on_phantom,
    pretrain_phantom_seed,
)


def test_the_pretraining_phantom_is_never_the_tested_one():
    assert pretrain_phantom_seed("phantom") == 1  # the built-in phantom is seed 0
    assert pretrain_phantom_seed("mias:/data/mias") == 0
    assert pretrain_phantom_seed("cbis-ddsm:/data/cbis") == 0


def test_the_budget_replaces_the_runs_and_the_start_is_random():
    run = RecipeConfig(epochs=30, patience=7, time_budget_minutes=8.0, init_weights="a.keras")
    config = pretrain_config(run)
    assert (config.time_budget_minutes, config.epochs, config.init_weights) == (10.0, 16, None)
    assert config.patience == 7 and config.working_size == run.working_size
    assert pretrain_config(run, minutes=2.5, epochs=40).epochs == 30  # never more than the run's
    assert pretrain_config(RecipeConfig(epochs=3)).epochs == 3
    with pytest.raises(ValueError, match="must be positive minutes, received 0"):
        pretrain_config(run, minutes=0)


def test_pretraining_writes_a_model_the_recipe_starts_from(tmp_path):
    config = RecipeConfig(
        working_size=64,
        patch_size=32,
        base_filters=4,
        depth=2,
        batch_size=2,
        steps_per_epoch=2,
        epochs=1,
        time_budget_minutes=None,
    )
    info = pretrain_on_phantom(
        pretrain_config(config), tmp_path / "pre", n_images=12, size=128, phantom_seed=1, verbose=0
    )
    assert info["model"] == str(tmp_path / "pre" / "model.keras")
    assert info["phantom_seed"] == 1 and info["training"]["epochs_run"] == 1
    assert info["images"]["train"] + info["images"]["val"] < 12  # the test part is left out
    saved = json.loads((tmp_path / "pre" / "recipe.json").read_text())
    assert saved["data"] == "phantom (seed 1)" and saved["recipe"]["init_weights"] is None
    # The file is a start for the run's network: its weights, loaded, are the file's.
    pretrained = Predictor.load(info["model"]).model
    fresh = build_recipe_model(config)
    load_initial_weights(fresh, info["model"])
    for a, b in zip(fresh.get_weights(), pretrained.get_weights()):
        np.testing.assert_array_equal(a, b)
