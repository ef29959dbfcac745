"""Candidates, pixel counts at many thresholds, and the threshold chosen on validation."""

import numpy as np
import pytest

from mammoseg.recipes import extract_candidates, overlap_counts, select_threshold


def test_candidates_are_scored_components_above_the_area():
    prob = np.zeros((10, 10))
    prob[1:3, 1:3] = [[0.9, 0.5], [0.5, 0.5]]
    prob[7, 7] = 0.8
    prob[5:7, 0:3] = 0.3
    found = extract_candidates(prob, threshold=0.25, min_area=2)
    assert [(c.score, c.area) for c in found] == [(0.9, 4), (0.3, 6)]
    assert found[0].centroid == (1.5, 1.5)
    assert [c.area for c in extract_candidates(prob, 0.25)] == [4, 1, 6]
    with pytest.raises(ValueError, match="`threshold` must be in"):
        extract_candidates(prob, 1.5)


def test_overlap_counts_match_hand_counts():
    prob = np.array([[0.9, 0.4], [0.6, 0.1]])
    truth = np.array([[1, 1], [0, 0]])
    counts = overlap_counts(prob, truth, [0.05, 0.5, 0.95])
    # t=0.05: all positive → TP 2, FP 2, FN 0; t=0.5: TP 1, FP 1, FN 1; t=0.95: FN 2.
    assert counts.tolist() == [[2, 2, 0], [1, 1, 1], [0, 0, 2]]


def test_threshold_is_chosen_on_validation_dice():
    truth = np.zeros((10, 10), np.uint8)
    truth[2:6, 2:6] = 1
    prob = np.where(truth > 0, 0.7, 0.0)
    prob[0, :] = 0.4  # a band of background at 0.4: thresholds <= 0.4 add 10 false positives
    thresholds = [0.3, 0.5, 0.8]
    best, curve = select_threshold([overlap_counts(prob, truth, thresholds)], thresholds)
    assert best == 0.5
    assert curve == pytest.approx([32 / 42, 1.0, 0.0])
    # Images without truth do not vote.
    empty = overlap_counts(np.ones((4, 4)), np.zeros((4, 4)), thresholds)
    assert select_threshold([overlap_counts(prob, truth, thresholds), empty], thresholds)[0] == 0.5


def test_threshold_needs_a_lesion():
    empty = overlap_counts(np.ones((4, 4)), np.zeros((4, 4)), [0.5])
    with pytest.raises(ValueError, match="no validation image holds a lesion"):
        select_threshold([empty], [0.5])
    with pytest.raises(ValueError, match="counts"):
        select_threshold([empty], [0.5, 0.6])
