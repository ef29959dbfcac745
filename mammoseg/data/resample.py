"""Resampling between an original image and the preprocessing cache's frame.

Resizing is area averaging (a box filter: every source pixel counts by the area it covers)
applied as two sparse matrix products, which is exact anti-aliasing for any factor and far
cheaper than a Gaussian pre-filter at 4000 px; enlarging is linear interpolation. A mask is
resized the same way and a target pixel set when at least half of it is covered; a lesion
smaller than a target pixel keeps its most covered pixel, so it never vanishes.

`frame` gives the transform placing an image in the cache frame ("pad" or "stretch");
`to_original_size` maps a prediction in that frame back onto the original image.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import sparse

Size = int | tuple[int, int]


def parse_size(size: Size | None, argument: str = "size") -> tuple[int, int] | None:
    """Normalise ``size`` (int → square, (height, width) → itself, None → None)."""
    if size is None:
        return None
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        pair = (int(size), int(size))
    elif (
        isinstance(size, (tuple, list))
        and len(size) == 2
        and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in size)
    ):
        pair = (int(size[0]), int(size[1]))
    else:
        raise TypeError(f"`{argument}` must be an int or (height, width), received {size!r}")
    if min(pair) <= 0:
        raise ValueError(f"`{argument}` must be positive, received {size!r}")
    return pair


@lru_cache(maxsize=64)
def resample_matrix(n_in: int, n_out: int) -> sparse.csr_matrix:
    """Sparse (n_out, n_in) matrix resampling one axis: area average down, linear up.

    Example:
        >>> resample_matrix(4, 2).toarray()
        array([[0.5, 0.5, 0. , 0. ],
               [0. , 0. , 0.5, 0.5]], dtype=float32)
    """
    scale = n_in / n_out
    out = np.arange(n_out)
    if n_in >= n_out:  # each output pixel averages the input interval it covers
        lo, hi = out * scale, (out + 1) * scale
        first = np.floor(lo).astype(np.int64)
        rows, cols, vals = [], [], []
        for step in range(int(np.ceil(scale)) + 1):
            index = first + step
            overlap = np.minimum(hi, index + 1) - np.maximum(lo, index)
            keep = (overlap > 1e-9) & (index < n_in)
            rows.append(out[keep])
            cols.append(index[keep])
            vals.append(overlap[keep] / scale)
        rows, cols, vals = np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)
    else:  # linear interpolation between pixel centres, edges clamped
        x = np.clip((out + 0.5) * scale - 0.5, 0, n_in - 1)
        left = np.minimum(np.floor(x).astype(np.int64), n_in - 1)
        right = np.minimum(left + 1, n_in - 1)
        frac = x - left
        rows = np.concatenate([out, out])
        cols = np.concatenate([left, right])
        vals = np.concatenate([1 - frac, frac])
    matrix = sparse.csr_matrix((vals.astype(np.float32), (rows, cols)), shape=(n_out, n_in))
    matrix.sum_duplicates()
    return matrix


def resample_image(array: np.ndarray, shape: Size, band: int = 128) -> np.ndarray:
    """Resize a 2-D array to ``shape`` with `resample_matrix` on each axis (float32).

    Area averaging down (block averaging for whole-number factors), linear interpolation up:
    the one image resampling of mammoseg, shared by the loaders and the HDF5 cache.

    Works in bands of ``band`` output rows, so an integer image is converted to float a few
    MB at a time rather than whole (4000 x 3000 float32 is 48 MB of fresh pages per image).

    Example:
        >>> resample_image(np.array([[0, 2], [4, 6]], np.float32), (1, 1))
        array([[3.]], dtype=float32)
    """
    array = np.asarray(array)
    if array.ndim != 2:
        raise ValueError(f"`array` must be 2-D (height, width), received shape {array.shape}")
    shape = parse_size(shape, "shape")
    rows = resample_matrix(array.shape[0], shape[0])
    cols = resample_matrix(array.shape[1], shape[1])
    out = np.empty(shape, np.float32)
    for start in range(0, shape[0], band):
        part = rows[start : start + band]
        first, last = part.indices.min(), part.indices.max() + 1
        block = array[first:last].astype(np.float32, copy=False)
        tall = part[:, first:last] @ block  # (band, width): small enough to transpose in cache
        out[start : start + band] = (cols @ tall.T).T
    return out


def resample_mask(mask: np.ndarray, shape: Size) -> np.ndarray:
    """Coverage-resize a binary mask (boolean out), working only on its bounding box.

    A target pixel is set when at least half of its area is covered; if that leaves nothing of
    a non-empty mask (a lesion smaller than a target pixel), the most covered pixel is set, so
    a lesion never vanishes (the authors' ``== 255`` threshold erased them).

    Example:
        >>> resample_mask(np.eye(4, dtype=bool), (2, 2)).astype(int)
        array([[1, 0],
               [0, 1]])
    """
    mask = np.asarray(mask) > 0
    shape = parse_size(shape, "shape")
    if mask.shape == shape:
        return mask.copy()
    out = np.zeros(shape, dtype=bool)
    any_rows = np.flatnonzero(mask.any(axis=1))
    if any_rows.size == 0:
        return out
    any_cols = np.flatnonzero(mask[any_rows[0] : any_rows[-1] + 1].any(axis=0))
    r0, r1, c0, c1 = any_rows[0], any_rows[-1] + 1, any_cols[0], any_cols[-1] + 1
    rows = resample_matrix(mask.shape[0], shape[0])[:, r0:r1]
    cols = resample_matrix(mask.shape[1], shape[1])[:, c0:c1]
    coverage = np.asarray((cols @ (rows @ mask[r0:r1, c0:c1].astype(np.float32)).T).T)
    out = coverage >= 0.5
    if not out.any():
        out[np.unravel_index(int(np.argmax(coverage)), coverage.shape)] = True
    return out


def frame(shape: tuple[int, int], target: tuple[int, int], resize: str) -> np.ndarray:
    """Transform of an image into the cache frame: [height, width, sy, sx, off_y, off_x].

    "stretch" fills the target (the paper's squash); "pad" scales by the smaller ratio, keeps
    the aspect and centres the image on a black (0) background.
    """
    height, width = shape
    if resize == "stretch":
        inner, offset = target, (0, 0)
    else:
        scale = min(target[0] / height, target[1] / width)
        inner = (
            min(max(round(height * scale), 1), target[0]),
            min(max(round(width * scale), 1), target[1]),
        )
        offset = ((target[0] - inner[0]) // 2, (target[1] - inner[1]) // 2)
    return np.array(
        [height, width, inner[0] / height, inner[1] / width, offset[0], offset[1]], np.float64
    )


def inner_box(transform: np.ndarray) -> tuple[int, int, int, int]:
    """(row, col, height, width) of the resized image inside the cache frame."""
    height, width, sy, sx, oy, ox = transform
    return int(oy), int(ox), int(round(height * sy)), int(round(width * sx))


def to_original_size(prediction: np.ndarray, transform: np.ndarray) -> np.ndarray:
    """Map an array in the cache frame (a predicted mask or probability map) back onto the
    original image: remove the padding and resize to the original height and width.

    Args:
        prediction: (H, W) array in the cache frame.
        transform: the image's row of the cache's ``transforms`` (see
            `mammoseg.data.cache.read_transforms`).

    Returns:
        float32 (height, width) array; threshold it at 0.5 for a mask.

    Example:
        >>> probs = to_original_size(model_output[0, ..., 0], read_transforms(path)[0])
        ... # doctest: +SKIP
    """
    oy, ox, ih, iw = inner_box(np.asarray(transform))
    height, width = int(transform[0]), int(transform[1])
    return resample_image(np.asarray(prediction)[oy : oy + ih, ox : ox + iw], (height, width))


__all__ = [
    "Size",
    "frame",
    "inner_box",
    "parse_size",
    "resample_image",
    "resample_mask",
    "resample_matrix",
    "to_original_size",
]
