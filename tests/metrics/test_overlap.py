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
