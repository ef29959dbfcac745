"""Post-processing: lesion candidates from a probability map, and the mask threshold chosen on
the validation split.

Candidates are connected regions of ``probability >= candidate_threshold`` scored by their
highest probability, so `mammoseg.metrics.froc` can sweep the score. The mask threshold is picked
where the validation Dice per image is highest; the test split never sees the choice.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mammoseg.metrics import Region, regions_from_probability

DEFAULT_THRESHOLDS = tuple(np.round(np.arange(0.05, 0.951, 0.05), 2))


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


def dice_from_counts(counts: np.ndarray) -> np.ndarray:
    """Dice = 2TP / (2TP + FP + FN) over the last axis of (..., 3) counts; NaN without truth."""
    tp, fp, fn = (counts[..., k].astype(np.float64) for k in range(3))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(tp + fn > 0, 2 * tp / np.maximum(2 * tp + fp + fn, 1), np.nan)


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


__all__ = [
    "DEFAULT_THRESHOLDS",
    "dice_from_counts",
    "extract_candidates",
    "overlap_counts",
    "select_threshold",
]
