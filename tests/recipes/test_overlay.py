"""Overlays: full resolution, heatmap, truth outlines, and score labels never clipped."""

import numpy as np
import pytest
from PIL import Image

from mammoseg.metrics import Region
from mammoseg.recipes.overlay import (
    GREEN,
    RED,
    YELLOW,
    label_position,
    region_box,
    render_overlay,
    save_mask_png,
    save_overlay_png,
)


def _region(rows, cols, score=0.87):
    coords = np.stack([np.asarray(rows), np.asarray(cols)], axis=1)
    return Region(score, (float(np.mean(rows)), float(np.mean(cols))), len(coords), coords)


def _yellowish(picture):
    r, g, b = (picture[..., k].astype(int) for k in range(3))
    return (r > 120) & (g > 100) & (b < 80)


@pytest.mark.parametrize(
    ("box", "text", "shape", "expected"),
    [
        ((40, 10, 50, 20), (30, 12), (100, 100), (10, 27)),  # room above: 40 - 12 - 1
        ((0, 90, 10, 100), (30, 12), (100, 100), (70, 11)),  # top-right: below, shifted left
        ((90, 0, 100, 5), (30, 12), (100, 100), (0, 77)),  # bottom-left: above
        ((0, 0, 100, 100), (30, 12), (100, 100), (0, 0)),  # fills the image: inside its top
        ((5, 98, 95, 100), (30, 12), (100, 100), (70, 5)),  # tall box at the right edge
        ((0, 0, 8, 8), (30, 12), (10, 10), (0, 0)),  # a label wider than the image starts at 0
    ],
)
def test_label_position_keeps_the_label_inside(box, text, shape, expected):
    x, y = label_position(box, text, shape)
    assert (x, y) == expected
    if text[0] <= shape[1] and text[1] <= shape[0]:
        assert 0 <= x and x + text[0] <= shape[1] and 0 <= y and y + text[1] <= shape[0]


def test_region_box_ends_are_exclusive():
    assert region_box(_region([3, 4, 4], [7, 7, 9])) == (3, 7, 5, 10)


def test_overlay_is_at_full_resolution_with_a_title_band():
    image = np.linspace(0, 1, 200 * 150, dtype=np.float32).reshape(200, 150)
    picture = render_overlay(image, np.zeros_like(image), [], title="mdb001.pgm")
    band = picture.shape[0] - 200
    assert picture.shape == (band + 200, 150, 3) and band > 0
    # nothing drawn: the image's own grey levels, pixel for pixel
    expected = np.round(image * 255).astype(np.uint8)
    np.testing.assert_array_equal(picture[band:, :, 0], expected)
    np.testing.assert_array_equal(picture[band:, :, 1], expected)
    assert picture[:band].any()  # the title's white text


def test_a_candidate_at_the_very_edge_keeps_its_whole_label():
    # The same candidate and label in the middle and in the top-right corner: the label's
    # yellow pixels must all be there in the corner too (the old overlay wrote the score 4
    # pixels above the box, outside a box at row 0).
    image = np.zeros((64, 64), np.float32)
    middle = render_overlay(image, image, [_region([32], [20])])
    corner = render_overlay(image, image, [_region([0], [63])])
    assert _yellowish(middle).sum() > 20
    assert _yellowish(corner).sum() == _yellowish(middle).sum()
    # and the label sits below the corner box, at the right edge
    rows, cols = np.nonzero(_yellowish(corner))
    assert cols.max() == 63 and rows.max() > 1


def test_overlay_draws_the_mask_the_truth_and_a_heatmap():
    image = np.full((64, 64), 0.5, np.float32)
    mask = np.zeros((64, 64), bool)
    mask[10:20, 10:20] = True
    truth = np.zeros((64, 64), bool)
    truth[40:50, 40:50] = True
    prob = np.zeros((64, 64), np.float32)
    prob[30:34, 0:4] = 1.0
    picture = render_overlay(image, mask, [], probability=prob, truth_mask=truth)
    assert picture.shape == (64, 64, 3)  # no title: no band
    assert tuple(picture[10, 15]) == RED and tuple(picture[15, 15]) != RED  # outline only
    assert tuple(picture[40, 45]) == GREEN and tuple(picture[45, 45]) != GREEN
    assert tuple(picture[60, 60]) == (128, 128, 128)  # probability 0: plain grey
    # probability 1: half grey, half jet's dark red (0.5, 0, 0) → (128+128)/2, 128/2, 128/2
    np.testing.assert_allclose(picture[31, 1], [128, 64, 64], atol=1)


def test_overlay_draws_truth_circles_and_candidate_boxes():
    image = np.zeros((100, 100), np.float32)
    region = _region([60, 61, 62], [30, 31, 32], score=0.5)
    picture = render_overlay(image, image, [region], truth_circles=[(20.0, 20.0, 10.0)])
    assert tuple(picture[10, 20]) == GREEN  # top of the circle (row - radius)
    assert tuple(picture[20, 20]) == (0, 0, 0)
    assert tuple(picture[60, 30]) == YELLOW and tuple(picture[62, 32]) == YELLOW


@pytest.mark.parametrize("name", ["mask", "probability", "truth_mask"])
def test_overlay_refuses_a_map_of_another_shape(name):
    image = np.zeros((32, 32), np.float32)
    kwargs = {"mask": image}
    kwargs[name] = np.zeros((16, 32))
    mask = kwargs.pop("mask")
    with pytest.raises(ValueError, match=rf"`{name}` must have the image's shape \(32, 32\), "):
        render_overlay(image, mask, [], **kwargs)


def test_saved_pngs_have_the_image_size(tmp_path):
    image = np.zeros((70, 50), np.float32)
    out = save_overlay_png(image, image, [], tmp_path / "o.png", title="t")
    mask = save_mask_png(np.eye(70, 50), tmp_path / "m.png")
    assert np.asarray(Image.open(out)).shape[1:] == (50, 3)
    assert np.asarray(Image.open(mask)).shape == (70, 50)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.png", "o.png"]
