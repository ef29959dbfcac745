"""Metrics against hand-computed cases."""

import math

import keras
import numpy as np
import pytest

from mammoseg import metrics as M
from mammoseg.data.records import Lesion

# A: TP 2, FP 2, FN 1, TN 4 | B: both empty (TN 9) | C: lesion missed (FN 1) | D: FP 1 on a normal.
TRUTH_A = np.array([[1, 1, 0], [0, 1, 0], [0, 0, 0]])
PRED_A = np.array([[1, 1, 1], [0, 0, 0], [0, 0, 1]])
ZERO = np.zeros((3, 3), int)
DOT = np.array([[0, 0, 0], [0, 1, 0], [0, 0, 0]])
PREDS = np.stack([PRED_A, ZERO, ZERO, DOT])
TRUTHS = np.stack([TRUTH_A, ZERO, DOT, ZERO])
NAN = float("nan")


def test_confusion_counts_hand_computed():
    c = M.confusion_counts(TRUTHS, PREDS)
    np.testing.assert_array_equal(c.tp, [2, 0, 0, 0])
    np.testing.assert_array_equal(c.fp, [2, 0, 0, 1])
    np.testing.assert_array_equal(c.fn, [1, 0, 1, 0])
    np.testing.assert_array_equal(c.tn, [4, 9, 8, 8])


def test_dice_per_image_pooled_and_mean():
    np.testing.assert_allclose(M.dice_per_image(TRUTHS, PREDS), [4 / 7, NAN, 0, NAN])
    np.testing.assert_allclose(
        M.dice_per_image(TRUTHS, PREDS, ignore_empty=False), [4 / 7, 1, 0, 0]
    )
    # pooled: TP 2, FP 3, FN 2 -> 4 / 9
    assert M.dice_pooled(TRUTHS, PREDS) == pytest.approx(4 / 9)
    assert M.dice_score(TRUTHS, PREDS, reduction="mean") == pytest.approx(2 / 7)
    assert math.isnan(M.dice_pooled(ZERO, ZERO))


def test_foreground_iou_and_mean_iou_both_classes():
    np.testing.assert_allclose(
        M.foreground_iou(TRUTHS, PREDS, reduction="per_image"), [2 / 5, NAN, 0, NAN]
    )
    assert M.foreground_iou(TRUTHS, PREDS) == pytest.approx(2 / 7)
    per_image = M.mean_iou_both_classes(TRUTHS, PREDS, reduction="per_image")
    np.testing.assert_allclose(per_image, [(2 / 5 + 4 / 7) / 2, 1.0, 4 / 9, 4 / 9])
    # pooled: tumour IoU 2/7, background IoU 29/34
    assert M.mean_iou_both_classes(TRUTHS, PREDS) == pytest.approx((2 / 7 + 29 / 34) / 2)
    # The paper's trap: predicting nothing on a 1%-lesion image scores about 0.5.
    truth = np.zeros((10, 10), int)
    truth[0, 0] = 1
    assert M.mean_iou_both_classes(truth, np.zeros((10, 10))) == pytest.approx(99 / 100 / 2)


def test_sensitivity_specificity_and_empty_rate():
    np.testing.assert_allclose(
        M.sensitivity(TRUTHS, PREDS, reduction="per_image"), [2 / 3, NAN, 0, NAN]
    )
    assert M.sensitivity(TRUTHS, PREDS) == pytest.approx(2 / 4)
    np.testing.assert_allclose(
        M.specificity(TRUTHS, PREDS, reduction="per_image"), [4 / 6, 1, 1, 8 / 9]
    )
    assert M.specificity(TRUTHS, PREDS) == pytest.approx(29 / 32)
    assert M.empty_prediction_rate(TRUTHS, PREDS) == 0.5  # of A and C, C is empty
    assert math.isnan(M.empty_prediction_rate(ZERO, ZERO))


def test_probabilities_threshold_and_lists_of_sizes():
    probs = [PRED_A * 0.6, np.full((2, 4, 1), 0.4)]
    truths = [TRUTH_A, np.ones((2, 4))]
    np.testing.assert_allclose(M.dice_per_image(truths, probs), [4 / 7, 0.0])
    np.testing.assert_allclose(M.dice_per_image(truths, probs, threshold=0.3), [4 / 7, 1.0])


def test_overlap_metric_errors():
    with pytest.raises(ValueError, match="`reduction` must be one of .*received 'sum'"):
        M.dice_score(TRUTHS, PREDS, reduction="sum")
    with pytest.raises(ValueError, match="same number of masks, received 1 and 4"):
        M.dice_score(TRUTH_A, PREDS)
    with pytest.raises(
        ValueError, match=r"image 0: `y_true` has shape \(2, 2\) but `y_pred` \(3, 3\)"
    ):
        M.dice_score(np.zeros((2, 2)), PRED_A)
    with pytest.raises(ValueError, match=r"`y_true` must be \(H, W\), .* received shape"):
        M.dice_score(np.zeros((1, 2, 2, 3)), np.zeros((1, 2, 2, 3)))


