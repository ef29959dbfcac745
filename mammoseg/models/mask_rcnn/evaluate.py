"""Mask R-CNN evaluation over a dataset: matterport mAP, COCO AP (pycocotools) and FROC inputs.

The per-image AP (`compute_ap`, `compute_ap_range`) lives in ``utils``, its address in matterport
(``utils.compute_ap``); this module averages it over images and adds COCO AP.

FROC is `mammoseg.metrics.froc`, the one FROC of mammoseg; `froc_inputs` turns the truth and
detection dicts into its ``(y_true, y_pred)``: per image, the lesion masks and the detections as
scored `Region`s. Scored with ``min_iou=0.5``, a detection hits a lesion when their mask IoU is
at least 0.5; each lesion counts once, at the best score of the detections hitting it, and a
detection hitting no lesion is a false positive (a second hit on a found lesion is none).

Two different numbers are called "mAP" in the literature and this module computes both, named:

* **matterport mAP** (`utils.compute_ap`, `utils.compute_ap_range`, `matterport_map`): per
  image, predictions sorted by score are matched greedily to truth masks by mask IoU; AP is
  the area under the all-point (VOC) interpolated precision-recall curve of that image.
  `compute_ap_range` averages it over IoU 0.50:0.05:0.95, and `matterport_map` averages that
  over images. This is the number the paper reported (0.0786 on 50 validation images). IoUs
  are float32 and thresholds matterport's unrounded ``np.arange(0.5, 1.0, 0.05)``, so a mask
  IoU of exactly 0.65 fails the 0.65 threshold as it does there (see `utils.IOU_RANGE`).
  *An image without truth* has no defined recall (matterport divides by zero and returns NaN);
  here `compute_ap` returns NaN for it on purpose and `matterport_map` leaves such images out of
  the mean, reporting how many it left out.
* **COCO AP** (`coco_evaluate`): pycocotools' COCOeval, detections pooled over all images per
  category, 101 recall points, at most 100 detections per image, IoU 0.50:0.05:0.95. Images
  without truth are included: their detections are false positives.

Example:
    >>> gt = {"masks": np.ones((4, 4, 1), bool), "class_ids": np.array([1])}
    >>> pred = {"masks": np.ones((4, 4, 1), bool), "class_ids": np.array([1]),
    ...         "scores": np.array([0.9])}
    >>> matterport_map([gt], [pred])["map"]
    1.0
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence

import numpy as np

from mammoseg.metrics.detection import Region
from mammoseg.models.mask_rcnn.utils import (
    compute_ap_range,
    compute_matches,
    extract_bboxes,
)


def _boxes(d):
    return d.get("rois", d.get("boxes"))


def matterport_map(
    gts: Sequence[dict], preds: Sequence[dict], iou_thresholds: Sequence[float] | None = None
) -> dict:
    """Mean over images of `compute_ap_range` (the paper's mAP), images without truth left out.

    Args:
        gts: per image ``{"masks": bool [H, W, N], "class_ids": [N]}`` (optional "boxes").
        preds: per image `MaskRCNN.detect` dicts (``masks``, ``class_ids``, ``scores``).
        iou_thresholds: None for 0.50:0.05:0.95, or e.g. ``[0.5]`` for mAP@0.5.

    Returns:
        ``{"map", "per_image" (NaN for images without truth), "n_images", "n_without_truth"}``.
    """
    if len(gts) != len(preds):
        raise ValueError(
            f"`gts` and `preds` must have the same length, received {len(gts)} and {len(preds)}"
        )
    per_image = np.array(
        [
            compute_ap_range(
                _boxes(g),
                g["class_ids"],
                g["masks"],
                _boxes(p),
                p["class_ids"],
                p["scores"],
                p["masks"],
                iou_thresholds,
            )
            for g, p in zip(gts, preds)
        ],
        dtype=np.float64,
    )
    valid = ~np.isnan(per_image)
    value = float(per_image[valid].mean()) if valid.any() else float("nan")
    return {
        "map": value,
        "per_image": per_image,
        "n_images": len(gts),
        "n_without_truth": int((~valid).sum()),
    }


def precision_recall_curve(
    gts: Sequence[dict], preds: Sequence[dict], iou_threshold: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """Precision and recall of all detections pooled over images, sorted by score (for plots)."""
    scores, hits, n_truth = [], [], 0
    for g, p in zip(gts, preds):
        gt_match, pred_match, _ = compute_matches(
            _boxes(g),
            g["class_ids"],
            g["masks"],
            _boxes(p),
            p["class_ids"],
            p["scores"],
            p["masks"],
            iou_threshold,
        )
        n_truth += len(gt_match)
        scores.extend(np.sort(np.asarray(p["scores"]))[::-1][: len(pred_match)])
        hits.extend(pred_match > -1)
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    tp = np.cumsum(np.asarray(hits, dtype=np.float64)[order])
    precision = tp / (np.arange(len(tp)) + 1)
    recall = tp / max(n_truth, 1)
    return precision, recall


# ------------------------------------------------------------------------------------ COCO


def _rle(mask: np.ndarray) -> dict:
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def _xywh(box: np.ndarray) -> list[float]:
    y1, x1, y2, x2 = (float(v) for v in box)
    return [x1, y1, x2 - x1, y2 - y1]


def coco_evaluate(
    gts: Sequence[dict],
    preds: Sequence[dict],
    iou_type: str = "segm",
    class_ids: Sequence[int] | None = None,
) -> dict[str, float]:
    """COCO AP/AR with pycocotools (`COCOeval`) for masks ("segm") or boxes ("bbox").

    Args:
        gts, preds: as for `matterport_map`. Boxes default to the masks' tight boxes.
        iou_type: "segm" or "bbox".
        class_ids: categories to evaluate (default: every id seen in the truth).

    Returns:
        ``{"AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large", "AR1", "AR10", "AR100",
        ...}`` as COCOeval's ``stats``; -1 where COCO finds nothing to measure.

    Raises:
        ValueError: unknown ``iou_type``.

    Example:
        >>> coco_evaluate([gt], [pred])["AP50"]  # doctest: +SKIP
        1.0
    """
    if iou_type not in ("segm", "bbox"):
        raise ValueError(f"`iou_type` must be 'segm' or 'bbox', received {iou_type!r}")
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images, annotations, results = [], [], []
    seen = set()
    for index, (g, p) in enumerate(zip(gts, preds)):
        masks = np.asarray(g["masks"], dtype=bool)
        h, w = masks.shape[:2]
        images.append({"id": index + 1, "height": h, "width": w})
        boxes = _boxes(g) if _boxes(g) is not None else extract_bboxes(masks)
        for k in range(masks.shape[-1]):
            cid = int(g["class_ids"][k])
            seen.add(cid)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": index + 1,
                    "category_id": cid,
                    "segmentation": _rle(masks[..., k]),
                    "area": float(masks[..., k].sum()),
                    "bbox": _xywh(boxes[k]),
                    "iscrowd": 0,
                }
            )
        pmasks = np.asarray(p["masks"], dtype=bool)
        pboxes = _boxes(p) if _boxes(p) is not None else extract_bboxes(pmasks)
        for k in range(len(p["scores"])):
            results.append(
                {
                    "image_id": index + 1,
                    "category_id": int(p["class_ids"][k]),
                    "segmentation": _rle(pmasks[..., k]),
                    "bbox": _xywh(pboxes[k]),
                    "score": float(p["scores"][k]),
                }
            )
    categories = sorted(seen if class_ids is None else set(class_ids)) or [1]
    names = [
        "AP",
        "AP50",
        "AP75",
        "AP_small",
        "AP_medium",
        "AP_large",
        "AR1",
        "AR10",
        "AR100",
        "AR_small",
        "AR_medium",
        "AR_large",
    ]
    if not results:
        return dict.fromkeys(names, -1.0)  # as COCOeval: nothing detected, nothing measured
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = {
            "images": images,
            "annotations": annotations,
            "categories": [{"id": c, "name": str(c)} for c in categories],
        }
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(results)
        evaluator = COCOeval(coco_gt, coco_dt, iouType=iou_type)
        evaluator.params.catIds = categories
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return {name: float(v) for name, v in zip(names, evaluator.stats)}


def _detection_regions(pred: dict) -> list[Region]:
    masks = np.asarray(pred["masks"], dtype=bool)
    regions = []
    for k, score in enumerate(np.asarray(pred["scores"], dtype=np.float64)):
        coords = np.argwhere(masks[..., k])
        centroid = coords.mean(axis=0) if len(coords) else np.full(2, np.nan)
        centre = (float(centroid[0]), float(centroid[1]))
        regions.append(Region(float(score), centre, len(coords), coords))
    return regions


def froc_inputs(
    gts: Sequence[dict], preds: Sequence[dict]
) -> tuple[list[list[np.ndarray]], list[list[Region]]]:
    """Truths and detections as `mammoseg.metrics.froc` takes them: ``(y_true, y_pred)``.

    Classes are not compared: every detection is a lesion candidate.

    Args:
        gts: per image ``{"masks": (H, W, N) bool}``, one channel per lesion.
        preds: per image ``{"masks": (H, W, M) bool, "scores": (M,)}`` (`MaskRCNN.detect`).

    Returns:
        ``(y_true, y_pred)``: per image, the list of its N lesion masks (H, W), and the list of
        its M detections as `Region`s (score, centroid, area and pixels of the mask).

    Raises:
        ValueError: ``gts`` and ``preds`` differ in length.

    Example:
        >>> from mammoseg.metrics import froc
        >>> gt = {"masks": np.ones((4, 4, 1), bool)}
        >>> pred = {"masks": np.ones((4, 4, 1), bool), "scores": np.array([0.9])}
        >>> y_true, y_pred = froc_inputs([gt], [pred])
        >>> froc(y_true, y_pred, min_iou=0.5)[1.0]  # a hit: mask IoU 1 >= 0.5
        1.0
    """
    if len(gts) != len(preds):
        raise ValueError(
            f"`gts` and `preds` must have the same length, received {len(gts)} and {len(preds)}"
        )
    y_true = [list(np.moveaxis(np.asarray(g["masks"], dtype=bool), -1, 0)) for g in gts]
    return y_true, [_detection_regions(p) for p in preds]
