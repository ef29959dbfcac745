"""Mask R-CNN FROC: lesion sensitivity against mean false positives per image.

Beside the two mAPs of `mammoseg.models.mask_rcnn.evaluate` (which re-exports `froc` and
`FROC_FP_RATES`): detections of all images pooled by score, each a hit or a false positive by
its mask IoU with the truth lesions (classes are not compared).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mammoseg.models.mask_rcnn.utils import compute_overlaps_masks

FROC_FP_RATES = (0.25, 0.5, 1, 2, 4, 8)


def froc(
    gts: Sequence[dict],
    preds: Sequence[dict],
    iou_threshold: float = 0.5,
    fp_rates: Sequence[float] = FROC_FP_RATES,
) -> dict:
    """Free-response ROC: lesion sensitivity against mean false positives per image.

    A detection is a hit when its mask IoU with a not-yet-found truth lesion is at least
    ``iou_threshold`` (detections taken best score first, per image); every other detection is
    a false positive. The curve sweeps the score threshold over all detection scores.

    Returns:
        ``{"fp_per_image", "sensitivity", "thresholds", "at_rates" ({rate: sensitivity}),
        "mean_sensitivity"}`` — the last averages sensitivity at ``fp_rates`` (0.25 … 8).
    """
    scores, hits, n_truth = [], [], 0
    for g, p in zip(gts, preds):
        masks = np.asarray(g["masks"], dtype=bool)
        n_truth += masks.shape[-1]
        pmasks = np.asarray(p["masks"], dtype=bool)
        order = np.argsort(np.asarray(p["scores"]), kind="stable")[::-1]
        overlaps = compute_overlaps_masks(pmasks[..., order], masks)
        found = np.zeros(masks.shape[-1], dtype=bool)
        for rank, i in enumerate(order):
            hit = False
            if masks.shape[-1]:
                candidates = np.where(~found & (overlaps[rank] >= iou_threshold))[0]
                if candidates.size:
                    found[candidates[np.argmax(overlaps[rank, candidates])]] = True
                    hit = True
            scores.append(float(p["scores"][i]))
            hits.append(hit)
    n_images = max(len(gts), 1)
    order = np.argsort(scores, kind="stable")[::-1]
    hits_sorted = np.asarray(hits, dtype=bool)[order]
    tp = np.concatenate([[0], np.cumsum(hits_sorted)])
    fp = np.concatenate([[0], np.cumsum(~hits_sorted)])
    sensitivity = tp / max(n_truth, 1)
    fp_per_image = fp / n_images
    thresholds = np.concatenate([[np.inf], np.asarray(scores)[order]])
    at_rates = {}
    for rate in fp_rates:
        reachable = fp_per_image <= rate
        at_rates[float(rate)] = float(sensitivity[reachable].max()) if reachable.any() else 0.0
    return {
        "fp_per_image": fp_per_image,
        "sensitivity": sensitivity,
        "thresholds": thresholds,
        "at_rates": at_rates,
        "mean_sensitivity": float(np.mean(list(at_rates.values()))),
    }
