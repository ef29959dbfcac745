import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from mammoseg.models.mask_rcnn import losses

LN2 = math.log(2)


def test_smooth_l1_hand_values():
    out = losses.smooth_l1(tf.zeros(4), tf.constant([0.5, -0.5, 1.0, 3.0])).numpy()
    np.testing.assert_allclose(out, [0.125, 0.125, 0.5, 2.5])


def test_rpn_class_loss_ignores_neutral_anchors():
    match = tf.constant([[[1], [-1], [0]]])
    logits = tf.constant([[[0.0, 0.0], [0.0, 0.0], [5.0, -5.0]]])
    assert losses.rpn_class_loss(match, logits).numpy() == pytest.approx(LN2)


def test_rpn_bbox_loss_packs_targets_per_image():
    match = tf.constant([[1, 0, 1], [0, 1, -1]])
    pred = tf.constant(
        [
            [[0.5, 0, 0, 0], [9, 9, 9, 9], [2, 0, 0, 0]],
            [[9, 9, 9, 9], [0, 0, 0, -0.2], [9, 9, 9, 9]],
        ]
    )
    target = tf.zeros((2, 3, 4))
    # elements: 0.125 (0.5), 1.5 (2.0), 0.02 (0.2) over 3 anchors x 4 = 12
    assert losses.rpn_bbox_loss(target, match, pred).numpy() == pytest.approx(1.645 / 12)


def test_rpn_bbox_loss_without_positives_is_zero():
    loss = losses.rpn_bbox_loss(tf.zeros((1, 2, 4)), tf.constant([[-1, 0]]), tf.ones((1, 2, 4)))
    assert loss.numpy() == 0.0


def test_mrcnn_class_loss_and_active_classes():
    ids = tf.constant([[1, 0]])
    logits = tf.constant([[[0.0, 0.0], [0.0, math.log(3)]]])
    # ROI 0: -log(1/2); ROI 1 (true class 0): -log(1/4)
    loss = losses.mrcnn_class_loss(ids, logits, tf.constant([[1, 1]]))
    assert loss.numpy() == pytest.approx(1.5 * LN2)
    # ROI 1 predicts class 1, absent from this dataset: not counted
    loss = losses.mrcnn_class_loss(ids, logits, tf.constant([[1, 0]]))
    assert loss.numpy() == pytest.approx(LN2)


def test_mrcnn_bbox_loss_uses_true_class_of_positive_rois():
    ids = tf.constant([[1, 0]])
    target = tf.constant([[[1.0, 0, 0, 0], [5, 5, 5, 5]]])
    pred = np.zeros((1, 2, 2, 4), np.float32)
    pred[0, 0, 0] = 9  # class 0 slot of ROI 0: ignored
    pred[0, 1] = 7  # background ROI: ignored
    assert losses.mrcnn_bbox_loss(target, ids, tf.constant(pred)).numpy() == pytest.approx(0.125)


def test_mrcnn_mask_loss_hand_value_and_empty():
    target = np.zeros((1, 2, 2, 2), np.float32)
    target[0, 0] = [[1, 0], [0, 1]]
    pred = np.zeros((1, 2, 2, 2, 2), np.float32)
    pred[0, 0, :, :, 1] = 0.5
    pred[0, 0, :, :, 0] = 0.99
    loss = losses.mrcnn_mask_loss(tf.constant(target), tf.constant([[1, 0]]), tf.constant(pred))
    assert loss.numpy() == pytest.approx(LN2, rel=1e-5)
    none = losses.mrcnn_mask_loss(tf.constant(target), tf.constant([[0, 0]]), tf.constant(pred))
    assert none.numpy() == 0.0


def test_losses_without_positives_are_zero_with_zero_gradients():
    """No positive anchor or ROI (#14's first suspect): a mean over nothing would be NaN and
    its NaN gradient would poison every weight in one step; here each loss and gradient is 0."""
    rpn_logits, rpn_bbox = tf.Variable(tf.ones((1, 3, 2))), tf.Variable(tf.ones((1, 3, 4)))
    bbox, masks = tf.Variable(tf.ones((1, 2, 2, 4))), tf.Variable(tf.fill((1, 2, 4, 4, 2), 0.3))
    no_roi = tf.zeros((1, 2), tf.int32)
    with tf.GradientTape() as tape:
        values = [
            losses.rpn_class_loss(tf.zeros((1, 3, 1), tf.int32), rpn_logits),  # all neutral
            losses.rpn_bbox_loss(tf.ones((1, 2, 4)), tf.constant([[-1, 0, -1]]), rpn_bbox),
            losses.mrcnn_bbox_loss(tf.ones((1, 2, 4)), no_roi, bbox),
            losses.mrcnn_mask_loss(tf.ones((1, 2, 4, 4)), no_roi, masks),
        ]
        total = tf.add_n(values)
    assert [v.numpy() for v in values] == [0.0, 0.0, 0.0, 0.0]
    for grad in tape.gradient(total, [rpn_logits, rpn_bbox, bbox, masks]):
        np.testing.assert_array_equal(tf.convert_to_tensor(grad).numpy(), 0.0)


def test_weight_decay_skips_gamma_and_beta():
    bn = keras.layers.BatchNormalization()
    bn.build((None, 2))
    dense = keras.layers.Dense(2, kernel_initializer="ones", bias_initializer="ones")
    dense.build((None, 2))
    # kernel: 4 ones -> 0.1 * 4 / 4; bias: 2 ones -> 0.1 * 2 / 2; gamma/beta left out
    loss = losses.weight_decay_loss(dense.trainable_weights + bn.trainable_weights, 0.1)
    assert loss.numpy() == pytest.approx(0.2)
