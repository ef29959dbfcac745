"""From a mammogram to what the recipe's network sees: crop, resize, normalise.

`preprocess_image` is shared by training, evaluation and `mammoseg predict`, so the three can
never drift apart. Intensities are standardised over the breast (mean 0, std 1 inside it):
mini-MIAS films differ in exposure and density, and a mass is only about one standard deviation
brighter than the tissue around it (facts.md §4), so an image-level offset would swamp it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from mammoseg.data import Record, load_mask, resample_image, resample_mask
from mammoseg.data.records import read_pixels
from mammoseg.recipes.breast_crop import BreastCrop, crop_breast
from mammoseg.recipes.config import RecipeConfig


@dataclass
class WorkingImage:
    """One mammogram at the working resolution.

    Attributes:
        image: (h, w) float32, standardised over the breast; background holds ``background``.
        breast: (h, w) bool breast region.
        crop: the `BreastCrop` in the original image.
        background: the standardised value of a black pixel (used to pad windows).
        mask: (h, w) uint8 truth mask, or None for an unlabelled image.
        lesions: (row, col, radius) of each truth component at the working resolution.
        image_id: the record's id, when it came from one.
    """

    image: np.ndarray
    breast: np.ndarray
    crop: BreastCrop
    background: float
    mask: np.ndarray | None = None
    lesions: tuple[tuple[float, float, float], ...] = ()
    image_id: str = ""


def working_shape(crop: BreastCrop, config: RecipeConfig) -> tuple[int, int]:
    """Shape of the crop at the working resolution (at least one pixel each way)."""
    scale = config.scale_for(crop.shape)
    height, width = crop.crop_shape
    return max(1, int(round(height * scale))), max(1, int(round(width * scale)))


def preprocess_image(image: np.ndarray, config: RecipeConfig) -> WorkingImage:
    """Crop the breast, resize it to the working resolution and standardise it.

    Args:
        image: (H, W) float image in [0, 1] (`read_pixels` output).
        config: the recipe settings (``working_size``, ``crop_margin``).

    Returns:
        A `WorkingImage` without truth.

    Example:
        >>> work = preprocess_image(read_pixels("mdb001.pgm"), RecipeConfig())  # doctest: +SKIP
        >>> work.image.shape  # the breast box of a 1024² film at 384 / 1024
        (331, 208)
    """
    image = np.asarray(image, dtype=np.float32)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.ndim != 2:
        raise ValueError(f"`image` must be (H, W) or (H, W, 1), received shape {image.shape}")
    cropped, crop = crop_breast(image, margin=config.crop_margin)
    shape = working_shape(crop, config)
    small = resample_image(cropped, shape)
    breast = resample_mask(crop.breast, shape)
    inside = small[breast] if breast.any() else small.ravel()
    mean, std = float(inside.mean()), float(inside.std())
    std = std if std > 1e-6 else 1.0
    normalised = ((small - mean) / std).astype(np.float32)
    background = -mean / std
    normalised[~breast] = background
    return WorkingImage(normalised, breast, crop, float(background))


def _components(mask: np.ndarray) -> tuple[tuple[float, float, float], ...]:
    labels, count = ndimage.label(mask > 0)
    out = []
    for index in range(1, count + 1):
        rows, cols = np.nonzero(labels == index)
        out.append((float(rows.mean()), float(cols.mean()), float(np.sqrt(rows.size / np.pi))))
    return tuple(out)


def prepare_record(record: Record, config: RecipeConfig) -> WorkingImage:
    """`preprocess_image` of a record, with its truth mask (``config.kinds``) alongside.

    The truth is drawn at the original size (circles for MIAS, mask files for CBIS-DDSM), cut
    with the same box and resized like the image, so it lines up pixel for pixel.
    """
    image = read_pixels(record.path)
    work = preprocess_image(image, config)
    full = load_mask(record, image.shape, kinds=config.kinds)
    row0, row1, col0, col1 = work.crop.box
    mask = resample_mask(full[row0:row1, col0:col1], work.image.shape)
    work.mask = mask
    work.lesions = _components(mask)
    work.image_id = record.image_id
    return work


def prepare_records(
    records: Sequence[Record], config: RecipeConfig, workers: int = 2
) -> list[WorkingImage]:
    """`prepare_record` over many records, decoded in a small thread pool."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max(1, workers)) as pool:
        return list(pool.map(lambda r: prepare_record(r, config), records))


__all__ = [
    "WorkingImage",
    "prepare_record",
    "prepare_records",
    "preprocess_image",
    "working_shape",
]
