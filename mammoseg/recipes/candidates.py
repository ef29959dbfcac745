"""Post-processing: lesion candidates from a probability map, and the mask threshold chosen on
the validation split.

Candidates are connected regions of ``probability >= candidate_threshold`` scored by their
highest probability, so `mammoseg.metrics.froc` can sweep the score. The mask threshold is picked
where the validation Dice per image is highest; the test split never sees the choice.

Like nnU-Net's "keep the largest component" step, the mask can also keep only its best-scored
regions (`keep_best_regions`); whether to, and how many, is decided on the validation split too
(`select_postprocessing`), and only when it helps there.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from mammoseg.metrics import Region, dice_from_counts, regions_from_probability

DEFAULT_THRESHOLDS = tuple(np.round(np.arange(0.05, 0.951, 0.05), 2))
REGION_CHOICES = (1, 2)  # besides None (keep every region): tried on the validation split
_EIGHT = np.ones((3, 3), dtype=bool)


def _ranked_regions(mask: np.ndarray, probability: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(labels, region numbers best first): by peak probability, then by area."""
    labels, count = ndimage.label(mask, structure=_EIGHT)
    if count == 0:
        return labels, np.zeros(0, dtype=np.int64)
    index = np.arange(1, count + 1)
    peaks = np.asarray(ndimage.maximum(probability, labels, index), dtype=np.float64)
    areas = np.bincount(labels.ravel(), minlength=count + 1)[1:]
    order = np.lexsort((-areas, -peaks))  # last key first: peak, then area
    return labels, index[order]


def keep_best_regions(
    mask: np.ndarray, probability: np.ndarray, max_regions: int | None
) -> np.ndarray:
    """``mask`` with only its ``max_regions`` connected regions of highest peak probability.

    Regions are 8-connected; ties in peak probability go to the larger region. ``None`` keeps
    every region.

    Raises:
        ValueError: shapes differ, or ``max_regions`` is not None or a positive integer.

    Example:
        >>> prob = np.array([[0.9, 0.0, 0.6, 0.6]])
        >>> keep_best_regions(prob >= 0.5, prob, 1).astype(int)
        array([[1, 0, 0, 0]])
    """
    mask = np.asarray(mask, dtype=bool)
    probability = np.asarray(probability)
    if mask.shape != probability.shape:
        raise ValueError(f"shapes differ: mask {mask.shape}, probability {probability.shape}")
    if max_regions is None:
        return mask
    if isinstance(max_regions, bool) or not isinstance(max_regions, int) or max_regions < 1:
        raise ValueError(
            f"`max_regions` must be None or a positive integer, received {max_regions!r}"
        )
    labels, ranked = _ranked_regions(mask, probability)
    if len(ranked) <= max_regions:
        return mask
    return np.isin(labels, ranked[:max_regions])


def region_limited_counts(
    probability: np.ndarray,
    truth: np.ndarray,
    thresholds: Sequence[float],
    choices: Sequence[int] = REGION_CHOICES,
) -> dict[int, np.ndarray]:
    """`overlap_counts` of ``keep_best_regions(probability >= t, probability, k)`` for each k.

    One labelling per threshold serves every k.

    Returns:
        {k: int64 array (len(thresholds), 3) of TP/FP/FN pixels}.

    Example:
        >>> prob, truth = np.array([[0.9, 0.0, 0.6]]), np.array([[0, 0, 1]])
        >>> region_limited_counts(prob, truth, [0.5], [1])[1]  # keeps the 0.9 pixel only
        array([[0, 1, 1]])
    """
    prob = np.asarray(probability, dtype=np.float32)
    truth = np.asarray(truth) > 0
    if prob.shape != truth.shape:
        raise ValueError(f"shapes differ: probability {prob.shape}, truth {truth.shape}")
    out = {k: np.zeros((len(thresholds), 3), np.int64) for k in choices}
    truth_total = int(np.count_nonzero(truth))
    for row, threshold in enumerate(thresholds):
        labels, ranked = _ranked_regions(prob >= threshold, prob)
        areas = np.bincount(labels.ravel(), minlength=len(ranked) + 1)
        hits = np.bincount(labels[truth], minlength=len(ranked) + 1)
        for k in choices:
            chosen = ranked[:k]
            tp, area = int(hits[chosen].sum()), int(areas[chosen].sum())
            out[k][row] = tp, area - tp, truth_total - tp
    return out


def extract_candidates(
    probability: np.ndarray, threshold: float = 0.2, min_area: int = 1
) -> list[Region]:
    """Connected regions of ``probability >= threshold`` with at least ``min_area`` pixels.

    Returns:
        `mammoseg.metrics.Region`s (score = highest probability inside), best first.

    Example:
        >>> prob = np.zeros((8, 8)); prob[1:3, 1:3] = 0.9; prob[6, 6] = 0.8
        >>> [(r.score, r.area) for r in extract_candidates(prob, 0.5, min_area=2)]
        [(0.9, 4)]
    """
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"`threshold` must be in [0, 1], received {threshold!r}")
    return regions_from_probability(probability, threshold, min_area=max(1, int(min_area)))


