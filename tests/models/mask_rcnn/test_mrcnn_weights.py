"""Published weight files (Keras 2 `save_weights` layout) load by name; checkpoints round-trip."""

import os
from pathlib import Path

import h5py
import numpy as np
import pytest

from mammoseg.models.mask_rcnn import COCO_HEADS, Config, MammoConfig, MaskRCNN
from mammoseg.models.mask_rcnn.backbone import build_backbone
from mammoseg.models.mask_rcnn.checkpoints import weight_groups
from mammoseg.models.mask_rcnn.model import MaskRCNNSequence, StopOnNonFiniteLoss


def layer_shapes(model):
    """{group: [(weight name, shape)]} as Keras 2 wrote them (RPN nested in `rpn_model`)."""
    return {name: [(w, v.shape) for w, v in weights] for name, weights in weight_groups(model)}


def trained_scale(weight_name, value):
    """A trained network's statistics made from uniform(0.5, 1.5) ``value``: zero-mean kernels
    of variance 1 / fan-in (LeCun uniform), zero biases, shifts and means, unit scales and
    variances (neutral batch norm).

    The raw values, all positive, cannot cancel: even ×0.01 they multiply a ResNet's
    activations by about 10 (stage 3) to 2,000 (stage 5) per bottleneck block, so ResNet-50's
    C5 reaches 1e37 and the FPN overflows to inf before any training step (keras.applications'
    ResNet50 does the same with them). With these values P2-P6 stay near the input's scale.
    """
    if weight_name.endswith("kernel:0"):
        fan_in = int(np.prod(value.shape[:-1]))
        return ((value - 1.0) * 2.0 * np.sqrt(3.0 / fan_in)).astype(np.float32)
    if weight_name.endswith(("gamma:0", "moving_variance:0")):
        return np.ones_like(value)
    return np.zeros_like(value)  # bias, beta, moving_mean


def write_keras2_file(
    path, groups, extra_empty=("activation_1", "avg_pool"), seed=0, *, trained=False
):
    """Write a Keras 2 `save_weights` HDF5 file with h5py: random values; returns them.

    The values are uniform(0.5, 1.5), or with ``trained`` at a trained network's scale (see
    `trained_scale`), which a network can be trained from.
    """
    rng = np.random.default_rng(seed)
    values = {}
    with h5py.File(path, "w") as f:
        names = list(extra_empty) + list(groups)
        f.attrs["layer_names"] = np.array([n.encode() for n in names])
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.1.6"
        for name in extra_empty:  # layers without weights, as Keras 2 listed them
            f.create_group(name).attrs["weight_names"] = np.array([], dtype="S1")
        for name, weights in groups.items():
            g = f.create_group(name)
            g.attrs["weight_names"] = np.array([w.encode() for w, _ in weights])
            for weight_name, shape in weights:
                value = rng.uniform(0.5, 1.5, shape).astype(np.float32)
                if trained:
                    value = trained_scale(weight_name, value)
                g.create_dataset(weight_name, data=value)
                values[weight_name] = value
    return values


def _weight(model, layer_name, index=0):
    from mammoseg.models.weights import _index_layers

    return _index_layers(model)[layer_name].weights[index].numpy()


def test_backbone_layer_names_and_shapes_are_matterports():
    r50 = {layer.name: layer for layer in build_backbone("resnet50").layers}
    assert r50["conv1"].kernel.shape == (7, 7, 3, 64)
    assert "res4f_branch2c" in r50 and "res4g_branch2a" not in r50
    assert r50["res5c_branch2c"].kernel.shape == (1, 1, 512, 2048)
    assert r50["bn5c_branch2c"].moving_variance.shape == (2048,)
    assert r50["res2a_branch1"].kernel.shape == (1, 1, 64, 256)
    assert r50["fpn_c5p5"].kernel.shape == (1, 1, 2048, 256)
    assert r50["fpn_p2"].kernel.shape == (3, 3, 256, 256)
    r101 = {layer.name for layer in build_backbone("resnet101").layers}
    assert "res4w_branch2c" in r101 and "res4x_branch2a" not in r101


