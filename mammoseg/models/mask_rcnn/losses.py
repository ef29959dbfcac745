"""The five Mask R-CNN losses as pure TensorFlow functions (matterport's definitions).

Each returns a scalar; a loss with nothing to measure (no positive anchor or ROI) is 0, not NaN.

Example:
    >>> float(smooth_l1(tf.constant([0.0, 0.0]), tf.constant([0.5, 3.0])).numpy().sum())
    2.625
"""

from __future__ import annotations

import tensorflow as tf


def smooth_l1(y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
    """Element-wise smooth-L1 (Huber with delta 1): 0.5·d² below 1, d − 0.5 above."""
    diff = tf.abs(tf.cast(y_true, tf.float32) - tf.cast(y_pred, tf.float32))
    return tf.where(diff < 1.0, 0.5 * diff * diff, diff - 0.5)


def _mean_or_zero(values: tf.Tensor) -> tf.Tensor:
    values = tf.cast(values, tf.float32)
    return tf.math.divide_no_nan(tf.reduce_sum(values), tf.cast(tf.size(values), tf.float32))


def rpn_class_loss(rpn_match: tf.Tensor, rpn_class_logits: tf.Tensor) -> tf.Tensor:
    """Cross-entropy of anchor objectness over non-neutral anchors.

    Args:
        rpn_match: (B, A) or (B, A, 1), 1 positive, -1 negative, 0 neutral (ignored).
        rpn_class_logits: (B, A, 2) background/foreground logits.
    """
    rpn_match = tf.reshape(tf.cast(rpn_match, tf.int32), tf.shape(rpn_class_logits)[:2])
    used = tf.where(tf.not_equal(rpn_match, 0))
    labels = tf.cast(tf.equal(tf.gather_nd(rpn_match, used), 1), tf.int32)
    logits = tf.cast(tf.gather_nd(rpn_class_logits, used), tf.float32)
    loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    return _mean_or_zero(loss)


def rpn_bbox_loss(target_bbox: tf.Tensor, rpn_match: tf.Tensor, rpn_bbox: tf.Tensor) -> tf.Tensor:
    """Smooth-L1 between predicted and target deltas of the positive anchors.

    Args:
        target_bbox: (B, T, 4), the deltas of each image's positive anchors in ascending
            anchor order, zero-padded (as `build_rpn_targets` writes them).
        rpn_match: (B, A) or (B, A, 1).
        rpn_bbox: (B, A, 4) predicted deltas.
    """
    rpn_match = tf.reshape(tf.cast(rpn_match, tf.int32), tf.shape(rpn_bbox)[:2])
    positive = tf.equal(rpn_match, 1)
    predicted = tf.gather_nd(rpn_bbox, tf.where(positive))
    counts = tf.reduce_sum(tf.cast(positive, tf.int32), axis=1)
    target = tf.boolean_mask(target_bbox, tf.sequence_mask(counts, tf.shape(target_bbox)[1]))
    return _mean_or_zero(smooth_l1(target, predicted))


def mrcnn_class_loss(
    target_class_ids: tf.Tensor, pred_class_logits: tf.Tensor, active_class_ids: tf.Tensor
) -> tf.Tensor:
    """Cross-entropy of ROI classes; predictions of classes absent from the image's dataset
    (``active_class_ids`` 0) do not count, as in matterport's multi-dataset training.

    Args:
        target_class_ids: (B, N), 0 for background and padding ROIs.
        pred_class_logits: (B, N, C).
        active_class_ids: (B, C), 1 for classes of the image's source dataset.
    """
    target = tf.cast(target_class_ids, tf.int32)
    logits = tf.cast(pred_class_logits, tf.float32)
    pred_ids = tf.argmax(logits, axis=2, output_type=tf.int32)
    active = tf.cast(tf.gather(tf.cast(active_class_ids[0], tf.float32), pred_ids), tf.float32)
    loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=target, logits=logits)
    return tf.math.divide_no_nan(tf.reduce_sum(loss * active), tf.reduce_sum(active))


def mrcnn_bbox_loss(
    target_bbox: tf.Tensor, target_class_ids: tf.Tensor, pred_bbox: tf.Tensor
) -> tf.Tensor:
    """Smooth-L1 of the refinement deltas, for positive ROIs and their true class only.

    Args:
        target_bbox: (B, N, 4). target_class_ids: (B, N). pred_bbox: (B, N, C, 4).
    """
    ids = tf.reshape(tf.cast(target_class_ids, tf.int32), (-1,))
    target = tf.reshape(target_bbox, (-1, 4))
    pred = tf.reshape(pred_bbox, (-1, tf.shape(pred_bbox)[2], 4))
    positive = tf.cast(tf.where(ids > 0)[:, 0], tf.int32)
    index = tf.stack([positive, tf.gather(ids, positive)], axis=1)
    return _mean_or_zero(smooth_l1(tf.gather(target, positive), tf.gather_nd(pred, index)))


def mrcnn_mask_loss(
    target_masks: tf.Tensor, target_class_ids: tf.Tensor, pred_masks: tf.Tensor
) -> tf.Tensor:
    """Binary cross-entropy of the mask of each positive ROI's true class.

    Args:
        target_masks: (B, N, h, w) in {0, 1}. target_class_ids: (B, N).
        pred_masks: (B, N, h, w, C) probabilities.
    """
    ids = tf.reshape(tf.cast(target_class_ids, tf.int32), (-1,))
    shape = tf.shape(target_masks)
    target = tf.reshape(target_masks, (-1, shape[2], shape[3]))
    pred_shape = tf.shape(pred_masks)
    pred = tf.reshape(pred_masks, (-1, pred_shape[2], pred_shape[3], pred_shape[4]))
    positive = tf.cast(tf.where(ids > 0)[:, 0], tf.int32)
    y_true = tf.cast(tf.gather(target, positive), tf.float32)
    y_pred = tf.gather(tf.gather(pred, positive), tf.gather(ids, positive), axis=3, batch_dims=1)
    y_pred = tf.clip_by_value(tf.cast(y_pred, tf.float32), 1e-7, 1 - 1e-7)
    bce = -(y_true * tf.math.log(y_pred) + (1.0 - y_true) * tf.math.log(1.0 - y_pred))
    return _mean_or_zero(bce)


def weight_decay_loss(variables, weight_decay: float) -> tf.Tensor:
    """matterport's L2 penalty: ``weight_decay · sum(w²) / size(w)`` over kernels, summed.

    Batch-norm gamma/beta (and the non-trainable moving statistics) are left out.
    """
    terms = [
        weight_decay
        * tf.reduce_sum(tf.square(tf.cast(v, tf.float32)))
        / tf.cast(tf.size(v), tf.float32)
        for v in variables
        if v.name not in ("gamma", "beta")
    ]
    return tf.add_n(terms) if terms else tf.constant(0.0)
