"""Keras metrics for training: pooled pixel counts accumulated over an epoch, like TF1's
``mean_iou`` (the paper's metric), and the share of lesion images predicted empty.

Each class is registered as ``mammoseg>ClassName`` so saved models load, and each takes
``sample_weight`` (one weight per image, or per pixel for the pixel counts), except
`AuthorsMeanIoU`, which refuses it as the authors' metric had none; the definitions match
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


def _pixel_weights(sample_weight: Any, pred: Any) -> Any:
    """Per-pixel weights shaped like ``pred``: ones, a weight per image, or per pixel."""
    if sample_weight is None:
        return ops.ones_like(pred)
    weight = ops.cast(sample_weight, "float32")
    while len(weight.shape) < len(pred.shape):
        weight = ops.expand_dims(weight, -1)
    return ops.broadcast_to(weight, ops.shape(pred))


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
        """Add the batch's (TP, FP, FN, TN), each pixel counted with its weight.

        ``sample_weight``: one weight per image (shape (B,), as ``fit(sample_weight=...)``
        passes it) or one per pixel (broadcastable to the predictions); None counts 1 each.
        """
        y_pred = ops.cast(y_pred, "float32")
        if self.from_logits:
            y_pred = ops.sigmoid(y_pred)
        pred = ops.cast(y_pred >= self.threshold, "float32")
        truth = ops.cast(ops.cast(y_true, "float32") > 0, "float32")
        truth = ops.reshape(truth, ops.shape(pred))
        weight = _pixel_weights(sample_weight, pred)
        tp = ops.sum(weight * pred * truth)
        fp = ops.sum(weight * pred) - tp
        fn = ops.sum(weight * truth) - tp
        tn = ops.sum(weight) - tp - fp - fn
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
            sample_weight = _pixel_weights(sample_weight, truth)
        super().update_state(truth, y_pred, sample_weight)

    def get_config(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "from_logits": self.from_logits,
            "name": self.name,
            "dtype": self.dtype,
        }


@keras.saving.register_keras_serializable(package="mammoseg")
class AuthorsMeanIoU(keras.metrics.Metric):
    """The paper's Fig. 4 metric exactly as the authors' code computed it (facts.md §8).

    Their notebooks wrap TF1 ``tf.metrics.mean_iou(y_true, y_pred, num_classes=2)`` in the
    ``as_keras_metric`` decorator. Three things follow, all reproduced here:

    * ``y_pred`` is cast to an integer class, so every probability below exactly 1.0 is
      class 0 (a sigmoid output is never "tumour" unless it saturates);
    * the confusion matrix is initialised once, when the metric is built, and never reset: it
      streams over every batch since then, across epochs, training and validation alike;
    * after each batch the value is TF1's mean IoU of that streamed matrix (the mean over the
      classes whose union is non-empty), and Keras 2 showed the mean of those per-batch values
      over the epoch, weighted by batch size.

    ``reset_state`` (Keras calls it at each epoch start) therefore resets only the epoch's
    running mean; `reset_stream` starts the confusion matrix again. An empty predictor on data
    where tumour is a small share of the pixels reads close to 0.5 (background IoU near 1,
    tumour IoU 0), never 0.95.

    Args:
        name, dtype: as for any `keras.metrics.Metric`.

    Example:
        >>> m = AuthorsMeanIoU()
        >>> m.update_state([[1.0, 0.0]], [[0.99, 0.0]])  # 0.99 -> class 0: IoUs 0 and 1/2
        >>> float(m.result())
        0.25
        >>> m.update_state([[1.0, 0.0]], [[1.0, 0.0]])  # streamed: (2/3 + 1/2) / 2 = 7/12
        >>> round(float(m.result()), 4)  # the mean of the two batches' values, (1/4 + 7/12) / 2
        0.4167
    """

    def __init__(self, name: str = "authors_mean_iou", dtype: str | None = None) -> None:
        super().__init__(name=name, dtype=dtype)
        # Rows: truth class, columns: predicted class (TF1's layout).
        self.confusion = self.add_variable(
            shape=(2, 2), initializer="zeros", dtype="float64", name="confusion"
        )
        self.value_sum = self.add_variable(
            shape=(), initializer="zeros", dtype="float64", name="value_sum"
        )
        self.weight_sum = self.add_variable(
            shape=(), initializer="zeros", dtype="float64", name="weight_sum"
        )

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        """Stream the batch into the confusion matrix; add its mean IoU to the epoch's mean.

        ``sample_weight`` is not supported (the authors passed none): it raises.
        """
        if sample_weight is not None:
            raise ValueError("AuthorsMeanIoU does not support `sample_weight`")
        # tf.cast to int64 truncates towards zero: 0.99 -> 0, 1.0 -> 1.
        pred = ops.reshape(ops.cast(ops.cast(y_pred, "float32"), "int64"), (-1,))
        truth = ops.reshape(ops.cast(ops.cast(y_true, "float32"), "int64"), (-1,))
        pred_one = ops.cast(ops.equal(pred, 1), "float64")
        truth_one = ops.cast(ops.equal(truth, 1), "float64")
        pred_zero = ops.cast(ops.equal(pred, 0), "float64")
        truth_zero = ops.cast(ops.equal(truth, 0), "float64")
        counts = ops.stack(
            [
                ops.stack([ops.sum(truth_zero * pred_zero), ops.sum(truth_zero * pred_one)]),
                ops.stack([ops.sum(truth_one * pred_zero), ops.sum(truth_one * pred_one)]),
            ]
        )
        self.confusion.assign_add(counts)
        batch = ops.cast(ops.shape(y_true)[0], "float64")
        self.value_sum.assign_add(batch * self._streamed_mean_iou())
        self.weight_sum.assign_add(batch)

    def _streamed_mean_iou(self) -> Any:
        cm = self.confusion
        diagonal = ops.diagonal(cm)
        union = ops.sum(cm, axis=0) + ops.sum(cm, axis=1) - diagonal
        valid = ops.sum(ops.cast(union > 0, "float64"))
        iou = diagonal / ops.where(union > 0, union, 1.0)
        return ops.where(valid > 0, ops.sum(iou) / ops.maximum(valid, 1.0), 0.0)

    def result(self) -> Any:
        return ops.where(
            self.weight_sum > 0, self.value_sum / ops.maximum(self.weight_sum, 1.0), 0.0
        )

    def reset_state(self) -> None:
        """Start the epoch's running mean again; the streamed confusion matrix stays."""
        self.value_sum.assign(0.0)
        self.weight_sum.assign(0.0)

    def reset_stream(self) -> None:
        """Forget the streamed confusion matrix too (a new model, a new run)."""
        self.reset_state()
        self.confusion.assign(ops.zeros((2, 2), "float64"))

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype}


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
        """Count images with a lesion (slot 0) and, among them, empty predictions (slot 1).

        ``sample_weight``: one weight per image, shape (B,), or None (1 each).

        Raises:
            ValueError: a weight of another shape (per-pixel weights do not weight images).
        """
        y_pred = ops.cast(y_pred, "float32")
        if self.from_logits:
            y_pred = ops.sigmoid(y_pred)
        batch = ops.shape(y_pred)[0]
        pred = ops.reshape(ops.cast(y_pred >= self.threshold, "float32"), (batch, -1))
        truth = ops.reshape(ops.cast(ops.cast(y_true, "float32") > 0, "float32"), (batch, -1))
        lesion = ops.cast(ops.max(truth, axis=1) > 0, "float32")
        empty = ops.cast(ops.max(pred, axis=1) == 0, "float32")
        if sample_weight is not None:
            weight = ops.cast(sample_weight, "float32")
            if len(weight.shape) != 1:
                raise ValueError(
                    "EmptyPredictionRate takes one `sample_weight` per image, shape (B,), "
                    f"received shape {tuple(weight.shape)}"
                )
            lesion = lesion * weight
        zero = ops.zeros((), "float32")
        self.counts.assign_add(ops.stack([ops.sum(lesion), ops.sum(lesion * empty), zero, zero]))

    def result(self) -> Any:
        lesions, empty, _, _ = ops.unstack(self.counts)
        return self._safe_ratio(empty, lesions, 0.0)


__all__ = [
    "AuthorsMeanIoU",
    "DiceMetric",
    "EmptyPredictionRate",
    "ForegroundIoU",
    "MeanIoUBothClasses",
    "PixelSensitivity",
    "PixelSpecificity",
]