def test_regions_from_probability():
    prob = np.zeros((6, 6))
    prob[0:2, 0:2] = [[0.6, 0.7], [0.55, 0.9]]
    prob[4, 4] = prob[5, 5] = 0.8  # diagonal neighbours: one region (8-connectivity)
    regions = M.regions_from_probability(prob, threshold=0.5)
    assert [r.score for r in regions] == [0.9, 0.8]
    assert regions[0].area == 4 and regions[0].centroid == (0.5, 0.5)
    assert regions[1].area == 2 and regions[1].centroid == (4.5, 4.5)
    assert len(M.regions_from_probability(prob, threshold=0.5, min_area=3)) == 1
    with pytest.raises(ValueError, match=r"`probability` must be \(H, W\) or \(H, W, 1\)"):
        M.regions_from_probability(np.zeros((2, 2, 2)))


def _detection_case():
    circle = Lesion("mass", center=(5.0, 5.0), radius=3.0)
    p1 = np.zeros((20, 20))
    p1[4:7, 4:7] = 0.9  # centroid (5, 5): inside the circle
    p1[15, 15] = 0.7  # false positive
    mask = np.zeros((20, 20), bool)
    mask[10:12, 10:12] = True
    p2 = np.zeros((20, 20))
    p2[11:13, 11:13] = 0.6  # overlaps the mask at (11, 11)
    p2[0, 0] = 0.8
    p2[0, 19] = 0.3
    p3 = np.zeros((20, 20))
    p3[5, 5] = 0.95  # normal image
    return [p1, p2, p3], [[circle], mask, None]


def test_match_lesions_circle_and_mask():
    probs, truths = _detection_case()
    m1 = M.match_lesions(truths[0], probs[0])
    np.testing.assert_array_equal(m1.hit_scores, [0.9])
    np.testing.assert_array_equal(m1.false_positive_scores, [0.7])
    m2 = M.match_lesions(truths[1], probs[1], threshold=0.25)
    np.testing.assert_array_equal(m2.hit_scores, [0.6])
    np.testing.assert_array_equal(sorted(m2.false_positive_scores), [0.3, 0.8])
    m3 = M.match_lesions(None, probs[2])
    assert m3.hit_scores.size == 0 and list(m3.false_positive_scores) == [0.95]


def test_match_lesions_several_regions_on_one_lesion_and_missed():
    truth = [Lesion("mass", center=(10.0, 10.0), radius=5.0), np.eye(20, dtype=bool) * 0]
    prob = np.zeros((20, 20))
    prob[8, 8] = 0.5
    prob[12, 12] = 0.7
    m = M.match_lesions(truth, prob)
    np.testing.assert_array_equal(m.hit_scores, [0.7, NAN])
    np.testing.assert_array_equal(m.hits, [True, False])
    assert m.false_positive_scores.size == 0  # the second region is not a false positive


def test_froc_hand_computed():
    probs, truths = _detection_case()
    # Lesions: 0.9, 0.6. False positives: 0.95, 0.8, 0.7, 0.3 over 3 images.
    fppi, sens, thresholds = M.froc_curve(truths, probs, threshold=0.25)
    np.testing.assert_allclose(thresholds, [0.95, 0.9, 0.8, 0.7, 0.6, 0.3])
    np.testing.assert_allclose(fppi, [1 / 3, 1 / 3, 2 / 3, 1, 1, 4 / 3])
    np.testing.assert_allclose(sens, [0, 0.5, 0.5, 0.5, 1, 1])
    got = M.froc(truths, probs, threshold=0.25)
    assert got == {0.25: 0.0, 0.5: 0.5, 1.0: 1.0, 2.0: 1.0, 4.0: 1.0, 8.0: 1.0}
    assert M.lesion_sensitivity_at_fppi(truths, probs, fppi=0.5, threshold=0.25) == 0.5
    # Scored regions work as candidates too.
    regions = [M.regions_from_probability(p, 0.25) for p in probs]
    assert M.froc(truths, regions) == got


def test_froc_without_lesions_is_nan_and_errors():
    no_lesion = M.froc([None], [np.zeros((4, 4))])
    assert list(no_lesion) == list(M.FROC_FP_RATES)
    assert all(math.isnan(v) for v in no_lesion.values())
    assert M.froc([[Lesion("mass", center=(1.0, 1.0), radius=1.0)]], [np.zeros((4, 4))])[8.0] == 0
    with pytest.raises(ValueError, match="one entry per image, .* received 1 and 2"):
        M.froc([None], [np.zeros((4, 4))] * 2)
    with pytest.raises(ValueError, match="has no center/radius: pass its mask instead"):
        M.match_lesions([Lesion("mass")], np.zeros((4, 4)))
    with pytest.raises(TypeError, match="truth lesions must be Lesion or mask arrays"):
        M.match_lesions([(1, 1)], np.zeros((4, 4)))


