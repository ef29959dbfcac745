"""Candidates, pixel counts at many thresholds, and the threshold chosen on validation."""

import numpy as np
import pytest

from mammoseg.recipes import (
    extract_candidates,
    keep_best_regions,
    overlap_counts,
    region_limited_counts,
    select_postprocessing,
    select_threshold,
)


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
    with pytest.raises(
        ValueError, match=r"needs \(len\(thresholds\)=2, 3\) counts, received \(1, 3\)"
    ):
        select_threshold([empty], [0.5, 0.6])


def _three_regions():
    prob = np.zeros((8, 12))
    prob[1:3, 1:3] = 0.9  # region A: peak 0.9, 4 px
    prob[5:8, 0:3] = 0.7  # region B: peak 0.7, 9 px
    prob[0, 8] = 0.7  # region C: peak 0.7, 1 px (ties with B: the larger B ranks first)
    prob[6, 9:12] = [0.6, 0.95, 0.6]  # region D: peak 0.95, 3 px
    return prob


def test_keep_best_regions_ranks_by_peak_then_area():
    prob = _three_regions()
    mask = prob >= 0.5
    kept = keep_best_regions(mask, prob, 1)
    assert kept.sum() == 3 and kept[6, 10]  # D alone
    kept = keep_best_regions(mask, prob, 3)
    assert kept.sum() == 3 + 4 + 9 and not kept[0, 8]  # D, A, B; C loses the tie on area
    assert keep_best_regions(mask, prob, None).sum() == 17
    assert keep_best_regions(mask, prob, 9).sum() == 17
    assert keep_best_regions(np.zeros_like(mask), prob, 1).sum() == 0
    # 8-connectivity: diagonal neighbours are one region
    diagonal = np.eye(4) * 0.8
    assert keep_best_regions(diagonal >= 0.5, diagonal, 1).sum() == 4
    with pytest.raises(ValueError, match="`max_regions` must be None or a positive integer"):
        keep_best_regions(mask, prob, 0)
    with pytest.raises(ValueError, match="shapes differ"):
        keep_best_regions(mask[:4], prob, 1)


def test_region_limited_counts_equal_counting_the_kept_mask():
    rng = np.random.default_rng(0)
    prob = np.clip(rng.normal(0.3, 0.25, (40, 40)), 0, 1)
    truth = np.zeros((40, 40), bool)
    truth[10:20, 5:18] = True
    thresholds = [0.3, 0.5, 0.7]
    limited = region_limited_counts(prob, truth, thresholds, [1, 2])
    for k in (1, 2):
        for row, t in enumerate(thresholds):
            kept = keep_best_regions(prob >= t, prob, k)
            tp = int((kept & truth).sum())
            expected = [tp, int(kept.sum()) - tp, int(truth.sum()) - tp]
            assert limited[k][row].tolist() == expected


def test_select_postprocessing_limits_regions_only_when_it_helps():
    thresholds = [0.3, 0.5]
    # one image: keeping every region gives Dice 0.5 / 0.6 at 0.3 / 0.5; one region 0.8 / 0.67
    every = [np.array([[2, 4, 0], [3, 4, 0]])]  # TP, FP, FN at each threshold
    limited = [{1: np.array([[2, 1, 0], [2, 0, 2]]), 2: np.array([[2, 4, 0], [3, 4, 0]])}]
    threshold, regions, curves = select_postprocessing(every, limited, thresholds)
    assert (threshold, regions) == (0.3, 1)
    assert curves["all"] == pytest.approx([0.5, 0.6]) and curves["1"] == pytest.approx([0.8, 4 / 6])
    # a limit that only ties keeping everything is not taken
    threshold, regions, _ = select_postprocessing(every, [{1: every[0]}], thresholds)
    assert (threshold, regions) == (0.5, None)
    assert select_postprocessing(every, [], thresholds)[:2] == (0.5, None)


def test_threshold_ties_go_to_the_higher_threshold():
    # TP, FP, FN at thresholds 0.3, 0.5, 0.7: Dice 4/6, 4/6, 2/4. The tie at 4/6 goes to 0.5
    # (fewer false-positive pixels on normal images), whichever order the thresholds come in.
    counts = np.array([[2, 1, 1], [2, 1, 1], [1, 0, 2]])
    best, curve = select_threshold([counts], [0.3, 0.5, 0.7])
    assert best == 0.5 and curve == pytest.approx([4 / 6, 4 / 6, 2 / 4])
    assert select_threshold([counts[::-1]], [0.7, 0.5, 0.3])[0] == 0.5
    # Every threshold ties: the highest one.
    flat = np.array([[1, 1, 1]] * 3)
    assert select_threshold([flat], [0.3, 0.5, 0.7])[0] == 0.7


def test_threshold_ties_up_to_rounding_noise():
    # Mean Dice (0.1 + 0.2) / 2 = 0.15000000000000002 at 0.3 and (0.3 + 0.0) / 2 = 0.15 at 0.5:
    # equal but for float noise, so a tie, and 0.5 wins. Made-up counts (TP, FP, FN):
    # image 1: Dice 2/20 = 0.1 at 0.3, 6/20 = 0.3 at 0.5; image 2: 2/10 = 0.2, then 0.
    image_1 = np.array([[1, 9, 9], [3, 7, 7]])
    image_2 = np.array([[1, 4, 4], [0, 1, 5]])
    best, curve = select_threshold([image_1, image_2], [0.3, 0.5])
    assert curve[0] > curve[1] and curve[0] == pytest.approx(curve[1])
    assert best == 0.5


def test_an_image_with_one_lesion_pixel_votes():
    # Image 1 (one truth pixel, found only at 0.3) decides against image 2 (no lesion).
    one_pixel = np.array([[1, 0, 0], [0, 0, 1]])  # Dice 1 at 0.3, 0 at 0.5
    normal = np.array([[0, 5, 0], [0, 0, 0]])  # no truth: does not vote
    best, curve = select_threshold([one_pixel, normal], [0.3, 0.5])
    assert best == 0.3 and curve == [1.0, 0.0]


def test_region_limited_counts_default_choices():
    # REGION_CHOICES (1, 2): one and two regions kept. Regions: 0.9 (1 px, on the truth),
    # 0.7 (1 px, off), 0.6 (1 px, on the truth).
    prob = np.array([[0.9, 0.0, 0.7, 0.0, 0.6]])
    truth = np.array([[1, 0, 0, 0, 1]])
    counts = region_limited_counts(prob, truth, [0.5, 0.95])
    assert sorted(counts) == [1, 2]
    # At 0.95 no region: nothing kept, both truth pixels missed.
    assert counts[1].tolist() == [[1, 0, 1], [0, 0, 2]]
    assert counts[2].tolist() == [[1, 1, 1], [0, 0, 2]]
    # The last region in raster order (0.7, ranked second) lies off the truth.
    prob = np.array([[0.9, 0.0, 0.6, 0.0, 0.7]])
    counts = region_limited_counts(prob, np.array([[1, 0, 1, 0, 0]]), [0.5], [1, 2])
    assert counts[1].tolist() == [[1, 0, 1]] and counts[2].tolist() == [[1, 1, 1]]
