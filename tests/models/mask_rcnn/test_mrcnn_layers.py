import keras
import numpy as np
import pytest
import tensorflow as tf

from mammoseg.models.mask_rcnn import layers, targets, utils


def test_graph_box_ops_equal_numpy():
    rng = np.random.default_rng(1)
    boxes = np.array([[0.1, 0.2, 0.5, 0.6], [0.3, 0.3, 0.9, 0.5]], np.float32)
    gt = boxes + rng.uniform(-0.05, 0.05, boxes.shape).astype(np.float32)
    deltas = layers.box_refinement_graph(boxes, gt).numpy()
    np.testing.assert_allclose(deltas, utils.box_refinement(boxes, gt), atol=1e-5)
    np.testing.assert_allclose(layers.apply_box_deltas_graph(boxes, deltas).numpy(), gt, atol=1e-5)
    np.testing.assert_allclose(
        layers.overlaps_graph(boxes, gt).numpy(), utils.compute_overlaps(boxes, gt), atol=1e-5
    )


def test_pad_rows():
    out = layers.pad_rows(tf.ones((2, 3)), 4).numpy()
    assert out.shape == (4, 3) and out[:2].all() and not out[2:].any()
    assert layers.pad_rows(tf.ones((5, 3)), 4).shape == (4, 3)


def test_proposal_layer_hand_example():
    anchors = tf.constant([[0, 0, 0.5, 0.5], [0.5, 0.5, 1, 1], [0, 0, 0.4, 0.4]], tf.float32)
    probs = tf.constant([[[0.1, 0.9], [0.6, 0.4], [0.2, 0.8]]])
    # anchor 1 moves down by 0.1 * 1.0 (std) of its height 0.5 -> +0.05, clipped at 1
    deltas = tf.constant([[[0, 0, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]]], tf.float32)
    layer = layers.ProposalLayer(3, 0.5, 100, [0.1, 0.1, 0.2, 0.2])
    out = layer([probs, deltas, anchors]).numpy()[0]
    # anchor 2 (score 0.8) overlaps anchor 0 (0.9) with IoU 0.64 > 0.5: suppressed
    np.testing.assert_allclose(out, [[0, 0, 0.5, 0.5], [0.55, 0.5, 1, 1], [0, 0, 0, 0]], atol=1e-6)
    assert layer([probs, deltas, anchors], proposal_count=1).shape == (1, 1, 4)


@pytest.mark.parametrize("side,level", [(224, 4), (112, 3), (448, 5), (1000, 5), (10, 2), (56, 2)])
def test_roi_levels(side, level):
    s = side / 1024
    boxes = tf.constant([[[0.0, 0.0, s, s]]])
    assert layers.roi_levels(boxes, tf.constant([1024, 1024])).numpy()[0, 0] == level


