import numpy as np
import pytest

from mammoseg.metrics import FROC_FP_RATES, froc, froc_curve
from mammoseg.models.mask_rcnn import evaluate, utils


def _rect(shape, rows, cols):
    m = np.zeros((*shape, 1), bool)
    m[rows[0] : rows[1], cols[0] : cols[1], 0] = True
    return m


# Truth: rows 0-10, columns 0-8. Prediction shifted 2 columns: 60 shared pixels of 100: IoU 0.6.
TRUTH = _rect((10, 12), (0, 10), (0, 8))
SHIFTED = _rect((10, 12), (0, 10), (2, 10))


def _gt(mask):
    return {"masks": mask, "class_ids": np.ones(mask.shape[-1], np.int32)}


def _pred(mask, scores):
    return {
        "masks": mask,
        "class_ids": np.ones(mask.shape[-1], np.int32),
        "scores": np.asarray(scores, np.float32),
    }


def test_perfect_detection_gives_ap_one():
    ap, precisions, recalls, overlaps = utils.compute_ap(
        None, [1], TRUTH, None, [1], [0.9], TRUTH, iou_threshold=0.5
    )
    assert ap == 1.0 and precisions.tolist() == [1.0] and recalls.tolist() == [1.0]
    assert utils.compute_ap_range(None, [1], TRUTH, None, [1], [0.9], TRUTH) == 1.0


def test_iou_06_counts_at_thresholds_up_to_06_only():
    assert utils.compute_overlaps_masks(SHIFTED, TRUTH)[0, 0] == pytest.approx(0.6)
    aps = {
        t: utils.compute_ap(None, [1], TRUTH, None, [1], [0.9], SHIFTED, t)[0]
        for t in utils.IOU_RANGE
    }
    # float32 0.6 (0.60000002) passes matterport's unrounded 0.6000000000000001
    assert [t for t, ap in aps.items() if ap == 1.0] == pytest.approx([0.5, 0.55, 0.6])
    assert all(ap == 0.0 for t, ap in aps.items() if t > 0.61)
    assert utils.compute_ap_range(None, [1], TRUTH, None, [1], [0.9], SHIFTED) == pytest.approx(0.3)


def test_false_positive_first_halves_precision():
    # two predictions: a miss scored higher than the hit -> precision 1/2 at recall 1
    miss = _rect((10, 12), (0, 2), (10, 12))
    preds = np.concatenate([TRUTH, miss], axis=-1)
    ap, precisions, recalls, _ = utils.compute_ap(None, [1], TRUTH, None, [1, 1], [0.5, 0.9], preds)
    assert precisions.tolist() == [0.0, 0.5] and recalls.tolist() == [0.0, 1.0]
    assert ap == 0.5


def test_wrong_class_is_not_a_match():
    ap = utils.compute_ap(None, [1], TRUTH, None, [2], [0.9], TRUTH)[0]
    assert ap == 0.0


def test_image_without_truth_is_nan_and_left_out_of_mean():
    empty = np.zeros((10, 12, 0), bool)
    ap = utils.compute_ap(None, np.zeros(0), empty, None, [1], [0.9], TRUTH)[0]
    assert np.isnan(ap)
    result = evaluate.matterport_map(
        [_gt(TRUTH), _gt(empty)], [_pred(SHIFTED, [0.9]), _pred(TRUTH, [0.9])]
    )
    assert result["map"] == pytest.approx(0.3)
    assert result["n_without_truth"] == 1 and result["n_images"] == 2


def test_no_prediction_gives_zero():
    empty = np.zeros((10, 12, 0), bool)
    assert utils.compute_ap(None, [1], TRUTH, None, np.zeros(0), np.zeros(0), empty)[0] == 0.0


def test_length_mismatch_error():
    with pytest.raises(ValueError, match="same length, received 1 and 0"):
        evaluate.matterport_map([_gt(TRUTH)], [])


