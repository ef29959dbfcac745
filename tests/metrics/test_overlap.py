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
    expected = dice_score(preds, truths, reduction="per_image")
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
    c = confusion_counts(pred, truth, threshold=0.5)
    assert (c.tp.tolist(), c.fp.tolist(), c.fn.tolist(), c.tn.tolist()) == ([1], [0], [1], [2])
    c = confusion_counts(pred, truth, threshold=0.25)
    assert (c.tp.tolist(), c.fp.tolist(), c.fn.tolist(), c.tn.tolist()) == ([2], [1], [0], [1])
    # Dice at 0.5: 2 / (2 + 0 + 1).
    assert dice_score(pred, truth, threshold=0.5) == pytest.approx(2 / 3)


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
    assert empty_prediction_rate(pred, truth) == pytest.approx(1 / 3)  # B of A, B, D
    assert empty_prediction_rate(pred[:1], truth[:1]) == 0.0
    assert empty_prediction_rate(pred[1:3], truth[1:3]) == 1.0  # C does not vote
    assert np.isnan(empty_prediction_rate(pred[2:3], truth[2:3]))


def test_default_threshold_and_tensor_input():
    # confusion_counts' default threshold is 0.5; a Keras tensor (H, W) is one image, as an array.
    import keras

    from mammoseg.metrics import confusion_counts

    pred = np.array([[0.3, 0.6], [0.5, 0.0]])
    truth = np.array([[1, 1], [0, 0]])
    c = confusion_counts(pred, truth)
    assert (c.tp.tolist(), c.fp.tolist(), c.fn.tolist(), c.tn.tolist()) == ([1], [1], [1], [1])
    tensor = keras.ops.convert_to_tensor(pred.astype("float32"))
    c = confusion_counts(tensor, truth)
    assert (c.tp.tolist(), c.fp.tolist(), c.fn.tolist(), c.tn.tolist()) == ([1], [1], [1], [1])
    # Dice 2 / (2 + 1 + 1)
    assert dice_score(tensor, keras.ops.convert_to_tensor(truth)) == pytest.approx(0.5)


def test_every_metric_binarises_at_0_5_by_default():
    # Probabilities 0.3 (tumour), 0.6 (tumour), 0.5 (background), 0.0 (background).
    # At 0.5: TP 1, FP 1, FN 1, TN 1. (At 0.25 the 0.3 pixel would be a TP: Dice 4/5.)
    from mammoseg import metrics as M

    pred = np.array([[0.3, 0.6], [0.5, 0.0]])
    truth = np.array([[1, 1], [0, 0]])
    assert M.dice_score(pred, truth) == pytest.approx(2 / 4)
    assert M.dice_pooled(pred, truth) == pytest.approx(2 / 4)
    np.testing.assert_allclose(M.dice_per_image(pred, truth), [2 / 4])
    assert M.foreground_iou(pred, truth) == pytest.approx(1 / 3)
    assert M.mean_iou_both_classes(pred, truth) == pytest.approx(1 / 3)  # (1/3 + 1/3) / 2
    assert M.sensitivity(pred, truth) == pytest.approx(1 / 2)
    assert M.specificity(pred, truth) == pytest.approx(1 / 2)
    # A background pixel at 0.3 is a false positive at 0.25 only.
    background = np.zeros((1, 2), int)
    assert M.specificity(np.array([[0.3, 0.0]]), background) == 1.0
    assert M.specificity(np.array([[0.3, 0.0]]), background, threshold=0.25) == 0.5
    assert M.dice_score(pred, truth, threshold=0.25) == pytest.approx(4 / 5)
    # Only the 0.3 pixel predicted at a threshold of 0.25 but not 0.5: empty at 0.5.
    lone = np.array([[0.3, 0.0], [0.0, 0.0]])
    assert M.empty_prediction_rate(lone, truth) == 1.0
    assert M.empty_prediction_rate(lone, truth, threshold=0.25) == 0.0
