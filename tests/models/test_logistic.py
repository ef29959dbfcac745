"""Pixel logistic regression (paper IV.A): Keras model and the scikit-learn baseline."""

import numpy as np
import pytest

from mammoseg.models.logistic import (
    PixelLogisticRegression,
    build_pixel_logistic_regression,
    sample_pixels,
)


def _bright_tumours(n=3, size=32, seed=0):
    rng = np.random.default_rng(seed)
    images, masks = [], []
    for _ in range(n):
        mask = np.zeros((size, size), np.uint8)
        mask[8:14, 8:14] = 1
        images.append((rng.normal(60, 10, (size, size)) + 120 * mask).astype(np.float32))
        masks.append(mask)
    return images, masks


def test_keras_model_is_a_pixel_wise_sigmoid():
    model = build_pixel_logistic_regression((None, None, 2))
    model.get_layer("logistic").set_weights(
        [np.array([2.0, -1.0]).reshape(1, 1, 2, 1), np.array([0.5])]
    )
    x = np.array([[[[1.0, 3.0]]]], "float32")  # 2 - 3 + 0.5 = -0.5
    np.testing.assert_allclose(
        model.predict(x, verbose=0), [[[[1 / (1 + np.exp(0.5))]]]], rtol=1e-6
    )
    assert model.count_params() == 3


def test_sample_pixels_is_bounded_and_stratified():
    images, masks = _bright_tumours()
    x, y = sample_pixels(images, masks, max_pixels=100)
    assert x.shape == (99, 1) and y.shape == (99,)  # 33 per image
    x, y = sample_pixels(images, masks, max_pixels=60, positive_fraction=0.5)
    assert len(y) == 60 and y.sum() == 30
    # Tumour pixels are bright in this data: every sampled positive is > 120.
    assert np.all(x[y == 1, 0] > 120)


def test_fit_predict_and_to_keras_agree():
    images, masks = _bright_tumours()
    clf = PixelLogisticRegression(max_pixels=2000).fit(images, masks)
    assert clf.coef_[0] > 0  # brighter means more likely tumour
    probs = clf.predict_proba(images[:1])
    assert probs.shape == (1, 32, 32) and probs.dtype == np.float32
    pred = clf.predict(images[:1])
    assert pred[0, 10, 10] == 1 and pred[0, 25, 25] == 0
    keras_probs = clf.to_keras().predict(images[0][None, ..., None], verbose=0)[..., 0]
    np.testing.assert_allclose(keras_probs, probs, rtol=1e-4, atol=1e-6)


def test_errors():
    images, masks = _bright_tumours()
    with pytest.raises(ValueError, match="received 3 images and 2 masks"):
        sample_pixels(images, masks[:2])
    with pytest.raises(ValueError, match="image 0 has 1024 pixels but its mask has 4"):
        sample_pixels(images[:1], [np.zeros((2, 2))])
    with pytest.raises(ValueError, match="the sampled pixels hold only class 0"):
        PixelLogisticRegression().fit(images, [np.zeros_like(m) for m in masks])
    with pytest.raises(ValueError, match="`class_weight` must be 'balanced', a dict or None"):
        PixelLogisticRegression(class_weight="auto")
    with pytest.raises(ValueError, match="`max_pixels` must be a positive integer, received 0"):
        PixelLogisticRegression(max_pixels=0)
    with pytest.raises(RuntimeError, match="not fitted; call `fit` first"):
        PixelLogisticRegression().predict_proba(images)
    with pytest.raises(ValueError, match=r"`output` must be one of \('sigmoid', 'logits'\)"):
        build_pixel_logistic_regression(output="probability")
