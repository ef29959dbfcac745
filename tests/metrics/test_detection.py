"""FROC: mammoseg's step definition and MONAI's interpolated one, on hand-computed cases."""

import numpy as np
import pytest

from mammoseg.data import Lesion
from mammoseg.metrics import FROC_METHODS, froc, froc_at_rates

RATES = (0.25, 0.5, 0.75, 1.0, 2.0)


def test_a_missed_lesion_step_versus_monai():
    # Three lesions (the second missed), three false positives, two images.
    # Operating points (threshold: FPPI, sensitivity): 0.9: 0, 1/3; 0.7: 0.5, 1/3;
    # 0.5: 1.0, 2/3; 0.2: 1.5, 2/3. MONAI uses every one of them (the missed lesion's 0 is the
    # lowest score it drops) plus (0, 0), and interpolates: at 0.75 FPPI halfway, 0.5.
    hits, fps = [0.9, np.nan, 0.5], [0.7, 0.5, 0.2]
    step = froc_at_rates(hits, fps, 2, RATES)
    monai = froc_at_rates(hits, fps, 2, RATES, method="monai")
    np.testing.assert_allclose(list(step.values()), [1 / 3, 1 / 3, 1 / 3, 2 / 3, 2 / 3])
    np.testing.assert_allclose(list(monai.values()), [1 / 3, 1 / 3, 0.5, 2 / 3, 2 / 3])
    assert list(monai) == list(RATES)


def test_monai_never_uses_the_lowest_score():
    # Both lesions found; the lowest score (0.4, the second lesion) is no MONAI operating point,
    # so its sensitivity stays at 0.5 where the step curve reaches 1.0 at 1 FPPI.
    hits, fps = [0.9, 0.4], [0.6]
    assert froc_at_rates(hits, fps, 1, (1.0, 2.0)) == {1.0: 1.0, 2.0: 1.0}
    assert froc_at_rates(hits, fps, 1, (1.0, 2.0), method="monai") == {1.0: 0.5, 2.0: 0.5}


def test_froc_passes_the_method_on():
    truth = [[Lesion("mass", "malignant", (4, 4), 2.0)], []]
    strong = np.zeros((16, 16), np.float32)
    strong[3:6, 3:6] = 0.9  # a hit on image 0
    weak = np.zeros((16, 16), np.float32)
    weak[10:12, 10:12] = 0.6  # a false positive on image 1
    step = froc(truth, [strong, weak], (0.5,), 0.5)
    monai = froc(truth, [strong, weak], (0.5,), 0.5, method="monai")
    assert step == {0.5: 1.0}
    # MONAI: scores {0.6, 0.9}, the lowest dropped: one point (0 FPPI, 1.0) and (0, 0).
    assert monai == {0.5: 1.0}


def test_without_lesions_both_are_nan():
    for method in FROC_METHODS:
        got = froc_at_rates([], [0.5], 1, (1.0,), method=method)
        assert np.isnan(got[1.0])


def test_unknown_method_is_named():
    with pytest.raises(ValueError, match=r"`method` must be one of \('step', 'monai'\).*'monia'"):
        froc_at_rates([0.5], [], 1, method="monia")


def test_regions_agree_with_scipy_on_random_maps():
    # regionprops gives the geometry; scipy.ndimage computes it another way here.
    from scipy import ndimage

    from mammoseg.metrics import regions_from_probability

    rng = np.random.default_rng(3)
    for _ in range(5):
        prob = ndimage.uniform_filter(rng.random((40, 50)), 5)
        regions = regions_from_probability(prob, threshold=0.55, min_area=2)
        labels, count = ndimage.label(prob >= 0.55, structure=np.ones((3, 3)))
        index = [i for i in range(1, count + 1) if (labels == i).sum() >= 2]
        assert len(regions) == len(index) > 0
        by_score = sorted(index, key=lambda i: -ndimage.maximum(prob, labels, i))
        for region, i in zip(regions, by_score):
            assert region.score == ndimage.maximum(prob, labels, i)
            assert region.area == (labels == i).sum()
            np.testing.assert_allclose(region.centroid, ndimage.center_of_mass(labels == i))
            np.testing.assert_array_equal(region.coords, np.argwhere(labels == i))


