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


# Issue #20: values, not just finiteness. With logits ±1e4 the sigmoid is exactly 0 or 1 and a
# wrong pixel costs exactly 1e4 nats (right pixels 0), so every value below is exact.
# Batch: image 0 TRUTH vs PRED (TP 2, FP 2, FN 1), image 1 no tumour vs PRED (FP 4); the loss is
# the mean of the two images.
WRONG_AT_EXTREMES = {
    # (1.5e6 · 1e4 [the missed tumour pixel] + 2 · 1e4) / 9 and 4 · 1e4 / 9
    "weighted_binary_crossentropy": (1.5e10 + 2e4 + 4e4) / 18,
    # 1 - (2·2 + 1) / (2·2 + 2 + 1 + 1) = 3/8 and 1 - 1 / (4 + 1) = 4/5
    "dice_loss": (3 / 8 + 4 / 5) / 2,
    # α_t (1 - p_t)² · 1e4 per wrong pixel: (0.25 + 2 · 0.75) · 1e4 / 9 and 4 · 0.75 · 1e4 / 9
    "binary_focal_loss": (1.75e4 + 3e4) / 18,
    # 1 - (2 + 1) / (2 + 0.3·2 + 0.7·1 + 1) and 1 - 1 / (0.3·4 + 1)
    "tversky_loss": (1.3 / 4.3 + 1.2 / 2.2) / 2,
    "focal_tversky_loss": ((1.3 / 4.3) ** 0.75 + (1.2 / 2.2) ** 0.75) / 2,
    # Dice as above + BCE (3 · 1e4 / 9 and 4 · 1e4 / 9)
    "dice_bce_loss": (3 / 8 + 4 / 5) / 2 + 7e4 / 18,
}


@pytest.mark.parametrize("loss", ALL_LOSSES, ids=lambda loss: loss.name)
def test_values_at_extremes_with_logits(loss):
    config = loss.get_config()
    if "losses" in config:
        loss = L.dice_bce_loss(from_logits=True)
    else:
        loss = type(loss).from_config({**config, "from_logits": True})
    y = batch(TRUTH, np.zeros((3, 3), "float32"))
    wrong = np.where(batch(PRED, PRED) > 0, 1e4, -1e4).astype("float32")
    perfect = (y * 2e4 - 1e4).astype("float32")
    expected = WRONG_AT_EXTREMES[loss.name]
    np.testing.assert_allclose(float(loss(y, wrong)), expected, rtol=1e-5)
    # A perfect prediction costs nothing (focal Tversky: its floor eps^0.75 = 5.6e-6).
    assert float(loss(y, perfect)) == pytest.approx(0.0, abs=1e-5)


def test_overlap_losses_at_extremes_equal_with_probabilities():
    # The clip to [0, 1] changes nothing at exact 0 / 1, so the logits' values hold.
    y, p = batch(TRUTH, np.zeros((3, 3), "float32")), batch(PRED, PRED)
    for loss in (L.DiceLoss(), L.TverskyLoss(), L.FocalTverskyLoss()):
        np.testing.assert_allclose(float(loss(y, p)), WRONG_AT_EXTREMES[loss.name], rtol=1e-6)


P_TUMOUR, P_BACKGROUND = 0.8, 0.1  # on TRUTH's 3 tumour and 6 background pixels


def _graded(y):
    return np.where(y > 0, P_TUMOUR, P_BACKGROUND).astype("float32")


def test_weighted_bce_class_weights_the_tumour_class():
    # The paper's 1:10 weights the tumour pixels: -(10 · 3 ln 0.8 + 6 ln 0.9) / 9 = 0.8141.
    # Swapped (tumour 1, background 10): -(3 ln 0.8 + 60 ln 0.9) / 9 = 0.7768.
    y = batch(TRUTH)
    paper = L.WeightedBinaryCrossentropy(positive_weight=10)
    swapped = L.WeightedBinaryCrossentropy(positive_weight=1, negative_weight=10)
    tumour_cost, background_cost = -3 * math.log(0.8), -6 * math.log(0.9)
    assert float(paper(y, _graded(y))) == pytest.approx((10 * tumour_cost + background_cost) / 9)
    assert float(swapped(y, _graded(y))) == pytest.approx((tumour_cost + 10 * background_cost) / 9)
    assert float(paper(y, _graded(y))) == pytest.approx(0.81405, abs=1e-5)
    assert float(swapped(y, _graded(y))) == pytest.approx(0.77678, abs=1e-5)


def test_weighted_bce_class_from_logits():
    # logit ln 4 -> p = 0.8, logit -ln 9 -> p = 0.1: the same value as the probabilities.
    y = batch(TRUTH)
    logits = np.where(y > 0, math.log(4), -math.log(9)).astype("float32")
    loss = L.WeightedBinaryCrossentropy(positive_weight=10, from_logits=True)
    expected = (-10 * 3 * math.log(0.8) - 6 * math.log(0.9)) / 9
    assert float(loss(y, logits)) == pytest.approx(expected, rel=1e-5)


