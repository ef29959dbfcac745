"""`dice_from_counts`: the one Dice-from-counts, checked on hand counts and against `dice_score`."""

import numpy as np
import pytest

from mammoseg.metrics import dice_from_counts, dice_score


def test_hand_counts():
    # 2·3 / (2·3 + 1 + 2) = 6/9; no truth: NaN; a miss: 0.
    got = dice_from_counts(np.array([[3, 1, 2], [0, 4, 0], [0, 0, 5]]))
    np.testing.assert_allclose(got, [6 / 9, np.nan, 0.0])


def test_empty_cases_when_not_ignored():
    got = dice_from_counts(np.array([[0, 0, 0], [0, 2, 0]]), ignore_empty=False)
    np.testing.assert_array_equal(got, [1.0, 0.0])


def test_counts_at_many_thresholds_keep_their_shape():
    counts = np.array([[[1, 0, 1], [2, 2, 0]], [[0, 1, 0], [1, 1, 1]]])  # (images, thresholds, 3)
    got = dice_from_counts(counts)
    assert got.shape == (2, 2)
    np.testing.assert_allclose(got, [[2 / 3, 4 / 6], [np.nan, 2 / 4]])


def test_equals_dice_score_per_image():
    rng = np.random.default_rng(0)
    preds = rng.random((5, 8, 8))
    truths = rng.random((5, 8, 8)) > 0.7
    truths[2] = False
    p = preds >= 0.5
    counts = np.stack(
        [(p & truths).sum((1, 2)), (p & ~truths).sum((1, 2)), (~p & truths).sum((1, 2))], -1
    )
    expected = dice_score(truths, preds, reduction="per_image")
    np.testing.assert_array_equal(dice_from_counts(counts), expected)
    assert np.isnan(expected[2])


def test_bad_shape_is_named():
    with pytest.raises(ValueError, match=r"\(\.\.\., 3\).*\(4, 2\)"):
        dice_from_counts(np.zeros((4, 2)))


def test_a_probability_exactly_at_the_threshold_is_tumour():
    # `pred >= threshold`: 0.5 is in at 0.5, 0.49 is not; 0.25 is in at 0.25.
    from mammoseg.metrics import confusion_counts

    pred = np.array([[0.5, 0.49], [0.25, 0.0]])
    truth = np.array([[1, 1], [0, 0]])
    c = confusion_counts(truth, pred, threshold=0.5)
    assert (c.tp.tolist(), c.fp.tolist(), c.fn.tolist(), c.tn.tolist()) == ([1], [0], [1], [2])
    c = confusion_counts(truth, pred, threshold=0.25)
    assert (c.tp.tolist(), c.fp.tolist(), c.fn.tolist(), c.tn.tolist()) == ([2], [1], [0], [1])
    # Dice at 0.5: 2 / (2 + 0 + 1).
    assert dice_score(truth, pred, threshold=0.5) == pytest.approx(2 / 3)


def test_a_lone_false_positive_is_not_an_empty_prediction():
    # "Empty" means no predicted pixel at all, wherever it is.
    # A: lesion at (0, 0), the only prediction at (2, 2): not empty (a miss, but not empty).
    # B: lesion, nothing predicted: empty. C: no lesion, nothing predicted: left out.
    # D: lesion, one pixel on it and one beside it (TP 1, FP 1): not empty.
    from mammoseg.metrics import empty_prediction_rate

    truth = np.zeros((4, 3, 3), int)
    pred = np.zeros((4, 3, 3), int)
    truth[0, 0, 0], pred[0, 2, 2] = 1, 1
    truth[1, 1, 1] = 1
    truth[3, 0, 0], pred[3, 0, 0], pred[3, 0, 1] = 1, 1, 1
    assert empty_prediction_rate(truth, pred) == pytest.approx(1 / 3)  # B of A, B, D
    assert empty_prediction_rate(truth[:1], pred[:1]) == 0.0
    assert empty_prediction_rate(truth[1:3], pred[1:3]) == 1.0  # C does not vote
    assert np.isnan(empty_prediction_rate(truth[2:3], pred[2:3]))


