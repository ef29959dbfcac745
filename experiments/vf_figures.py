"""Figures of section V.F: precision-recall (Fig. 6), loss curves (Fig. 6), truth vs prediction
(Fig. 5) and FROC. Each function writes one PNG and returns its file name.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_pr(path: Path, precision, recall) -> str:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.plot(np.concatenate([[0], recall]), np.concatenate([[1], precision]), drawstyle="steps")
    ax.set(
        xlabel="recall",
        ylabel="precision",
        xlim=(0, 1),
        ylim=(0, 1.05),
        title="Precision-recall, IoU 0.5 (all val images)",
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path.name


LOSS_KEYS = (
    "loss",
    "val_loss",
    "rpn_class_loss",
    "rpn_bbox_loss",
    "mrcnn_class_loss",
    "mrcnn_bbox_loss",
    "mrcnn_mask_loss",
)


def _read_history(path: Path) -> list[dict]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


def plot_losses(path: Path, histories: dict[str, Path]) -> str | None:
    """Fig. 6 (right): loss per epoch. One start: the total and every component; several
    starts (COCO and ImageNet): the training and validation loss of each, on one axis.

    Returns:
        The file name, or None when no history file exists.
    """
    runs = {label: _read_history(h) for label, h in histories.items() if Path(h).is_file()}
    runs = {label: rows for label, rows in runs.items() if rows}
    if not runs:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, rows in runs.items():
        epochs = [int(r["epoch"]) + 1 for r in rows]
        keys = LOSS_KEYS if len(runs) == 1 else ("loss", "val_loss")
        for key in keys:
            if key not in rows[0]:
                continue
            name = key if len(runs) == 1 else f"{label}: {key}"
            total = key in ("loss", "val_loss")
            style = "--" if key == "val_loss" else "-"
            ax.plot(epochs, [float(r[key]) for r in rows], style, label=name, lw=2 if total else 1)
    title = "Mask R-CNN losses (heads, then all layers)"
    if len(runs) > 1:
        title += ": " + " vs ".join(runs)
    ax.set(xlabel="epoch", ylabel="loss", title=title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path.name


def plot_examples(path: Path, dataset, gts, preds, n: int = 3) -> str:
    plt = _pyplot()
    order = sorted(range(len(gts)), key=lambda i: -gts[i]["masks"].sum())[:n]
    fig, axes = plt.subplots(len(order), 2, figsize=(6, 3 * len(order)), squeeze=False)
    for row, i in zip(axes, order):
        image = dataset.load_image(dataset.image_ids[i])[..., 0]
        truth = gts[i]["masks"].any(axis=-1)
        top = preds[i]["masks"][..., :3]  # the three best-scored detections
        row[0].imshow(image, cmap="gray")
        row[0].contour(truth, levels=[0.5], colors="lime")
        row[0].set_title("truth")
        row[1].imshow(image, cmap="gray")
        for k in range(top.shape[-1]):
            row[1].contour(top[..., k], levels=[0.5], colors=["red", "orange", "yellow"][k])
        scores = ", ".join(f"{s:.2f}" for s in preds[i]["scores"][:3])
        row[1].set_title(f"prediction (top 3: {scores})", fontsize=8)
        for ax in row:
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path.name


def plot_froc(path: Path, fp_per_image, sensitivity) -> str:
    """The curve of `mammoseg.metrics.froc_curve`, from (0, 0): nothing kept, nothing found."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.plot(np.concatenate([[0.0], fp_per_image]), np.concatenate([[0.0], sensitivity]))
    ax.set(
        xscale="symlog",
        xlabel="false positives per image",
        ylabel="sensitivity",
        ylim=(0, 1.05),
        title="FROC (mask IoU >= 0.5)",
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path.name
