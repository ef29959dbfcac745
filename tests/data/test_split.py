"""Patient-level train / validation / test split."""

from collections import Counter

import pytest

from mammoseg.data.errors import MammosegDataError
from mammoseg.data.mias import read_mias
from mammoseg.data.records import Lesion, Record
from mammoseg.data.split import split_by_patient


def make_records(n_patients, positive, kind="mass"):
    """Two images (R, L) per patient; patients in ``positive`` have a lesion on the left one."""
    records = []
    for p in range(n_patients):
        for side in ("R", "L"):
            lesions = ()
            if p in positive and side == "L":
                lesions = (Lesion(kind, "benign", center=(30.0, 30.0), radius=5.0),)
            records.append(
                Record(
                    f"img{p:03d}{side}",
                    f"pat{p:03d}",
                    "test",
                    f"img{p:03d}{side}.pgm",
                    laterality=side,
                    lesions=lesions,
                    shape=(64, 64),
                )
            )
    return records


def patients(part):
    return {r.patient_id for r in part}


def check_partition(records, parts):
    ids = [r.image_id for part in parts for r in part]
    assert sorted(ids) == sorted(r.image_id for r in records)  # each record exactly once
    a, b, c = (patients(part) for part in parts)
    assert not (a & b) and not (a & c) and not (b & c)
    position = {r.image_id: i for i, r in enumerate(records)}
    for part in parts:  # each part keeps the input order
        assert [position[r.image_id] for r in part] == sorted(position[r.image_id] for r in part)


def test_no_patient_in_two_parts_and_exact_shares():
    records = make_records(100, positive=set(range(0, 100, 5)) | set(range(1, 100, 5)))
    parts = split_by_patient(records, seed=0)
    check_partition(records, parts)
    # 40 lesion patients -> 24/8/8, 60 others -> 36/12/12: 60/20/20 patients, two images each.
    assert [len(patients(part)) for part in parts] == [60, 20, 20]
    assert [len(part) for part in parts] == [120, 40, 40]
    assert [sum(r.has_lesion() for r in part) for part in parts] == [24, 8, 8]


@pytest.mark.parametrize("fractions", [(0.7, 0.15, 0.15), (0.5, 0.25, 0.25), (0.34, 0.33, 0.33)])
def test_fractions_respected(fractions):
    records = make_records(47, positive=set(range(0, 47, 3)))  # 16 lesion patients, 31 others
    parts = split_by_patient(records, fractions=fractions, seed=1)
    check_partition(records, parts)
    for part, share in zip(parts, fractions):
        # Each of the two strata is off by less than one patient.
        assert abs(len(patients(part)) - 47 * share) < 2
        assert abs(sum(r.has_lesion() for r in part) - 16 * share) < 1


def test_every_part_gets_lesion_images_even_when_rounding_would_not():
    # 3 lesion patients at 80/10/10: rounding alone gives 3/0/0.
    records = make_records(30, positive={4, 11, 27})
    for seed in range(5):
        parts = split_by_patient(records, fractions=(0.8, 0.1, 0.1), seed=seed)
        check_partition(records, parts)
        assert [sum(r.has_lesion() for r in part) for part in parts] == [1, 1, 1]


def test_kinds_decide_the_strata():
    records = make_records(30, positive={4, 11, 27}, kind="calcification")
    parts = split_by_patient(records, fractions=(0.8, 0.1, 0.1), seed=0, kinds=None)
    assert [sum(r.has_lesion(None) for r in part) for part in parts] == [1, 1, 1]
    with pytest.raises(ValueError, match="`kinds`"):
        split_by_patient(records, kinds=["tumour"])


def test_deterministic_per_seed_and_different_across_seeds():
    records = make_records(40, positive=set(range(0, 40, 4)))
    first = split_by_patient(records, seed=3)
    assert split_by_patient(records, seed=3) == first
    trains = {tuple(sorted(patients(split_by_patient(records, seed=s)[0]))) for s in range(5)}
    assert len(trains) == 5


def test_zero_fraction_parts_are_empty():
    records = make_records(10, positive={1, 2, 3})
    train, val, test = split_by_patient(records, fractions=(1.0, 0.0, 0.0))
    assert len(train) == 20 and val == [] and test == []


def test_single_patient_goes_to_train():
    records = make_records(1, positive={0})
    train, val, test = split_by_patient(records)
    assert len(train) == 2 and val == [] and test == []


@pytest.mark.parametrize(
    "fractions, pattern",
    [
        ((0.6, 0.3, 0.3), r"`fractions` must sum to 1, received \(0.6, 0.3, 0.3\)"),
        ((0.5, 0.5), r"`fractions` must be three numbers in \[0, 1\] \(train, val, test\)"),
        ((0.25, 0.25, 0.25, 0.25), r"`fractions` must be three numbers"),
        ((1.2, -0.1, -0.1), r"`fractions` must be three numbers in \[0, 1\].*\(1.2, -0.1, -0.1\)"),
    ],
)
def test_invalid_fractions(fractions, pattern):
    with pytest.raises(ValueError, match=pattern):
        split_by_patient(make_records(4, positive={0}), fractions=fractions)


def test_empty_records():
    with pytest.raises(MammosegDataError, match="cannot split an empty list of records"):
        split_by_patient([])


def test_real_mias_split_keeps_both_breasts_together(mias_dev):
    records = read_mias(mias_dev)
    parts = split_by_patient(records, seed=0)
    check_partition(records, parts)
    for part in parts:
        per_patient = Counter(r.patient_id for r in part)
        assert set(per_patient.values()) == {2}  # both breasts of each woman, in one part
        assert any(r.has_lesion() for r in part)
    assert [len(patients(part)) for part in parts] == pytest.approx([33, 11, 11], abs=1)