def test_head_and_rpn_weight_names(config, tmp_path):
    shapes = layer_shapes(MaskRCNN("inference", config, tmp_path).keras_model)
    assert [w for w, _ in shapes["rpn_model"]] == [
        "rpn_conv_shared/kernel:0",
        "rpn_conv_shared/bias:0",
        "rpn_class_raw/kernel:0",
        "rpn_class_raw/bias:0",
        "rpn_bbox_pred/kernel:0",
        "rpn_bbox_pred/bias:0",
    ]
    assert [w for w, _ in shapes["bn_conv1"]] == [
        "bn_conv1/gamma:0",
        "bn_conv1/beta:0",
        "bn_conv1/moving_mean:0",
        "bn_conv1/moving_variance:0",
    ]
    for name in [
        "mrcnn_class_conv1",
        "mrcnn_class_bn2",
        "mrcnn_class_logits",
        "mrcnn_bbox_fc",
        "mrcnn_mask_conv4",
        "mrcnn_mask_bn1",
        "mrcnn_mask_deconv",
        "mrcnn_mask",
        "fpn_c2p2",
        "fpn_p5",
    ]:
        assert name in shapes, name
    assert shapes["mrcnn_bbox_fc"][0][1] == (64, 2 * 4)


def test_published_layout_loads_by_name_with_heads_excluded(config, tmp_path):
    model = MaskRCNN("training", config, tmp_path)
    path = tmp_path / "mask_rcnn_coco_like.h5"
    values = write_keras2_file(path, layer_shapes(model.keras_model))
    before = _weight(model.keras_model, "mrcnn_class_logits")
    report = model.load_weights(path, by_name=True, exclude=COCO_HEADS)
    # "mrcnn_bbox" is matterport's reshape layer: no weights, nothing to skip
    weighted_heads = ["mrcnn_bbox_fc", "mrcnn_class_logits", "mrcnn_mask"]
    assert sorted(report.skipped) == weighted_heads
    assert report.missing == []  # skipped layers are not reported missing
    km = model.keras_model
    np.testing.assert_array_equal(_weight(km, "conv1"), values["conv1/kernel:0"])
    np.testing.assert_array_equal(_weight(km, "bn_conv1", 3), values["bn_conv1/moving_variance:0"])
    np.testing.assert_array_equal(
        _weight(km, "rpn_conv_shared"), values["rpn_conv_shared/kernel:0"]
    )
    np.testing.assert_array_equal(_weight(km, "rpn_bbox_pred", 1), values["rpn_bbox_pred/bias:0"])
    np.testing.assert_array_equal(
        _weight(km, "mrcnn_mask_deconv"), values["mrcnn_mask_deconv/kernel:0"]
    )
    np.testing.assert_array_equal(_weight(km, "mrcnn_class_logits"), before)


def test_imagenet_layout_fills_the_backbone_only(config, tmp_path):
    model = MaskRCNN("training", config, tmp_path)
    shapes = {
        n: s
        for n, s in layer_shapes(model.keras_model).items()
        if n.startswith(("conv1", "bn_conv1", "res", "bn"))
    }
    path = tmp_path / "resnet_notop.h5"
    values = write_keras2_file(path, shapes)
    report = model.load_weights(path, by_name=True)
    assert "res5a_branch2c" in report.loaded and "fpn_c5p5" in report.missing
    np.testing.assert_array_equal(
        _weight(model.keras_model, "res5a_branch2c"), values["res5a_branch2c/kernel:0"]
    )


def test_strict_load_rejects_a_different_file(config, tmp_path):
    model = MaskRCNN("training", config, tmp_path)
    shapes = layer_shapes(model.keras_model)
    del shapes["fpn_p3"]
    path = tmp_path / "partial.h5"
    write_keras2_file(path, shapes)
    with pytest.raises(ValueError, match=r"does not hold exactly .*fpn_p3.*by_name=True"):
        model.load_weights(path)


