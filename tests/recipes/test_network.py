"""The recipe's UNet is sized by its config: patch size, base filters and depth."""

from mammoseg.recipes import RecipeConfig, build_recipe_model


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
