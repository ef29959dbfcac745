"""load_weights_by_name on files written in the published Keras 2 layouts."""

import h5py
import keras
import numpy as np
import pytest

from mammoseg.data.errors import MammosegDataError
from mammoseg.models.weights import iter_h5_layer_weights, load_weights_by_name


def write_keras2_file(path, layers, model_weights_group=False):
    """Write ``{layer: [(weight_name, array)]}`` the way Keras 2 ``save_weights`` did."""
    with h5py.File(path, "w") as handle:
        root = handle.create_group("model_weights") if model_weights_group else handle
        root.attrs["layer_names"] = np.array([n.encode("utf8") for n in layers])
        root.attrs["backend"] = b"tensorflow"
        root.attrs["keras_version"] = b"2.1.6"
        for name, weights in layers.items():
            group = root.create_group(name)
            group.attrs["weight_names"] = np.array([w.encode("utf8") for w, _ in weights])
            for weight_name, value in weights:
                group.create_dataset(weight_name, data=value)


def tiny_model():
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(2, 3, padding="same", name="block1_conv1")(inputs)
    x = keras.layers.BatchNormalization(name="block1_bn1")(x)
    x = keras.layers.MaxPooling2D(name="block1_pool")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = keras.layers.Dense(3, name="predictions")(x)
    return keras.Model(inputs, outputs)


def tiny_file_layers(rng):
    return {
        "block1_conv1": [
            ("block1_conv1/kernel:0", rng.normal(size=(3, 3, 1, 2)).astype("float32")),
            ("block1_conv1/bias:0", rng.normal(size=(2,)).astype("float32")),
        ],
        "block1_bn1": [
            (f"block1_bn1/{n}:0", rng.uniform(0.5, 2, size=(2,)).astype("float32"))
            for n in ("gamma", "beta", "moving_mean", "moving_variance")
        ],
        "block1_pool": [],
        "predictions": [
            ("predictions/kernel:0", rng.normal(size=(2, 3)).astype("float32")),
            ("predictions/bias:0", rng.normal(size=(3,)).astype("float32")),
        ],
    }


@pytest.mark.parametrize("model_weights_group", [False, True])
def test_loads_published_layout_values(tmp_path, model_weights_group):
    layers = tiny_file_layers(np.random.default_rng(0))
    path = tmp_path / "s10_YaroslavNet.h5"
    write_keras2_file(path, layers, model_weights_group)
    model = tiny_model()
    report = load_weights_by_name(model, path)
    assert report.loaded == ["block1_conv1", "block1_bn1", "predictions"]
    assert report.skipped == [] and report.missing == [] and report.unused == []
    for name, weights in layers.items():
        assert len(model.get_layer(name).weights) == len(weights)  # zip must not cut it short
        for variable, (_, value) in zip(model.get_layer(name).weights, weights):
            np.testing.assert_array_equal(variable.numpy(), value)


def test_exclude_is_a_full_regex_match_and_reports(tmp_path):
    layers = tiny_file_layers(np.random.default_rng(1))
    layers["extra_layer"] = [("extra_layer/kernel:0", np.ones((2, 2), "float32"))]
    path = tmp_path / "w.h5"
    write_keras2_file(path, layers)
    model = tiny_model()
    before = model.get_layer("predictions").weights[0].numpy().copy()
    report = load_weights_by_name(model, path, exclude=["pred.*", "block1_bn"])
    assert report.loaded == ["block1_conv1", "block1_bn1"]  # "block1_bn" does not fullmatch
    assert report.skipped == ["predictions"] and report.reasons["predictions"] == "excluded"
    assert report.missing == []  # skipped layers are not double-counted
    assert report.unused == ["extra_layer"]
    np.testing.assert_array_equal(model.get_layer("predictions").weights[0].numpy(), before)


def test_missing_lists_layers_the_file_does_not_fill(tmp_path):
    layers = tiny_file_layers(np.random.default_rng(2))
    del layers["block1_bn1"]
    path = tmp_path / "w.h5"
    write_keras2_file(path, layers)
    report = load_weights_by_name(tiny_model(), path)
    assert report.missing == ["block1_bn1"]