def test_coco_and_matterport_on_same_fixture():
    # image A: perfect detection scored 0.8; image B: IoU-0.6 detection scored 0.95.
    gts = [_gt(TRUTH), _gt(TRUTH)]
    preds = [_pred(TRUTH, [0.8]), _pred(SHIFTED, [0.95])]
    # matterport: per-image mean of AP ranges = (1.0 + 0.3) / 2
    assert evaluate.matterport_map(gts, preds)["map"] == pytest.approx(0.65)
    # COCO pools the detections: at IoU <= 0.6 both hit (AP 1); above, the best-scored one is
    # a false positive, so precision is 1/2 up to recall 1/2 (51 of 101 recall points).
    expected = (3 * 1.0 + 7 * 0.5 * 51 / 101) / 10
    segm = evaluate.coco_evaluate(gts, preds, "segm")
    assert segm["AP"] == pytest.approx(expected, abs=1e-6)
    assert segm["AP50"] == pytest.approx(1.0)
    bbox = evaluate.coco_evaluate(gts, preds, "bbox")
    assert bbox["AP50"] == pytest.approx(1.0)


def test_coco_unknown_iou_type():
    with pytest.raises(ValueError, match="`iou_type` must be 'segm' or 'bbox', received 'mask'"):
        evaluate.coco_evaluate([], [], "mask")


def _froc_curve(gts, preds, min_iou=0.5):
    return froc_curve(*evaluate.froc_inputs(gts, preds), min_iou=min_iou)


def test_froc_hand_values():
    miss = _rect((10, 12), (0, 2), (10, 12))
    gts = [_gt(TRUTH), _gt(TRUTH)]
    preds = [_pred(np.concatenate([TRUTH, miss], -1), [0.9, 0.8]), _pred(miss, [0.7])]
    # sorted scores 0.9 (hit), 0.8 (fp), 0.7 (fp): sensitivity .5, .5, .5 (two lesions)
    fppi, sensitivity, thresholds = _froc_curve(gts, preds)
    np.testing.assert_allclose(sensitivity, [0.5, 0.5, 0.5])
    np.testing.assert_allclose(fppi, [0, 0.5, 1.0])
    np.testing.assert_allclose(thresholds, [0.9, 0.8, 0.7])
    at_rates = froc(*evaluate.froc_inputs(gts, preds), min_iou=0.5)
    assert at_rates == dict.fromkeys(FROC_FP_RATES, 0.5)


def test_froc_tied_scores_enter_together_in_any_order():
    # One hit and one false positive with the same score 0.8 on image 1, a false positive at
    # 0.6 on image 2. Stepping through the tie one detection at a time (the old Mask R-CNN
    # FROC) reported (0 FP, sensitivity 1.0) or (0.5 FP, 0.0) depending on the order: points no
    # threshold reaches. At t = 0.8 both are kept: 0.5 FP per image, sensitivity 1.0.
    miss = _rect((10, 12), (0, 2), (10, 12))
    gts = [_gt(TRUTH), _gt(np.zeros(TRUTH.shape[:2] + (0,), bool))]
    for order in ([0, 1], [1, 0]):
        masks = np.concatenate([TRUTH, miss], -1)[..., order]
        preds = [_pred(masks, np.array([0.8, 0.8])[order]), _pred(miss, [0.6])]
        fppi, sensitivity, thresholds = _froc_curve(gts, preds)
        np.testing.assert_allclose(fppi, [0.5, 1.0])
        np.testing.assert_allclose(sensitivity, [1.0, 1.0])
        np.testing.assert_allclose(thresholds, [0.8, 0.6])
        at_rates = froc(*evaluate.froc_inputs(gts, preds), (0.25, 0.5), min_iou=0.5)
        assert at_rates == {0.25: 0.0, 0.5: 1.0}


