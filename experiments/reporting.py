"""What the experiment reports are made of: metrics, verdicts, figures.

`experiments/common.py` re-exports the helpers the scripts use (`common.fmt`, ...).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def make_figures(
    run_dir: Path, images, masks, results: dict, labels: dict[str, str], triplets=()
) -> list[str]:
    """Fig. 1 (a sample), Fig. 4 (mean IoU every half epoch), loss curves and Fig. 3
    triplets for the sub-runs named in ``triplets``; returns the file names."""
    from mammoseg import plots

    pick = showcase(masks)
    plots.plot_sample(images[pick[0], ..., 0], masks[pick[0], ..., 0], run_dir / "fig1_sample.png")
    figures = ["fig1_sample.png"]
    ok = {k: v for k, v in results.items() if v.get("status") == "ok" and "history" in v}
    if not ok:
        return figures
    curves = {
        labels.get(k, k): (
            [r["epoch"] for r in v["half_epoch"]],
            [r["mean_iou_both_classes"] for r in v["half_epoch"]],
        )
        for k, v in ok.items()
    }
    plots.plot_curves(
        curves,
        run_dir / "fig4_mean_iou.png",
        "mean IoU (both classes), val",
        "Mean IoU every half epoch (as the paper's Fig. 4)",
        ylim=(0, 1.02),
    )
    loss_curves = {
        labels.get(k, k): (list(range(1, len(v["history"]["loss"]) + 1)), v["history"]["loss"])
        for k, v in ok.items()
        if v["history"].get("loss")
    }
    plots.plot_curves(
        loss_curves, run_dir / "loss_curves.png", "training loss", "Training loss per epoch"
    )
    figures += ["fig4_mean_iou.png", "loss_curves.png"]
    for name in triplets:
        path = run_dir / name / "val_probabilities.npy"
        if name not in ok or not path.is_file():
            continue
        probs = np.load(path).astype(np.float32)
        plots.plot_triplets(
            images[pick, ..., 0],
            masks[pick, ..., 0],
            probs,
            run_dir / f"fig3_{name}.png",
            titles=[labels.get(name, name)] * len(pick),
        )
        figures.append(f"fig3_{name}.png")
    return figures


def collapse_row(
    result: dict, label: str, paper: str, *, image_size: int, overlap_loss: bool = False
) -> tuple[str, str, str, str]:
    """One findings row: the test metrics and whether the model collapsed to empty masks."""
    if result.get("status") != "ok":
        return (label, paper, "failed: " + result.get("error", "not run"), "—")
    m = result["test"]
    ours = (
        f"test: empty {fmt(m['empty_prediction_rate'], 2)}, mean IoU "
        f"{fmt(m['mean_iou_both_classes'])}, fg IoU {fmt(m['foreground_iou'])}, Dice/img "
        f"{fmt(m['dice_per_image_mean'])}, "
        f"predicted share {fmt(m['predicted_positive_share'], 4)}"
    )
    empty = m["empty_prediction_rate"]
    dice = m["dice_per_image_mean"] or 0.0
    if overlap_loss:
        if empty is not None and empty < 0.5 and dice > 0.1:
            text = "avoids the collapse"
        elif m["predicted_positive_share"] > 0.5:
            text = "floods the image at this budget (no collapse, no segmentation)"
        else:
            text = "does not avoid the collapse at this budget"
        return (label, paper, ours, text)
    per_image = m["predicted_positive_share"] * image_size**2
    if empty is not None and empty >= 0.9:
        text = "reproduced: empty masks"
    elif dice < 0.01 and m["predicted_positive_share"] < 1e-3:
        text = f"reproduced: near-empty masks ({per_image:.1f} px per image, Dice < 0.01)"
    elif m["predicted_positive_share"] > 0.5:
        text = "not reproduced: floods the image with tumour"
    else:
        text = "not reproduced: predicts non-empty masks"
    return (label, paper, ours, text)


def segmentation_metrics(probabilities: np.ndarray, masks: np.ndarray, threshold: float = 0.5):
    """The paper's metric beside the ones that expose an empty prediction, named as in
    `mammoseg.metrics`."""
    from mammoseg import metrics

    pred = np.asarray(probabilities).reshape(len(probabilities), *masks.shape[1:3]) >= threshold
    truth = np.asarray(masks).reshape(pred.shape) > 0
    has_lesion = truth.reshape(len(truth), -1).any(axis=1)
    dice = metrics.dice_per_image(pred, truth)
    return {
        "mean_iou_both_classes": float(metrics.mean_iou_both_classes(pred, truth)),
        "foreground_iou": float(metrics.foreground_iou(pred, truth)),
        "dice_per_image_mean": float(np.mean(dice[has_lesion])) if has_lesion.any() else None,
        "dice_pooled": float(metrics.dice_pooled(pred, truth)),
        "empty_prediction_rate": float(metrics.empty_prediction_rate(pred, truth)),
        "predicted_positive_share": float(pred.mean()),
        "n_images": int(len(pred)),
    }


def showcase(masks: np.ndarray, n: int = 3) -> list[int]:
    """Indices of up to ``n`` images to show: those with a lesion first, largest first."""
    areas = np.asarray(masks).reshape(len(masks), -1).sum(axis=1, dtype=np.int64)
    order = [int(i) for i in np.argsort(-areas, kind="stable")]
    return order[:n]


def verdict(condition: bool, yes: str, no: str) -> str:
    return yes if condition else no


def fmt(value, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"
