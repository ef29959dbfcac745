"""Oversampling of large tumours and the authors' large-tumour subset (paper V.D)."""

import pytest

from mammoseg.data.mias import read_mias
from mammoseg.data.oversampling import authors_large_tumour_subset, lesion_size, oversample
from mammoseg.data.records import Lesion, Record

# Lattice points within r px of a pixel centre (what the masks count as area).
AREA = {5: 81, 12: 441, 15: 709}


def rec(name, *circles, kind="mass", shape=(100, 100)):
    lesions = tuple(Lesion(kind, "benign", center=c, radius=r) for c, r in circles)
    return Record(name, f"p_{name}", "test", f"{name}.pgm", lesions=lesions, shape=shape)


@pytest.fixture
def records():
    return [
        rec("normal"),
        rec("r10", ((50.0, 50.0), 10.0)),
        rec("r20", ((50.0, 50.0), 20.0)),
        rec("r60", ((50.0, 50.0), 60.0)),
        rec("calc80", ((50.0, 50.0), 80.0), kind="calcification"),
        rec("no_xy", kind="mass"),
    ]


def names(records):
    return [r.image_id for r in records]


def test_factor_3_repeats_exactly_the_large_records(records):
    out = oversample(records, threshold=15, factor=3)
    assert names(out[:6]) == names(records)  # the input first, in order
    assert names(out[6:]) == ["r20", "r60", "r20", "r60"]  # then factor - 1 more copies each
    assert out[6] is records[2]


def test_threshold_none_is_the_mean_radius(records):
    # Mass radii 10, 20, 60: mean 30, so only r60 is "above average large".
    assert names(oversample(records, factor=3)[6:]) == ["r60", "r60"]
    # With every kind the mean is (10 + 20 + 60 + 80) / 4 = 42.5: r60 and the calcification.
    assert names(oversample(records, factor=2, kinds=None)[6:]) == ["r60", "calc80"]


def test_threshold_is_strict(records):
    assert names(oversample(records, threshold=20, factor=2)[6:]) == ["r60"]


def test_factor_1_changes_nothing(records):
    out = oversample(records, threshold=0, factor=1)
    assert out == records and out is not records


def test_by_area_versus_by_radius():
    records = [
        rec("one15", ((50.0, 50.0), 15.0)),
        rec("two12", ((20.0, 20.0), 12.0), ((70.0, 70.0), 12.0)),  # disjoint discs
        rec("one5", ((50.0, 50.0), 5.0)),
    ]
    assert lesion_size(records[0]) == 15.0 and lesion_size(records[1]) == 12.0
    assert lesion_size(records[0], "area") == AREA[15] / 10_000
    assert lesion_size(records[1], "area") == 2 * AREA[12] / 10_000
    assert lesion_size(records[2], "area") == AREA[5] / 10_000
    # By radius one15 is the largest; by area two12 is (882 > 709 pixels).
    assert names(oversample(records, threshold=13, factor=2)[3:]) == ["one15"]
    assert names(oversample(records, threshold=0.08, factor=2, by="area")[3:]) == ["two12"]
    # Mean area (709 + 882 + 81) / 3 / 10^4 = 0.0557: both large records repeat.
    assert names(oversample(records, factor=2, by="area")[3:]) == ["one15", "two12"]


def test_lesion_size_without_lesion(records):
    assert lesion_size(records[0]) == 0.0 and lesion_size(records[0], "area") == 0.0
    assert lesion_size(records[5]) == 0.0  # a lesion without coordinates has no size
    assert lesion_size(records[4]) == 0.0 and lesion_size(records[4], kinds=None) == 80.0


def test_no_lesion_anywhere():
    plain = [rec("a"), rec("b")]
    assert oversample(plain, factor=3) == plain


def test_authors_large_tumour_subset(records):
    # Every kind counts, radius > 50: r60 and the calcification.
    assert names(authors_large_tumour_subset(records)) == ["r60", "calc80"]
    assert names(authors_large_tumour_subset(records, kinds=("mass",))) == ["r60"]
    assert names(authors_large_tumour_subset(records, min_radius=15)) == ["r20", "r60", "calc80"]


@pytest.mark.parametrize("factor", [0, -1, 2.0, "3", None])
def test_invalid_factor(records, factor):
    with pytest.raises(ValueError, match=r"`factor` must be an integer >= 1, received"):
        oversample(records, factor=factor)


def test_invalid_by(records):
    with pytest.raises(ValueError, match="`by` must be 'radius' or 'area', received 'volume'"):
        oversample(records, by="volume")
    with pytest.raises(ValueError, match="`by` must be 'radius' or 'area'"):
        lesion_size(records[1], by="diameter")


def test_invalid_by_is_reported_without_records():
    # Arguments are validated before the data is looked at, even when there is none.
    with pytest.raises(ValueError, match="`by` must be 'radius' or 'area', received 'volume'"):
        oversample([], by="volume")


def test_real_mias_large_tumour_subset(mias_dev):
    records = read_mias(mias_dev)
    # Lines of ../shared/data/mias-dev/Info.txt whose radius (7th field) exceeds 50:
    expected = [
        "mdb001",  # CIRC 197
        "mdb002",  # CIRC 69
        "mdb015",  # CIRC 68
        "mdb025",  # CIRC 79
        "mdb028",  # CIRC 56
        "mdb032",  # MISC 66
        "mdb081",  # ASYM 131
        "mdb105",  # ASYM 98
        "mdb107",  # ASYM 111
        "mdb110",  # ASYM 51
    ]
    assert names(authors_large_tumour_subset(records)) == expected
    assert names(authors_large_tumour_subset(records, kinds=("mass",))) == expected[:6]
    # Mean mass radius over the 20 mass images (largest circle each) is 51.55: above it are
    # mdb001, mdb002, mdb015, mdb025, mdb028 and mdb032.
    out = oversample(records, factor=3)
    assert len(out) == 110 + 2 * 6
    assert names(out[110:116]) == expected[:6]
