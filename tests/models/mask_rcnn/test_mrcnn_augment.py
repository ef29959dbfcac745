"""RandomFlips: image and masks move together, every view is reachable, bad input is refused."""

import numpy as np
import pytest

from mammoseg.models.mask_rcnn import RandomFlips


def _pair():
    image = np.zeros((4, 4, 3), np.uint8)
    image[0, 1] = 200  # one bright pixel, row 0, column 1
    masks = np.zeros((4, 4, 2), bool)
    masks[0, 1, 0] = True
    masks[3, 3, 1] = True
    return image, masks


def test_p_zero_without_turns_is_the_identity():
    image, masks = _pair()
    out_image, out_masks = RandomFlips(p=0.0, rotate90=False, seed=0)(image, masks)
    np.testing.assert_array_equal(out_image, image)
    np.testing.assert_array_equal(out_masks, masks)


def test_p_one_flips_both_axes():
    image, masks = _pair()
    out_image, out_masks = RandomFlips(p=1.0, rotate90=False, seed=0)(image, masks)
    assert np.argwhere(out_image[..., 0] == 200).tolist() == [[3, 2]]
    assert np.argwhere(out_masks[..., 0]).tolist() == [[3, 2]]
    assert np.argwhere(out_masks[..., 1]).tolist() == [[0, 0]]
    assert out_image.flags.c_contiguous and out_masks.dtype == bool


def test_image_and_masks_stay_aligned_and_all_eight_views_occur():
    image, masks = _pair()
    flips = RandomFlips(seed=3)
    seen = set()
    for _ in range(200):
        out_image, out_masks = flips(image, masks)
        assert out_image.shape == image.shape and out_masks.shape == masks.shape
        bright = np.argwhere(out_image[..., 0] == 200)
        assert bright.tolist() == np.argwhere(out_masks[..., 0]).tolist()
        seen.add(tuple(bright[0]))
    # the pixel (0, 1) of a 4x4 square has 8 images under the dihedral group
    assert seen == {(0, 1), (0, 2), (1, 0), (1, 3), (2, 0), (2, 3), (3, 1), (3, 2)}


def test_non_square_images_are_flipped_but_not_turned():
    image = np.zeros((2, 6, 3), np.uint8)
    masks = np.zeros((2, 6, 1), bool)
    for _ in range(20):
        out_image, out_masks = RandomFlips(seed=1)(image, masks)
        assert out_image.shape == (2, 6, 3) and out_masks.shape == (2, 6, 1)


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match=r"`p` must be in \[0, 1\], received 1.5"):
        RandomFlips(p=1.5)
    with pytest.raises(ValueError, match="must share height and width"):
        RandomFlips()(np.zeros((4, 4, 3)), np.zeros((4, 5, 1), bool))
