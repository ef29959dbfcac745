"""Patient-level splits: one train / validation / test split, or K folds for cross-validation.

The authors split per Info.txt *line* with `train_test_split(train_size=0.6, random_state=42)`
and then 50/50 (facts.md §1): an image with two lesion lines could land in train and test, and
the two breasts of one woman routinely did. Here whole patients go to one part, and the split is
stratified so that each part gets its share of patients with a lesion.

`split_by_patient` makes the one split (60/20/20); `kfold_by_patient` makes K folds, each a
test part of its own patients and a train / validation split of the others, so that every image
is tested exactly once and no choice (epoch, threshold) ever sees the fold's test patients.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from mammoseg.data.errors import MammosegDataError
from mammoseg.data.records import Record


def _validate_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    if len(fractions) != 3 or any(not 0 <= f <= 1 for f in fractions):
        raise ValueError(
            "`fractions` must be three numbers in [0, 1] (train, val, test), "
            f"received {fractions!r}"
        )
    if abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(
            f"`fractions` must sum to 1, received {fractions!r} (sum {sum(fractions)})"
        )
    return tuple(float(f) for f in fractions)


def _allocate(n: int, fractions: tuple[float, float, float]) -> list[int]:
    """Largest-remainder allocation of n items to three parts."""
    exact = [n * f for f in fractions]
    counts = [int(np.floor(e)) for e in exact]
    order = np.argsort([-(e - c) for e, c in zip(exact, counts)], kind="stable")
    for i in order[: n - sum(counts)]:
        counts[i] += 1
    return counts


def _records_by_patient(records: Sequence[Record]) -> dict[str, list[int]]:
    by_patient: dict[str, list[int]] = defaultdict(list)
    for index, record in enumerate(records):
        by_patient[record.patient_id].append(index)
    return by_patient


def split_by_patient(
    records: Sequence[Record],
    fractions: Sequence[float] = (0.6, 0.2, 0.2),
    seed: int = 0,
    kinds: Sequence[str] | None = ("mass",),
) -> tuple[list[Record], list[Record], list[Record]]:
    """Split records into (train, val, test) with no patient in two parts.

    Patients are shuffled with ``seed`` within two strata, those with at least one image
    holding a lesion of ``kinds`` and those without, and each stratum is cut by ``fractions``,
    so every part receives lesion images whenever there are at least three such patients.

    Args:
        records: the mammograms.
        fractions: shares of patients for train, validation and test; they must sum to 1.
        seed: shuffling seed.
        kinds: lesion kinds that make a patient "with lesion" for the stratification
            (None: any kind).

    Returns:
        Three lists of records, each in the input order.

    Raises:
        ValueError: bad ``fractions``.
        MammosegDataError: no records.

    Example:
        >>> train, val, test = split_by_patient(records, seed=0)  # doctest: +SKIP
        >>> {r.patient_id for r in train} & {r.patient_id for r in test}
        set()
    """
    fractions = _validate_fractions(fractions)
    if not records:
        raise MammosegDataError("cannot split an empty list of records")
    by_patient = _records_by_patient(records)
    patients = sorted(by_patient)
    positive = [p for p in patients if any(records[i].has_lesion(kinds) for i in by_patient[p])]
    negative = [p for p in patients if p not in set(positive)]
    rng = np.random.default_rng(seed)
    part_of: dict[str, int] = {}
    for stratum in (positive, negative):
        order = list(rng.permutation(len(stratum)))
        counts = _allocate(len(stratum), fractions)
        # Every part gets a lesion patient when there are enough of them, even if rounding
        # would have left one part without.
        if stratum is positive and len(stratum) >= 3:
            for part in range(3):
                if counts[part] == 0 and fractions[part] > 0:
                    donor = int(np.argmax(counts))
                    counts[donor] -= 1
                    counts[part] += 1
        start = 0
        for part, count in enumerate(counts):
            for k in order[start : start + count]:
                part_of[stratum[k]] = part
            start += count
    parts: tuple[list[Record], list[Record], list[Record]] = ([], [], [])
    for record in records:
        parts[part_of[record.patient_id]].append(record)
    return parts


class Fold(NamedTuple):
    """One fold of `kfold_by_patient`: ``test`` holds the fold's own patients, ``train`` and
    ``val`` the other folds' patients, split again by patient (each list in the input order)."""

    train: list[Record]
    val: list[Record]
    test: list[Record]