def test_shape_mismatch_names_the_layer(config, tmp_path):
    model = MaskRCNN("training", config, tmp_path)
    path = tmp_path / "other_classes.h5"
    write_keras2_file(
        path,
        {
            "mrcnn_class_logits": [
                ("mrcnn_class_logits/kernel:0", (64, 81)),
                ("mrcnn_class_logits/bias:0", (81,)),
            ]
        },
    )
    from mammoseg.data import MammosegDataError

    with pytest.raises(MammosegDataError, match=r"mrcnn_class_logits.*\(64, 2\).*\(64, 81\)"):
        model.load_weights(path, by_name=True)


def test_skip_mismatch_does_what_the_error_hint_says(config, tmp_path):
    # The shape error tells the user to "pass skip_mismatch=True": MaskRCNN.load_weights takes it.
    model = MaskRCNN("training", config, tmp_path)
    groups = {
        "mrcnn_class_logits": [
            ("mrcnn_class_logits/kernel:0", (64, 81)),
            ("mrcnn_class_logits/bias:0", (81,)),
        ],
        "fpn_p3": layer_shapes(model.keras_model)["fpn_p3"],
    }
    path = tmp_path / "other_classes.h5"
    values = write_keras2_file(path, groups)
    from mammoseg.data import MammosegDataError

    with pytest.raises(MammosegDataError, match=r"pass skip_mismatch=True to skip it"):
        model.load_weights(path, by_name=True)
    before = _weight(model.keras_model, "mrcnn_class_logits")
    report = model.load_weights(path, by_name=True, skip_mismatch=True)
    assert report.skipped == ["mrcnn_class_logits"] and report.loaded == ["fpn_p3"]
    assert "(64, 81)" in report.reasons["mrcnn_class_logits"]
    np.testing.assert_array_equal(_weight(model.keras_model, "mrcnn_class_logits"), before)
    np.testing.assert_array_equal(_weight(model.keras_model, "fpn_p3"), values["fpn_p3/kernel:0"])


def test_missing_files_say_where_the_published_ones_are(config, tmp_path):
    model = MaskRCNN("training", config, tmp_path)
    with pytest.raises(FileNotFoundError, match="mask_rcnn_coco.h5"):
        model.load_weights(tmp_path / "mask_rcnn_coco.h5", by_name=True)
    with pytest.raises(FileNotFoundError, match="deep-learning-models/releases"):
        model.get_imagenet_weights(tmp_path / "nothing.h5")
    assert model.get_imagenet_weights(__file__) == __file__


