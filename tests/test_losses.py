"""Losses: hand-computed 3×3 cases, stability at p = 0 / 1 and with logits, serialisation."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from mammoseg import losses as L

TRUTH = np.array([[1, 1, 0], [0, 1, 0], [0, 0, 0]], "float32")  # 3 tumour pixels
# 2 true positives (top row), 1 false negative (centre), 2 false positives.
PRED = np.array([[1, 1, 1], [0, 0, 0], [0, 0, 1]], "float32")


def batch(*arrays):
    return np.stack(arrays)[..., None]  # (B, 3, 3, 1)


def value(tensor):
    return np.asarray(keras.ops.convert_to_numpy(tensor))


def test_weighted_bce_hand_computed():
    y = batch(TRUTH)
    p = np.full_like(y, 0.5)
    # 3 positives weighted 10, 6 negatives weighted 1, each pixel costs ln 2: (30 + 6) ln2 / 9.
    got = value(L.weighted_binary_crossentropy(y, p, positive_weight=10.0))
    np.testing.assert_allclose(got, [4 * math.log(2)], rtol=1e-6)
    p2 = np.where(y > 0, 0.8, 0.1).astype("float32")
    expected = (-10 * 3 * math.log(0.8) - 2 * 6 * math.log(0.9)) / 9
    np.testing.assert_allclose(
        value(L.weighted_binary_crossentropy(y, p2, 10.0, 2.0)), [expected], rtol=1e-5
    )


def test_weighted_bce_logits_equal_probabilities():
    y = batch(TRUTH, PRED)
    logits = np.random.default_rng(0).normal(size=y.shape).astype("float32")
    probs = 1 / (1 + np.exp(-logits))
    a = value(L.weighted_binary_crossentropy(y, logits, 5.0, from_logits=True))
    b = value(L.weighted_binary_crossentropy(y, probs, 5.0))
    assert a.shape == (2,)
    np.testing.assert_allclose(a, b, rtol=1e-4)


def test_dice_loss_hand_computed():
    y, p = batch(TRUTH), batch(PRED)  # TP 2, sum p 4, sum y 3
    np.testing.assert_allclose(value(L.dice_loss(y, p, smooth=0.0)), [1 - 4 / 7], rtol=1e-6)
    np.testing.assert_allclose(value(L.dice_loss(y, p, smooth=1.0)), [1 - 5 / 8], rtol=1e-6)
    empty = np.zeros_like(y)
    np.testing.assert_allclose(value(L.dice_loss(empty, empty)), [0.0], atol=1e-7)


def test_tversky_and_focal_tversky_hand_computed():
    y, p = batch(TRUTH), batch(PRED)  # TP 2, FP 2, FN 1
    ti = 2 / (2 + 0.3 * 2 + 0.7 * 1)
    np.testing.assert_allclose(
        value(L.tversky_loss(y, p, 0.3, 0.7, smooth=0.0)), [1 - ti], rtol=1e-6
    )
    np.testing.assert_allclose(
        value(L.focal_tversky_loss(y, p, 0.3, 0.7, 0.75, smooth=0.0)),
        [(1 - ti) ** 0.75],
        rtol=1e-6,
    )
    # alpha = beta = 0.5 is Dice.
    np.testing.assert_allclose(
        value(L.tversky_loss(y, p, 0.5, 0.5, 0.0)), value(L.dice_loss(y, p, 0.0)), rtol=1e-6
    )


def test_binary_focal_hand_computed():
    y = np.array([[1.0, 0.0]], "float32")
    p = np.array([[0.8, 0.8]], "float32")
    pos = 0.25 * 0.2**2 * -math.log(0.8)
    neg = 0.75 * 0.8**2 * -math.log(0.2)
    got = value(L.binary_focal_loss(y, p, gamma=2.0, alpha=0.25))
    np.testing.assert_allclose(got, [(pos + neg) / 2], rtol=1e-5)
    # gamma 0, no alpha: plain binary cross-entropy.
    bce = value(L.weighted_binary_crossentropy(y, p))
    np.testing.assert_allclose(value(L.binary_focal_loss(y, p, 0.0, None)), bce, rtol=1e-6)


def test_combined_loss_is_weighted_sum_per_image():
    y, p = batch(TRUTH, PRED), batch(PRED, PRED)
    combined = L.CombinedLoss(
        [L.DiceLoss(smooth=0.001), keras.losses.BinaryCrossentropy()], [2, 0.5]
    )
    dice = value(L.dice_loss(y, p, 1e-3))
    bce = value(L.weighted_binary_crossentropy(y, p))
    np.testing.assert_allclose(value(combined.call(y, p)), 2 * dice + 0.5 * bce, atol=1e-6)
    np.testing.assert_allclose(float(combined(y, p)), np.mean(2 * dice + 0.5 * bce), rtol=1e-5)


ALL_LOSSES = [
    L.WeightedBinaryCrossentropy(1.5e6),
    L.DiceLoss(),
    L.BinaryFocalLoss(),
    L.TverskyLoss(),
    L.FocalTverskyLoss(),
    L.dice_bce_loss(),
]


@pytest.mark.parametrize("loss", ALL_LOSSES, ids=lambda loss: loss.name)
@pytest.mark.parametrize("from_logits", [False, True])
def test_finite_values_and_gradients_at_extremes(loss, from_logits):
    config = loss.get_config()
    if "losses" in config:
        loss = L.dice_bce_loss(from_logits=from_logits)
    else:
        config["from_logits"] = from_logits
        loss = type(loss).from_config(config)
    y = batch(TRUTH, np.zeros((3, 3), "float32"))
    extremes = np.where(batch(PRED, PRED) > 0, 1.0, 0.0)  # wrong and right, at p = 0 and 1
    x = tf.Variable(extremes * 2e4 - 1e4 if from_logits else extremes, dtype="float32")
    perfect = tf.Variable(y * 2e4 - 1e4 if from_logits else y, dtype="float32")
    for pred in (x, perfect):
        with tf.GradientTape() as tape:
            out = loss(y, pred)
        grad = tape.gradient(out, pred)
        assert np.isfinite(out.numpy()) and np.all(np.isfinite(grad.numpy()))


def test_bfloat16_predictions_give_float32_loss():
    y, p = batch(TRUTH), keras.ops.cast(batch(PRED) * 0.9, "bfloat16")
    for loss in ALL_LOSSES:
        assert keras.backend.standardize_dtype(loss.call(y, p).dtype) == "float32"


@pytest.mark.parametrize("loss", ALL_LOSSES, ids=lambda loss: loss.name)
def test_serialisation_round_trip(loss):
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert type(restored) is type(loss)
    assert restored.get_config() == loss.get_config()
    y, p = batch(TRUTH), batch(PRED) * 0.7 + 0.1
    np.testing.assert_allclose(float(restored(y, p)), float(loss(y, p)), rtol=1e-6)


def test_model_with_combined_loss_saves_and_reloads(tmp_path):
    inputs = keras.Input((3, 3, 1))
    model = keras.Model(inputs, keras.layers.Conv2D(1, 1, activation="sigmoid")(inputs))
    model.compile("sgd", loss=L.CombinedLoss([L.DiceLoss(), L.TverskyLoss(0.2, 0.8)], [1, 2]))
    model.save(tmp_path / "m.keras")
    reloaded = keras.saving.load_model(tmp_path / "m.keras")
    assert isinstance(reloaded.loss, L.CombinedLoss)
    assert reloaded.loss.weights == [1.0, 2.0] and reloaded.loss.losses[1].beta == 0.8


@pytest.mark.parametrize(
    "make, message",
    [
        (
            lambda: L.WeightedBinaryCrossentropy(0),
            "`positive_weight` must be a number > 0, received 0",
        ),
        (lambda: L.WeightedBinaryCrossentropy(10, -1), "`negative_weight` must be a number > 0"),
        (lambda: L.BinaryFocalLoss(gamma=-1), "`gamma` must be a number >= 0, received -1"),
        (lambda: L.BinaryFocalLoss(alpha=2), "`alpha` must be None or a number in \\[0, 1\\]"),
        (lambda: L.DiceLoss(smooth=-1), "`smooth` must be a number > 0, received -1"),
        (lambda: L.TverskyLoss(0, 0), "`alpha` and `beta` cannot both be 0"),
        (lambda: L.TverskyLoss(-0.1), "`alpha` must be a number >= 0, received -0.1"),
        (lambda: L.FocalTverskyLoss(gamma=0), "`gamma` must be a number > 0, received 0"),
        (lambda: L.CombinedLoss([]), "`losses` must hold at least one loss"),
        (lambda: L.CombinedLoss([L.DiceLoss()], [1, 2]), "`weights` must have one entry per loss"),
    ],
)
def test_invalid_arguments_raise_value_error(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_combined_loss_rejects_non_loss():
    with pytest.raises(TypeError, match="`losses` must hold keras.losses.Loss instances"):
        L.CombinedLoss(["dice"])


@pytest.mark.parametrize("gamma", [0.0, 0.5])
def test_focal_gradients_finite_on_confident_logits(gamma):
    # Logits ±30 on the right side give p_t = 1 in float32: (1 - p_t)^γ with γ < 1 had an
    # infinite derivative there and the gradient was NaN.
    y_true = tf.constant([[[[1.0], [0.0]]]])
    logits = tf.Variable([[[[30.0], [-30.0]]]])
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(L.binary_focal_loss(y_true, logits, gamma=gamma, from_logits=True))
    assert np.all(np.isfinite(tape.gradient(loss, logits).numpy()))


def test_focal_gamma_zero_is_bce():
    y_true = np.array([[[[1.0], [0.0], [1.0]]]], "float32")
    logits = np.array([[[[2.0], [-1.0], [-0.5]]]], "float32")
    focal = L.binary_focal_loss(y_true, logits, gamma=0.0, alpha=None, from_logits=True)
    p = 1 / (1 + np.exp(-logits))
    bce = -(y_true * np.log(p) + (1 - y_true) * np.log(1 - p)).mean()
    np.testing.assert_allclose(np.asarray(focal).ravel()[0], bce, rtol=1e-5)


@pytest.mark.parametrize("cls", [L.DiceLoss, L.TverskyLoss])
def test_zero_smooth_is_rejected(cls):
    # smooth = 0 with an empty truth and an exact-zero prediction is 0/0: the loss was NaN.
    with pytest.raises(ValueError, match="`smooth`"):
        cls(smooth=0.0)