def test_froc_second_hit_on_a_found_lesion_is_no_false_positive():
    gts = [_gt(TRUTH)]
    preds = [_pred(np.concatenate([TRUTH, TRUTH], -1), [0.9, 0.4])]
    # one operating point: the lesion at its best score 0.9, no false positive (the 0.4 is none)
    fppi, sensitivity, thresholds = _froc_curve(gts, preds)
    assert (fppi.tolist(), sensitivity.tolist()) == ([0.0], [1.0])
    np.testing.assert_allclose(thresholds, [0.9])  # float32 scores
    assert froc(*evaluate.froc_inputs(gts, preds), min_iou=0.5) == dict.fromkeys(FROC_FP_RATES, 1.0)


def test_froc_hit_needs_a_mask_iou_of_min_iou():
    # SHIFTED overlaps TRUTH with IoU 0.6; a 2x2 corner of it, IoU 4/80 = 0.05.
    corner = _rect((10, 12), (0, 2), (0, 2))
    gts = [_gt(TRUTH)]
    for mask, min_iou, hit in [
        (SHIFTED, 0.5, True),
        (SHIFTED, 0.6, True),  # exactly 60/100: a hit (float64 IoU, no float32 rounding)
        (SHIFTED, 0.7, False),
        (corner, 0.5, False),
        (corner, None, True),  # the pixel rule of the segmentation recipe: one shared pixel
    ]:
        _, sensitivity, _ = _froc_curve(gts, [_pred(mask, [0.9])], min_iou=min_iou)
        assert sensitivity.tolist() == [1.0 if hit else 0.0], (min_iou, hit)


def test_froc_inputs_hand_checked():
    miss = _rect((10, 12), (0, 2), (10, 12))
    gts = [_gt(np.concatenate([TRUTH, miss], -1)), _gt(np.zeros((10, 12, 0), bool))]
    preds = [_pred(miss, [0.7]), _pred(np.zeros((10, 12, 0), bool), [])]
    y_true, y_pred = evaluate.froc_inputs(gts, preds)
    assert [len(t) for t in y_true] == [2, 0] and [len(p) for p in y_pred] == [1, 0]
    np.testing.assert_array_equal(y_true[0][1], miss[..., 0])
    (region,) = y_pred[0]
    # rows 0-1, columns 10-11: 4 pixels, centroid (0.5, 10.5)
    assert (region.score, region.area, region.centroid) == (pytest.approx(0.7), 4, (0.5, 10.5))


def test_froc_needs_one_prediction_per_image():
    with pytest.raises(
        ValueError, match="`gts` and `preds` must have the same length, received 1 and 0"
    ):
        evaluate.froc_inputs([_gt(TRUTH)], [])
    with pytest.raises(ValueError, match="`y_true` and `y_pred` must hold one entry per image"):
        froc(*evaluate.froc_inputs([], []), min_iou=0.5)


def test_precision_recall_curve_pooled():
    gts = [_gt(TRUTH), _gt(TRUTH)]
    preds = [_pred(TRUTH, [0.8]), _pred(SHIFTED, [0.95])]
    precision, recall = evaluate.precision_recall_curve(gts, preds, 0.7)
    np.testing.assert_allclose(precision, [0.0, 0.5])
    np.testing.assert_allclose(recall, [0.0, 0.5])


def test_coco_no_detections_is_undefined():
    # pycocotools' stats are -1 when there is nothing to measure; the old code returned 0.0.
    gts = [_gt(TRUTH)]
    preds = [_pred(np.zeros(TRUTH.shape[:2] + (0,), bool), [])]
    stats = evaluate.coco_evaluate(gts, preds)
    assert set(stats.values()) == {-1.0}


def _instances(shape, boxes):
    """Masks [H, W, N], one rectangle ((row0, row1), (col0, col1)) per instance."""
    return np.concatenate([_rect(shape, rows, cols) for rows, cols in boxes], axis=-1)