KERAS_EXPECTED = {
    M.DiceMetric: 4 / 9,
    M.ForegroundIoU: 2 / 7,
    M.MeanIoUBothClasses: (2 / 7 + 29 / 34) / 2,
    M.PixelSensitivity: 0.5,
    M.PixelSpecificity: 29 / 32,
    M.EmptyPredictionRate: 0.5,
}


@pytest.mark.parametrize("cls", list(KERAS_EXPECTED), ids=lambda c: c.__name__)
def test_keras_metrics_match_numpy_in_two_batches(cls):
    y = TRUTHS[..., None].astype("float32")
    probs = (PREDS[..., None] * 0.8 + 0.1).astype("float32")
    metric = cls()
    metric.update_state(y[:2], probs[:2])
    metric.update_state(y[2:], probs[2:])
    assert float(metric.result()) == pytest.approx(KERAS_EXPECTED[cls], rel=1e-6)
    metric.reset_state()
    logits = keras.ops.cast((PREDS[..., None] * 2.0 - 1.0) * 3.0, "bfloat16")
    logit_metric = cls(from_logits=True)
    logit_metric.update_state(y, logits)
    assert float(logit_metric.result()) == pytest.approx(KERAS_EXPECTED[cls], rel=1e-6)
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(cls(threshold=0.3, from_logits=True, name="m"))
    )
    assert type(restored) is cls
    assert restored.get_config()["threshold"] == 0.3 and restored.name == "m"


def test_mean_iou_both_classes_equals_keras_mean_iou():
    y, p = TRUTHS[..., None], PREDS[..., None]
    reference = keras.metrics.MeanIoU(num_classes=2)
    reference.update_state(y, p)
    ours = M.MeanIoUBothClasses()
    ours.update_state(y.astype("float32"), p.astype("float32"))
    assert float(ours.result()) == pytest.approx(float(reference.result()), rel=1e-6)


# Hand cases for MeanIoUBothClasses = mean(background IoU, tumour IoU), TN / (TN + FP + FN) and
# TP / (TP + FP + FN); a class absent from truth and prediction is left out of the mean.
BINARY_IOU_CASES = {
    # The four images above as probabilities 0.1 / 0.9: pooled TP 2, FP 3, FN 2, TN 29.
    "four_images": (TRUTHS, PREDS * 0.8 + 0.1, 0.5, (2 / 7 + 29 / 34) / 2),
    # 0.5 is exactly the threshold, so tumour: TP 1, FP 1, FN 0, TN 2 -> (1/2 + 2/3) / 2.
    "at_threshold": ([[1, 0], [0, 0]], [[0.5, 0.5], [0.49, 0.0]], 0.5, 7 / 12),
    # Same at threshold 0.3 (0.3 and its float32 rounding compare equal).
    "at_threshold_0.3": ([[1, 0], [0, 0]], [[0.3, 0.3], [0.29, 0.0]], 0.3, 7 / 12),
    # No tumour pixel, predicted empty: only the background class counts, IoU 1.
    "empty_truth_empty_prediction": (ZERO, np.full((3, 3), 0.2), 0.5, 1.0),
    # No tumour pixel, one false positive: tumour IoU 0 / 1, background 8 / 9.
    "empty_truth_one_false_positive": (ZERO, DOT * 0.7, 0.5, (0 + 8 / 9) / 2),
}


@pytest.mark.parametrize("case", list(BINARY_IOU_CASES))
def test_mean_iou_both_classes_equals_keras_binary_iou(case):
    truth, probs, threshold, expected = BINARY_IOU_CASES[case]
    truth = np.asarray(truth, "float32")[None, ..., None]
    probs = np.asarray(probs, "float32")[None, ..., None]
    if case == "four_images":
        truth, probs = truth[0], probs[0]  # already a batch of 4
    ours = M.MeanIoUBothClasses(threshold=threshold)
    reference = keras.metrics.BinaryIoU(target_class_ids=[0, 1], threshold=threshold)
    for metric in (ours, reference):
        metric.update_state(truth[:2], probs[:2])
        metric.update_state(truth[2:], probs[2:])
    # BinaryIoU divides by (denominator + 1e-7): equal to float32 precision, not bit for bit.
    assert float(ours.result()) == pytest.approx(expected, rel=1e-6)
    assert float(ours.result()) == pytest.approx(float(reference.result()), abs=1e-7)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(ours.total_cm),
        keras.ops.convert_to_numpy(reference.total_cm).astype("float32"),
    )


