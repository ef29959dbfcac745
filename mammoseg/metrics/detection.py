"""Lesion detection: scored connected regions of a probability map, matching them to the truth
lesions of an image, and the free-response ROC (FROC).

`regions_from_probability` turns a probability map into scored connected regions, `match_lesions`
marks hits (a region overlapping a lesion's mask, or whose centroid falls inside a lesion's circle)
and false positives, `froc` gives the sensitivity at 0.25, 0.5, 1, 2, 4 and 8 false positives per
image. Truth first, as in Keras: ``froc(y_true, y_pred)``, ``match_lesions(y_true, y_pred)``.

What a hit is: a region sharing a pixel with a lesion's mask, or whose centroid lies in a
lesion's circle; with ``min_iou``, a region whose IoU with a lesion's mask is at least
``min_iou`` (Mask R-CNN's detections are scored at ``min_iou=0.5``, the usual detection rule).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage
from skimage import measure

from mammoseg.checks import check_choice, check_fraction
from mammoseg.data.records import Lesion

FROC_FP_RATES = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)


@dataclass(frozen=True)
class Region:
    """A connected predicted region: ``score`` (max probability), ``centroid`` (row, col),
    ``area`` in pixels and ``coords`` (area, 2) of (row, col)."""

    score: float
    centroid: tuple[float, float]
    area: int
    coords: np.ndarray


def regions_from_probability(
    probability: np.ndarray, threshold: float = 0.5, min_area: int = 1
) -> list[Region]:
    """Connected regions (8-connectivity) of ``probability >= threshold``, best score first.

    Args:
        probability: (H, W) or (H, W, 1) probability map or binary mask.
        threshold: region threshold; use a low one for FROC and let the score sweep.
        min_area: drop smaller regions.

    Returns:
        A list of `Region`, sorted by decreasing score.

    Example:
        >>> [r.area for r in regions_from_probability(np.array([[0.9, 0, 0.6]]))]
        [1, 1]
    """
    prob = np.asarray(probability, dtype=np.float64)
    prob = prob[..., 0] if prob.ndim == 3 and prob.shape[-1] == 1 else prob
    if prob.ndim != 2:
        raise ValueError(f"`probability` must be (H, W) or (H, W, 1), received {prob.shape}")
    labels, _ = ndimage.label(prob >= threshold, structure=np.ones((3, 3)))
    regions = [
        Region(
            float(props.intensity_max),
            (float(props.centroid[0]), float(props.centroid[1])),
            int(props.area),
            props.coords,
        )
        for props in measure.regionprops(labels, intensity_image=prob)
        if props.area >= min_area
    ]
    return sorted(regions, key=lambda r: -r.score)  # stable: equal scores keep label order


@dataclass(frozen=True)
class LesionMatch:
    """Result of `match_lesions` for one image.

    Attributes:
        hit_scores: per truth lesion, the best score of a region hitting it, NaN if missed.
        false_positive_scores: scores of the regions that hit no lesion.
    """

    hit_scores: np.ndarray
    false_positive_scores: np.ndarray

    @property
    def hits(self) -> np.ndarray:
        """Boolean per truth lesion."""
        return ~np.isnan(self.hit_scores)


_SWAPPED = "; the truth comes first: match_lesions(y_true, y_pred), froc(y_true, y_pred)"


def _check_min_iou(min_iou: Any) -> float | None:
    if min_iou is None:
        return None
    value = check_fraction("min_iou", min_iou, allow_one=True)
    if value == 0:  # every region would hit every lesion
        raise ValueError(f"`min_iou` must be above 0 (None: a shared pixel), received {min_iou!r}")
    return value


def _truth_items(y_true: Any, min_iou: float | None) -> list[Lesion | np.ndarray]:
    """The lesions of one image: circle `Lesion`s, and masks as 2-D boolean arrays."""
    if y_true is None:
        return []
    if isinstance(y_true, np.ndarray) and y_true.ndim >= 2:
        labels, count = ndimage.label(np.squeeze(y_true) > 0, structure=np.ones((3, 3)))
        return [labels == k for k in range(1, count + 1)]
    items = list(y_true)
    for item in items:
        if isinstance(item, Lesion) and min_iou is not None:
            raise ValueError(
                f"`min_iou` needs each lesion's mask, received the circle lesion {item!r}"
            )
        if isinstance(item, Lesion) and (item.center is None or item.radius is None):
            raise ValueError(f"lesion {item!r} has no center/radius: pass its mask instead")
        if isinstance(item, Region):
            raise TypeError(
                "truth lesions must be Lesion or mask arrays, received a Region (score "
                f"{item.score}, area {item.area}){_SWAPPED}"
            )
        if not isinstance(item, Lesion | np.ndarray):
            raise TypeError(f"truth lesions must be Lesion or mask arrays, received {item!r}")
    return [item if isinstance(item, Lesion) else np.squeeze(item) > 0 for item in items]


def _regions(y_pred: Any, threshold: float) -> list[Region]:
    """The scored regions of one image: ``y_pred``'s own, or those of its probability map."""
    if isinstance(y_pred, np.ndarray):
        return regions_from_probability(y_pred, threshold)
    regions = list(y_pred)
    for region in regions:
        # A truth lesion among the regions: the arguments were given prediction first.
        if isinstance(region, Lesion | np.ndarray):
            found = (
                f"an array of shape {region.shape}"
                if isinstance(region, np.ndarray)
                else repr(region)
            )
            raise TypeError(
                "`y_pred` must be a probability map or a list of Region, received a list "
                f"holding {found}{_SWAPPED}"
            )
    return regions