def test_compute_ap_interpolates_a_non_monotone_curve():
    # Three truths A, B, C; five predictions, by score: A, a miss, a miss, B, C.
    # precision 1, 1/2, 1/3, 1/2, 3/5 at recall 1/3, 1/3, 1/3, 2/3, 1.
    # All-point interpolation (precision at r = the best at any recall >= r): 1, 0.6, 0.6 on the
    # three recall steps of 1/3: AP = (1 + 0.6 + 0.6) / 3 = 0.7333.
    # Without it (the precision where each step is reached: 1, 1/2, 3/5): (1 + 0.5 + 0.6) / 3 = 0.7.
    shape = (10, 13)
    a, b, c = ((0, 4), (0, 4)), ((0, 4), (5, 9)), ((6, 10), (0, 5))
    misses = [((6, 10), (6, 9)), ((6, 10), (10, 13))]
    truth = _instances(shape, [a, b, c])
    preds = _instances(shape, [a, *misses, b, c])
    scores = [0.9, 0.8, 0.7, 0.6, 0.5]
    ap, precisions, recalls, _ = utils.compute_ap(
        None, [1, 1, 1], truth, None, [1] * 5, scores, preds
    )
    np.testing.assert_allclose(precisions, [1, 1 / 2, 1 / 3, 1 / 2, 3 / 5])
    np.testing.assert_allclose(recalls, [1 / 3, 1 / 3, 1 / 3, 2 / 3, 1])
    assert ap == pytest.approx(2.2 / 3)
    assert ap != pytest.approx(2.1 / 3)  # the uninterpolated area
    # The predictions in another order give the same curve: scores, not positions, rank them.
    order = [4, 2, 0, 3, 1]
    again = utils.compute_ap(
        None, [1, 1, 1], truth, None, [1] * 5, np.take(scores, order), preds[..., order]
    )
    assert again[0] == pytest.approx(2.2 / 3)


def test_compute_ap_interpolation_lifts_an_early_miss():
    # Two truths; a miss scored first, then both hits: precision 0, 1/2, 2/3 at recall 0, 1/2, 1.
    # Interpolated: 2/3 on both recall steps -> AP 2/3; uninterpolated 0.5 · 1/2 + 0.5 · 2/3.
    shape = (10, 13)
    a, b, miss = ((0, 4), (0, 4)), ((0, 4), (5, 9)), ((6, 10), (0, 5))
    truth = _instances(shape, [a, b])
    preds = _instances(shape, [miss, a, b])
    ap, precisions, recalls, _ = utils.compute_ap(
        None, [1, 1], truth, None, [1, 1, 1], [0.9, 0.8, 0.7], preds
    )
    np.testing.assert_allclose(precisions, [0, 1 / 2, 2 / 3])
    np.testing.assert_allclose(recalls, [0, 1 / 2, 1])
    assert ap == pytest.approx(2 / 3)
    assert ap != pytest.approx(0.5 / 2 + (2 / 3) / 2)


def test_compute_ap_drops_zero_padded_truths():
    # matterport pads the truth to a fixed count with all-zero boxes (and empty masks): the
    # padding is no instance. One real truth, found: AP 1 (with the padding counted, 0.5).
    truth = np.concatenate([TRUTH, np.zeros_like(TRUTH)], axis=-1)
    boxes = np.array([[0, 0, 10, 8], [0, 0, 0, 0]])
    ap, precisions, recalls, _ = utils.compute_ap(
        boxes, [1, 0], truth, None, [1], [0.9], truth[..., :1]
    )
    assert ap == 1.0 and precisions.tolist() == [1.0] and recalls.tolist() == [1.0]


def test_a_second_detection_of_one_truth_is_a_false_positive():
    # Two predictions on the same truth: the better-scored one matches (prediction 0), the
    # other is a false positive: precision 1, 1/2 at recall 1, 1.
    preds = np.concatenate([TRUTH, TRUTH], axis=-1)
    ap, precisions, recalls, _ = utils.compute_ap(None, [1], TRUTH, None, [1, 1], [0.9, 0.8], preds)
    assert precisions.tolist() == [1.0, 0.5] and recalls.tolist() == [1.0, 1.0]
    assert ap == 1.0


