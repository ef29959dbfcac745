"""Keras metrics for training: pooled pixel counts accumulated over an epoch, like TF1's
``mean_iou`` (the paper's metric), and the share of lesion images predicted empty.

Each class is registered as ``mammoseg>ClassName`` so saved models load; the definitions match
the NumPy functions of `mammoseg.metrics.overlap` with ``reduction="pooled"``. The paper's
metric, `MeanIoUBothClasses`, is ``keras.metrics.BinaryIoU(target_class_ids=[0, 1])`` with a
``from_logits`` switch and ``truth > 0`` binarisation added (issue #18).
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops


def _check_threshold(threshold: Any) -> float:
    if not isinstance(threshold, int | float) or isinstance(threshold, bool):
        raise ValueError(f"`threshold` must be a number, received {threshold!r}")
    return float(threshold)


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
        self.threshold = _check_threshold(threshold)
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
class MeanIoUBothClasses(keras.metrics.BinaryIoU):
    """The paper's metric, pooled over the epoch: mean of background and tumour IoU.

    ``keras.metrics.BinaryIoU(target_class_ids=[0, 1], threshold=threshold)`` (a prediction
    equal to the threshold is tumour), plus what the other metrics here take: ``from_logits``
    (a sigmoid first) and truths binarised with ``truth > 0`` (BinaryIoU would drop a truth of
    255 and floor 0.5 to background). A class absent from both truth and prediction is left out
    of the mean, as in TF1's ``mean_iou``: an image without lesion predicted empty scores 1.0
    (0.9999999: BinaryIoU adds 1e-7 to each denominator, the only difference from the earlier
    pixel-count version, measured at most 1.2e-7 on the cases in tests/test_metrics.py).
    ``sample_weight`` weights pixels, as in BinaryIoU; a weight per image (shape (B,)) weights
    all its pixels. The confusion matrix is float32, as this metric's counts always were:
    BinaryIoU's default int64 matrix truncates a weight of 0.5 to 0.

    Args:
        threshold: binarisation threshold of the predicted probability.
        from_logits: predictions are logits (a sigmoid is applied first).
        name, dtype: as for any `keras.metrics.Metric`.

    Example:
        >>> m = MeanIoUBothClasses()
        >>> m.update_state([[1, 1], [0, 0]], [[0.9, 0.2], [0.1, 0.3]])
        >>> round(float(m.result()), 4)  # (1/2 + 2/3) / 2
        0.5833
    """

    def __init__(
        self,
        threshold: float = 0.5,
        from_logits: bool = False,
        name: str | None = None,
        dtype: str | None = None,
    ) -> None:
        super().__init__(
            target_class_ids=[0, 1],
            threshold=_check_threshold(threshold),
            name=name or "mean_iou_both_classes",
            dtype=dtype or "float32",
        )
        self.from_logits = bool(from_logits)

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        """Add the batch to the confusion matrix (``y_pred >= threshold`` is tumour)."""
        y_pred = ops.cast(y_pred, "float32")
        if self.from_logits:
            y_pred = ops.sigmoid(y_pred)
        truth = ops.cast(ops.cast(y_true, "float32") > 0, "float32")
        if sample_weight is not None:
            # A weight per image, as `fit(sample_weight=...)` passes it, weights its pixels.
            sample_weight = ops.cast(sample_weight, "float32")
            while len(sample_weight.shape) < len(truth.shape):
                sample_weight = ops.expand_dims(sample_weight, -1)
            sample_weight = ops.broadcast_to(sample_weight, ops.shape(truth))
        super().update_state(truth, y_pred, sample_weight)

    def get_config(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "from_logits": self.from_logits,
            "name": self.name,
            "dtype": self.dtype,
        }


@keras.saving.register_keras_serializable(package="mammoseg")
class PixelSensitivity(_PixelCountMetric):
    """Pooled pixel sensitivity TP / (TP + FN) over the epoch (0 before any tumour pixel)."""

    default_name = "sensitivity"

    def result(self) -> Any:
        tp, _, fn, _ = ops.unstack(self.counts)
        return self._safe_ratio(tp, tp + fn, 0.0)


@keras.saving.register_keras_serializable(package="mammoseg")
class PixelSpecificity(_PixelCountMetric):
    """Pooled pixel specificity TN / (TN + FP) over the epoch; NaN without a background pixel."""

    default_name = "specificity"

    def result(self) -> Any:
        _, fp, _, tn = ops.unstack(self.counts)
        return self._safe_ratio(tn, tn + fp, float("nan"))


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
    "DiceMetric",
    "EmptyPredictionRate",
    "ForegroundIoU",
    "MeanIoUBothClasses",
    "PixelSensitivity",
    "PixelSpecificity",
]
