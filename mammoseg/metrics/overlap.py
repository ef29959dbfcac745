"""Pixel-overlap metrics on binary masks: confusion counts, Dice, IoU, mean IoU over both classes,
sensitivity, specificity and the empty-prediction rate.

Shapes, binarisation, ``reduction`` and the undefined (NaN) cases are described in the
`mammoseg.metrics` docstring.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

REDUCTIONS = ("pooled", "per_image", "mean")


# --- pixel counts ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Confusion:
    """Per-image pixel counts (arrays of length N)."""

    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray
    tn: np.ndarray

    def pooled(self) -> Confusion:
        """The counts summed over the images, as arrays of length 1."""
        return Confusion(*(np.array([getattr(self, k).sum()]) for k in ("tp", "fp", "fn", "tn")))


def _as_list(name: str, masks: Any) -> list[np.ndarray]:
    if isinstance(masks, np.ndarray) or hasattr(masks, "shape"):
        masks = np.asarray(masks)
        if masks.ndim == 2:
            return [masks]
        if masks.ndim == 4 and masks.shape[-1] == 1:
            masks = masks[..., 0]
        if masks.ndim != 3:
            raise ValueError(
                f"`{name}` must be (H, W), (N, H, W) or (N, H, W, 1), received shape {masks.shape}"
            )
        return list(masks)
    return [np.squeeze(np.asarray(m), axis=-1) if np.ndim(m) == 3 else np.asarray(m) for m in masks]


def confusion_counts(y_true: Any, y_pred: Any, threshold: float = 0.5) -> Confusion:
    """Count true/false positives/negatives per image.

    Args:
        y_true: truth masks (see the module docstring for shapes); tumour where ``> 0``.
        y_pred: predicted masks or probabilities, the same number and shapes.
        threshold: a prediction is tumour where ``y_pred >= threshold``.

    Returns:
        A `Confusion` of int64 arrays, one entry per image.

    Raises:
        ValueError: different numbers of images, or an image whose shapes differ.

    Example:
        >>> truth, pred = np.array([[1, 0], [1, 0]]), np.array([[1, 1], [0, 0]])
        >>> c = confusion_counts(truth, pred)
        >>> c.tp, c.fp, c.fn
        (array([1]), array([1]), array([1]))
    """
    truth_list, pred_list = _as_list("y_true", y_true), _as_list("y_pred", y_pred)
    if len(truth_list) != len(pred_list):
        raise ValueError(
            "`y_true` and `y_pred` must hold the same number of masks, received "
            f"{len(truth_list)} and {len(pred_list)}"
        )
    counts = np.zeros((4, len(pred_list)), np.int64)
    for i, (truth, pred) in enumerate(zip(truth_list, pred_list)):
        if pred.shape != truth.shape:
            raise ValueError(
                f"image {i}: `y_true` has shape {truth.shape} but `y_pred` {pred.shape}"
            )
        p = pred.astype(bool) if pred.dtype == bool else pred >= threshold
        t = truth > 0
        tp = np.count_nonzero(p & t)
        counts[:, i] = (tp, np.count_nonzero(p) - tp, np.count_nonzero(t) - tp, 0)
        counts[3, i] = p.size - counts[:3, i].sum()
    return Confusion(*counts)


def _ratio(num: np.ndarray, den: np.ndarray, undefined: float) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.maximum(den, 1), undefined).astype(np.float64)


def _reduce(fn, y_true, y_pred, threshold, reduction) -> float | np.ndarray:
    if reduction not in REDUCTIONS:
        raise ValueError(f"`reduction` must be one of {REDUCTIONS}, received {reduction!r}")
    counts = confusion_counts(y_true, y_pred, threshold)
    if reduction == "pooled":
        return float(fn(counts.pooled())[0])
    values = fn(counts)
    if reduction == "per_image":
        return values
    return float(np.nanmean(values)) if np.any(~np.isnan(values)) else float("nan")


def dice_from_counts(counts: Any, *, ignore_empty: bool = True) -> np.ndarray:
    """Dice = 2 TP / (2 TP + FP + FN) from pixel counts, over the last axis of (..., 3).

    The one Dice-from-counts of the package: `dice_score` and the recipe's threshold choice
    (counts at many thresholds at once) both use it.

    Args:
        counts: (..., 3) array of (TP, FP, FN) pixel counts.
        ignore_empty: without truth pixels (TP + FN = 0) the Dice is NaN; with False it is 1.0
            when the prediction is empty too, else 0.0.

    Returns:
        float64 array of shape ``counts.shape[:-1]``.

    Example:
        >>> dice_from_counts(np.array([[2, 1, 1], [0, 3, 0], [0, 0, 0]]))
        array([0.66666667,        nan,        nan])
        >>> dice_from_counts(np.array([[0, 3, 0], [0, 0, 0]]), ignore_empty=False)
        array([0., 1.])
    """
    counts = np.asarray(counts)
    if counts.shape[-1:] != (3,):
        raise ValueError(f"counts must have shape (..., 3) (TP, FP, FN), received {counts.shape}")
    tp, fp, fn = (counts[..., k].astype(np.float64) for k in range(3))
    values = _ratio(2 * tp, 2 * tp + fp + fn, 1.0)  # empty truth and prediction: agreement
    return np.where(tp + fn == 0, np.nan, values) if ignore_empty else values


def _overlap(c: Confusion, iou: bool, ignore_empty: bool) -> np.ndarray:
    if not iou:
        return dice_from_counts(np.stack([c.tp, c.fp, c.fn], axis=-1), ignore_empty=ignore_empty)
    values = _ratio(c.tp, c.tp + c.fp + c.fn, 1.0)  # empty truth and prediction: agreement
    return np.where(c.tp + c.fn == 0, np.nan, values) if ignore_empty else values


# --- overlap metrics ------------------------------------------------------------------------------


def dice_score(
    y_true: Any,
    y_pred: Any,
    *,
    threshold: float = 0.5,
    reduction: str = "pooled",
    ignore_empty: bool = True,
) -> float | np.ndarray:
    """Dice = 2 TP / (2 TP + FP + FN).

    Args:
        y_true: truth masks (module docstring); tumour where ``> 0``.
        y_pred: predicted masks or probabilities, the same number and shapes.
        threshold: a prediction is tumour where ``y_pred >= threshold``.
        reduction: "pooled", "per_image" or "mean".
        ignore_empty: an image without tumour pixels scores NaN (left out of "mean"); with
            False it scores 1.0 if its prediction is empty too, else 0.0.

    Returns:
        A float, or an array for "per_image".

    Raises:
        ValueError: an unknown ``reduction`` or mismatched masks.

    Example:
        >>> dice_score(np.array([[1, 0], [0, 0]]), np.array([[1, 1], [0, 0]]))
        0.6666666666666666
    """
    return _reduce(lambda c: _overlap(c, False, ignore_empty), y_true, y_pred, threshold, reduction)


def dice_per_image(
    y_true: Any, y_pred: Any, *, threshold: float = 0.5, ignore_empty: bool = True
) -> np.ndarray:
    """`dice_score` with ``reduction="per_image"``: one value per image (NaN: no lesion)."""
    return dice_score(
        y_true, y_pred, threshold=threshold, reduction="per_image", ignore_empty=ignore_empty
    )


def dice_pooled(y_true: Any, y_pred: Any, *, threshold: float = 0.5) -> float:
    """`dice_score` with ``reduction="pooled"``: counts summed over all images first."""
    return dice_score(y_true, y_pred, threshold=threshold, reduction="pooled")


def foreground_iou(
    y_true: Any,
    y_pred: Any,
    *,
    threshold: float = 0.5,
    reduction: str = "pooled",
    ignore_empty: bool = True,
) -> float | np.ndarray:
    """Tumour-class IoU = TP / (TP + FP + FN); arguments and empty cases as `dice_score`.

    Example:
        >>> foreground_iou(np.array([[1, 0], [0, 0]]), np.array([[1, 1], [0, 0]]))
        0.5
    """
    return _reduce(lambda c: _overlap(c, True, ignore_empty), y_true, y_pred, threshold, reduction)


def _mean_iou(c: Confusion) -> np.ndarray:
    fg_den, bg_den = c.tp + c.fp + c.fn, c.tn + c.fp + c.fn
    total = _ratio(c.tp, fg_den, 0.0) + _ratio(c.tn, bg_den, 0.0)
    return _ratio(total, (fg_den > 0).astype(int) + (bg_den > 0), np.nan)


def mean_iou_both_classes(
    y_true: Any, y_pred: Any, *, threshold: float = 0.5, reduction: str = "pooled"
) -> float | np.ndarray:
    """The paper's metric: mean of background IoU and tumour IoU (TF1 ``mean_iou``, 2 classes).

    A class absent from both truth and prediction is left out of the mean, so an image
    without lesion predicted empty scores 1.0, and a model predicting nothing scores about 0.5.

    Example:
        >>> mean_iou_both_classes(np.array([[1, 0], [0, 0]]), np.array([[1, 1], [0, 0]]))
        0.5833333333333333
    """
    return _reduce(_mean_iou, y_true, y_pred, threshold, reduction)


def sensitivity(
    y_true: Any, y_pred: Any, *, threshold: float = 0.5, reduction: str = "pooled"
) -> float | np.ndarray:
    """Pixel sensitivity (recall) TP / (TP + FN); NaN for an image without tumour pixels.

    Example:
        >>> sensitivity(np.array([[1, 1], [0, 0]]), np.array([[1, 0], [0, 0]]))
        0.5
    """
    return _reduce(
        lambda c: _ratio(c.tp, c.tp + c.fn, np.nan), y_true, y_pred, threshold, reduction
    )


def specificity(
    y_true: Any, y_pred: Any, *, threshold: float = 0.5, reduction: str = "pooled"
) -> float | np.ndarray:
    """Pixel specificity TN / (TN + FP); NaN for an image without background pixels.

    Example:
        >>> specificity(np.array([[1, 0], [0, 0]]), np.array([[1, 1], [0, 0]]))
        0.6666666666666666
    """
    return _reduce(
        lambda c: _ratio(c.tn, c.tn + c.fp, np.nan), y_true, y_pred, threshold, reduction
    )


def empty_prediction_rate(y_true: Any, y_pred: Any, *, threshold: float = 0.5) -> float:
    """Share of the images with a lesion whose prediction is empty ("predicts only zeros").

    Images without a lesion are left out; NaN when no image has one.

    Example:
        >>> empty_prediction_rate(np.ones((2, 2, 2)), np.zeros((2, 2, 2)))
        1.0
    """
    c = confusion_counts(y_true, y_pred, threshold)
    with_lesion = (c.tp + c.fn) > 0
    if not with_lesion.any():
        return float("nan")
    return float(np.mean((c.tp + c.fp)[with_lesion] == 0))


__all__ = [
    "REDUCTIONS",
    "Confusion",
    "confusion_counts",
    "dice_from_counts",
    "dice_per_image",
    "dice_pooled",
    "dice_score",
    "empty_prediction_rate",
    "foreground_iou",
    "mean_iou_both_classes",
    "sensitivity",
    "specificity",
]
