"""Mask R-CNN evaluation: matterport's per-image AP, COCO AP (pycocotools) and FROC.

FROC (`mask_froc`): each truth lesion counts once, at the best score of the detections whose
mask IoU with it reaches the threshold; a detection hitting no lesion is a false positive (a
second hit on a found lesion is none). The curve is `mammoseg.metrics.froc_from_scores`, the
one FROC of mammoseg (tied scores enter together).

Two different numbers are called "mAP" in the literature and this module computes both, named:

* **matterport mAP** (`compute_ap`, `compute_ap_range`, `matterport_map`): per image, predictions
  sorted by score are matched greedily to truth masks by mask IoU; AP is the area under the
  all-point (VOC) interpolated precision-recall curve of that image. `compute_ap_range` averages
  it over IoU 0.50:0.05:0.95, and `matterport_map` averages that over images. This is the number
  the paper reported (0.0786 on 50 validation images). IoUs are float32 and thresholds
  matterport's unrounded ``np.arange(0.5, 1.0, 0.05)``, so a mask IoU of exactly 0.65 fails the
  0.65 threshold as it does there (see `IOU_RANGE`).
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

# FROC keeps its old address, mammoseg.models.mask_rcnn.evaluate.
from mammoseg.metrics.detection import FROC_FP_RATES, froc_from_scores, sensitivity_at_rates
from mammoseg.models.mask_rcnn.utils import compute_overlaps_masks, extract_bboxes

# matterport's thresholds, unrounded: np.arange holds 0.6000000000000001, 0.6500000000000001,
# 0.7000000000000002 ... and the mask IoUs are float32 (`compute_overlaps_masks`). So an IoU of
# exactly 0.60 (float32 0.60000002) passes "0.60", while exactly 0.65, 0.70, 0.75, 0.90 or 0.95
# (float32 0.64999998, 0.69999999, 0.75, 0.89999998, 0.94999999) fails its own threshold: one
# such match scores 0.1 lower in `compute_ap_range` than rounded thresholds would give, and
# this module keeps matterport's number, since that is the number the paper reported.
IOU_RANGE = np.arange(0.5, 1.0, 0.05)


def _trim(boxes, masks):
    """Drop zero-padded instances (all-zero boxes) as matterport does."""
    if boxes is None:
        return slice(None)
    boxes = np.asarray(boxes).reshape(-1, 4)
    return ~np.all(boxes == 0, axis=1)


def compute_matches(
    gt_boxes,
    gt_class_ids,
    gt_masks,
    pred_boxes,
    pred_class_ids,
    pred_scores,
    pred_masks,
    iou_threshold: float = 0.5,
    score_threshold: float = 0.0,
):
    """Greedy matching of predictions (best score first) to truth instances by mask IoU.

    Returns:
        ``(gt_match, pred_match, overlaps)``: for each truth the index of its prediction or -1;
        for each prediction (sorted by score, best first) the index of its truth or -1; and the
        IoU matrix [predictions, truths] in that sorted order.
    """
    keep = _trim(gt_boxes, gt_masks)
    gt_masks = np.asarray(gt_masks)[..., keep]
    gt_class_ids = np.asarray(gt_class_ids)[keep]
    keep = _trim(pred_boxes, pred_masks)
    pred_scores = np.asarray(pred_scores)[keep]
    pred_class_ids = np.asarray(pred_class_ids)[keep]
    pred_masks = np.asarray(pred_masks)[..., keep]
    # Tied scores keep their input order (a stable sort of the negated scores). matterport's
    # `np.argsort(scores)[::-1]` uses NumPy's default, unstable sort, so its tie order is
    # arbitrary (it may differ between NumPy builds and CPUs); results agree where no tie
    # decides a match.
    order = np.argsort(-pred_scores, kind="stable")
    pred_scores, pred_class_ids = pred_scores[order], pred_class_ids[order]
    pred_masks = pred_masks[..., order]
    overlaps = compute_overlaps_masks(pred_masks, gt_masks)
    gt_match = -np.ones(gt_masks.shape[-1])
    pred_match = -np.ones(pred_masks.shape[-1])
    for i in range(len(pred_scores)):
        candidates = np.argsort(-overlaps[i], kind="stable")  # ties: first truth first
        candidates = candidates[overlaps[i, candidates] >= score_threshold]
        for j in candidates:
            if gt_match[j] > -1:
                continue
            # In float64, as matterport's np.float32 IoU met np.arange's np.float64 threshold;
            # NumPy 2 would compare a float32 with a plain Python float in float32.
            if float(overlaps[i, j]) < float(iou_threshold):
                break
            if pred_class_ids[i] == gt_class_ids[j]:
                gt_match[j] = i
                pred_match[i] = j
                break
    return gt_match, pred_match, overlaps


def _voc_ap(precisions: np.ndarray, recalls: np.ndarray) -> float:
    """Area under the all-point interpolated precision-recall curve."""
    precisions = np.concatenate([[0.0], precisions, [0.0]])
    recalls = np.concatenate([[0.0], recalls, [1.0]])
    for i in range(len(precisions) - 2, -1, -1):
        precisions[i] = max(precisions[i], precisions[i + 1])
    steps = np.where(recalls[:-1] != recalls[1:])[0] + 1
    return float(np.sum((recalls[steps] - recalls[steps - 1]) * precisions[steps]))


def compute_ap(
    gt_boxes,
    gt_class_ids,
    gt_masks,
    pred_boxes,
    pred_class_ids,
    pred_scores,
    pred_masks,
    iou_threshold: float = 0.5,
):
    """matterport's per-image average precision at one mask-IoU threshold.

    Args:
        gt_boxes, gt_class_ids, gt_masks: truth [N, 4] (or None), [N], bool [H, W, N].
        pred_boxes, pred_class_ids, pred_scores, pred_masks: predictions, same layout.
        iou_threshold: mask IoU at which a prediction counts as a match.

    Returns:
        ``(ap, precisions, recalls, overlaps)``. ``ap`` is NaN when the image has no truth
        (recall is undefined); an image with truth but no prediction scores 0. ``ap`` equals
        matterport's wherever no tied score decides a match (ties keep their input order here,
        arbitrary order there); ``precisions`` and ``recalls`` are one per prediction, without
        the 0 / 1 end points matterport's returned arrays carry.

    Example:
        >>> m = np.zeros((10, 10, 1), bool); m[2:8, 2:8] = True
        >>> compute_ap(None, [1], m, None, [1], [0.9], m)[0]
        1.0
    """
    gt_match, pred_match, overlaps = compute_matches(
        gt_boxes,
        gt_class_ids,
        gt_masks,
        pred_boxes,
        pred_class_ids,
        pred_scores,
        pred_masks,
        iou_threshold,
    )
    if len(gt_match) == 0:
        return float("nan"), np.zeros(0), np.zeros(0), overlaps
    hits = np.cumsum(pred_match > -1)
    precisions = hits / (np.arange(len(pred_match)) + 1)
    recalls = hits.astype(np.float32) / len(gt_match)  # float32, as matterport's
    return _voc_ap(precisions, recalls), precisions, recalls, overlaps


def compute_ap_range(
    gt_box,
    gt_class_id,
    gt_mask,
    pred_box,
    pred_class_id,
    pred_score,
    pred_mask,
    iou_thresholds: Sequence[float] | None = None,
    verbose: int = 0,
) -> float:
    """`compute_ap` averaged over IoU thresholds (default 0.50:0.05:0.95), one image.

    Example:
        >>> m = np.zeros((10, 10, 1), bool); m[2:8, 2:8] = True
        >>> compute_ap_range(None, [1], m, None, [1], [0.9], m)
        1.0
    """
    thresholds = IOU_RANGE if iou_thresholds is None else np.asarray(iou_thresholds)
    aps = [
        compute_ap(
            gt_box,
            gt_class_id,
            gt_mask,
            pred_box,
            pred_class_id,
            pred_score,
            pred_mask,
            iou_threshold=float(t),
        )[0]
        for t in thresholds
    ]
    result = float(np.mean(aps))
    if verbose:
        print(f"AP @{thresholds[0]:.2f}-{thresholds[-1]:.2f}:\t {result:.3f}")
    return result


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


def mask_froc(
    gts: Sequence[dict],
    preds: Sequence[dict],
    iou_threshold: float = 0.5,
    fp_rates: Sequence[float] = FROC_FP_RATES,
) -> dict:
    """Free-response ROC of Mask R-CNN detections: lesion sensitivity against mean false
    positives per image.

    A detection hits a truth lesion when their mask IoU is at least ``iou_threshold`` (classes
    are not compared). A lesion counts once, at the best score of the detections hitting it; a
    second detection on a found lesion is no false positive (the rule of
    `mammoseg.metrics.match_lesions`); a detection hitting no lesion is one. The curve is
    `mammoseg.metrics.froc_from_scores`: one operating point per distinct score, independent of
    the order of the detections.

    Args:
        gts: per image ``{"masks": (H, W, N) bool}``.
        preds: per image ``{"masks": (H, W, M) bool, "scores": (M,)}``.
        iou_threshold: mask IoU for a hit.
        fp_rates: false positives per image at which to read the sensitivity.

    Returns:
        ``{"fp_per_image", "sensitivity", "thresholds", "at_rates" ({rate: sensitivity}),
        "mean_sensitivity"}``; the last averages the sensitivity at ``fp_rates`` (0.25 … 8).

    Raises:
        ValueError: ``gts`` and ``preds`` differ in length or are empty.

    Example:
        >>> gt = {"masks": np.ones((4, 4, 1), bool)}
        >>> pred = {"masks": np.ones((4, 4, 1), bool), "scores": np.array([0.9])}
        >>> mask_froc([gt], [pred])["mean_sensitivity"]
        1.0
    """
    if len(gts) != len(preds) or not len(gts):
        raise ValueError(
            f"need one prediction per image: {len(gts)} truths, {len(preds)} predictions"
        )
    hit_scores, fp_scores = [], []
    for g, p in zip(gts, preds):
        masks = np.asarray(g["masks"], dtype=bool)
        scores = np.asarray(p["scores"], dtype=np.float64)
        best = np.full(masks.shape[-1], np.nan)
        if len(scores):
            overlaps = compute_overlaps_masks(np.asarray(p["masks"], dtype=bool), masks)
            hits = overlaps >= iou_threshold  # (detections, lesions)
            for k in range(masks.shape[-1]):
                if hits[:, k].any():
                    best[k] = scores[hits[:, k]].max()
            fp_scores.extend(scores[~hits.any(axis=1)] if masks.shape[-1] else scores)
        hit_scores.extend(best)
    fppi, sensitivity, thresholds = froc_from_scores(hit_scores, fp_scores, len(gts))
    at_rates = sensitivity_at_rates(fppi, sensitivity, fp_rates)
    return {
        "fp_per_image": np.concatenate([[0.0], fppi]),
        "sensitivity": np.concatenate([[0.0], sensitivity]),
        "thresholds": np.concatenate([[np.inf], thresholds]),
        "at_rates": at_rates,
        "mean_sensitivity": float(np.mean(list(at_rates.values()))),
    }
