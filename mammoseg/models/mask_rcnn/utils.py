"""matterport's ``utils``: the `Dataset` registry, boxes, IoU, box deltas, mini-masks, image
resizing, image meta and the per-image AP (`compute_ap`, `compute_ap_range`).

This module is matterport's ``mrcnn.utils`` at ``mammoseg.models.mask_rcnn.utils``, so a
matterport script ports by changing its imports (``from mammoseg.models.mask_rcnn import utils``).
Boxes are ``(y1, x1, y2, x2)`` in pixels with ``y2``/``x2`` exclusive, as in matterport.

Example:
    >>> compute_overlaps(np.array([[0, 0, 10, 10]]), np.array([[0, 5, 10, 15]])).round(3)
    array([[0.333]])
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from typing import Any

import numpy as np
from skimage.transform import resize as _sk_resize

logger = logging.getLogger(__name__)


def extract_bboxes(mask: np.ndarray) -> np.ndarray:
    """Tight boxes ``(y1, x1, y2, x2)`` (y2, x2 exclusive) of the masks in (H, W, N).

    An empty mask gives the box (0, 0, 0, 0).

    Example:
        >>> m = np.zeros((5, 5, 1), bool); m[1:3, 2:5, 0] = True
        >>> extract_bboxes(m).tolist()
        [[1, 2, 3, 5]]
    """
    boxes = np.zeros((mask.shape[-1], 4), dtype=np.int32)
    for i in range(mask.shape[-1]):
        rows = np.where(np.any(mask[:, :, i], axis=1))[0]
        cols = np.where(np.any(mask[:, :, i], axis=0))[0]
        if rows.size:
            boxes[i] = [rows[0], cols[0], rows[-1] + 1, cols[-1] + 1]
    return boxes


def box_areas(boxes: np.ndarray) -> np.ndarray:
    """Areas of ``(y1, x1, y2, x2)`` boxes."""
    boxes = np.asarray(boxes, dtype=np.float64)
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def compute_iou(
    box: np.ndarray, boxes: np.ndarray, box_area: float, boxes_area: np.ndarray
) -> np.ndarray:
    """IoU of one box with each of ``boxes`` (areas passed in, to reuse them)."""
    y1 = np.maximum(box[0], boxes[:, 0])
    y2 = np.minimum(box[2], boxes[:, 2])
    x1 = np.maximum(box[1], boxes[:, 1])
    x2 = np.minimum(box[3], boxes[:, 3])
    intersection = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)
    union = box_area + boxes_area - intersection
    return np.where(union > 0, intersection / np.maximum(union, 1e-12), 0.0)


def compute_overlaps(boxes1: np.ndarray, boxes2: np.ndarray) -> np.ndarray:
    """IoU matrix [len(boxes1), len(boxes2)] of two sets of boxes."""
    boxes1 = np.asarray(boxes1, dtype=np.float64).reshape(-1, 4)
    boxes2 = np.asarray(boxes2, dtype=np.float64).reshape(-1, 4)
    area1, area2 = box_areas(boxes1), box_areas(boxes2)
    overlaps = np.zeros((boxes1.shape[0], boxes2.shape[0]))
    for i in range(boxes2.shape[0]):
        overlaps[:, i] = compute_iou(boxes2[i], boxes1, area2[i], area1)
    return overlaps


def compute_overlaps_masks(masks1: np.ndarray, masks2: np.ndarray) -> np.ndarray:
    """IoU matrix between masks (H, W, N1) and (H, W, N2); an empty pair counts as IoU 0.

    In float32, as matterport computes it: an IoU of exactly 13/20 is 0.64999998 here, and
    the evaluation's thresholds depend on that (see `IOU_RANGE`). matterport returns
    NaN (0/0) for a pair of empty masks; here it is 0.
    """
    if masks1.shape[-1] == 0 or masks2.shape[-1] == 0:
        return np.zeros((masks1.shape[-1], masks2.shape[-1]))
    flat1 = np.reshape(masks1 > 0.5, (-1, masks1.shape[-1])).astype(np.float32)
    flat2 = np.reshape(masks2 > 0.5, (-1, masks2.shape[-1])).astype(np.float32)
    area1, area2 = flat1.sum(axis=0), flat2.sum(axis=0)
    intersections = flat1.T @ flat2
    union = area1[:, None] + area2[None, :] - intersections
    safe = np.where(union > 0, union, np.float32(1.0))
    return np.where(union > 0, intersections / safe, np.float32(0.0)).astype(np.float32)


def box_refinement(box: np.ndarray, gt_box: np.ndarray) -> np.ndarray:
    """Deltas ``(dy, dx, log(dh), log(dw))`` that turn ``box`` into ``gt_box`` (both [N, 4]).

    Example:
        >>> box_refinement(np.array([[0., 0., 10., 10.]]), np.array([[5., 0., 15., 20.]])).round(3)
        array([[0.5  , 0.5  , 0.   , 0.693]])
    """
    box = np.asarray(box, dtype=np.float64)
    gt_box = np.asarray(gt_box, dtype=np.float64)
    height, width = box[:, 2] - box[:, 0], box[:, 3] - box[:, 1]
    cy, cx = box[:, 0] + 0.5 * height, box[:, 1] + 0.5 * width
    gt_height, gt_width = gt_box[:, 2] - gt_box[:, 0], gt_box[:, 3] - gt_box[:, 1]
    gt_cy, gt_cx = gt_box[:, 0] + 0.5 * gt_height, gt_box[:, 1] + 0.5 * gt_width
    return np.stack(
        [
            (gt_cy - cy) / height,
            (gt_cx - cx) / width,
            np.log(gt_height / height),
            np.log(gt_width / width),
        ],
        axis=1,
    )


def apply_box_deltas(boxes: np.ndarray, deltas: np.ndarray) -> np.ndarray:
    """Inverse of `box_refinement`: move and resize ``boxes`` [N, 4] by ``deltas`` [N, 4]."""
    boxes = np.asarray(boxes, dtype=np.float64)
    height, width = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    cy = boxes[:, 0] + 0.5 * height + deltas[:, 0] * height
    cx = boxes[:, 1] + 0.5 * width + deltas[:, 1] * width
    height = height * np.exp(deltas[:, 2])
    width = width * np.exp(deltas[:, 3])
    return np.stack(
        [cy - 0.5 * height, cx - 0.5 * width, cy + 0.5 * height, cx + 0.5 * width], axis=1
    )


def norm_boxes(boxes: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Pixel boxes → normalised coordinates, where (y2, x2) = (h, w) maps to (1, 1)."""
    h, w = shape[:2]
    scale = np.array([h - 1, w - 1, h - 1, w - 1], dtype=np.float64)
    return (np.asarray(boxes, dtype=np.float64) - np.array([0, 0, 1, 1])) / scale


