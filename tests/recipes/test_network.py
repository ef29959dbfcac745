"""The recipe's UNet is sized by its config: patch size, base filters, depth and encoder."""

import json

import numpy as np
import pytest

from mammoseg.recipes import (
    RecipeConfig,
    build_recipe_model,
    load_initial_weights,
    load_recipe,
    save_recipe,
)
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


def _working_images(n=2, shape=(96, 96)):
    import numpy as np

    from mammoseg.recipes.breast_crop import find_breast
    from mammoseg.recipes.preprocess import WorkingImage

    rows, cols = np.mgrid[: shape[0], : shape[1]]
    out = []
    for k in range(n):
        mask = ((rows - 40 - 5 * k) ** 2 + (cols - 50) ** 2 <= 64).astype(np.uint8)
        image = mask.astype(np.float32)
        crop = find_breast(np.ones(shape, np.float32))
        out.append(
            WorkingImage(image, np.ones(shape, bool), crop, -1.0, mask, ((40 + 5 * k, 50, 8),))
        )
    return out


def test_init_weights_must_name_a_keras_or_weights_file():
    with pytest.raises(ValueError, match=r"`init_weights` must be None or the path of a \.keras"):
        RecipeConfig(init_weights="pretrained.h5")
    with pytest.raises(ValueError, match="`init_weights`"):
        RecipeConfig(init_weights=3)
    assert RecipeConfig(init_weights="runs/p/model.keras").init_weights == "runs/p/model.keras"


def test_load_initial_weights_errors_name_the_file(tmp_path):
    from mammoseg.recipes import load_initial_weights

    config = RecipeConfig(patch_size=64, base_filters=4, depth=2)
    with pytest.raises(FileNotFoundError, match="nothing.keras"):
        load_initial_weights(build_recipe_model(config), tmp_path / "nothing.keras")
    other = tmp_path / "wider.keras"
    build_recipe_model(RecipeConfig(patch_size=64, base_filters=8, depth=2)).save(other)
    with pytest.raises(ValueError, match=r"wider\.keras: its weights do not fit"):
        load_initial_weights(build_recipe_model(config), other)


def test_train_recipe_starts_from_init_weights(tmp_path):
    """Fine-tuning: the first weights are the file's (a frozen learning rate keeps them)."""
    import numpy as np

    from mammoseg.recipes import train_recipe

    config = RecipeConfig(
        working_size=96, patch_size=32, base_filters=4, depth=2, batch_size=2,
        steps_per_epoch=1, epochs=1, patience=1, time_budget_minutes=None, tta=False,
        learning_rate=1e-12,
    )  # fmt: skip
    pretrained = build_recipe_model(config)
    kernels = [w.numpy() + 0.01 * k for k, w in enumerate(pretrained.weights) if w.ndim == 4]
    for variable, value in zip([w for w in pretrained.weights if w.ndim == 4], kernels):
        variable.assign(value)
    path = tmp_path / "pretrained.keras"
    pretrained.save(path)
    images = _working_images()
    started = RecipeConfig.from_dict({**config.to_dict(), "init_weights": str(path)})
    model, _ = train_recipe(images, images, started, tmp_path / "run", verbose=0)
    trained = [w.numpy() for w in model.weights if w.ndim == 4]
    assert len(trained) == len(kernels) > 4
    for got, want in zip(trained, kernels):
        np.testing.assert_allclose(got, want, atol=1e-6)
    scratch, _ = train_recipe(images, images, config, tmp_path / "scratch", verbose=0)
    first = next(w.numpy() for w in scratch.weights if w.ndim == 4)
    assert not np.allclose(first, kernels[0], atol=1e-3)

    # Interrupted after epoch 1, resumed without the start file: the checkpoint has the weights.
    from mammoseg.training import StopAfterEpoch

    two = RecipeConfig.from_dict({**started.to_dict(), "epochs": 2, "patience": 2})
    with pytest.raises(KeyboardInterrupt):
        train_recipe(
            images, images, two, tmp_path / "cut", callbacks=[StopAfterEpoch(1)], verbose=0
        )
    path.unlink()
    with pytest.raises(FileNotFoundError, match="pretrained.keras"):
        train_recipe(images, images, two, tmp_path / "new", verbose=0)  # a new run needs it
    resumed, summary = train_recipe(images, images, two, tmp_path / "cut", resume=True, verbose=0)
    assert summary["epochs_run"] == 2
    first = next(w.numpy() for w in resumed.weights if w.ndim == 4)
    np.testing.assert_allclose(first, kernels[0], atol=1e-6)


