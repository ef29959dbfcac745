import numpy as np
import pytest

from mammoseg.models.mask_rcnn import Config, MammoConfig
from mammoseg.models.mask_rcnn.config import FIELD_DOCS


def test_matterport_defaults():
    c = Config()
    assert c.NAME is None and c.IMAGES_PER_GPU == 2 and c.BACKBONE == "resnet101"
    assert c.RPN_ANCHOR_SCALES == (32, 64, 128, 256, 512)
    assert c.BACKBONE_STRIDES == [4, 8, 16, 32, 64]
    assert c.POST_NMS_ROIS_TRAINING == 2000 and c.POST_NMS_ROIS_INFERENCE == 1000
    assert c.TRAIN_ROIS_PER_IMAGE == 200 and c.ROI_POSITIVE_RATIO == 0.33
    assert c.DETECTION_MIN_CONFIDENCE == 0.7 and c.GRADIENT_CLIP_NORM == 5.0
    np.testing.assert_allclose(c.MEAN_PIXEL, [123.7, 116.8, 103.9])
    # derived
    assert c.BATCH_SIZE == 2 and c.IMAGE_SHAPE.tolist() == [1024, 1024, 3]
    assert c.IMAGE_META_SIZE == 12 + 1


def test_every_field_is_documented():
    assert set(Config.field_names()) - {"COMPUTE_BACKBONE_SHAPE"} <= set(FIELD_DOCS)


def test_mammo_config_is_the_authors():
    c = MammoConfig()
    assert c.NAME == "tumor" and c.NUM_CLASSES == 2 and c.BACKBONE == "resnet50"
    assert c.IMAGES_PER_GPU == 6 and c.IMAGE_RESIZE_MODE == "crop"
    assert c.IMAGE_SHAPE.tolist() == [512, 512, 3] and c.IMAGE_MIN_SCALE == 2.0
    assert c.RPN_ANCHOR_SCALES == (8, 16, 32, 64, 128) and c.RPN_NMS_THRESHOLD == 0.9
    assert c.TRAIN_ROIS_PER_IMAGE == 128 and c.MAX_GT_INSTANCES == 200
    assert c.DETECTION_MIN_CONFIDENCE == 0 and c.DETECTION_MAX_INSTANCES == 400
    np.testing.assert_allclose(c.MEAN_PIXEL, [54.78] * 3)
    assert c.IMAGE_META_SIZE == 14


def test_subclass_and_override():
    class Mine(Config):
        NAME = "mine"
        GPU_COUNT = 2
        IMAGES_PER_GPU = 3

    assert Mine().BATCH_SIZE == 6
    assert Mine(IMAGES_PER_GPU=1).BATCH_SIZE == 2
    assert Mine.IMAGES_PER_GPU == 3  # instance overrides do not leak into the class


@pytest.mark.parametrize(
    "overrides,message",
    [
        ({"BACKBONE": "resnet5"}, r"`BACKBONE` must be one of .* received 'resnet5'; did you mean"),
        ({"IMAGES_PER_GPU": 0}, r"`IMAGES_PER_GPU` must be a positive integer, received 0"),
        ({"IMAGE_MAX_DIM": 100}, r"multiple of 64 .* received 100"),
        ({"RPN_ANCHOR_SCALES": (8, 16)}, r"one scale per level .* received \(8, 16\)"),
        ({"IMAGE_RESIZE_MODE": "pad"}, r"`IMAGE_RESIZE_MODE` must be one of"),
        ({"MEAN_PIXEL": [1.0]}, r"`MEAN_PIXEL` must have IMAGE_CHANNEL_COUNT=3 values"),
        ({"RPN_NMS_THRESHOLD": 1.5}, r"`RPN_NMS_THRESHOLD` must be in \(0, 1\], received 1.5"),
        ({"RPN_NEGATIVE_IOU": 0.8}, r"0 < negative <= positive <= 1, received 0.8 and 0.7"),
        ({"RPN_POSITIVE_IOU": 1.2}, r"0 < negative <= positive <= 1, received 0.3 and 1.2"),
        (
            {"BACKBONE_STRIDES": [4, 8, 16, 32], "RPN_ANCHOR_SCALES": (8, 16, 32, 64)},
            r"`BACKBONE_STRIDES` must list 5 strides \(P2..P6\), received \[4, 8, 16, 32\]",
        ),
        ({"DETECTION_MIN_CONFIDENCE": -0.1}, r"`DETECTION_MIN_CONFIDENCE` .* received -0.1"),
        ({"LEARNING_RATE": 0}, r"`LEARNING_RATE` must be positive, received 0"),
        ({"LOSS_WEIGHTS": {"rpn_class_loss": 1.0}}, r"`LOSS_WEIGHTS` must have exactly the keys"),
        ({"USE_RPN_ROIS": False}, r"`USE_RPN_ROIS=False` .* is not supported"),
        ({"MASK_SHAPE": [14, 14]}, r"`MASK_SHAPE` must be twice MASK_POOL_SIZE .* \[14, 14\]"),
        # Several bad fields: the phases run in order, counts before options.
        ({"BACKBONE": "vgg", "NUM_CLASSES": 0}, r"`NUM_CLASSES` must be a positive integer"),
        ({"MASK_SHAPE": [1, 1], "LEARNING_RATE": -1}, r"`LEARNING_RATE` must be positive"),
    ],
)
def test_invalid_values(overrides, message):
    with pytest.raises(ValueError, match=message):
        Config(**overrides)


def test_unknown_field_suggests():
    with pytest.raises(
        ValueError, match="unknown Config field 'NUM_CLASS'; did you mean 'NUM_CLASSES'"
    ):
        Config(NUM_CLASS=2)


def test_display(capsys):
    Config(NAME="shown").display()
    out = capsys.readouterr().out
    assert "NAME                           shown" in out and "IMAGE_META_SIZE" in out
