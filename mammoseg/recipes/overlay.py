"""Pictures of a prediction: the mask PNG and a full-resolution overlay of the scored candidates.

The overlay keeps every pixel of the original image (one image pixel is one PNG pixel, with a
title band above it), so a 4 000-pixel DICOM is not shrunk to a thumbnail where small masses
vanish. It is drawn with Pillow rather than Matplotlib: exact pixel placement, and seconds
instead of minutes at full resolution. What it shows: the image in grey, optionally the
probability map as a heatmap, the mask outline (red), the ground truth when it is known (green:
the mask outline and/or the circles of mini-MIAS), and candidate boxes with their scores
(yellow), each score label placed inside the image whatever the candidate's position.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mammoseg.metrics import Region

RED = (255, 40, 40)
GREEN = (60, 255, 60)
YELLOW = (255, 230, 0)
# Probabilities below this are not tinted: the heatmap shows where the network looks, not noise.
HEATMAP_FLOOR = 0.05
HEATMAP_ALPHA = 0.5


def _temporary_name(path: Path) -> Path:
    # Written there, then renamed, so a crash never leaves a torn PNG under the final name;
    # the suffix stays last because Pillow picks the format from it.
    return path.with_name(f".{path.stem}.part{path.suffix}")


def save_mask_png(mask: np.ndarray, path: str | os.PathLike) -> Path:
    """Write a binary mask as an 8-bit PNG (0 and 255), the original image's size.

    Example:
        >>> save_mask_png(np.eye(4, dtype=bool), "mask.png")  # doctest: +SKIP
        PosixPath('mask.png')
    """
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary_name(path)
    Image.fromarray((np.asarray(mask) > 0).astype(np.uint8) * 255).save(tmp)
    os.replace(tmp, path)
    return path


def region_box(region: Region) -> tuple[int, int, int, int]:
    """The bounding box of a candidate as ``(row0, col0, row1, col1)``, ends exclusive (NumPy
    slicing: ``image[row0:row1, col0:col1]`` is the box, as scikit-image's ``bbox``).

    Example:
        >>> region = Region(0.9, (1.5, 2.0), 2, np.array([[1, 2], [2, 2]]))
        >>> region_box(region)
        (1, 2, 3, 3)
    """
    coords = np.asarray(region.coords)
    rows, cols = coords[:, 0], coords[:, 1]
    return int(rows.min()), int(cols.min()), int(rows.max()) + 1, int(cols.max()) + 1


def label_position(
    box: tuple[int, int, int, int], text_size: tuple[int, int], image_shape: tuple[int, int]
) -> tuple[int, int]:
    """Top-left ``(x, y)`` of a label of ``text_size`` (width, height) for a candidate ``box``
    (`region_box`), kept whole inside an image of ``image_shape`` (height, width).

    Above the box, left-aligned with it; below the box when there is no room above; inside the
    box's top when there is room neither above nor below; shifted left when it would run past
    the right edge. Only a label larger than the image itself cannot fit (it starts at 0).

    Example:
        >>> label_position((0, 90, 10, 100), (30, 12), (100, 100))  # a box at the top-right
        (70, 11)
    """
    row0, col0, row1, col1 = box
    width, height = text_size
    image_height, image_width = image_shape
    x = min(max(col0, 0), max(image_width - width, 0))
    y = row0 - height - 1
    if y < 0:
        y = row1 + 1
        if y + height > image_height:
            y = min(max(row0, 0), max(image_height - height, 0))
    return int(x), int(y)


def _grey_rgb(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 3:
        image = image.mean(axis=-1)
    if image.dtype == np.uint8:
        grey = image.astype(np.float32)
    else:
        grey = np.clip(image.astype(np.float32), 0.0, 1.0) * 255.0
    return np.repeat(grey[..., None], 3, axis=-1)


def _heatmap(rgb: np.ndarray, probability: np.ndarray) -> np.ndarray:
    from matplotlib import colormaps

    prob = np.clip(np.asarray(probability, dtype=np.float32), 0.0, 1.0)
    colours = colormaps["jet"](prob)[..., :3].astype(np.float32) * 255.0
    alpha = np.where(prob >= HEATMAP_FLOOR, HEATMAP_ALPHA, 0.0)[..., None]
    return rgb * (1.0 - alpha) + colours * alpha


def _outline(mask: np.ndarray, width: int) -> np.ndarray:
    from scipy import ndimage

    mask = np.asarray(mask) > 0
    edge = mask & ~ndimage.binary_erosion(mask, border_value=0)
    if width > 1:
        edge = ndimage.binary_dilation(edge, iterations=width - 1)
    return edge


def _check_shape(name: str, array, shape: tuple[int, int]) -> np.ndarray:
    array = np.asarray(array)
    array = array[..., 0] if array.ndim == 3 and array.shape[-1] == 1 else array
    if array.shape != shape:
        raise ValueError(f"`{name}` must have the image's shape {shape}, received {array.shape}")
    return array


def render_overlay(
    image: np.ndarray,
    mask: np.ndarray,
    candidates: Sequence[Region],
    *,
    probability: np.ndarray | None = None,
    truth_circles: Sequence[tuple[float, float, float]] = (),
    truth_mask: np.ndarray | None = None,
    title: str = "",
    max_candidates: int = 10,
) -> np.ndarray:
    """The overlay as an RGB array: a title band, then the image at full resolution.

    Args:
        image: (H, W) greyscale, float in [0, 1] or uint8.
        mask: (H, W) predicted mask; its outline is drawn in red.
        candidates: scored regions (best first); the first ``max_candidates`` get a yellow box
            and a score label.
        probability: (H, W) probability map drawn as a heatmap (jet, half transparent, nothing
            below 0.05); None: no heatmap.
        truth_circles: known lesions as (row, col, radius), drawn as green circles.
        truth_mask: the known lesion mask, its outline drawn in green.
        title: text of the band above the image (wrapped to the image's width).
        max_candidates: how many candidates to draw.

    Returns:
        (band + H, W, 3) uint8; rows ``band:`` are the image's pixels.

    Raises:
        ValueError: ``mask``, ``probability`` or ``truth_mask`` not of the image's shape.

    Example:
        >>> picture = render_overlay(np.zeros((64, 64)), np.zeros((64, 64)), [], title="x")
        >>> picture.shape[1:], picture.shape[0] > 64
        ((64, 3), True)
    """
    from PIL import Image, ImageDraw, ImageFont

    rgb = _grey_rgb(image)
    shape = rgb.shape[:2]
    height, width = shape
    line = max(1, round(max(shape) / 512))
    mask = _check_shape("mask", mask, shape)
    if probability is not None:
        rgb = _heatmap(rgb, _check_shape("probability", probability, shape))
    picture = rgb.round().astype(np.uint8)
    picture[_outline(mask, line)] = RED
    if truth_mask is not None:
        picture[_outline(_check_shape("truth_mask", truth_mask, shape), line)] = GREEN

    canvas = Image.fromarray(picture)
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=max(10, round(max(shape) / 64)))
    for row, col, radius in truth_circles:
        draw.ellipse(
            (col - radius, row - radius, col + radius, row + radius), outline=GREEN, width=line
        )
    pad = max(1, line)
    for region in list(candidates)[:max_candidates]:
        row0, col0, row1, col1 = region_box(region)
        draw.rectangle((col0, row0, col1 - 1, row1 - 1), outline=YELLOW, width=line)
        text = f"{region.score:.2f}"
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        size = (right - left + 2 * pad, bottom - top + 2 * pad)
        x, y = label_position((row0, col0, row1, col1), size, shape)
        draw.rectangle((x, y, x + size[0] - 1, y + size[1] - 1), fill=(0, 0, 0))
        draw.text((x + pad - left, y + pad - top), text, fill=YELLOW, font=font)

    band = _title_band(title, width, font)
    return np.asarray(canvas) if band is None else np.concatenate([band, np.asarray(canvas)])


def _title_band(title: str, width: int, font) -> np.ndarray | None:
    from PIL import Image, ImageDraw

    if not title:
        return None
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    char_width = max(1.0, probe.textlength("abcdefghij", font=font) / 10.0)
    lines = textwrap.wrap(title, max(8, int((width - 4) / char_width))) or [""]
    line_height = probe.textbbox((0, 0), "Ag", font=font)[3] + 2
    band = Image.new("RGB", (width, line_height * len(lines) + 4), (0, 0, 0))
    draw = ImageDraw.Draw(band)
    for k, text in enumerate(lines):
        draw.text((2, 2 + k * line_height), text, fill=(255, 255, 255), font=font)
    return np.asarray(band)


def save_overlay_png(
    image: np.ndarray,
    mask: np.ndarray,
    candidates: Sequence[Region],
    path: str | os.PathLike,
    *,
    probability: np.ndarray | None = None,
    truth_circles: Sequence[tuple[float, float, float]] = (),
    truth_mask: np.ndarray | None = None,
    title: str = "",
    max_candidates: int = 10,
) -> Path:
    """Write `render_overlay` as a PNG (a temporary name, then renamed).

    Example:
        >>> save_overlay_png(image, mask, candidates, "mdb001_overlay.png")  # doctest: +SKIP
        PosixPath('mdb001_overlay.png')
    """
    from PIL import Image

    picture = render_overlay(
        image,
        mask,
        candidates,
        probability=probability,
        truth_circles=truth_circles,
        truth_mask=truth_mask,
        title=title,
        max_candidates=max_candidates,
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary_name(path)
    Image.fromarray(picture).save(tmp)
    os.replace(tmp, path)
    return path


__all__ = [
    "label_position",
    "region_box",
    "render_overlay",
    "save_mask_png",
    "save_overlay_png",
]