def test_dice_bce_unequal_weights_from_logits_hand_value():
    # p = 0.8 on the 3 tumour pixels, 0.1 on the 6 background pixels (logits ln 4, -ln 9).
    # Dice (smooth 1): TP 2.4, FP 0.6, FN 0.6: 1 - (4.8 + 1) / (4.8 + 0.6 + 0.6 + 1) = 1.2 / 7.
    # BCE: -(3 ln 0.8 + 6 ln 0.9) / 9 = 0.144621.
    y = batch(TRUTH)
    logits = np.where(y > 0, math.log(4), -math.log(9)).astype("float32")
    dice, bce = 1.2 / 7, -(3 * math.log(0.8) + 6 * math.log(0.9)) / 9
    got = float(L.dice_bce_loss(bce_weight=0.5, from_logits=True)(y, logits))
    assert got == pytest.approx(dice + 0.5 * bce, rel=1e-5)
    assert got == pytest.approx(0.243739, abs=1e-5)
    # The weight multiplies the BCE term, not the Dice term.
    got = float(L.dice_bce_loss(bce_weight=2.0, from_logits=True)(y, logits))
    assert got == pytest.approx(dice + 2 * bce, rel=1e-5)
    # Probabilities: the same value without the sigmoid.
    got = float(L.dice_bce_loss(bce_weight=0.5)(y, _graded(y)))
    assert got == pytest.approx(dice + 0.5 * bce, rel=1e-5)


def test_dice_bce_over_batch_pools_the_dice_term():
    # Image 0: TRUTH, p 0.8 / 0.1 as above; image 1: no tumour, p 0.1 everywhere.
    # Batch Dice: TP 2.4, FP 0.6 + 0.9, FN 0.6: 1 - 5.8 / (4.8 + 1.5 + 0.6 + 1) = 2.1 / 7.9,
    # the same for both images. BCE: 0.144621 and -ln 0.9 = 0.105361; mean over the batch.
    y = batch(TRUTH, np.zeros((3, 3), "float32"))
    p = _graded(y)
    bce = (-(3 * math.log(0.8) + 6 * math.log(0.9)) / 9 - math.log(0.9)) / 2
    got = float(L.dice_bce_loss(bce_weight=0.5, over_batch=True)(y, p))
    assert got == pytest.approx(2.1 / 7.9 + 0.5 * bce, rel=1e-5)
    # Per image, the normal image's Dice is 1 - 1 / (0.9 + 1).
    per_image = ((1.2 / 7) + (1 - 1 / 1.9)) / 2
    got = float(L.dice_bce_loss(bce_weight=0.5)(y, p))
    assert got == pytest.approx(per_image + 0.5 * bce, rel=1e-5)


def test_defaults_hand_computed():
    # Focal loss defaults γ = 2, α = 0.25, probabilities (the function and the class).
    y, p = np.array([[1.0, 0.0]], "float32"), np.array([[0.8, 0.8]], "float32")
    focal = (0.25 * 0.2**2 * -math.log(0.8) + 0.75 * 0.8**2 * -math.log(0.2)) / 2
    np.testing.assert_allclose(value(L.binary_focal_loss(y, p)), [focal], rtol=1e-5)
    assert float(L.BinaryFocalLoss()(y, p)) == pytest.approx(focal, rel=1e-5)
    # Tversky index defaults α = β = 0.5, smooth 1: (2 + 1) / (2 + 1 + 0.5 + 1) = 2/3.
    y, p = batch(TRUTH), batch(PRED)  # TP 2, FP 2, FN 1
    np.testing.assert_allclose(value(L.tversky_index(y, p)), [2 / 3], rtol=1e-6)
    # Tversky loss defaults α = 0.3, β = 0.7, smooth 1; focal Tversky γ = 0.75.
    np.testing.assert_allclose(value(L.tversky_loss(y, p)), [1.3 / 4.3], rtol=1e-6)
    np.testing.assert_allclose(value(L.focal_tversky_loss(y, p)), [(1.3 / 4.3) ** 0.75], rtol=1e-6)
    # Dice loss default smooth 1: 1 - 5/8.
    np.testing.assert_allclose(value(L.dice_loss(y, p)), [3 / 8], rtol=1e-6)


def test_combined_loss_accepts_a_zero_weight():
    # A zero weight switches a term off (an ablation), it is not an error.
    y, p = batch(TRUTH), batch(PRED)
    combined = L.CombinedLoss([L.DiceLoss(), L.WeightedBinaryCrossentropy(10)], [1, 0])
    assert combined.weights == [1.0, 0.0]
    assert float(combined(y, p)) == pytest.approx(3 / 8, rel=1e-6)
