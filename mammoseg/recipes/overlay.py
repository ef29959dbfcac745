"""Pictures of a prediction: the mask PNG and an overlay with the scored lesion candidates."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mammoseg.metrics import Region


def _temporary_name(path: Path) -> Path:
    # Written there, then renamed, so a crash never leaves a torn PNG under the final name;
    # the suffix stays last because Pillow and Matplotlib pick the format from it.
    return path.with_name(f".{path.stem}.part{path.suffix}")


def save_mask_png(mask: np.ndarray, path: str | os.PathLike) -> Path:
    """Write a binary mask as an 8-bit PNG (0 and 255), the original image's size."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary_name(path)
    Image.fromarray((np.asarray(mask) > 0).astype(np.uint8) * 255).save(tmp)
    os.replace(tmp, path)
    return path


def save_overlay_png(
    image: np.ndarray,
    mask: np.ndarray,
    candidates: Sequence[Region],
    path: str | os.PathLike,
    truth_circles: Sequence[tuple[float, float, float]] = (),
    title: str = "",
    max_candidates: int = 10,
) -> Path:
    """Draw the image, the mask outline (red), candidate boxes with their scores (yellow) and,
    when given, the truth circles (green, (row, col, radius))."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Circle, Rectangle

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = np.asarray(image).shape[:2]
    fig, ax = plt.subplots(figsize=(6, 6 * height / max(width, 1)), dpi=120)
    ax.imshow(image, cmap="gray", vmin=0, vmax=1)
    if np.any(mask):
        ax.contour(np.asarray(mask) > 0, levels=[0.5], colors="red", linewidths=1.0)
    for row, col, radius in truth_circles:
        ax.add_patch(Circle((col, row), radius, fill=False, color="lime", lw=1.0, ls="--"))
    for region in list(candidates)[:max_candidates]:
        rows, cols = region.coords[:, 0], region.coords[:, 1]
        box = Rectangle(
            (cols.min() - 0.5, rows.min() - 0.5),
            cols.max() - cols.min() + 1,
            rows.max() - rows.min() + 1,
            fill=False,
            color="yellow",
            lw=0.8,
        )
        ax.add_patch(box)
        ax.text(
            cols.min(),
            rows.min() - 4,
            f"{region.score:.2f}",
            color="yellow",
            fontsize=7,
            va="bottom",
        )
    ax.set_title(title, fontsize=8)
    ax.set_axis_off()
    fig.tight_layout()
    tmp = _temporary_name(path)
    try:
        fig.savefig(tmp)
    finally:
        plt.close(fig)
    os.replace(tmp, path)
    return path


__all__ = ["save_mask_png", "save_overlay_png"]