def test_circle_hit_test_uses_row_then_column():
    # A lesion at (row 5, col 20) of a non-square image: a region there hits it, the region at
    # the transposed place (row 20, col 5) is a false positive. Swapping row and column in the
    # hit test swaps the two.
    from mammoseg.metrics import match_lesions

    prob = np.zeros((24, 32))
    prob[4:7, 19:22] = 0.9  # centroid (5, 20)
    prob[20, 5] = 0.7
    truth = [Lesion("mass", center=(5.0, 20.0), radius=3.0)]
    match = match_lesions(truth, prob)
    assert match.hit_scores.tolist() == [0.9]
    assert match.false_positive_scores.tolist() == [0.7]


def test_circle_edge_is_inside():
    # Centroid exactly `radius` away (3 rows, 4 columns: distance 5) counts as a hit.
    from mammoseg.metrics import match_lesions

    prob = np.zeros((16, 20))
    prob[8, 12] = 0.8
    assert match_lesions([Lesion("mass", center=(5.0, 8.0), radius=5.0)], prob).hits.tolist() == [
        True
    ]
    assert match_lesions([Lesion("mass", center=(5.0, 8.0), radius=4.9)], prob).hits.tolist() == [
        False
    ]


def test_a_probability_exactly_at_the_threshold_makes_a_region():
    from mammoseg.metrics import match_lesions, regions_from_probability

    prob = np.zeros((6, 8))
    prob[1, 1] = 0.5  # at the threshold: in
    prob[4, 6] = 0.49  # below: out
    regions = regions_from_probability(prob, threshold=0.5)
    assert [(r.score, r.centroid, r.area) for r in regions] == [(0.5, (1.0, 1.0), 1)]
    assert match_lesions(None, prob, threshold=0.5).false_positive_scores.tolist() == [0.5]
    assert len(regions_from_probability(prob, threshold=0.49)) == 2


def test_mask_lesion_hit_needs_a_shared_pixel():
    # A region touching the mask's corner diagonally shares no pixel: a false positive.
    from mammoseg.metrics import match_lesions

    mask = np.zeros((10, 12), bool)
    mask[2:4, 2:4] = True
    prob = np.zeros((10, 12))
    prob[4, 4] = 0.6  # diagonal neighbour of (3, 3), outside the mask
    prob[3, 8:10] = 0.9  # right of the mask, same rows
    match = match_lesions([mask], prob)
    assert match.hit_scores.size == 1 and np.isnan(match.hit_scores[0])
    assert sorted(match.false_positive_scores.tolist()) == [0.6, 0.9]
    prob[3, 3] = 0.7  # now overlapping (and joined with (4, 4) by 8-connectivity)
    match = match_lesions([mask], prob)
    assert match.hit_scores.tolist() == [0.7] and match.false_positive_scores.tolist() == [0.9]


def test_region_defaults_channel_axis_and_min_area_boundary():
    from mammoseg.metrics import regions_from_probability

    prob = np.zeros((6, 8))
    prob[1, 1:3] = 0.6  # area 2
    prob[4, 6] = 0.3  # below the default threshold 0.5
    regions = regions_from_probability(prob)
    assert [(r.score, r.area, r.centroid) for r in regions] == [(0.6, 2, (1.0, 1.5))]
    # (H, W, 1) is the same map.
    again = regions_from_probability(prob[..., None])
    assert [(r.score, r.area, r.centroid) for r in again] == [(0.6, 2, (1.0, 1.5))]
    # min_area keeps a region of exactly that area.
    assert [r.area for r in regions_from_probability(prob, 0.5, min_area=2)] == [2]
    assert regions_from_probability(prob, 0.5, min_area=3) == []