def denorm_boxes(boxes: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Normalised boxes → integer pixel boxes (inverse of `norm_boxes`)."""
    h, w = shape[:2]
    scale = np.array([h - 1, w - 1, h - 1, w - 1], dtype=np.float64)
    return np.around(np.asarray(boxes) * scale + np.array([0, 0, 1, 1])).astype(np.int32)


def trim_zeros(x: np.ndarray) -> np.ndarray:
    """Drop the all-zero rows that pad box arrays."""
    return x[~np.all(x == 0, axis=1)]


# ------------------------------------------------------------------------------- resizing


def _resize(array: np.ndarray, shape: tuple[int, int], order: int) -> np.ndarray:
    return _sk_resize(
        array,
        shape,
        order=order,
        mode="constant",
        cval=0,
        clip=True,
        preserve_range=True,
        anti_aliasing=False,
    )


def resize_image(
    image: np.ndarray,
    min_dim: int | None = None,
    max_dim: int | None = None,
    min_scale: float | None = None,
    mode: str = "square",
):
    """Resize and pad (or crop) an image as matterport's modes do.

    Args:
        image: (H, W, C) array.
        min_dim: scale up so the shorter side is at least this.
        max_dim: "square": the longer side is at most this and the image is padded to
            max_dim²; "pad64": ignored beyond scaling.
        min_scale: scale up at least this much.
        mode: "none", "square", "pad64" (pad to multiples of 64) or "crop" (random
            min_dim² crop, for training).

    Returns:
        ``(image, window, scale, padding, crop)``: the new image (same dtype), the window
        ``(y1, x1, y2, x2)`` of the real image inside it, the scale factor, the padding
        ``[(top, bottom), (left, right), (0, 0)]`` and the crop ``(y, x, h, w)`` or None.

    Raises:
        ValueError: unknown ``mode``.

    Example:
        >>> img, window, scale, padding, crop = resize_image(np.zeros((50, 100, 3)), 64, 128)
        >>> img.shape, window, scale
        ((128, 128, 3), (32, 0, 96, 128), 1.28)
    """
    if mode not in ("none", "square", "pad64", "crop"):
        raise ValueError(f"`mode` must be 'none', 'square', 'pad64' or 'crop', received {mode!r}")
    dtype = image.dtype
    h, w = image.shape[:2]
    window = (0, 0, h, w)
    padding = [(0, 0), (0, 0), (0, 0)]
    if mode == "none":
        return image, window, 1, padding, None
    scale = 1.0
    if min_dim:
        scale = max(1.0, min_dim / min(h, w))
    if min_scale and scale < min_scale:
        scale = float(min_scale)
    if mode == "square" and max_dim and round(max(h, w) * scale) > max_dim:
        scale = max_dim / max(h, w)
    if scale != 1:
        image = _resize(image, (round(h * scale), round(w * scale)), order=1)
    h, w = image.shape[:2]
    crop = None
    if mode == "square":
        top, left = (max_dim - h) // 2, (max_dim - w) // 2
        padding = [(top, max_dim - h - top), (left, max_dim - w - left), (0, 0)]
        image = np.pad(image, padding, mode="constant")
        window = (top, left, top + h, left + w)
    elif mode == "pad64":
        pad_h = (64 - h % 64) % 64
        pad_w = (64 - w % 64) % 64
        padding = [(pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2), (0, 0)]
        image = np.pad(image, padding, mode="constant")
        window = (pad_h // 2, pad_w // 2, pad_h // 2 + h, pad_w // 2 + w)
    else:  # crop
        y = random.randint(0, h - min_dim)
        x = random.randint(0, w - min_dim)
        crop = (y, x, min_dim, min_dim)
        image = image[y : y + min_dim, x : x + min_dim]
        window = (0, 0, min_dim, min_dim)
    return image.astype(dtype), window, scale, padding, crop


def resize_mask(mask: np.ndarray, scale: float, padding, crop=None) -> np.ndarray:
    """Apply the scale, padding and crop of `resize_image` to masks (H, W, N) (nearest)."""
    mask = np.asarray(mask, dtype=bool)
    h, w = mask.shape[:2]
    if scale != 1:
        shape = (round(h * scale), round(w * scale))
        if mask.shape[2] == 0:  # no instance (a normal image): nothing to resample
            mask = np.zeros((*shape, 0), dtype=bool)
        else:
            mask = _resize(mask.astype(np.float32), (*shape, mask.shape[2]), order=0) > 0.5
    if crop is not None:
        y, x, ch, cw = crop
        return mask[y : y + ch, x : x + cw]
    return np.pad(mask, padding, mode="constant", constant_values=False)


def minimize_mask(bbox: np.ndarray, mask: np.ndarray, mini_shape) -> np.ndarray:
    """Crop each mask (H, W, N) to its box and resize to ``mini_shape`` (bool)."""
    mini = np.zeros((*mini_shape, mask.shape[-1]), dtype=bool)
    for i in range(mask.shape[-1]):
        y1, x1, y2, x2 = bbox[i][:4]
        part = mask[y1:y2, x1:x2, i].astype(np.float32)
        if part.size == 0:
            continue
        mini[:, :, i] = _resize(part, tuple(mini_shape), order=1) >= 0.5
    return mini


def expand_mask(bbox: np.ndarray, mini_mask: np.ndarray, image_shape) -> np.ndarray:
    """Inverse of `minimize_mask`: paste each mini-mask back at its box in an image-size mask."""
    mask = np.zeros((*image_shape[:2], mini_mask.shape[-1]), dtype=bool)
    for i in range(mini_mask.shape[-1]):
        y1, x1, y2, x2 = bbox[i][:4]
        if y2 <= y1 or x2 <= x1:
            continue
        part = _resize(mini_mask[:, :, i].astype(np.float32), (y2 - y1, x2 - x1), order=1)
        mask[y1:y2, x1:x2, i] = part >= 0.5
    return mask


def unmold_mask(mask: np.ndarray, bbox: np.ndarray, image_shape, threshold: float = 0.5):
    """Paste a predicted soft mask (e.g. 28×28) into a full-size boolean mask at ``bbox``."""
    y1, x1, y2, x2 = bbox
    full = np.zeros(image_shape[:2], dtype=bool)
    if y2 <= y1 or x2 <= x1:
        return full
    full[y1:y2, x1:x2] = _resize(mask.astype(np.float32), (y2 - y1, x2 - x1), order=1) >= threshold
    return full


# ------------------------------------------------------------------------------ image meta


def compose_image_meta(
    image_id: int, original_image_shape, image_shape, window, scale: float, active_class_ids
) -> np.ndarray:
    """Pack one image's attributes into a 1-D float array (length 12 + NUM_CLASSES)."""
    return np.array(
        [image_id, *original_image_shape, *image_shape, *window, scale, *active_class_ids],
        dtype=np.float32,
    )


def parse_image_meta(meta: np.ndarray) -> dict[str, np.ndarray]:
    """Unpack a batch of image metas [B, META_SIZE] into named arrays."""
    return {
        "image_id": meta[:, 0].astype(np.int32),
        "original_image_shape": meta[:, 1:4].astype(np.int32),
        "image_shape": meta[:, 4:7].astype(np.int32),
        "window": meta[:, 7:11].astype(np.int32),
        "scale": meta[:, 11].astype(np.float32),
        "active_class_ids": meta[:, 12:].astype(np.int32),
    }


# --------------------------------------------------------------------------------- dataset


class Dataset:
    """Registry of classes and images, as matterport's `utils.Dataset`.

    Class 0 is always "BG". After adding classes and images call `prepare()`, which assigns
    internal ids (``image_ids``, ``class_ids``) and builds the source-id maps.

    Example:
        >>> ds = Dataset()
        >>> ds.add_class("mias", 1, "tumor")
        >>> ds.add_image("mias", "mdb001", "mdb001.pgm")
        >>> ds.prepare()
        >>> ds.class_names, ds.image_ids.tolist()
        (['BG', 'tumor'], [0])
    """

    def __init__(self, class_map: dict | None = None) -> None:
        self._image_ids: np.ndarray = np.zeros(0, dtype=np.int64)
        self.image_info: list[dict[str, Any]] = []
        self.class_info: list[dict[str, Any]] = [{"source": "", "id": 0, "name": "BG"}]
        self.source_class_ids: dict[str, list[int]] = {}

    def add_class(self, source: str, class_id: int, class_name: str) -> None:
        """Register a class of ``source``; adding the same (source, id) twice is a no-op.

        Raises:
            ValueError: ``source`` contains a dot (it separates source and id in maps).
        """
        if "." in source:
            raise ValueError(f"`source` must not contain a dot, received {source!r}")
        for info in self.class_info:
            if info["source"] == source and info["id"] == class_id:
                return
        self.class_info.append({"source": source, "id": class_id, "name": class_name})

    def add_image(self, source: str, image_id: Any, path: str | None, **kwargs: Any) -> None:
        """Register an image; extra keyword arguments are kept in its ``image_info`` entry."""
        self.image_info.append({"id": image_id, "source": source, "path": path, **kwargs})

    def image_reference(self, image_id: int) -> str:
        """A string that identifies the image (its path), for messages and debugging."""
        return str(self.image_info[image_id].get("path") or "")

    def prepare(self, class_map: dict | None = None) -> None:
        """Assign internal ids and build the maps between internal and source ids."""

        def clean_name(name: str) -> str:
            return ",".join(name.split(",")[:1])

        self.num_classes = len(self.class_info)
        self.class_ids = np.arange(self.num_classes)
        self.class_names = [clean_name(c["name"]) for c in self.class_info]
        self.num_images = len(self.image_info)
        self._image_ids = np.arange(self.num_images)
        self.class_from_source_map = {
            f"{info['source']}.{info['id']}": i for i, info in enumerate(self.class_info)
        }
        self.image_from_source_map = {
            f"{info['source']}.{info['id']}": i for i, info in enumerate(self.image_info)
        }
        self.sources = sorted({i["source"] for i in self.class_info})
        self.source_class_ids = {
            source: [
                i for i, info in enumerate(self.class_info) if i == 0 or info["source"] == source
            ]
            for source in self.sources
        }

    @property
    def image_ids(self) -> np.ndarray:
        """Internal image ids 0..N-1 (after `prepare`)."""
        return self._image_ids

    def map_source_class_id(self, source_class_id: str) -> int:
        """Internal class id of ``"source.id"``, e.g. ``"mias.1"``."""
        return self.class_from_source_map[source_class_id]

    def get_source_class_id(self, class_id: int, source: str) -> int:
        """The source's own id of internal class ``class_id``."""
        info = self.class_info[class_id]
        if info["source"] != source:
            raise ValueError(
                f"class {class_id} belongs to source {info['source']!r}, not {source!r}"
            )
        return info["id"]

    def source_image_link(self, image_id: int) -> str:
        """Path or URL of the image in its source."""
        return self.image_info[image_id]["path"]

    def load_image(self, image_id: int) -> np.ndarray:
        """The image as uint8 RGB (H, W, 3); grey images are repeated, alpha is dropped."""
        import skimage.io

        image = skimage.io.imread(self.image_info[image_id]["path"])
        return to_rgb_uint8(image)

    def load_mask(self, image_id: int) -> tuple[np.ndarray, np.ndarray]:
        """Instance masks bool (H, W, N) and int32 class ids (N,); override in subclasses.

        The base class has no annotations and returns empty arrays (with a warning), as
        matterport does.
        """
        logger.warning(
            "Dataset.load_mask is not overridden: image %s has no instances",
            self.image_reference(image_id),
        )
        return np.zeros((0, 0, 0), dtype=bool), np.zeros(0, dtype=np.int32)


def to_rgb_uint8(image: np.ndarray) -> np.ndarray:
    """Any image → uint8 RGB (H, W, 3): grey is repeated, alpha dropped, other dtypes scaled.

    Floats in [0, 1] are scaled by 255; other non-uint8 images by 255 / their maximum.

    Example:
        >>> to_rgb_uint8(np.array([[0.0, 1.0]])).tolist()
        [[[0, 0, 0], [255, 255, 255]]]
    """
    image = np.asarray(image)
    if image.dtype != np.uint8:
        scale = (
            255.0
            if image.dtype.kind == "f" and image.max(initial=0) <= 1.0
            else (255.0 / max(float(image.max(initial=0)), 1.0))
        )
        image = np.clip(np.round(image.astype(np.float64) * scale), 0, 255).astype(np.uint8)
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    elif image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    elif image.shape[-1] == 4:
        image = image[..., :3]
    return image


# ------------------------------------------------------------------------ per-image AP


# matterport's thresholds, unrounded: np.arange holds 0.6000000000000001, 0.6500000000000001,
# 0.7000000000000002 ... and the mask IoUs are float32 (`compute_overlaps_masks`). So an IoU of
# exactly 0.60 (float32 0.60000002) passes "0.60", while exactly 0.65, 0.70, 0.75, 0.90 or 0.95
# (float32 0.64999998, 0.69999999, 0.75, 0.89999998, 0.94999999) fails its own threshold: one
# such match scores 0.1 lower in `compute_ap_range` than rounded thresholds would give, and
# this module keeps matterport's number, since that is the number the paper reported.
IOU_RANGE = np.arange(0.5, 1.0, 0.05)


def _trim(boxes, masks):
    """Drop zero-padded instances (all-zero boxes) as matterport does."""
    if boxes is None:
        return slice(None)
    boxes = np.asarray(boxes).reshape(-1, 4)
    return ~np.all(boxes == 0, axis=1)


def compute_matches(
    gt_boxes,
    gt_class_ids,
    gt_masks,
    pred_boxes,
    pred_class_ids,
    pred_scores,
    pred_masks,
    iou_threshold: float = 0.5,
    score_threshold: float = 0.0,
):
    """Greedy matching of predictions (best score first) to truth instances by mask IoU.

    Returns:
        ``(gt_match, pred_match, overlaps)``: for each truth the index of its prediction or -1;
        for each prediction (sorted by score, best first) the index of its truth or -1; and the
        IoU matrix [predictions, truths] in that sorted order.
    """
    keep = _trim(gt_boxes, gt_masks)
    gt_masks = np.asarray(gt_masks)[..., keep]
    gt_class_ids = np.asarray(gt_class_ids)[keep]
    keep = _trim(pred_boxes, pred_masks)
    pred_scores = np.asarray(pred_scores)[keep]
    pred_class_ids = np.asarray(pred_class_ids)[keep]
    pred_masks = np.asarray(pred_masks)[..., keep]
    # Tied scores keep their input order (a stable sort of the negated scores). matterport's
    # `np.argsort(scores)[::-1]` uses NumPy's default, unstable sort, so its tie order is
    # arbitrary (it may differ between NumPy builds and CPUs); results agree where no tie
    # decides a match.
    order = np.argsort(-pred_scores, kind="stable")
    pred_scores, pred_class_ids = pred_scores[order], pred_class_ids[order]
    pred_masks = pred_masks[..., order]
    overlaps = compute_overlaps_masks(pred_masks, gt_masks)
    gt_match = -np.ones(gt_masks.shape[-1])
    pred_match = -np.ones(pred_masks.shape[-1])
    for i in range(len(pred_scores)):
        candidates = np.argsort(-overlaps[i], kind="stable")  # ties: first truth first
        candidates = candidates[overlaps[i, candidates] >= score_threshold]
        for j in candidates:
            if gt_match[j] > -1:
                continue
            # In float64, as matterport's np.float32 IoU met np.arange's np.float64 threshold;
            # NumPy 2 would compare a float32 with a plain Python float in float32.
            if float(overlaps[i, j]) < float(iou_threshold):
                break
            if pred_class_ids[i] == gt_class_ids[j]:
                gt_match[j] = i
                pred_match[i] = j
                break
    return gt_match, pred_match, overlaps


def _voc_ap(precisions: np.ndarray, recalls: np.ndarray) -> float:
    """Area under the all-point interpolated precision-recall curve."""
    precisions = np.concatenate([[0.0], precisions, [0.0]])
    recalls = np.concatenate([[0.0], recalls, [1.0]])
    for i in range(len(precisions) - 2, -1, -1):
        precisions[i] = max(precisions[i], precisions[i + 1])
    steps = np.where(recalls[:-1] != recalls[1:])[0] + 1
    return float(np.sum((recalls[steps] - recalls[steps - 1]) * precisions[steps]))


def compute_ap(
    gt_boxes,
    gt_class_ids,
    gt_masks,
    pred_boxes,
    pred_class_ids,
    pred_scores,
    pred_masks,
    iou_threshold: float = 0.5,
):
    """matterport's per-image average precision at one mask-IoU threshold.

    Args:
        gt_boxes, gt_class_ids, gt_masks: truth [N, 4] (or None), [N], bool [H, W, N].
        pred_boxes, pred_class_ids, pred_scores, pred_masks: predictions, same layout.
        iou_threshold: mask IoU at which a prediction counts as a match.

    Returns:
        ``(ap, precisions, recalls, overlaps)``. ``ap`` is NaN when the image has no truth
        (recall is undefined); an image with truth but no prediction scores 0. ``ap`` equals
        matterport's wherever no tied score decides a match (ties keep their input order here,
        arbitrary order there); ``precisions`` and ``recalls`` are one per prediction, without
        the 0 / 1 end points matterport's returned arrays carry.

    Example:
        >>> m = np.zeros((10, 10, 1), bool); m[2:8, 2:8] = True
        >>> compute_ap(None, [1], m, None, [1], [0.9], m)[0]
        1.0
    """
    gt_match, pred_match, overlaps = compute_matches(
        gt_boxes,
        gt_class_ids,
        gt_masks,
        pred_boxes,
        pred_class_ids,
        pred_scores,
        pred_masks,
        iou_threshold,
    )
    if len(gt_match) == 0:
        return float("nan"), np.zeros(0), np.zeros(0), overlaps
    hits = np.cumsum(pred_match > -1)
    precisions = hits / (np.arange(len(pred_match)) + 1)
    recalls = hits.astype(np.float32) / len(gt_match)  # float32, as matterport's
    return _voc_ap(precisions, recalls), precisions, recalls, overlaps


def compute_ap_range(
    gt_box,
    gt_class_id,
    gt_mask,
    pred_box,
    pred_class_id,
    pred_score,
    pred_mask,
    iou_thresholds: Sequence[float] | None = None,
    verbose: int = 0,
) -> float:
    """`compute_ap` averaged over IoU thresholds (default 0.50:0.05:0.95), one image.

    Example:
        >>> m = np.zeros((10, 10, 1), bool); m[2:8, 2:8] = True
        >>> compute_ap_range(None, [1], m, None, [1], [0.9], m)
        1.0
    """
    thresholds = IOU_RANGE if iou_thresholds is None else np.asarray(iou_thresholds)
    aps = [
        compute_ap(
            gt_box,
            gt_class_id,
            gt_mask,
            pred_box,
            pred_class_id,
            pred_score,
            pred_mask,
            iou_threshold=float(t),
        )[0]
        for t in thresholds
    ]
    result = float(np.mean(aps))
    if verbose:
        print(f"AP @{thresholds[0]:.2f}-{thresholds[-1]:.2f}:\t {result:.3f}")
    return result