def test_pyramid_roi_align_takes_each_box_from_its_level_in_order():
    maps = [
        tf.fill((2, 256 // s, 256 // s, 1), float(level))
        for level, s in zip(range(2, 6), (4, 8, 16, 32))
    ]
    # 256-px image: k = round(4 + log2(side / 224)): 224 -> 4, 20 -> 2 (clipped),
    # 120 -> 3 (3.1), 40 -> 2 (1.5 rounds to 2)
    sides = np.array([[224, 20], [120, 40]]) / 256
    boxes = np.zeros((2, 2, 4), np.float32)
    boxes[..., 2] = boxes[..., 3] = sides
    layer = layers.PyramidROIAlign((3, 3))
    out = layer([tf.constant(boxes), tf.constant([256, 256]), *maps]).numpy()
    assert out.shape == (2, 2, 3, 3, 1)
    np.testing.assert_array_equal(out[..., 0].mean(axis=(2, 3)), [[4, 2], [3, 2]])


def _detect(probs, min_confidence=0.5):
    rois = tf.constant([[[0.1, 0.1, 0.5, 0.5], [0.12, 0.1, 0.5, 0.5], [0.6, 0.6, 0.9, 0.9]]])
    deltas = tf.zeros((1, 3, 2, 4))
    layer = layers.DetectionLayer([0.1, 0.1, 0.2, 0.2], min_confidence, 0.3, 4)
    return layer(
        [rois, tf.constant([probs], tf.float32), deltas, tf.constant([[0, 0, 1, 1]], tf.float32)]
    ).numpy()[0]


def test_detection_layer_nms_background_and_padding():
    out = _detect([[0.1, 0.9], [0.2, 0.8], [0.7, 0.3]])
    np.testing.assert_allclose(out[0], [0.1, 0.1, 0.5, 0.5, 1, 0.9], atol=1e-6)
    assert not out[1:].any()  # duplicate suppressed, background dropped, zero padding
    out = _detect([[0.1, 0.9], [0.2, 0.8], [0.4, 0.6]])
    np.testing.assert_allclose(out[1], [0.6, 0.6, 0.9, 0.9, 1, 0.6], atol=1e-6)
    assert _detect([[0.1, 0.9], [0.2, 0.8], [0.4, 0.6]], min_confidence=0.95).sum() == 0


def test_detection_layer_clips_to_window():
    rois = tf.constant([[[0.1, 0.1, 0.5, 0.5]]])
    layer = layers.DetectionLayer([0.1, 0.1, 0.2, 0.2], 0.0, 0.3, 2)
    out = layer(
        [
            rois,
            tf.constant([[[0.0, 1.0]]]),
            tf.zeros((1, 1, 2, 4)),
            tf.constant([[0.2, 0.0, 1.0, 0.4]]),
        ]
    ).numpy()[0]
    np.testing.assert_allclose(out[0, :4], [0.2, 0.1, 0.5, 0.4], atol=1e-6)


def test_detection_targets_hand_example():
    proposals = tf.constant(
        [[[0.2, 0.2, 0.6, 0.6], [0.7, 0.7, 0.9, 0.9], [0, 0, 0, 0], [0, 0, 0, 0]]]
    )
    gt_boxes = tf.constant([[[0.2, 0.2, 0.6, 0.6], [0, 0, 0, 0]]])
    gt_ids = tf.constant([[1, 0]])
    mini = np.zeros((1, 8, 8, 2), bool)
    mini[0, :, :4, 0] = True  # left half of the lesion's box
    layer = targets.DetectionTargetLayer(4, 0.5, [0.1, 0.1, 0.2, 0.2], (4, 4), True)
    rois, ids, deltas, masks = (
        t.numpy()[0] for t in layer([proposals, gt_ids, gt_boxes, tf.constant(mini)])
    )
    np.testing.assert_allclose(rois[:2], proposals.numpy()[0, :2])
    assert not rois[2:].any()
    assert ids.tolist() == [1, 0, 0, 0]
    np.testing.assert_allclose(deltas, 0, atol=1e-6)
    np.testing.assert_array_equal(masks[0], [[1, 1, 0, 0]] * 4)
    assert not masks[1:].any()


def test_detection_targets_can_add_the_truth_to_the_proposals():
    proposals = tf.constant([[[0.7, 0.7, 0.9, 0.9], [0, 0, 0, 0]]])  # misses the lesion
    gt_boxes = tf.constant([[[0.2, 0.2, 0.6, 0.6]]])
    mini = tf.ones((1, 8, 8, 1), tf.bool)
    for add, positives in ((False, 0), (True, 1)):
        layer = targets.DetectionTargetLayer(4, 0.5, [0.1] * 4, (4, 4), True, add)
        rois, ids, _, _ = layer([proposals, tf.constant([[1]]), gt_boxes, mini])
        assert int((ids.numpy() > 0).sum()) == positives
    np.testing.assert_allclose(rois.numpy()[0, 0], [0.2, 0.2, 0.6, 0.6])


def test_detection_targets_without_truth_are_all_padding():
    layer = targets.DetectionTargetLayer(4, 0.5, [0.1, 0.1, 0.2, 0.2], (4, 4), True)
    proposals = tf.constant([[[0.2, 0.2, 0.6, 0.6], [0, 0, 0, 0]]])
    rois, ids, deltas, masks = layer(
        [
            proposals,
            tf.zeros((1, 1), tf.int32),
            tf.zeros((1, 1, 4)),
            tf.zeros((1, 8, 8, 1), tf.bool),
        ]
    )
    assert rois.shape == (1, 4, 4) and not ids.numpy().any()


def test_build_rpn_targets_hand_example():
    anchors = np.array([[0, 0, 10, 10], [20, 20, 30, 30], [0, 0, 9, 9], [0, 0, 16, 16.0]])
    gt = np.array([[0, 0, 10, 10]])
    match, bbox = targets.build_rpn_targets(anchors, np.array([1]), gt, 8, [0.1, 0.1, 0.2, 0.2])
    # IoU 1, 0, 0.81 -> positive, negative, positive; 100/256 = 0.39 -> neutral
    assert match.tolist() == [1, -1, 1, 0]
    np.testing.assert_allclose(bbox[0], 0)
    np.testing.assert_allclose(
        bbox[1], utils.box_refinement(anchors[2:3], gt)[0] / [0.1, 0.1, 0.2, 0.2]
    )
    assert not bbox[2:].any()


def test_build_rpn_targets_thresholds_are_settable():
    # the 16x16 anchor has IoU 100/256 = 0.39 with the truth: neutral by matterport's 0.7/0.3
    anchors = np.array([[0, 0, 10, 10], [20, 20, 30, 30], [0, 0, 16, 16.0]])
    gt, ids, std = np.array([[0, 0, 10, 10]]), np.array([1]), [0.1, 0.1, 0.2, 0.2]
    match, _ = targets.build_rpn_targets(anchors, ids, gt, 8, std, positive_iou=0.35)
    assert match.tolist() == [1, -1, 1]
    match, _ = targets.build_rpn_targets(anchors, ids, gt, 8, std, negative_iou=0.45)
    assert match.tolist() == [1, -1, -1]


def test_build_rpn_targets_balances_the_sample():
    rng = np.random.default_rng(0)
    anchors = np.array([[0, 0, 10, 10]] * 10 + [[50, 50, 60, 60]] * 30, float)
    match, _ = targets.build_rpn_targets(
        anchors, np.array([1]), np.array([[0, 0, 10, 10]]), 8, [0.1, 0.1, 0.2, 0.2], rng
    )
    assert (match == 1).sum() == 4 and (match == -1).sum() == 4


def test_layer_configs_round_trip():
    for layer in (
        layers.ProposalLayer(10, 0.7, 50, [0.1, 0.1, 0.2, 0.2], name="ROI"),
        layers.PyramidROIAlign((7, 7), name="roi_align"),
        layers.DetectionLayer([0.1, 0.1, 0.2, 0.2], 0.7, 0.3, 100),
        targets.DetectionTargetLayer(32, 0.33, [0.1, 0.1, 0.2, 0.2], (28, 28), True),
    ):
        clone = type(layer).from_config(layer.get_config())
        assert clone.get_config() == layer.get_config()


def test_scores_stay_float32_under_mixed_precision():
    """bfloat16 logits tie by the thousand and top-k then picks anchors by index (the image's
    top-left corner); the RPN and box-head outputs must be float32 and distinct."""
    from mammoseg.models.mask_rcnn.heads import FPNClassifierHead, build_rpn_model

    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        rpn = build_rpn_model(anchor_stride=1, anchors_per_location=3, depth=16, shared_filters=32)
        features = np.random.default_rng(0).normal(size=(1, 16, 16, 16)).astype("float32")
        logits, probs, deltas = rpn(features)
        assert logits.dtype == probs.dtype == deltas.dtype == "float32"
        values = np.asarray(logits[0, :, 1])
        assert len(np.unique(values)) > 0.99 * values.size
        head = FPNClassifierHead(num_classes=2, pool_size=7, fc_size=32, train_bn=False)
        maps = [np.random.default_rng(k).normal(size=(1, 16 >> k, 16 >> k, 8)) for k in range(4)]
        rois = np.random.default_rng(1).uniform(0, 0.5, size=(1, 50, 4)).astype("float32")
        rois[..., 2:] += 0.5
        class_logits, class_probs, _ = head(rois, np.array([64, 64]), maps)
        assert class_logits.dtype == "float32"
        assert len(np.unique(np.asarray(class_probs[0, :, 1]))) == 50
    finally:
        keras.mixed_precision.set_global_policy(previous)
