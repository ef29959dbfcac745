"""Segmentation and lesion-detection metrics on binary masks, and Keras metrics for training.

Masks: one mask (H, W), a batch (N, H, W) or (N, H, W, 1), or a list of masks of any sizes.
Predictions are binarised with ``pred >= threshold`` (probabilities or 0/1 masks), truths with
``truth > 0``. Every overlap metric takes ``reduction``:

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
falls inside a lesion's circle) and false positives, `froc` gives the sensitivity at 0.25, 0.5, 1,
2, 4 and 8 false positives per image.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
from keras import ops
from scipy import ndimage

from mammoseg.data.records import Lesion

REDUCTIONS = ("pooled", "per_image", "mean")
FROC_FP_RATES = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)


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


def _as_list(masks: Any) -> list[np.ndarray]:
    if isinstance(masks, np.ndarray) or hasattr(masks, "shape"):
        masks = np.asarray(masks)
        if masks.ndim == 2:
            return [masks]
        if masks.ndim == 4 and masks.shape[-1] == 1:
            masks = masks[..., 0]
        if masks.ndim != 3:
            raise ValueError(
                f"masks must be (H, W), (N, H, W) or (N, H, W, 1), received shape {masks.shape}"
            )
        return list(masks)
    return [np.squeeze(np.asarray(m), axis=-1) if np.ndim(m) == 3 else np.asarray(m) for m in masks]


def confusion_counts(preds: Any, truths: Any, threshold: float = 0.5) -> Confusion:
    """Count true/false positives/negatives per image.

    Args:
        preds: predicted masks or probabilities (see the module docstring for shapes).
        truths: truth masks, the same number and shapes.
        threshold: a prediction is tumour where ``pred >= threshold``.

    Returns:
        A `Confusion` of int64 arrays, one entry per image.

    Raises:
        ValueError: different numbers of images, or an image whose shapes differ.

    Example:
        >>> confusion_counts(np.array([[1, 1], [0, 0]]), np.array([[1, 0], [1, 0]])).tp
        array([1])
    """
    pred_list, truth_list = _as_list(preds), _as_list(truths)
    if len(pred_list) != len(truth_list):
        raise ValueError(f"got {len(pred_list)} predictions but {len(truth_list)} truth masks")
    counts = np.zeros((4, len(pred_list)), np.int64)
    for i, (pred, truth) in enumerate(zip(pred_list, truth_list)):
        if pred.shape != truth.shape:
            raise ValueError(f"image {i}: prediction shape {pred.shape} != truth {truth.shape}")
        p = pred.astype(bool) if pred.dtype == bool else pred >= threshold
        t = truth > 0
        tp = np.count_nonzero(p & t)
        counts[:, i] = (tp, np.count_nonzero(p) - tp, np.count_nonzero(t) - tp, 0)
        counts[3, i] = p.size - counts[:3, i].sum()
    return Confusion(*counts)


def _ratio(num: np.ndarray, den: np.ndarray, undefined: float) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.maximum(den, 1), undefined).astype(np.float64)


def _reduce(fn, preds, truths, threshold, reduction) -> float | np.ndarray:
    if reduction not in REDUCTIONS:
        raise ValueError(f"`reduction` must be one of {REDUCTIONS}, received {reduction!r}")
    counts = confusion_counts(preds, truths, threshold)
    if reduction == "pooled":
        return float(fn(counts.pooled())[0])
    values = fn(counts)
    if reduction == "per_image":
        return values
    return float(np.nanmean(values)) if np.any(~np.isnan(values)) else float("nan")


def _overlap(c: Confusion, iou: bool, ignore_empty: bool) -> np.ndarray:
    num = c.tp if iou else 2 * c.tp
    den = c.tp + c.fp + c.fn if iou else 2 * c.tp + c.fp + c.fn
    values = _ratio(num, den, 1.0)  # empty truth and prediction: perfect agreement
    return np.where(c.tp + c.fn == 0, np.nan, values) if ignore_empty else values


# --- overlap metrics ------------------------------------------------------------------------------


def dice_score(
    preds: Any,
    truths: Any,
    *,
    threshold: float = 0.5,
    reduction: str = "pooled",
    ignore_empty: bool = True,
) -> float | np.ndarray:
    """Dice = 2 TP / (2 TP + FP + FN).

    Args:
        preds, truths: masks (module docstring).
        threshold: binarisation threshold of ``preds``.
        reduction: "pooled", "per_image" or "mean".
        ignore_empty: an image without tumour pixels scores NaN (left out of "mean"); with
            False it scores 1.0 if its prediction is empty too, else 0.0.

    Returns:
        A float, or an array for "per_image".

    Raises:
        ValueError: an unknown ``reduction`` or mismatched masks.

    Example:
        >>> dice_score(np.array([[1, 1], [0, 0]]), np.array([[1, 0], [0, 0]]))
        0.6666666666666666
    """
    return _reduce(lambda c: _overlap(c, False, ignore_empty), preds, truths, threshold, reduction)


def dice_per_image(
    preds: Any, truths: Any, *, threshold: float = 0.5, ignore_empty: bool = True
) -> np.ndarray:
    """`dice_score` with ``reduction="per_image"``: one value per image (NaN: no lesion)."""
    return dice_score(
        preds, truths, threshold=threshold, reduction="per_image", ignore_empty=ignore_empty
    )


def dice_pooled(preds: Any, truths: Any, *, threshold: float = 0.5) -> float:
    """`dice_score` with ``reduction="pooled"``: counts summed over all images first."""
    return dice_score(preds, truths, threshold=threshold, reduction="pooled")


def foreground_iou(
    preds: Any,
    truths: Any,
    *,
    threshold: float = 0.5,
    reduction: str = "pooled",
    ignore_empty: bool = True,
) -> float | np.ndarray:
    """Tumour-class IoU = TP / (TP + FP + FN); arguments and empty cases as `dice_score`.

    Example:
        >>> foreground_iou(np.array([[1, 1], [0, 0]]), np.array([[1, 0], [0, 0]]))
        0.5
    """
    return _reduce(lambda c: _overlap(c, True, ignore_empty), preds, truths, threshold, reduction)


def _mean_iou(c: Confusion) -> np.ndarray:
    fg_den, bg_den = c.tp + c.fp + c.fn, c.tn + c.fp + c.fn
    total = _ratio(c.tp, fg_den, 0.0) + _ratio(c.tn, bg_den, 0.0)
    return _ratio(total, (fg_den > 0).astype(int) + (bg_den > 0), np.nan)


def mean_iou_both_classes(
    preds: Any, truths: Any, *, threshold: float = 0.5, reduction: str = "pooled"
) -> float | np.ndarray:
    """The paper's metric: mean of background IoU and tumour IoU (TF1 ``mean_iou``, 2 classes).

    A class absent from both truth and prediction is left out of the mean, so an image
    without lesion predicted empty scores 1.0, and a model predicting nothing scores about 0.5.

    Example:
        >>> mean_iou_both_classes(np.array([[1, 1], [0, 0]]), np.array([[1, 0], [0, 0]]))
        0.5833333333333333
    """
    return _reduce(_mean_iou, preds, truths, threshold, reduction)


def sensitivity(
    preds: Any, truths: Any, *, threshold: float = 0.5, reduction: str = "pooled"
) -> float | np.ndarray:
    """Pixel sensitivity (recall) TP / (TP + FN); NaN for an image without tumour pixels."""
    return _reduce(lambda c: _ratio(c.tp, c.tp + c.fn, np.nan), preds, truths, threshold, reduction)


def specificity(
    preds: Any, truths: Any, *, threshold: float = 0.5, reduction: str = "pooled"
) -> float | np.ndarray:
    """Pixel specificity TN / (TN + FP); NaN for an image without background pixels."""
    return _reduce(lambda c: _ratio(c.tn, c.tn + c.fp, np.nan), preds, truths, threshold, reduction)


def empty_prediction_rate(preds: Any, truths: Any, *, threshold: float = 0.5) -> float:
    """Share of the images with a lesion whose prediction is empty ("predicts only zeros").

    Images without a lesion are left out; NaN when no image has one.

    Example:
        >>> empty_prediction_rate(np.zeros((2, 2, 2)), np.ones((2, 2, 2)))
        1.0
    """
    c = confusion_counts(preds, truths, threshold)
    with_lesion = (c.tp + c.fn) > 0
    if not with_lesion.any():
        return float("nan")
    return float(np.mean((c.tp + c.fp)[with_lesion] == 0))


# --- lesion detection -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Region:
    """A connected predicted region: ``score`` (max probability), ``centroid`` (row, col),
    ``area`` in pixels and ``coords`` (area, 2) of (row, col)."""

    score: float
    centroid: tuple[float, float]
    area: int
    coords: np.ndarray


def regions_from_probability(
    probability: np.ndarray, threshold: float = 0.5, min_area: int = 1
) -> list[Region]:
    """Connected regions (8-connectivity) of ``probability >= threshold``, best score first.

    Args:
        probability: (H, W) or (H, W, 1) probability map or binary mask.
        threshold: region threshold; use a low one for FROC and let the score sweep.
        min_area: drop smaller regions.

    Returns:
        A list of `Region`, sorted by decreasing score.

    Example:
        >>> [r.area for r in regions_from_probability(np.array([[0.9, 0, 0.6]]))]
        [1, 1]
    """
    prob = np.asarray(probability, dtype=np.float64)
    prob = prob[..., 0] if prob.ndim == 3 and prob.shape[-1] == 1 else prob
    if prob.ndim != 2:
        raise ValueError(f"`probability` must be (H, W) or (H, W, 1), received {prob.shape}")
    labels, _ = ndimage.label(prob >= threshold, structure=np.ones((3, 3)))
    regions = []
    for index, window in enumerate(ndimage.find_objects(labels), start=1):
        rows, cols = np.nonzero(labels[window] == index)
        if rows.size < min_area:
            continue
        coords = np.stack([rows + window[0].start, cols + window[1].start], axis=1)
        score = float(prob[coords[:, 0], coords[:, 1]].max())
        centroid = (float(coords[:, 0].mean()), float(coords[:, 1].mean()))
        regions.append(Region(score, centroid, int(rows.size), coords))
    return sorted(regions, key=lambda r: -r.score)


@dataclass(frozen=True)
class LesionMatch:
    """Result of `match_lesions` for one image.

    Attributes:
        hit_scores: per truth lesion, the best score of a region hitting it, NaN if missed.
        false_positive_scores: scores of the regions that hit no lesion.
    """

    hit_scores: np.ndarray
    false_positive_scores: np.ndarray

    @property
    def hits(self) -> np.ndarray:
        """Boolean per truth lesion."""
        return ~np.isnan(self.hit_scores)


def _truth_items(truth: Any) -> list[Lesion | np.ndarray]:
    if truth is None:
        return []
    if isinstance(truth, np.ndarray) and truth.ndim >= 2:
        labels, count = ndimage.label(np.squeeze(truth) > 0, structure=np.ones((3, 3)))
        return [labels == k for k in range(1, count + 1)]
    items = list(truth)
    for item in items:
        if isinstance(item, Lesion) and (item.center is None or item.radius is None):
            raise ValueError(f"lesion {item!r} has no center/radius: pass its mask instead")
        if not isinstance(item, Lesion | np.ndarray):
            raise TypeError(f"truth lesions must be Lesion or mask arrays, received {item!r}")
    return items


def _hits(region: Region, item: Lesion | np.ndarray) -> bool:
    if isinstance(item, Lesion):
        d_row, d_col = region.centroid[0] - item.center[0], region.centroid[1] - item.center[1]
        return d_row * d_row + d_col * d_col <= item.radius * item.radius
    mask = np.squeeze(item) > 0
    inside = (region.coords[:, 0] < mask.shape[0]) & (region.coords[:, 1] < mask.shape[1])
    return bool(mask[region.coords[inside, 0], region.coords[inside, 1]].any())


def match_lesions(candidates: Any, truth: Any, threshold: float = 0.5) -> LesionMatch:
    """Match predicted regions to the truth lesions of one image.

    A region hits a lesion given as a mask if they share a pixel, and a lesion given as a
    circle (a `Lesion` with center and radius) if its centroid lies inside the circle. A lesion
    hit by several regions counts once (best score); those regions are not false positives.

    Args:
        candidates: a list of `Region`, or a probability map / binary mask (H, W) turned into
            regions with `regions_from_probability` at ``threshold``.
        truth: a binary mask (each connected component is one lesion), a list of `Lesion`
            and/or per-lesion masks, or None / [] for a normal image.
        threshold: used only when ``candidates`` is an array.

    Returns:
        A `LesionMatch`.

    Raises:
        ValueError: a `Lesion` without center or radius.

    Example:
        >>> truth = [Lesion("mass", center=(5.0, 5.0), radius=3.0)]
        >>> prob = np.zeros((20, 20)); prob[4:7, 4:7] = 0.9; prob[15, 15] = 0.7
        >>> m = match_lesions(prob, truth)
        >>> m.hit_scores, m.false_positive_scores
        (array([0.9]), array([0.7]))
    """
    if isinstance(candidates, np.ndarray):
        candidates = regions_from_probability(candidates, threshold)
    items = _truth_items(truth)
    hit_scores = np.full(len(items), np.nan)
    false_positives = []
    for region in candidates:
        hit_any = False
        for k, item in enumerate(items):
            if _hits(region, item):
                hit_any = True
                hit_scores[k] = np.fmax(hit_scores[k], region.score)
        if not hit_any:
            false_positives.append(region.score)
    return LesionMatch(hit_scores, np.asarray(false_positives, dtype=np.float64))


def froc_curve(
    per_image_candidates: Sequence[Any], per_image_truth: Sequence[Any], threshold: float = 0.5
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Free-response ROC: (false positives per image, lesion sensitivity, score thresholds).

    Args:
        per_image_candidates: per image, what `match_lesions` accepts as ``candidates``.
        per_image_truth: per image, what `match_lesions` accepts as ``truth``.
        threshold: region threshold for array candidates.

    Returns:
        Three arrays, one entry per distinct score, thresholds decreasing.

    Raises:
        ValueError: the two sequences differ in length or are empty.
    """
    if len(per_image_candidates) != len(per_image_truth) or not len(per_image_truth):
        raise ValueError(
            f"need one truth per image: {len(per_image_candidates)} candidate lists, "
            f"{len(per_image_truth)} truths"
        )
    matches = [
        match_lesions(c, t, threshold) for c, t in zip(per_image_candidates, per_image_truth)
    ]
    hit_scores = np.concatenate([m.hit_scores for m in matches])
    found = np.sort(hit_scores[~np.isnan(hit_scores)])
    fp_scores = np.sort(np.concatenate([m.false_positive_scores for m in matches]))
    thresholds = np.unique(np.concatenate([found, fp_scores]))[::-1]
    # Operating point at threshold t: every region scoring >= t is kept.
    fppi = (len(fp_scores) - np.searchsorted(fp_scores, thresholds, "left")) / len(matches)
    if len(hit_scores) == 0:
        return fppi, np.full(len(thresholds), np.nan), thresholds
    sens = (len(found) - np.searchsorted(found, thresholds, "left")) / len(hit_scores)
    return fppi, sens, thresholds


