"""Training batches for Mask R-CNN: resize, augment, mini-masks, RPN targets, padding.

Example:
    >>> batches = MaskRCNNSequence(dataset, config, shuffle=True)  # doctest: +SKIP
    >>> inputs = batches[0]; inputs["input_image"].shape  # doctest: +SKIP
    (2, 1024, 1024, 3)
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np

from mammoseg.models.mask_rcnn import utils
from mammoseg.models.mask_rcnn.anchors import get_anchors
from mammoseg.models.mask_rcnn.config import Config
from mammoseg.models.mask_rcnn.dataset import Dataset
from mammoseg.models.mask_rcnn.targets import build_rpn_targets

Augmentation = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def load_image_gt(
    dataset: Dataset, config: Config, image_id: int, augmentation: Augmentation | None = None
):
    """One training image with its truth, resized and molded as the network expects.

    Args:
        augmentation: optional callable ``(image uint8 (H, W, 3), masks bool (H, W, N)) ->
            (image, masks)`` applied after resizing; it must keep the shapes (imgaug users
            wrap their augmenter, applying its deterministic copy to both).

    Returns:
        ``(image, image_meta, class_ids, boxes, masks)``; instances whose mask became empty
        (cropped away) are dropped; masks are mini-masks when ``USE_MINI_MASK``.
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
        before = (image.shape, mask.shape)
        image, mask = augmentation(image, mask)
        if (image.shape, mask.shape) != before:
            raise ValueError(
                f"`augmentation` must keep the shapes {before}, returned "
                f"{(image.shape, mask.shape)}"
            )
        mask = mask.astype(bool)
    keep = np.sum(mask, axis=(0, 1)) > 0
    mask, class_ids = mask[:, :, keep], np.asarray(class_ids, dtype=np.int32)[keep]
    boxes = utils.extract_bboxes(mask)
    active = np.zeros(dataset.num_classes, dtype=np.int32)
    source = dataset.image_info[image_id]["source"]
    active[dataset.source_class_ids[source]] = 1
    if config.USE_MINI_MASK:
        mask = utils.minimize_mask(boxes, mask, config.MINI_MASK_SHAPE)
    meta = utils.compose_image_meta(image_id, original_shape, image.shape, window, scale, active)
    return image, meta, class_ids, boxes, mask


class MaskRCNNSequence(keras.utils.PyDataset):
    """Batches of training inputs for `MaskRCNNNetwork`, ``steps`` per epoch.

    Images without any instance are skipped, as matterport does. Each item is a dict with
    ``input_image``, ``input_image_meta``, ``input_rpn_match``, ``input_rpn_bbox``,
    ``input_gt_class_ids``, ``input_gt_boxes`` and ``input_gt_masks``.

    Raises:
        ValueError: the dataset is empty or no image has an instance.
    """

    def __init__(
        self,
        dataset: Dataset,
        config: Config,
        shuffle: bool = True,
        augmentation: Augmentation | None = None,
        steps: int | None = None,
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if len(dataset.image_ids) == 0:
            raise ValueError("`dataset` has no images (did you call prepare()?)")
        self.dataset = dataset
        self.config = config
        self.shuffle = shuffle
        self.augmentation = augmentation
        self.steps = int(steps or config.STEPS_PER_EPOCH)
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
        while len(batch) < c.BATCH_SIZE:
            if len(self._empty) == len(self.dataset.image_ids):
                raise ValueError("no image of the dataset has an instance to train on")
            image_id = self._next_image()
            tries += 1
            if image_id in self._empty:
                continue
            image, meta, class_ids, boxes, masks = load_image_gt(
                self.dataset, c, image_id, self.augmentation
            )
            if not np.any(class_ids > 0):
                if c.IMAGE_RESIZE_MODE != "crop" and self.augmentation is None:
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
            out["input_image"][i] = utils.mold_image(image, c.MEAN_PIXEL)
            out["input_image_meta"][i] = meta
            out["input_rpn_match"][i, :, 0] = match
            out["input_rpn_bbox"][i] = bbox
            out["input_gt_class_ids"][i, :k] = class_ids
            out["input_gt_boxes"][i, :k] = boxes
            out["input_gt_masks"][i, :, :, :k] = masks
        return out
