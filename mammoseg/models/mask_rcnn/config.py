"""Mask R-CNN configuration with matterport's field names and defaults.

Users of matterport/Mask_RCNN subclass `Config` and override class attributes; that still works
here. The values are validated when the config is instantiated and the derived fields
(`BATCH_SIZE`, `IMAGE_SHAPE`, `IMAGE_META_SIZE`) are computed then.

Example:
    >>> class TumourConfig(Config):
    ...     NAME = "tumour"
    ...     NUM_CLASSES = 2
    >>> TumourConfig().IMAGE_META_SIZE
    14
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mammoseg.checks import check_positive_int, closest_match

BACKBONES = ("resnet50", "resnet101", "resnet_tiny")
RESIZE_MODES = ("none", "square", "pad64", "crop")

# One line per field: why it exists. Printed by `Config.display()` and used by `describe()`.
FIELD_DOCS = {
    "NAME": "experiment name; checkpoint folders and files are named after it",
    "GPU_COUNT": "number of replicas; 1 on CPU",
    "IMAGES_PER_GPU": "images per replica per step",
    "STEPS_PER_EPOCH": "training steps per epoch (not tied to the dataset size)",
    "VALIDATION_STEPS": "validation steps at the end of each epoch",
    "BACKBONE": "resnet50, resnet101 (matterport's) or resnet_tiny (1 block per stage, 1/8 width)",
    "BACKBONE_STRIDES": "stride of each FPN level P2..P6 relative to the image",
    "FPN_CLASSIF_FC_LAYERS_SIZE": "width of the two fully connected layers of the box head",
    "TOP_DOWN_PYRAMID_SIZE": "channels of the FPN feature maps",
    "RPN_CONV_FILTERS": "(mammoseg) channels of the RPN's shared 3x3 conv; matterport fixes 512",
    "MASK_HEAD_FILTERS": "(mammoseg) channels of the mask head's convs; matterport fixes 256",
    "NUM_CLASSES": "number of classes including the background",
    "RPN_ANCHOR_SCALES": "anchor side in pixels, one per FPN level",
    "RPN_ANCHOR_RATIOS": "anchor width/height ratios at every position",
    "RPN_ANCHOR_STRIDE": "anchor every this many feature-map cells",
    "RPN_NMS_THRESHOLD": "IoU above which the RPN suppresses proposals",
    "RPN_TRAIN_ANCHORS_PER_IMAGE": "anchors sampled per image to train the RPN",
    "RPN_POSITIVE_IOU": "(mammoseg) anchor IoU with a truth box from which it is positive; "
    "matterport fixes 0.7",
    "RPN_NEGATIVE_IOU": "(mammoseg) anchor IoU below which it is negative; matterport fixes 0.3",
    "PRE_NMS_LIMIT": "top-scoring anchors kept before the proposal NMS",
    "POST_NMS_ROIS_TRAINING": "proposals kept after NMS when training",
    "POST_NMS_ROIS_INFERENCE": "proposals kept after NMS at inference",
    "USE_MINI_MASK": "store instance masks cropped to their box and resized (saves memory)",
    "MINI_MASK_SHAPE": "(height, width) of a mini-mask",
    "IMAGE_RESIZE_MODE": "none, square (pad to IMAGE_MAX_DIM²), pad64 or crop (random crop)",
    "IMAGE_MIN_DIM": "the shorter side is scaled up to at least this",
    "IMAGE_MAX_DIM": "the longer side is scaled down to at most this",
    "IMAGE_MIN_SCALE": "minimum upscaling factor, applied after IMAGE_MIN_DIM",
    "IMAGE_CHANNEL_COUNT": "channels of the network input (grey images are repeated to 3)",
    "MEAN_PIXEL": "per-channel mean subtracted from 0-255 images",
    "TRAIN_ROIS_PER_IMAGE": "ROIs per image fed to the heads when training",
    "ADD_GT_TO_PROPOSALS": "(mammoseg) add truth boxes to the proposals when training (Detectron)",
    "ROI_POSITIVE_RATIO": "share of positive ROIs among them",
    "POOL_SIZE": "ROI-align output side for the box head",
    "MASK_POOL_SIZE": "ROI-align output side for the mask head",
    "MASK_SHAPE": "mask head output (height, width)",
    "MAX_GT_INSTANCES": "truth instances kept per image",
    "RPN_BBOX_STD_DEV": "scale of the RPN box deltas",
    "BBOX_STD_DEV": "scale of the head box deltas",
    "DETECTION_MAX_INSTANCES": "detections returned per image",
    "DETECTION_MIN_CONFIDENCE": "detections below this score are dropped",
    "DETECTION_NMS_THRESHOLD": "IoU above which per-class NMS suppresses detections",
    "LEARNING_RATE": "SGD learning rate",
    "LEARNING_MOMENTUM": "SGD momentum",
    "WEIGHT_DECAY": "L2 weight decay on kernels (not on batch-norm gamma/beta)",
    "LOSS_WEIGHTS": "weight of each of the five losses",
    "USE_RPN_ROIS": "train the heads on RPN proposals (False is not supported)",
    "TRAIN_BN": "update batch-norm statistics (False: frozen, as matterport with small batches)",
    "GRADIENT_CLIP_NORM": "clip gradients to this global norm",
}

LOSS_NAMES = (
    "rpn_class_loss",
    "rpn_bbox_loss",
    "mrcnn_class_loss",
    "mrcnn_bbox_loss",
    "mrcnn_mask_loss",
)

# Fields that count something (sizes, steps, instances): each must be a positive integer.
_POSITIVE_INT_FIELDS = (
    "GPU_COUNT",
    "IMAGES_PER_GPU",
    "STEPS_PER_EPOCH",
    "VALIDATION_STEPS",
    "FPN_CLASSIF_FC_LAYERS_SIZE",
    "TOP_DOWN_PYRAMID_SIZE",
    "NUM_CLASSES",
    "RPN_ANCHOR_STRIDE",
    "RPN_TRAIN_ANCHORS_PER_IMAGE",
    "PRE_NMS_LIMIT",
    "POST_NMS_ROIS_TRAINING",
    "POST_NMS_ROIS_INFERENCE",
    "IMAGE_MAX_DIM",
    "IMAGE_CHANNEL_COUNT",
    "TRAIN_ROIS_PER_IMAGE",
    "POOL_SIZE",
    "MASK_POOL_SIZE",
    "MAX_GT_INSTANCES",
    "DETECTION_MAX_INSTANCES",
)


class Config:
    """Mask R-CNN settings: subclass and override, as with matterport's `Config`.

    Keyword arguments override fields for this instance only (``Config(NUM_CLASSES=2)``).

    Raises:
        ValueError: a field has an invalid value, or a keyword is not a field (the message
            names the closest field).

    Example:
        >>> config = Config(NAME="demo", NUM_CLASSES=2, IMAGES_PER_GPU=1)
        >>> config.BATCH_SIZE, config.IMAGE_SHAPE.tolist()
        (1, [1024, 1024, 3])
    """

    NAME = None
    GPU_COUNT = 1
    IMAGES_PER_GPU = 2
    STEPS_PER_EPOCH = 1000
    VALIDATION_STEPS = 50
    BACKBONE = "resnet101"
    COMPUTE_BACKBONE_SHAPE = None
    BACKBONE_STRIDES = [4, 8, 16, 32, 64]
    FPN_CLASSIF_FC_LAYERS_SIZE = 1024
    TOP_DOWN_PYRAMID_SIZE = 256
    RPN_CONV_FILTERS = 512
    MASK_HEAD_FILTERS = 256
    NUM_CLASSES = 1
    RPN_ANCHOR_SCALES = (32, 64, 128, 256, 512)
    RPN_ANCHOR_RATIOS = [0.5, 1, 2]
    RPN_ANCHOR_STRIDE = 1
    RPN_NMS_THRESHOLD = 0.7
    RPN_TRAIN_ANCHORS_PER_IMAGE = 256
    RPN_POSITIVE_IOU = 0.7
    RPN_NEGATIVE_IOU = 0.3
    PRE_NMS_LIMIT = 6000
    POST_NMS_ROIS_TRAINING = 2000
    POST_NMS_ROIS_INFERENCE = 1000
    USE_MINI_MASK = True
    MINI_MASK_SHAPE = (56, 56)
    IMAGE_RESIZE_MODE = "square"
    IMAGE_MIN_DIM = 800
    IMAGE_MAX_DIM = 1024
    IMAGE_MIN_SCALE = 0
    IMAGE_CHANNEL_COUNT = 3
    MEAN_PIXEL = np.array([123.7, 116.8, 103.9])
    TRAIN_ROIS_PER_IMAGE = 200
    ADD_GT_TO_PROPOSALS = False
    ROI_POSITIVE_RATIO = 0.33
    POOL_SIZE = 7
    MASK_POOL_SIZE = 14
    MASK_SHAPE = [28, 28]
    MAX_GT_INSTANCES = 100
    RPN_BBOX_STD_DEV = np.array([0.1, 0.1, 0.2, 0.2])
    BBOX_STD_DEV = np.array([0.1, 0.1, 0.2, 0.2])
    DETECTION_MAX_INSTANCES = 100
    DETECTION_MIN_CONFIDENCE = 0.7
    DETECTION_NMS_THRESHOLD = 0.3
    LEARNING_RATE = 0.001
    LEARNING_MOMENTUM = 0.9
    WEIGHT_DECAY = 0.0001
    LOSS_WEIGHTS = {name: 1.0 for name in LOSS_NAMES}
    USE_RPN_ROIS = True
    TRAIN_BN = False
    GRADIENT_CLIP_NORM = 5.0

    def __init__(self, **overrides: Any) -> None:
        fields = self.field_names()
        for key, value in overrides.items():
            if key not in fields:
                hint = closest_match(key, fields)
                raise ValueError(f"unknown Config field {key!r}{hint}")
            setattr(self, key, value)
        self.MEAN_PIXEL = np.asarray(self.MEAN_PIXEL, dtype=np.float64)
        self.RPN_BBOX_STD_DEV = np.asarray(self.RPN_BBOX_STD_DEV, dtype=np.float64)
        self.BBOX_STD_DEV = np.asarray(self.BBOX_STD_DEV, dtype=np.float64)
        self.LOSS_WEIGHTS = dict(self.LOSS_WEIGHTS)
        self.validate()
        self.BATCH_SIZE = self.IMAGES_PER_GPU * self.GPU_COUNT
        side = self.IMAGE_MIN_DIM if self.IMAGE_RESIZE_MODE == "crop" else self.IMAGE_MAX_DIM
        self.IMAGE_SHAPE = np.array([side, side, self.IMAGE_CHANNEL_COUNT])
        # image id, original shape (3), molded shape (3), window (4), scale, active class ids
        self.IMAGE_META_SIZE = 1 + 3 + 3 + 4 + 1 + self.NUM_CLASSES

    @classmethod
    def field_names(cls) -> list[str]:
        """The user-settable fields (upper-case class attributes), in declaration order."""
        names: list[str] = []
        for klass in reversed(cls.__mro__):
            for key in vars(klass):
                if key.isupper() and key not in names:
                    names.append(key)
        return names

    def validate(self) -> None:
        """Check every field; raise ValueError naming the field and echoing the value.

        The phases run in this order, so with several bad fields the first phase's error is
        raised: counts, named options, the image and pyramid geometry, value ranges, then the
        heads and losses.
        """
        self._check_counts()
        self._check_options()
        self._check_geometry()
        self._check_ranges()
        self._check_heads_and_losses()

    def _check_counts(self) -> None:
        """Sizes, steps and numbers of things: positive integers."""
        for name in _POSITIVE_INT_FIELDS:
            check_positive_int(name, getattr(self, name))

    def _check_options(self) -> None:
        """Fields naming one of a fixed set of options."""
        if self.BACKBONE not in BACKBONES:
            hint = closest_match(self.BACKBONE, BACKBONES)
            raise ValueError(
                f"`BACKBONE` must be one of {BACKBONES}, received {self.BACKBONE!r}{hint}"
            )
        if self.IMAGE_RESIZE_MODE not in RESIZE_MODES:
            raise ValueError(
                f"`IMAGE_RESIZE_MODE` must be one of {RESIZE_MODES}, received "
                f"{self.IMAGE_RESIZE_MODE!r}"
            )

    def _check_geometry(self) -> None:
        """The FPN levels, the network input side and its channels agree with each other."""
        if len(self.RPN_ANCHOR_SCALES) != len(self.BACKBONE_STRIDES):
            raise ValueError(
                f"`RPN_ANCHOR_SCALES` needs one scale per level of `BACKBONE_STRIDES` "
                f"({len(self.BACKBONE_STRIDES)}), received {tuple(self.RPN_ANCHOR_SCALES)}"
            )
        if len(self.BACKBONE_STRIDES) != 5:
            raise ValueError(
                f"`BACKBONE_STRIDES` must list 5 strides (P2..P6), received "
                f"{self.BACKBONE_STRIDES!r}"
            )
        side = self.IMAGE_MIN_DIM if self.IMAGE_RESIZE_MODE == "crop" else self.IMAGE_MAX_DIM
        if self.IMAGE_RESIZE_MODE in ("square", "crop") and side % 64:
            raise ValueError(
                f"the network input side must be a multiple of 64 (six stride-2 "
                f"stages), received {side} for IMAGE_RESIZE_MODE "
                f"{self.IMAGE_RESIZE_MODE!r}"
            )
        if self.MEAN_PIXEL.shape != (self.IMAGE_CHANNEL_COUNT,):
            raise ValueError(
                f"`MEAN_PIXEL` must have IMAGE_CHANNEL_COUNT="
                f"{self.IMAGE_CHANNEL_COUNT} values, received {self.MEAN_PIXEL!r}"
            )

    def _check_ranges(self) -> None:
        """Thresholds, IoU bounds, the detection confidence and the learning rate."""
        for name in ("RPN_NMS_THRESHOLD", "ROI_POSITIVE_RATIO", "DETECTION_NMS_THRESHOLD"):
            value = getattr(self, name)
            if not 0.0 < float(value) <= 1.0:
                raise ValueError(f"`{name}` must be in (0, 1], received {value!r}")
        if not 0.0 < float(self.RPN_NEGATIVE_IOU) <= float(self.RPN_POSITIVE_IOU) <= 1.0:
            raise ValueError(
                f"`RPN_NEGATIVE_IOU` and `RPN_POSITIVE_IOU` must satisfy 0 < negative <= "
                f"positive <= 1, received {self.RPN_NEGATIVE_IOU!r} and {self.RPN_POSITIVE_IOU!r}"
            )
        if not 0.0 <= float(self.DETECTION_MIN_CONFIDENCE) <= 1.0:
            raise ValueError(
                f"`DETECTION_MIN_CONFIDENCE` must be in [0, 1], received "
                f"{self.DETECTION_MIN_CONFIDENCE!r}"
            )
        if self.LEARNING_RATE <= 0:
            raise ValueError(f"`LEARNING_RATE` must be positive, received {self.LEARNING_RATE!r}")

    def _check_heads_and_losses(self) -> None:
        """What this implementation of the heads and the five losses supports."""
        if set(self.LOSS_WEIGHTS) != set(LOSS_NAMES):
            raise ValueError(
                f"`LOSS_WEIGHTS` must have exactly the keys {LOSS_NAMES}, "
                f"received {sorted(self.LOSS_WEIGHTS)}"
            )
        if not self.USE_RPN_ROIS:
            raise ValueError("`USE_RPN_ROIS=False` (externally supplied ROIs) is not supported")
        if list(self.MASK_SHAPE) != [2 * self.MASK_POOL_SIZE] * 2:
            raise ValueError(
                f"`MASK_SHAPE` must be twice MASK_POOL_SIZE (the mask head "
                f"upsamples once), received {self.MASK_SHAPE!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        """Every field (and derived field) as plain, JSON-ready Python values (tuples → lists)."""
        out = {}
        for key in [*self.field_names(), "BATCH_SIZE", "IMAGE_SHAPE", "IMAGE_META_SIZE"]:
            value = getattr(self, key)
            out[key] = (
                value.tolist()
                if isinstance(value, np.ndarray)
                else (list(value) if isinstance(value, tuple) else value)
            )
        return out

    def display(self) -> None:
        """Print every field with its value, as matterport's `display()` does."""
        print("\nConfigurations:")
        for key, value in self.to_dict().items():
            print(f"{key:30} {value}")
        print()


