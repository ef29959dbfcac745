"""NumPy helpers for Mask R-CNN: boxes, IoU, box deltas, mini-masks, image resizing, image meta.

Boxes are ``(y1, x1, y2, x2)`` in pixels with ``y2``/``x2`` exclusive, as in matterport.

Example:
    >>> compute_overlaps(np.array([[0, 0, 10, 10]]), np.array([[0, 5, 10, 15]])).round(3)
    array([[0.333]])
"""

from __future__ import annotations

import random

import numpy as np
from skimage.transform import resize as _sk_resize


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
    the evaluation's thresholds depend on that (see `evaluate.IOU_RANGE`). matterport returns
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


def mold_image(image: np.ndarray, mean_pixel: np.ndarray) -> np.ndarray:
    """0-255 RGB image → float32 network input (mean subtracted)."""
    return image.astype(np.float32) - np.asarray(mean_pixel, dtype=np.float32)
