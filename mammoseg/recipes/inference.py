"""Whole-mammogram inference: overlapping sliding windows, flip test-time augmentation, and the
way back from the working resolution to the original image.

Windows are blended with a Gaussian importance map (nnU-Net): a window's centre, which saw the
most context, counts more than its border. Where every window predicts the same value the blend
returns exactly that value, so a network that returns its input reproduces the image.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from mammoseg.recipes.candidates import keep_best_regions
from mammoseg.recipes.config import RECIPE_FILE, RecipeConfig, load_recipe
from mammoseg.recipes.network import build_recipe_model
from mammoseg.recipes.preprocess import WorkingImage, preprocess_image

# The four flips of a 2-D image: (flip rows, flip columns).
FLIPS = ((False, False), (False, True), (True, False), (True, True))


def window_starts(length: int, window: int, overlap: float) -> list[int]:
    """Start offsets of windows covering ``length`` with at least ``overlap`` shared.

    The last window ends exactly at ``length`` (``length >= window``).

    Example:
        >>> window_starts(300, 128, 0.5)
        [0, 57, 115, 172]
    """
    if length <= window:
        return [0]
    stride = max(1, int(window * (1.0 - overlap)))
    count = int(np.ceil((length - window) / stride)) + 1
    return [int(round(v)) for v in np.linspace(0, length - window, count)]


def gaussian_importance(size: int, sigma_scale: float = 0.125) -> np.ndarray:
    """(size, size) Gaussian weights, peak 1 at the centre, sigma = ``sigma_scale`` × size."""
    axis = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-0.5 * (axis / (sigma_scale * size)) ** 2)
    weights = np.outer(g, g)
    weights /= weights.max()
    return np.maximum(weights, 1e-3).astype(np.float32)  # corners must still count


def _as_predict_fn(model) -> Callable[[np.ndarray], np.ndarray]:
    if hasattr(model, "predict_on_batch"):
        return lambda batch: np.asarray(model.predict_on_batch(batch), dtype=np.float32)
    return lambda batch: np.asarray(model(batch), dtype=np.float32)


def sliding_window_predict(
    model,
    image: np.ndarray,
    patch_size: int,
    overlap: float = 0.5,
    tta: bool = True,
    from_logits: bool = False,
    batch_size: int = 8,
    pad_value: float = 0.0,
) -> np.ndarray:
    """Predict a whole (H, W) image with overlapping ``patch_size`` windows.

    Args:
        model: a Keras model (or any callable) mapping (B, P, P, 1) to (B, P, P, 1).
        image: (H, W) float32 input; padded with ``pad_value`` where smaller than a window.
        patch_size: window side.
        overlap: share of a window shared with its neighbour, in [0, 1).
        tta: average the predictions of the four flips (each flipped back first).
        from_logits: the model returns logits; a sigmoid is applied before averaging.
        batch_size: windows per forward pass (the last batch is padded, so the model is traced
            once).
        pad_value: fill for padding.

    Returns:
        (H, W) float32 map (probabilities, or the model's raw output if ``from_logits`` is
        False).

    Raises:
        ValueError: ``image`` not 2-D or ``overlap`` outside [0, 1).

    Example:
        >>> identity = lambda x: x
        >>> image = np.random.rand(100, 70).astype(np.float32)
        >>> np.allclose(sliding_window_predict(identity, image, 32), image, atol=1e-6)
        True
    """
    image = np.asarray(image, dtype=np.float32)
    if image.ndim != 2:
        raise ValueError(f"`image` must be 2-D (H, W), received shape {image.shape}")
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"`overlap` must be in [0, 1), received {overlap!r}")
    height, width = image.shape
    padded = np.pad(
        image,
        ((0, max(0, patch_size - height)), (0, max(0, patch_size - width))),
        constant_values=pad_value,
    )
    rows = window_starts(padded.shape[0], patch_size, overlap)
    cols = window_starts(padded.shape[1], patch_size, overlap)
    corners = [(r, c) for r in rows for c in cols]
    weights = gaussian_importance(patch_size)
    total = np.zeros(padded.shape, np.float64)
    norm = np.zeros(padded.shape, np.float64)
    predict = _as_predict_fn(model)
    flips = FLIPS if tta else FLIPS[:1]
    for start in range(0, len(corners), batch_size):
        chunk = corners[start : start + batch_size]
        windows = np.stack([padded[r : r + patch_size, c : c + patch_size] for r, c in chunk])
        summed = np.zeros(windows.shape, np.float64)
        for flip_rows, flip_cols in flips:
            batch = windows[:, ::-1] if flip_rows else windows
            batch = batch[:, :, ::-1] if flip_cols else batch
            full = np.zeros((batch_size, patch_size, patch_size, 1), np.float32)
            full[: len(chunk), ..., 0] = batch
            out = predict(full)[: len(chunk)].reshape(len(chunk), patch_size, patch_size)
            if from_logits:
                out = 1.0 / (1.0 + np.exp(-np.clip(out, -60, 60)))
            out = out[:, :, ::-1] if flip_cols else out
            summed += out[:, ::-1] if flip_rows else out
        for (r, c), prediction in zip(chunk, summed / len(flips)):
            total[r : r + patch_size, c : c + patch_size] += weights * prediction
            norm[r : r + patch_size, c : c + patch_size] += weights
    return (total / norm)[:height, :width].astype(np.float32)


def predict_working(model, work: WorkingImage, config: RecipeConfig) -> np.ndarray:
    """Probability map of a `WorkingImage` (working resolution), zero outside the breast."""
    prob = sliding_window_predict(
        model,
        work.image,
        config.patch_size,
        config.overlap,
        tta=config.tta,
        from_logits=True,
        pad_value=work.background,
    )
    return np.where(work.breast, prob, 0.0).astype(np.float32)


def check_model_matches(model, config: RecipeConfig, model_path: str | os.PathLike) -> None:
    """Refuse a model that is not the one its ``recipe.json`` describes.

    The input must be (patch_size, patch_size, 1) and the output one channel per pixel of the
    same size; the weights must have the shapes of `build_recipe_model(config)` (another
    architecture, ``base_filters`` or ``depth`` differs there).

    Raises:
        ValueError: naming ``model_path`` and the first mismatch.
    """
    where = f"{model_path} does not match {Path(model_path).with_name(RECIPE_FILE)}"
    size = config.patch_size
    got_in = tuple(model.input_shape[1:]) if hasattr(model, "input_shape") else None
    got_out = tuple(model.output_shape[1:]) if hasattr(model, "output_shape") else None
    if got_in != (size, size, 1):
        raise ValueError(
            f"{where}: model input {got_in}, recipe patch_size {size} needs {(size, size, 1)}"
        )
    if got_out != (size, size, 1):
        raise ValueError(f"{where}: model output {got_out}, expected {(size, size, 1)}")
    expected = [
        tuple(w.shape) for w in build_recipe_model(config, load_encoder_weights=False).weights
    ]
    found = [tuple(w.shape) for w in model.weights]
    if expected != found:
        first = next(
            (i for i, (a, b) in enumerate(zip(expected, found)) if a != b),
            min(len(expected), len(found)),
        )
        raise ValueError(
            f"{where}: another architecture ({len(found)} weights, the recipe's UNet with "
            f"base_filters={config.base_filters}, depth={config.depth} has {len(expected)}; "
            f"first difference at weight {first}: "
            f"{found[first] if first < len(found) else None} vs "
            f"{expected[first] if first < len(expected) else None})"
        )


class Predictor:
    """A trained recipe model with its settings: original image in, probability map out.

    Args:
        model: the Keras model (logits head) trained by `train_recipe`.
        config: its `RecipeConfig` (the threshold chosen on validation included).

    Example:
        >>> predictor = Predictor.load("runs/beyond/recipe/model.keras")  # doctest: +SKIP
        >>> prob, work = predictor.predict(read_pixels("mdb001.pgm"))
    """

    def __init__(self, model, config: RecipeConfig) -> None:
        self.model = model
        self.config = config

    @classmethod
    def load(cls, model_path: str | os.PathLike) -> Predictor:
        """Load ``model.keras`` and the ``recipe.json`` beside it."""
        import keras

        model_path = Path(model_path)
        if not model_path.is_file():
            raise FileNotFoundError(f"model file not found: {model_path}")
        try:
            config = load_recipe(model_path)
        except (KeyError, TypeError, ValueError) as err:  # bad JSON, no "recipe", bad key
            detail = f"missing key {err}" if isinstance(err, KeyError) else str(err)
            raise ValueError(
                f"{model_path.with_name(RECIPE_FILE)}: unusable recipe: {detail}"
            ) from err
        try:
            model = keras.saving.load_model(model_path, compile=False)
        except Exception as err:  # Keras raises many types for a damaged archive
            raise ValueError(f"{model_path}: cannot load the model: {err}") from err
        check_model_matches(model, config, model_path)
        return cls(model, config)

    def predict_working(self, work: WorkingImage) -> np.ndarray:
        """Probability map at the working resolution of a prepared image."""
        return predict_working(self.model, work, self.config)

    def mask(self, probability: np.ndarray, threshold: float | None = None) -> np.ndarray:
        """The final mask of a probability map: ``>= threshold`` (default: the recipe's), then
        only the recipe's ``mask_regions`` best-scored regions when it sets a limit."""
        threshold = self.config.threshold if threshold is None else threshold
        return keep_best_regions(probability >= threshold, probability, self.config.mask_regions)

    def predict(self, image: np.ndarray) -> tuple[np.ndarray, WorkingImage]:
        """(probability map of the original image's shape, the `WorkingImage` used)."""
        work = preprocess_image(image, self.config)
        return work.crop.to_original(self.predict_working(work)), work


# Settings that decide the working image: the members of an ensemble must agree on them.
_PREPROCESSING = ("working_size", "crop_margin")


class EnsemblePredictor:
    """Several trained recipe models as one: the mean of their probability maps.

    nnU-Net's default at inference: the K models of a cross-validation, each trained on other
    patients, average away part of each one's errors. Each member predicts with its own patch
    size, overlap and flips; the members must agree on the working image (``working_size``,
    ``crop_margin``). The ensemble's settings are the first member's, with the threshold the
    mean of the members' thresholds and ``mask_regions`` the most generous member's (unlimited
    if any member's is).

    Args:
        predictors: two or more `Predictor` objects (one is allowed and behaves like it).

    Raises:
        ValueError: no members, or members that prepare images differently (naming the setting).

    Example:
        >>> ensemble = EnsemblePredictor.load(  # doctest: +SKIP
        ...     [f"runs/folds/fold_{k}/model.keras" for k in range(1, 6)]
        ... )
        >>> prob, work = ensemble.predict(read_pixels("mdb001.pgm"))  # doctest: +SKIP
    """

    def __init__(self, predictors: list[Predictor]) -> None:
        predictors = list(predictors)
        if not predictors:
            raise ValueError("an ensemble needs at least one model")
        first = predictors[0].config
        for index, member in enumerate(predictors[1:], start=2):
            for name in _PREPROCESSING:
                ours, theirs = getattr(first, name), getattr(member.config, name)
                if ours != theirs:
                    raise ValueError(
                        f"ensemble members prepare images differently: model 1 has "
                        f"{name}={ours!r}, model {index} has {name}={theirs!r}"
                    )
        limits = [p.config.mask_regions for p in predictors]
        threshold = float(np.mean([p.config.threshold for p in predictors]))
        self.predictors = predictors
        self.config = first.with_postprocessing(threshold, None if None in limits else max(limits))

    @classmethod
    def load(cls, model_paths: list[str | os.PathLike]) -> EnsemblePredictor:
        """Load each ``model.keras`` (with its ``recipe.json``) and combine them."""
        model_paths = [Path(path) for path in model_paths]
        try:
            return cls([Predictor.load(path) for path in model_paths])
        except ValueError as err:  # name the files, not their positions
            text = str(err)
            for index, path in enumerate(model_paths, start=1):
                text = text.replace(f"model {index} has", f"{path} has")
            raise ValueError(text) from err

    def predict_working(self, work: WorkingImage) -> np.ndarray:
        """Mean probability map of the members at the working resolution."""
        maps = [member.predict_working(work) for member in self.predictors]
        return np.mean(maps, axis=0).astype(np.float32)

    def mask(self, probability: np.ndarray, threshold: float | None = None) -> np.ndarray:
        """The final mask of a probability map, as `Predictor.mask` with the ensemble's
        settings."""
        threshold = self.config.threshold if threshold is None else threshold
        return keep_best_regions(probability >= threshold, probability, self.config.mask_regions)

    def predict(self, image: np.ndarray) -> tuple[np.ndarray, WorkingImage]:
        """(mean probability map of the original image's shape, the `WorkingImage` used)."""
        work = preprocess_image(image, self.config)
        return work.crop.to_original(self.predict_working(work)), work


__all__ = [
    "FLIPS",
    "EnsemblePredictor",
    "Predictor",
    "check_model_matches",
    "gaussian_importance",
    "predict_working",
    "sliding_window_predict",
    "window_starts",
]
