"""mammoseg: breast-tumour segmentation on mammograms with Keras 3.

A runnable reproduction of Aung, Valdivia and Weerawardhena, "Breast Cancer Segmentation: A Deep
Learning Approach" (Stanford CS229, 2018), and a recipe that goes beyond it.

Subpackages: `mammoseg.data` (records, readers, split, augmentation, tf.data pipeline),
`mammoseg.models` (one Keras builder per architecture of the paper), `mammoseg.losses`,
`mammoseg.metrics`.

Modules:
    checks      argument checks with one message per mistake (did you mean ...)
    losses      the paper's weighted cross-entropy and the overlap losses (Dice, Tversky, focal)
    training    precision policy, tf.distribute strategy, callbacks, `fit_segmenter`
    plots       the paper's figures (Fig. 1, 3, 4, loss curves)
    cli         the ``mammoseg`` command
    __main__    ``python -m mammoseg``, the same command
    data/       records, readers, cache, split, augmentation, tf.data (see its docstring)
    models/     one builder per architecture, weights loading, Mask R-CNN (see its docstring)
    metrics/    overlap, detection (FROC) and Keras metrics (see its docstring)
    recipes/    the mass-finding recipe beyond the paper (see its docstring)

Saved models: ``import mammoseg`` is enough for ``keras.saving.load_model`` to find mammoseg's
losses, metrics and layers (no ``custom_objects``). The Keras classes register as soon as Keras
is imported (at once if it already is), so ``import mammoseg`` alone does not pull in
TensorFlow, and the NumPy metrics and the readers stay quick to import.

Example:
    >>> import mammoseg, keras
    >>> model = keras.saving.load_model("runs/vc/dice/model.keras")  # doctest: +SKIP
"""

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

__version__ = "0.1.0"

# The modules that register Keras classes (``mammoseg>Name``) for loading saved models.
_KERAS_MODULES = (
    "mammoseg.losses",
    "mammoseg.metrics.keras_metrics",
    "mammoseg.data.augment",
    "mammoseg.models.mask_rcnn.network",
)


def _register_keras_objects() -> None:
    for name in _KERAS_MODULES:
        try:
            importlib.import_module(name)
        except ImportError as err:  # an optional part missing must not break `import keras`
            warnings.warn(f"mammoseg: {name} not registered with Keras: {err}", stacklevel=2)


def _initialising(name: str) -> bool:
    spec = getattr(sys.modules.get(name), "__spec__", None)
    return bool(getattr(spec, "_initializing", False))


def _keras_ready() -> bool:
    """Keras imported, and neither it nor TensorFlow still half way through their imports."""
    return "keras" in sys.modules and not (_initialising("keras") or _initialising("tensorflow"))


class _RegisterWithKeras(importlib.abc.MetaPathFinder):
    """Import hook: once Keras (and TensorFlow, when Keras comes in through it) have finished
    importing, register mammoseg's Keras classes, then step aside."""

    def find_spec(self, fullname, path, target=None):
        if fullname not in ("keras", "tensorflow") or path is not None:
            return None
        sys.meta_path.remove(self)
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            sys.meta_path.insert(0, self)
        if spec is None or spec.loader is None:
            return spec
        run_module = spec.loader.exec_module

        def exec_module(module):
            run_module(module)
            module.__spec__._initializing = False  # the import machinery resets it after us
            if _keras_ready() and self in sys.meta_path:
                sys.meta_path.remove(self)
                _register_keras_objects()

        spec.loader.exec_module = exec_module
        return spec


if _keras_ready():
    _register_keras_objects()
elif not any(isinstance(f, _RegisterWithKeras) for f in sys.meta_path):
    sys.meta_path.insert(0, _RegisterWithKeras())
