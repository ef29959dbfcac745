"""Registry, and the contract every builder keeps: build, train a step, save, reload."""

import keras
import numpy as np
import pytest

from mammoseg import models

TINY = {
    "logistic_regression": {"input_shape": (32, 32, 1)},
    "feedforward_regressor": {
        "input_shape": (32, 32, 1),
        "hidden_units": (8, 4),
        "variant": "corrected",
    },
    "shallow_cnn": {"input_shape": (32, 32, 1), "filters": (4, 4, 4), "pool_size": 8},
    "unet": {"input_shape": (32, 32, 1), "base_filters": 4, "depth": 2},
    "yaroslav_net": {"input_shape": (64, 64, 1)},
    "yaroslav_segmenter": {"input_shape": (64, 64, 1), "head_filters": 4},
}


def test_list_models_names_every_paper_architecture():
    assert set(TINY) | {"mask_rcnn"} <= set(models.list_models())
    assert models.list_models() == sorted(models.list_models())


def test_unknown_name_lists_valid_names_and_closest():
    with pytest.raises(
        ValueError, match=r"unknown model 'unet2'; did you mean 'unet'\? Valid names"
    ):
        models.build_model("unet2")


def test_register_model_and_duplicate_error():
    models.register_model("tiny_logistic", models.get_builder("logistic_regression"))
    try:
        assert models.build_model("tiny_logistic").count_params() == 2
        with pytest.raises(ValueError, match="'tiny_logistic' is already registered"):
            models.register_model("tiny_logistic", lambda: None)
        with pytest.raises(TypeError, match="`builder` must be callable"):
            models.register_model("other", 3)
    finally:
        models._REGISTRY.pop("tiny_logistic")


def _targets(model, rng):
    shape = (2,) + tuple(model.output_shape[1:])
    if model.name == "shallow_cnn" or model.name == "yaroslav_net":
        labels = rng.integers(0, shape[-1], size=shape[:-1])
        return np.eye(shape[-1], dtype="float32")[labels], "categorical_crossentropy"
    if model.name == "feedforward_regressor":
        return rng.uniform(size=shape).astype("float32"), "mse"
    return (rng.uniform(size=shape) > 0.7).astype("float32"), "binary_crossentropy"


@pytest.mark.parametrize("name", sorted(TINY))
def test_builds_trains_saves_and_reloads(name, tmp_path):
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    model = models.build_model(name, **TINY[name])
    x = rng.uniform(size=(2,) + tuple(model.input_shape[1:])).astype("float32")
    y, loss = _targets(model, rng)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss)
    before = [w.copy() for w in model.get_weights()]
    history = model.fit(x, y, epochs=1, batch_size=2, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    path = tmp_path / f"{name}.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path)
    np.testing.assert_allclose(
        reloaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6
    )


def test_lazy_entries_import_only_when_asked():
    # A builder whose module is missing does not break the registry, only its own use.
    models.register_model("ghost", "mammoseg.models.ghost_module:build_ghost")
    try:
        assert "ghost" in models.list_models()
        with pytest.raises(ModuleNotFoundError, match="mammoseg.models.ghost_module"):
            models.build_model("ghost")
    finally:
        models._REGISTRY.pop("ghost")
    assert models.get_builder("mask_rcnn").__name__ == "build_mask_rcnn"


def test_builders_importable_from_the_package():
    from mammoseg.models import build_encoder_unet, build_unet, list_encoders, load_weights_by_name
    from mammoseg.models.encoders import build_encoder_unet as direct_encoder
    from mammoseg.models.unet import build_unet as direct

    assert build_unet is direct and callable(load_weights_by_name)
    assert build_encoder_unet is direct_encoder and "resnet50" in list_encoders()
    assert models.get_builder("unet") is direct
    with pytest.raises(AttributeError, match="has no attribute 'build_unet2'"):
        models.build_unet2  # noqa: B018


def test_name_keyword_reaches_the_builder():
    # The registry's own argument is positional-only, so `name` is the builder's model name.
    model = models.build_model("unet", name="x", **TINY["unet"])
    assert model.name == "x"
    with pytest.raises(TypeError, match="missing 1 required positional argument: 'architecture'"):
        models.build_model(architecture="unet")
