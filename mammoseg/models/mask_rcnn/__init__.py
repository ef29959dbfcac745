"""Mask R-CNN in Keras 3 with matterport's API, layer names and weight files (section IV.F).

matterport/Mask_RCNN needs TensorFlow 1 and Keras <= 2.2; this package keeps its user API, its
module layout, its layer names (so ``mask_rcnn_coco.h5`` and the ImageNet ResNet-50 file load by
name) and its checkpoint layout, on Keras 3 / TensorFlow 2. A matterport script ports by
changing its imports only::

    from mammoseg.models.mask_rcnn.config import Config
    from mammoseg.models.mask_rcnn import utils, visualize
    import mammoseg.models.mask_rcnn.model as modellib

`MaskRCNN` (``model.py``) is matterport's wrapper; the `keras.Model` it drives, its
``.keras_model``, is `MaskRCNNNetwork` (``network.py``).

Layout (matterport's three user modules first):

- `model`: matterport's ``modellib``: `MaskRCNN` (train, detect, detect_molded, load_weights,
  find_last, get_anchors, run_graph), `load_image_gt`, `mold_image`, `unmold_image`,
  `data_generator` and the training batches (`MaskRCNNSequence`);
- `utils`: matterport's ``utils``: `Dataset`, `compute_ap`, `compute_ap_range`, boxes, IoU,
  box deltas, mini-masks, image resizing and image meta;
- `visualize`: matterport's ``visualize``: `display_instances` and friends (matplotlib);
- `config`: `Config` (matterport's fields, each with its reason) and `MammoConfig` (the authors');
- `dataset`: `RecordDataset`, a `utils.Dataset` over mammoseg records;
- `augment`: shape-keeping flips and quarter turns (`RandomFlips`);
- `anchors`: the feature pyramid's anchor boxes, in NumPy and TensorFlow;
- `backbone`: ResNet-50/101 (and a tiny variant for tests) with the feature pyramid;
- `heads`: the region proposal network, the box/class head and the mask head;
- `layers`: weightless graph layers (proposals, pyramid ROI align, detections);
- `targets`: anchor targets for the RPN and ROI targets for the heads;
- `losses`: the five losses as pure TensorFlow functions;
- `network`: `MaskRCNNNetwork`, the `keras.Model` for training and inference;
- `checkpoints`: weights written in the Keras 2 ``save_weights`` layout matterport reads;
- `evaluate`: matterport mAP over a dataset, COCO AP, and the inputs of `mammoseg.metrics.froc`.

Example:
    >>> from mammoseg.models.mask_rcnn import MammoConfig, MaskRCNN, RecordDataset
    >>> config = MammoConfig()
    >>> model = MaskRCNN("training", config, model_dir="logs")  # doctest: +SKIP
    >>> model.train(train_set, val_set, 0.001, epochs=20, layers="heads")  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from mammoseg.models.mask_rcnn.augment import RandomFlips
from mammoseg.models.mask_rcnn.config import Config, MammoConfig
from mammoseg.models.mask_rcnn.dataset import RecordDataset
from mammoseg.models.mask_rcnn.model import LAYER_REGEX, MaskRCNN
from mammoseg.models.mask_rcnn.network import MaskRCNNNetwork
from mammoseg.models.mask_rcnn.utils import Dataset

COCO_HEADS = ["mrcnn_class_logits", "mrcnn_bbox_fc", "mrcnn_bbox", "mrcnn_mask"]


def build_mask_rcnn(
    mode: str = "inference", config: Config | None = None, model_dir: str = "logs", **overrides: Any
) -> MaskRCNN:
    """Registry builder: a `MaskRCNN` (its Keras model is ``.keras_model``).

    Args:
        mode: "training" or "inference".
        config: a `Config`; default `MammoConfig` (the paper authors' settings).
        model_dir: folder for checkpoints and logs.
        **overrides: Config fields, upper or lower case (``num_classes=3``).

    Example:
        >>> mrcnn = build_mask_rcnn(backbone="resnet_tiny", image_min_dim=64,
        ...                         image_max_dim=64)  # doctest: +SKIP
    """
    fields = {key.upper(): value for key, value in overrides.items()}
    if config is None:
        config = MammoConfig(**fields)
    elif fields:
        config = type(config)(**{**{k: getattr(config, k) for k in config.field_names()}, **fields})
    return MaskRCNN(mode, config, model_dir)


__all__ = [
    "COCO_HEADS",
    "Config",
    "Dataset",
    "LAYER_REGEX",
    "MammoConfig",
    "MaskRCNN",
    "MaskRCNNNetwork",
    "RandomFlips",
    "RecordDataset",
    "build_mask_rcnn",
]
