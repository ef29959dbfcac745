"""Sizes and resampling: `parse_size`, area-average image resizing, coverage mask resizing."""

import numpy as np
import pytest

from mammoseg.data.records import draw_circle
from mammoseg.data.resample import (
    frame,
    inner_box,
    parse_size,
    resample_image,
    resample_mask,
    resample_matrix,
    to_original_size,
)

# --------------------------------------------------------------------------- parse_size


@pytest.mark.parametrize(
    "size, expected",
    [(64, (64, 64)), ((32, 48), (32, 48)), ([32, 48], (32, 48)), (np.int64(8), (8, 8))],
)
def test_parse_size(size, expected):
    assert parse_size(size) == expected


def test_parse_size_none():
    assert parse_size(None) is None


@pytest.mark.parametrize("size", ["64", 64.0, True, (64, 64, 1), (64.0, 64), (64, False), {64}])
def test_parse_size_type_errors(size):
    with pytest.raises(TypeError, match=r"`size` must be an int or \(height, width\), received"):
        parse_size(size)


@pytest.mark.parametrize("size", [0, -3, (5, 0), (-1, 5)])
def test_parse_size_non_positive(size):
    with pytest.raises(ValueError, match=r"`size` must be positive, received"):
        parse_size(size)


def test_parse_size_names_the_callers_argument():
    with pytest.raises(ValueError, match="`image_size` must be positive, received 0"):
        parse_size(0, argument="image_size")


# --------------------------------------------------------------------------- resizing


def test_resample_image_block_average():
    image = np.array([[0, 2, 4, 6], [2, 4, 6, 8], [1, 1, 0, 0], [1, 1, 0, 4]], dtype=np.float32)
    out = resample_image(image, 2)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [[2.0, 6.0], [1.0, 1.0]])


def test_resample_image_non_integer_factor_and_identity():
    image = np.full((30, 45), 0.25, np.float32)
    out = resample_image(image, (20, 16))
    assert out.shape == (20, 16) and out.dtype == np.float32
    np.testing.assert_allclose(out, 0.25, atol=1e-6)
    np.testing.assert_array_equal(resample_image(image, (30, 45)), image)


def test_resample_mask_half_coverage_rule():
    mask = np.zeros((4, 4), np.uint8)
    mask[0, 0:2] = 1  # top-left block: 2 of 4 -> set
    mask[3, 3] = 1  # bottom-right block: 1 of 4 -> not set (other pixels are)
    out = resample_mask(mask, 2)
    assert out.dtype == bool
    np.testing.assert_array_equal(out, [[1, 0], [0, 0]])


def test_resample_mask_one_pixel_lesion_survives():
    mask = np.zeros((1024, 1024), bool)
    mask[500, 700] = True
    out = resample_mask(mask, 64)
    assert out.sum() == 1 and out[500 // 16, 700 // 16] == 1


@pytest.mark.parametrize("size", [48, (96, 80), 256])
def test_resample_mask_stays_binary(size):
    mask = draw_circle((128, 128), (63.5, 63.5), 40.0)  # covers pi 40^2 / 128^2 = 30.7 %
    out = resample_mask(mask, size)
    assert out.dtype == bool and out.ndim == 2
    assert out.shape == parse_size(size)
    assert out.mean() == pytest.approx(np.pi * 40**2 / 128**2, rel=0.06)
    noise = resample_mask(np.random.default_rng(0).uniform(size=(128, 128)) < 0.3, size)
    assert noise.dtype == bool


def test_resample_mask_empty_stays_empty():
    assert resample_mask(np.zeros((128, 128), np.uint8), 48).sum() == 0


# --------------------------------------------------------------------------- resampling


def test_resample_matrix_by_hand():
    np.testing.assert_allclose(
        resample_matrix(3, 2).toarray(), [[2 / 3, 1 / 3, 0], [0, 1 / 3, 2 / 3]], rtol=1e-6
    )
    np.testing.assert_allclose(
        resample_matrix(2, 4).toarray(), [[1, 0], [0.75, 0.25], [0.25, 0.75], [0, 1]]
    )
    for n_in, n_out in [(4000, 1024), (3064, 1024), (5, 5), (100, 333)]:
        sums = np.asarray(resample_matrix(n_in, n_out).sum(axis=1)).ravel()
        np.testing.assert_allclose(sums, 1.0, rtol=1e-5)


def test_small_lesion_never_vanishes():
    mask = np.zeros((300, 300), bool)
    mask[151, 77] = True  # one pixel: 1/22 of a target pixel at 64²
    (_, _, _, _, oy, ox), target = frame((300, 300), (64, 64), "stretch"), (64, 64)
    out = resample_mask(mask, target)
    assert out.sum() == 1 and out[151 * 64 // 300, 77 * 64 // 300] and (oy, ox) == (0, 0)
    # The authors' way (bilinear resize of a 0/255 mask, keep == 255) erases it.
    from skimage.transform import resize

    authors = resize(mask * 255.0, target, order=1, preserve_range=True) == 255
    assert not authors.any()
    big = np.zeros((300, 300), bool)
    big[30:150, 60:240] = True  # rows 6.4-32, cols 12.8-51.2 at 64²: half-covered edges count
    out = resample_mask(big, target)
    assert out[7:32, 13:51].all() and out.sum() == pytest.approx(25.6 * 38.4, rel=0.08)


def test_pad_frame_and_mapping_back():
    transform = frame((200, 100), (128, 128), "pad")
    np.testing.assert_allclose(transform, [200, 100, 0.64, 0.64, 0, 32])
    mask = np.zeros((200, 100), bool)
    mask[50:120, 20:70] = True
    cached = np.zeros((128, 128), np.float32)
    cached[0:128, 32:96] = resample_mask(mask, (128, 64))
    back = to_original_size(cached, transform) >= 0.5
    iou = (back & mask).sum() / (back | mask).sum()
    assert back.shape == (200, 100) and iou > 0.95


def test_resample_image_rejects_a_3d_array():
    with pytest.raises(ValueError, match=r"`array` must be 2-D \(height, width\), received shape"):
        resample_image(np.zeros((4, 4, 3)), 2)


def test_inner_box_of_a_padded_frame():
    assert inner_box(frame((200, 100), (128, 128), "pad")) == (0, 32, 128, 64)


def test_resample_image_equals_the_block_mean_for_whole_factors():
    # One filter for the loaders and the cache: a whole-number factor is the block mean.
    rng = np.random.default_rng(0)
    image = rng.uniform(size=(96, 64)).astype(np.float32)
    blocks = image.reshape(32, 3, 16, 4).mean(axis=(1, 3))
    np.testing.assert_allclose(resample_image(image, (32, 16)), blocks, rtol=1e-5)
