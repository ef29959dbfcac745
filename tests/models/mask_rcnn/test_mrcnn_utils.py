import numpy as np
import pytest

from mammoseg.models.mask_rcnn import anchors, utils


def test_compute_overlaps_hand_values():
    a = np.array([[0, 0, 10, 10], [0, 0, 5, 5]])
    b = np.array([[0, 5, 10, 15], [20, 20, 30, 30]])
    # 50 / (100 + 100 - 50) = 1/3; second box of a touches b[0] only on an edge: 0
    np.testing.assert_allclose(utils.compute_overlaps(a, b), [[1 / 3, 0], [0, 0]])


def test_compute_overlaps_masks_hand_values():
    m1 = np.zeros((4, 4, 1), bool)
    m1[0:2, 0:2, 0] = True  # 4 px
    m2 = np.zeros((4, 4, 2), bool)
    m2[0:2, 0:4, 0] = True  # 8 px, 4 shared
    np.testing.assert_allclose(utils.compute_overlaps_masks(m1, m2), [[0.5, 0.0]])
    assert utils.compute_overlaps_masks(m1, np.zeros((4, 4, 0))).shape == (1, 0)


def test_extract_bboxes_exclusive_corner_and_empty():
    m = np.zeros((6, 6, 2), bool)
    m[1:4, 2:5, 0] = True
    assert utils.extract_bboxes(m).tolist() == [[1, 2, 4, 5], [0, 0, 0, 0]]


def test_box_deltas_round_trip():
    rng = np.random.default_rng(0)
    boxes = np.sort(rng.uniform(0, 100, (20, 2, 2)), axis=1).reshape(20, 4)[:, [0, 2, 1, 3]]
    boxes = np.stack([boxes[:, 0], boxes[:, 2], boxes[:, 1] + 1, boxes[:, 3] + 1], axis=1)
    gt = boxes + rng.uniform(-5, 5, boxes.shape)
    deltas = utils.box_refinement(boxes, gt)
    np.testing.assert_allclose(utils.apply_box_deltas(boxes, deltas), gt, atol=1e-9)
    # hand value: centre moves by half a height, width doubles
    d = utils.box_refinement(np.array([[0.0, 0, 10, 10]]), np.array([[5.0, 0, 15, 20]]))
    np.testing.assert_allclose(d, [[0.5, 0.5, 0.0, np.log(2)]])


def test_norm_denorm_boxes():
    boxes = np.array([[0, 0, 64, 64], [10, 20, 30, 40]])
    normed = utils.norm_boxes(boxes, (64, 64))
    np.testing.assert_allclose(normed[0], [0, 0, 1, 1])
    np.testing.assert_array_equal(utils.denorm_boxes(normed, (64, 64)), boxes)


@pytest.mark.parametrize(
    "mode,shape,window,scale",
    [
        ("square", (128, 128, 3), (32, 0, 96, 128), 1.28),
        ("pad64", (64, 128, 3), (0, 0, 64, 128), 1.28),
        ("none", (50, 100, 3), (0, 0, 50, 100), 1),
    ],
)
def test_resize_image_modes(mode, shape, window, scale):
    image = np.ones((50, 100, 3), np.uint8)
    out, win, sc, padding, crop = utils.resize_image(image, 64, 128, 0, mode)
    assert out.shape == shape and tuple(win) == window and sc == pytest.approx(scale)
    assert out.dtype == np.uint8
    assert out[win[0] : win[2], win[1] : win[3]].min() == 1
    mask = np.ones((50, 100, 1), bool)
    resized = utils.resize_mask(mask, sc, padding, crop)
    assert resized.shape[:2] == shape[:2]
    assert resized.sum() == (win[2] - win[0]) * (win[3] - win[1])


def test_resize_image_crop_and_min_scale():
    image = np.zeros((40, 40, 3), np.uint8)
    out, win, scale, _, crop = utils.resize_image(image, 64, 64, 2.0, "crop")
    assert scale == 2.0 and out.shape == (64, 64, 3) and win == (0, 0, 64, 64)
    assert 0 <= crop[0] <= 16 and crop[2:] == (64, 64)


def test_resize_mask_without_instances_keeps_the_new_shape():
    # a normal image (no instance) scaled x2 then cropped, as paper-scale V.F loads it
    empty = np.zeros((40, 40, 0), bool)
    assert utils.resize_mask(empty, 2.0, None, (8, 4, 64, 64)).shape == (64, 64, 0)
    padding = [(2, 3), (0, 0), (0, 0)]
    assert utils.resize_mask(empty, 1.5, padding).shape == (65, 60, 0)


def test_resize_image_unknown_mode():
    with pytest.raises(ValueError, match="`mode` must be .* received 'sqare'"):
        utils.resize_image(np.zeros((4, 4, 3)), mode="sqare")


def test_mini_mask_round_trip():
    mask = np.zeros((64, 64, 1), bool)
    mask[10:40, 20:50, 0] = True
    boxes = utils.extract_bboxes(mask)
    mini = utils.minimize_mask(boxes, mask, (16, 16))
    assert mini.shape == (16, 16, 1) and mini.all()
    np.testing.assert_array_equal(utils.expand_mask(boxes, mini, (64, 64)), mask)


def test_image_meta_round_trip():
    meta = utils.compose_image_meta(7, (50, 100, 3), (128, 128, 3), (32, 0, 96, 128), 1.28, [1, 1])
    assert meta.shape == (14,)
    parsed = utils.parse_image_meta(meta[None])
    assert parsed["window"].tolist() == [[32, 0, 96, 128]]
    assert parsed["active_class_ids"].tolist() == [[1, 1]]


def test_anchor_coordinates_by_hand():
    # level with stride 16, scale 32, ratio 0.5: width 32*sqrt(.5), height 32/sqrt(.5)
    a = anchors.generate_anchors(32, [0.5, 1, 2], (2, 2), 16, 1)
    assert a.shape == (12, 4)
    h, w = 32 / np.sqrt(0.5), 32 * np.sqrt(0.5)
    np.testing.assert_allclose(a[0], [-h / 2, -w / 2, h / 2, w / 2])
    # order: row, column, ratio -> anchor 4 is (row 0, column 1, ratio 1)
    np.testing.assert_allclose(a[4], [-16, 0, 16, 32])
    np.testing.assert_allclose(a[9 + 1], [0, 0, 32, 32])


def test_pyramid_anchors_numpy_equal_tensorflow():
    import tensorflow as tf

    scales, ratios, strides = (8, 16, 32, 64, 128), [0.5, 1, 2], [4, 8, 16, 32, 64]
    shape = (96, 64, 3)
    expected = anchors.get_anchors(shape, scales, ratios, strides, 1, normalized=True)
    feature_shapes = [tf.constant(s) for s in anchors.compute_backbone_shapes(shape, strides)]
    got = anchors.pyramid_anchors_tf(
        feature_shapes, tf.constant(shape[:2]), scales, ratios, strides, 1
    ).numpy()
    assert got.shape == expected.shape == ((24 * 16 + 12 * 8 + 6 * 4 + 3 * 2 + 2 * 1) * 3, 4)
    np.testing.assert_allclose(got, expected, atol=1e-6)
