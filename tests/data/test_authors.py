"""The authors' protocol: their leaky per-line split, last-circle masks and CBIS `== 255` masks."""

from math import ceil

import numpy as np
import pytest

from mammoseg.data import Lesion, MammosegDataError, Record, load_mask
from mammoseg.data.authors import authors_mask, last_lesion_only, per_line_split, twins
from mammoseg.data.pgm import write_pgm
from mammoseg.data.records import draw_circle


def _mass(center, radius=3.0):
    return Lesion("mass", "benign", center, radius)


def _record(i, lesions=(), patient=None):
    return Record(
        f"mdb{i:03d}",
        patient or f"p{i}",
        "mias",
        f"mdb{i:03d}.pgm",
        lesions=tuple(lesions),
        shape=(32, 32),
    )


def _shuffle_split(items, train_size):
    # scikit-learn's ShuffleSplit with random_state 42: the test part is the first
    # ceil((1 - train_size) n) of a RandomState(42) permutation, train the next floor(train n).
    n = len(items)
    order = np.random.RandomState(42).permutation(n)
    n_test = ceil(round((1 - train_size) * n, 10))
    return [items[i] for i in order[n_test:]], [items[i] for i in order[:n_test]]


def test_per_line_split_repeats_images_and_follows_the_authors_random_state():
    # 8 images; mdb002 has three lesion lines, so 10 samples in all.
    records = [_record(i) for i in range(1, 9)]
    records[1] = _record(2, [_mass((5, 5)), _mass((10, 10)), _mass((20, 20))])
    samples = [records[0]] + [records[1]] * 3 + records[2:]
    train, val, test = per_line_split(records)
    expected_train, rest = _shuffle_split(samples, 0.6)
    expected_val, expected_test = _shuffle_split(rest, 0.5)
    assert (train, val, test) == (expected_train, expected_val, expected_test)
    assert (len(train), len(val), len(test)) == (6, 2, 2)
    assert sum(r.image_id == "mdb002" for r in train + val + test) == 3


def test_twins_counts_images_and_patients_of_test_that_train_holds():
    a, b, c = _record(1, patient="w1"), _record(2, patient="w1"), _record(3, patient="w2")
    assert twins([a, c], [a, b, b]) == {"test_samples": 3, "same_image": 1, "same_patient": 3}
    assert twins([c], [a, b]) == {"test_samples": 2, "same_image": 0, "same_patient": 0}


def test_too_few_samples_is_an_error():
    with pytest.raises(MammosegDataError, match="at least 3 samples.*found 2"):
        per_line_split([_record(1), _record(2)])


def test_only_the_last_circle_is_drawn():
    record = _record(1, [_mass((8.0, 8.0)), Lesion("calcification", None, (24.0, 20.0), 2.0)])
    mask = authors_mask(record)
    expected = draw_circle((32, 32), (24.0, 20.0), 2.0)
    np.testing.assert_array_equal(mask, expected.astype(np.uint8))
    assert mask[8, 8] == 0 and mask[24, 20] == 1  # the first (mass) circle is lost
    assert last_lesion_only(record).lesions == record.lesions[1:]
    assert load_mask(record, kinds=None)[8, 8] == 1  # ours draws both


def test_cbis_masks_keep_only_pixels_equal_to_255_after_a_bilinear_resize(tmp_path):
    # A 3x3 square at rows/cols 2-4 of a 10x10 mask, halved: output pixel i averages source
    # pixels 2i and 2i+1, so only output (1, 1) sees four mask pixels and stays 255.
    square = np.zeros((10, 10), np.uint8)
    square[2:5, 2:5] = 255
    write_pgm(tmp_path / "square.pgm", square)
    # A one-pixel calcification averages to at most 255/4 and vanishes.
    speck = np.zeros((10, 10), np.uint8)
    speck[7, 7] = 255
    write_pgm(tmp_path / "speck.pgm", speck)
    lesions = [
        Lesion("mass", "malignant", None, None, mask_path=str(tmp_path / "square.pgm")),
        Lesion("calcification", "benign", None, None, mask_path=str(tmp_path / "speck.pgm")),
    ]
    record = Record("cbis1", "P1", "cbis-ddsm", "img.dcm", lesions=tuple(lesions), shape=(10, 10))
    mask = authors_mask(record, 5)
    expected = np.zeros((5, 5), np.uint8)
    expected[1, 1] = 1
    np.testing.assert_array_equal(mask, expected)
    assert load_mask(record, 5, kinds=None).sum() > mask.sum()  # our coverage rule keeps more