def test_mask_hit_looks_up_row_then_column_and_ignores_pixels_beyond_the_mask():
    from mammoseg.metrics import match_lesions

    # A lesion mask at rows 1-2, columns 10-12 of a non-square image: (2, 11) is on it.
    mask = np.zeros((6, 16), bool)
    mask[1:3, 10:13] = True
    prob = np.zeros((6, 16))
    prob[2, 11] = 0.8
    prob[4, 2] = 0.6  # off the lesion, and (2, 4) transposed is off it too
    match = match_lesions([mask], prob)
    assert match.hit_scores.tolist() == [0.8] and match.false_positive_scores.tolist() == [0.6]
    # A mask smaller than the map: the region's pixels beyond it are not in the lesion.
    small = np.zeros((4, 8), bool)
    small[0:2, 0:2] = True
    prob = np.zeros((10, 12))
    prob[6, 2] = 0.7  # below the mask's last row, within its columns
    prob[1, 9:12] = 0.9  # right of the mask's last column, within its rows
    prob[1, 1] = 0.5  # on the mask
    match = match_lesions([small], prob)
    assert match.hit_scores.tolist() == [0.5]
    assert sorted(match.false_positive_scores.tolist()) == [0.7, 0.9]


def test_sensitivity_at_rates_without_lesions_is_nan_even_with_one_point():
    from mammoseg.metrics import sensitivity_at_rates

    # One operating point, NaN sensitivity (no lesion), 2 FP per image: NaN at every rate,
    # also where no operating point qualifies (rate 1 < 2).
    got = sensitivity_at_rates(np.array([2.0]), np.array([np.nan]), (1.0, 4.0))
    assert list(got) == [1.0, 4.0] and all(np.isnan(v) for v in got.values())
    # With a lesion, a rate below every operating point gives 0.
    assert sensitivity_at_rates(np.array([2.0]), np.array([1.0]), (1.0, 4.0)) == {
        1.0: 0.0,
        4.0: 1.0,
    }


def test_froc_regions_at_0_5_by_default():
    # One image, one lesion. A 0.9 hit and a 0.3 false positive: by default (0.5) the 0.3 pixel
    # makes no region, at 0.25 it does.
    from mammoseg.metrics import froc, froc_curve, lesion_sensitivity_at_fppi

    prob = np.zeros((12, 20))
    prob[2:5, 14:17] = 0.9  # centroid (3, 15)
    prob[9, 3] = 0.3
    truth = [[Lesion("mass", center=(3.0, 15.0), radius=2.0)]]
    fppi, sens, thresholds = froc_curve(truth, [prob])
    assert fppi.tolist() == [0.0] and sens.tolist() == [1.0] and thresholds.tolist() == [0.9]
    fppi, _, thresholds = froc_curve(truth, [prob], 0.25)
    assert fppi.tolist() == [0.0, 1.0] and thresholds.tolist() == [0.9, 0.3]
    # A lesion seen at 0.4 only: missed at 0.5, found at 0.25.
    prob[2:5, 14:17] = 0.4
    assert froc(truth, [prob], (0.5,)) == {0.5: 0.0}
    assert froc(truth, [prob], (0.5,), 0.25) == {0.5: 1.0}  # 0.4 beats the 0.3 FP: 0 FPPI
    assert lesion_sensitivity_at_fppi(truth, [prob]) == 0.0
    assert lesion_sensitivity_at_fppi(truth, [prob], threshold=0.25) == 1.0


def _one_hit_one_false_positive():
    # Image 0: a lesion at (4, 4) hit at 0.9; image 1: normal, a false positive at 0.6.
    truth = [[Lesion("mass", center=(4.0, 4.0), radius=2.0)], None]
    hit = np.zeros((16, 16))
    hit[3:6, 3:6] = 0.9
    false_positive = np.zeros((16, 16))
    false_positive[10:12, 10:12] = 0.6
    return truth, [hit, false_positive]


