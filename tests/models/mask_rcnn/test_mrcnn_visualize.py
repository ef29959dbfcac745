"""matterport's visualize: tinted masks, outlines, dashed boxes and captions on known pixels."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib import patches  # noqa: E402

from mammoseg.models.mask_rcnn import visualize  # noqa: E402


@pytest.fixture
def ax():
    fig, ax = plt.subplots(1, figsize=(2, 2))
    yield ax
    plt.close(fig)


def _two_instances():
    image = np.full((20, 30, 3), 100, np.uint8)
    masks = np.zeros((20, 30, 2), bool)
    masks[2:6, 3:9, 0] = True
    masks[10:18, 20:28, 1] = True
    boxes = np.array([[2, 3, 6, 9], [10, 20, 18, 28]])
    return image, boxes, masks, np.array([1, 2])


def test_apply_mask_blends_only_masked_pixels():
    image = np.full((2, 2, 3), 100.0)
    mask = np.array([[True, False], [False, False]])
    out = visualize.apply_mask(image, mask, (1.0, 0.0, 0.5), alpha=0.5)
    # 100 * 0.5 + 0.5 * colour * 255: red 177.5, green 50, blue 113.75
    assert out[0, 0].tolist() == [177.5, 50.0, 113.75]
    assert out[1, 1].tolist() == [100.0, 100.0, 100.0]


def test_random_colors_are_distinct_hues():
    colors = visualize.random_colors(4)
    assert sorted(colors) == [(0.0, 1.0, 1.0), (0.5, 0.0, 1.0), (0.5, 1.0, 0.0), (1.0, 0.0, 0.0)]
    assert max(max(c) for c in visualize.random_colors(3, bright=False)) == 0.7


def test_display_instances_draws_masks_boxes_and_captions(ax):
    image, boxes, masks, class_ids = _two_instances()
    red, blue = (1.0, 0.0, 0.0), (0.0, 0.0, 1.0)
    visualize.display_instances(
        image,
        boxes,
        masks,
        class_ids,
        ["BG", "disc", "square"],
        scores=np.array([0.9, 0.25]),
        title="found",
        ax=ax,
        colors=[red, blue],
    )
    shown = np.asarray(ax.images[0].get_array())
    # masked pixel: 100 * 0.5 + 0.5 * 255 = 177.5 -> 177 in the colour's channel, 50 elsewhere
    assert shown[3, 4].tolist() == [177, 50, 50]
    assert shown[12, 22].tolist() == [50, 50, 177]
    assert shown[0, 0].tolist() == [100, 100, 100]
    rectangles = [p for p in ax.patches if isinstance(p, patches.Rectangle)]
    outlines = [p for p in ax.patches if isinstance(p, patches.Polygon)]
    assert len(rectangles) == 2 and len(outlines) == 2
    assert (rectangles[0].get_x(), rectangles[0].get_y()) == (3, 2)
    assert (rectangles[0].get_width(), rectangles[0].get_height()) == (6, 4)
    assert [t.get_text() for t in ax.texts] == ["disc 0.900", "square 0.250"]
    assert ax.get_title() == "found"


def test_display_instances_truth_without_scores_and_nothing_found(ax, capsys):
    image, boxes, masks, class_ids = _two_instances()
    visualize.display_instances(image, boxes, masks, class_ids, ["BG", "disc", "square"], ax=ax)
    assert [t.get_text() for t in ax.texts] == ["disc", "square"]
    ax.clear()
    visualize.display_instances(
        image[..., 0], np.zeros((0, 4)), np.zeros((20, 30, 0)), np.zeros(0), ["BG"], ax=ax
    )
    assert "No instances to display" in capsys.readouterr().out
    assert np.asarray(ax.images[0].get_array()).shape == (20, 30, 3)  # grey shown as RGB


def test_display_instances_makes_its_own_figure():
    image, boxes, masks, class_ids = _two_instances()
    visualize.display_instances(image, boxes, masks, class_ids, ["BG", "a", "b"], figsize=(3, 3))
    fig = plt.gcf()
    assert tuple(fig.get_size_inches()) == (3, 3) and len(fig.axes[0].patches) == 4
    plt.close("all")


@pytest.mark.parametrize(
    "change,message",
    [
        (
            lambda b, m, c: (b[:1], m, c),
            "`boxes`, `masks` and `class_ids` must hold the same number of instances, "
            "received 1, 2 and 2",
        ),
        (
            lambda b, m, c: (b, m[:10], c),
            r"`masks` must have the image's height and width \(20, 30\), received \(10, 30\)",
        ),
    ],
)
def test_display_instances_errors(ax, change, message):
    image, boxes, masks, class_ids = _two_instances()
    boxes, masks, class_ids = change(boxes, masks, class_ids)
    with pytest.raises(ValueError, match=message):
        visualize.display_instances(image, boxes, masks, class_ids, ["BG", "a", "b"], ax=ax)
