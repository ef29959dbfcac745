"""EnsemblePredictor: the fold models of a cross-validation averaged into one predictor."""

import numpy as np
import pytest

from mammoseg.recipes import EnsemblePredictor, Predictor, RecipeConfig, build_recipe_model
from mammoseg.recipes.preprocess import preprocess_image

CONFIG = RecipeConfig(working_size=64, patch_size=32, base_filters=4, depth=2)


class _Constant(Predictor):
    """A member whose probability map is ``value`` inside the breast."""

    def __init__(self, value: float, config: RecipeConfig) -> None:
        super().__init__(model=None, config=config)
        self.value = value

    def predict_working(self, work):
        return np.where(work.breast, self.value, 0.0).astype(np.float32)


def _mammogram(shape=(96, 80)):
    image = np.zeros(shape, np.uint8)
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    image[(rows - 48) ** 2 + cols**2 <= 40**2] = 120
    return image


def test_the_ensemble_map_is_the_mean_of_the_members_and_the_threshold_too():
    members = [
        _Constant(0.2, CONFIG.with_postprocessing(0.3, 2)),
        _Constant(0.6, CONFIG.with_postprocessing(0.5, 1)),
        _Constant(0.7, CONFIG.with_postprocessing(0.7, 3)),
    ]
    ensemble = EnsemblePredictor(members)
    assert ensemble.config.threshold == pytest.approx(0.5)
    assert ensemble.config.mask_regions == 3  # the most generous limit
    prob, work = ensemble.predict(_mammogram())
    assert prob.shape == (96, 80)
    working = ensemble.predict_working(work)
    assert np.allclose(working[work.breast], 0.5, atol=1e-6)  # (0.2 + 0.6 + 0.7) / 3
    assert np.all(working[~work.breast] == 0.0)
    assert prob.max() == pytest.approx(0.5, abs=1e-6) and prob[0, -1] == 0.0


def test_one_unlimited_member_makes_the_ensemble_unlimited():
    members = [
        _Constant(0.1, CONFIG.with_postprocessing(0.4, None)),
        _Constant(0.1, CONFIG.with_postprocessing(0.4, 1)),
    ]
    assert EnsemblePredictor(members).config.mask_regions is None


def test_members_that_prepare_images_differently_are_refused():
    other = RecipeConfig(working_size=96, patch_size=32, base_filters=4, depth=2)
    with pytest.raises(
        ValueError, match=r"model 1 has working_size=64, model 2 has working_size=96"
    ):
        EnsemblePredictor([_Constant(0.1, CONFIG), _Constant(0.1, other)])
    with pytest.raises(ValueError, match="at least one model"):
        EnsemblePredictor([])


def test_an_ensemble_of_saved_models_averages_their_maps(tmp_path):
    from mammoseg.recipes import save_recipe

    paths = []
    for seed in (1, 2):
        import keras

        keras.utils.set_random_seed(seed)
        folder = tmp_path / f"fold_{seed}"
        folder.mkdir()
        build_recipe_model(CONFIG).save(folder / "model.keras")
        save_recipe(folder, CONFIG)
        paths.append(folder / "model.keras")
    ensemble = EnsemblePredictor.load(paths)
    one, two = (Predictor.load(path) for path in paths)
    work = preprocess_image(_mammogram(), CONFIG)
    first, second = one.predict_working(work), two.predict_working(work)
    assert not np.allclose(first, second)  # two different networks
    assert np.allclose(ensemble.predict_working(work), (first + second) / 2, atol=1e-6)


def test_loading_members_that_differ_names_their_files(tmp_path):
    from mammoseg.recipes import save_recipe

    paths = []
    for name, size in (("a", 64), ("b", 96)):
        config = RecipeConfig(working_size=size, patch_size=32, base_filters=4, depth=2)
        (tmp_path / name).mkdir()
        build_recipe_model(config).save(tmp_path / name / "model.keras")
        save_recipe(tmp_path / name, config)
        paths.append(tmp_path / name / "model.keras")
    with pytest.raises(ValueError) as caught:
        EnsemblePredictor.load(paths)
    assert f"{paths[0]} has working_size=64, {paths[1]} has working_size=96" in str(caught.value)
