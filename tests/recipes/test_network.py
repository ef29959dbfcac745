"""The recipe's UNet is sized by its config: patch size, base filters, depth and encoder."""

import json

import pytest

from mammoseg.recipes import RecipeConfig, build_recipe_model, load_recipe, save_recipe
from mammoseg.recipes.inference import check_model_matches


def test_build_recipe_model_follows_the_config():
    small = build_recipe_model(RecipeConfig(patch_size=64, base_filters=4, depth=2))
    wider = build_recipe_model(RecipeConfig(patch_size=64, base_filters=8, depth=2))
    deeper = build_recipe_model(RecipeConfig(patch_size=64, base_filters=4, depth=3))
    assert small.input_shape == (None, 64, 64, 1)
    assert small.output_shape == (None, 64, 64, 1)
    first_conv = next(w for w in small.weights if len(w.shape) == 4)
    assert tuple(first_conv.shape) == (3, 3, 1, 4)
    assert small.count_params() < wider.count_params()
    assert small.count_params() < deeper.count_params()
    # A logits head: no sigmoid on the last layer.
    assert small.layers[-1].get_config().get("activation") in (None, "linear")


def test_recipe_with_an_encoder_builds_saves_its_config_and_matches(tmp_path):
    config = RecipeConfig(patch_size=64, depth=5, encoder="mobilenetv2")
    model = build_recipe_model(config)
    assert model.input_shape == (None, 64, 64, 1) and model.output_shape == (None, 64, 64, 1)
    assert model.get_layer("encoder").get_layer("block_13_expand_relu")
    assert model.layers[-1].get_config().get("activation") in (None, "linear")
    save_recipe(tmp_path, config)
    assert json.loads((tmp_path / "recipe.json").read_text())["recipe"]["encoder"] == "mobilenetv2"
    loaded = load_recipe(tmp_path)
    assert loaded == config and loaded.encoder_weights is None
    check_model_matches(model, loaded, tmp_path / "model.keras")  # no error
    with pytest.raises(ValueError, match="another architecture"):
        check_model_matches(model, RecipeConfig(patch_size=64, depth=5), tmp_path / "model.keras")


def test_recipe_loads_encoder_weights_only_when_asked(tmp_path):
    config = RecipeConfig(patch_size=64, depth=2, encoder="vgg16", encoder_weights="absent.h5")
    with pytest.raises(FileNotFoundError, match="absent.h5"):
        build_recipe_model(config)
    shapes_only = build_recipe_model(config, load_encoder_weights=False)
    assert shapes_only.get_layer("encoder").get_layer("block2_conv2")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"encoder": "mobilenet_v2"}, "`encoder` must be one of .*did you mean 'mobilenetv2'"),
        ({"encoder_weights": "imagenet"}, "`encoder_weights` needs an `encoder`"),
        ({"encoder": "vgg16", "depth": 6, "patch_size": 128}, "`depth` must be at most 5"),
        ({"encoder": "vgg16", "depth": 4, "patch_size": 16}, "`patch_size` must be at least 32"),
        ({"encoder": "vgg16", "encoder_weights": 3}, "`encoder_weights` must be None"),
    ],
)
def test_recipe_encoder_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RecipeConfig(**kwargs)
