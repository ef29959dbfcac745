"""Breast crop: the label goes, the box is the breast's, predictions map back to known pixels."""

import numpy as np
import pytest

from mammoseg.recipes import crop_breast, find_breast
from mammoseg.recipes.breast_crop import _otsu


def _film(shape=(128, 96)):
    """A dark film with a bright half-disc breast on the left and a square label on the right."""
    image = np.full(shape, 0.02, np.float32)
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    breast = (rows - 64) ** 2 + cols**2 <= 40**2
    image[breast] = 0.5
    image[10:20, 80:92] = 0.95  # the label
    return image, breast


def test_crop_keeps_the_breast_box_and_removes_the_label():
    image, breast = _film()
    cropped, crop = crop_breast(image, margin=0)
    assert crop.box == (24, 105, 0, 41)  # rows 24..104, cols 0..40 of the disc
    assert cropped.shape == (81, 41)
    assert crop.breast.sum() == pytest.approx(breast.sum(), rel=0.05)
    assert cropped.max() == pytest.approx(0.5)  # no label pixel (0.95) survives
    # With a margin the box grows but the label, far from the breast, is still left out.
    cropped, crop = crop_breast(image, margin=0.05)
    assert not (cropped > 0.9).any()


def test_box_maps_back_to_known_pixels():
    image, _ = _film()
    _, crop = crop_breast(image, margin=0)
    marks = np.zeros(crop.crop_shape, np.float32)
    marks[0, 0], marks[-1, -1], marks[40, 20] = 1.0, 2.0, 3.0
    back = crop.to_original(marks)
    assert back.shape == image.shape
    assert back[24, 0] == 1.0 and back[104, 40] == 2.0 and back[64, 20] == 3.0
    assert back.sum() == 6.0  # nothing else, nothing outside the box
    # A map at half resolution is resized onto the box.
    half = crop.to_original(np.ones((40, 20), np.float32))
    assert half[24:105, 0:41].min() == pytest.approx(1.0) and half[:, 41:].max() == 0.0


def test_empty_image_gives_the_whole_frame():
    crop = find_breast(np.zeros((32, 48), np.float32))
    assert crop.box == (0, 32, 0, 48)


@pytest.mark.parametrize(
    "kwargs, message",
    [({"image": np.zeros((2, 3, 4))}, "`image` must be a 2-D"), ({"margin": 0.7}, "`margin`")],
)
def test_invalid_arguments(kwargs, message):
    args = {"image": np.zeros((16, 16), np.float32), **kwargs}
    with pytest.raises(ValueError, match=message):
        find_breast(**args)


def test_apply_rejects_another_shape():
    image, _ = _film()
    _, crop = crop_breast(image)
    with pytest.raises(ValueError, match="must have the shape"):
        crop.apply(np.zeros((10, 10)))


def test_otsu_keeps_the_values_of_the_hand_written_version():
    # Expected numbers were computed by the hand-written 256-bin Otsu this module had before it
    # called skimage.filters.threshold_otsu (equal on 300 random bimodal cases, max |diff| 0).
    rng = np.random.default_rng(0)
    expected = [0.349609375, 0.349609375, 0.345703125]
    for value in expected:
        sample = np.concatenate([rng.normal(0.1, 0.05, 500), rng.normal(0.6, 0.1, 700)])
        assert _otsu(np.clip(sample, 0, 1)) == value
    image = np.zeros((64, 64), np.float32)
    image[10:50, 0:30] = 0.5
    image[5:8, 55:60] = 0.9
    assert _otsu(image) == 0.001953125
    assert find_breast(image).box == (9, 51, 0, 31)