def test_default_threshold_and_tensor_input():
    # confusion_counts' default threshold is 0.5; a Keras tensor (H, W) is one image, as an array.
    import keras

    from mammoseg.metrics import confusion_counts

    pred = np.array([[0.3, 0.6], [0.5, 0.0]])
    truth = np.array([[1, 1], [0, 0]])
    c = confusion_counts(truth, pred)
    assert (c.tp.tolist(), c.fp.tolist(), c.fn.tolist(), c.tn.tolist()) == ([1], [1], [1], [1])
    tensor = keras.ops.convert_to_tensor(pred.astype("float32"))
    c = confusion_counts(truth, tensor)
    assert (c.tp.tolist(), c.fp.tolist(), c.fn.tolist(), c.tn.tolist()) == ([1], [1], [1], [1])
    # Dice 2 / (2 + 1 + 1)
    assert dice_score(keras.ops.convert_to_tensor(truth), tensor) == pytest.approx(0.5)


def test_every_metric_binarises_at_0_5_by_default():
    # Probabilities 0.3 (tumour), 0.6 (tumour), 0.5 (background), 0.0 (background).
    # At 0.5: TP 1, FP 1, FN 1, TN 1. (At 0.25 the 0.3 pixel would be a TP: Dice 4/5.)
    from mammoseg import metrics as M

    pred = np.array([[0.3, 0.6], [0.5, 0.0]])
    truth = np.array([[1, 1], [0, 0]])
    assert M.dice_score(truth, pred) == pytest.approx(2 / 4)
    assert M.dice_pooled(truth, pred) == pytest.approx(2 / 4)
    np.testing.assert_allclose(M.dice_per_image(truth, pred), [2 / 4])
    assert M.foreground_iou(truth, pred) == pytest.approx(1 / 3)
    assert M.mean_iou_both_classes(truth, pred) == pytest.approx(1 / 3)  # (1/3 + 1/3) / 2
    assert M.sensitivity(truth, pred) == pytest.approx(1 / 2)
    assert M.specificity(truth, pred) == pytest.approx(1 / 2)
    # A background pixel at 0.3 is a false positive at 0.25 only.
    background = np.zeros((1, 2), int)
    assert M.specificity(background, np.array([[0.3, 0.0]])) == 1.0
    assert M.specificity(background, np.array([[0.3, 0.0]]), threshold=0.25) == 0.5
    assert M.dice_score(truth, pred, threshold=0.25) == pytest.approx(4 / 5)
    # Only the 0.3 pixel predicted at a threshold of 0.25 but not 0.5: empty at 0.5.
    lone = np.array([[0.3, 0.0], [0.0, 0.0]])
    assert M.empty_prediction_rate(truth, lone) == 1.0
    assert M.empty_prediction_rate(truth, lone, threshold=0.25) == 0.0


# One image: the truth has 4 pixels, the prediction 2 above 0.5 (0.9 on the truth, 0.8 off it)
# and 0.2 on a truth pixel: TP 1, FP 1, FN 3, TN 4.
SWAP_TRUTH = np.array([[1, 1, 0], [1, 1, 0], [0, 0, 0]])
SWAP_PROB = np.array([[0.9, 0.0, 0.0], [0.0, 0.2, 0.0], [0.0, 0.0, 0.8]])


