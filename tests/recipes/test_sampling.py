"""Lesion-centred sampling: a third of the patches on a lesion, the lesion centre inside them."""

import numpy as np
import pytest

from mammoseg.recipes import LesionCentredSampler, RecipeConfig
from mammoseg.recipes.breast_crop import find_breast
from mammoseg.recipes.preprocess import WorkingImage


def _working(shape=(120, 80), lesion=(30, 60, 6)):
    image = np.zeros(shape, np.float32)
    mask = np.zeros(shape, np.uint8)
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    lesions = ()
    if lesion is not None:
        mask[(rows - lesion[0]) ** 2 + (cols - lesion[1]) ** 2 <= lesion[2] ** 2] = 1
        lesions = (tuple(float(v) for v in lesion),)
    image += mask
    crop = find_breast(np.ones(shape, np.float32))
    return WorkingImage(image, np.ones(shape, bool), crop, -1.0, mask, lesions, "x")


def test_share_of_lesion_centred_patches_is_a_third():
    sampler = LesionCentredSampler([_working(), _working(lesion=None)], 32, seed=1)
    draws = [sampler.sample_centre()[3] for _ in range(3000)]
    assert np.mean(draws) == pytest.approx(1 / 3, abs=0.03)


def test_lesion_patch_contains_the_lesion_centre():
    work = _working(lesion=(10, 70, 30))  # large lesion near a corner: padding needed
    sampler = LesionCentredSampler([work], 32, lesion_fraction=1.0, seed=2)
    for _ in range(200):
        index, row, col, centred = sampler.sample_centre()
        assert centred
        image, mask = sampler.patch(index, row, col)
        assert image.shape == (32, 32)
        # The patch covers rows row-16 .. row+15; the lesion centre (10, 70) is inside.
        assert row - 16 <= 10 < row + 16 and col - 16 <= 70 < col + 16
        assert mask[10 - (row - 16), 70 - (col - 16)] == 1


def test_random_patches_outside_the_image_are_padded_with_the_background():
    work = _working(lesion=None)
    sampler = LesionCentredSampler([work], 32, lesion_fraction=0.0, seed=0)
    image, mask = sampler.patch(0, 0, 0)
    assert image[:16, :16].max() == -1.0 and image[16:, 16:].max() == 0.0
    x, y = sampler.batch()
    assert x.shape == y.shape == (8, 32, 32, 1) and x.dtype == np.float32


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"images": []}, "at least one"),
        ({"patch_size": 4}, "`patch_size`"),
        ({"lesion_fraction": 1.5}, "`lesion_fraction`"),
        ({"scale_range": (2.0, 1.0)}, "`scale_range`"),
        ({"scale_range": (0.1, 1.0)}, "`scale_range`"),
    ],
)
def test_invalid_arguments(kwargs, message):
    args = {"images": [_working()], "patch_size": 32, **kwargs}
    with pytest.raises(ValueError, match=message):
        LesionCentredSampler(**args)


def test_config_rejects_a_patch_that_does_not_fit_the_depth():
    with pytest.raises(ValueError, match="multiple of 2\\*\\*depth = 16"):
        RecipeConfig(patch_size=100, depth=4)
    with pytest.raises(ValueError, match="`loss` must be one of"):
        RecipeConfig(loss="bce")


@pytest.mark.parametrize("zoom", [0.5, 2.0])
def test_zoomed_patch_scales_the_lesion_about_the_centre(zoom):
    work = _working(shape=(200, 200), lesion=(100, 100, 10))
    sampler = LesionCentredSampler([work], 64, scale_range=(0.5, 2.0), seed=0)
    image, mask = sampler.patch(0, 100, 100, zoom)
    assert image.shape == mask.shape == (64, 64)
    # A disc of radius 10 becomes one of radius 10 * zoom, still centred in the patch.
    assert mask.sum() == pytest.approx(np.pi * (10 * zoom) ** 2, rel=0.12)
    rows, cols = np.nonzero(mask)
    assert rows.mean() == pytest.approx(31.5, abs=1.0) and cols.mean() == pytest.approx(
        31.5, abs=1.0
    )
    assert set(np.unique(mask)) <= {0, 1}
    # The image followed the mask: the zoomed bright disc lies where the mask is.
    assert image[mask > 0].mean() > 0.9 and image[mask == 0].mean() < 0.1


def test_zoom_one_is_the_plain_patch_and_batches_use_the_range():
    work = _working(shape=(200, 200), lesion=(100, 100, 10))
    sampler = LesionCentredSampler([work], 64, lesion_fraction=1.0, scale_range=(0.5, 2.0))
    plain = LesionCentredSampler([work], 64)
    np.testing.assert_array_equal(sampler.patch(0, 90, 95)[1], plain.patch(0, 90, 95)[1])
    areas = [sampler.batch()[1].sum(axis=(1, 2, 3)) for _ in range(20)]
    areas = np.concatenate(areas)
    # Lesion-centred patches at zoom 0.5..2 hold discs of about 79 to 1257 pixels.
    assert areas.min() < 0.6 * np.pi * 100 and areas.max() > 1.6 * np.pi * 100


def test_config_scale_range_round_trips_and_is_checked():
    config = RecipeConfig(scale_range=(0.8, 1.25))
    assert RecipeConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="`scale_range`"):
        RecipeConfig(scale_range=(1.5, 1.0))