def froc(
    per_image_candidates: Sequence[Any],
    per_image_truth: Sequence[Any],
    fp_rates: Sequence[float] = FROC_FP_RATES,
    threshold: float = 0.5,
) -> dict[float, float]:
    """Lesion sensitivity at each false-positive rate per image (default 0.25 … 8).

    The sensitivity at rate r is the best one among score thresholds with at most r false
    positives per image (0 if none); NaN when no image has a lesion.

    Returns:
        ``{fp_rate: sensitivity}``; the mean of the values is the usual one-number FROC score.

    Example:
        >>> froc([prob_a, prob_b], [[lesion_a], []])  # doctest: +SKIP
        {0.25: 0.0, 0.5: 1.0, 1.0: 1.0, 2.0: 1.0, 4.0: 1.0, 8.0: 1.0}
    """
    fppi, sens, _ = froc_curve(per_image_candidates, per_image_truth, threshold)
    no_lesion = all(len(_truth_items(t)) == 0 for t in per_image_truth)
    result = {}
    for rate in fp_rates:
        ok = fppi <= rate
        if no_lesion:
            result[float(rate)] = float("nan")
        else:
            result[float(rate)] = float(sens[ok].max()) if ok.any() else 0.0
    return result


def lesion_sensitivity_at_fppi(
    per_image_candidates: Sequence[Any],
    per_image_truth: Sequence[Any],
    fppi: float = 1.0,
    threshold: float = 0.5,
) -> float:
    """`froc` at one false-positive rate per image."""
    return froc(per_image_candidates, per_image_truth, (fppi,), threshold)[float(fppi)]


