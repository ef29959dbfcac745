"""YaroslavNet (paper IV.E): the published architecture, its weight file, the segmenters."""

import h5py
import keras
import numpy as np
import pytest

from mammoseg.data.errors import MammosegDataError
from mammoseg.models.yaroslav import (
    build_yaroslav_net,
    build_yaroslav_segmenter,
    load_yaroslav_weights,
)

BACKBONE_PARAMS = 5_904_357 - (512 * 5 + 5)


def write_published_file(path, model, auto_bn_names):
    """Write ``model``'s weights in the Keras 2 ``save_weights`` layout, with random values."""
    rng = np.random.default_rng(0)
    names, values, bn_count = [], {}, 0
    with h5py.File(path, "w") as handle:
        for layer in model.layers:
            name = layer.name
            if isinstance(layer, keras.layers.BatchNormalization) and auto_bn_names:
                bn_count += 1
                name = f"batch_normalization_{bn_count}"
            group = handle.create_group(name)
            weight_names = []
            for variable in layer.weights:
                weight_name = f"{name}/{variable.name}:0"
                value = rng.uniform(0.5, 1.5, variable.shape).astype("float32")
                group.create_dataset(weight_name, data=value)
                weight_names.append(weight_name.encode())
                values[f"{layer.name}/{variable.name}"] = value
            group.attrs["weight_names"] = np.array(weight_names)
            names.append(name.encode())
        handle.attrs["layer_names"] = np.array(names)
    return values


def test_published_architecture():
    model = build_yaroslav_net()
    assert model.count_params() == 5_904_357
    filters = [model.get_layer(f"block{i}_conv2").filters for i in range(1, 7)]
    assert filters == [32, 64, 128, 256, 256, 512]
    for i in range(1, 7):
        for j in (1, 2):
            assert model.get_layer(f"block{i}_conv{j}").kernel_size == (3, 3)
            assert isinstance(model.get_layer(f"block{i}_bn{j}"), keras.layers.BatchNormalization)
        assert model.get_layer(f"block{i}_pool").pool_size == (2, 2)
    predictions = model.get_layer("predictions")
    assert predictions.units == 5 and predictions.get_config()["activation"] == "softmax"


@pytest.mark.parametrize("auto_bn_names", [False, True])
def test_loads_published_layout(tmp_path, auto_bn_names):
    path = tmp_path / "s10_YaroslavNet.h5"
    values = write_published_file(path, build_yaroslav_net(), auto_bn_names)
    model = build_yaroslav_net((64, 64, 1))
    report = load_yaroslav_weights(model, path)
    assert report.missing == [] and report.skipped == [] and len(report.loaded) == 12 * 2 + 1
    for variable in model.weights:
        np.testing.assert_array_equal(variable.numpy(), values[variable.path])


def test_segmenter_from_published_weights_and_frozen_backbone(tmp_path):
    path = tmp_path / "s10_YaroslavNet.h5"
    values = write_published_file(path, build_yaroslav_net(), auto_bn_names=True)
    model = build_yaroslav_segmenter(
        (64, 64, 1), weights=path, freeze_backbone=True, head_filters=4
    )
    kernel = model.get_layer("block3_conv1").kernel.numpy()
    np.testing.assert_array_equal(kernel, values["block3_conv1/kernel"])
    np.testing.assert_array_equal(
        model.get_layer("block6_bn2").moving_variance.numpy(), values["block6_bn2/moving_variance"]
    )
    trainable = {v.path.split("/")[0] for v in model.trainable_weights}
    assert trainable and all(name.startswith("head_") or name == "output" for name in trainable)
    model.compile("adam", "binary_crossentropy")
    x = np.random.default_rng(0).uniform(size=(1, 64, 64, 1)).astype("float32")
    model.train_on_batch(x, (x > 0.5).astype("float32"))
    np.testing.assert_array_equal(model.get_layer("block3_conv1").kernel.numpy(), kernel)