def test_truth_first_keywords_in_any_order():
    from mammoseg.metrics import froc_curve, lesion_sensitivity_at_fppi, match_lesions

    truth, probs = _one_hit_one_false_positive()
    expected = {0.25: 1.0, 0.5: 1.0, 1.0: 1.0}
    assert froc(truth, probs, (0.25, 0.5, 1.0)) == expected
    assert froc(y_pred=probs, y_true=truth, fp_rates=(0.25, 0.5, 1.0)) == expected
    fppi, sens, _ = froc_curve(y_pred=probs, y_true=truth)
    assert fppi.tolist() == [0.0, 0.5] and sens.tolist() == [1.0, 1.0]
    assert lesion_sensitivity_at_fppi(y_pred=probs, y_true=truth, fppi=0.25) == 1.0
    match = match_lesions(y_pred=probs[0], y_true=truth[0])
    assert match.hit_scores.tolist() == [0.9] and match.false_positive_scores.size == 0


def test_swapped_detection_arguments_are_refused_with_a_hint():
    from mammoseg.metrics import match_lesions, regions_from_probability

    truth, probs = _one_hit_one_false_positive()
    with pytest.raises(TypeError, match=r"`y_pred` must be .* holding Lesion\(.*truth comes first"):
        froc(probs, truth)
    regions = regions_from_probability(probs[0])
    with pytest.raises(
        TypeError, match=r"received a Region \(score 0.9, area 9\); the truth comes first"
    ):
        match_lesions(regions, truth[0])
    with pytest.raises(TypeError, match=r"holding an array of shape \(16, 16\).*truth comes first"):
        match_lesions(None, [probs[0]])


def test_min_iou_hit_rule():
    from mammoseg.metrics import match_lesions

    # Lesion: rows 0-3, columns 0-4 (20 pixels). Region: rows 0-3, columns 2-6 (20 pixels),
    # 12 shared: IoU 12 / 28 = 0.43. A shared pixel is a hit; an IoU of 0.4 is, 0.5 is not.
    mask = np.zeros((8, 10), bool)
    mask[0:4, 0:5] = True
    prob = np.zeros((8, 10))
    prob[0:4, 2:7] = 0.8
    assert match_lesions([mask], prob).hit_scores.tolist() == [0.8]
    assert match_lesions([mask], prob, min_iou=0.4).hit_scores.tolist() == [0.8]
    missed = match_lesions([mask], prob, min_iou=0.5)
    assert np.isnan(missed.hit_scores[0]) and missed.false_positive_scores.tolist() == [0.8]
    assert match_lesions([mask], prob, min_iou=12 / 28).hits.tolist() == [True]  # the edge is in
    # A truth mask whose components are the lesions works the same way.
    assert match_lesions(mask, prob, min_iou=0.5).hits.tolist() == [False]
    assert froc([[mask]], [prob], (1.0,), min_iou=0.4) == {1.0: 1.0}
    assert froc([[mask]], [prob], (1.0,), min_iou=0.5) == {1.0: 0.0}


@pytest.mark.parametrize(
    "min_iou, message",
    [
        (0, r"`min_iou` must be above 0 \(None: a shared pixel\), received 0"),
        (1.5, r"`min_iou` must be a number in \[0, 1\], received 1.5"),
        ("0.5", r"`min_iou` must be a number in \[0, 1\], received '0.5'"),
    ],
)
def test_invalid_min_iou_is_named(min_iou, message):
    with pytest.raises(ValueError, match=message):
        froc([None], [np.zeros((4, 4))], min_iou=min_iou)


def test_min_iou_needs_lesion_masks():
    truth, probs = _one_hit_one_false_positive()
    with pytest.raises(ValueError, match="`min_iou` needs each lesion's mask, received the circle"):
        froc(truth, probs, min_iou=0.5)


@pytest.mark.parametrize(
    "name", ["match_lesions", "froc", "froc_curve", "lesion_sensitivity_at_fppi"]
)
def test_every_detection_metric_takes_y_true_then_y_pred(name):
    import inspect

    from mammoseg import metrics

    assert list(inspect.signature(getattr(metrics, name)).parameters)[:2] == ["y_true", "y_pred"]