def test_truth_first_and_a_swap_changes_the_numbers():
    from mammoseg import metrics as M

    assert M.sensitivity(SWAP_TRUTH, SWAP_PROB) == pytest.approx(1 / 4)  # TP / (TP + FN)
    assert M.specificity(SWAP_TRUTH, SWAP_PROB) == pytest.approx(4 / 5)  # TN / (TN + FP)
    assert M.dice_score(SWAP_TRUTH, SWAP_PROB) == pytest.approx(2 / 6)  # 2 TP / (2 TP + FP + FN)
    # Swapped, the probabilities become a truth of 3 pixels (> 0) and the truth a prediction of
    # 4 (>= 0.5): TP 2, FP 2, FN 1, TN 4, so every number moves.
    assert M.sensitivity(SWAP_PROB, SWAP_TRUTH) == pytest.approx(2 / 3)
    assert M.specificity(SWAP_PROB, SWAP_TRUTH) == pytest.approx(4 / 6)
    assert M.dice_score(SWAP_PROB, SWAP_TRUTH) == pytest.approx(4 / 7)
    # With a binary prediction Dice is symmetric, but sensitivity becomes the precision TP /
    # (TP + FP) = 1/2 and specificity TN / (TN + FN) = 4/7.
    binary = SWAP_PROB >= 0.5
    assert M.dice_score(binary, SWAP_TRUTH) == M.dice_score(SWAP_TRUTH, binary)
    assert M.sensitivity(SWAP_TRUTH, binary) == pytest.approx(1 / 4)
    assert M.sensitivity(binary, SWAP_TRUTH) == pytest.approx(1 / 2)
    assert M.specificity(SWAP_TRUTH, binary) == pytest.approx(4 / 5)
    assert M.specificity(binary, SWAP_TRUTH) == pytest.approx(4 / 7)
    # Two images with a lesion, the first predicted empty: rate 1/2. Swapped, the one image
    # with a predicted lesion has a truth, so nothing is "empty": 0.
    truths = np.stack([SWAP_TRUTH, SWAP_TRUTH])
    preds = np.stack([np.zeros((3, 3)), SWAP_PROB])
    assert M.empty_prediction_rate(truths, preds) == 0.5
    assert M.empty_prediction_rate(preds, truths) == 0.0


def test_keyword_calls_in_any_order():
    from mammoseg import metrics as M

    truths = [SWAP_TRUTH, np.zeros((2, 2))]
    preds = [SWAP_PROB, np.zeros((2, 2))]
    np.testing.assert_allclose(M.dice_per_image(y_true=truths, y_pred=preds), [2 / 6, np.nan])
    np.testing.assert_allclose(M.dice_per_image(y_pred=preds, y_true=truths), [2 / 6, np.nan])
    assert M.sensitivity(y_pred=SWAP_PROB, y_true=SWAP_TRUTH) == pytest.approx(1 / 4)
    assert M.specificity(y_pred=SWAP_PROB, y_true=SWAP_TRUTH) == pytest.approx(4 / 5)
    assert M.foreground_iou(y_pred=SWAP_PROB, y_true=SWAP_TRUTH) == pytest.approx(1 / 5)
    # background IoU TN / (TN + FP + FN) = 4/8, tumour 1/5
    got = M.mean_iou_both_classes(y_pred=SWAP_PROB, y_true=SWAP_TRUTH)
    assert got == pytest.approx((4 / 8 + 1 / 5) / 2)
    assert M.dice_pooled(y_pred=preds, y_true=truths) == pytest.approx(2 / 6)
    assert M.empty_prediction_rate(y_pred=preds, y_true=truths) == 0.0
    c = M.confusion_counts(y_pred=SWAP_PROB, y_true=SWAP_TRUTH)
    assert (c.tp.tolist(), c.fp.tolist(), c.fn.tolist(), c.tn.tolist()) == ([1], [1], [3], [4])


@pytest.mark.parametrize(
    "name",
    [
        "confusion_counts",
        "dice_score",
        "dice_per_image",
        "dice_pooled",
        "foreground_iou",
        "mean_iou_both_classes",
        "sensitivity",
        "specificity",
        "empty_prediction_rate",
    ],
)
def test_every_overlap_metric_takes_y_true_then_y_pred(name):
    import inspect

    from mammoseg import metrics as M

    assert list(inspect.signature(getattr(M, name)).parameters)[:2] == ["y_true", "y_pred"]


def test_mismatched_masks_name_the_arguments():
    with pytest.raises(ValueError, match="same number of masks, received 2 and 1"):
        dice_score(np.zeros((2, 3, 3)), SWAP_PROB)
    with pytest.raises(ValueError, match=r"`y_pred` must be \(H, W\), .*received shape \(3,\)"):
        dice_score(SWAP_TRUTH, np.zeros(3))
