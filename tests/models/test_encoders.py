"""Pretrained encoders: feature layers, preprocessing, weights from files, freezing, errors."""

import os
import urllib.error
import urllib.request
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest

from mammoseg.models import build_model
from mammoseg.models.encoders import (
    ENCODERS,
    IMAGENET_MEAN_RGB,
    IMAGENET_STD_RGB,
    BackbonePreprocessing,
    build_encoder_unet,
    list_encoders,
)

X64 = np.random.default_rng(0).uniform(size=(2, 64, 64, 1)).astype("float32")


def backbone(encoder, seed=0):
    """The bare keras.applications model, random weights, as a user would save it."""
    keras.utils.set_random_seed(seed)
    application = getattr(keras.applications, ENCODERS[encoder].application)
    return application(include_top=False, weights=None, input_shape=(64, 64, 3))


def write_keras2_weights(model, path):
    """The layout of keras.applications' *_notop.h5 files (Keras 2 ``save_weights``)."""
    with h5py.File(path, "w") as handle:
        layers = [layer for layer in model.layers if layer.weights]
        handle.attrs["layer_names"] = np.array([layer.name.encode() for layer in layers])
        for layer in layers:
            group = handle.create_group(layer.name)
            names = [f"{layer.name}/{w.name}:0" for w in layer.weights]
            group.attrs["weight_names"] = np.array([n.encode() for n in names])
            for name, weight in zip(names, layer.weights):
                group.create_dataset(name, data=keras.ops.convert_to_numpy(weight))


@pytest.mark.parametrize("encoder", ["resnet50", "efficientnetb0"])
def test_unet_on_encoder_shapes_skips_and_forward_pass(encoder):
    model = build_model(
        "unet", encoder=encoder, encoder_weights=None, input_shape=(64, 64, 1), name="x"
    )
    assert model.name == "x"
    assert model.output_shape == (None, 64, 64, 1)
    inner = model.get_layer("encoder")
    # The four skips and the bottleneck are the backbone's named layers, at strides 2 … 32.
    assert [t.shape[1] for t in inner.outputs] == [32, 16, 8, 4, 2]
    for name, tensor in zip(ENCODERS[encoder].features, inner.outputs):
        assert inner.get_layer(name).output is tensor
    assert model.get_layer("decoder5_concat") and model.get_layer("decoder5_up").filters == 256
    assert model.get_layer("decoder1_conv2").filters == 16  # segmentation_models' 256 … 16
    y = keras.ops.convert_to_numpy(model(X64, training=False))
    assert y.shape == (2, 64, 64, 1) and np.all((y >= 0) & (y <= 1))


@pytest.mark.parametrize(
    "encoder",
    [
        name
        if name in ("vgg16", "resnet50", "mobilenetv2", "densenet121", "efficientnetb0")
        else pytest.param(name, marks=pytest.mark.slow)
        for name in list_encoders()
    ],
)
def test_every_encoder_feature_layer_has_its_stride(encoder):
    model = backbone(encoder)
    sizes = [model.get_layer(name).output.shape[1] for name in ENCODERS[encoder].features]
    assert sizes == [32, 16, 8, 4, 2]


@pytest.mark.parametrize(
    "encoder, family",
    [
        ("vgg16", keras.applications.vgg16),
        ("resnet50", keras.applications.resnet),
        ("mobilenetv2", keras.applications.mobilenet_v2),
        ("densenet121", keras.applications.densenet),
        ("efficientnetb0", keras.applications.efficientnet),
    ],
)
def test_preprocessing_is_the_family_preprocess_input_on_0_1_images(encoder, family):
    rgb = np.random.default_rng(1).uniform(size=(2, 4, 4, 3)).astype("float32")
    expected = family.preprocess_input(rgb * 255.0)  # caffe: also RGB -> BGR
    got = BackbonePreprocessing(ENCODERS[encoder].preprocessing)(rgb)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(got), expected, rtol=1e-5, atol=1e-4)


def test_grayscale_is_repeated_to_rgb_before_preprocessing():
    model = build_encoder_unet((64, 64, 1), "vgg16", encoder_weights=None, depth=1)
    seen = keras.Model(model.input, model.get_layer("encoder_preprocess").output)
    expected = keras.applications.vgg16.preprocess_input(np.repeat(X64, 3, axis=-1) * 255.0)
    np.testing.assert_allclose(seen.predict(X64, verbose=0), expected, rtol=1e-5, atol=1e-4)
    rgb = build_encoder_unet((64, 64, 3), "vgg16", encoder_weights=None, depth=1)
    assert "grayscale_to_rgb" not in {layer.name for layer in rgb.layers}


@pytest.mark.parametrize("layout", ["keras3", "keras2"])
def test_weights_file_in_the_backbone_layout_loads_exactly(tmp_path, layout):
    source = backbone("mobilenetv2", seed=1)
    if layout == "keras3":
        path = tmp_path / "mobilenetv2.weights.h5"
        source.save_weights(path)
    else:
        path = tmp_path / "mobilenet_v2_notop.h5"
        write_keras2_weights(source, path)
    keras.utils.set_random_seed(2)
    model = build_model(
        "unet", encoder="mobilenetv2", encoder_weights=path, input_shape=(64, 64, 1)
    )
    loaded = model.get_layer("encoder").get_weights()
    expected = source.get_weights()
    assert len(loaded) == len(expected) == 260
    for got, want in zip(loaded, expected):
        np.testing.assert_array_equal(got, want)
    # The random initialisation under the seed of the build differs, so the test can fail.
    fresh = backbone("mobilenetv2", seed=2).get_layer("Conv1").get_weights()[0]
    assert not np.array_equal(fresh, source.get_layer("Conv1").get_weights()[0])


