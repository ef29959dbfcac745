"""Figures of the experiments, numbered as in the paper (Fig. 1, 3, 4, loss curves)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _save(fig, path: str | os.PathLike) -> None:
    fig.tight_layout()
    save_figure(fig, path, dpi=90)
    plt.close(fig)


def save_figure(fig, path: str | os.PathLike, dpi: int = 90) -> None:
    """Save a figure as PNG to a temporary name in its folder, then rename it into place,
    so a crash never leaves a half-written figure under the real name."""
    path = os.fspath(path)
    tmp = path + ".part"
    fig.savefig(tmp, dpi=dpi, format="png")
    os.replace(tmp, path)


def plot_sample(image: np.ndarray, mask: np.ndarray, path, title: str = "") -> None:
    """Fig. 1: an image and its mask side by side."""
    fig, axes = plt.subplots(1, 2, figsize=(7, 3.6))
    axes[0].imshow(image, cmap="gray", vmin=0, vmax=1)
    axes[0].set_title(title or "mammogram")
    axes[1].imshow(mask, cmap="gray", vmin=0, vmax=1)
    axes[1].set_title("tumour mask")
    for ax in axes:
        ax.axis("off")
    _save(fig, path)


def plot_triplets(
    images: np.ndarray,
    truths: np.ndarray,
    predictions: np.ndarray,
    path,
    titles: Sequence[str] | None = None,
    threshold: float = 0.5,
) -> None:
    """Fig. 3: rows of image / truth / prediction (probability map with the threshold contour)."""
    n = len(images)
    fig, axes = plt.subplots(n, 3, figsize=(9, 3 * n), squeeze=False)
    for i in range(n):
        axes[i, 0].imshow(images[i], cmap="gray", vmin=0, vmax=1)
        axes[i, 0].set_title(titles[i] if titles else "mammogram", fontsize=9)
        axes[i, 1].imshow(truths[i], cmap="gray", vmin=0, vmax=1)
        axes[i, 1].set_title(f"truth ({int(truths[i].sum())} px)", fontsize=9)
        axes[i, 2].imshow(predictions[i], cmap="magma", vmin=0, vmax=1)
        binary = predictions[i] >= threshold
        if binary.any() and not binary.all():
            axes[i, 2].contour(binary, levels=[0.5], colors="cyan", linewidths=0.8)
        axes[i, 2].set_title(f"prediction ({int(binary.sum())} px >= {threshold:g})", fontsize=9)
        for ax in axes[i]:
            ax.axis("off")
    _save(fig, path)


def plot_curves(
    curves: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    path,
    ylabel: str,
    title: str = "",
    xlabel: str = "epoch",
    ylim: tuple[float, float] | None = None,
    log_y: bool | None = False,
) -> None:
    """Line plot of several named curves {label: (x, y)} (Fig. 4, loss curves).

    Args:
        log_y: a logarithmic y axis; None chooses it when every value is positive and the
            largest is over 100 times the smallest (losses of very different scales, such as
            BCE beside a 1:1e6 weighted BCE).

    Example:
        >>> plot_curves({"a": ([1, 2], [0.5, 0.4])}, "loss.png", "loss")  # doctest: +SKIP
    """
    values = np.concatenate([np.asarray(y, np.float64).ravel() for _, y in curves.values()] or [[]])
    values = values[np.isfinite(values)]
    if log_y is None:
        log_y = bool(values.size) and values.min() > 0 and values.max() > 100 * values.min()
    fig, ax = plt.subplots(figsize=(7, 4))
    for label, (x, y) in curves.items():
        ax.plot(x, y, marker="o", markersize=3, label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel + (" (log scale)" if log_y else ""))
    if log_y:
        ax.set_yscale("log")
    if ylim:
        ax.set_ylim(*ylim)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, path)
