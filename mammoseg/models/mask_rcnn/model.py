"""`MaskRCNN`: matterport's user API (train, detect, load_weights, find_last) over Keras 3.

`MaskRCNN` is the wrapper a matterport user knows; the `keras.Model` it drives, its
``.keras_model``, is `mammoseg.models.mask_rcnn.network.MaskRCNNNetwork`.

Example:
    >>> model = MaskRCNN(mode="training", config=MammoConfig(), model_dir="logs")  # doctest: +SKIP
    >>> model.load_weights("mask_rcnn_coco.h5", by_name=True, exclude=[
    ...     "mrcnn_class_logits", "mrcnn_bbox_fc", "mrcnn_bbox", "mrcnn_mask"])  # doctest: +SKIP
    >>> model.train(train_set, val_set, 0.001, epochs=20, layers="heads")  # doctest: +SKIP
"""

from __future__ import annotations

import datetime
import os
import re
from collections.abc import Sequence

import keras
import numpy as np

from mammoseg.models.mask_rcnn import utils
from mammoseg.models.mask_rcnn.checkpoints import MatterportCheckpoint
from mammoseg.models.mask_rcnn.config import Config
from mammoseg.models.mask_rcnn.data_generator import MaskRCNNSequence
from mammoseg.models.mask_rcnn.dataset import Dataset
from mammoseg.models.mask_rcnn.network import MaskRCNNNetwork

_HEADS = r"(mrcnn\_.*)|(rpn\_.*)|(fpn\_.*)"
LAYER_REGEX = {
    "heads": _HEADS,
    "3+": r"(res3.*)|(bn3.*)|(res4.*)|(bn4.*)|(res5.*)|(bn5.*)|" + _HEADS,
    "4+": r"(res4.*)|(bn4.*)|(res5.*)|(bn5.*)|" + _HEADS,
    "5+": r"(res5.*)|(bn5.*)|" + _HEADS,
    "all": ".*",
}
COCO_URL = "https://github.com/matterport/Mask_RCNN/releases/download/v2.0/mask_rcnn_coco.h5"
IMAGENET_FILE = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
IMAGENET_URL = (
    "https://github.com/fchollet/deep-learning-models/releases/download/v0.2/" + IMAGENET_FILE
)
SOURCE_HINT = (
    f"mammoseg never downloads weights. matterport's COCO file comes from {COCO_URL}; "
    f"the ImageNet ResNet-50 file from {IMAGENET_URL}"
)
_CHECKPOINT = re.compile(
    r".*[/\\][\w-]+(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})[/\\]"
    r"mask_rcnn_[\w-]+_(\d{4})\.h5$"
)