def overlap_counts(
    probability: np.ndarray, truth: np.ndarray, thresholds: Sequence[float]
) -> np.ndarray:
    """(TP, FP, FN) pixel counts of ``probability >= t`` against ``truth`` for every t.

    One sort per image gives all thresholds at once, so a threshold sweep over a validation
    split costs no more than one evaluation.

    Returns:
        int64 array (len(thresholds), 3).

    Example:
        >>> overlap_counts(np.array([[0.9, 0.4], [0.6, 0.1]]), np.array([[1, 1], [0, 0]]), [0.5])
        array([[1, 1, 1]])
    """
    prob = np.asarray(probability, dtype=np.float32).ravel()
    truth = np.asarray(truth).ravel() > 0
    if prob.shape != truth.shape:
        raise ValueError(f"shapes differ: probability {prob.shape}, truth {truth.shape}")
    t = np.asarray(thresholds, dtype=np.float32)
    inside, outside = np.sort(prob[truth]), np.sort(prob[~truth])
    tp = inside.size - np.searchsorted(inside, t, side="left")
    fp = outside.size - np.searchsorted(outside, t, side="left")
    return np.stack([tp, fp, inside.size - tp], axis=1).astype(np.int64)


def select_threshold(
    per_image_counts: Sequence[np.ndarray], thresholds: Sequence[float] = DEFAULT_THRESHOLDS
) -> tuple[float, list[float]]:
    """The threshold with the highest mean Dice over the images that hold a lesion.

    Ties go to the higher threshold (fewer false-positive pixels on normal images).

    Args:
        per_image_counts: per validation image, `overlap_counts` at ``thresholds``.
        thresholds: the candidate thresholds.

    Returns:
        (chosen threshold, mean Dice at each threshold).

    Raises:
        ValueError: no image holds a lesion, or the counts do not match ``thresholds``.

    Example:
        >>> counts = [overlap_counts(prob, truth, DEFAULT_THRESHOLDS)]  # doctest: +SKIP
        >>> select_threshold(counts)[0]  # doctest: +SKIP
        0.45
    """
    counts = np.stack([np.asarray(c) for c in per_image_counts])  # (N, T, 3)
    if counts.shape[1:] != (len(thresholds), 3):
        raise ValueError(
            f"each image needs (len(thresholds)={len(thresholds)}, 3) counts, received "
            f"{counts.shape[1:]}"
        )
    has_lesion = (counts[:, 0, 0] + counts[:, 0, 2]) > 0
    if not has_lesion.any():
        raise ValueError("cannot choose a threshold: no validation image holds a lesion")
    curve = np.nanmean(dice_from_counts(counts[has_lesion]), axis=0)
    best = max(range(len(thresholds)), key=lambda k: (round(curve[k], 6), thresholds[k]))
    return float(thresholds[best]), [float(v) for v in curve]


def select_postprocessing(
    per_image_counts: Sequence[np.ndarray],
    limited_counts: Sequence[dict[int, np.ndarray]],
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
) -> tuple[float, int | None, dict[str, list[float]]]:
    """Threshold and region limit with the highest validation Dice per image.

    Keeping every region (``None``) is the default; a limit k is chosen only if its best mean
    Dice beats keeping all regions (ties keep all, and then the smaller k).

    Args:
        per_image_counts: per image, `overlap_counts` at ``thresholds`` (every region kept).
        limited_counts: per image, `region_limited_counts` at ``thresholds``.
        thresholds: the candidate thresholds.

    Returns:
        (threshold, max_regions or None, {"all" or str(k): mean Dice at each threshold}).

    Example:
        >>> select_postprocessing(counts, limited, DEFAULT_THRESHOLDS)  # doctest: +SKIP
        (0.2, 1, {"all": [...], "1": [...], "2": [...]})
    """
    threshold, curve = select_threshold(per_image_counts, thresholds)
    best = (max(curve), None, threshold)
    curves = {"all": curve}
    choices = sorted(limited_counts[0]) if limited_counts else []
    for k in choices:
        k_threshold, k_curve = select_threshold([c[k] for c in limited_counts], thresholds)
        curves[str(k)] = k_curve
        if max(k_curve) > best[0] + 1e-9:
            best = (max(k_curve), k, k_threshold)
    return best[2], best[1], curves


__all__ = [
    "DEFAULT_THRESHOLDS",
    "REGION_CHOICES",
    "extract_candidates",
    "keep_best_regions",
    "overlap_counts",
    "region_limited_counts",
    "select_postprocessing",
    "select_threshold",
]
