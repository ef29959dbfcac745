"""matterport's ``model`` module: `MaskRCNN` (train, detect, load_weights, find_last, run_graph),
`load_image_gt`, `mold_image`, `unmold_image` and `data_generator`, over Keras 3.

Import it as a matterport script does, ``import mammoseg.models.mask_rcnn.model as modellib``.
`MaskRCNN` is the wrapper a matterport user knows; the `keras.Model` it drives, its
``.keras_model``, is `mammoseg.models.mask_rcnn.network.MaskRCNNNetwork`. The training batches
come from `MaskRCNNSequence` (a `keras.utils.PyDataset`), which `data_generator` wraps in
matterport's generator interface.

Augmentation takes either an imgaug-style augmenter (anything with ``to_deterministic()``, as
matterport's samples pass; imgaug itself is not needed) or a callable
``(image, masks) -> (image, masks)`` such as `mammoseg.models.mask_rcnn.RandomFlips`.

Example:
    >>> model = MaskRCNN(mode="training", config=MammoConfig(), model_dir="logs")  # doctest: +SKIP
    >>> model.load_weights("mask_rcnn_coco.h5", by_name=True, exclude=[
    ...     "mrcnn_class_logits", "mrcnn_bbox_fc", "mrcnn_bbox", "mrcnn_mask"])  # doctest: +SKIP
    >>> model.train(train_set, val_set, 0.001, epochs=20, layers="heads")  # doctest: +SKIP
"""

from __future__ import annotations

import datetime
import os
import re
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from mammoseg.checks import closest_match
from mammoseg.models.mask_rcnn import utils
from mammoseg.models.mask_rcnn.anchors import get_anchors
from mammoseg.models.mask_rcnn.checkpoints import MatterportCheckpoint
from mammoseg.models.mask_rcnn.config import Config
from mammoseg.models.mask_rcnn.network import MaskRCNNNetwork
from mammoseg.models.mask_rcnn.targets import build_rpn_targets
from mammoseg.models.mask_rcnn.utils import Dataset

_HEADS = r"(mrcnn\_.*)|(rpn\_.*)|(fpn\_.*)"
LAYER_REGEX = {
    "heads": _HEADS,
    "3+": r"(res3.*)|(bn3.*)|(res4.*)|(bn4.*)|(res5.*)|(bn5.*)|" + _HEADS,
    "4+": r"(res4.*)|(bn4.*)|(res5.*)|(bn5.*)|" + _HEADS,
    "5+": r"(res5.*)|(bn5.*)|" + _HEADS,
    "all": ".*",
}
COCO_URL = "https://github.com/matterport/Mask_RCNN/releases/download/v2.0/mask_rcnn_coco.h5"
IMAGENET_FILE = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
IMAGENET_URL = (
    "https://github.com/fchollet/deep-learning-models/releases/download/v0.2/" + IMAGENET_FILE
)
SOURCE_HINT = (
    f"mammoseg never downloads weights. matterport's COCO file comes from {COCO_URL}; "
    f"the ImageNet ResNet-50 file from {IMAGENET_URL}"
)
_CHECKPOINT = re.compile(
    r".*[/\\][\w-]+(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})[/\\]"
    r"mask_rcnn_[\w-]+_(\d{4})\.h5$"
)

# The imgaug augmenters matterport lets touch the masks: geometric ones. A colour change
# (Multiply, GaussianBlur ...) applies to the image only (matterport's `load_image_gt` hook).
MASK_AUGMENTERS = (
    "Sequential",
    "SomeOf",
    "OneOf",
    "Sometimes",
    "Fliplr",
    "Flipud",
    "CropAndPad",
    "Affine",
    "PiecewiseAffine",
)

# A callable (image uint8 (H, W, 3), masks bool (H, W, N)) -> (image, masks), or an
# imgaug-style augmenter (an object with `to_deterministic()`).
Augmentation = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]] | Any


# ============================================================================ data


def mold_image(images: np.ndarray, config: Config) -> np.ndarray:
    """0-255 RGB image(s) → float32 network input: the config's mean pixel subtracted.

    Args:
        images: (H, W, C) or (B, H, W, C).
        config: the `Config` whose ``MEAN_PIXEL`` to subtract.

    Example:
        >>> mold_image(np.full((1, 1, 3), 124, np.uint8), Config()).astype(int).tolist()
        [[[0, 7, 20]]]
    """
    return np.asarray(images).astype(np.float32) - np.asarray(config.MEAN_PIXEL, np.float32)


def unmold_image(normalized_images: np.ndarray, config: Config) -> np.ndarray:
    """Inverse of `mold_image`: add the mean pixel back and return uint8.

    Example:
        >>> unmold_image(mold_image(np.full((1, 1, 3), 124, np.uint8), Config()), Config())
        array([[[124, 124, 124]]], dtype=uint8)
    """
    return (np.asarray(normalized_images) + np.asarray(config.MEAN_PIXEL, np.float32)).astype(
        np.uint8
    )


def _mask_hooks() -> Any:
    """imgaug's hooks keeping non-geometric augmenters off the masks; None without imgaug."""
    try:
        import imgaug
    except ImportError:  # an imgaug-style augmenter that is not imgaug's
        return None
    return imgaug.HooksImages(
        activator=lambda images, augmenter, parents, default: (
            augmenter.__class__.__name__ in MASK_AUGMENTERS
        )
    )


