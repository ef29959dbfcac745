"""Segmentation losses: the paper's weighted cross-entropy and the overlap losses that fix it.

Every loss is a pure function on tensors, ``f(y_true, y_pred, ...) -> (batch,)``, that reduces
over each image (H, W, C), so Keras' default reduction averages over the batch; and a thin
serialisable `keras.losses.Loss` class around it. ``y_pred`` is cast to float32 first (mixed
precision), probabilities are clipped to [eps, 1 - eps] and logits go through ``softplus``, so
values and gradients stay finite at p = 0 and p = 1.

Paper section V.C: pixel-wise binary cross-entropy with tumour : background weights 10 : 1,
1e6 : 1 and 1.5e6 : 1 (``WeightedBinaryCrossentropy(positive_weight=1e6)``) still converged to
all-background. Overlap losses (Dice, Tversky, focal Tversky, Dice + BCE) are what stop that
(facts.md §6).

The pure functions come first, then the `keras.losses.Loss` classes that wrap them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
from keras import ops


def _prepare(y_true: Any, y_pred: Any) -> tuple[Any, Any, list[int]]:
    y_pred = ops.cast(y_pred, "float32")
    y_true = ops.cast(y_true, "float32")
    return y_true, y_pred, list(range(1, len(y_pred.shape)))


def _log_probabilities(y_pred: Any, from_logits: bool) -> tuple[Any, Any]:
    """``(log p, log(1 - p))``, finite for any input."""
    if from_logits:
        return -ops.softplus(-y_pred), -ops.softplus(y_pred)
    eps = keras.config.epsilon()
    p = ops.clip(y_pred, eps, 1.0 - eps)
    return ops.log(p), ops.log1p(-p)


def _probabilities(y_pred: Any, from_logits: bool) -> Any:
    return ops.sigmoid(y_pred) if from_logits else ops.clip(y_pred, 0.0, 1.0)


def _overlap_sums(y_true: Any, p: Any, axes: list[int], over_batch: bool):
    """(TP, FP, FN) per image, or over the whole batch repeated for every image.

    Over the batch ("batch Dice", as nnU-Net) an image without tumour no longer rewards an empty
    prediction on its own: per image, smoothing makes an empty prediction on a normal image a
    perfect score, and with most images normal that pulls the model towards predicting nothing.
    """
    reduce_axes = [0, *axes] if over_batch else axes
    sums = [
        ops.sum(p * y_true, axis=reduce_axes),
        ops.sum(p * (1.0 - y_true), axis=reduce_axes),
        ops.sum((1.0 - p) * y_true, axis=reduce_axes),
    ]
    if over_batch:  # one value for the batch, repeated for every image (Keras averages them)
        zeros = ops.sum(ops.zeros_like(y_true), axis=axes)
        sums = [zeros + value for value in sums]
    return sums


def weighted_binary_crossentropy(
    y_true: Any,
    y_pred: Any,
    positive_weight: float = 1.0,
    negative_weight: float = 1.0,
    from_logits: bool = False,
) -> Any:
    """Per-image mean of ``-(w₊ y log p + w₋ (1 - y) log(1 - p))``.

    Args (shared by every function here):
        y_true: binary masks (B, H, W, 1) (any shape, batch first).
        y_pred: probabilities, or logits with ``from_logits=True``, shaped like ``y_true``;
            any float dtype (cast to float32).
        positive_weight: weight of tumour pixels (w₊).
        negative_weight: weight of background pixels (w₋).
        from_logits: ``y_pred`` holds logits.

    Returns:
        float32 tensor (B,): one loss per image.

    Example:
        >>> loss = weighted_binary_crossentropy([[0.0, 1.0]], [[0.5, 0.5]], positive_weight=3.0)
        >>> round(float(loss[0]), 4)  # (log 2 + 3 log 2) / 2
        1.3863
    """
    y_true, y_pred, axes = _prepare(y_true, y_pred)
    log_p, log_not_p = _log_probabilities(y_pred, from_logits)
    pixel = -(positive_weight * y_true * log_p + negative_weight * (1.0 - y_true) * log_not_p)
    return ops.mean(pixel, axis=axes)


def binary_focal_loss(
    y_true: Any,
    y_pred: Any,
    gamma: float = 2.0,
    alpha: float | None = 0.25,
    from_logits: bool = False,
) -> Any:
    """Per-image mean of ``-α_t (1 - p_t)^γ log p_t`` (Lin et al. 2017).

    ``p_t`` is p where y = 1 and 1 - p where y = 0; ``α_t`` is ``alpha`` for tumour pixels and
    ``1 - alpha`` for background (no weighting when ``alpha`` is None). γ = 0, α = None is BCE.
    """
    y_true, y_pred, axes = _prepare(y_true, y_pred)
    log_p, log_not_p = _log_probabilities(y_pred, from_logits)
    log_p_t = y_true * log_p + (1.0 - y_true) * log_not_p
    # (1 - p_t)^γ has an infinite derivative at p_t = 1 when γ < 1: floor the base so a
    # confidently right pixel gives a finite (zero) gradient instead of 0 · inf = NaN.
    not_p_t = ops.maximum(-ops.expm1(log_p_t), 1e-12)
    pixel = -ops.power(not_p_t, gamma) * log_p_t
    if alpha is not None:
        pixel = (alpha * y_true + (1.0 - alpha) * (1.0 - y_true)) * pixel
    return ops.mean(pixel, axis=axes)


def tversky_index(
    y_true: Any,
    y_pred: Any,
    alpha: float = 0.5,
    beta: float = 0.5,
    smooth: float = 1.0,
    from_logits: bool = False,
    over_batch: bool = False,
) -> Any:
    """Soft Tversky index per image: ``(TP + s) / (TP + α FP + β FN + s)`` (Salehi et al. 2017).

    ``alpha`` weighs false positives and ``beta`` false negatives; α = β = 0.5 is the Dice
    coefficient (with smoothing 2s). TP, FP, FN are sums of ``p y``, ``p (1 - y)`` and
    ``(1 - p) y`` over the image, or over the whole batch with ``over_batch=True`` (every
    image then gets the batch's value).
    An image with empty truth and prediction scores 1 (``smooth`` > 0).
    """
    y_true, y_pred, axes = _prepare(y_true, y_pred)
    p = _probabilities(y_pred, from_logits)
    tp, fp, fn = _overlap_sums(y_true, p, axes, over_batch)
    return (tp + smooth) / (tp + alpha * fp + beta * fn + smooth)


def dice_loss(
    y_true: Any, y_pred: Any, smooth: float = 1.0, from_logits: bool = False, over_batch=False
) -> Any:
    """Per-image ``1 - (2 Σ p y + s) / (Σ p + Σ y + s)``; 0 for empty truth and prediction.

    With ``over_batch=True`` the sums run over the whole batch ("batch Dice").

    Example:
        >>> round(float(dice_loss([[1.0, 0.0]], [[1.0, 1.0]], smooth=0.0)[0]), 4)  # 1 - 2/3
        0.3333
    """
    y_true, y_pred, axes = _prepare(y_true, y_pred)
    p = _probabilities(y_pred, from_logits)
    tp, fp, fn = _overlap_sums(y_true, p, axes, over_batch)
    return 1.0 - (2.0 * tp + smooth) / (2.0 * tp + fp + fn + smooth)


def tversky_loss(
    y_true: Any,
    y_pred: Any,
    alpha: float = 0.3,
    beta: float = 0.7,
    smooth: float = 1.0,
    from_logits: bool = False,
    over_batch: bool = False,
) -> Any:
    """Per-image ``1 - TverskyIndex``; β > α penalises missed tumour pixels more."""
    return 1.0 - tversky_index(y_true, y_pred, alpha, beta, smooth, from_logits, over_batch)


def focal_tversky_loss(
    y_true: Any,
    y_pred: Any,
    alpha: float = 0.3,
    beta: float = 0.7,
    gamma: float = 0.75,
    smooth: float = 1.0,
    from_logits: bool = False,
    over_batch: bool = False,
) -> Any:
    """Per-image ``(1 - TverskyIndex)^γ`` (Abraham and Khan 2019 use γ = 1/(4/3) = 0.75).

    The base is kept ≥ eps so the gradient stays finite at a perfect prediction for γ < 1.
    """
    loss = 1.0 - tversky_index(y_true, y_pred, alpha, beta, smooth, from_logits, over_batch)
    return ops.power(ops.maximum(loss, keras.config.epsilon()), gamma)


PAPER_POSITIVE_WEIGHTS = (10.0, 1e6, 1.5e6)  # section V.C, background weight 1


# --- Keras Loss classes ---------------------------------------------------------------------------


def _check_positive(name: str, value: Any, allow_zero: bool = False) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    ok = ok and (value >= 0 if allow_zero else value > 0)
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"`{name}` must be a number {bound}, received {value!r}")
    return float(value)


class _ImageLoss(keras.losses.Loss):
    """Shared plumbing: ``get_config`` returns exactly the constructor arguments, and ``call``
    passes them, in ``_arguments`` order, to the pure function ``_function``."""

    _arguments: tuple[str, ...] = ()
    _function: Any = None

    def __init__(self, name: str, reduction: str = "sum_over_batch_size") -> None:
        super().__init__(name=name, reduction=reduction)

    def get_config(self) -> dict[str, Any]:
        config = {key: getattr(self, key) for key in self._arguments}
        return {**config, "name": self.name, "reduction": self.reduction}

    def call(self, y_true: Any, y_pred: Any) -> Any:
        arguments = (getattr(self, key) for key in self._arguments)
        return type(self)._function(y_true, y_pred, *arguments)


@keras.saving.register_keras_serializable(package="mammoseg")
class WeightedBinaryCrossentropy(_ImageLoss):
    """Binary cross-entropy with class weights, per image (paper section V.C).

    Args:
        positive_weight: weight of tumour pixels; the paper's 1:10, 1:1e6 and 1:1.5e6 are
            ``positive_weight=10``, ``1e6`` and ``1.5e6`` (`PAPER_POSITIVE_WEIGHTS`).
        negative_weight: weight of background pixels.
        from_logits: ``y_pred`` holds logits.
        name, reduction: as for any `keras.losses.Loss`.

    Raises:
        ValueError: a weight that is not a number > 0.

    Example:
        >>> loss = WeightedBinaryCrossentropy(positive_weight=10)  # the paper's 1:10
        >>> model.compile("adam", loss=loss)  # doctest: +SKIP
    """

    _arguments = ("positive_weight", "negative_weight", "from_logits")
    _function = staticmethod(weighted_binary_crossentropy)

    def __init__(
        self,
        positive_weight: float,
        negative_weight: float = 1.0,
        from_logits: bool = False,
        name: str = "weighted_binary_crossentropy",
        reduction: str = "sum_over_batch_size",
    ) -> None:
        super().__init__(name, reduction)
        self.positive_weight = _check_positive("positive_weight", positive_weight)
        self.negative_weight = _check_positive("negative_weight", negative_weight)
        self.from_logits = bool(from_logits)


@keras.saving.register_keras_serializable(package="mammoseg")
class BinaryFocalLoss(_ImageLoss):
    """Focal loss per image; see `binary_focal_loss`.

    Args:
        gamma: focusing exponent (≥ 0; 2 in Lin et al.).
        alpha: weight of tumour pixels in [0, 1], or None.
        from_logits: ``y_pred`` holds logits.

    Raises:
        ValueError: ``gamma`` < 0 or ``alpha`` outside [0, 1].
    """

    _arguments = ("gamma", "alpha", "from_logits")
    _function = staticmethod(binary_focal_loss)

    def __init__(
        self,
        gamma: float = 2.0,
        alpha: float | None = 0.25,
        from_logits: bool = False,
        name: str = "binary_focal_loss",
        reduction: str = "sum_over_batch_size",
    ) -> None:
        super().__init__(name, reduction)
        self.gamma = _check_positive("gamma", gamma, allow_zero=True)
        if alpha is not None and not (isinstance(alpha, int | float) and 0 <= alpha <= 1):
            raise ValueError(f"`alpha` must be None or a number in [0, 1], received {alpha!r}")
        self.alpha = None if alpha is None else float(alpha)
        self.from_logits = bool(from_logits)


@keras.saving.register_keras_serializable(package="mammoseg")
class DiceLoss(_ImageLoss):
    """Soft Dice loss per image; see `dice_loss`.

    Args:
        smooth: added to numerator and denominator; must be > 0, so an empty truth with an
            exact-zero prediction scores 0 loss, not 0/0.
        from_logits: ``y_pred`` holds logits.
        over_batch: sum over the whole batch ("batch Dice", nnU-Net) instead of per image;
            with many lesion-free images per-image Dice rewards predicting nothing.

    Example:
        >>> loss = CombinedLoss([DiceLoss(), keras.losses.BinaryCrossentropy()])
    """

    _arguments = ("smooth", "from_logits", "over_batch")
    _function = staticmethod(dice_loss)

    def __init__(
        self,
        smooth: float = 1.0,
        from_logits: bool = False,
        over_batch: bool = False,
        name: str = "dice_loss",
        reduction: str = "sum_over_batch_size",
    ) -> None:
        super().__init__(name, reduction)
        self.smooth = _check_positive("smooth", smooth, allow_zero=False)
        self.from_logits = bool(from_logits)
        self.over_batch = bool(over_batch)


@keras.saving.register_keras_serializable(package="mammoseg")
class TverskyLoss(_ImageLoss):
    """Tversky loss per image; see `tversky_index`.

    Args:
        alpha: weight of false positives.
        beta: weight of false negatives (β > α favours sensitivity).
        smooth: smoothing constant.
        from_logits: ``y_pred`` holds logits.
        over_batch: sums over the whole batch instead of per image (see `DiceLoss`).

    Raises:
        ValueError: a negative weight, or ``alpha`` = ``beta`` = 0.
    """

    _arguments = ("alpha", "beta", "smooth", "from_logits", "over_batch")
    _function = staticmethod(tversky_loss)

    def __init__(
        self,
        alpha: float = 0.3,
        beta: float = 0.7,
        smooth: float = 1.0,
        from_logits: bool = False,
        over_batch: bool = False,
        name: str = "tversky_loss",
        reduction: str = "sum_over_batch_size",
    ) -> None:
        super().__init__(name, reduction)
        self.alpha = _check_positive("alpha", alpha, allow_zero=True)
        self.beta = _check_positive("beta", beta, allow_zero=True)
        if self.alpha == self.beta == 0:
            raise ValueError("`alpha` and `beta` cannot both be 0 (the loss would be constant)")
        self.smooth = _check_positive("smooth", smooth, allow_zero=False)
        self.from_logits = bool(from_logits)
        self.over_batch = bool(over_batch)


@keras.saving.register_keras_serializable(package="mammoseg")
class FocalTverskyLoss(TverskyLoss):
    """Focal Tversky loss per image; see `focal_tversky_loss`.

    Args:
        alpha, beta, smooth, from_logits, over_batch: as for `TverskyLoss`.
        gamma: exponent (> 0); below 1 it focuses on hard images.
    """

    _arguments = ("alpha", "beta", "gamma", "smooth", "from_logits", "over_batch")
    _function = staticmethod(focal_tversky_loss)

    def __init__(
        self,
        alpha: float = 0.3,
        beta: float = 0.7,
        gamma: float = 0.75,
        smooth: float = 1.0,
        from_logits: bool = False,
        over_batch: bool = False,
        name: str = "focal_tversky_loss",
        reduction: str = "sum_over_batch_size",
    ) -> None:
        super().__init__(alpha, beta, smooth, from_logits, over_batch, name, reduction)
        self.gamma = _check_positive("gamma", gamma)


@keras.saving.register_keras_serializable(package="mammoseg")
class CombinedLoss(keras.losses.Loss):
    """Weighted sum of losses, each reduced per image first (e.g. Dice + BCE).

    Args:
        losses: `keras.losses.Loss` instances (any: Keras' own or this module's).
        weights: one number per loss (default: all 1).
        name, reduction: as for any `keras.losses.Loss`.

    Raises:
        ValueError: no losses, a weights list of another length, or a negative weight.
        TypeError: an entry that is not a `keras.losses.Loss`.

    Example:
        >>> loss = CombinedLoss([DiceLoss(), keras.losses.BinaryCrossentropy()], [1.0, 0.5])
    """

    def __init__(
        self,
        losses: Sequence[keras.losses.Loss],
        weights: Sequence[float] | None = None,
        name: str = "combined_loss",
        reduction: str = "sum_over_batch_size",
    ) -> None:
        super().__init__(name=name, reduction=reduction)
        losses = [
            keras.saving.deserialize_keras_object(loss) if isinstance(loss, dict) else loss
            for loss in losses
        ]
        if not losses:
            raise ValueError("`losses` must hold at least one loss, received []")
        for loss in losses:
            if not isinstance(loss, keras.losses.Loss):
                raise TypeError(
                    f"`losses` must hold keras.losses.Loss instances, received {loss!r}"
                )
        weights = [1.0] * len(losses) if weights is None else list(weights)
        if len(weights) != len(losses):
            raise ValueError(
                f"`weights` must have one entry per loss ({len(losses)}), received {weights!r}"
            )
        self.losses = losses
        self.weights = [_check_positive("weights", w, allow_zero=True) for w in weights]

    def call(self, y_true: Any, y_pred: Any) -> Any:
        total = 0.0
        for weight, loss in zip(self.weights, self.losses):
            values = ops.cast(loss.call(y_true, y_pred), "float32")
            if len(values.shape) > 1:
                values = ops.mean(values, axis=list(range(1, len(values.shape))))
            total = total + weight * values
        return total

    def get_config(self) -> dict[str, Any]:
        return {
            "losses": [keras.saving.serialize_keras_object(loss) for loss in self.losses],
            "weights": self.weights,
            "name": self.name,
            "reduction": self.reduction,
        }


def dice_bce_loss(
    bce_weight: float = 1.0, from_logits: bool = False, over_batch: bool = False
) -> CombinedLoss:
    """Dice + ``bce_weight`` × binary cross-entropy, the usual cure for "predicts only zeros".

    ``over_batch`` computes the Dice term over the whole batch (nnU-Net's batch Dice).

    Example:
        >>> model.compile("adam", loss=dice_bce_loss(from_logits=True))  # doctest: +SKIP
    """
    return CombinedLoss(
        [
            DiceLoss(from_logits=from_logits, over_batch=over_batch),
            WeightedBinaryCrossentropy(1.0, 1.0, from_logits),
        ],
        [1.0, bce_weight],
        name="dice_bce_loss",
    )


__all__ = [
    "PAPER_POSITIVE_WEIGHTS",
    "BinaryFocalLoss",
    "CombinedLoss",
    "DiceLoss",
    "FocalTverskyLoss",
    "TverskyLoss",
    "WeightedBinaryCrossentropy",
    "binary_focal_loss",
    "dice_bce_loss",
    "dice_loss",
    "focal_tversky_loss",
    "tversky_index",
    "tversky_loss",
    "weighted_binary_crossentropy",
]
