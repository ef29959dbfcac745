"""Mask R-CNN graph layers without weights: proposals, pyramid ROI align, final detections.

All boxes inside the network are normalised ``(y1, x1, y2, x2)`` (see `utils.norm_boxes`).
These layers run TensorFlow ops (top-k, NMS, crop-and-resize) that Keras has no equivalent for.

Example:
    >>> layer = ProposalLayer(proposal_count=100, nms_threshold=0.7, pre_nms_limit=500,
    ...                       rpn_bbox_std_dev=[0.1, 0.1, 0.2, 0.2])
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import tensorflow as tf

# ------------------------------------------------------------------------- box ops (TF)


def apply_box_deltas_graph(boxes: tf.Tensor, deltas: tf.Tensor) -> tf.Tensor:
    """Move and scale boxes [..., 4] by deltas ``(dy, dx, log dh, log dw)`` [..., 4]."""
    height = boxes[..., 2] - boxes[..., 0]
    width = boxes[..., 3] - boxes[..., 1]
    cy = boxes[..., 0] + 0.5 * height + deltas[..., 0] * height
    cx = boxes[..., 1] + 0.5 * width + deltas[..., 1] * width
    height = height * tf.exp(deltas[..., 2])
    width = width * tf.exp(deltas[..., 3])
    return tf.stack(
        [cy - 0.5 * height, cx - 0.5 * width, cy + 0.5 * height, cx + 0.5 * width], axis=-1
    )


def clip_boxes_graph(boxes: tf.Tensor, window: tf.Tensor) -> tf.Tensor:
    """Clip boxes [..., 4] to ``window`` (y1, x1, y2, x2)."""
    wy1, wx1, wy2, wx2 = tf.unstack(tf.cast(window, boxes.dtype), 4)
    y1, x1, y2, x2 = tf.unstack(boxes, 4, axis=-1)
    return tf.stack(
        [
            tf.clip_by_value(y1, wy1, wy2),
            tf.clip_by_value(x1, wx1, wx2),
            tf.clip_by_value(y2, wy1, wy2),
            tf.clip_by_value(x2, wx1, wx2),
        ],
        axis=-1,
    )


def box_refinement_graph(box: tf.Tensor, gt_box: tf.Tensor) -> tf.Tensor:
    """Deltas [N, 4] that turn ``box`` into ``gt_box`` (TensorFlow twin of `utils`')."""
    box = tf.cast(box, tf.float32)
    gt_box = tf.cast(gt_box, tf.float32)
    height, width = box[:, 2] - box[:, 0], box[:, 3] - box[:, 1]
    cy, cx = box[:, 0] + 0.5 * height, box[:, 1] + 0.5 * width
    gt_height, gt_width = gt_box[:, 2] - gt_box[:, 0], gt_box[:, 3] - gt_box[:, 1]
    gt_cy, gt_cx = gt_box[:, 0] + 0.5 * gt_height, gt_box[:, 1] + 0.5 * gt_width
    return tf.stack(
        [
            (gt_cy - cy) / height,
            (gt_cx - cx) / width,
            tf.math.log(gt_height / height),
            tf.math.log(gt_width / width),
        ],
        axis=1,
    )


def overlaps_graph(boxes1: tf.Tensor, boxes2: tf.Tensor) -> tf.Tensor:
    """IoU matrix [N1, N2] of two box sets."""
    b1 = tf.expand_dims(boxes1, 1)
    b2 = tf.expand_dims(boxes2, 0)
    y1 = tf.maximum(b1[..., 0], b2[..., 0])
    x1 = tf.maximum(b1[..., 1], b2[..., 1])
    y2 = tf.minimum(b1[..., 2], b2[..., 2])
    x2 = tf.minimum(b1[..., 3], b2[..., 3])
    intersection = tf.maximum(y2 - y1, 0.0) * tf.maximum(x2 - x1, 0.0)
    area1 = (b1[..., 2] - b1[..., 0]) * (b1[..., 3] - b1[..., 1])
    area2 = (b2[..., 2] - b2[..., 0]) * (b2[..., 3] - b2[..., 1])
    union = area1 + area2 - intersection
    return tf.math.divide_no_nan(intersection, union)


def trim_zeros_graph(boxes: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Drop all-zero (padding) rows; also return the boolean mask of kept rows."""
    non_zeros = tf.reduce_sum(tf.abs(boxes), axis=1) > 0
    return tf.boolean_mask(boxes, non_zeros), non_zeros


def pad_rows(tensor: tf.Tensor, rows: int) -> tf.Tensor:
    """Zero-pad (or cut) the first dimension of ``tensor`` to exactly ``rows``."""
    tensor = tensor[:rows]
    missing = tf.maximum(rows - tf.shape(tensor)[0], 0)
    paddings = tf.concat([[[0, missing]], tf.zeros((tf.rank(tensor) - 1, 2), tf.int32)], 0)
    return tf.pad(tensor, paddings)


def norm_boxes_graph(boxes: tf.Tensor, shape: tf.Tensor) -> tf.Tensor:
    """Pixel boxes → normalised, given the image (height, width)."""
    h, w = tf.cast(shape[0], tf.float32), tf.cast(shape[1], tf.float32)
    scale = tf.stack([h - 1.0, w - 1.0, h - 1.0, w - 1.0])
    return (tf.cast(boxes, tf.float32) - tf.constant([0.0, 0.0, 1.0, 1.0])) / scale


# ---------------------------------------------------------------------------------- layers


@keras.saving.register_keras_serializable(package="mammoseg")
class ProposalLayer(keras.layers.Layer):
    """RPN scores and deltas → the best ``proposal_count`` boxes per image after NMS.

    Inputs ``[rpn_probs (B, A, 2), rpn_bbox (B, A, 4), anchors (A, 4)]``; output
    (B, proposal_count, 4) normalised boxes, zero-padded when NMS keeps fewer.
    """

    def __init__(
        self,
        proposal_count: int,
        nms_threshold: float,
        pre_nms_limit: int,
        rpn_bbox_std_dev: Sequence[float],
        **kwargs,
    ):
        kwargs.setdefault("dtype", "float32")  # box maths stays float32 under mixed precision
        super().__init__(**kwargs)
        self.proposal_count = int(proposal_count)
        self.nms_threshold = float(nms_threshold)
        self.pre_nms_limit = int(pre_nms_limit)
        self.rpn_bbox_std_dev = [float(v) for v in rpn_bbox_std_dev]

    def call(self, inputs, proposal_count=None):
        probs, deltas, anchors = inputs
        count = self.proposal_count if proposal_count is None else int(proposal_count)
        scores = tf.cast(probs[:, :, 1], tf.float32)
        deltas = tf.cast(deltas, tf.float32) * tf.constant(self.rpn_bbox_std_dev)
        k = tf.minimum(self.pre_nms_limit, tf.shape(anchors)[0])
        scores, ix = tf.math.top_k(scores, k, sorted=True)
        deltas = tf.gather(deltas, ix, batch_dims=1)
        boxes = apply_box_deltas_graph(tf.gather(anchors, ix), deltas)
        boxes = clip_boxes_graph(boxes, tf.constant([0.0, 0.0, 1.0, 1.0]))

        def nms(args):
            image_boxes, image_scores = args
            keep = tf.image.non_max_suppression(
                image_boxes, image_scores, count, self.nms_threshold
            )
            return pad_rows(tf.gather(image_boxes, keep), count)

        proposals = tf.map_fn(nms, (boxes, scores), fn_output_signature=tf.float32)
        return tf.stop_gradient(tf.ensure_shape(proposals, (None, count, 4)))

    def get_config(self):
        return {
            **super().get_config(),
            "proposal_count": self.proposal_count,
            "nms_threshold": self.nms_threshold,
            "pre_nms_limit": self.pre_nms_limit,
            "rpn_bbox_std_dev": self.rpn_bbox_std_dev,
        }


def roi_levels(boxes: tf.Tensor, image_shape: tf.Tensor) -> tf.Tensor:
    """FPN level (2..5) of each normalised box: a 224² box on a 224² image goes to P4.

    Follows the FPN paper's ``k = 4 + log2(sqrt(wh) / 224)``, measured in pixels of the image.
    """
    h = boxes[..., 2] - boxes[..., 0]
    w = boxes[..., 3] - boxes[..., 1]
    area = tf.cast(image_shape[0] * image_shape[1], tf.float32)
    size = tf.sqrt(tf.maximum(h * w, 1e-12)) * tf.sqrt(area)
    level = 4.0 + tf.math.log(size / 224.0) / tf.math.log(2.0)
    return tf.clip_by_value(tf.cast(tf.round(level), tf.int32), 2, 5)


@keras.saving.register_keras_serializable(package="mammoseg")
class PyramidROIAlign(keras.layers.Layer):
    """Crop each box from its FPN level and resize it to ``pool_shape`` (bilinear).

    Inputs ``[boxes (B, N, 4), image_shape (2,), P2, P3, P4, P5]``; output
    (B, N, pool_h, pool_w, channels).
    """

    def __init__(self, pool_shape: Sequence[int], **kwargs):
        kwargs.setdefault("dtype", "float32")  # crop_and_resize has no bfloat16 kernel
        super().__init__(**kwargs)
        self.pool_shape = tuple(int(v) for v in pool_shape)

    def call(self, inputs):
        boxes, image_shape, *feature_maps = inputs
        boxes = tf.stop_gradient(tf.cast(boxes, tf.float32))
        levels = roi_levels(boxes, image_shape)
        pooled, order = [], []
        for level, feature_map in enumerate(feature_maps, start=2):
            ix = tf.where(tf.equal(levels, level))
            level_boxes = tf.gather_nd(boxes, ix)
            box_indices = tf.cast(ix[:, 0], tf.int32)
            crops = tf.image.crop_and_resize(
                tf.cast(feature_map, tf.float32),
                level_boxes,
                box_indices,
                self.pool_shape,
                method="bilinear",
            )
            pooled.append(crops)
            order.append(ix)
        pooled = tf.concat(pooled, axis=0)
        order = tf.concat(order, axis=0)
        # back to (image, box) order: sort by image * N + box
        n = tf.cast(tf.shape(boxes)[1], tf.int64)
        key = order[:, 0] * n + order[:, 1]
        pooled = tf.gather(pooled, tf.argsort(key))
        shape = tf.concat([tf.shape(boxes)[:2], tf.shape(pooled)[1:]], axis=0)
        return tf.reshape(pooled, shape)

    def get_config(self):
        return {**super().get_config(), "pool_shape": list(self.pool_shape)}


@keras.saving.register_keras_serializable(package="mammoseg")
class DetectionLayer(keras.layers.Layer):
    """Classified, refined ROIs → final detections per image.

    Inputs ``[rois (B, N, 4), class_probs (B, N, C), class_deltas (B, N, C, 4), window (B, 4)]``
    with ``window`` the normalised real-image area. Output (B, max_instances, 6):
    ``(y1, x1, y2, x2, class_id, score)``, best first, zero-padded.
    """

    def __init__(
        self,
        bbox_std_dev: Sequence[float],
        min_confidence: float,
        nms_threshold: float,
        max_instances: int,
        **kwargs,
    ):
        kwargs.setdefault("dtype", "float32")  # box maths stays float32 under mixed precision
        super().__init__(**kwargs)
        self.bbox_std_dev = [float(v) for v in bbox_std_dev]
        self.min_confidence = float(min_confidence)
        self.nms_threshold = float(nms_threshold)
        self.max_instances = int(max_instances)

    def _refine(self, args):
        rois, probs, deltas, window = args
        class_ids = tf.argmax(probs, axis=1, output_type=tf.int32)
        index = tf.stack([tf.range(tf.shape(probs)[0]), class_ids], axis=1)
        scores = tf.gather_nd(probs, index)
        boxes = apply_box_deltas_graph(
            rois, tf.gather_nd(deltas, index) * tf.constant(self.bbox_std_dev)
        )
        boxes = clip_boxes_graph(boxes, window)
        keep = (class_ids > 0) & (scores >= self.min_confidence)
        keep &= tf.reduce_sum(tf.abs(rois), axis=1) > 0
        boxes, class_ids, scores = (tf.boolean_mask(t, keep) for t in (boxes, class_ids, scores))
        # per-class NMS in one call: shift each class to its own region of the plane
        shifted = boxes + 2.0 * tf.cast(class_ids, tf.float32)[:, None]
        kept = tf.image.non_max_suppression(shifted, scores, self.max_instances, self.nms_threshold)
        detections = tf.concat(
            [
                tf.gather(boxes, kept),
                tf.cast(tf.gather(class_ids, kept), tf.float32)[:, None],
                tf.gather(scores, kept)[:, None],
            ],
            axis=1,
        )
        return pad_rows(detections, self.max_instances)

    def call(self, inputs):
        rois, probs, deltas, window = (tf.cast(t, tf.float32) for t in inputs)
        out = tf.map_fn(self._refine, (rois, probs, deltas, window), fn_output_signature=tf.float32)
        return tf.ensure_shape(out, (None, self.max_instances, 6))

    def get_config(self):
        return {
            **super().get_config(),
            "bbox_std_dev": self.bbox_std_dev,
            "min_confidence": self.min_confidence,
            "nms_threshold": self.nms_threshold,
            "max_instances": self.max_instances,
        }