def test_shape_mismatch_names_layer_and_shapes_and_leaves_model_unchanged(tmp_path):
    layers = tiny_file_layers(np.random.default_rng(3))
    layers["predictions"][0] = ("predictions/kernel:0", np.zeros((2, 5), "float32"))
    path = tmp_path / "w.h5"
    write_keras2_file(path, layers)
    model = tiny_model()
    conv_before = model.get_layer("block1_conv1").weights[0].numpy().copy()
    with pytest.raises(MammosegDataError, match=r"'predictions'.*model shape \(2, 3\).*\(2, 5\)"):
        load_weights_by_name(model, path)
    np.testing.assert_array_equal(model.get_layer("block1_conv1").weights[0].numpy(), conv_before)
    report = load_weights_by_name(model, path, skip_mismatch=True)
    assert report.skipped == ["predictions"] and "(2, 5)" in report.reasons["predictions"]
    np.testing.assert_array_equal(
        model.get_layer("block1_conv1").weights[0].numpy(), layers["block1_conv1"][0][1]
    )


def test_weight_count_mismatch_is_an_error(tmp_path):
    layers = tiny_file_layers(np.random.default_rng(4))
    layers["predictions"] = layers["predictions"][:1]
    path = tmp_path / "w.h5"
    write_keras2_file(path, layers)
    with pytest.raises(MammosegDataError, match="'predictions' has 2 weights in the model but 1"):
        load_weights_by_name(tiny_model(), path)


@pytest.mark.parametrize("rpn_prefix", ["", "rpn_model/"])
def test_matterport_nested_paths_and_nested_rpn_model(tmp_path, rpn_prefix):
    """matterport's file: ``conv1/conv1/kernel:0`` datasets and an ``rpn_model`` layer whose
    weights are listed Keras-2 style (trainable first, so BN statistics come last), with or
    without the nested model's name in front (``rpn_model/rpn_conv_shared/kernel:0``): matched
    by their last two parts, as the file order is not the model's."""
    rng = np.random.default_rng(5)
    rpn_in = keras.Input((4, 4, 2))
    x = keras.layers.Conv2D(3, 1, name="rpn_conv_shared")(rpn_in)
    x = keras.layers.BatchNormalization(name="rpn_bn")(x)
    x = keras.layers.Conv2D(2, 1, name="rpn_class_raw")(x)
    rpn = keras.Model(rpn_in, x, name="rpn_model")
    inputs = keras.Input((4, 4, 1))
    feat = keras.layers.Conv2D(2, 1, name="conv1")(inputs)
    model = keras.Model(inputs, rpn(feat))

    values = {
        "conv1/kernel": rng.normal(size=(1, 1, 1, 2)),
        "conv1/bias": rng.normal(size=(2,)),
        "rpn_conv_shared/kernel": rng.normal(size=(1, 1, 2, 3)),
        "rpn_conv_shared/bias": rng.normal(size=(3,)),
        "rpn_bn/gamma": rng.normal(size=(3,)),
        "rpn_bn/beta": rng.normal(size=(3,)),
        "rpn_class_raw/kernel": rng.normal(size=(1, 1, 3, 2)),
        "rpn_class_raw/bias": rng.normal(size=(2,)),
        "rpn_bn/moving_mean": rng.normal(size=(3,)),
        "rpn_bn/moving_variance": rng.uniform(1, 2, size=(3,)),
    }
    as_file = {k: v.astype("float32") for k, v in values.items()}
    layers = {
        "input_image": [],
        "conv1": [(f"{k}:0", v) for k, v in as_file.items() if k.startswith("conv1/")],
        "rpn_model": [
            (f"{rpn_prefix}{k}:0", v) for k, v in as_file.items() if k.startswith("rpn_")
        ],
    }
    path = tmp_path / "mask_rcnn_coco.h5"
    write_keras2_file(path, layers)
    with h5py.File(path) as handle:  # the dataset really sits in a nested group
        assert isinstance(handle["conv1"]["conv1"], h5py.Group)

    report = load_weights_by_name(model, path)
    assert report.loaded == ["conv1", "rpn_model"] and report.missing == []
    for variable in model.weights:
        np.testing.assert_array_equal(variable.numpy(), as_file[variable.path])