def apply_augmentation(
    augmentation: Augmentation, image: np.ndarray, mask: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Apply ``augmentation`` to an image and its masks together, keeping their shapes.

    Args:
        augmentation: an imgaug-style augmenter (its ``to_deterministic()`` copy augments the
            image, then the masks as uint8 with ``hooks=`` that keep colour changes off them,
            as matterport does) or a callable ``(image, masks) -> (image, masks)``.
        image: uint8 (H, W, 3).
        mask: bool (H, W, N).

    Returns:
        ``(image, mask)`` with ``mask`` bool.

    Raises:
        TypeError: ``augmentation`` is neither kind.
        ValueError: the augmentation changed a shape.

    Example:
        >>> flip = lambda im, m: (im[:, ::-1], m[:, ::-1])
        >>> image, mask = np.eye(2, dtype=np.uint8)[..., None], np.eye(2, dtype=bool)[..., None]
        >>> apply_augmentation(flip, image, mask)[1][..., 0].tolist()
        [[False, True], [True, False]]
    """
    before = (image.shape, mask.shape)
    if hasattr(augmentation, "to_deterministic"):
        deterministic = augmentation.to_deterministic()
        image = deterministic.augment_image(image)
        if mask.shape[-1]:
            mask = deterministic.augment_image(mask.astype(np.uint8), hooks=_mask_hooks())
    elif callable(augmentation):
        image, mask = augmentation(image, mask)
    else:
        raise TypeError(
            f"`augmentation` must be an imgaug-style augmenter (with to_deterministic()) or a "
            f"callable (image, masks) -> (image, masks), received {type(augmentation).__name__}"
        )
    image, mask = np.asarray(image), np.asarray(mask)
    if (image.shape, mask.shape) != before:
        raise ValueError(
            f"`augmentation` must keep the shapes {before}, returned {(image.shape, mask.shape)}"
        )
    return image, mask.astype(bool)


def load_image_gt(
    dataset: Dataset,
    config: Config,
    image_id: int,
    augmentation: Augmentation | None = None,
    use_mini_mask: bool = False,
):
    """One training image with its truth, resized as the network expects (matterport's).

    Args:
        dataset: a prepared `utils.Dataset`.
        config: the `Config` (image resizing, classes).
        image_id: internal image id.
        augmentation: applied after resizing (see `apply_augmentation`): an imgaug-style
            augmenter or a callable ``(image, masks) -> (image, masks)`` keeping the shapes.
        use_mini_mask: return masks cropped to their boxes and resized to
            ``config.MINI_MASK_SHAPE`` (the generator passes ``config.USE_MINI_MASK``).

    Returns:
        ``(image, image_meta, class_ids, bbox, mask)``: the resized uint8 image, its meta
        (`utils.compose_image_meta`), int32 class ids [N], boxes [N, (y1, x1, y2, x2)] and bool
        masks [H, W, N] (or mini-masks). Instances whose mask became empty (cropped away) are
        dropped.

    Example:
        >>> image, meta, class_ids, bbox, mask = load_image_gt(dataset, config, 0)  # doctest: +SKIP
    """
    image = dataset.load_image(image_id)
    mask, class_ids = dataset.load_mask(image_id)
    if mask.shape[-1] == 0 and mask.shape[:2] != image.shape[:2]:
        mask = np.zeros((*image.shape[:2], 0), dtype=bool)
    original_shape = image.shape
    image, window, scale, padding, crop = utils.resize_image(
        image,
        min_dim=config.IMAGE_MIN_DIM,
        min_scale=config.IMAGE_MIN_SCALE,
        max_dim=config.IMAGE_MAX_DIM,
        mode=config.IMAGE_RESIZE_MODE,
    )
    mask = utils.resize_mask(mask, scale, padding, crop)
    if augmentation is not None:
        image, mask = apply_augmentation(augmentation, image, mask)
    keep = np.sum(mask, axis=(0, 1)) > 0
    mask, class_ids = mask[:, :, keep], np.asarray(class_ids, dtype=np.int32)[keep]
    boxes = utils.extract_bboxes(mask)
    active = np.zeros(dataset.num_classes, dtype=np.int32)
    source = dataset.image_info[image_id]["source"]
    active[dataset.source_class_ids[source]] = 1
    if use_mini_mask:
        mask = utils.minimize_mask(boxes, mask, config.MINI_MASK_SHAPE)
    meta = utils.compose_image_meta(image_id, original_shape, image.shape, window, scale, active)
    return image, meta, class_ids, boxes, mask


NON_FINITE_HINT = (
    "the features overflowed float32 or the weights diverged. Check the loaded weights (a file "
    "whose kernels are not a trained network's, e.g. all positive, overflows a ResNet-50 to "
    "inf before the first step) or lower learning_rate ({learning_rate})."
)


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Stop training with a `FloatingPointError` at the first batch whose loss is NaN or inf,
    before a checkpoint saves non-finite weights (which could not be loaded again).

    Example:
        >>> StopOnNonFiniteLoss(0.001).on_train_batch_end(0, {"loss": float("nan")})
        Traceback (most recent call last):
        ...
        FloatingPointError: Mask R-CNN training loss is nan at epoch 0, batch 0: ...
    """

    def __init__(self, learning_rate: float):
        super().__init__()
        self.learning_rate = learning_rate
        self.epoch = 0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch = epoch

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        loss = (logs or {}).get("loss")
        if loss is not None and not np.isfinite(float(loss)):
            raise FloatingPointError(
                f"Mask R-CNN training loss is {float(loss)} at epoch {self.epoch}, batch "
                f"{batch}: " + NON_FINITE_HINT.format(learning_rate=self.learning_rate)
            )


class MaskRCNNSequence(keras.utils.PyDataset):
    """Batches of training inputs for `MaskRCNNNetwork`, ``steps`` per epoch.

    Images without any instance are skipped, as matterport does. Each item is a dict with
    ``input_image``, ``input_image_meta``, ``input_rpn_match``, ``input_rpn_bbox``,
    ``input_gt_class_ids``, ``input_gt_boxes`` and ``input_gt_masks`` (`GENERATOR_INPUTS`).

    Args:
        dataset: a prepared `utils.Dataset`.
        config: the `Config`.
        shuffle: visit the images in a new random order each pass.
        augmentation: see `load_image_gt`.
        steps: batches per epoch (default ``config.STEPS_PER_EPOCH``).
        seed: seed of the shuffling and target sampling.
        batch_size: images per batch (default ``config.BATCH_SIZE``).
        no_augmentation_sources: dataset sources whose images are never augmented.

    Raises:
        ValueError: the dataset is empty or no image has an instance.

    Example:
        >>> batches = MaskRCNNSequence(dataset, config, shuffle=True)  # doctest: +SKIP
        >>> batches[0]["input_image"].shape  # doctest: +SKIP
        (2, 1024, 1024, 3)
    """

    def __init__(
        self,
        dataset: Dataset,
        config: Config,
        shuffle: bool = True,
        augmentation: Augmentation | None = None,
        steps: int | None = None,
        seed: int | None = None,
        batch_size: int | None = None,
        no_augmentation_sources: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if len(dataset.image_ids) == 0:
            raise ValueError("`dataset` has no images (did you call prepare()?)")
        self.dataset = dataset
        self.config = config
        self.shuffle = shuffle
        self.augmentation = augmentation
        self.steps = int(steps or config.STEPS_PER_EPOCH)
        self.batch_size = int(batch_size or config.BATCH_SIZE)
        self.no_augmentation_sources = set(no_augmentation_sources or ())
        self.rng = np.random.default_rng(seed)
        self._anchors: dict[tuple, np.ndarray] = {}
        self._empty: set[int] = set()
        self._order = self._new_order()
        self._cursor = 0

    def __len__(self) -> int:
        return self.steps

    def _new_order(self) -> np.ndarray:
        ids = np.array(self.dataset.image_ids)
        return self.rng.permutation(ids) if self.shuffle else ids

    def anchors(self, shape) -> np.ndarray:
        """Pixel anchors for a molded image shape (cached)."""
        key = tuple(int(v) for v in shape[:2])
        if key not in self._anchors:
            c = self.config
            self._anchors[key] = get_anchors(
                key,
                c.RPN_ANCHOR_SCALES,
                c.RPN_ANCHOR_RATIOS,
                c.BACKBONE_STRIDES,
                c.RPN_ANCHOR_STRIDE,
            )
        return self._anchors[key]

    def _next_image(self) -> int:
        if self._cursor >= len(self._order):
            self._order, self._cursor = self._new_order(), 0
        image_id = int(self._order[self._cursor])
        self._cursor += 1
        return image_id

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        c = self.config
        batch: list[tuple] = []
        tries = 0
        while len(batch) < self.batch_size:
            if len(self._empty) == len(self.dataset.image_ids):
                raise ValueError("no image of the dataset has an instance to train on")
            image_id = self._next_image()
            tries += 1
            if image_id in self._empty:
                continue
            source = self.dataset.image_info[image_id]["source"]
            augmentation = None if source in self.no_augmentation_sources else self.augmentation
            image, meta, class_ids, boxes, masks = load_image_gt(
                self.dataset, c, image_id, augmentation, use_mini_mask=c.USE_MINI_MASK
            )
            if not np.any(class_ids > 0):
                if c.IMAGE_RESIZE_MODE != "crop" and augmentation is None:
                    self._empty.add(image_id)  # never changes: skip it for good
                elif tries > 100 * len(self.dataset.image_ids):
                    raise ValueError("no image of the dataset has an instance to train on")
                continue
            batch.append((image, meta, class_ids, boxes, masks))
        return self._collate(batch)

    def _collate(self, batch) -> dict[str, np.ndarray]:
        c = self.config
        n = len(batch)
        shape = batch[0][0].shape
        mask_shape = c.MINI_MASK_SHAPE if c.USE_MINI_MASK else shape[:2]
        out = {
            "input_image": np.zeros((n, *shape), np.float32),
            "input_image_meta": np.zeros((n, c.IMAGE_META_SIZE), np.float32),
            "input_rpn_match": np.zeros((n, len(self.anchors(shape)), 1), np.int32),
            "input_rpn_bbox": np.zeros((n, c.RPN_TRAIN_ANCHORS_PER_IMAGE, 4), np.float32),
            "input_gt_class_ids": np.zeros((n, c.MAX_GT_INSTANCES), np.int32),
            "input_gt_boxes": np.zeros((n, c.MAX_GT_INSTANCES, 4), np.float32),
            "input_gt_masks": np.zeros((n, *mask_shape, c.MAX_GT_INSTANCES), bool),
        }
        for i, (image, meta, class_ids, boxes, masks) in enumerate(batch):
            if image.shape != shape:
                raise ValueError(
                    f"images of one batch must share a shape after resizing, "
                    f"received {shape} and {image.shape}; use IMAGE_RESIZE_MODE "
                    f"'square' or 'crop'"
                )
            if len(class_ids) > c.MAX_GT_INSTANCES:
                keep = self.rng.choice(len(class_ids), c.MAX_GT_INSTANCES, replace=False)
                class_ids, boxes, masks = class_ids[keep], boxes[keep], masks[..., keep]
            match, bbox = build_rpn_targets(
                self.anchors(shape),
                class_ids,
                boxes,
                c.RPN_TRAIN_ANCHORS_PER_IMAGE,
                c.RPN_BBOX_STD_DEV,
                self.rng,
                c.RPN_POSITIVE_IOU,
                c.RPN_NEGATIVE_IOU,
            )
            k = len(class_ids)
            out["input_image"][i] = mold_image(image, c)
            out["input_image_meta"][i] = meta
            out["input_rpn_match"][i, :, 0] = match
            out["input_rpn_bbox"][i] = bbox
            out["input_gt_class_ids"][i, :k] = class_ids
            out["input_gt_boxes"][i, :k] = boxes
            out["input_gt_masks"][i, :, :, :k] = masks
        return out


# run_graph's names for the inference network's outputs: matterport's layer names and the
# network's own output keys.
GRAPH_OUTPUTS = {
    "ROI": "rpn_rois",
    "rpn_rois": "rpn_rois",
    "rpn_class": "rpn_probs",
    "rpn_probs": "rpn_probs",
    "rpn_bbox": "rpn_bbox",
    "mrcnn_class": "mrcnn_class",
    "mrcnn_bbox": "mrcnn_bbox",
    "mrcnn_mask": "mrcnn_mask",
    "mrcnn_detection": "detections",
    "detections": "detections",
}

# The network's inputs in matterport's order (its Keras 2 model took a list).
GENERATOR_INPUTS = (
    "input_image",
    "input_image_meta",
    "input_rpn_match",
    "input_rpn_bbox",
    "input_gt_class_ids",
    "input_gt_boxes",
    "input_gt_masks",
)


def data_generator(
    dataset: Dataset,
    config: Config,
    shuffle: bool = True,
    augment: bool = False,
    augmentation: Augmentation | None = None,
    random_rois: int = 0,
    batch_size: int = 1,
    detection_targets: bool = False,
    no_augmentation_sources: Sequence[str] | None = None,
) -> Iterator[tuple[list[np.ndarray], list]]:
    """matterport's endless training generator: ``(inputs, [])`` per batch.

    ``inputs`` is the list ``[images, image_metas, rpn_match, rpn_bbox, gt_class_ids, gt_boxes,
    gt_masks]`` (`GENERATOR_INPUTS`), molded and padded as matterport's. `MaskRCNN.train`
    uses `MaskRCNNSequence`, which gives the same arrays as a dict keyed by those names.

    Args:
        batch_size: images per batch (matterport's default 1; ``train`` uses BATCH_SIZE).
        augment: matterport's deprecated flip flag; pass ``augmentation`` instead.
        random_rois, detection_targets: not supported (see Raises).
        no_augmentation_sources: dataset sources whose images are never augmented.

    Raises:
        NotImplementedError: ``random_rois`` or ``detection_targets``: the network samples its
            ROI targets itself (`targets.DetectionTargetLayer`), from its own proposals, so it
            takes no ROIs or ROI targets from the generator.
        ValueError: ``augment=True``.

    Example:
        >>> inputs, outputs = next(data_generator(dataset, config, batch_size=2))  # doctest: +SKIP
        >>> inputs[0].shape, outputs  # doctest: +SKIP
        ((2, 1024, 1024, 3), [])
    """
    if random_rois or detection_targets:
        raise NotImplementedError(
            "`random_rois` and `detection_targets` are not supported: the Keras 3 network "
            "samples its ROI targets itself from its own proposals (DetectionTargetLayer)"
        )
    if augment:
        raise ValueError(
            "`augment=True` is matterport's deprecated flip flag; pass "
            "augmentation=RandomFlips(rotate90=False) or an imgaug augmenter instead"
        )
    batches = MaskRCNNSequence(
        dataset,
        config,
        shuffle=shuffle,
        augmentation=augmentation,
        batch_size=batch_size,
        no_augmentation_sources=no_augmentation_sources,
    )
    while True:
        batch = batches[0]  # every item is a fresh batch
        yield [batch[name] for name in GENERATOR_INPUTS], []


def log(text: str, array: np.ndarray | None = None) -> None:
    """Print ``text`` and, for an array, its shape, range and dtype (matterport's `log`).

    Example:
        >>> log("Processing 1 images")
        Processing 1 images
        >>> log("rois", np.zeros((2, 4)))  # doctest: +NORMALIZE_WHITESPACE
        rois  shape: (2, 4)  min: 0.00000  max: 0.00000  float64
    """
    if array is not None:
        array = np.asarray(array)
        text = text.ljust(25)
        low, high = (array.min(), array.max()) if array.size else ("", "")
        text += f"shape: {str(array.shape):20}  "
        text += f"min: {low:10.5f}  max: {high:10.5f}" if array.size else "min: -  max: -"
        text += f"  {array.dtype}"
    print(text)


# ======================================================================== the model


class MaskRCNN:
    """Mask R-CNN with matterport's API, built on a Keras 3 model (``self.keras_model``).

    This is matterport's wrapper class, not a Keras model: ``train``, ``detect``,
    ``load_weights`` and ``find_last`` as in matterport/Mask_RCNN. The network it trains and
    runs, a `keras.Model`, is the `MaskRCNNNetwork` (``network.py``) in ``self.keras_model``.

    Args:
        mode: "training" or "inference" (``detect`` needs "inference").
        config: a `Config` (instance, not class).
        model_dir: checkpoints and TensorBoard logs go to
            ``model_dir/<name><YYYYMMDDTHHMM>/mask_rcnn_<name>_<epoch:04d>.h5``.

    Raises:
        ValueError: unknown ``mode``. TypeError: ``config`` is not a `Config` instance.

    Example:
        >>> model = MaskRCNN("inference", Config(NUM_CLASSES=2), "logs")  # doctest: +SKIP
        >>> model.detect([image, image])[0]["rois"].shape  # doctest: +SKIP
        (3, 4)
    """

    def __init__(self, mode: str, config: Config, model_dir: str | os.PathLike) -> None:
        if mode not in ("training", "inference"):
            raise ValueError(f"`mode` must be 'training' or 'inference', received {mode!r}")
        if not isinstance(config, Config):
            raise TypeError(
                f"`config` must be a Config instance, received "
                f"{config!r}" + (" (a class: call it)" if isinstance(config, type) else "")
            )
        self.mode = mode
        self.config = config
        self.model_dir = os.fspath(model_dir)
        self.keras_model = MaskRCNNNetwork(config)
        self.keras_model.build_by_calling()
        self.epoch = 0
        self.set_log_dir()

    # ------------------------------------------------------------------- files and weights

    def set_log_dir(self, model_path: str | None = None) -> None:
        """Start a new log folder, or continue the one (and epoch) of ``model_path``."""
        now = datetime.datetime.now()
        if model_path:
            match = _CHECKPOINT.match(os.fspath(model_path).replace("\\", "/"))
            if match:
                now = datetime.datetime(*(int(g) for g in match.groups()[:5]))
                self.epoch = int(match.group(6))
        name = self.config.NAME.lower() if self.config.NAME else "mask_rcnn"
        self.log_dir = os.path.join(self.model_dir, f"{name}{now:%Y%m%dT%H%M}")
        self.checkpoint_path = os.path.join(self.log_dir, f"mask_rcnn_{name}_{{epoch:04d}}.h5")

    def find_last(self) -> str:
        """Path of the last checkpoint of the newest log folder of this config's NAME.

        Raises:
            FileNotFoundError: no log folder, or no checkpoint in the newest one.
        """
        name = self.config.NAME.lower() if self.config.NAME else "mask_rcnn"
        folders = sorted(
            d
            for d in (os.listdir(self.model_dir) if os.path.isdir(self.model_dir) else [])
            if d.startswith(name) and os.path.isdir(os.path.join(self.model_dir, d))
        )
        if not folders:
            raise FileNotFoundError(
                f"could not find a model folder for {name!r} under {self.model_dir}"
            )
        folder = os.path.join(self.model_dir, folders[-1])
        checkpoints = sorted(
            f for f in os.listdir(folder) if f.startswith("mask_rcnn") and f.endswith(".h5")
        )
        if not checkpoints:
            raise FileNotFoundError(f"could not find weight files in {folder}")
        return os.path.join(folder, checkpoints[-1])

    def load_weights(
        self,
        filepath: str | os.PathLike,
        by_name: bool = False,
        exclude: Sequence[str] | None = None,
        *,
        skip_mismatch: bool = False,
    ):
        """Load a Keras 2 HDF5 weights file (matterport checkpoint, COCO or ImageNet file).

        Args:
            filepath: the file.
            by_name: load the layers whose names match, leave the others (needed for the COCO
                and ImageNet files). False demands that the file and the model hold exactly the
                same layers, as a checkpoint of this model does.
            exclude: layer names (regular expressions) not to load; implies ``by_name``.
            skip_mismatch: skip layers whose weight shapes differ from the file's (listed in the
                report's ``skipped``, with the reason) instead of raising. Not in matterport,
                whose Keras 2 loader had the same argument; ``exclude`` names the layers instead.

        Returns:
            The `LoadReport` (``loaded``, ``skipped``, ``missing``, ``unused``).

        Raises:
            FileNotFoundError: no such file (the message says where the published ones are).
            ValueError: ``by_name=False`` and the file's layers differ from the model's.
            MammosegDataError: a layer's weight shapes differ from the file's (without
                ``skip_mismatch``).
        """
        from mammoseg.models.weights import load_weights_by_name

        if exclude:
            by_name = True
        report = load_weights_by_name(
            self.keras_model,
            filepath,
            exclude=exclude or (),
            skip_mismatch=skip_mismatch,
            source_hint=SOURCE_HINT,
        )
        if not by_name and (report.missing or report.unused):
            raise ValueError(
                f"{filepath} does not hold exactly this model's layers (missing from file: "
                f"{report.missing[:5]}, not in model: {report.unused[:5]}); pass by_name=True "
                f"to load the layers it shares"
            )
        self.set_log_dir(os.fspath(filepath))
        return report

    def get_imagenet_weights(self, path: str | os.PathLike = IMAGENET_FILE) -> str:
        """Return the path of the ImageNet ResNet-50 weights file, which you supply.

        Raises:
            FileNotFoundError: the file is missing; the message gives the published URL.
        """
        path = os.fspath(path)
        if not os.path.exists(path):
            raise FileNotFoundError(
                f"ImageNet weights not found: {path}. mammoseg never "
                f"downloads weights; the published file is {IMAGENET_URL}"
            )
        return path

    # ------------------------------------------------------------------------ training

    def set_trainable(self, layer_regex: str, model: keras.Model | None = None) -> list[str]:
        """Make trainable exactly the layers whose names fully match ``layer_regex``.

        Returns:
            Names of the layers with weights now trainable.
        """
        model = model or self.keras_model
        model.trainable = True  # a frozen container would hide its layers' own flags
        names = []
        for layer in model.layers:
            if isinstance(layer, keras.Model):
                names += self.set_trainable(layer_regex, layer)
                continue
            layer.trainable = bool(re.fullmatch(layer_regex, layer.name))
            if layer.trainable and layer.weights:
                names.append(layer.name)
        return names

    def compile(self, learning_rate: float, momentum: float) -> None:
        """SGD with momentum and gradient-norm clipping, as matterport."""
        optimizer = keras.optimizers.SGD(
            learning_rate=learning_rate, momentum=momentum, clipnorm=self.config.GRADIENT_CLIP_NORM
        )
        self.keras_model.compile(optimizer=optimizer, jit_compile=False)

    def train(
        self,
        train_dataset: Dataset,
        val_dataset: Dataset | None,
        learning_rate: float,
        epochs: int,
        layers: str,
        augmentation: Augmentation | None = None,
        custom_callbacks: Sequence[keras.callbacks.Callback] | None = None,
        no_augmentation_sources: Sequence[str] | None = None,
    ) -> keras.callbacks.History:
        """Train from ``self.epoch`` up to ``epochs`` (cumulative, as matterport).

        Args:
            layers: "heads", "3+", "4+", "5+", "all" or a regular expression of layer names.
            augmentation: an imgaug-style augmenter or a callable
                ``(image, masks) -> (image, masks)`` (see `load_image_gt`).
            custom_callbacks: extra Keras callbacks.
            no_augmentation_sources: dataset sources whose images are never augmented.

        Returns:
            The Keras ``History``.

        Raises:
            ValueError: the model is in inference mode, or ``epochs`` is not above the
                current epoch.
        """
        if self.mode != "training":
            raise ValueError("train() needs a model created with mode='training'")
        if epochs <= self.epoch:
            raise ValueError(
                f"`epochs` is the cumulative total and must exceed the current "
                f"epoch {self.epoch}, received {epochs}"
            )
        regex = LAYER_REGEX.get(layers, layers)
        c = self.config
        train_gen = MaskRCNNSequence(
            train_dataset,
            c,
            shuffle=True,
            augmentation=augmentation,
            no_augmentation_sources=no_augmentation_sources,
        )
        val_gen = (
            MaskRCNNSequence(val_dataset, c, shuffle=True, steps=c.VALIDATION_STEPS)
            if val_dataset is not None
            else None
        )
        os.makedirs(self.log_dir, exist_ok=True)
        callbacks = [
            keras.callbacks.TensorBoard(self.log_dir, histogram_freq=0, write_graph=False),
            keras.callbacks.CSVLogger(os.path.join(self.log_dir, "history.csv"), append=True),
            MatterportCheckpoint(self.checkpoint_path),
            *(custom_callbacks or []),
        ]
        callbacks.insert(0, StopOnNonFiniteLoss(learning_rate))  # before the checkpoint
        self.set_trainable(regex)
        self.compile(learning_rate, c.LEARNING_MOMENTUM)
        try:
            history = self.keras_model.fit(
                train_gen,
                initial_epoch=self.epoch,
                epochs=epochs,
                steps_per_epoch=len(train_gen),
                validation_data=val_gen,
                validation_steps=c.VALIDATION_STEPS if val_gen else None,
                callbacks=callbacks,
                verbose=0,
            )
        except tf.errors.InvalidArgumentError as err:
            # Non-finite features make non-finite ROIs, which CropAndResize refuses before
            # any loss is reported.
            if "not finite" not in str(err):
                raise
            raise FloatingPointError(
                "Mask R-CNN training produced non-finite ROI boxes (CropAndResize refused "
                "them): " + NON_FINITE_HINT.format(learning_rate=learning_rate)
            ) from err
        self.epoch = max(self.epoch, epochs)
        return history

    # ----------------------------------------------------------------------- inference

    def mold_inputs(self, images: Sequence[np.ndarray]):
        """Resize and mold images as in training; returns (molded, metas, windows).

        "crop" mode (a training-time random crop) is replaced by "pad64" at inference.
        """
        c = self.config
        mode = "pad64" if c.IMAGE_RESIZE_MODE == "crop" else c.IMAGE_RESIZE_MODE
        molded, metas, windows = [], [], []
        for image in images:
            image = np.asarray(image)
            if image.ndim == 2:
                image = np.stack([image] * 3, axis=-1)
            resized, window, scale, _, _ = utils.resize_image(
                image,
                min_dim=c.IMAGE_MIN_DIM,
                min_scale=c.IMAGE_MIN_SCALE,
                max_dim=c.IMAGE_MAX_DIM,
                mode=mode,
            )
            molded.append(mold_image(resized, c))
            metas.append(
                utils.compose_image_meta(
                    0, image.shape, resized.shape, window, scale, np.zeros(c.NUM_CLASSES, np.int32)
                )
            )
            windows.append(window)
        shapes = {m.shape for m in molded}
        if len(shapes) > 1:
            raise ValueError(f"images must have one shape after resizing, received {shapes}")
        return np.stack(molded), np.stack(metas), np.array(windows)

    def unmold_detections(self, detections, mrcnn_mask, original_shape, molded_shape, window):
        """One image's network output → pixel boxes, class ids, scores, full-size masks."""
        empty = np.where(detections[:, 4] == 0)[0]
        n = empty[0] if empty.size else detections.shape[0]
        boxes = detections[:n, :4]
        class_ids = detections[:n, 4].astype(np.int32)
        scores = detections[:n, 5]
        masks = mrcnn_mask[np.arange(n), :, :, class_ids]
        wy1, wx1, wy2, wx2 = utils.norm_boxes(np.array([window]), molded_shape[:2])[0]
        shift = np.array([wy1, wx1, wy1, wx1])
        scale = np.array([wy2 - wy1, wx2 - wx1, wy2 - wy1, wx2 - wx1])
        boxes = utils.denorm_boxes((boxes - shift) / scale, original_shape[:2])
        keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        boxes, class_ids, scores, masks = boxes[keep], class_ids[keep], scores[keep], masks[keep]
        full = [utils.unmold_mask(m, b, original_shape) for m, b in zip(masks, boxes)]
        full = np.stack(full, axis=-1) if full else np.zeros((*original_shape[:2], 0), bool)
        return boxes, class_ids, scores, full

    def _check_batch(self, images: Sequence[np.ndarray], caller: str) -> None:
        if self.mode != "inference":
            raise ValueError(f"{caller}() needs a model created with mode='inference'")
        if len(images) != self.config.BATCH_SIZE:
            raise ValueError(
                f"`images` must hold BATCH_SIZE={self.config.BATCH_SIZE} images, "
                f"received {len(images)}"
            )

    def _detect_and_unmold(self, molded, metas, original_shapes, windows) -> list[dict]:
        """Run the network on molded images; unmold each image's detections to its shape."""
        out = self.keras_model.predict_on_batch({"input_image": molded, "input_image_meta": metas})
        results = []
        for i, original_shape in enumerate(original_shapes):
            rois, class_ids, scores, masks = self.unmold_detections(
                np.asarray(out["detections"][i]),
                np.asarray(out["mrcnn_mask"][i]),
                tuple(original_shape),
                molded[i].shape,
                windows[i],
            )
            results.append({"rois": rois, "class_ids": class_ids, "scores": scores, "masks": masks})
        return results

    def detect(self, images: Sequence[np.ndarray], verbose: int = 0) -> list[dict]:
        """Detect instances in ``images`` (a list of BATCH_SIZE images, RGB or grey).

        Returns:
            One dict per image: ``rois`` [N, (y1, x1, y2, x2)] pixels, ``class_ids`` [N],
            ``scores`` [N], ``masks`` bool [H, W, N].

        Raises:
            ValueError: not in inference mode, or ``len(images) != BATCH_SIZE``.

        Example:
            >>> r = model.detect([image])[0]  # doctest: +SKIP
            >>> r["rois"].shape, r["masks"].shape  # doctest: +SKIP
            ((3, 4), (64, 64, 3))
        """
        self._check_batch(images, "detect")
        molded, metas, windows = self.mold_inputs(images)
        if verbose:
            log(f"Processing {len(images)} images")
            log("molded_images", molded)
            log("image_metas", metas)
        shapes = [np.asarray(image).shape for image in images]
        return self._detect_and_unmold(molded, metas, shapes, windows)

    def detect_molded(
        self, molded_images: np.ndarray, image_metas: np.ndarray, verbose: int = 0
    ) -> list[dict]:
        """Detect on images already molded (resized, mean subtracted), as matterport's.

        Used to check detections on training batches (`load_image_gt` then `mold_image`). The
        results are in the molded images' coordinates (the whole molded image is the window).

        Args:
            molded_images: float32 [BATCH_SIZE, H, W, C], every image the same size.
            image_metas: [BATCH_SIZE, IMAGE_META_SIZE] (`utils.compose_image_meta`).

        Returns:
            As `detect`, with masks of the molded image size.

        Raises:
            ValueError: not in inference mode, or not BATCH_SIZE images.

        Example:
            >>> image, meta, *_ = modellib.load_image_gt(dataset, config, 0)  # doctest: +SKIP
            >>> r = model.detect_molded(modellib.mold_image(image[None], config),
            ...                         meta[None])[0]  # doctest: +SKIP
        """
        self._check_batch(molded_images, "detect_molded")
        molded = np.asarray(molded_images, dtype=np.float32)
        metas = np.asarray(image_metas, dtype=np.float32)
        if verbose:
            log(f"Processing {len(molded)} images")
            log("molded_images", molded)
            log("image_metas", metas)
        windows = [(0, 0, image.shape[0], image.shape[1]) for image in molded]
        return self._detect_and_unmold(molded, metas, [m.shape for m in molded], windows)

    def get_anchors(self, image_shape: Sequence[int]) -> np.ndarray:
        """The pyramid's anchors for a molded image shape, normalised, as matterport's.

        The pixel anchors of the last call are kept in ``self.anchors`` (as matterport does).

        Example:
            >>> model.get_anchors((64, 64, 3)).shape  # doctest: +SKIP
            (1023, 4)
        """
        key = tuple(int(v) for v in image_shape[:2])
        cache = self.__dict__.setdefault("_anchor_cache", {})
        if key not in cache:
            c = self.config
            pixels = get_anchors(
                key,
                c.RPN_ANCHOR_SCALES,
                c.RPN_ANCHOR_RATIOS,
                c.BACKBONE_STRIDES,
                c.RPN_ANCHOR_STRIDE,
            )
            cache[key] = (pixels, utils.norm_boxes(pixels, key))
        self.anchors = cache[key][0]
        return cache[key][1]

    # ------------------------------------------------------------------ looking inside

    def run_graph(
        self,
        images: Sequence[np.ndarray],
        outputs: Sequence[tuple[str, Any]],
        image_metas: np.ndarray | None = None,
    ) -> OrderedDict[str, np.ndarray]:
        """Named intermediate outputs of the inference graph for ``images`` (matterport's).

        matterport passes Keras 2 graph tensors, ``("proposals",
        model.keras_model.get_layer("ROI").output)``. Here the network is a subclassed Keras 3
        model run eagerly, so its inner layers have no symbolic ``.output``; pass the layer's
        *name* (or the layer) instead: ``("proposals", "ROI")``. Names that work:

        * the network's outputs and matterport's names for them: ``"ROI"`` / ``"rpn_rois"``
          (proposals), ``"rpn_class"`` / ``"rpn_probs"``, ``"rpn_bbox"``, ``"mrcnn_class"``,
          ``"mrcnn_bbox"``, ``"mrcnn_mask"``, ``"mrcnn_detection"`` / ``"detections"``;
        * any layer of the backbone, a functional model (``"res4a_out"``, ``"fpn_p2"`` ...),
          through one Keras 3 sub-model of its outputs.

        Args:
            images: BATCH_SIZE images, molded here as `detect` does.
            outputs: ``(name, what)`` pairs; ``what`` is a layer name or a Keras layer.
            image_metas: metas to use instead of the ones molding computes.

        Returns:
            An ``OrderedDict`` name → NumPy array, in the order of ``outputs``; each is printed
            with `log`, as matterport does.

        Raises:
            ValueError: an unknown layer name (with the closest one), or not BATCH_SIZE images.
            NotImplementedError: ``what`` is a tensor: the subclassed network has no symbolic
                graph from which to take one.

        Example:
            >>> found = model.run_graph([image], [("proposals", "ROI"),
            ...                                   ("p2", "fpn_p2")])  # doctest: +SKIP
            >>> found["proposals"].shape  # doctest: +SKIP
            (1, 100, 4)
        """
        if len(images) != self.config.BATCH_SIZE:
            raise ValueError(
                f"`images` must hold BATCH_SIZE={self.config.BATCH_SIZE} images, "
                f"received {len(images)}"
            )
        wanted = OrderedDict((name, self._graph_output_name(what)) for name, what in outputs)
        molded, metas, _ = self.mold_inputs(images)
        if image_metas is not None:
            metas = np.asarray(image_metas, dtype=np.float32)
        backbone = self.keras_model.backbone
        from_backbone = [n for n in wanted.values() if n not in GRAPH_OUTPUTS]
        found: dict[str, np.ndarray] = {}
        if any(n in GRAPH_OUTPUTS for n in wanted.values()):
            out = self.keras_model.predict_on_batch(
                {"input_image": molded, "input_image_meta": metas}
            )
            found.update({n: np.asarray(out[key]) for n, key in GRAPH_OUTPUTS.items()})
        if from_backbone:
            probe = keras.Model(
                backbone.inputs, [backbone.get_layer(n).output for n in from_backbone]
            )
            values = probe.predict_on_batch(molded)
            values = values if isinstance(values, (list, tuple)) else [values]
            found.update({n: np.asarray(v) for n, v in zip(from_backbone, values)})
        result = OrderedDict((name, found[layer]) for name, layer in wanted.items())
        for name, value in result.items():
            log(name, value)
        return result

    def _graph_output_name(self, what: Any) -> str:
        """The layer name ``what`` refers to, checked against what `run_graph` can return."""
        if isinstance(what, keras.layers.Layer):
            what = what.name
        if not isinstance(what, str):
            raise NotImplementedError(
                f"run_graph cannot take graph tensors ({type(what).__name__}): the Keras 3 "
                f"network is a subclassed model run eagerly, with no symbolic graph to take "
                f"them from; pass the layer's name instead, e.g. ('proposals', 'ROI')"
            )
        if what in GRAPH_OUTPUTS:
            return what
        backbone_names = [layer.name for layer in self.keras_model.backbone.layers]
        if what not in backbone_names:
            hint = closest_match(what, [*GRAPH_OUTPUTS, *backbone_names])
            raise ValueError(
                f"unknown graph output {what!r}: use one of {tuple(GRAPH_OUTPUTS)} or a backbone "
                f"layer name (conv1, res2a_out ... fpn_p6){hint}"
            )
        return what