def _hits(region: Region, item: Lesion | np.ndarray, area: int, min_iou: float | None) -> bool:
    """Whether ``region`` hits the lesion ``item`` (a circle, or a boolean mask of ``area``)."""
    if isinstance(item, Lesion):
        d_row, d_col = region.centroid[0] - item.center[0], region.centroid[1] - item.center[1]
        return d_row * d_row + d_col * d_col <= item.radius * item.radius
    inside = (region.coords[:, 0] < item.shape[0]) & (region.coords[:, 1] < item.shape[1])
    shared = np.count_nonzero(item[region.coords[inside, 0], region.coords[inside, 1]])
    if min_iou is None:
        return shared > 0
    union = region.area + area - shared
    return union > 0 and shared / union >= min_iou


def match_lesions(
    y_true: Any, y_pred: Any, threshold: float = 0.5, *, min_iou: float | None = None
) -> LesionMatch:
    """Match predicted regions to the truth lesions of one image.

    A region hits a lesion given as a mask if they share a pixel (with ``min_iou``: if their
    IoU is at least ``min_iou``), and a lesion given as a circle (a `Lesion` with center and
    radius) if its centroid lies inside the circle. A lesion hit by several regions counts once
    (best score); those regions are not false positives.

    Args:
        y_true: the truth lesions: a binary mask (each connected component is one lesion), a
            list of `Lesion` and/or per-lesion masks, or None / [] for a normal image.
        y_pred: a list of `Region`, or a probability map / binary mask (H, W) turned into
            regions with `regions_from_probability` at ``threshold``.
        threshold: used only when ``y_pred`` is an array.
        min_iou: None: a shared pixel is a hit; a number in (0, 1]: a region hits a lesion's
            mask when their IoU reaches it (lesions must then be masks, not circles).

    Returns:
        A `LesionMatch`.

    Raises:
        ValueError: a `Lesion` without center or radius, a circle `Lesion` with ``min_iou``,
            or ``min_iou`` outside (0, 1].
        TypeError: a truth lesion that is no `Lesion` or mask, or a `Lesion` or mask among the
            regions of ``y_pred`` (the message says when the arguments look swapped).

    Example:
        >>> truth = [Lesion("mass", center=(5.0, 5.0), radius=3.0)]
        >>> prob = np.zeros((20, 20)); prob[4:7, 4:7] = 0.9; prob[15, 15] = 0.7
        >>> m = match_lesions(truth, prob)
        >>> m.hit_scores, m.false_positive_scores
        (array([0.9]), array([0.7]))
    """
    min_iou = _check_min_iou(min_iou)
    items = _truth_items(y_true, min_iou)
    regions = _regions(y_pred, threshold)
    areas = [0 if isinstance(item, Lesion) else np.count_nonzero(item) for item in items]
    hit_scores = np.full(len(items), np.nan)
    false_positives = []
    for region in regions:
        hit_any = False
        for k, item in enumerate(items):
            if _hits(region, item, areas[k], min_iou):
                hit_any = True
                hit_scores[k] = np.fmax(hit_scores[k], region.score)
        if not hit_any:
            false_positives.append(region.score)
    return LesionMatch(hit_scores, np.asarray(false_positives, dtype=np.float64))