def test_precision_recall_curve_without_truth():
    # No truth anywhere: recall 0 (not 0/0), precision 0.
    empty = np.zeros((10, 12, 0), bool)
    precision, recall = evaluate.precision_recall_curve([_gt(empty)], [_pred(TRUTH, [0.9])])
    assert precision.tolist() == [0.0] and recall.tolist() == [0.0]


# Truth: 20 pixels (rows 0-4, columns 0-5). A prediction inside it with 13 or 19 of them has a
# mask IoU of exactly 13/20 = 0.65 or 19/20 = 0.95.
TRUTH20 = _rect((10, 12), (0, 4), (0, 5))


def _inside_truth20(n_pixels: int) -> np.ndarray:
    mask = np.zeros_like(TRUTH20)
    rows, cols = np.nonzero(TRUTH20[..., 0])
    mask[rows[:n_pixels], cols[:n_pixels], 0] = True
    return mask


def test_thresholds_are_matterports_unrounded_arange():
    np.testing.assert_array_equal(utils.IOU_RANGE, np.arange(0.5, 1.0, 0.05))
    assert utils.IOU_RANGE[3] == 0.6500000000000001 and utils.IOU_RANGE[9] > 0.95


@pytest.mark.parametrize(
    "n_pixels, iou32, passed",
    [
        # float32(0.65) = 0.64999998 < 0.6500000000000001: passes 0.50, 0.55, 0.60 only
        (13, 0.6499999761581421, 3),
        # float32(0.95) = 0.94999999 < 0.9500000000000003: passes 0.50 ... 0.90, nine of ten
        (19, 0.949999988079071, 9),
    ],
)
def test_iou_exactly_on_a_threshold_scores_as_matterport(n_pixels, iou32, passed):
    pred = _inside_truth20(n_pixels)
    overlaps = utils.compute_overlaps_masks(pred, TRUTH20)
    assert overlaps.dtype == np.float32 and float(overlaps[0, 0]) == iou32
    aps = [
        utils.compute_ap(None, [1], TRUTH20, None, [1], [0.9], pred, float(t))[0]
        for t in utils.IOU_RANGE
    ]
    assert aps == [1.0] * passed + [0.0] * (10 - passed)
    ap_range = utils.compute_ap_range(None, [1], TRUTH20, None, [1], [0.9], pred)
    assert ap_range == pytest.approx(passed / 10, abs=1e-12)
    # the plain Python threshold 0.65 (or 0.95) fails too, as in matterport
    assert utils.compute_ap(None, [1], TRUTH20, None, [1], [0.9], pred, n_pixels / 20)[0] == 0


def test_recall_is_float32_as_matterports():
    # three truths, one found: matterport's recall is float32(1/3), AP = 0.3333333432674408
    truths = np.concatenate(
        [TRUTH20, _rect((10, 12), (6, 8), (0, 2)), _rect((10, 12), (6, 8), (8, 10))], axis=-1
    )
    ap, _, recalls, _ = utils.compute_ap(None, [1, 1, 1], truths, None, [1], [0.9], TRUTH20, 0.5)
    assert ap == float(np.float32(1 / 3)) and ap != 1 / 3
    assert recalls.tolist() == [float(np.float32(1 / 3))]


@pytest.mark.parametrize("hit_first, expected", [(True, 1.0), (False, 0.5)])
def test_tied_scores_keep_their_input_order(hit_first, expected):
    # A hit and a miss with the same score: the one given first is ranked first (stable order;
    # matterport's unstable argsort may rank either first).
    miss = _rect((10, 12), (8, 10), (10, 12))
    masks = [TRUTH20, miss] if hit_first else [miss, TRUTH20]
    ap, precisions, _, _ = utils.compute_ap(
        None, [1], TRUTH20, None, [1, 1], [0.7, 0.7], np.concatenate(masks, axis=-1)
    )
    assert ap == expected
    assert precisions.tolist() == ([1.0, 0.5] if hit_first else [0.0, 0.5])