def test_efficientnet_from_a_file_computes_the_imagenet_normalisation(tmp_path):
    # keras.applications' ImageNet file stores the std as the normalisation's *variance* and
    # adds a rescaling only for weights="imagenet"; from a file, the model must still compute
    # (x - mean) / std on [0, 1] images, as keras' "imagenet" graph does.
    source = backbone("efficientnetb0")
    normalization = next(
        layer for layer in source.layers if isinstance(layer, keras.layers.Normalization)
    )
    mean, variance, count = normalization.get_weights()
    normalization.set_weights(
        [
            np.reshape(IMAGENET_MEAN_RGB, mean.shape),
            np.reshape(IMAGENET_STD_RGB, variance.shape),
            count,
        ]
    )
    path = tmp_path / "efficientnetb0_notop.h5"
    write_keras2_weights(source, path)
    model = build_encoder_unet((64, 64, 1), "efficientnetb0", encoder_weights=path, depth=1)
    inner = model.get_layer("encoder")
    inner_norm = next(
        layer for layer in inner.layers if isinstance(layer, keras.layers.Normalization)
    )
    to_backbone = keras.Model(model.input, model.get_layer("encoder_imagenet_rescale").output)
    normalised = keras.Model(inner.input, inner_norm.output)
    got = normalised.predict(to_backbone.predict(X64, verbose=0), verbose=0)
    rgb = np.repeat(X64, 3, axis=-1)
    expected = (rgb - np.array(IMAGENET_MEAN_RGB)) / np.array(IMAGENET_STD_RGB)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    # Random weights (None) and "imagenet" (keras' own graph) get no such layer.
    plain = build_encoder_unet((64, 64, 1), "efficientnetb0", encoder_weights=None, depth=1)
    assert "encoder_imagenet_rescale" not in {layer.name for layer in plain.layers}


def test_weights_of_another_backbone_name_the_file(tmp_path):
    path = tmp_path / "vgg16.weights.h5"
    backbone("vgg16").save_weights(path)
    with pytest.raises(ValueError, match=r"vgg16.weights.h5: not the weights of .*MobileNetV2"):
        build_encoder_unet((64, 64, 1), "mobilenetv2", encoder_weights=path)


def test_imagenet_without_internet_names_the_weights_and_suggests_a_path(monkeypatch):
    cache = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "models"
    if any("mobilenet_v2" in p.name for p in cache.glob("*")):
        pytest.skip(f"ImageNet weights cached in {cache}: Keras would not download them")

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no internet (test)")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(OSError) as caught:
        build_model("unet", encoder="mobilenetv2", input_shape=(64, 64, 1))
    message = str(caught.value)
    assert "ImageNet weights of mobilenetv2 (keras.applications.MobileNetV2" in message
    assert "mobilenet_v2" in message and "_no_top" in message  # the file Keras asked for
    assert "pass encoder_weights=PATH" in message


def test_freeze_leaves_only_the_decoder_trainable():
    kwargs = {"encoder": "mobilenetv2", "encoder_weights": None, "input_shape": (64, 64, 1)}
    trainable = build_model("unet", **kwargs)
    frozen = build_model("unet", encoder_freeze=True, **kwargs)
    encoder_trainable = len(trainable.get_layer("encoder").trainable_weights)
    assert encoder_trainable == 156  # MobileNetV2 without its classifier
    assert len(frozen.trainable_weights) == len(trainable.trainable_weights) - encoder_trainable
    assert all(not layer.trainable for layer in frozen.get_layer("encoder").layers)
    assert len(frozen.weights) == len(trainable.weights)


def test_saves_and_reloads(tmp_path):
    model = build_encoder_unet(
        (64, 64, 1), "mobilenetv2", encoder_weights=None, depth=2, output="logits"
    )
    path = tmp_path / "encoder_unet.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path)
    np.testing.assert_allclose(
        reloaded.predict(X64, verbose=0), model.predict(X64, verbose=0), rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"encoder": "resnet5"}, ValueError, r"unknown encoder 'resnet5'; did you mean 'resnet50'"),
        ({"depth": 6}, ValueError, "`depth` must be at most 5 with an encoder .* received 6"),
        ({"input_shape": (48, 64, 1)}, ValueError, r"height must be a multiple .* \(32, 64\)"),
        ({"input_shape": (16, 64, 1), "depth": 1}, ValueError, "width|height .* at least 32"),
        ({"input_shape": (64, 64, 2)}, ValueError, "channels must be 1 .* or 3 .* received 2"),
        ({"encoder_weights": 3}, TypeError, "`encoder_weights` must be None, 'imagenet' or"),
        ({"encoder_weights": "imagnet"}, ValueError, r"ending in \('.h5'"),
        ({"encoder_weights": "absent.h5"}, FileNotFoundError, "file not found: absent.h5"),
        ({"encoder_freeze": "yes"}, ValueError, "`encoder_freeze` must be True or False"),
        ({"base_filters": 0}, ValueError, "`base_filters` must be a positive integer"),
        ({"upsampling": "transposed"}, ValueError, "did you mean 'transpose'"),
    ],
)
def test_invalid_arguments(kwargs, error, message):
    options = {"input_shape": (64, 64, 1), "encoder": "vgg16", "encoder_weights": None, **kwargs}
    with pytest.raises(error, match=message):
        build_model("unet", **options)