def test_layer_found_inside_nested_model(tmp_path):
    rpn_in = keras.Input((4, 4, 2))
    rpn = keras.Model(rpn_in, keras.layers.Conv2D(3, 1, name="rpn_conv_shared")(rpn_in))
    inputs = keras.Input((4, 4, 2))
    model = keras.Model(inputs, rpn(inputs))
    kernel = np.full((1, 1, 2, 3), 0.5, "float32")
    path = tmp_path / "w.h5"
    write_keras2_file(
        path,
        {
            "rpn_conv_shared": [
                ("rpn_conv_shared/kernel:0", kernel),
                ("rpn_conv_shared/bias:0", np.ones(3, "float32")),
            ]
        },
    )
    assert load_weights_by_name(model, path).loaded == ["rpn_conv_shared"]
    np.testing.assert_array_equal(rpn.get_layer("rpn_conv_shared").kernel.numpy(), kernel)


def test_chunked_layer_names_attribute(tmp_path):
    path = tmp_path / "w.h5"
    with h5py.File(path, "w") as handle:
        handle.attrs["layer_names0"] = np.array([b"a"])
        handle.attrs["layer_names1"] = np.array([b"b"])
        for name in "ab":
            group = handle.create_group(name)
            group.attrs["weight_names"] = np.array([f"{name}/bias:0".encode()])
            group.create_dataset(f"{name}/bias:0", data=np.arange(2.0))
    assert [name for name, _ in iter_h5_layer_weights(path)] == ["a", "b"]


def test_missing_file_says_where_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="lishen/end2end-all-conv"):
        load_weights_by_name(tiny_model(), tmp_path / "s10_YaroslavNet.h5")
    with pytest.raises(FileNotFoundError, match="matterport"):
        load_weights_by_name(tiny_model(), tmp_path / "x.h5", source_hint="see matterport")


def test_not_a_keras2_file(tmp_path):
    path = tmp_path / "model.weights.h5"
    with h5py.File(path, "w") as handle:
        handle.create_group("layers")
    with pytest.raises(MammosegDataError, match="not a Keras 2 weights file"):
        load_weights_by_name(tiny_model(), path)


def test_invalid_arguments(tmp_path):
    with pytest.raises(TypeError, match="`model` must be a keras.Model, received str"):
        load_weights_by_name("model", tmp_path / "w.h5")
    with pytest.raises(ValueError, match="`exclude` holds an invalid regular expression"):
        load_weights_by_name(tiny_model(), tmp_path / "w.h5", exclude=["("])


@pytest.mark.parametrize(
    "value, message",
    [
        (np.zeros((2, 5), "float32"), r"'predictions'.*model shape \(2, 3\).*\(2, 5\)"),
        (np.full((2, 3), np.nan, "float32"), r"'predictions'.*NaN or infinite"),
        (np.full((2, 3), np.inf, "float64"), r"'predictions'.*NaN or infinite"),
        (np.full((2, 3), b"ab", "S2"), r"'predictions'.*file dtype \|S2 is not numeric"),
    ],
)
def test_bad_second_layer_leaves_first_layer_unchanged(tmp_path, value, message):
    # block1_conv1 comes first in the file and is valid; the error is found in a later layer.
    layers = tiny_file_layers(np.random.default_rng(5))
    layers["predictions"][0] = ("predictions/kernel:0", value)
    path = tmp_path / "w.h5"
    write_keras2_file(path, layers)
    model = tiny_model()
    before = [w.numpy().copy() for w in model.weights]
    assert len(before) == 2 + 4 + 2  # conv, batch norm, dense: the loop below checks them all
    with pytest.raises(MammosegDataError, match=message) as info:
        load_weights_by_name(model, path)
    assert "w.h5" in str(info.value)
    for weight, old in zip(model.weights, before):
        np.testing.assert_array_equal(weight.numpy(), old)


