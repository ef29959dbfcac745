"""UNet (paper IV.D): defaults, options, mixed precision, argument errors."""

import keras
import numpy as np
import pytest

from mammoseg.models.unet import build_unet


def test_paper_defaults_parameter_count_and_names():
    model = build_unet((None, None, 1))
    assert model.count_params() == 31_030_593  # 64 → 1024 filters, depth 4, transposed up-sampling
    names = {layer.name for layer in model.layers}
    assert {"encoder1_conv1", "encoder4_dropout", "bottleneck_conv2", "bottleneck_dropout"} <= names
    assert "encoder3_dropout" not in names  # dropout on the two deepest stages only
    assert model.get_layer("encoder4_conv2").filters == 512
    assert model.get_layer("bottleneck_conv1").filters == 1024
    assert isinstance(model.get_layer("decoder1_up"), keras.layers.Conv2DTranspose)
    assert model.get_layer("output").get_config()["activation"] == "sigmoid"


def test_options_change_the_graph():
    model = build_unet(
        (32, 32, 3),
        base_filters=4,
        depth=2,
        batch_norm=True,
        dropout=0.0,
        upsampling="bilinear",
        output="logits",
        num_classes=2,
    )
    names = {layer.name for layer in model.layers}
    assert "encoder1_bn1" in names and "decoder2_upsample" in names
    assert not any("dropout" in name for name in names)
    assert model.get_layer("decoder2_upsample").interpolation == "bilinear"
    assert model.get_layer("output").get_config()["activation"] == "linear"
    assert model.output_shape == (None, 32, 32, 2)


def test_fully_convolutional_with_none_input():
    model = build_unet((None, None, 1), base_filters=2, depth=2)
    for size in (16, 24):
        assert model.predict(np.zeros((1, size, size, 1)), verbose=0).shape == (1, size, size, 1)


def test_mixed_bfloat16_keeps_output_float32_and_trains():
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        model = build_unet((32, 32, 1), base_filters=4, depth=2)
    finally:
        keras.config.set_dtype_policy("float32")
    assert model.get_layer("encoder1_conv1").compute_dtype == "bfloat16"
    assert model.get_layer("output").compute_dtype == "float32"
    model.compile("adam", "binary_crossentropy")
    x = np.random.default_rng(0).uniform(size=(1, 32, 32, 1)).astype("float32")
    loss = model.train_on_batch(x, (x > 0.5).astype("float32"))
    assert np.isfinite(loss)
    assert keras.backend.standardize_dtype(model(x).dtype) == "float32"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            {"input_shape": (100, 96, 1)},
            r"height must be a multiple of 2\*\*depth = 16, "
            r"received 100; nearest valid sizes: \(96, 112\)",
        ),
        ({"input_shape": (64, 70, 1), "depth": 3}, r"width .* nearest valid sizes: \(64, 72\)"),
        ({"base_filters": 0}, "`base_filters` must be a positive integer, received 0"),
        ({"depth": 2.5}, "`depth` must be a positive integer, received 2.5"),
        ({"dropout": "0.5"}, r"`dropout` must be a number in \[0, 1\), received '0.5'"),
        ({"dropout": 1.0}, r"`dropout` must be a number in \[0, 1\), received 1.0"),
        ({"dropout_stages": 7}, r"`dropout_stages` must be in \[0, depth \+ 1 = 5\], received 7"),
        ({"upsampling": "transposed"}, "`upsampling` must be one of .*did you mean 'transpose'"),
        ({"output": "softmax"}, r"`output` must be one of \('sigmoid', 'logits'\)"),
        ({"input_shape": (64, 64)}, r"`input_shape` must be \(height, width, channels\)"),
        ({"input_shape": (64, 64, 0)}, "`input_shape` channels must be a positive integer"),
    ],
)
def test_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_unet(**kwargs)


def test_encoder_options_need_an_encoder():
    with pytest.raises(
        ValueError, match="`encoder_weights` and `encoder_freeze` need an `encoder`"
    ):
        build_unet((64, 64, 1), encoder_weights=None)
    with pytest.raises(ValueError, match="encoder_freeze=True"):
        build_unet((64, 64, 1), encoder_freeze=True)


def test_encoder_hands_over_with_segmentation_models_defaults():
    model = build_unet((64, 64, 1), encoder="vgg16", encoder_weights=None, name="vgg_unet")
    assert model.name == "vgg_unet"
    assert model.get_layer("decoder5_up").filters == 256  # base_filters 16, depth 5
    assert model.get_layer("decoder1_conv1").filters == 16
    assert "decoder1_bn1" in {layer.name for layer in model.layers}  # batch norm on
    assert not any("dropout" in layer.name for layer in model.layers)