def froc_curve(
    y_true: Sequence[Any],
    y_pred: Sequence[Any],
    threshold: float = 0.5,
    *,
    min_iou: float | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Free-response ROC: (false positives per image, lesion sensitivity, score thresholds).

    Args:
        y_true: per image, what `match_lesions` accepts as ``y_true``.
        y_pred: per image, what `match_lesions` accepts as ``y_pred``.
        threshold: region threshold for array predictions.
        min_iou: the hit rule, as in `match_lesions`.

    Returns:
        Three arrays, one entry per distinct score, thresholds decreasing.

    Raises:
        ValueError: the two sequences differ in length or are empty.
    """
    return froc_from_scores(*_pooled_scores(y_true, y_pred, threshold, min_iou))


def _pooled_scores(
    y_true: Sequence[Any], y_pred: Sequence[Any], threshold: float, min_iou: float | None
) -> tuple[np.ndarray, np.ndarray, int]:
    """(hit score of every lesion, score of every false positive, number of images)."""
    if len(y_true) != len(y_pred) or not len(y_true):
        raise ValueError(
            "`y_true` and `y_pred` must hold one entry per image, the same number and at "
            f"least one, received {len(y_true)} and {len(y_pred)}"
        )
    min_iou = _check_min_iou(min_iou)
    matches = [match_lesions(t, p, threshold, min_iou=min_iou) for t, p in zip(y_true, y_pred)]
    hit_scores = np.concatenate([m.hit_scores for m in matches])
    fp_scores = np.concatenate([m.false_positive_scores for m in matches])
    return hit_scores, fp_scores, len(matches)


def froc_from_scores(
    hit_scores: Any, false_positive_scores: Any, n_images: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The FROC curve from pooled scores: one entry per lesion, one per false positive.

    The curve under `froc` and `froc_curve`, so under the segmentation recipe's FROC and Mask
    R-CNN's. An operating point is a score threshold t: every candidate scoring >= t is kept,
    so candidates with tied scores enter together, and the curve has one point per distinct
    score, none that no threshold can reach; the result does not depend on the order of the
    candidates.

    Args:
        hit_scores: per truth lesion, the best score of the candidates that hit it (NaN:
            missed). A lesion hit twice counts once; the second candidate is no false positive.
        false_positive_scores: the score of every candidate that hits no lesion.
        n_images: the number of images, for false positives per image.

    Returns:
        (false positives per image, sensitivity, thresholds), thresholds decreasing;
        sensitivity is NaN throughout when there is no lesion.

    Example:
        >>> fppi, sens, t = froc_from_scores([0.9, np.nan], [0.9, 0.5], n_images=2)
        >>> fppi.tolist(), sens.tolist(), t.tolist()
        ([0.5, 1.0], [0.5, 0.5], [0.9, 0.5])
    """
    if isinstance(n_images, bool) or not isinstance(n_images, (int, np.integer)) or n_images < 1:
        raise ValueError(f"`n_images` must be a positive integer, received {n_images!r}")
    hit_scores = np.asarray(hit_scores, dtype=np.float64).ravel()
    found = np.sort(hit_scores[~np.isnan(hit_scores)])
    fp_scores = np.sort(np.asarray(false_positive_scores, dtype=np.float64).ravel())
    thresholds = np.unique(np.concatenate([found, fp_scores]))[::-1]
    # Operating point at threshold t: every candidate scoring >= t is kept.
    fppi = (len(fp_scores) - np.searchsorted(fp_scores, thresholds, "left")) / n_images
    if len(hit_scores) == 0:
        return fppi, np.full(len(thresholds), np.nan), thresholds
    sens = (len(found) - np.searchsorted(found, thresholds, "left")) / len(hit_scores)
    return fppi, sens, thresholds


def sensitivity_at_rates(
    fppi: np.ndarray, sensitivity: np.ndarray, fp_rates: Sequence[float] = FROC_FP_RATES
) -> dict[float, float]:
    """Best sensitivity among operating points with at most ``rate`` false positives per image.

    A step function of the rate (0 where no operating point qualifies; NaN without lesions).
    MONAI's `compute_froc_score` interpolates linearly instead, so the two differ between
    operating points; `froc_at_rates(..., method="monai")` gives MONAI's values.

    Example:
        >>> sensitivity_at_rates(np.array([0.0, 1.0]), np.array([0.5, 1.0]), (0.5, 1))
        {0.5: 0.5, 1.0: 1.0}
    """
    no_lesion = len(sensitivity) > 0 and bool(np.all(np.isnan(sensitivity)))
    result = {}
    for rate in fp_rates:
        ok = fppi <= rate
        if no_lesion:
            result[float(rate)] = float("nan")
        else:
            result[float(rate)] = float(sensitivity[ok].max()) if ok.any() else 0.0
    return result


FROC_METHODS = ("step", "monai")


def froc_at_rates(
    hit_scores: Any,
    false_positive_scores: Any,
    n_images: int,
    fp_rates: Sequence[float] = FROC_FP_RATES,
    *,
    method: str = "step",
) -> dict[float, float]:
    """Lesion sensitivity at each false-positive rate, from pooled scores (`froc_from_scores`).

    Two definitions are in use, and they differ between operating points:

    * ``"step"`` (mammoseg's): the best sensitivity among score thresholds with at most r false
      positives per image, 0 if none. Every distinct score is an operating point.
    * ``"monai"``: MONAI's ``compute_froc_curve_data`` + ``compute_froc_score`` (the CAMELYON16
      evaluation). A missed lesion scores 0; the operating points are every distinct score but
      the lowest, plus (0 false positives, 0 sensitivity); the sensitivity at r is linearly
      interpolated between them (and held constant past the last one). Use it to compare with
      published FROC scores computed with MONAI.

    Returns:
        ``{fp_rate: sensitivity}``; NaN throughout without lesions.

    Raises:
        ValueError: an unknown ``method`` (or bad ``n_images``).

    Example:
        >>> hits, fps = [0.9, 0.6], [0.8, 0.7]  # two lesions, two false positives, 2 images
        >>> froc_at_rates(hits, fps, 2, (0.5, 1.0), method="step")
        {0.5: 0.5, 1.0: 1.0}
        >>> froc_at_rates(hits, fps, 2, (0.5, 1.0), method="monai")
        {0.5: 0.5, 1.0: 0.5}
    """
    check_choice("method", method, FROC_METHODS)
    fppi, sens, _ = froc_from_scores(hit_scores, false_positive_scores, n_images)
    if len(np.asarray(hit_scores).ravel()) == 0:
        return {float(rate): float("nan") for rate in fp_rates}
    if method == "step":
        return sensitivity_at_rates(fppi, sens, fp_rates)
    hits = np.nan_to_num(np.asarray(hit_scores, dtype=np.float64).ravel(), nan=0.0)
    fps = np.asarray(false_positive_scores, dtype=np.float64).ravel()
    # MONAI's thresholds: the distinct scores (a missed lesion's 0 among them) but the lowest.
    thresholds = np.unique(np.concatenate([hits, fps]))[1:]
    fppi = np.array([(fps >= t).sum() for t in thresholds] + [0]) / n_images
    sens = np.array([(hits >= t).sum() for t in thresholds] + [0]) / len(hits)
    values = np.interp(fp_rates, fppi[::-1], sens[::-1])
    return {float(rate): float(v) for rate, v in zip(fp_rates, values)}


def froc(
    y_true: Sequence[Any],
    y_pred: Sequence[Any],
    fp_rates: Sequence[float] = FROC_FP_RATES,
    threshold: float = 0.5,
    *,
    method: str = "step",
    min_iou: float | None = None,
) -> dict[float, float]:
    """Lesion sensitivity at each false-positive rate per image (default 0.25 … 8).

    The one FROC of mammoseg: the recipe's candidates and Mask R-CNN's detections
    (`mammoseg.models.mask_rcnn.evaluate.froc_inputs`, with ``min_iou=0.5``) both go through it.
    The sensitivity at rate r is the best one among score thresholds with at most r false
    positives per image (0 if none); NaN when no image has a lesion. ``method="monai"`` gives
    MONAI's linearly interpolated definition instead (`froc_at_rates`).

    Args:
        y_true: per image, the truth lesions, as `match_lesions` takes them (a mask, a list of
            `Lesion` and/or per-lesion masks, or None for a normal image).
        y_pred: per image, the candidates: a list of `Region` or a probability map.
        fp_rates: false positives per image at which to read the sensitivity.
        threshold: region threshold for probability maps.
        method: "step" (mammoseg's) or "monai".
        min_iou: None: a region sharing a pixel with a lesion hits it; a number: a region whose
            mask IoU with the lesion reaches it (lesions given as masks).

    Returns:
        ``{fp_rate: sensitivity}``; the mean of the values is the usual one-number FROC score.

    Raises:
        ValueError: ``y_true`` and ``y_pred`` differ in length or are empty, an unknown
            ``method``, or a bad ``min_iou``.

    Example:
        >>> froc([[lesion_a], []], [prob_a, prob_b])  # doctest: +SKIP
        {0.25: 0.0, 0.5: 1.0, 1.0: 1.0, 2.0: 1.0, 4.0: 1.0, 8.0: 1.0}
    """
    check_choice("method", method, FROC_METHODS)
    hit_scores, fp_scores, n_images = _pooled_scores(y_true, y_pred, threshold, min_iou)
    return froc_at_rates(hit_scores, fp_scores, n_images, fp_rates, method=method)


def lesion_sensitivity_at_fppi(
    y_true: Sequence[Any],
    y_pred: Sequence[Any],
    fppi: float = 1.0,
    threshold: float = 0.5,
    *,
    min_iou: float | None = None,
) -> float:
    """`froc` at one false-positive rate per image."""
    return froc(y_true, y_pred, (fppi,), threshold, min_iou=min_iou)[float(fppi)]


__all__ = [
    "FROC_FP_RATES",
    "FROC_METHODS",
    "LesionMatch",
    "Region",
    "froc",
    "froc_at_rates",
    "froc_curve",
    "froc_from_scores",
    "lesion_sensitivity_at_fppi",
    "match_lesions",
    "regions_from_probability",
    "sensitivity_at_rates",
]