def test_checkpoint_round_trip_and_epoch_from_name(config, tmp_path):
    from mammoseg.models.mask_rcnn.checkpoints import save_weights_h5

    source = MaskRCNN("training", config, tmp_path)
    folder = tmp_path / "discs20240102T0304"
    folder.mkdir()
    path = folder / "mask_rcnn_discs_0007.h5"
    save_weights_h5(source.keras_model, path)
    target = MaskRCNN("inference", config, tmp_path)
    report = target.load_weights(path)
    assert not report.missing and not report.unused
    for a, b in zip(source.keras_model.weights, target.keras_model.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert target.epoch == 7
    assert target.log_dir == os.path.join(str(tmp_path), "discs20240102T0304")


@pytest.mark.slow
def test_coco_file_shapes_load_into_resnet50(tmp_path):
    """A file shaped as mask_rcnn_coco.h5 (ResNet-101, 81 classes) into the authors' ResNet-50."""
    coco = MaskRCNN("inference", Config(NAME="coco", NUM_CLASSES=81), tmp_path)
    shapes = layer_shapes(coco.keras_model)
    assert shapes["conv1"][0][1] == (7, 7, 3, 64)
    assert shapes["mrcnn_class_logits"][0][1] == (1024, 81)
    assert shapes["mrcnn_bbox_fc"][0][1] == (1024, 324)
    assert shapes["mrcnn_mask"][0][1] == (1, 1, 256, 81)
    assert shapes["rpn_model"][2][1] == (1, 1, 512, 6)
    del coco
    path = tmp_path / "mask_rcnn_coco.h5"
    values = write_keras2_file(path, shapes)
    model = MaskRCNN("training", MammoConfig(), tmp_path)
    report = model.load_weights(path, by_name=True, exclude=COCO_HEADS)
    assert "res4g_branch2a" in report.unused and "res4f_branch2c" in report.loaded
    assert sorted(report.skipped) == ["mrcnn_bbox_fc", "mrcnn_class_logits", "mrcnn_mask"]
    np.testing.assert_array_equal(
        _weight(model.keras_model, "res4f_branch2c"), values["res4f_branch2c/kernel:0"]
    )
    np.testing.assert_array_equal(
        _weight(model.keras_model, "mrcnn_class_conv1"), values["mrcnn_class_conv1/kernel:0"]
    )


@pytest.mark.slow
def test_training_from_a_written_resnet50_file_stays_finite(discs, tmp_path):
    """#14: two SGD steps from a COCO-layout file at a trained network's scale, every layer
    trainable, keep the pyramid, the five losses and every weight finite, and move weights."""
    config = MammoConfig(
        IMAGE_RESIZE_MODE="square",
        IMAGE_MIN_SCALE=0,
        IMAGE_MIN_DIM=64,
        IMAGE_MAX_DIM=64,
        IMAGES_PER_GPU=2,
    )
    model = MaskRCNN("training", config, tmp_path)
    path = tmp_path / "mask_rcnn_coco_like.h5"
    values = write_keras2_file(path, layer_shapes(model.keras_model), trained=True)
    model.load_weights(path, by_name=True, exclude=COCO_HEADS)
    batches = MaskRCNNSequence(discs, config, seed=0)
    net = model.keras_model
    # raw uniform(0.5, 1.5) kernels, even x0.01, made P2-P6 inf here, before any step
    for level in net.backbone(batches[0]["input_image"]):
        assert np.abs(level.numpy()).max() < 1e4
    model.set_trainable(".*")
    model.compile(learning_rate=1e-3, momentum=0.9)
    for step in range(2):
        logs = net.train_on_batch(batches[step], return_dict=True)
        assert all(np.isfinite(v) for v in logs.values()), (step, logs)
        assert all(np.isfinite(w.numpy()).all() for w in net.weights), step
    assert not np.array_equal(_weight(net, "res5c_branch2c"), values["res5c_branch2c/kernel:0"])


def test_a_nan_loss_stops_training_with_a_hint():
    callback = StopOnNonFiniteLoss(0.02)
    callback.on_epoch_begin(3)
    callback.on_train_batch_end(0, {"loss": 1.5})  # finite: nothing happens
    with pytest.raises(FloatingPointError, match=r"loss is inf at epoch 3, batch 7: .*0\.02"):
        callback.on_train_batch_end(7, {"loss": float("inf")})


@pytest.mark.slow
def test_training_from_overflowing_weights_fails_with_a_clear_error(discs, tmp_path):
    """All-positive kernels overflow the pyramid to inf: train() names the cause instead of
    TensorFlow's CropAndResize message, and writes no checkpoint of non-finite weights."""
    config = MammoConfig(
        IMAGE_RESIZE_MODE="square",
        IMAGE_MIN_SCALE=0,
        IMAGE_MIN_DIM=64,
        IMAGE_MAX_DIM=64,
        IMAGES_PER_GPU=2,
        STEPS_PER_EPOCH=1,
        VALIDATION_STEPS=1,
    )
    model = MaskRCNN("training", config, tmp_path)
    path = tmp_path / "mask_rcnn_coco_like.h5"
    write_keras2_file(path, layer_shapes(model.keras_model))  # uniform(0.5, 1.5): all positive
    model.load_weights(path, by_name=True, exclude=COCO_HEADS)
    with pytest.raises(FloatingPointError, match="Check the loaded weights"):
        model.train(discs, None, learning_rate=1e-3, epochs=1, layers="all")
    assert not list(Path(model.log_dir).glob("*.h5"))
