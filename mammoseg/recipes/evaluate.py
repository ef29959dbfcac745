"""Evaluate a recipe model on records, in the original images' pixels.

Every prediction is mapped back through its crop box to the full image before it is scored, so
Dice is against the truth as the database draws it (circles for mini-MIAS) and FROC uses the
database's own lesion centres and radii (a hit is a candidate whose centroid lies inside a truth
circle, facts.md §6).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from mammoseg.data import Record, load_mask
from mammoseg.data.phantom import lesion_contrast
from mammoseg.data.records import read_pixels
from mammoseg.metrics import (
    FROC_FP_RATES,
    Region,
    dice_from_counts,
    froc,
    froc_at_rates,
    match_lesions,
)
from mammoseg.recipes.candidates import (
    DEFAULT_THRESHOLDS,
    extract_candidates,
    overlap_counts,
    region_limited_counts,
)
from mammoseg.recipes.inference import Predictor
from mammoseg.recipes.preprocess import WorkingImage, preprocess_image


@dataclass
class Evaluation:
    """Per-image results of one split, enough to score any of ``thresholds``.

    Attributes:
        thresholds: mask thresholds the counts were taken at.
        image_ids: the images, in order.
        counts: per image, (len(thresholds), 3) TP/FP/FN pixel counts.
        candidates: per image, the lesion candidates (original pixels).
        truths: per image, what `mammoseg.metrics.froc` takes as truth (a list of `Lesion`s, or
            the mask when a lesion has no circle).
        kept: probability maps (original pixels) of the images asked for, by image id.
        radii: per image, the radius of its largest lesion of the chosen kinds scaled to a
            1024-pixel long side (NaN when it has none or the source gives no radius).
        mask_regions: the predictor's region limit that ``counts`` were taken with.
        limited_counts: per image, {k: counts} with only the mask's k best regions kept
            (`region_limited_counts`), for the choices asked for (else empty).
        contrasts: per image, the MIAS contrast of that lesion (mean inside its circle minus
            the mean of the ring r..1.5r, over the ring's standard deviation; NaN without one).
    """

    thresholds: tuple[float, ...]
    image_ids: list[str] = field(default_factory=list)
    counts: list[np.ndarray] = field(default_factory=list)
    candidates: list[list[Region]] = field(default_factory=list)
    truths: list = field(default_factory=list)
    kept: dict[str, np.ndarray] = field(default_factory=dict)
    radii: list[float] = field(default_factory=list)
    contrasts: list[float] = field(default_factory=list)
    limited_counts: list[dict[int, np.ndarray]] = field(default_factory=list)
    mask_regions: int | None = None


# Mass bands by mini-MIAS's quartiles (facts.md §4): radius at a 1024-pixel long side, and
# contrast (a mass is often barely brighter than the ring of tissue around it).
SIZE_BANDS = {"small": (0.0, 29.0), "medium": (29.0, 64.0), "large": (64.0, np.inf)}
CONTRAST_BANDS = {"low": (-np.inf, 0.75), "medium": (0.75, 1.56), "high": (1.56, np.inf)}


def _largest_circle(record: Record, kinds):
    circles = [
        les for les in record.lesions if les.kind in kinds and les.radius and les.center is not None
    ]
    return max(circles, key=lambda les: les.radius) if circles else None


def _largest_radius(record: Record, kinds, shape) -> float:
    radii = [les.radius for les in record.lesions if les.kind in kinds and les.radius]
    return max(radii) * 1024.0 / max(shape) if radii else float("nan")


def _largest_contrast(record: Record, kinds, image: np.ndarray) -> float:
    lesion = _largest_circle(record, kinds)
    if lesion is None:
        return float("nan")
    return lesion_contrast(image, lesion.center, lesion.radius)


def _froc_truth(record: Record, kinds, mask: np.ndarray):
    lesions = [les for les in record.lesions if les.kind in kinds and les.has_region]
    if all(les.center is not None and les.radius is not None for les in lesions):
        return lesions
    return mask


def evaluate_records(
    predictor: Predictor,
    records: Sequence[Record],
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    keep: Sequence[str] = (),
    region_choices: Sequence[int] = (),
    rescore: Callable[[WorkingImage, np.ndarray, list[Region]], list[Region]] | None = None,
) -> Evaluation:
    """Predict every record and collect counts, candidates and truths.

    Args:
        predictor: the trained model and its settings (its ``mask_regions`` limit applies to
            ``counts``).
        records: the images to score.
        thresholds: mask thresholds to count at (one, or a sweep for the validation split).
        keep: image ids whose probability maps are kept (for figures).
        region_choices: region limits to count at as well, into ``limited_counts`` (the
            validation split's choice of post-processing).
        rescore: called with (working image, its working-resolution probability map, the
            image's candidates) and returning them with new scores: a second stage such as
            `mammoseg.recipes.fp_reduction.CandidateClassifier.rescore` (the mask is unchanged).
    """
    config = predictor.config
    result = Evaluation(tuple(float(t) for t in thresholds), mask_regions=config.mask_regions)
    for record in records:
        image = read_pixels(record.path)
        work = preprocess_image(image, config)
        prob_work = predictor.predict_working(work)
        prob = work.crop.to_original(prob_work)
        truth = load_mask(record, image.shape, kinds=config.kinds)
        min_area = config.min_candidate_area / config.scale_for(image.shape) ** 2
        result.image_ids.append(record.image_id)
        # One labelling per threshold serves the predictor's own limit and the choices.
        limits = set(region_choices) | {config.mask_regions} - {None}
        limited = (
            region_limited_counts(prob, truth, result.thresholds, sorted(limits)) if limits else {}
        )
        if config.mask_regions is None:
            result.counts.append(overlap_counts(prob, truth, result.thresholds))
        else:
            result.counts.append(limited[config.mask_regions])
        if region_choices:
            result.limited_counts.append({k: limited[k] for k in region_choices})
        candidates = extract_candidates(prob, config.candidate_threshold, int(np.ceil(min_area)))
        if rescore is not None:
            candidates = rescore(work, prob_work, candidates)
        result.candidates.append(candidates)
        result.truths.append(_froc_truth(record, config.kinds, truth))
        result.radii.append(_largest_radius(record, config.kinds, image.shape))
        result.contrasts.append(_largest_contrast(record, config.kinds, image))
        if record.image_id in keep:
            result.kept[record.image_id] = prob
    return result


def with_region_limit(evaluation: Evaluation, mask_regions: int | None) -> Evaluation:
    """The same evaluation scored with only the mask's ``mask_regions`` best regions kept
    (``None``, or the limit it was taken with: the evaluation itself).

    Raises:
        ValueError: that limit was not counted (``region_choices`` of `evaluate_records`).
    """
    if mask_regions is None or mask_regions == evaluation.mask_regions:
        return evaluation
    if not evaluation.limited_counts or mask_regions not in evaluation.limited_counts[0]:
        counted = sorted(evaluation.limited_counts[0]) if evaluation.limited_counts else []
        raise ValueError(
            f"`mask_regions` {mask_regions} was not counted; counted limits: {counted}"
        )
    return replace(
        evaluation,
        counts=[c[mask_regions] for c in evaluation.limited_counts],
        mask_regions=mask_regions,
    )


def split_metrics(evaluation: Evaluation, threshold: float) -> dict:
    """The issue's numbers for one split at one mask threshold.

    Returns:
        dict with ``dice_per_image_mean`` (over images with a lesion), ``dice_pooled``,
        ``foreground_iou`` (pooled), ``empty_prediction_rate`` (share of images with a lesion
        whose mask is empty), ``lesion_sensitivity_at_1fppi``, ``froc`` ({fp per image:
        sensitivity}), ``froc_mean``, ``n_images``, ``n_images_with_lesion``, ``n_lesions``,
        ``dice_by_size`` ({band: [Dice/image, images]} by the largest lesion's radius at a
        1024-pixel long side, bands `SIZE_BANDS`), ``dice_by_contrast`` (the same by that
        lesion's contrast, bands `CONTRAST_BANDS`) and ``threshold``. Definitions as in
        `mammoseg.metrics`.

    Raises:
        ValueError: ``threshold`` is not one of the evaluation's thresholds.
    """
    column = _threshold_index(evaluation, threshold)
    counts = np.stack([c[column] for c in evaluation.counts])  # (N, 3)
    tp, fp, fn = (counts[:, k].astype(np.float64) for k in range(3))
    has_lesion = tp + fn > 0
    dice = dice_from_counts(counts)
    pooled_den = tp.sum() + fp.sum() + fn.sum()
    rates = froc(evaluation.truths, evaluation.candidates, FROC_FP_RATES)
    n_lesions = sum(len(t) if isinstance(t, list) else int(np.any(t)) for t in evaluation.truths)

    def mean_or_none(values):
        return float(np.mean(values)) if len(values) else None

    return {
        "dice_per_image_mean": mean_or_none(dice[has_lesion]),
        "dice_pooled": float(2 * tp.sum() / max(2 * tp.sum() + fp.sum() + fn.sum(), 1)),
        "foreground_iou": float(tp.sum() / pooled_den) if pooled_den else None,
        "empty_prediction_rate": mean_or_none(((tp + fp) == 0)[has_lesion]),
        "lesion_sensitivity_at_1fppi": _finite(rates[1.0]),
        "froc": {str(k): _finite(v) for k, v in rates.items()},
        "froc_mean": _finite(float(np.mean(list(rates.values())))),
        "n_images": int(len(counts)),
        "n_images_with_lesion": int(has_lesion.sum()),
        "n_lesions": int(n_lesions),
        "false_positive_pixels_on_normals": int(fp[~has_lesion].sum()),
        "dice_by_size": _dice_by_band(dice, has_lesion, evaluation.radii, SIZE_BANDS),
        "dice_by_contrast": _dice_by_band(dice, has_lesion, evaluation.contrasts, CONTRAST_BANDS),
        "threshold": float(threshold),
        "mask_regions": evaluation.mask_regions,
    }


def _dice_by_band(
    dice: np.ndarray, has_lesion: np.ndarray, values: Sequence[float], bands: dict
) -> dict:
    values = np.asarray(values, dtype=np.float64)
    if values.shape != dice.shape:  # an Evaluation built by hand, without these values
        return {}
    out = {}
    for band, (low, high) in bands.items():
        chosen = has_lesion & (values >= low) & (values < high)
        out[band] = [float(np.mean(dice[chosen])) if chosen.any() else None, int(chosen.sum())]
    return out


@dataclass(frozen=True)
class ImageScores:
    """Per-image results of a scored split at its mask threshold, enough to recompute the pooled
    metrics over any subset of the images: one fold, every fold's test images together, or a
    bootstrap resample of patients (`mammoseg.metrics.bootstrap_interval`).

    Attributes:
        image_ids, patient_ids: per image.
        counts: (N, 3) TP, FP, FN mask pixels at the threshold.
        hit_scores: per image, per truth lesion, the best score of a candidate that hits it
            (NaN: missed), as `mammoseg.metrics.match_lesions` gives it.
        false_positive_scores: per image, the scores of the candidates that hit no lesion.

    Example:
        >>> scores = image_scores(evaluation, 0.5, patient_ids)  # doctest: +SKIP
        >>> scores.metrics()["froc"][1.0]  # sensitivity at 1 false positive per image
        0.5
    """

    image_ids: tuple[str, ...]
    patient_ids: tuple[str, ...]
    counts: np.ndarray
    hit_scores: tuple[np.ndarray, ...]
    false_positive_scores: tuple[np.ndarray, ...]

    def __post_init__(self) -> None:
        n = len(self.image_ids)
        counts = np.asarray(self.counts, dtype=np.int64).reshape(-1, 3)
        lengths = {
            "patient_ids": len(self.patient_ids),
            "counts": len(counts),
            "hit_scores": len(self.hit_scores),
            "false_positive_scores": len(self.false_positive_scores),
        }
        wrong = {name: length for name, length in lengths.items() if length != n}
        if wrong:
            raise ValueError(f"one entry per image ({n} image ids) expected, received {wrong}")
        object.__setattr__(self, "counts", counts)
        for name in ("hit_scores", "false_positive_scores"):
            arrays = tuple(np.asarray(a, dtype=np.float64).ravel() for a in getattr(self, name))
            object.__setattr__(self, name, arrays)

    def __len__(self) -> int:
        return len(self.image_ids)

    def metrics(
        self, indices: Sequence[int] | None = None, fp_rates: Sequence[float] = FROC_FP_RATES
    ) -> dict:
        """The pooled metrics of the images at ``indices`` (repeats count again; None: all).

        Returns:
            dict with ``dice_per_image_mean`` and ``empty_prediction_rate`` (over images with
            truth pixels), ``dice_pooled``, ``froc`` ({fp rate: lesion sensitivity}, pooled
            over the images as `split_metrics` does), ``froc_mean``, ``n_images``,
            ``n_images_with_lesion`` and ``n_lesions``; NaN where undefined (no lesion).
        """
        indices = np.arange(len(self)) if indices is None else np.asarray(indices, np.int64)
        counts = self.counts[indices]
        tp, fp, fn = counts[:, 0], counts[:, 1], counts[:, 2]
        has_lesion = tp + fn > 0
        dice = dice_from_counts(counts)
        # Each image's scores as often as the image is drawn.
        times = np.bincount(indices, minlength=len(self))
        hits = np.repeat(*self._flat("hit_scores", times))
        false_positives = np.repeat(*self._flat("false_positive_scores", times))
        rates = froc_at_rates(hits, false_positives, max(len(indices), 1), fp_rates)
        nan = float("nan")
        pooled = 2 * tp.sum() + fp.sum() + fn.sum()
        return {
            "dice_per_image_mean": float(dice[has_lesion].mean()) if has_lesion.any() else nan,
            "empty_prediction_rate": float(((tp + fp) == 0)[has_lesion].mean())
            if has_lesion.any()
            else nan,
            "dice_pooled": float(2 * tp.sum() / pooled) if pooled else nan,
            "froc": rates,
            "froc_mean": float(np.mean(list(rates.values()))),
            "n_images": int(len(indices)),
            "n_images_with_lesion": int(has_lesion.sum()),
            "n_lesions": int(len(hits)),
        }

    def _flat(self, name: str, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        arrays = getattr(self, name)
        flat = np.concatenate([*arrays, np.zeros(0)])
        owner = np.repeat(np.arange(len(arrays)), [len(a) for a in arrays])
        return flat, times[owner]

    def subset(self, indices: Sequence[int]) -> ImageScores:
        """The images at ``indices``, in that order."""
        return ImageScores(
            tuple(self.image_ids[i] for i in indices),
            tuple(self.patient_ids[i] for i in indices),
            self.counts[list(indices)],
            tuple(self.hit_scores[i] for i in indices),
            tuple(self.false_positive_scores[i] for i in indices),
        )

    @classmethod
    def concatenate(cls, parts: Sequence[ImageScores]) -> ImageScores:
        """Several splits' images as one (e.g. the test images of every fold).

        Raises:
            ValueError: no parts, or an image in two of them.
        """
        if not parts:
            raise ValueError("`parts` must hold at least one ImageScores, received none")
        ids = [i for part in parts for i in part.image_ids]
        twice = sorted({i for i in ids if ids.count(i) > 1})
        if twice:
            raise ValueError(f"images scored more than once: {twice[:10]}")
        return cls(
            tuple(ids),
            tuple(p for part in parts for p in part.patient_ids),
            np.concatenate([part.counts for part in parts]),
            tuple(a for part in parts for a in part.hit_scores),
            tuple(a for part in parts for a in part.false_positive_scores),
        )

    def to_rows(self) -> list[dict]:
        """One JSON-ready dict per image: ids, counts, its Dice (None without truth pixels),
        whether its mask is empty, lesions found at any score, and the candidate scores
        (a missed lesion's score is None)."""
        dice = dice_from_counts(self.counts)
        rows = []
        for k, image_id in enumerate(self.image_ids):
            tp, fp, fn = (int(v) for v in self.counts[k])
            hits = self.hit_scores[k]
            rows.append(
                {
                    "image_id": image_id,
                    "patient_id": self.patient_ids[k],
                    "tp": tp,
                    "fp": fp,
                    "fn": fn,
                    "dice": None if np.isnan(dice[k]) else float(dice[k]),
                    "empty_mask": tp + fp == 0,
                    "lesions": len(hits),
                    "lesions_found": int(np.sum(~np.isnan(hits))),
                    "lesion_scores": [None if np.isnan(v) else float(v) for v in hits],
                    "false_positive_scores": [float(v) for v in self.false_positive_scores[k]],
                }
            )
        return rows

    @classmethod
    def from_rows(cls, rows: Sequence[dict]) -> ImageScores:
        """Rebuild from `to_rows` (e.g. read back from a finished fold's result.json)."""
        return cls(
            tuple(row["image_id"] for row in rows),
            tuple(row["patient_id"] for row in rows),
            np.array([[row["tp"], row["fp"], row["fn"]] for row in rows], dtype=np.int64),
            tuple(
                np.array([np.nan if v is None else v for v in row["lesion_scores"]], np.float64)
                for row in rows
            ),
            tuple(np.array(row["false_positive_scores"], np.float64) for row in rows),
        )


def image_scores(
    evaluation: Evaluation, threshold: float, patient_ids: Sequence[str]
) -> ImageScores:
    """The per-image `ImageScores` of an evaluation at one of its mask thresholds.

    Args:
        evaluation: from `evaluate_records`.
        threshold: one of ``evaluation.thresholds`` (the validation-chosen one).
        patient_ids: per image of the evaluation, its patient (``record.patient_id``).

    Raises:
        ValueError: ``threshold`` was not evaluated, or ``patient_ids`` has another length.

    Example:
        >>> scores = image_scores(test_eval, 0.5, [r.patient_id for r in test])  # doctest: +SKIP
    """
    column = _threshold_index(evaluation, threshold)
    matches = [
        match_lesions(y_true=truth, y_pred=candidates)
        for candidates, truth in zip(evaluation.candidates, evaluation.truths)
    ]
    return ImageScores(
        tuple(evaluation.image_ids),
        tuple(patient_ids),
        np.stack([c[column] for c in evaluation.counts]) if evaluation.counts else np.zeros((0, 3)),
        tuple(m.hit_scores for m in matches),
        tuple(m.false_positive_scores for m in matches),
    )


def _threshold_index(evaluation: Evaluation, threshold: float) -> int:
    matches = [k for k, t in enumerate(evaluation.thresholds) if abs(t - threshold) < 1e-9]
    if not matches:
        raise ValueError(
            f"`threshold` {threshold} was not evaluated; available: {evaluation.thresholds}"
        )
    return matches[0]


def _finite(value: float) -> float | None:
    return None if value is None or not np.isfinite(value) else float(value)


__all__ = [
    "CONTRAST_BANDS",
    "SIZE_BANDS",
    "Evaluation",
    "ImageScores",
    "evaluate_records",
    "image_scores",
    "split_metrics",
    "with_region_limit",
]