def kfold_by_patient(
    records: Sequence[Record],
    n_folds: int = 5,
    *,
    seed: int = 0,
    kinds: Sequence[str] | None = ("mass",),
    val_fraction: float = 0.25,
) -> list[Fold]:
    """K folds for patient-level cross-validation: every image in exactly one test part.

    Patients are dealt to the folds in two strata, those with at least one image holding a
    lesion of ``kinds`` first, then the others. Within a stratum the patients are shuffled with
    ``seed``, ordered by how many images they bring (lesion images for the first stratum, all
    images for the second; the most first) and each goes to the fold that has the fewest such
    images so far (then the fewest patients, then the lowest index): the folds' lesion images
    differ by at most one patient's, and the patients without a lesion even out the folds'
    sizes as far as they can. Each fold's remaining patients
    are split into train and validation by `split_by_patient` (stratified the same way), so
    that the epoch and the threshold are chosen without the fold's test patients.

    Args:
        records: the mammograms.
        n_folds: number of folds K (at least 2, at most the number of patients with a lesion,
            so that every test part holds lesions).
        seed: shuffling seed (folds and the train / validation splits inside them).
        kinds: lesion kinds that make a patient "with lesion" (None: any kind).
        val_fraction: share of a fold's training patients kept for validation; 0.25 with
            K = 5 gives 60/20/20 of all patients, the shares of `split_by_patient`.

    Returns:
        ``n_folds`` `Fold` tuples (train, val, test); the test parts are disjoint by patient and
        together hold every record once.

    Raises:
        ValueError: ``n_folds`` is not an integer >= 2, or exceeds the patients (or the patients
            with a lesion); ``val_fraction`` outside (0, 1).
        MammosegDataError: no records.

    Example:
        >>> folds = kfold_by_patient(records, 5, seed=0)  # doctest: +SKIP
        >>> sum(len(fold.test) for fold in folds) == len(records)
        True
        >>> {r.patient_id for r in folds[0].train} & {r.patient_id for r in folds[0].test}
        set()
    """
    if isinstance(n_folds, bool) or not isinstance(n_folds, (int, np.integer)) or n_folds < 2:
        raise ValueError(f"`n_folds` must be an integer >= 2, received {n_folds!r}")
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"`val_fraction` must be in (0, 1), received {val_fraction!r}")
    if not records:
        raise MammosegDataError("cannot split an empty list of records")
    by_patient = _records_by_patient(records)
    patients = sorted(by_patient)
    lesion_images = {p: sum(records[i].has_lesion(kinds) for i in by_patient[p]) for p in patients}
    positive = [p for p in patients if lesion_images[p]]
    negative = [p for p in patients if not lesion_images[p]]
    for count, what in ((len(patients), "patients"), (len(positive), "patients with a lesion")):
        if n_folds > count:
            raise ValueError(
                f"`n_folds` must be at most the number of {what} ({count}), so that every "
                f"test fold holds one; received {n_folds}"
            )
    rng = np.random.default_rng(seed)
    fold_of: dict[str, int] = {}
    # Per fold: [lesion images, patients, images]; a stratum balances its own count first.
    load = np.zeros((n_folds, 3), dtype=np.int64)
    for stratum, order in ((positive, [0, 1, 2]), (negative, [2, 1, 0])):
        shuffled = [stratum[k] for k in rng.permutation(len(stratum))]
        brings = {p: (lesion_images[p], 1, len(by_patient[p])) for p in stratum}
        # Largest first (a stable sort keeps the shuffle among equals), each to the lightest fold.
        for patient in sorted(shuffled, key=lambda p: brings[p][order[0]], reverse=True):
            fold = min(range(n_folds), key=lambda k: (*load[k, order], k))
            fold_of[patient] = fold
            load[fold] += brings[patient]
    folds = []
    for k in range(n_folds):
        test = [r for r in records if fold_of[r.patient_id] == k]
        rest = [r for r in records if fold_of[r.patient_id] != k]
        train, val, _ = split_by_patient(
            rest, (1.0 - val_fraction, val_fraction, 0.0), seed=seed + k, kinds=kinds
        )
        folds.append(Fold(train, val, test))
    return folds
