"""matterport's ``visualize``: instances drawn over their image with matplotlib.

`display_instances` draws what `MaskRCNN.detect` returns (or a dataset's truth): each instance's
mask tinted in its own colour with its outline, its box dashed, and a caption "class score".
matplotlib is imported when a function runs, so importing this module stays cheap; in tests and
on servers use the Agg backend (``matplotlib.use("Agg")``).

Example:
    >>> from mammoseg.models.mask_rcnn import visualize
    >>> r = model.detect([image])[0]  # doctest: +SKIP
    >>> visualize.display_instances(image, r["rois"], r["masks"], r["class_ids"],
    ...                             dataset.class_names, r["scores"])  # doctest: +SKIP
"""

from __future__ import annotations

import colorsys
import random
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np


def random_colors(n: int, bright: bool = True) -> list[tuple[float, float, float]]:
    """``n`` distinct RGB colours (0-1), evenly spaced hues in a random order, as matterport's.

    Example:
        >>> sorted(random_colors(2))
        [(0.0, 1.0, 1.0), (1.0, 0.0, 0.0)]
    """
    brightness = 1.0 if bright else 0.7
    colors = [colorsys.hsv_to_rgb(i / n, 1, brightness) for i in range(n)]
    random.shuffle(colors)
    return colors


def apply_mask(
    image: np.ndarray, mask: np.ndarray, color: Sequence[float], alpha: float = 0.5
) -> np.ndarray:
    """Tint ``image`` (H, W, 3) with ``color`` (RGB 0-1) where ``mask`` (H, W) is set.

    A masked pixel becomes ``pixel * (1 - alpha) + alpha * color * 255``; others are unchanged.
    The image is modified in place and returned (as matterport's).

    Example:
        >>> image = np.full((1, 2, 3), 100.0)
        >>> apply_mask(image, np.array([[True, False]]), (1.0, 0.0, 0.0))[..., 0].tolist()
        [[177.5, 100.0]]
    """
    mask = np.asarray(mask, dtype=bool)
    for c in range(3):
        image[:, :, c] = np.where(
            mask, image[:, :, c] * (1 - alpha) + alpha * color[c] * 255, image[:, :, c]
        )
    return image


def _show() -> None:
    import matplotlib.pyplot as plt

    with warnings.catch_warnings():  # Agg (tests, servers) cannot show: nothing to say
        warnings.filterwarnings("ignore", message=".*non-GUI backend.*")
        warnings.filterwarnings("ignore", message=".*cannot show the figure.*")
        plt.show()


