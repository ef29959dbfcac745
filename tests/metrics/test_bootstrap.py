"""Bootstrap intervals over patients, on cases whose interval can be worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from mammoseg.metrics import BootstrapInterval, bootstrap_interval, resample_patients


def test_identical_patients_give_a_zero_width_interval():
    values = np.full(6, 0.42)
    ci = bootstrap_interval(lambda i: values[i].mean(), ["a", "a", "b", "c", "c", "d"])
    assert isinstance(ci, BootstrapInterval)
    assert (ci.estimate, ci.low, ci.high) == pytest.approx((0.42, 0.42, 0.42), abs=1e-12)
    assert ci.confidence == 0.95 and ci.replicates.shape == (2000,)


def test_two_patients_give_their_own_values_as_endpoints():
    # Two patients: a resample is (a, a), (b, b) with probability 1/4 each or (a, b) with 1/2,
    # so the mean is 0.1, 0.7 or 0.4 and both tails hold far more than 2.5 % of the replicates.
    values = np.array([0.1, 0.7])
    ci = bootstrap_interval(lambda i: values[i].mean(), ["a", "b"], seed=3)
    assert ci.estimate == pytest.approx(0.4)
    assert (ci.low, ci.high) == pytest.approx((0.1, 0.7))
    assert set(np.round(ci.replicates, 9)) == {0.1, 0.4, 0.7}
    assert np.mean(ci.replicates == 0.1) == pytest.approx(0.25, abs=0.04)


def test_resamples_patients_not_images():
    # Patient a: three images of value 1; patient b: one image of value 0. Drawn as patients,
    # the image mean can only be 1 (a, a), 0 (b, b) or 3/4 (a, b); drawn as images, 1/4, 1/2
    # and 3/4 of the draws would appear too.
    values = np.array([1.0, 1.0, 1.0, 0.0])
    ci = bootstrap_interval(lambda i: values[i].mean(), ["a", "a", "a", "b"], n_resamples=500)
    assert set(np.round(ci.replicates, 9)) == {0.0, 0.75, 1.0}
    for indices in resample_patients(["a", "a", "a", "b"], 200, seed=1):
        # a drawn patient brings all her images: 3 of a's per draw of a, 1 of b's per draw of b
        a_images = np.isin(indices, [0, 1, 2]).sum()
        assert a_images % 3 == 0 and len(indices) == a_images + (2 - a_images // 3)
        for image in (0, 1, 2):
            assert (indices == image).sum() == a_images // 3


def test_patients_are_found_by_id_wherever_their_images_are():
    ids = ["b", "a", "b", "c", "a"]
    for indices in resample_patients(ids, 50, seed=0):
        drawn = [ids[i] for i in indices]
        draws = 0
        for patient in "abc":
            assert drawn.count(patient) % ids.count(patient) == 0  # all her images, each time
            draws += drawn.count(patient) // ids.count(patient)
        assert draws == 3  # as many patients drawn as there are


def test_deterministic_for_a_seed():
    values = np.random.default_rng(0).random(20)
    ids = [f"p{k // 2}" for k in range(20)]
    first = bootstrap_interval(lambda i: values[i].mean(), ids, seed=7)
    again = bootstrap_interval(lambda i: values[i].mean(), ids, seed=7)
    other = bootstrap_interval(lambda i: values[i].mean(), ids, seed=8)
    np.testing.assert_array_equal(first.replicates, again.replicates)
    assert (first.low, first.high) == (again.low, again.high)
    assert not np.array_equal(first.replicates, other.replicates)


def test_percentiles_of_the_replicates_at_the_confidence():
    values = np.arange(10, dtype=float)
    ci = bootstrap_interval(lambda i: values[i].mean(), list(range(10)), confidence=0.5, seed=2)
    assert ci.low == pytest.approx(np.percentile(ci.replicates, 25))
    assert ci.high == pytest.approx(np.percentile(ci.replicates, 75))
    assert ci.low < ci.estimate == 4.5 < ci.high


def test_vector_statistic_and_undefined_resamples():
    # Statistic: (mean over all images, mean over images with a mass). Patient b alone has the
    # masses; resamples without her leave the second entry undefined (NaN) and out.
    values = np.array([0.0, 0.0, 0.8, 0.6])
    mass = np.array([False, False, True, True])

    def statistic(i):
        chosen = values[i][mass[i]]
        return np.array([values[i].mean(), chosen.mean() if chosen.size else np.nan])

    ci = bootstrap_interval(statistic, ["a", "a", "b", "b"], n_resamples=400, seed=0)
    assert ci.estimate.shape == ci.low.shape == ci.high.shape == (2,)
    assert ci.n_undefined[0] == 0
    assert ci.n_undefined[1] == pytest.approx(100, abs=30)  # (a, a): a quarter of the draws
    assert (ci.low[1], ci.high[1]) == pytest.approx((0.7, 0.7))  # b's masses average 0.7
    assert (ci.low[0], ci.high[0]) == pytest.approx((0.0, 0.7))


def test_a_statistic_undefined_everywhere_stays_nan():
    ci = bootstrap_interval(lambda i: float("nan"), ["a", "b"], n_resamples=10)
    assert np.isnan(ci.low) and np.isnan(ci.high) and ci.n_undefined == 10


@pytest.mark.parametrize(
    "options, pattern",
    [
        ({"n_resamples": 0}, r"`n_resamples` must be a positive integer, received 0"),
        ({"n_resamples": 2.5}, r"`n_resamples` must be a positive integer, received 2.5"),
        ({"confidence": 1.0}, r"`confidence` must be in \(0, 1\), received 1.0"),
        ({"confidence": 0}, r"`confidence` must be in \(0, 1\), received 0"),
    ],
)
def test_invalid_options(options, pattern):
    with pytest.raises(ValueError, match=pattern):
        bootstrap_interval(lambda i: 0.0, ["a", "b"], **options)


def test_no_images_and_a_changing_shape_are_refused():
    with pytest.raises(ValueError, match="`patient_ids` must hold at least one image"):
        bootstrap_interval(lambda i: 0.0, [])
    with pytest.raises(ValueError, match=r"`statistic` must return one shape.*\(3,\) on the data"):
        bootstrap_interval(lambda i: np.ones(len(i)), ["a", "b", "b"], n_resamples=50, seed=1)
