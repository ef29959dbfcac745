"""Breast-region crop: keep the breast, drop film labels and background, remember the box.

A mammogram is mostly background: on mini-MIAS the breast covers 10–90 % of the 1024² film
(median about 30 %, facts.md §4), and many films carry a bright label or scanner strip beside it.
Cropping to the breast before resizing spends the working resolution on tissue and keeps labels
from looking like lesions. The crop box is kept so a prediction on the crop maps back onto the
original image (`BreastCrop.to_original`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from skimage.filters import threshold_otsu

# Long side of the coarse grid the breast is found on; 1024² films are searched at 256².
_SEARCH_SIDE = 256


@dataclass(frozen=True)
class BreastCrop:
    """Where the breast is in an image.

    Attributes:
        box: (row0, row1, col0, col1), half-open, in the original image's pixels.
        shape: (height, width) of the original image.
        breast: boolean (row1 - row0, col1 - col0) mask of the breast inside the box; pixels
            outside it (labels, background) are zeroed in the cropped image.
    """

    box: tuple[int, int, int, int]
    shape: tuple[int, int]
    breast: np.ndarray

    @property
    def crop_shape(self) -> tuple[int, int]:
        row0, row1, col0, col1 = self.box
        return row1 - row0, col1 - col0

    def apply(self, image: np.ndarray) -> np.ndarray:
        """The box of ``image`` (original size) with everything outside the breast set to 0."""
        image = np.asarray(image)
        if image.shape[:2] != self.shape:
            raise ValueError(f"`image` must have the shape {self.shape}, received {image.shape}")
        row0, row1, col0, col1 = self.box
        return np.where(self.breast, image[row0:row1, col0:col1], 0).astype(image.dtype)

    def to_original(self, values: np.ndarray, fill: float = 0.0) -> np.ndarray:
        """Place a map of the crop (at any resolution) back onto the original image grid.

        Args:
            values: (h, w) map covering the crop box; resized bilinearly to the box first when
                its size differs.
            fill: value outside the box.

        Returns:
            float32 array of the original image's shape.
        """
        from mammoseg.data import resample_image

        values = np.asarray(values, dtype=np.float32)
        if values.ndim != 2:
            raise ValueError(f"`values` must be a 2-D map, received shape {values.shape}")
        out = np.full(self.shape, fill, dtype=np.float32)
        row0, row1, col0, col1 = self.box
        out[row0:row1, col0:col1] = resample_image(values, self.crop_shape)
        return out

    def to_dict(self) -> dict:
        """JSON-ready description (the box and the image shape; the mask is not stored)."""
        return {"box": list(self.box), "shape": list(self.shape)}


def _otsu(values: np.ndarray) -> float:
    """Otsu's threshold of values in [0, 1], on 256 fixed bins over [0, 1].

    The histogram is fixed to [0, 1] (not the data's range, which is what
    `skimage.filters.threshold_otsu` would bin by itself) so the threshold keeps the values the
    recipe was tuned on; tests/recipes/test_breast_crop.py checks them.
    """
    hist, edges = np.histogram(values, bins=256, range=(0.0, 1.0))
    centers = (edges[:-1] + edges[1:]) / 2
    if np.count_nonzero(hist) < 2:
        # threshold_otsu raises on a one-valued histogram; the lowest bin keeps every
        # nonzero pixel as foreground, as the hand-written version did.
        return float(centers[0])
    return float(threshold_otsu(hist=(hist, centers)))


def find_breast(
    image: np.ndarray,
    threshold: float | None = None,
    margin: float = 0.02,
) -> BreastCrop:
    """Find the breast: threshold, keep the largest connected component, fill its holes.

    The search runs on a smoothed copy whose long side is 256 pixels, so a 1024² film takes a
    few milliseconds. The threshold is Otsu's between background and tissue, capped at 0.2 so
    that a dense, bright breast cannot push the skin line out of the region.

    Args:
        image: (H, W) float image in [0, 1] (what `mammoseg.data.records.read_pixels` returns).
        threshold: fixed foreground threshold instead of Otsu's.
        margin: the region is dilated by this share of the long side, so the skin line and
            lesions on it stay inside.

    Returns:
        A `BreastCrop`. An image with no foreground at all gives the whole image as its box.

    Raises:
        ValueError: ``image`` not 2-D, or ``margin`` outside [0, 0.5).

    Example:
        >>> image = np.zeros((64, 64), np.float32); image[10:50, 0:30] = 0.5
        >>> find_breast(image, margin=0).box
        (10, 50, 0, 30)
    """
    image = np.asarray(image, dtype=np.float32)
    if image.ndim != 2:
        raise ValueError(f"`image` must be a 2-D (H, W) array, received shape {image.shape}")
    if not 0.0 <= margin < 0.5:
        raise ValueError(f"`margin` must be in [0, 0.5), received {margin}")
    height, width = image.shape
    step = max(1, min(int(np.ceil(max(height, width) / _SEARCH_SIDE)), height, width))
    h, w = height // step, width // step
    small = image[: h * step, : w * step].reshape(h, step, w, step).mean(axis=(1, 3))
    small = ndimage.uniform_filter(small, size=3)
    level = threshold if threshold is not None else min(_otsu(small), 0.2)
    foreground = ndimage.binary_opening(small > level, iterations=1)
    labels, count = ndimage.label(foreground)
    if count == 0:
        return BreastCrop((0, height, 0, width), (height, width), np.ones((height, width), bool))
    sizes = ndimage.sum_labels(foreground, labels, index=np.arange(1, count + 1))
    region = ndimage.binary_fill_holes(labels == int(np.argmax(sizes)) + 1)
    grow = int(round(margin * max(height, width) / step))
    if grow:
        region = ndimage.binary_dilation(region, iterations=grow)
    # Back to full resolution: each coarse cell covers a step × step block; the few rows and
    # columns the coarse grid left out copy their neighbours.
    full = np.repeat(np.repeat(region, step, axis=0), step, axis=1)
    full = np.pad(full, ((0, height - h * step), (0, width - w * step)), mode="edge")
    rows, cols = np.nonzero(full)
    box = (int(rows.min()), int(rows.max()) + 1, int(cols.min()), int(cols.max()) + 1)
    return BreastCrop(box, (height, width), full[box[0] : box[1], box[2] : box[3]])


def crop_breast(image: np.ndarray, **options) -> tuple[np.ndarray, BreastCrop]:
    """`find_breast`, then the cropped image with labels and background removed.

    Returns:
        (cropped float32 image, `BreastCrop`).

    Example:
        >>> cropped, crop = crop_breast(image)  # doctest: +SKIP
        >>> crop.to_original(cropped).shape == image.shape  # doctest: +SKIP
        True
    """
    crop = find_breast(image, **options)
    return crop.apply(np.asarray(image, dtype=np.float32)), crop


__all__ = ["BreastCrop", "crop_breast", "find_breast"]
