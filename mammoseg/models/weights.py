"""Load published Keras 2 HDF5 weight files into Keras 3 models, layer by layer, by name.

The published files this project needs (YaroslavNet's ``s10_YaroslavNet.h5``, matterport's
``mask_rcnn_coco.h5``) were written by Keras 2 ``Model.save_weights``: the root (or its
``model_weights`` group, for full-model saves) has the attribute ``layer_names``; each layer is a
group whose attribute ``weight_names`` lists its weights, e.g. ``block1_conv1/kernel:0``, stored as
datasets at that relative path inside the layer group. Keras 3 cannot read these by name, so this
module does, the way Keras 2's ``load_weights(by_name=True)`` did:

- layers are found by name anywhere in the model, inside nested models too (Mask R-CNN nests
  ``rpn_model``);
- a layer's weights are matched by their ``layer/variable`` names when these agree with the
  model's, otherwise in the file's order (Keras 2's order for plain layers is the Keras 3 order);
- nothing is assigned until every matched layer has been checked, so an error leaves the model
  unchanged.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

import h5py
import keras
import numpy as np

from mammoseg.data.errors import MammosegDataError

DEFAULT_SOURCE_HINT = (
    "mammoseg never downloads weights: pass the path of a file you have. The published "
    "YaroslavNet patch classifier (s10_YaroslavNet.h5) comes from "
    "https://github.com/lishen/end2end-all-conv"
)


@dataclass
class LoadReport:
    """What `load_weights_by_name` did.

    Attributes:
        loaded: names of the file's layers whose weights were assigned.
        skipped: names of the file's layers found in the model but not assigned (matched by
            ``exclude``, or a shape mismatch with ``skip_mismatch=True``); ``reasons`` says why.
        missing: names of model layers holding weights that the file did not fill (they keep
            their initial values). Layers inside a loaded nested model count as filled.
        unused: names of the file's layers (with weights) that no model layer carries, e.g. the
            ResNet-101 blocks of a COCO file loaded into a ResNet-50.
        reasons: layer name -> why it was skipped.
    """

    loaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)
    reasons: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return (
            f"LoadReport(loaded={len(self.loaded)}, skipped={len(self.skipped)}, "
            f"missing={len(self.missing)}, unused={len(self.unused)})"
        )


def _read_string_list(group: h5py.Group, name: str) -> list[str]:
    """Read a list-of-strings attribute, joining Keras 2's chunks (``name0``, ``name1``...)."""
    if name in group.attrs:
        values = list(group.attrs[name])
    else:
        values, chunk = [], 0
        while f"{name}{chunk}" in group.attrs:
            values.extend(group.attrs[f"{name}{chunk}"])
            chunk += 1
    return [v.decode("utf8") if isinstance(v, bytes | np.bytes_) else str(v) for v in values]


def _weights_root(handle: h5py.File, path: str) -> h5py.Group:
    if "layer_names" in handle.attrs or "layer_names0" in handle.attrs:
        return handle
    if "model_weights" in handle:
        return handle["model_weights"]
    raise MammosegDataError(
        "not a Keras 2 weights file (no `layer_names` attribute at the root or in a "
        "`model_weights` group); Keras 3 `.weights.h5` files load with `model.load_weights`",
        path=path,
    )


