"""Segmentation losses as pure functions on tensors; the Keras classes are in `mammoseg.losses`.

Each function is ``f(y_true, y_pred, ...) -> (batch,)``, reduced over each image (H, W, C):
``y_pred`` is cast to float32 first (mixed precision), probabilities are clipped to
[eps, 1 - eps] and logits go through ``softplus``, so values and gradients stay finite at
p = 0 and p = 1. All are re-exported by `mammoseg.losses`.
"""

from __future__ import annotations

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
    pixel = -ops.power(1.0 - ops.exp(log_p_t), gamma) * log_p_t
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
