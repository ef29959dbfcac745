"""Bootstrap confidence intervals over patients: how far a pooled figure could move.

A figure pooled over test images (FROC, Dice per mass image) varies with which women happened to
be in the data. The images of one woman are not independent (the two breasts, one acquisition),
so the unit that is resampled is the patient: draw as many patients as there are, with
replacement, take all the images of each drawn patient (twice if she is drawn twice), recompute
the statistic, and repeat. The percentile interval of those replicates is the interval reported
(Efron & Tibshirani 1993, ch. 13; the cluster bootstrap of Field & Welsh 2007). A resample in
which the statistic is undefined (NaN, e.g. Dice per mass image when no drawn patient has a
mass) is left out of the interval and counted in ``n_undefined``.

Example:
    >>> values = np.array([0.2, 0.4, 0.9])
    >>> ci = bootstrap_interval(lambda i: values[i].mean(), ["a", "a", "b"], seed=0)
    >>> round(ci.low, 6), round(ci.high, 6)  # patient a's images average 0.3, b's 0.9
    (0.3, 0.9)
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

import numpy as np

from mammoseg.checks import check_positive_int


@dataclass(frozen=True)
class BootstrapInterval:
    """A statistic on all the data and its bootstrap percentile interval.

    ``estimate``, ``low`` and ``high`` are floats for a scalar statistic, arrays of its shape
    for a vector one (e.g. a FROC curve on a grid of false-positive rates).

    Attributes:
        estimate: the statistic on the data as it is.
        low, high: the ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` percentiles of the
            defined replicates (NaN where none is defined).
        confidence: e.g. 0.95.
        replicates: (n_resamples, ...) the statistic on every resample.
    """

    estimate: float | np.ndarray
    low: float | np.ndarray
    high: float | np.ndarray
    confidence: float
    replicates: np.ndarray

    @property
    def n_undefined(self) -> int | np.ndarray:
        """Resamples whose statistic is NaN (per element for a vector statistic)."""
        count = np.isnan(self.replicates).sum(axis=0)
        return int(count) if np.ndim(count) == 0 else count


def resample_patients(
    patient_ids: Sequence[Hashable], n_resamples: int, *, seed: int = 0
) -> list[np.ndarray]:
    """Image indices of ``n_resamples`` bootstrap resamples of patients.

    Each resample draws as many patients as there are, with replacement, and holds the indices
    of all the images of every drawn patient (repeated when she is drawn more than once), so
    its length varies with the patients drawn.

    Args:
        patient_ids: one patient id per image.
        n_resamples: how many resamples.
        seed: random seed; the same seed and ids give the same resamples.

    Returns:
        A list of ``n_resamples`` integer arrays of image indices.

    Raises:
        ValueError: no images, or ``n_resamples`` not a positive integer.

    Example:
        >>> [r.tolist() for r in resample_patients(["a", "a", "b"], 2, seed=1)]
        [[0, 1, 2], [2, 2]]
    """
    check_positive_int("n_resamples", n_resamples)
    if len(patient_ids) == 0:
        raise ValueError("`patient_ids` must hold at least one image's patient, received none")
    # Patients in order of first appearance, so the draws do not depend on how ids sort.
    images: dict[Hashable, list[int]] = {}
    for index, patient in enumerate(patient_ids):
        images.setdefault(patient, []).append(index)
    groups = [np.asarray(indices, dtype=np.int64) for indices in images.values()]
    draws = np.random.default_rng(seed).integers(0, len(groups), size=(n_resamples, len(groups)))
    return [np.concatenate([groups[g] for g in draw]) for draw in draws]


def bootstrap_interval(
    statistic: Callable[[np.ndarray], float | np.ndarray],
    patient_ids: Sequence[Hashable],
    *,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> BootstrapInterval:
    """Percentile bootstrap interval of ``statistic``, resampling patients with replacement.

    Args:
        statistic: takes an integer array of image indices (with repeats) and returns a float
            or a fixed-shape array, e.g. ``lambda i: dice[i][has_mass[i]].mean()``; NaN where
            undefined.
        patient_ids: one patient id per image (the images the indices refer to).
        n_resamples: bootstrap resamples (2000: the 2.5 % and 97.5 % percentiles then rest on
            50 replicates each).
        confidence: coverage of the interval, in (0, 1).
        seed: random seed of the resamples (`resample_patients`).

    Returns:
        A `BootstrapInterval`.

    Raises:
        ValueError: bad ``n_resamples`` or ``confidence``, no images, or a statistic whose
            shape changes between resamples.

    Example:
        >>> dice = np.array([0.5, 0.5, 0.5, 0.5])
        >>> ci = bootstrap_interval(lambda i: dice[i].mean(), ["p1", "p1", "p2", "p3"])
        >>> (float(ci.estimate), float(ci.low), float(ci.high))  # all alike: zero width
        (0.5, 0.5, 0.5)
    """
    check_positive_int("n_resamples", n_resamples)
    if isinstance(confidence, bool) or not 0.0 < confidence < 1.0:
        raise ValueError(f"`confidence` must be in (0, 1), received {confidence!r}")
    estimate = np.asarray(statistic(np.arange(len(patient_ids))), dtype=np.float64)
    replicates = np.empty((n_resamples, *estimate.shape), dtype=np.float64)
    for k, indices in enumerate(resample_patients(patient_ids, n_resamples, seed=seed)):
        value = np.asarray(statistic(indices), dtype=np.float64)
        if value.shape != estimate.shape:
            raise ValueError(
                f"`statistic` must return one shape for every resample: {estimate.shape} on "
                f"the data, {value.shape} on resample {k}"
            )
        replicates[k] = value
    tail = 100.0 * (1.0 - confidence) / 2.0
    with warnings.catch_warnings():  # an element undefined in every resample stays NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        low, high = np.nanpercentile(replicates, [tail, 100.0 - tail], axis=0)
    return BootstrapInterval(
        _scalar_or_array(estimate),
        _scalar_or_array(low),
        _scalar_or_array(high),
        float(confidence),
        replicates,
    )


def _scalar_or_array(value: np.ndarray) -> float | np.ndarray:
    return float(value) if value.ndim == 0 else value


__all__ = ["BootstrapInterval", "bootstrap_interval", "resample_patients"]