class MaskRCNN:
    """Mask R-CNN with matterport's API, built on a Keras 3 model (``self.keras_model``).

    This is matterport's wrapper class, not a Keras model: ``train``, ``detect``,
    ``load_weights`` and ``find_last`` as in matterport/Mask_RCNN. The network it trains and
    runs, a `keras.Model`, is the `MaskRCNNNetwork` (``network.py``) in ``self.keras_model``.

    Args:
        mode: "training" or "inference" (``detect`` needs "inference").
        config: a `Config` (instance, not class).
        model_dir: checkpoints and TensorBoard logs go to
            ``model_dir/<name><YYYYMMDDTHHMM>/mask_rcnn_<name>_<epoch:04d>.h5``.

    Raises:
        ValueError: unknown ``mode``. TypeError: ``config`` is not a `Config` instance.

    Example:
        >>> model = MaskRCNN("inference", Config(NUM_CLASSES=2), "logs")  # doctest: +SKIP
        >>> model.detect([image, image])[0]["rois"].shape  # doctest: +SKIP
        (3, 4)
    """

    def __init__(self, mode: str, config: Config, model_dir: str | os.PathLike) -> None:
        if mode not in ("training", "inference"):
            raise ValueError(f"`mode` must be 'training' or 'inference', received {mode!r}")
        if not isinstance(config, Config):
            raise TypeError(
                f"`config` must be a Config instance, received "
                f"{config!r}" + (" (a class: call it)" if isinstance(config, type) else "")
            )
        self.mode = mode
        self.config = config
        self.model_dir = os.fspath(model_dir)
        self.keras_model = MaskRCNNNetwork(config)
        self.keras_model.build_by_calling()
        self.epoch = 0
        self.set_log_dir()

    # ------------------------------------------------------------------- files and weights

    def set_log_dir(self, model_path: str | None = None) -> None:
        """Start a new log folder, or continue the one (and epoch) of ``model_path``."""
        now = datetime.datetime.now()
        if model_path:
            match = _CHECKPOINT.match(os.fspath(model_path).replace("\\", "/"))
            if match:
                now = datetime.datetime(*(int(g) for g in match.groups()[:5]))
                self.epoch = int(match.group(6))
        name = self.config.NAME.lower() if self.config.NAME else "mask_rcnn"
        self.log_dir = os.path.join(self.model_dir, f"{name}{now:%Y%m%dT%H%M}")
        self.checkpoint_path = os.path.join(self.log_dir, f"mask_rcnn_{name}_{{epoch:04d}}.h5")

    def find_last(self) -> str:
        """Path of the last checkpoint of the newest log folder of this config's NAME.

        Raises:
            FileNotFoundError: no log folder, or no checkpoint in the newest one.
        """
        name = self.config.NAME.lower() if self.config.NAME else "mask_rcnn"
        folders = sorted(
            d
            for d in (os.listdir(self.model_dir) if os.path.isdir(self.model_dir) else [])
            if d.startswith(name) and os.path.isdir(os.path.join(self.model_dir, d))
        )
        if not folders:
            raise FileNotFoundError(
                f"could not find a model folder for {name!r} under {self.model_dir}"
            )
        folder = os.path.join(self.model_dir, folders[-1])
        checkpoints = sorted(
            f for f in os.listdir(folder) if f.startswith("mask_rcnn") and f.endswith(".h5")
        )
        if not checkpoints:
            raise FileNotFoundError(f"could not find weight files in {folder}")
        return os.path.join(folder, checkpoints[-1])

    def load_weights(
        self,
        filepath: str | os.PathLike,
        by_name: bool = False,
        exclude: Sequence[str] | None = None,
        *,
        skip_mismatch: bool = False,
    ):
        """Load a Keras 2 HDF5 weights file (matterport checkpoint, COCO or ImageNet file).

        Args:
            filepath: the file.
            by_name: load the layers whose names match, leave the others (needed for the COCO
                and ImageNet files). False demands that the file and the model hold exactly the
                same layers, as a checkpoint of this model does.
            exclude: layer names (regular expressions) not to load; implies ``by_name``.
            skip_mismatch: skip layers whose weight shapes differ from the file's (listed in the
                report's ``skipped``, with the reason) instead of raising. Not in matterport,
                whose Keras 2 loader had the same argument; ``exclude`` names the layers instead.

        Returns:
            The `LoadReport` (``loaded``, ``skipped``, ``missing``, ``unused``).

        Raises:
            FileNotFoundError: no such file (the message says where the published ones are).
            ValueError: ``by_name=False`` and the file's layers differ from the model's.
            MammosegDataError: a layer's weight shapes differ from the file's (without
                ``skip_mismatch``).
        """
        from mammoseg.models.weights import load_weights_by_name

        if exclude:
            by_name = True
        report = load_weights_by_name(
            self.keras_model,
            filepath,
            exclude=exclude or (),
            skip_mismatch=skip_mismatch,
            source_hint=SOURCE_HINT,
        )
        if not by_name and (report.missing or report.unused):
            raise ValueError(
                f"{filepath} does not hold exactly this model's layers (missing from file: "
                f"{report.missing[:5]}, not in model: {report.unused[:5]}); pass by_name=True "
                f"to load the layers it shares"
            )
        self.set_log_dir(os.fspath(filepath))
        return report

    def get_imagenet_weights(self, path: str | os.PathLike = IMAGENET_FILE) -> str:
        """Return the path of the ImageNet ResNet-50 weights file, which you supply.

        Raises:
            FileNotFoundError: the file is missing; the message gives the published URL.
        """
        path = os.fspath(path)
        if not os.path.exists(path):
            raise FileNotFoundError(
                f"ImageNet weights not found: {path}. mammoseg never "
                f"downloads weights; the published file is {IMAGENET_URL}"
            )
        return path

    # ------------------------------------------------------------------------ training

    def set_trainable(self, layer_regex: str, model: keras.Model | None = None) -> list[str]:
        """Make trainable exactly the layers whose names fully match ``layer_regex``.

        Returns:
            Names of the layers with weights now trainable.
        """
        model = model or self.keras_model
        model.trainable = True  # a frozen container would hide its layers' own flags
        names = []
        for layer in model.layers:
            if isinstance(layer, keras.Model):
                names += self.set_trainable(layer_regex, layer)
                continue
            layer.trainable = bool(re.fullmatch(layer_regex, layer.name))
            if layer.trainable and layer.weights:
                names.append(layer.name)
        return names

    def compile(self, learning_rate: float, momentum: float) -> None:
        """SGD with momentum and gradient-norm clipping, as matterport."""
        optimizer = keras.optimizers.SGD(
            learning_rate=learning_rate, momentum=momentum, clipnorm=self.config.GRADIENT_CLIP_NORM
        )
        self.keras_model.compile(optimizer=optimizer, jit_compile=False)

    def train(
        self,
        train_dataset: Dataset,
        val_dataset: Dataset | None,
        learning_rate: float,
        epochs: int,
        layers: str,
        augmentation=None,
        custom_callbacks=None,
        no_augmentation_sources=None,
    ):
        """Train from ``self.epoch`` up to ``epochs`` (cumulative, as matterport).

        Args:
            layers: "heads", "3+", "4+", "5+", "all" or a regular expression of layer names.
            augmentation: callable ``(image, masks) -> (image, masks)`` (see `load_image_gt`).
            custom_callbacks: extra Keras callbacks.

        Returns:
            The Keras ``History``.

        Raises:
            ValueError: the model is in inference mode, or ``epochs`` is not above the
                current epoch.
        """
        if self.mode != "training":
            raise ValueError("train() needs a model created with mode='training'")
        if epochs <= self.epoch:
            raise ValueError(
                f"`epochs` is the cumulative total and must exceed the current "
                f"epoch {self.epoch}, received {epochs}"
            )
        regex = LAYER_REGEX.get(layers, layers)
        c = self.config
        train_gen = MaskRCNNSequence(train_dataset, c, shuffle=True, augmentation=augmentation)
        val_gen = (
            MaskRCNNSequence(val_dataset, c, shuffle=True, steps=c.VALIDATION_STEPS)
            if val_dataset is not None
            else None
        )
        os.makedirs(self.log_dir, exist_ok=True)
        callbacks = [
            keras.callbacks.TensorBoard(self.log_dir, histogram_freq=0, write_graph=False),
            keras.callbacks.CSVLogger(os.path.join(self.log_dir, "history.csv"), append=True),
            MatterportCheckpoint(self.checkpoint_path),
            *(custom_callbacks or []),
        ]
        self.set_trainable(regex)
        self.compile(learning_rate, c.LEARNING_MOMENTUM)
        history = self.keras_model.fit(
            train_gen,
            initial_epoch=self.epoch,
            epochs=epochs,
            steps_per_epoch=len(train_gen),
            validation_data=val_gen,
            validation_steps=c.VALIDATION_STEPS if val_gen else None,
            callbacks=callbacks,
            verbose=0,
        )
        self.epoch = max(self.epoch, epochs)
        return history

    # ----------------------------------------------------------------------- inference

    def mold_inputs(self, images: Sequence[np.ndarray]):
        """Resize and mold images as in training; returns (molded, metas, windows).

        "crop" mode (a training-time random crop) is replaced by "pad64" at inference.
        """
        c = self.config
        mode = "pad64" if c.IMAGE_RESIZE_MODE == "crop" else c.IMAGE_RESIZE_MODE
        molded, metas, windows = [], [], []
        for image in images:
            image = np.asarray(image)
            if image.ndim == 2:
                image = np.stack([image] * 3, axis=-1)
            resized, window, scale, _, _ = utils.resize_image(
                image,
                min_dim=c.IMAGE_MIN_DIM,
                min_scale=c.IMAGE_MIN_SCALE,
                max_dim=c.IMAGE_MAX_DIM,
                mode=mode,
            )
            molded.append(utils.mold_image(resized, c.MEAN_PIXEL))
            metas.append(
                utils.compose_image_meta(
                    0, image.shape, resized.shape, window, scale, np.zeros(c.NUM_CLASSES, np.int32)
                )
            )
            windows.append(window)
        shapes = {m.shape for m in molded}
        if len(shapes) > 1:
            raise ValueError(f"images must have one shape after resizing, received {shapes}")
        return np.stack(molded), np.stack(metas), np.array(windows)

    def unmold_detections(self, detections, mrcnn_mask, original_shape, molded_shape, window):
        """One image's network output → pixel boxes, class ids, scores, full-size masks."""
        empty = np.where(detections[:, 4] == 0)[0]
        n = empty[0] if empty.size else detections.shape[0]
        boxes = detections[:n, :4]
        class_ids = detections[:n, 4].astype(np.int32)
        scores = detections[:n, 5]
        masks = mrcnn_mask[np.arange(n), :, :, class_ids]
        wy1, wx1, wy2, wx2 = utils.norm_boxes(np.array([window]), molded_shape[:2])[0]
        shift = np.array([wy1, wx1, wy1, wx1])
        scale = np.array([wy2 - wy1, wx2 - wx1, wy2 - wy1, wx2 - wx1])
        boxes = utils.denorm_boxes((boxes - shift) / scale, original_shape[:2])
        keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        boxes, class_ids, scores, masks = boxes[keep], class_ids[keep], scores[keep], masks[keep]
        full = [utils.unmold_mask(m, b, original_shape) for m, b in zip(masks, boxes)]
        full = np.stack(full, axis=-1) if full else np.zeros((*original_shape[:2], 0), bool)
        return boxes, class_ids, scores, full

    def detect(self, images: Sequence[np.ndarray], verbose: int = 0) -> list[dict]:
        """Detect instances in ``images`` (a list of BATCH_SIZE images, RGB or grey).

        Returns:
            One dict per image: ``rois`` [N, (y1, x1, y2, x2)] pixels, ``class_ids`` [N],
            ``scores`` [N], ``masks`` bool [H, W, N].

        Raises:
            ValueError: not in inference mode, or ``len(images) != BATCH_SIZE``.
        """
        if self.mode != "inference":
            raise ValueError("detect() needs a model created with mode='inference'")
        if len(images) != self.config.BATCH_SIZE:
            raise ValueError(
                f"`images` must hold BATCH_SIZE={self.config.BATCH_SIZE} images, "
                f"received {len(images)}"
            )
        molded, metas, windows = self.mold_inputs(images)
        out = self.keras_model.predict_on_batch({"input_image": molded, "input_image_meta": metas})
        results = []
        for i, image in enumerate(images):
            rois, class_ids, scores, masks = self.unmold_detections(
                np.asarray(out["detections"][i]),
                np.asarray(out["mrcnn_mask"][i]),
                np.asarray(image).shape,
                molded[i].shape,
                windows[i],
            )
            results.append({"rois": rois, "class_ids": class_ids, "scores": scores, "masks": masks})
        return results