# --- Keras metrics --------------------------------------------------------------------------------


class _PixelCountMetric(keras.metrics.Metric):
    """Accumulates pooled pixel counts over an epoch, like TF1's ``mean_iou``."""

    default_name = "pixel_counts"

    def __init__(
        self,
        threshold: float = 0.5,
        from_logits: bool = False,
        name: str | None = None,
        dtype: str | None = None,
    ) -> None:
        name = name or self.default_name
        super().__init__(name=name, dtype=dtype)
        if not isinstance(threshold, int | float) or isinstance(threshold, bool):
            raise ValueError(f"`threshold` must be a number, received {threshold!r}")
        self.threshold = float(threshold)
        self.from_logits = bool(from_logits)
        self.counts = self.add_variable(
            shape=(4,), initializer="zeros", dtype="float32", name="counts"
        )

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        """Add the batch's (TP, FP, FN, TN); ``sample_weight`` is not supported."""
        y_pred = ops.cast(y_pred, "float32")
        if self.from_logits:
            y_pred = ops.sigmoid(y_pred)
        pred = ops.cast(y_pred >= self.threshold, "float32")
        truth = ops.cast(ops.cast(y_true, "float32") > 0, "float32")
        truth = ops.reshape(truth, ops.shape(pred))
        tp = ops.sum(pred * truth)
        fp = ops.sum(pred) - tp
        fn = ops.sum(truth) - tp
        tn = ops.cast(ops.size(pred), "float32") - tp - fp - fn
        self.counts.assign_add(ops.stack([tp, fp, fn, tn]))

    def reset_state(self) -> None:
        self.counts.assign(ops.zeros((4,), "float32"))

    def get_config(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "from_logits": self.from_logits,
            "name": self.name,
            "dtype": self.dtype,
        }

    @staticmethod
    def _safe_ratio(num: Any, den: Any, undefined: float) -> Any:
        return ops.where(den > 0, num / ops.maximum(den, 1e-12), undefined)