def test_mean_iou_both_classes_is_a_binary_iou_with_truth_binarised():
    metric = M.MeanIoUBothClasses()
    assert isinstance(metric, keras.metrics.BinaryIoU)
    assert metric.target_class_ids == [0, 1] and metric.name == "mean_iou_both_classes"
    # A 0/255 mask counts as 0/1 (BinaryIoU alone would drop the 255 pixel).
    truth = np.array([[[255.0, 0.0], [0.0, 0.0]]], "float32")
    probs = np.array([[[0.9, 0.1], [0.1, 0.9]]], "float32")
    metric.update_state(truth, probs)
    # TP 1, FP 1, FN 0, TN 2: (1/2 + 2/3) / 2.
    assert float(metric.result()) == pytest.approx(7 / 12, rel=1e-6)
    # from_logits: a logit of 0 is probability 0.5, the threshold, so tumour.
    logits = M.MeanIoUBothClasses(from_logits=True)
    logits.update_state(truth / 255, np.array([[[0.0, -1.0], [-2.0, 0.0]]], "float32"))
    assert float(logits.result()) == pytest.approx(7 / 12, rel=1e-6)


def test_mean_iou_both_classes_weights_whole_images():
    # A weight per image (what fit passes) weights every pixel of it: weight 0 drops image B...
    probs = (PREDS[..., None] * 0.8 + 0.1).astype("float32")
    truth = TRUTHS[..., None].astype("float32")
    weighted = M.MeanIoUBothClasses()
    weighted.update_state(truth, probs, sample_weight=np.array([1.0, 0.0, 1.0, 1.0], "float32"))
    # ... so TN is 29 - 9 = 20: (2/7 + 20/25) / 2.
    assert float(weighted.result()) == pytest.approx((2 / 7 + 20 / 25) / 2, rel=1e-6)
    # A weight of 0.5 counts half (BinaryIoU's default int64 matrix would truncate it to 0).
    half = M.MeanIoUBothClasses()
    half.update_state(truth, probs, sample_weight=np.array([1.0, 0.5, 1.0, 1.0], "float32"))
    assert float(half.result()) == pytest.approx((2 / 7 + 24.5 / 29.5) / 2, rel=1e-6)


def test_keras_metric_in_a_compiled_model_with_mixed_precision(tmp_path):
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        inputs = keras.Input((4, 4, 1))
        outputs = keras.layers.Conv2D(1, 1, dtype="float32")(keras.layers.Conv2D(2, 1)(inputs))
        model = keras.Model(inputs, outputs)
    finally:
        keras.config.set_dtype_policy("float32")
    metrics = [M.DiceMetric(from_logits=True), M.EmptyPredictionRate()]
    metrics.append(M.MeanIoUBothClasses(threshold=0.25, from_logits=True))
    model.compile("sgd", "mse", metrics=metrics)
    x = np.ones((2, 4, 4, 1), "float32")
    result = model.evaluate(x, x, verbose=0, return_dict=True)
    assert 0.0 <= result["dice"] <= 1.0 and 0.0 <= result["empty_prediction_rate"] <= 1.0
    model.save(tmp_path / "m.keras")
    # Reloads without custom_objects: the metrics are registered as mammoseg>ClassName.
    restored = keras.saving.load_model(tmp_path / "m.keras")
    again = restored.evaluate(x, x, verbose=0, return_dict=True)
    assert again["mean_iou_both_classes"] == pytest.approx(result["mean_iou_both_classes"])
    # The truth is all tumour, so the score is the tumour IoU: 1.0 or 0.0 (nothing predicted).
    assert result["mean_iou_both_classes"] in (pytest.approx(0.0), pytest.approx(1.0))
    # model.metrics is [loss tracker, CompileMetrics]; the compiled metrics are inside the latter.
    inner = [m for group in restored.metrics for m in getattr(group, "metrics", [group])]
    (miou,) = [m for m in inner if m.name == "mean_iou_both_classes"]
    assert type(miou) is M.MeanIoUBothClasses
    assert miou.get_config() == {
        "threshold": 0.25,
        "from_logits": True,
        "name": "mean_iou_both_classes",
        "dtype": "float32",
    }


def test_keras_metric_invalid_threshold():
    with pytest.raises(ValueError, match="`threshold` must be a number, received 'high'"):
        M.DiceMetric(threshold="high")


def test_pixel_specificity_without_background_is_nan():
    # An all-tumour batch has no TN + FP: specificity is undefined (the old result was 0.0).
    metric = M.PixelSpecificity()
    metric.update_state(np.ones((1, 2, 2, 1), "float32"), np.ones((1, 2, 2, 1), "float32"))
    assert math.isnan(float(metric.result()))
