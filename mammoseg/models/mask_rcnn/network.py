"""The Mask R-CNN Keras model: one graph for training (with targets) and inference (detections).

`MaskRCNNNetwork.call` takes a dict of inputs. With truth inputs (``input_gt_boxes`` …) it samples
ROI targets and returns everything the five losses need; `compute_loss` turns that into the
training loss (plus matterport's L2 weight decay) and tracks each loss as a metric. Without truth
it returns detections. Users normally drive it through `mammoseg.models.mask_rcnn.MaskRCNN`
(matterport's API, in ``model.py``), which holds a `MaskRCNNNetwork` as ``.keras_model``.

Example:
    >>> config = Config(NAME="demo", NUM_CLASSES=2, BACKBONE="resnet_tiny", IMAGE_MAX_DIM=64,
    ...                 IMAGE_MIN_DIM=64, IMAGES_PER_GPU=1)
    >>> model = MaskRCNNNetwork(config)
    >>> outputs = model.predict_on_batch(dummy_inputs(config))  # doctest: +SKIP
    >>> outputs["detections"].shape
    (1, 100, 6)
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from mammoseg.models.mask_rcnn import losses
from mammoseg.models.mask_rcnn.anchors import pyramid_anchors_tf
from mammoseg.models.mask_rcnn.backbone import build_backbone
from mammoseg.models.mask_rcnn.config import LOSS_NAMES, Config
from mammoseg.models.mask_rcnn.heads import FPNClassifierHead, MaskHead, build_rpn_model
from mammoseg.models.mask_rcnn.layers import DetectionLayer, ProposalLayer, norm_boxes_graph
from mammoseg.models.mask_rcnn.targets import DetectionTargetLayer

TRAINING_INPUTS = (
    "input_rpn_match",
    "input_rpn_bbox",
    "input_gt_class_ids",
    "input_gt_boxes",
    "input_gt_masks",
)


@keras.saving.register_keras_serializable(package="mammoseg")
class MaskRCNNNetwork(keras.Model):
    """Mask R-CNN as a `keras.Model` (ResNet-FPN backbone, RPN, box and mask heads).

    This is the network itself. `mammoseg.models.mask_rcnn.MaskRCNN` is matterport's user API
    (``train``, ``detect``, ``load_weights``, ``find_last``) around it and holds one as
    ``.keras_model``; use this class directly to call, fit or save the graph the Keras way.

    Args:
        config: a `Config`; the model reads the values it needs once, here.

    Inputs (dict): ``input_image`` (B, H, W, 3) molded, ``input_image_meta`` (B, META); for
    training also ``input_rpn_match`` (B, A, 1), ``input_rpn_bbox`` (B, T, 4),
    ``input_gt_class_ids`` (B, G), ``input_gt_boxes`` (B, G, 4) pixels and ``input_gt_masks``
    (B, h, w, G).
    """

    def __init__(self, config: Config, **kwargs):
        kwargs.setdefault("name", "mask_rcnn")
        super().__init__(**kwargs)
        if not isinstance(config, Config):
            raise TypeError(f"`config` must be a Config, received {type(config).__name__}")
        self.config = config
        c = config
        self.backbone = build_backbone(
            c.BACKBONE, c.TOP_DOWN_PYRAMID_SIZE, c.TRAIN_BN, c.IMAGE_CHANNEL_COUNT
        )
        self.rpn = build_rpn_model(
            c.RPN_ANCHOR_STRIDE,
            len(c.RPN_ANCHOR_RATIOS),
            c.TOP_DOWN_PYRAMID_SIZE,
            c.RPN_CONV_FILTERS,
        )
        self.proposals = ProposalLayer(
            c.POST_NMS_ROIS_INFERENCE,
            c.RPN_NMS_THRESHOLD,
            c.PRE_NMS_LIMIT,
            c.RPN_BBOX_STD_DEV,
            name="ROI",
        )
        self.detection_targets = DetectionTargetLayer(
            c.TRAIN_ROIS_PER_IMAGE,
            c.ROI_POSITIVE_RATIO,
            c.BBOX_STD_DEV,
            c.MASK_SHAPE,
            c.USE_MINI_MASK,
            c.ADD_GT_TO_PROPOSALS,
            name="proposal_targets",
        )
        self.classifier = FPNClassifierHead(
            c.NUM_CLASSES, c.POOL_SIZE, c.FPN_CLASSIF_FC_LAYERS_SIZE, c.TRAIN_BN
        )
        self.mask_head = MaskHead(c.NUM_CLASSES, c.MASK_POOL_SIZE, c.MASK_HEAD_FILTERS, c.TRAIN_BN)
        self.detection = DetectionLayer(
            c.BBOX_STD_DEV,
            c.DETECTION_MIN_CONFIDENCE,
            c.DETECTION_NMS_THRESHOLD,
            c.DETECTION_MAX_INSTANCES,
            name="mrcnn_detection",
        )
        self.loss_trackers = {name: keras.metrics.Mean(name=name) for name in LOSS_NAMES}

    # ------------------------------------------------------------------------- forward

    def _features(self, image, training):
        pyramid = self.backbone(image, training=training)
        outputs = [self.rpn(p, training=training) for p in pyramid]
        logits, probs, bbox = (tf.concat([o[i] for o in outputs], axis=1) for i in range(3))
        c = self.config
        anchors = pyramid_anchors_tf(
            [tf.shape(p)[1:3] for p in pyramid],
            tf.shape(image)[1:3],
            c.RPN_ANCHOR_SCALES,
            c.RPN_ANCHOR_RATIOS,
            c.BACKBONE_STRIDES,
            c.RPN_ANCHOR_STRIDE,
        )
        return pyramid[:4], tf.cast(logits, tf.float32), probs, tf.cast(bbox, tf.float32), anchors

    def call(self, inputs: dict[str, Any], training: bool = False) -> dict[str, tf.Tensor]:
        image = inputs["input_image"]
        image_shape = tf.shape(image)[1:3]
        feature_maps, rpn_logits, rpn_probs, rpn_bbox, anchors = self._features(image, training)
        c = self.config
        if "input_gt_boxes" in inputs:
            rpn_rois = self.proposals(
                [rpn_probs, rpn_bbox, anchors], proposal_count=c.POST_NMS_ROIS_TRAINING
            )
            gt_boxes = norm_boxes_graph(inputs["input_gt_boxes"], image_shape)
            rois, class_ids, deltas, masks = self.detection_targets(
                [rpn_rois, inputs["input_gt_class_ids"], gt_boxes, inputs["input_gt_masks"]]
            )
            logits, _, bbox = self.classifier(rois, image_shape, feature_maps, training=training)
            # Only positive ROIs have a mask loss, and the target layer lists them first (at
            # most TRAIN_ROIS_PER_IMAGE * ROI_POSITIVE_RATIO): running the mask head on those
            # alone gives the same loss as matterport at a third of the cost.
            n_pos = int(c.TRAIN_ROIS_PER_IMAGE * c.ROI_POSITIVE_RATIO)
            mrcnn_mask = self.mask_head(
                rois[:, :n_pos], image_shape, feature_maps, training=training
            )
            return {
                "rpn_class_logits": rpn_logits,
                "rpn_bbox": rpn_bbox,
                "rois": rois,
                "target_class_ids": class_ids,
                "target_bbox": deltas,
                "target_mask": masks[:, :n_pos],
                "mrcnn_class_logits": logits,
                "mrcnn_bbox": bbox,
                "mrcnn_mask": mrcnn_mask,
            }
        rpn_rois = self.proposals(
            [rpn_probs, rpn_bbox, anchors], proposal_count=c.POST_NMS_ROIS_INFERENCE
        )
        _, probs, bbox = self.classifier(rpn_rois, image_shape, feature_maps, training=False)
        window = norm_boxes_graph(
            tf.cast(inputs["input_image_meta"][:, 7:11], tf.float32), image_shape
        )
        detections = self.detection([rpn_rois, probs, bbox, window])
        mrcnn_mask = self.mask_head(detections[..., :4], image_shape, feature_maps, training=False)
        return {
            "detections": detections,
            "mrcnn_class": probs,
            "mrcnn_bbox": bbox,
            "mrcnn_mask": mrcnn_mask,
            "rpn_rois": rpn_rois,
            "rpn_probs": rpn_probs,
            "rpn_bbox": rpn_bbox,
        }

    # ---------------------------------------------------------------------------- loss

    def compute_losses(self, x: dict[str, Any], y_pred: dict[str, tf.Tensor]) -> dict:
        """The five named losses (unweighted) for a training-graph output."""
        active = tf.cast(x["input_image_meta"][:, 12:], tf.float32)
        return {
            "rpn_class_loss": losses.rpn_class_loss(
                x["input_rpn_match"], y_pred["rpn_class_logits"]
            ),
            "rpn_bbox_loss": losses.rpn_bbox_loss(
                tf.cast(x["input_rpn_bbox"], tf.float32), x["input_rpn_match"], y_pred["rpn_bbox"]
            ),
            "mrcnn_class_loss": losses.mrcnn_class_loss(
                y_pred["target_class_ids"], y_pred["mrcnn_class_logits"], active
            ),
            "mrcnn_bbox_loss": losses.mrcnn_bbox_loss(
                y_pred["target_bbox"], y_pred["target_class_ids"], y_pred["mrcnn_bbox"]
            ),
            "mrcnn_mask_loss": losses.mrcnn_mask_loss(
                y_pred["target_mask"],
                y_pred["target_class_ids"][
                    :, : int(self.config.TRAIN_ROIS_PER_IMAGE * self.config.ROI_POSITIVE_RATIO)
                ],
                y_pred["mrcnn_mask"],
            ),
        }

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """Weighted sum of the five losses plus L2 weight decay; updates the loss metrics."""
        named = self.compute_losses(x, y_pred)
        total = tf.constant(0.0)
        for name, value in named.items():
            self.loss_trackers[name].update_state(value)
            total += self.config.LOSS_WEIGHTS[name] * value
        return total + losses.weight_decay_loss(self.trainable_weights, self.config.WEIGHT_DECAY)

    def build(self, input_shape=None) -> None:
        """Create every weight by running the inference graph once on a small blank image.

        The weights do not depend on the image size, so a 64² image is enough.
        """
        if not self.classifier.built:
            self.call(dummy_inputs(self.config, side=64), training=False)
        self.built = True

    def build_by_calling(self) -> None:
        """Build the model now (`build` without arguments)."""
        self.build()

    def get_config(self):
        fields = self.config.to_dict()
        for derived in ("BATCH_SIZE", "IMAGE_SHAPE", "IMAGE_META_SIZE"):
            fields.pop(derived)
        return {"config": fields, "name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(Config(**config["config"]), name=config.get("name", "mask_rcnn"))


def dummy_inputs(config: Config, side: int | None = None, batch: int = 1) -> dict[str, np.ndarray]:
    """Blank inference inputs (for building the model or timing it)."""
    side = side or int(config.IMAGE_SHAPE[0])
    meta = np.zeros((batch, config.IMAGE_META_SIZE), np.float32)
    meta[:, 1:4] = meta[:, 4:7] = (side, side, config.IMAGE_CHANNEL_COUNT)
    meta[:, 7:11] = (0, 0, side, side)
    meta[:, 11] = 1
    meta[:, 12:] = 1
    return {
        "input_image": np.zeros((batch, side, side, config.IMAGE_CHANNEL_COUNT), np.float32),
        "input_image_meta": meta,
    }