def test_dense_head_is_the_papers():
    model = build_yaroslav_segmenter((64, 64, 1), head="dense")
    assert model.get_layer("head_dense1").units == 10
    assert model.get_layer("head_dense2").units == 64 * 64
    assert model.get_layer("output").units == 1
    head = (512 * 10 + 10) + (10 * 4096 + 4096) + 2
    assert model.count_params() == BACKBONE_PARAMS + head
    assert model.output_shape == (None, 64, 64, 1)


def test_featurewise_mean_feeds_the_trained_input_range():
    # end2end-all-conv trained on pixels scaled to max 255 minus the train mean (59.6): a
    # mammoseg pixel 0.5 reaches block1 as 0.5 * 255 - 59.6 = 67.9, and 0 as -59.6.
    model = build_yaroslav_segmenter((64, 64, 1), head="dense", featurewise_mean=59.6)
    assert model.count_params() == build_yaroslav_segmenter((64, 64, 1), "dense").count_params()
    probe = keras.Model(model.input, model.get_layer("input_rescale").output)
    x = np.zeros((1, 64, 64, 1), "float32")
    x[0, 0, 0, 0] = 0.5
    out = probe.predict(x, verbose=0)
    assert out[0, 0, 0, 0] == pytest.approx(67.9, abs=1e-4)
    assert out[0, 1, 1, 0] == pytest.approx(-59.6, abs=1e-5)
    with pytest.raises(ValueError, match="`featurewise_mean` must be a number, received 'x'"):
        build_yaroslav_segmenter((64, 64, 1), featurewise_mean="x")


def test_fcn_head_is_small_and_fully_convolutional():
    model = build_yaroslav_segmenter((None, None, 1), head_filters=8)
    lateral = sum(f * 8 + 8 for f in (32, 64, 128, 256, 256, 512))
    assert model.count_params() == BACKBONE_PARAMS + lateral + (9 * 8 * 8 + 8) + (8 + 1)
    assert model.predict(np.zeros((1, 96, 64, 1)), verbose=0).shape == (1, 96, 64, 1)


def test_missing_file_and_mismatch(tmp_path):
    with pytest.raises(FileNotFoundError, match="github.com/lishen/end2end-all-conv"):
        build_yaroslav_segmenter((64, 64, 1), weights=tmp_path / "s10_YaroslavNet.h5")
    path = tmp_path / "s10_YaroslavNet.h5"
    write_published_file(path, build_yaroslav_net(num_classes=3), auto_bn_names=False)
    with pytest.raises(
        MammosegDataError,
        match=r"'predictions'.*model shape \(512, 5\), file "
        r"shape \(512, 3\)",
    ):
        load_yaroslav_weights(build_yaroslav_net(), path)
    report = load_yaroslav_weights(build_yaroslav_net(), path, skip_mismatch=True)
    assert report.skipped == ["predictions"] and report.missing == []


@pytest.mark.parametrize(
    "builder, kwargs, message",
    [
        (build_yaroslav_net, {"num_classes": 0}, "`num_classes` must be a positive integer"),
        (
            build_yaroslav_net,
            {"input_shape": (32, 32, 1)},
            "`input_shape` height must be an integer >= 64 or None, received 32",
        ),
        (build_yaroslav_segmenter, {"head": "mlp"}, r"`head` must be one of \('fcn', 'dense'\)"),
        (
            build_yaroslav_segmenter,
            {"head": "dense", "input_shape": (None, None, 1)},
            "`input_shape` height must be an integer >= 64, received None",
        ),
        (
            build_yaroslav_segmenter,
            {"input_shape": (100, 64, 1)},
            r"multiple of 32 for head='fcn', received 100; nearest valid sizes: \(96, 128\)",
        ),
        (build_yaroslav_segmenter, {"head_filters": -2}, "`head_filters` must be a positive"),
        (build_yaroslav_segmenter, {"output": "prob"}, "`output` must be one of"),
    ],
)
def test_invalid_arguments(builder, kwargs, message):
    with pytest.raises(ValueError, match=message):
        builder(**kwargs)