@keras.saving.register_keras_serializable(package="mammoseg")
class DiceMetric(_PixelCountMetric):
    """Pooled Dice over the epoch (1.0 while truth and prediction are both empty).

    Args:
        threshold: binarisation threshold of the predicted probability.
        from_logits: predictions are logits (a sigmoid is applied first).
        name, dtype: as for any `keras.metrics.Metric`.

    Example:
        >>> model.compile("adam", "binary_crossentropy", metrics=[DiceMetric()])  # doctest: +SKIP
    """

    default_name = "dice"

    def result(self) -> Any:
        tp, fp, fn, _ = ops.unstack(self.counts)
        return self._safe_ratio(2 * tp, 2 * tp + fp + fn, 1.0)


@keras.saving.register_keras_serializable(package="mammoseg")
class ForegroundIoU(_PixelCountMetric):
    """Pooled tumour-class IoU over the epoch; arguments as `DiceMetric`."""

    default_name = "foreground_iou"

    def result(self) -> Any:
        tp, fp, fn, _ = ops.unstack(self.counts)
        return self._safe_ratio(tp, tp + fp + fn, 1.0)


@keras.saving.register_keras_serializable(package="mammoseg")
class MeanIoUBothClasses(_PixelCountMetric):
    """The paper's metric, pooled over the epoch: mean of background and tumour IoU."""

    default_name = "mean_iou_both_classes"

    def result(self) -> Any:
        tp, fp, fn, tn = ops.unstack(self.counts)
        fg_den, bg_den = tp + fp + fn, tn + fp + fn
        present = ops.cast(fg_den > 0, "float32") + ops.cast(bg_den > 0, "float32")
        total = self._safe_ratio(tp, fg_den, 0.0) + self._safe_ratio(tn, bg_den, 0.0)
        return self._safe_ratio(total, present, 0.0)


