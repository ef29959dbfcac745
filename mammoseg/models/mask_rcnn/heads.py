"""Mask R-CNN heads: the region proposal network and the box/class and mask heads.

Layer names are matterport's (``rpn_model`` holding ``rpn_conv_shared``, ``rpn_class_raw``,
``rpn_bbox_pred``; ``mrcnn_class_conv1`` … ``mrcnn_mask``) so published weights load by name.
matterport wraps the head layers in ``TimeDistributed``; here the ROIs are folded into the batch
instead, which gives the same weights (same shapes, same names) and is faster.

Example:
    >>> rpn = build_rpn_model(anchor_stride=1, anchors_per_location=3, depth=16)
    >>> [tuple(t.shape[1:]) for t in rpn(np.zeros((1, 4, 4, 16)))]
    [(48, 2), (48, 2), (48, 4)]
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import layers

from mammoseg.models.mask_rcnn.backbone import BatchNorm
from mammoseg.models.mask_rcnn.layers import PyramidROIAlign


def build_rpn_model(
    anchor_stride: int, anchors_per_location: int, depth: int, shared_filters: int = 512
) -> keras.Model:
    """The RPN, shared by every pyramid level: feature map → anchor logits, probs and deltas.

    Returns:
        Model "rpn_model": (B, H, W, depth) → ``[rpn_class_logits (B, H·W·a, 2),
        rpn_probs (B, H·W·a, 2), rpn_bbox (B, H·W·a, 4)]`` with a = ``anchors_per_location``.
    """
    feature_map = keras.Input((None, None, depth), name="input_rpn_feature_map")
    shared = layers.Conv2D(
        shared_filters,
        3,
        padding="same",
        activation="relu",
        strides=anchor_stride,
        name="rpn_conv_shared",
    )(feature_map)
    # The scores and deltas are computed in float32 even under mixed precision: the proposal
    # layer ranks ~16k anchors by score, and bfloat16 logits (8-bit mantissa) tie by the
    # thousand, so top-k would fall back to anchor order (the image's top-left corner).
    x = layers.Conv2D(2 * anchors_per_location, 1, name="rpn_class_raw", dtype="float32")(shared)
    logits = layers.Reshape((-1, 2), name="rpn_class_logits", dtype="float32")(x)
    probs = layers.Activation("softmax", dtype="float32", name="rpn_class_xxx")(logits)
    x = layers.Conv2D(4 * anchors_per_location, 1, name="rpn_bbox_pred", dtype="float32")(shared)
    bbox = layers.Reshape((-1, 4), name="rpn_bbox", dtype="float32")(x)
    return keras.Model(feature_map, [logits, probs, bbox], name="rpn_model")


def _fold(x):
    """(B, N, ...) → (B·N, ...), and the (B, N) needed to unfold."""
    shape = tf.shape(x)
    return tf.reshape(x, tf.concat([[-1], shape[2:]], 0)), shape[:2]


@keras.saving.register_keras_serializable(package="mammoseg")
class FPNClassifierHead(keras.Model):
    """Box head: ROI-align 7×7 → two "fully connected" convs → class logits and box deltas.

    Call with ``(rois (B, N, 4), image_shape (2,), [P2, P3, P4, P5])``; returns
    ``(class_logits (B, N, C), class_probs (B, N, C), deltas (B, N, C, 4))``.
    """

    def __init__(
        self,
        num_classes: int,
        pool_size: int = 7,
        fc_size: int = 1024,
        train_bn: bool = False,
        **kwargs,
    ):
        kwargs.setdefault("name", "mrcnn_classifier")
        super().__init__(**kwargs)
        self.num_classes = int(num_classes)
        self.pool_size = int(pool_size)
        self.fc_size = int(fc_size)
        self.train_bn = bool(train_bn)
        self.roi_align = PyramidROIAlign((pool_size, pool_size), name="roi_align_classifier")
        self.conv1 = layers.Conv2D(fc_size, pool_size, padding="valid", name="mrcnn_class_conv1")
        self.bn1 = BatchNorm(train_bn, name="mrcnn_class_bn1")
        self.conv2 = layers.Conv2D(fc_size, 1, name="mrcnn_class_conv2")
        self.bn2 = BatchNorm(train_bn, name="mrcnn_class_bn2")
        # float32 outputs under mixed precision: detections are ranked by these scores
        self.class_logits = layers.Dense(num_classes, name="mrcnn_class_logits", dtype="float32")
        self.bbox_fc = layers.Dense(num_classes * 4, name="mrcnn_bbox_fc", dtype="float32")

    def call(self, rois, image_shape, feature_maps, training=False):
        x = self.roi_align([rois, image_shape, *feature_maps])
        x, batch = _fold(x)
        x = tf.nn.relu(self.bn1(self.conv1(x), training=training))
        x = tf.nn.relu(self.bn2(self.conv2(x), training=training))
        shared = tf.reshape(x, tf.concat([batch, [self.fc_size]], 0))
        logits = tf.cast(self.class_logits(shared), tf.float32)
        probs = tf.nn.softmax(logits, axis=-1)
        deltas = tf.cast(self.bbox_fc(shared), tf.float32)
        deltas = tf.reshape(deltas, tf.concat([batch, [self.num_classes, 4]], 0))
        return logits, probs, deltas

    def get_config(self):
        return {
            "num_classes": self.num_classes,
            "pool_size": self.pool_size,
            "fc_size": self.fc_size,
            "train_bn": self.train_bn,
            "name": self.name,
        }


@keras.saving.register_keras_serializable(package="mammoseg")
class MaskHead(keras.Model):
    """Mask head: ROI-align 14×14 → four 3×3 convs → 2× deconv → per-class sigmoid masks.

    Call with ``(rois (B, N, 4), image_shape (2,), [P2, P3, P4, P5])``; returns
    (B, N, 2·pool, 2·pool, C) probabilities.
    """

    def __init__(
        self,
        num_classes: int,
        pool_size: int = 14,
        filters: int = 256,
        train_bn: bool = False,
        **kwargs,
    ):
        kwargs.setdefault("name", "mrcnn_mask_head")
        super().__init__(**kwargs)
        self.num_classes = int(num_classes)
        self.pool_size = int(pool_size)
        self.filters = int(filters)
        self.train_bn = bool(train_bn)
        self.roi_align = PyramidROIAlign((pool_size, pool_size), name="roi_align_mask")
        self.convs = [
            layers.Conv2D(filters, 3, padding="same", name=f"mrcnn_mask_conv{i}")
            for i in range(1, 5)
        ]
        self.bns = [BatchNorm(train_bn, name=f"mrcnn_mask_bn{i}") for i in range(1, 5)]
        self.deconv = layers.Conv2DTranspose(
            filters, 2, strides=2, activation="relu", name="mrcnn_mask_deconv"
        )
        self.mask = layers.Conv2D(
            num_classes, 1, activation="sigmoid", name="mrcnn_mask", dtype="float32"
        )

    def call(self, rois, image_shape, feature_maps, training=False):
        x = self.roi_align([rois, image_shape, *feature_maps])
        x, batch = _fold(x)
        for conv, bn in zip(self.convs, self.bns):
            x = tf.nn.relu(bn(conv(x), training=training))
        x = tf.cast(self.mask(self.deconv(x)), tf.float32)
        return tf.reshape(x, tf.concat([batch, tf.shape(x)[1:]], 0))

    def get_config(self):
        return {
            "num_classes": self.num_classes,
            "pool_size": self.pool_size,
            "filters": self.filters,
            "train_bn": self.train_bn,
            "name": self.name,
        }
