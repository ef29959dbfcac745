"""Patient-level train / validation / test split.

The authors split per Info.txt *line* with `train_test_split(train_size=0.6, random_state=42)`
and then 50/50 (facts.md §1): an image with two lesion lines could land in train and test, and
the two breasts of one woman routinely did. Here whole patients go to one part, and the split is
stratified so that each part gets its share of patients with a lesion.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

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
    by_patient: dict[str, list[int]] = defaultdict(list)
    for index, record in enumerate(records):
        by_patient[record.patient_id].append(index)
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