def _tree(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_a_checkpoint_resumes_only_with_the_settings_and_start_it_began_with(tmp_path):
    import shutil

    from mammoseg.recipes import train_recipe
    from mammoseg.recipes.train import START_FILE
    from mammoseg.training import StopAfterEpoch

    config = RecipeConfig(
        working_size=96, patch_size=32, base_filters=4, depth=2, batch_size=2,
        steps_per_epoch=1, epochs=2, patience=2, time_budget_minutes=None, tta=False,
    )  # fmt: skip
    start = tmp_path / "start.keras"
    build_recipe_model(config).save(start)
    started = RecipeConfig.from_dict({**config.to_dict(), "init_weights": str(start)})
    images = _working_images()
    with pytest.raises(KeyboardInterrupt):
        train_recipe(
            images, images, started, tmp_path / "cut", callbacks=[StopAfterEpoch(1)], verbose=0
        )
    recorded = json.loads((tmp_path / "cut" / START_FILE).read_text())
    assert recorded["seed"] == 0 and recorded["recipe"]["learning_rate"] == 2e-3
    assert len(recorded["start"]["sha256"]) == 64 and "init_weights" not in recorded["recipe"]
    shutil.copytree(tmp_path / "cut", tmp_path / "pristine")

    def resume(cfg, seed=0):
        folder = tmp_path / "cut"
        return train_recipe(images, images, cfg, folder, seed=seed, resume=True, verbose=0)

    with pytest.raises(ValueError) as refused:
        resume(RecipeConfig.from_dict({**started.to_dict(), "learning_rate": 1e-3}))
    assert str(refused.value) == (
        f"{tmp_path / 'cut'}: its checkpoint was started with other settings (learning_rate: "
        "0.002 then, 0.001 now); resume with the same ones, or train into a new folder"
    )
    with pytest.raises(ValueError, match=r"seed: 0 then, 1 now"):
        resume(started, seed=1)
    with pytest.raises(ValueError, match=r"start weights: loaded then, from scratch now"):
        resume(config)
    other = tmp_path / "other.keras"
    build_recipe_model(config).save(other)  # new random weights: another file's bytes
    with pytest.raises(ValueError, match=r"start weights: .*other\.keras is not the file"):
        resume(RecipeConfig.from_dict({**config.to_dict(), "init_weights": str(other)}))
    assert _tree(tmp_path / "cut") == _tree(tmp_path / "pristine")  # no refusal touched a file
    # A longer time budget (a resource, not the recipe) and a moved start file are the same run.
    shutil.move(start, tmp_path / "moved.keras")
    moved = {**started.to_dict(), "init_weights": str(tmp_path / "moved.keras")}
    _, summary = resume(RecipeConfig.from_dict({**moved, "time_budget_minutes": 60.0}))
    assert summary["epochs_run"] == 2


def test_load_initial_weights_refuses_what_keras_only_warns_about(tmp_path, monkeypatch):
    """Keras 3 loads a file that lacks some layers with a warning and random weights there."""
    import warnings

    from mammoseg.recipes import load_initial_weights

    config = RecipeConfig(patch_size=64, base_filters=4, depth=2)
    model = build_recipe_model(config)
    path = tmp_path / "partial.keras"
    model.save(path)

    def warn_only(filepath):
        warnings.warn("Skipping nested container at 'decoder': no matching group", stacklevel=2)

    monkeypatch.setattr(model, "load_weights", warn_only)
    with pytest.raises(ValueError, match=r"partial\.keras: its weights do not fit.*Skipping"):
        load_initial_weights(model, path)


def test_load_initial_weights_into_a_compiled_model_ignores_the_optimizer(tmp_path):
    import keras

    config = RecipeConfig(patch_size=32, base_filters=4, depth=2)
    trained = build_recipe_model(config)
    trained.compile(optimizer="adam", loss="mse")
    x = np.random.default_rng(0).random((2, 32, 32, 1)).astype(np.float32)
    trained.fit(x, x, epochs=1, verbose=0)  # the file now holds an optimizer state
    trained.save(tmp_path / "trained.keras")
    fresh = build_recipe_model(config)
    fresh.compile(optimizer=keras.optimizers.Adam(), loss="mse")
    load_initial_weights(fresh, tmp_path / "trained.keras")
    for ours, theirs in zip(fresh.weights, trained.weights):
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
