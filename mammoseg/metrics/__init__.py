"""Segmentation and lesion-detection metrics on binary masks, and Keras metrics for training.

Every metric of a truth and a prediction takes the truth first, ``(y_true, y_pred, ...)``, the
order of Keras and scikit-learn, and the two names work as keywords (``sensitivity(y_true=truth,
y_pred=pred)``). The order matters: swapped, sensitivity becomes precision, specificity the
negative predictive value, and the empty-prediction rate the share of non-empty predictions on
lesion-free images.

Masks: one mask (H, W), a batch (N, H, W) or (N, H, W, 1), or a list of masks of any sizes.
Predictions are binarised with ``y_pred >= threshold`` (probabilities or 0/1 masks), truths
with ``y_true > 0``. Every overlap metric takes ``reduction``:

- ``"pooled"``: sum the pixel counts over all images, then compute one number (what TF1's
  ``tf.metrics.mean_iou``, the paper's metric, did over an epoch);
- ``"per_image"``: an array, one value per image;
- ``"mean"``: the mean of the per-image values, ignoring the undefined (NaN) ones.

Undefined cases are NaN, never a silent 0 or 1: Dice, foreground IoU and sensitivity of an image
without tumour pixels (with ``ignore_empty=False`` Dice and IoU give 1.0 when the prediction is
empty too and 0.0 otherwise); specificity of an image without background. Mean IoU over both
classes follows TF1: a class absent from both truth and prediction is left out of the mean.

Why several: the paper's mean IoU is dominated by background (predicting nothing scores ~0.5),
so report foreground IoU and Dice per image and pooled, and `empty_prediction_rate`, the share of
images with a lesion whose prediction is empty: the paper's "predicts only zeros" (facts.md §5).

Lesion detection: `regions_from_probability` turns a probability map into scored connected
regions, `match_lesions` marks hits (a region overlapping a lesion's mask, or whose centroid
falls inside a lesion's circle; with ``min_iou``, a region whose IoU with a lesion's mask
reaches it) and false positives, `froc` gives the sensitivity at 0.25, 0.5, 1, 2, 4 and 8 false
positives per image. `froc` is the one FROC of mammoseg: the recipe's candidates and Mask
R-CNN's detections (``mask_rcnn.evaluate.froc_inputs``) both go through it.

Uncertainty: `bootstrap_interval` resamples patients with replacement and gives the percentile
interval of any pooled statistic (a FROC point, Dice per mass image) over those resamples.

Layout: `overlap` (pixel counts and overlap metrics), `detection` (regions, lesion matching,
FROC), `bootstrap` (intervals over patients), `keras_metrics` (the Keras `Metric` wrappers);
every name is offered here. The Keras metrics load on first use: the NumPy metrics import
without TensorFlow.
"""

from mammoseg.metrics.bootstrap import (
    BootstrapInterval,
    bootstrap_interval,
    resample_patients,
)
from mammoseg.metrics.detection import (
    FROC_FP_RATES,
    FROC_METHODS,
    LesionMatch,
    Region,
    froc,
    froc_at_rates,
    froc_curve,
    froc_from_scores,
    lesion_sensitivity_at_fppi,
    match_lesions,
    regions_from_probability,
    sensitivity_at_rates,
)
from mammoseg.metrics.overlap import (
    REDUCTIONS,
    Confusion,
    confusion_counts,
    dice_from_counts,
    dice_per_image,
    dice_pooled,
    dice_score,
    empty_prediction_rate,
    foreground_iou,
    mean_iou_both_classes,
    sensitivity,
    specificity,
)

# The Keras metrics load on first use, so the NumPy metrics import without TensorFlow.
_KERAS_METRICS = (
    "AuthorsMeanIoU",
    "DiceMetric",
    "EmptyPredictionRate",
    "ForegroundIoU",
    "MeanIoUBothClasses",
    "PixelSensitivity",
    "PixelSpecificity",
)


def __getattr__(attribute: str):
    if attribute in _KERAS_METRICS:
        from mammoseg.metrics import keras_metrics

        return getattr(keras_metrics, attribute)
    raise AttributeError(f"module 'mammoseg.metrics' has no attribute {attribute!r}")


__all__ = [
    "AuthorsMeanIoU",
    "BootstrapInterval",
    "FROC_FP_RATES",
    "FROC_METHODS",
    "REDUCTIONS",
    "Confusion",
    "DiceMetric",
    "EmptyPredictionRate",
    "ForegroundIoU",
    "LesionMatch",
    "MeanIoUBothClasses",
    "PixelSensitivity",
    "PixelSpecificity",
    "Region",
    "bootstrap_interval",
    "confusion_counts",
    "dice_from_counts",
    "dice_per_image",
    "dice_pooled",
    "dice_score",
    "empty_prediction_rate",
    "foreground_iou",
    "froc",
    "froc_at_rates",
    "froc_curve",
    "froc_from_scores",
    "lesion_sensitivity_at_fppi",
    "match_lesions",
    "mean_iou_both_classes",
    "regions_from_probability",
    "resample_patients",
    "sensitivity_at_rates",
    "sensitivity",
    "specificity",
]
