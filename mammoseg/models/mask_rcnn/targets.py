"""Training targets: anchor targets for the RPN (NumPy) and ROI targets for the heads (layer).

Example:
    >>> anchors = np.array([[0., 0., 10., 10.], [20., 20., 30., 30.], [0., 0., 9., 9.]])
    >>> match, bbox = build_rpn_targets(anchors, np.array([1]), np.array([[0, 0, 10, 10]]),
    ...                                 train_anchors_per_image=4, bbox_std_dev=[.1, .1, .2, .2])
    >>> match.tolist()
    [1, -1, 1]
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from mammoseg.models.mask_rcnn.layers import (
    box_refinement_graph,
    overlaps_graph,
    pad_rows,
    trim_zeros_graph,
)
from mammoseg.models.mask_rcnn.utils import box_refinement, compute_overlaps

RPN_POSITIVE_IOU = 0.7
RPN_NEGATIVE_IOU = 0.3
ROI_POSITIVE_IOU = 0.5


def build_rpn_targets(
    anchors: np.ndarray,
    gt_class_ids: np.ndarray,
    gt_boxes: np.ndarray,
    train_anchors_per_image: int,
    bbox_std_dev: Sequence[float],
    rng: np.random.Generator | None = None,
    positive_iou: float = RPN_POSITIVE_IOU,
    negative_iou: float = RPN_NEGATIVE_IOU,
):
    """Label anchors for the RPN and compute the deltas of the positive ones.

    An anchor is positive when its IoU with a truth box is >= ``positive_iou`` (matterport:
    0.7) or it is the best anchor of some truth box, negative below ``negative_iou`` (0.3),
    neutral otherwise. At most half of
    ``train_anchors_per_image`` are positive; negatives fill the rest; the others become neutral.
    Crowd boxes (negative class ids) are not used.

    Args:
        anchors: [A, 4] pixel anchors. gt_boxes: [M, 4] pixel boxes. gt_class_ids: [M].
        train_anchors_per_image: anchors used per image (RPN_TRAIN_ANCHORS_PER_IMAGE).
        bbox_std_dev: RPN_BBOX_STD_DEV, dividing the deltas.
        positive_iou, negative_iou: RPN_POSITIVE_IOU and RPN_NEGATIVE_IOU of the config.

    Returns:
        ``(rpn_match [A] int32 in {1, -1, 0}, rpn_bbox [train_anchors_per_image, 4])``; the
        deltas are listed in ascending anchor order of the positive anchors.
    """
    rng = rng or np.random.default_rng()
    rpn_match = np.zeros(anchors.shape[0], dtype=np.int32)
    rpn_bbox = np.zeros((train_anchors_per_image, 4), dtype=np.float32)
    keep = np.asarray(gt_class_ids) > 0
    gt_boxes = np.asarray(gt_boxes)[keep]
    if gt_boxes.shape[0] == 0:
        rpn_match[:] = -1
    else:
        overlaps = compute_overlaps(anchors, gt_boxes)
        best_gt = np.argmax(overlaps, axis=1)
        best_iou = overlaps[np.arange(len(anchors)), best_gt]
        rpn_match[best_iou < negative_iou] = -1
        # every truth box gets its best anchor(s), however low the IoU
        best_anchors = np.argwhere(overlaps == overlaps.max(axis=0, keepdims=True))[:, 0]
        rpn_match[best_anchors] = 1
        rpn_match[best_iou >= positive_iou] = 1
    positives = np.where(rpn_match == 1)[0]
    extra = len(positives) - train_anchors_per_image // 2
    if extra > 0:
        rpn_match[rng.choice(positives, extra, replace=False)] = 0
    negatives = np.where(rpn_match == -1)[0]
    extra = len(negatives) - (train_anchors_per_image - int(np.sum(rpn_match == 1)))
    if extra > 0:
        rpn_match[rng.choice(negatives, extra, replace=False)] = 0
    positives = np.where(rpn_match == 1)[0]
    if positives.size:
        deltas = box_refinement(anchors[positives], gt_boxes[best_gt[positives]])
        rpn_bbox[: positives.size] = deltas / np.asarray(bbox_std_dev)
    return rpn_match, rpn_bbox


@keras.saving.register_keras_serializable(package="mammoseg")
class DetectionTargetLayer(keras.layers.Layer):
    """Sample ROIs among the proposals and give each its class, box deltas and mask target.

    Per image, proposals with IoU >= 0.5 against a truth box are positive; up to
    ``rois_per_image * positive_ratio`` of them are sampled, plus negatives so that positives
    make ``positive_ratio`` of the sample. Crowd boxes (negative class ids) are ignored. With
    ``add_gt_to_proposals`` the truth boxes join the proposals (Detectron; not matterport).

    Inputs ``[proposals (B, N, 4), gt_class_ids (B, M), gt_boxes (B, M, 4) normalised,
    gt_masks (B, h, w, M)]`` (mini-masks when ``use_mini_mask``). Outputs ``rois (B, T, 4)``,
    ``class_ids (B, T)``, ``deltas (B, T, 4)``, ``masks (B, T, mask_h, mask_w)``, zero-padded to
    T = ``rois_per_image``.
    """

    def __init__(
        self,
        rois_per_image: int,
        positive_ratio: float,
        bbox_std_dev: Sequence[float],
        mask_shape: Sequence[int],
        use_mini_mask: bool,
        add_gt_to_proposals: bool = False,
        **kwargs,
    ):
        kwargs.setdefault("dtype", "float32")  # box maths stays float32 under mixed precision
        super().__init__(**kwargs)
        self.rois_per_image = int(rois_per_image)
        self.positive_ratio = float(positive_ratio)
        self.bbox_std_dev = [float(v) for v in bbox_std_dev]
        self.mask_shape = tuple(int(v) for v in mask_shape)
        self.use_mini_mask = bool(use_mini_mask)
        self.add_gt_to_proposals = bool(add_gt_to_proposals)

    def _targets(self, args):
        proposals, gt_class_ids, gt_boxes, gt_masks = args
        proposals, _ = trim_zeros_graph(proposals)
        gt_boxes, valid = trim_zeros_graph(gt_boxes)
        gt_class_ids = tf.boolean_mask(gt_class_ids, valid)
        gt_masks = tf.boolean_mask(gt_masks, valid, axis=2)
        real = gt_class_ids > 0
        gt_boxes = tf.boolean_mask(gt_boxes, real)
        gt_class_ids = tf.boolean_mask(gt_class_ids, real)
        gt_masks = tf.boolean_mask(gt_masks, real, axis=2)
        if self.add_gt_to_proposals:
            # Detectron's remedy for an untrained RPN whose proposals miss every lesion:
            # the heads always see at least one positive ROI per instance.
            proposals = tf.concat([proposals, gt_boxes], axis=0)

        overlaps = overlaps_graph(proposals, gt_boxes)
        has_gt = tf.shape(gt_boxes)[0] > 0
        best_iou = tf.cond(
            has_gt,
            lambda: tf.reduce_max(overlaps, axis=1),
            lambda: tf.zeros(tf.shape(proposals)[:1]),
        )
        positive_count = int(self.rois_per_image * self.positive_ratio)
        positive = tf.random.shuffle(tf.where(best_iou >= ROI_POSITIVE_IOU)[:, 0])
        positive = positive[:positive_count]
        n_pos = tf.shape(positive)[0]
        n_neg = tf.cast(tf.cast(n_pos, tf.float32) / self.positive_ratio, tf.int32) - n_pos
        negative = tf.random.shuffle(tf.where(best_iou < ROI_POSITIVE_IOU)[:, 0])[:n_neg]
        positive_rois = tf.gather(proposals, positive)
        negative_rois = tf.gather(proposals, negative)

        assignment = tf.cond(
            n_pos > 0,
            lambda: tf.argmax(tf.gather(overlaps, positive), axis=1, output_type=tf.int32),
            lambda: tf.zeros((0,), tf.int32),
        )
        roi_gt_boxes = tf.gather(gt_boxes, assignment)
        roi_class_ids = tf.gather(gt_class_ids, assignment)
        deltas = box_refinement_graph(positive_rois, roi_gt_boxes) / tf.constant(self.bbox_std_dev)

        masks = tf.gather(tf.transpose(tf.cast(gt_masks, tf.float32), [2, 0, 1]), assignment)
        boxes = positive_rois
        if self.use_mini_mask:
            # the mini-mask spans the truth box: express the ROI in that box's frame
            gy1, gx1, gy2, gx2 = tf.unstack(roi_gt_boxes, 4, axis=1)
            y1, x1, y2, x2 = tf.unstack(positive_rois, 4, axis=1)
            gh, gw = gy2 - gy1, gx2 - gx1
            boxes = tf.stack(
                [(y1 - gy1) / gh, (x1 - gx1) / gw, (y2 - gy1) / gh, (x2 - gx1) / gw], axis=1
            )
        masks = tf.image.crop_and_resize(masks[..., None], boxes, tf.range(n_pos), self.mask_shape)
        masks = tf.round(masks[..., 0])  # binary targets for the cross-entropy

        rois = tf.concat([positive_rois, negative_rois], axis=0)
        t = self.rois_per_image
        return (
            pad_rows(rois, t),
            pad_rows(roi_class_ids, t),
            pad_rows(deltas, t),
            pad_rows(masks, t),
        )

    def call(self, inputs):
        proposals, gt_class_ids, gt_boxes, gt_masks = inputs
        signature = (
            tf.TensorSpec((self.rois_per_image, 4), tf.float32),
            tf.TensorSpec((self.rois_per_image,), tf.int32),
            tf.TensorSpec((self.rois_per_image, 4), tf.float32),
            tf.TensorSpec((self.rois_per_image, *self.mask_shape), tf.float32),
        )
        outputs = tf.map_fn(
            self._targets,
            (
                tf.cast(proposals, tf.float32),
                tf.cast(gt_class_ids, tf.int32),
                tf.cast(gt_boxes, tf.float32),
                tf.cast(gt_masks, tf.bool),
            ),
            fn_output_signature=signature,
        )
        return tuple(tf.stop_gradient(o) for o in outputs)

    def get_config(self):
        return {
            **super().get_config(),
            "rois_per_image": self.rois_per_image,
            "positive_ratio": self.positive_ratio,
            "bbox_std_dev": self.bbox_std_dev,
            "mask_shape": list(self.mask_shape),
            "use_mini_mask": self.use_mini_mask,
            "add_gt_to_proposals": self.add_gt_to_proposals,
        }