def display_instances(
    image: np.ndarray,
    boxes: np.ndarray,
    masks: np.ndarray,
    class_ids: np.ndarray,
    class_names: Sequence[str],
    scores: np.ndarray | None = None,
    title: str = "",
    figsize: tuple[float, float] = (16, 16),
    ax: Any = None,
    show_mask: bool = True,
    show_bbox: bool = True,
    colors: Sequence[Sequence[float]] | None = None,
    captions: Sequence[str] | None = None,
) -> None:
    """Draw instances over their image: tinted masks with outlines, dashed boxes, captions.

    Args:
        image: (H, W, 3) RGB, or (H, W) grey.
        boxes: [N, (y1, x1, y2, x2)] in pixels.
        masks: bool [H, W, N].
        class_ids: [N] indices into ``class_names``.
        class_names: the dataset's ``class_names``.
        scores: [N] confidences (captions show them), or None for truth.
        title: the axes' title.
        figsize: size of the figure made when ``ax`` is None.
        ax: a matplotlib Axes to draw on; None makes a figure and shows it.
        show_mask, show_bbox: draw the masks / the boxes.
        colors: one RGB (0-1) colour per instance; default `random_colors`.
        captions: one caption per instance instead of "class score".

    Raises:
        ValueError: ``boxes``, ``masks`` and ``class_ids`` disagree on the number of
            instances, or the masks are not the image's size.

    Example:
        >>> visualize.display_instances(image, r["rois"], r["masks"], r["class_ids"],
        ...                             ["BG", "tumor"], r["scores"], ax=ax)  # doctest: +SKIP
    """
    import matplotlib.pyplot as plt
    from matplotlib import patches
    from skimage.measure import find_contours

    # === check ===
    boxes = np.asarray(boxes).reshape(-1, 4)
    masks = np.asarray(masks)
    class_ids = np.asarray(class_ids)
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    n = boxes.shape[0]
    if not n == masks.shape[-1] == class_ids.shape[0]:
        raise ValueError(
            f"`boxes`, `masks` and `class_ids` must hold the same number of instances, received "
            f"{n}, {masks.shape[-1]} and {class_ids.shape[0]}"
        )
    if n and masks.shape[:2] != image.shape[:2]:
        raise ValueError(
            f"`masks` must have the image's height and width {image.shape[:2]}, received "
            f"{masks.shape[:2]}"
        )
    if not n:
        print("\n*** No instances to display *** \n")

    # === axes ===
    auto_show = ax is None
    if auto_show:
        _, ax = plt.subplots(1, figsize=figsize)
    colors = colors or random_colors(n)
    height, width = image.shape[:2]
    ax.set_ylim(height + 10, -10)
    ax.set_xlim(-10, width + 10)
    ax.axis("off")
    ax.set_title(title)

    # === instances ===
    masked_image = image.astype(np.float64).copy()
    for i in range(n):
        color = colors[i]
        y1, x1, y2, x2 = boxes[i]
        if not np.any(boxes[i]):
            continue  # a zero-padded slot, as matterport skips
        if show_bbox:
            ax.add_patch(
                patches.Rectangle(
                    (x1, y1),
                    x2 - x1,
                    y2 - y1,
                    linewidth=2,
                    alpha=0.7,
                    linestyle="dashed",
                    edgecolor=color,
                    facecolor="none",
                )
            )
        if captions is None:
            label = class_names[int(class_ids[i])]
            caption = f"{label} {scores[i]:.3f}" if scores is not None else label
        else:
            caption = captions[i]
        ax.text(x1, y1 + 8, caption, color="w", size=11, backgroundcolor="none")
        mask = masks[:, :, i]
        if show_mask:
            masked_image = apply_mask(masked_image, mask, color)
        # pad so that a mask touching the border still gets a closed outline
        padded = np.zeros((height + 2, width + 2), dtype=np.uint8)
        padded[1:-1, 1:-1] = mask
        for contour in find_contours(padded, 0.5):
            ax.add_patch(patches.Polygon(np.fliplr(contour) - 1, facecolor="none", edgecolor=color))
    ax.imshow(masked_image.astype(np.uint8))
    if auto_show:
        _show()


def display_images(
    images: Sequence[np.ndarray],
    titles: Sequence[str] | None = None,
    cols: int = 4,
    cmap: str | None = None,
    norm: Any = None,
    interpolation: str | None = None,
) -> None:
    """Show images side by side in a grid of ``cols`` columns, each with its title.

    Example:
        >>> visualize.display_images([image, mask[..., 0]], ["image", "mask"])  # doctest: +SKIP
    """
    import matplotlib.pyplot as plt

    titles = list(titles) if titles is not None else [""] * len(images)
    rows = len(images) // cols + 1
    plt.figure(figsize=(14, 14 * rows // cols))
    for i, (image, title) in enumerate(zip(images, titles), start=1):
        plt.subplot(rows, cols, i)
        plt.title(title, fontsize=9)
        plt.axis("off")
        plt.imshow(
            np.asarray(image).astype(np.uint8), cmap=cmap, norm=norm, interpolation=interpolation
        )
    _show()


def display_top_masks(
    image: np.ndarray,
    mask: np.ndarray,
    class_ids: np.ndarray,
    class_names: Sequence[str],
    limit: int = 4,
) -> None:
    """Show the image beside the union of each of its ``limit`` largest classes' masks.

    Example:
        >>> image, (mask, class_ids) = dataset.load_image(0), dataset.load_mask(0)  # doctest: +SKIP
        >>> visualize.display_top_masks(image, mask, class_ids, names)  # doctest: +SKIP
    """
    mask = np.asarray(mask)
    class_ids = np.asarray(class_ids)
    images, titles = [image], ["H x W={}x{}".format(*np.asarray(image).shape[:2])]
    unique = np.unique(class_ids)
    area = [np.sum(mask[:, :, np.where(class_ids == i)[0]]) for i in unique]
    top = [c for a, c in sorted(zip(area, unique), key=lambda pair: -pair[0]) if a > 0]
    for i in range(limit):
        class_id = top[i] if i < len(top) else -1
        chosen = mask[:, :, np.where(class_ids == class_id)[0]]
        images.append(np.sum(chosen * np.arange(1, chosen.shape[-1] + 1), -1))
        titles.append(class_names[class_id] if class_id != -1 else "-")
    display_images(images, titles, cols=limit + 1, cmap="Blues_r")
