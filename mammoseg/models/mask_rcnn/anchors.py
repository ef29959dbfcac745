"""Anchor boxes of the feature pyramid, in NumPy (data pipeline) and TensorFlow (the model).

Both produce the same anchors in the same order: level by level (P2..P6, one scale each), then
feature-map row, column, and ratio. That order matches the RPN outputs, which are reshaped from
(B, H, W, anchors_per_location, ...) level by level.

Example:
    >>> generate_anchors(32, [1], (2, 2), 16, 1)[[0, 3]].tolist()
    [[-16.0, -16.0, 16.0, 16.0], [0.0, 0.0, 32.0, 32.0]]
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from mammoseg.models.mask_rcnn.utils import norm_boxes


def compute_backbone_shapes(image_shape: Sequence[int], strides: Sequence[int]) -> np.ndarray:
    """Feature-map (height, width) of each pyramid level: ceil(image side / stride).

    Example:
        >>> compute_backbone_shapes((100, 128, 3), [4, 64]).tolist()
        [[25, 32], [2, 2]]
    """
    return np.array(
        [[math.ceil(image_shape[0] / s), math.ceil(image_shape[1] / s)] for s in strides]
    )


def generate_anchors(
    scale: float,
    ratios: Sequence[float],
    shape: Sequence[int],
    feature_stride: int,
    anchor_stride: int,
) -> np.ndarray:
    """Pixel anchors ``(y1, x1, y2, x2)`` of one level, centred on every ``anchor_stride``-th cell.

    A ratio is width / height; each anchor has area ``scale**2``.
    """
    ratios = np.asarray(ratios, dtype=np.float64)
    heights = scale / np.sqrt(ratios)
    widths = scale * np.sqrt(ratios)
    ys = np.arange(0, shape[0], anchor_stride) * feature_stride
    xs = np.arange(0, shape[1], anchor_stride) * feature_stride
    cy, cx = np.meshgrid(ys, xs, indexing="ij")
    cy = cy.reshape(-1, 1)
    cx = cx.reshape(-1, 1)
    boxes = np.stack(
        [cy - 0.5 * heights, cx - 0.5 * widths, cy + 0.5 * heights, cx + 0.5 * widths], axis=-1
    )
    return boxes.reshape(-1, 4)


def generate_pyramid_anchors(
    scales: Sequence[float],
    ratios: Sequence[float],
    feature_shapes: Sequence[Sequence[int]],
    feature_strides: Sequence[int],
    anchor_stride: int,
) -> np.ndarray:
    """Pixel anchors of every level, concatenated (one scale per level)."""
    return np.concatenate(
        [
            generate_anchors(scale, ratios, shape, stride, anchor_stride)
            for scale, shape, stride in zip(scales, feature_shapes, feature_strides)
        ],
        axis=0,
    )


def get_anchors(
    image_shape: Sequence[int],
    scales: Sequence[float],
    ratios: Sequence[float],
    strides: Sequence[int],
    anchor_stride: int,
    normalized: bool = False,
) -> np.ndarray:
    """All anchors for an image of ``image_shape``, in pixels or normalised coordinates.

    Example:
        >>> get_anchors((64, 64, 3), (8, 16, 32, 64, 128), [0.5, 1, 2], [4, 8, 16, 32, 64], 1).shape
        (1023, 4)
    """
    shapes = compute_backbone_shapes(image_shape, strides)
    anchors = generate_pyramid_anchors(scales, ratios, shapes, strides, anchor_stride)
    return norm_boxes(anchors, image_shape[:2]) if normalized else anchors


def pyramid_anchors_tf(
    feature_shapes: Sequence[tf.Tensor],
    image_shape: tf.Tensor,
    scales: Sequence[float],
    ratios: Sequence[float],
    strides: Sequence[int],
    anchor_stride: int,
) -> tf.Tensor:
    """Normalised anchors [A, 4] for the actual feature-map sizes (TensorFlow, any image size).

    Args:
        feature_shapes: (height, width) int tensors of P2..P6.
        image_shape: the network input's (height, width).
    """
    ratios_t = tf.constant(ratios, dtype=tf.float32)
    per_level = []
    for scale, shape, stride in zip(scales, feature_shapes, strides):
        heights = scale / tf.sqrt(ratios_t)
        widths = scale * tf.sqrt(ratios_t)
        ys = tf.cast(tf.range(0, shape[0], anchor_stride) * stride, tf.float32)
        xs = tf.cast(tf.range(0, shape[1], anchor_stride) * stride, tf.float32)
        cy, cx = tf.meshgrid(ys, xs, indexing="ij")
        cy = tf.reshape(cy, (-1, 1))
        cx = tf.reshape(cx, (-1, 1))
        boxes = tf.stack(
            [cy - 0.5 * heights, cx - 0.5 * widths, cy + 0.5 * heights, cx + 0.5 * widths], axis=-1
        )
        per_level.append(tf.reshape(boxes, (-1, 4)))
    anchors = tf.concat(per_level, axis=0)
    h = tf.cast(image_shape[0], tf.float32)
    w = tf.cast(image_shape[1], tf.float32)
    scale = tf.stack([h - 1.0, w - 1.0, h - 1.0, w - 1.0])
    return (anchors - tf.constant([0.0, 0.0, 1.0, 1.0])) / scale