def iter_h5_layer_weights(
    path: str | os.PathLike,
) -> Iterator[tuple[str, list[tuple[str, np.ndarray]]]]:
    """Yield each layer of a Keras 2 HDF5 weights file with its named weights, in file order.

    Args:
        path: a Keras 2 ``save_weights`` file, or a full-model ``save`` file (``model_weights``).

    Returns:
        An iterator of ``(layer_name, [(weight_name, array), ...])``; layers without weights
        (pooling, activations) yield an empty list.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        MammosegDataError: the file is not in the Keras 2 layout, or a listed weight is absent.

    Example:
        >>> for name, weights in iter_h5_layer_weights("s10_YaroslavNet.h5"):  # doctest: +SKIP
        ...     print(name, [(w, a.shape) for w, a in weights])
        block1_conv1 [('block1_conv1/kernel:0', (3, 3, 1, 32)), ('block1_conv1/bias:0', (32,))]
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"weights file not found: {path}")
    with h5py.File(path, "r") as handle:
        root = _weights_root(handle, path)
        for layer_name in _read_string_list(root, "layer_names"):
            if layer_name not in root:
                raise MammosegDataError(f"layer {layer_name!r} is listed but has no group", path)
            group = root[layer_name]
            weights = []
            for weight_name in _read_string_list(group, "weight_names"):
                if weight_name not in group:
                    raise MammosegDataError(
                        f"layer {layer_name!r} lists weight {weight_name!r} but the file does not "
                        "hold it",
                        path,
                    )
                weights.append((weight_name, np.asarray(group[weight_name])))
            yield layer_name, weights


def _index_layers(model: keras.layers.Layer) -> dict[str, keras.layers.Layer]:
    """Map layer name -> layer, breadth first through nested models (outer names win)."""
    index: dict[str, keras.layers.Layer] = {}
    queue = list(getattr(model, "layers", []))
    while queue:
        layer = queue.pop(0)
        index.setdefault(layer.name, layer)
        queue.extend(getattr(layer, "layers", []))
    return index


def _leaf_layers_with_weights(model: keras.layers.Layer) -> Iterator[keras.layers.Layer]:
    for layer in getattr(model, "layers", []):
        if isinstance(layer, keras.Model):
            yield from _leaf_layers_with_weights(layer)
        elif layer.weights:
            yield layer


def _key(name: str, parts: int) -> str:
    """``'rpn_model/rpn_conv_shared/kernel:0'`` -> ``'rpn_conv_shared/kernel'`` for parts=2."""
    name = re.sub(r":\d+$", "", name)
    return "/".join(name.split("/")[-parts:])


def _pair_weights(
    layer: keras.layers.Layer, file_weights: list[tuple[str, np.ndarray]]
) -> list[tuple[keras.Variable, str, np.ndarray]]:
    """Pair each file weight with a variable of ``layer``: by name when possible, else by order."""
    variables = list(layer.weights)
    for parts in (2, 1):
        file_keys = [_key(name, parts) for name, _ in file_weights]
        var_keys = [_key(v.path, parts) for v in variables]
        if len(set(file_keys)) == len(file_keys) and sorted(file_keys) == sorted(var_keys):
            by_key = dict(zip(var_keys, variables))
            return [(by_key[k], name, value) for k, (name, value) in zip(file_keys, file_weights)]
    return [(v, name, value) for v, (name, value) in zip(variables, file_weights)]


def _value_problem(
    layer_name: str, weight_name: str, variable: keras.Variable, value: np.ndarray
) -> str | None:
    """Why a file value cannot go into ``variable`` (its dtype or its numbers), or None."""
    if not (np.issubdtype(value.dtype, np.number) or value.dtype == np.bool_):
        return (
            f"layer {layer_name!r}, weight {weight_name!r}: file dtype {value.dtype} is not "
            f"numeric (model dtype {keras.backend.standardize_dtype(variable.dtype)})"
        )
    if np.issubdtype(value.dtype, np.floating) and not np.all(np.isfinite(value)):
        return (
            f"layer {layer_name!r}, weight {weight_name!r}: the file holds NaN or infinite values"
        )
    return None


def load_weights_by_name(
    model: keras.Model,
    path: str | os.PathLike,
    exclude: Iterable[str] | str = (),
    skip_mismatch: bool = False,
    source_hint: str | None = None,
    rename: Mapping[str, str] | None = None,
) -> LoadReport:
    """Assign a Keras 2 HDF5 file's weights to the model's layers of the same names.

    Args:
        model: a built Keras 3 model; layers are looked up by name, inside nested models too.
        path: the weights file (Keras 2 ``save_weights`` layout or a full-model save).
        exclude: regular expressions; a layer whose whole name matches one is skipped
            (matterport's COCO start excludes ``mrcnn_class_logits``, ``mrcnn_bbox_fc``...).
            The name matched is the model's, after ``rename``, never the file's. A single
            string is one pattern.
        skip_mismatch: skip (and report) layers whose weight count or shapes differ instead of
            raising.
        source_hint: where the published file comes from, appended to the file-not-found
            message; defaults to a note on YaroslavNet's file.
        rename: file layer name -> model layer name, for files whose layers carry Keras 2
            automatic names (``batch_normalization_3``). Renaming comes first: ``exclude`` sees
            the new name, and every list of the report uses the new names (``unused`` too, for a
            renamed layer the model does not have).

    Returns:
        A `LoadReport` naming the loaded, skipped, missing and unused layers.

    Raises:
        FileNotFoundError: ``path`` does not exist (the message says where to get the file).
        MammosegDataError: the file is not a Keras 2 weights file, or (``skip_mismatch=False``)
            a layer's weight count or shape differs; the message names the layer, the weight
            and both shapes. The model is unchanged when this is raised.
        TypeError: ``model`` is not a Keras model.

    Example:
        >>> model = build_yaroslav_net()  # doctest: +SKIP
        >>> report = load_weights_by_name(model, "s10_YaroslavNet.h5", exclude=["predictions"])
        >>> report.skipped  # doctest: +SKIP
        ['predictions']
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"`model` must be a keras.Model, received {type(model).__name__}")
    patterns = [exclude] if isinstance(exclude, str) else list(exclude)
    try:
        compiled = [re.compile(p) for p in patterns]
    except re.error as err:
        raise ValueError(f"`exclude` holds an invalid regular expression: {err}") from err
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"weights file not found: {path}. {source_hint or DEFAULT_SOURCE_HINT}"
        )

    index = _index_layers(model)
    report = LoadReport()
    assignments: list[tuple[keras.Variable, np.ndarray]] = []
    filled: set[int] = set()

    rename = dict(rename or {})
    for file_layer_name, file_weights in iter_h5_layer_weights(path):
        if not file_weights:
            continue
        layer_name = rename.get(file_layer_name, file_layer_name)
        layer = index.get(layer_name)
        if layer is None:
            report.unused.append(layer_name)
            continue
        if any(p.fullmatch(layer_name) for p in compiled):
            report.skipped.append(layer_name)
            report.reasons[layer_name] = "excluded"
            continue
        problem = None
        if len(layer.weights) != len(file_weights):
            problem = (
                f"layer {layer_name!r} has {len(layer.weights)} weights in the model but "
                f"{len(file_weights)} in the file ({[n for n, _ in file_weights]})"
            )
            pairs = []
        else:
            pairs = _pair_weights(layer, file_weights)
            for variable, weight_name, value in pairs:
                if tuple(variable.shape) != tuple(value.shape):
                    problem = (
                        f"layer {layer_name!r}, weight {weight_name!r}: model shape "
                        f"{tuple(variable.shape)}, file shape {tuple(value.shape)}"
                    )
                    break
                problem = _value_problem(layer_name, weight_name, variable, value)
                if problem is not None:
                    break
        if problem is not None:
            if not skip_mismatch:
                raise MammosegDataError(problem + " (pass skip_mismatch=True to skip it)", path)
            report.skipped.append(layer_name)
            report.reasons[layer_name] = problem
            continue
        # Converted here, before anything is assigned, so a failing cast cannot leave the model
        # half loaded.
        assignments.extend(
            (variable, value.astype(keras.backend.standardize_dtype(variable.dtype)))
            for variable, _, value in pairs
        )
        report.loaded.append(layer_name)
        filled.update(id(leaf) for leaf in _leaf_layers_with_weights(layer))
        filled.add(id(layer))

    for variable, value in assignments:
        variable.assign(value)
    skipped = set(report.skipped)
    report.missing = [
        leaf.name
        for leaf in _leaf_layers_with_weights(model)
        if id(leaf) not in filled and leaf.name not in skipped
    ]
    return report


__all__ = ["DEFAULT_SOURCE_HINT", "LoadReport", "iter_h5_layer_weights", "load_weights_by_name"]