class MammoConfig(Config):
    """The paper authors' tumour settings (their copy of matterport's nucleus sample).

    One class ("tumor") plus background, ResNet-50, random 512² crops of images scaled up at
    least twice, small anchors, frozen batch norm. See facts.md §1.

    Example:
        >>> MammoConfig().IMAGE_SHAPE.tolist()
        [512, 512, 3]
    """

    NAME = "tumor"
    NUM_CLASSES = 2
    BACKBONE = "resnet50"
    IMAGES_PER_GPU = 6
    IMAGE_RESIZE_MODE = "crop"
    IMAGE_MIN_DIM = 512
    IMAGE_MAX_DIM = 512
    IMAGE_MIN_SCALE = 2.0
    RPN_ANCHOR_SCALES = (8, 16, 32, 64, 128)
    POST_NMS_ROIS_TRAINING = 1000
    POST_NMS_ROIS_INFERENCE = 2000
    RPN_NMS_THRESHOLD = 0.9
    RPN_TRAIN_ANCHORS_PER_IMAGE = 64
    MEAN_PIXEL = np.array([54.78, 54.78, 54.78])
    USE_MINI_MASK = True
    MINI_MASK_SHAPE = (56, 56)
    TRAIN_ROIS_PER_IMAGE = 128
    MAX_GT_INSTANCES = 200
    DETECTION_MIN_CONFIDENCE = 0
    DETECTION_MAX_INSTANCES = 400
