"""Write Mask R-CNN weights in the Keras 2 ``save_weights`` HDF5 layout matterport uses.

Checkpoints written this way load by name into this package (`MaskRCNN.load_weights`) and have
the layout of the published ``mask_rcnn_coco.h5``: one group per layer (the RPN as one
``rpn_model`` group, as Keras 2 saved nested models), attribute ``weight_names`` such as
``conv1/kernel:0``.

Example:
    >>> save_weights_h5(mrcnn.keras_model, "logs/mask_rcnn_tumor_0001.h5")  # doctest: +SKIP
"""

from __future__ import annotations

import os

import h5py
import keras
import numpy as np

# Nested models that Keras 2 stored as one group (matterport builds the RPN as a nested model).
NESTED_GROUPS = ("rpn_model",)


def _leaves(layer: keras.layers.Layer):
    children = getattr(layer, "layers", None)
    if children is None:
        if layer.weights:
            yield layer
        return
    for child in children:
        yield from _leaves(child)


def weight_groups(model: keras.Model) -> list[tuple[str, list[tuple[str, np.ndarray]]]]:
    """(group name, [(weight name, value)]) in the order Keras 2 would write them."""
    groups = []
    stack = list(model.layers)
    while stack:
        layer = stack.pop(0)
        if layer.name in NESTED_GROUPS:
            weights = [
                (f"{leaf.name}/{v.name}:0", np.asarray(v.numpy()))
                for leaf in _leaves(layer)
                for v in leaf.weights
            ]
            groups.append((layer.name, weights))
        elif getattr(layer, "layers", None) is not None:
            stack[0:0] = list(layer.layers)
        elif layer.weights:
            groups.append(
                (
                    layer.name,
                    [(f"{layer.name}/{v.name}:0", np.asarray(v.numpy())) for v in layer.weights],
                )
            )
    return groups


def save_weights_h5(model: keras.Model, path: str | os.PathLike) -> None:
    """Save every weight of ``model`` to ``path`` in the Keras 2 by-name layout."""
    groups = weight_groups(model)
    tmp = f"{os.fspath(path)}.tmp"
    with h5py.File(tmp, "w") as handle:
        handle.attrs["layer_names"] = np.array([name.encode() for name, _ in groups])
        handle.attrs["backend"] = b"tensorflow"
        handle.attrs["keras_version"] = keras.__version__.encode()
        for name, weights in groups:
            group = handle.create_group(name)
            group.attrs["weight_names"] = np.array([w.encode() for w, _ in weights])
            for weight_name, value in weights:
                group.create_dataset(weight_name, data=value)
    os.replace(tmp, path)  # a crash mid-write never leaves a truncated checkpoint


class MatterportCheckpoint(keras.callbacks.Callback):
    """Save ``path_template.format(epoch=N)`` (1-based) at the end of each epoch."""

    def __init__(self, path_template: str, model_to_save: keras.Model | None = None):
        super().__init__()
        self.path_template = path_template
        self.model_to_save = model_to_save

    def on_epoch_end(self, epoch, logs=None):
        save_weights_h5(
            self.model_to_save or self.model, self.path_template.format(epoch=epoch + 1)
        )