@keras.saving.register_keras_serializable(package="mammoseg")
class PixelSensitivity(_PixelCountMetric):
    """Pooled pixel sensitivity TP / (TP + FN) over the epoch (0 before any tumour pixel)."""

    default_name = "sensitivity"

    def result(self) -> Any:
        tp, _, fn, _ = ops.unstack(self.counts)
        return self._safe_ratio(tp, tp + fn, 0.0)


@keras.saving.register_keras_serializable(package="mammoseg")
class PixelSpecificity(_PixelCountMetric):
    """Pooled pixel specificity TN / (TN + FP) over the epoch."""

    default_name = "specificity"

    def result(self) -> Any:
        _, fp, _, tn = ops.unstack(self.counts)
        return self._safe_ratio(tn, tn + fp, 0.0)


@keras.saving.register_keras_serializable(package="mammoseg")
class EmptyPredictionRate(_PixelCountMetric):
    """Share of the epoch's images with a lesion whose prediction is empty (0 before any)."""

    default_name = "empty_prediction_rate"

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        """Count images with a lesion (slot 0) and, among them, empty predictions (slot 1)."""
        y_pred = ops.cast(y_pred, "float32")
        if self.from_logits:
            y_pred = ops.sigmoid(y_pred)
        batch = ops.shape(y_pred)[0]
        pred = ops.reshape(ops.cast(y_pred >= self.threshold, "float32"), (batch, -1))
        truth = ops.reshape(ops.cast(ops.cast(y_true, "float32") > 0, "float32"), (batch, -1))
        lesion = ops.cast(ops.max(truth, axis=1) > 0, "float32")
        empty = ops.cast(ops.max(pred, axis=1) == 0, "float32")
        zero = ops.zeros((), "float32")
        self.counts.assign_add(ops.stack([ops.sum(lesion), ops.sum(lesion * empty), zero, zero]))

    def result(self) -> Any:
        lesions, empty, _, _ = ops.unstack(self.counts)
        return self._safe_ratio(empty, lesions, 0.0)


__all__ = [
    "FROC_FP_RATES",
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
    "confusion_counts",
    "dice_per_image",
    "dice_pooled",
    "dice_score",
    "empty_prediction_rate",
    "foreground_iou",
    "froc",
    "froc_curve",
    "lesion_sensitivity_at_fppi",
    "match_lesions",
    "mean_iou_both_classes",
    "regions_from_probability",
    "sensitivity",
    "specificity",
]
