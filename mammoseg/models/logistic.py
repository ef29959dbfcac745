"""Pixel-wise logistic regression (paper section IV.A): a Keras model and the authors' baseline.

The paper classifies every pixel as tumour or not with a logistic regression. In the authors'
code the only feature was the raw pixel intensity and the model was scikit-learn's
``LogisticRegression(solver="lbfgs")`` (facts.md §1). `PixelLogisticRegression` reproduces that
with class weights and a bounded pixel sample, so 1024² images do not exhaust memory;
`build_pixel_logistic_regression` is the same model as a Keras 1×1 convolution + sigmoid over any
per-pixel features (the input channels), trainable with the project's losses.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from mammoseg.checks import check_choice, check_fraction, check_input_shape, check_positive_int
from mammoseg.models.blocks import OUTPUT_MODES, output_conv


def build_pixel_logistic_regression(
    input_shape: tuple[int | None, int | None, int] = (None, None, 1),
    output: str = "sigmoid",
    name: str = "pixel_logistic_regression",
) -> keras.Model:
    """Per-pixel logistic regression as a Keras model (section IV.A).

    One 1×1 convolution (layer ``logistic``, float32) over the input channels, i.e.
    ``p = sigmoid(w · features + b)`` at every pixel.

    Args:
        input_shape: (height, width, features); height and width may be None.
        output: "sigmoid" (probabilities) or "logits".
        name: model name.

    Returns:
        An uncompiled `keras.Model` mapping (B, H, W, C) to (B, H, W, 1).

    Raises:
        ValueError: an invalid ``input_shape`` or ``output``.

    Example:
        >>> model = build_pixel_logistic_regression()
        >>> model.count_params()
        2
    """
    check_choice("output", output, OUTPUT_MODES)
    input_shape = check_input_shape(input_shape)
    inputs = keras.Input(input_shape, name="image")
    outputs = output_conv(inputs, 1, output, name="logistic")
    return keras.Model(inputs, outputs, name=name)


def _pixels(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    return image.reshape(-1, 1) if image.ndim == 2 else image.reshape(-1, image.shape[-1])


def sample_pixels(
    images: Sequence[np.ndarray],
    masks: Sequence[np.ndarray],
    max_pixels: int = 200_000,
    positive_fraction: float | None = None,
    random_state: int | None = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw at most ``max_pixels`` (feature, label) pairs, spread evenly over the images.

    Args:
        images: arrays (H, W) or (H, W, C), one per image; sizes may differ.
        masks: binary arrays (H, W) or (H, W, 1), matching ``images``.
        max_pixels: upper bound on the pixels returned (memory stays bounded for any number of
            1024² images).
        positive_fraction: None samples pixels uniformly (the natural class ratio); a number in
            (0, 1) draws that share of each image's quota from its tumour pixels (when it has
            enough), so rare tumour pixels are not lost.
        random_state: seed.

    Returns:
        ``(features (n, C) float32, labels (n,) uint8)`` with n ≤ max_pixels.

    Raises:
        ValueError: invalid arguments, or mismatched numbers or shapes of images and masks.

    Example:
        >>> x, y = sample_pixels([np.zeros((4, 4))], [np.eye(4)], max_pixels=8)
        >>> x.shape, y.shape
        ((8, 1), (8,))
    """
    check_positive_int("max_pixels", max_pixels)
    if positive_fraction is not None:
        check_fraction("positive_fraction", positive_fraction)
    if len(images) != len(masks) or len(images) == 0:
        raise ValueError(
            f"`images` and `masks` must be non-empty and of equal length, received "
            f"{len(images)} images and {len(masks)} masks"
        )
    rng = np.random.default_rng(random_state)
    quota = max(1, max_pixels // len(images))
    features, labels = [], []
    for index, (image, mask) in enumerate(zip(images, masks)):
        x = _pixels(image)
        y = (np.asarray(mask).reshape(-1) > 0).astype(np.uint8)
        if len(x) != len(y):
            raise ValueError(
                f"image {index} has {len(x)} pixels but its mask has {len(y)}: shapes "
                f"{np.shape(image)} and {np.shape(mask)}"
            )
        take = min(quota, len(y))
        if positive_fraction is None:
            chosen = rng.choice(len(y), size=take, replace=False)
        else:
            positives, negatives = np.flatnonzero(y), np.flatnonzero(y == 0)
            n_pos = min(len(positives), int(round(take * positive_fraction)))
            n_neg = min(len(negatives), take - n_pos)
            chosen = np.concatenate(
                [
                    rng.choice(positives, size=n_pos, replace=False),
                    rng.choice(negatives, size=n_neg, replace=False),
                ]
            )
        features.append(x[chosen].astype(np.float32))
        labels.append(y[chosen])
    return np.concatenate(features), np.concatenate(labels)


class PixelLogisticRegression:
    """The authors' baseline: scikit-learn logistic regression on raw pixel intensity.

    Args:
        max_pixels: pixels sampled for fitting (see `sample_pixels`).
        class_weight: passed to scikit-learn: "balanced" (default; weights inversely
            proportional to class frequencies), a dict ``{0: w0, 1: w1}``, or None (the
            authors' unweighted fit).
        positive_fraction: see `sample_pixels`.
        C: inverse regularisation strength.
        max_iter: iterations of the lbfgs solver.
        random_state: seed of the pixel sampling.

    Example:
        >>> clf = PixelLogisticRegression(max_pixels=1000).fit(images, masks)  # doctest: +SKIP
        >>> probabilities = clf.predict_proba(images)  # (N, H, W) float32
    """

    def __init__(
        self,
        max_pixels: int = 200_000,
        class_weight: str | dict[int, float] | None = "balanced",
        positive_fraction: float | None = None,
        C: float = 1.0,
        max_iter: int = 200,
        random_state: int | None = 0,
    ) -> None:
        check_positive_int("max_pixels", max_pixels)
        check_positive_int("max_iter", max_iter)
        if not (
            class_weight is None or class_weight == "balanced" or isinstance(class_weight, dict)
        ):
            raise ValueError(
                f"`class_weight` must be 'balanced', a dict or None, received {class_weight!r}"
            )
        if positive_fraction is not None:
            check_fraction("positive_fraction", positive_fraction)
        self.max_pixels = max_pixels
        self.class_weight = class_weight
        self.positive_fraction = positive_fraction
        self.C = C
        self.max_iter = max_iter
        self.random_state = random_state
        self.estimator_: Any = None

    def fit(
        self, images: Sequence[np.ndarray], masks: Sequence[np.ndarray]
    ) -> PixelLogisticRegression:
        """Fit on a bounded pixel sample of ``images`` / ``masks``.

        Args:
            images: arrays (H, W) or (H, W, C); the features are the raw channel values.
            masks: binary arrays of the same height and width.

        Returns:
            self.

        Raises:
            ValueError: the sample holds a single class (scikit-learn needs both).
        """
        from sklearn.linear_model import LogisticRegression

        x, y = sample_pixels(
            images, masks, self.max_pixels, self.positive_fraction, self.random_state
        )
        if len(np.unique(y)) < 2:
            raise ValueError(
                f"the sampled pixels hold only class {int(y[0])}; pass masks with tumour "
                "pixels, or raise `max_pixels` / set `positive_fraction`"
            )
        self.estimator_ = LogisticRegression(
            solver="lbfgs", C=self.C, max_iter=self.max_iter, class_weight=self.class_weight
        ).fit(x, y)
        return self

    def _check_fitted(self) -> None:
        if self.estimator_ is None:
            raise RuntimeError("PixelLogisticRegression is not fitted; call `fit` first")

    @property
    def coef_(self) -> np.ndarray:
        """Weights, one per feature (channel)."""
        self._check_fitted()
        return self.estimator_.coef_[0]

    @property
    def intercept_(self) -> float:
        """The bias."""
        self._check_fitted()
        return float(self.estimator_.intercept_[0])

    def predict_proba(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """Tumour probability of every pixel, image by image (no full-size feature matrix).

        Args:
            images: arrays (H, W) or (H, W, C) of one size.

        Returns:
            float32 array (N, H, W).
        """
        self._check_fitted()
        out = []
        for image in images:
            logits = _pixels(image).astype(np.float32) @ self.coef_ + self.intercept_
            shape = np.shape(image)[:2]
            out.append((1.0 / (1.0 + np.exp(-logits))).astype(np.float32).reshape(shape))
        return np.stack(out)

    def predict(self, images: Sequence[np.ndarray], threshold: float = 0.5) -> np.ndarray:
        """Binary masks (N, H, W) uint8: probability ≥ ``threshold``."""
        return (self.predict_proba(images) >= threshold).astype(np.uint8)

    def to_keras(self) -> keras.Model:
        """The fitted model as `build_pixel_logistic_regression` with the same weights.

        Example:
            >>> keras_model = clf.to_keras()  # doctest: +SKIP
        """
        coef = np.asarray(self.coef_, dtype=np.float32)
        model = build_pixel_logistic_regression((None, None, len(coef)))
        model.get_layer("logistic").set_weights(
            [coef.reshape(1, 1, -1, 1), np.array([self.intercept_], np.float32)]
        )
        return model


__all__ = ["PixelLogisticRegression", "build_pixel_logistic_regression", "sample_pixels"]
