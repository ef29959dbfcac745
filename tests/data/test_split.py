"""Patient-level train / validation / test split, and K folds for cross-validation."""

from collections import Counter

import pytest

from mammoseg.data.errors import MammosegDataError
from mammoseg.data.mias import read_mias
from mammoseg.data.records import Lesion, Record
from mammoseg.data.split import Fold, kfold_by_patient, split_by_patient


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


# ---------------------------------------------------------------- K folds


def lesion_images(part):
    return sum(r.has_lesion() for r in part)


def check_folds(records, folds):
    # Every image is tested exactly once, and the test parts are disjoint by patient.
    tested = [r.image_id for fold in folds for r in fold.test]
    assert sorted(tested) == sorted(r.image_id for r in records)
    for k, fold in enumerate(folds):
        assert isinstance(fold, Fold)
        check_partition(records, fold)  # train, val and test of a fold: disjoint by patient
        for other in folds[k + 1 :]:
            assert not patients(fold.test) & patients(other.test)


@pytest.mark.parametrize("n_folds", [2, 3, 5, 10])
def test_folds_partition_the_images_by_patient(n_folds):
    records = make_records(47, positive=set(range(0, 47, 3)))  # 16 lesion patients
    check_folds(records, kfold_by_patient(records, n_folds, seed=2))


def test_folds_are_stratified_and_balanced():
    # 23 lesion patients (one lesion image each) into 5 folds: 5, 5, 5, 4, 4; the 77 others
    # make every fold 20 patients.
    records = make_records(100, positive=set(range(0, 100, 5)) | {1, 2, 3})
    folds = kfold_by_patient(records, 5, seed=0)
    assert sorted(lesion_images(fold.test) for fold in folds) == [4, 4, 5, 5, 5]
    assert [len(patients(fold.test)) for fold in folds] == [20] * 5


def test_patients_with_several_lesion_images_are_spread():
    # Patients 0-5 have a lesion on both sides (2 lesion images), 6-13 on one side: 20 lesion
    # images; 4 folds get 5 each, which only works if the two-image patients are dealt first.
    records = make_records(40, positive=set(range(14)))
    for record in records:
        if int(record.patient_id[3:]) < 6 and record.laterality == "R":
            object.__setattr__(
                record, "lesions", (Lesion("mass", "benign", center=(9.0, 9.0), radius=4.0),)
            )
    assert lesion_images(records) == 20
    for seed in range(4):
        folds = kfold_by_patient(records, 4, seed=seed)
        check_folds(records, folds)
        assert [lesion_images(fold.test) for fold in folds] == [5, 5, 5, 5]


def test_validation_is_chosen_inside_the_training_patients():
    records = make_records(40, positive=set(range(0, 40, 2)))  # 20 lesion patients
    for fold in kfold_by_patient(records, 5, seed=1):
        # 32 training patients, a quarter of them (8) for validation: 60/20/20 overall.
        assert len(patients(fold.train)) == 24 and len(patients(fold.val)) == 8
        assert lesion_images(fold.train) == 12 and lesion_images(fold.val) == 4
    # 4 folds: 30 training patients, 15 of each stratum; half of 15 rounds to 8 for train
    # (largest remainder, ties to the first part) and 7 for validation, twice.
    halves = kfold_by_patient(records, 4, seed=1, val_fraction=0.5)
    assert {len(patients(fold.val)) for fold in halves} == {14}


def test_folds_deterministic_per_seed_and_different_across_seeds():
    records = make_records(30, positive=set(range(0, 30, 3)))
    first = kfold_by_patient(records, 3, seed=4)
    assert kfold_by_patient(records, 3, seed=4) == first
    tests = {
        tuple(sorted(patients(kfold_by_patient(records, 3, seed=s)[0].test))) for s in range(5)
    }
    assert len(tests) == 5


def test_fold_strata_follow_kinds():
    records = make_records(12, positive={1, 5, 9}, kind="calcification")
    folds = kfold_by_patient(records, 3, kinds=None)
    assert [lesion_images_of(fold.test, None) for fold in folds] == [1, 1, 1]
    with pytest.raises(ValueError, match="patients with a lesion \\(0\\)"):
        kfold_by_patient(records, 3)  # no mass: no fold could hold one


def lesion_images_of(part, kinds):
    return sum(r.has_lesion(kinds) for r in part)


@pytest.mark.parametrize(
    "n_folds, pattern",
    [
        (0, r"`n_folds` must be an integer >= 2, received 0"),
        (1, r"`n_folds` must be an integer >= 2, received 1"),
        (2.0, r"`n_folds` must be an integer >= 2, received 2.0"),
        (True, r"`n_folds` must be an integer >= 2, received True"),
        (11, r"`n_folds` must be at most the number of patients \(10\).*received 11"),
        (4, r"`n_folds` must be at most the number of patients with a lesion \(3\).*received 4"),
    ],
)
def test_invalid_fold_counts(n_folds, pattern):
    with pytest.raises(ValueError, match=pattern):
        kfold_by_patient(make_records(10, positive={1, 4, 7}), n_folds)


@pytest.mark.parametrize("val_fraction", [0.0, 1.0, -0.2])
def test_invalid_val_fraction(val_fraction):
    with pytest.raises(
        ValueError, match=f"`val_fraction` must be in \\(0, 1\\), received {val_fraction}"
    ):
        kfold_by_patient(make_records(10, positive={1, 4, 7}), 2, val_fraction=val_fraction)


def test_folds_of_no_records():
    with pytest.raises(MammosegDataError, match="cannot split an empty list of records"):
        kfold_by_patient([], 2)


def test_real_mias_folds(mias_dev):
    records = read_mias(mias_dev)
    folds = kfold_by_patient(records, 5, seed=0)
    check_folds(records, folds)
    # 55 women, 19 with a mass on 20 images: 11 women and 4 mass images in each test fold.
    assert [len(patients(fold.test)) for fold in folds] == [11] * 5
    assert [lesion_images(fold.test) for fold in folds] == [4] * 5