def _auto_named(layers):
    """The tiny file with Keras 2 automatic layer names, and the rename back to the model's."""
    rename = {"conv2d_3": "block1_conv1", "batch_normalization_3": "block1_bn1"}
    rename |= {"dense_7": "predictions", "dense_8": "head_extra"}
    back = {new: old for old, new in rename.items()}
    layers = dict(layers)
    layers["head_extra"] = [("head_extra/kernel:0", np.ones((2, 2), "float32"))]
    auto = {}
    for name, weights in layers.items():
        old = back.get(name, name)
        auto[old] = [(w.replace(name, old, 1), v) for w, v in weights]
    return auto, rename


def test_rename_then_exclude_sees_the_model_name(tmp_path):
    # Renaming comes first: `exclude` matches the model's name ("predictions"), and every list
    # of the report uses the new names, `unused` too (the name that was looked for).
    layers = tiny_file_layers(np.random.default_rng(6))
    auto, rename = _auto_named(layers)
    path = tmp_path / "w.h5"
    write_keras2_file(path, auto)
    model = tiny_model()
    before = model.get_layer("predictions").weights[0].numpy().copy()
    report = load_weights_by_name(model, path, exclude=["pred.*"], rename=rename)
    assert report.loaded == ["block1_conv1", "block1_bn1"]
    assert report.skipped == ["predictions"] and report.reasons == {"predictions": "excluded"}
    assert report.missing == [] and report.unused == ["head_extra"]
    np.testing.assert_array_equal(model.get_layer("predictions").weights[0].numpy(), before)
    kernel = model.get_layer("block1_conv1").weights[0].numpy()
    np.testing.assert_array_equal(kernel, layers["block1_conv1"][0][1])


def test_exclude_does_not_see_the_file_name_of_a_renamed_layer(tmp_path):
    # "dense_7" is the file's name of "predictions": excluding it excludes nothing.
    layers = tiny_file_layers(np.random.default_rng(7))
    auto, rename = _auto_named(layers)
    path = tmp_path / "w.h5"
    write_keras2_file(path, auto)
    model = tiny_model()
    report = load_weights_by_name(model, path, exclude=["dense_7"], rename=rename)
    assert report.loaded == ["block1_conv1", "block1_bn1", "predictions"]
    assert report.skipped == [] and report.unused == ["head_extra"]
    weights = model.get_layer("predictions").weights
    assert len(weights) == 2
    for variable, (_, value) in zip(weights, layers["predictions"]):
        np.testing.assert_array_equal(variable.numpy(), value)
    # Without the rename the automatic names match no layer of the model.
    report = load_weights_by_name(tiny_model(), path)
    assert report.loaded == [] and report.missing == ["block1_conv1", "block1_bn1", "predictions"]
    assert report.unused == ["conv2d_3", "batch_normalization_3", "dense_7", "dense_8"]


def test_renamed_layer_weights_are_paired_by_their_last_name_part(tmp_path):
    # The file lists the automatic "dense_7" bias first: "dense_7/bias" never equals
    # "predictions/bias", so the weights pair by "bias" / "kernel", not by order.
    layers = tiny_file_layers(np.random.default_rng(8))
    kernel, bias = layers["predictions"][0][1], layers["predictions"][1][1]
    layers["dense_7"] = [("dense_7/bias:0", bias), ("dense_7/kernel:0", kernel)]
    del layers["predictions"]
    path = tmp_path / "w.h5"
    write_keras2_file(path, layers)
    model = tiny_model()
    report = load_weights_by_name(model, path, rename={"dense_7": "predictions"})
    assert report.loaded == ["block1_conv1", "block1_bn1", "predictions"]
    np.testing.assert_array_equal(model.get_layer("predictions").kernel.numpy(), kernel)
    np.testing.assert_array_equal(model.get_layer("predictions").bias.numpy(), bias)
