"""Batch Dice / Tversky (`over_batch=True`): hand-computed values, gradients, serialisation."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from mammoseg.losses import (
    DiceLoss,
    FocalTverskyLoss,
    TverskyLoss,
    dice_loss,
    tversky_index,
)


@pytest.fixture
def pair():
    # Image 0: one tumour pixel, predicted. Image 1: no tumour, one false positive.
    truth = np.zeros((2, 2, 2, 1), "float32")
    truth[0, 0, 0] = 1
    pred = np.zeros((2, 2, 2, 1), "float32")
    pred[0, 0, 0] = 1
    pred[1, 1, 1] = 1
    return truth, pred


def test_per_image_dice_scores_each_image_alone(pair):
    truth, pred = pair
    np.testing.assert_allclose(dice_loss(truth, pred, smooth=0.0), [0.0, 1.0], atol=1e-6)


def test_batch_dice_pools_the_counts_and_repeats_them(pair):
    truth, pred = pair
    # TP = 1, FP = 1, FN = 0 over the batch: Dice = 2 / 3, loss 1 / 3 for both images.
    np.testing.assert_allclose(
        dice_loss(truth, pred, smooth=0.0, over_batch=True), [1 / 3, 1 / 3], atol=1e-6
    )


def test_batch_tversky_index_hand_computed(pair):
    truth, pred = pair
    # (TP) / (TP + 0.3 FP + 0.7 FN) = 1 / 1.3
    value = tversky_index(truth, pred, alpha=0.3, beta=0.7, smooth=0.0, over_batch=True)
    np.testing.assert_allclose(value, [1 / 1.3, 1 / 1.3], atol=1e-6)


def test_empty_normal_image_no_longer_a_free_perfect_score():
    # A normal image predicted empty: per image it is a perfect 0 loss (smoothing), which is
    # what pulls models towards predicting nothing; over the batch it carries the lesion
    # image's miss.
    truth = np.zeros((2, 4, 4, 1), "float32")
    truth[0, :2, :2] = 1
    pred = np.zeros_like(truth)
    per_image = dice_loss(truth, pred).numpy()
    assert per_image[1] == pytest.approx(0.0)
    batch = dice_loss(truth, pred, over_batch=True).numpy()
    assert batch[1] == pytest.approx(batch[0]) and batch[0] == pytest.approx(1 - 1 / 5)


@pytest.mark.parametrize("loss", [DiceLoss(over_batch=True), FocalTverskyLoss(over_batch=True)])
def test_batch_losses_have_finite_gradients_at_0_and_1(loss):
    truth = tf.constant(np.eye(4, dtype="float32").reshape(1, 4, 4, 1).repeat(2, axis=0))
    for value in (0.0, 1.0):
        pred = tf.Variable(tf.fill(truth.shape, value))
        with tf.GradientTape() as tape:
            out = loss(truth, pred)
        grad = tape.gradient(out, pred)
        assert np.isfinite(out.numpy()) and np.all(np.isfinite(grad.numpy()))


@pytest.mark.parametrize(
    "loss",
    [DiceLoss(over_batch=True), TverskyLoss(over_batch=True), FocalTverskyLoss(over_batch=True)],
)
def test_over_batch_survives_serialisation(loss):
    config = keras.saving.serialize_keras_object(loss)
    again = keras.saving.deserialize_keras_object(config)
    assert again.over_batch is True and type(again) is type(loss)
