import numpy as np
import pytest

from mammoseg.models.mask_rcnn import Config, Dataset

TINY = dict(
    NAME="discs",
    NUM_CLASSES=2,
    BACKBONE="resnet_tiny",
    IMAGE_MAX_DIM=64,
    IMAGE_MIN_DIM=64,
    IMAGES_PER_GPU=2,
    TOP_DOWN_PYRAMID_SIZE=32,
    RPN_CONV_FILTERS=64,
    MASK_HEAD_FILTERS=32,
    FPN_CLASSIF_FC_LAYERS_SIZE=64,
    POST_NMS_ROIS_INFERENCE=100,
    POST_NMS_ROIS_TRAINING=200,
    TRAIN_ROIS_PER_IMAGE=32,
    RPN_ANCHOR_SCALES=(8, 16, 32, 64, 128),
    STEPS_PER_EPOCH=4,
    VALIDATION_STEPS=1,
    MAX_GT_INSTANCES=4,
    DETECTION_MIN_CONFIDENCE=0.0,
    MEAN_PIXEL=[100, 100, 100],
    MINI_MASK_SHAPE=(28, 28),
    PRE_NMS_LIMIT=1000,
    TRAIN_BN=True,  # from random weights, frozen batch norm collapses the heads
)


def tiny_config(**overrides) -> Config:
    return Config(**{**TINY, **overrides})


class Discs(Dataset):
    """Bright discs on a dark background, one per image (64x64)."""

    def __init__(self, n, size=64, seed=0, empty=()):
        super().__init__()
        self.add_class("shapes", 1, "disc")
        rng = np.random.default_rng(seed)
        for i in range(n):
            r = int(rng.integers(7, 14))
            cy, cx = (int(v) for v in rng.integers(r, size - r, 2))
            self.add_image("shapes", i, None, circle=(cy, cx, r), size=size, empty=i in empty)
        self.prepare()

    def disc(self, i):
        cy, cx, r = self.image_info[i]["circle"]
        s = self.image_info[i]["size"]
        yy, xx = np.mgrid[:s, :s]
        return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r

    def load_image(self, i):
        img = np.where(self.disc(i) & ~self.image_info[i]["empty"], 200, 50).astype(np.uint8)
        return np.stack([img] * 3, -1)

    def load_mask(self, i):
        if self.image_info[i]["empty"]:
            return np.zeros((64, 64, 0), bool), np.zeros(0, np.int32)
        return self.disc(i)[..., None], np.array([1], np.int32)


@pytest.fixture
def config():
    return tiny_config()


@pytest.fixture
def discs():
    return Discs(12)
