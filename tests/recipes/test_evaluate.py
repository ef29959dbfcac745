"""The issue's split metrics from per-image counts and candidates, checked by hand."""

import numpy as np
import pytest

from mammoseg.data import Lesion
from mammoseg.metrics import Region
from mammoseg.recipes import Evaluation, split_metrics


def _region(score, row, col):
    return Region(score, (float(row), float(col)), 1, np.array([[row, col]]))


def _evaluation():
    lesion = Lesion("mass", center=(10.0, 10.0), radius=5.0)
    ev = Evaluation(thresholds=(0.3, 0.5))
    # image 1: a mass, mask TP 6 FP 2 FN 2 at 0.5 → Dice 12/16 = 0.75
    # image 2: a mass, empty mask at 0.5 → Dice 0, empty
    # image 3: normal, 4 false-positive pixels at 0.5
    ev.image_ids = ["a", "b", "c"]
    ev.counts = [
        np.array([[8, 4, 0], [6, 2, 2]]),
        np.array([[1, 0, 7], [0, 0, 8]]),
        np.array([[0, 9, 0], [0, 4, 0]]),
    ]
    ev.candidates = [[_region(0.9, 10, 10)], [_region(0.4, 50, 50)], [_region(0.7, 5, 5)]]
    ev.truths = [[lesion], [lesion], []]
    return ev


def test_split_metrics_by_hand():
    m = split_metrics(_evaluation(), 0.5)
    assert m["dice_per_image_mean"] == pytest.approx((0.75 + 0.0) / 2)
    assert m["dice_pooled"] == pytest.approx(12 / (12 + 6 + 10))  # TP 6, FP 6, FN 10
    assert m["foreground_iou"] == pytest.approx(6 / 22)
    assert m["empty_prediction_rate"] == 0.5
    assert m["n_images"] == 3 and m["n_images_with_lesion"] == 2 and m["n_lesions"] == 2
    assert m["false_positive_pixels_on_normals"] == 4
    # One lesion found (score 0.9); false positives 0.7 and 0.4 over 3 images.
    assert m["froc"]["0.25"] == 0.5 and m["lesion_sensitivity_at_1fppi"] == 0.5
    assert m["threshold"] == 0.5


def test_split_metrics_needs_an_evaluated_threshold():
    with pytest.raises(ValueError, match="was not evaluated"):
        split_metrics(_evaluation(), 0.4)


def test_dice_by_size_bands_by_the_largest_radius():
    ev = _evaluation()
    # image a: radius 70 (large, Dice 0.75); image b: radius 20 (small, Dice 0); c: normal
    ev.radii = [70.0, 20.0, float("nan")]
    bands = split_metrics(ev, 0.5)["dice_by_size"]
    assert bands == {"small": [0.0, 1], "medium": [None, 0], "large": [0.75, 1]}
    ev.radii = [29.0, 63.9, float("nan")]  # 29 opens the medium band, 64 would close it
    assert split_metrics(ev, 0.5)["dice_by_size"]["medium"] == [0.375, 2]
    ev.radii = []  # built without radii: no breakdown rather than a wrong one
    assert split_metrics(ev, 0.5)["dice_by_size"] == {}


def test_dice_by_contrast_bands_at_the_mias_quartiles():
    ev = _evaluation()
    # image a: contrast 0.5 (low, Dice 0.75); image b: 1.56 opens the high band (Dice 0)
    ev.contrasts = [0.5, 1.56, float("nan")]
    bands = split_metrics(ev, 0.5)["dice_by_contrast"]
    assert bands == {"low": [0.75, 1], "medium": [None, 0], "high": [0.0, 1]}


def test_evaluate_records_measures_each_mass_contrast(tmp_path):
    from mammoseg.data import Record
    from mammoseg.data.pgm import write_pgm
    from mammoseg.recipes import Predictor, RecipeConfig, evaluate_records

    # A flat breast (0.5) with a disc 0.2 brighter and a ring r..1.5r striped 0.4 / 0.6:
    # contrast = (mean inside - ring mean) / ring std, about (0.7 - 0.5) / 0.1 = 2.
    image = np.zeros((64, 64), np.float32)
    image[4:60, 4:60] = 0.5
    rows, cols = np.mgrid[:64, :64]
    dist = np.hypot(rows - 32, cols - 32)
    image[dist <= 6] = 0.7
    ring = (dist > 6) & (dist <= 9)
    image[ring & (cols % 2 == 0)] = 0.4
    image[ring & (cols % 2 == 1)] = 0.6
    write_pgm(tmp_path / "a.pgm", np.round(image * 255).astype(np.uint8))
    lesion = Lesion("mass", center=(32.0, 32.0), radius=6.0)
    records = [
        Record("a", "p1", "mias", str(tmp_path / "a.pgm"), lesions=(lesion,)),
        Record("b", "p2", "mias", str(tmp_path / "a.pgm")),
    ]
    config = RecipeConfig(working_size=32, patch_size=32, depth=2)
    # A model that predicts nothing (logits -10): Dice 0 on the mass image.
    ev = evaluate_records(Predictor(lambda batch: batch * 0.0 - 10.0, config), records, [0.5])
    ring_pixels = np.round(image[ring] * 255) / 255
    expected = (np.round(0.7 * 255) / 255 - ring_pixels.mean()) / ring_pixels.std()
    assert ev.contrasts[0] == pytest.approx(expected, rel=1e-3)
    assert abs(ev.contrasts[0] - 2.0) < 0.1 and np.isnan(ev.contrasts[1])
    assert split_metrics(ev, 0.5)["dice_by_contrast"]["high"] == [0.0, 1]


def test_region_limit_in_the_config_the_predictor_and_the_evaluation(tmp_path):
    from mammoseg.data import Record
    from mammoseg.data.pgm import write_pgm
    from mammoseg.recipes import (
        Predictor,
        RecipeConfig,
        evaluate_records,
        load_recipe,
        save_recipe,
        with_region_limit,
    )

    with pytest.raises(ValueError, match="`mask_regions` must be None or a positive integer"):
        RecipeConfig(mask_regions=0)
    config = RecipeConfig(working_size=32, patch_size=32, depth=2, threshold=0.5)
    assert config.mask_regions is None
    chosen = config.with_postprocessing(0.3, 1)
    assert (chosen.threshold, chosen.mask_regions) == (0.3, 1)
    save_recipe(tmp_path, chosen)
    assert load_recipe(tmp_path).mask_regions == 1

    prob = np.zeros((6, 6))
    prob[0:2, 0:2], prob[4:6, 4:6] = 0.9, 0.6
    assert Predictor(None, config).mask(prob).sum() == 8
    assert Predictor(None, chosen).mask(prob).sum() == 4  # at 0.3, only the 0.9 region
    assert Predictor(None, chosen).mask(prob, threshold=0.95).sum() == 0

    # The model echoes its standardised input less 1 as logits: only the two discs brighter than
    # the breast pass 0.5; the brighter one holds the mass, so one region drops the other.
    image = np.zeros((64, 64), np.uint8)
    image[4:60, 4:60] = 100
    image[12:20, 12:20] = 220
    image[40:48, 40:48] = 170
    write_pgm(tmp_path / "a.pgm", image)
    mass = Lesion("mass", center=(15.5, 15.5), radius=4.0)
    record = Record("a", "p1", "mias", str(tmp_path / "a.pgm"), lesions=(mass,))
    echo = Predictor(lambda b: (b - 1.0) * 10.0, config)
    ev = evaluate_records(echo, [record], [0.5], region_choices=[1])
    (tp, fp, fn), (tp1, fp1, fn1) = ev.counts[0][0], ev.limited_counts[0][1][0]
    # the mass's disc is kept whole; the other disc (64 pixels and its rim) is dropped
    assert tp > 40 and (tp1, fn1) == (tp, fn) and fp - fp1 >= 64
    assert ev.mask_regions is None
    assert with_region_limit(ev, 1).mask_regions == 1
    assert with_region_limit(ev, None) is ev
    with pytest.raises(
        ValueError, match="`mask_regions` 2 was not counted; counted limits: \\[1\\]"
    ):
        with_region_limit(ev, 2)
    assert split_metrics(ev, 0.5)["mask_regions"] is None
    limited = evaluate_records(Predictor(echo.model, chosen.with_threshold(0.5)), [record], [0.5])
    assert limited.mask_regions == 1 and limited.counts[0][0].tolist() == [tp, fp1, fn]
    assert split_metrics(with_region_limit(ev, 1), 0.5)["dice_per_image_mean"] == pytest.approx(
        2 * tp / (2 * tp + fp1 + fn)
    )


# ---------------------------------------------------------------- per-image scores, pooled


def _scores():
    from mammoseg.recipes import image_scores

    return image_scores(_evaluation(), 0.5, ["p1", "p1", "p2"])


def test_image_scores_give_the_split_metrics():
    scores = _scores()
    m, expected = scores.metrics(), split_metrics(_evaluation(), 0.5)
    for key in ("dice_per_image_mean", "dice_pooled", "empty_prediction_rate"):
        assert m[key] == pytest.approx(expected[key])
    assert {str(k): v for k, v in m["froc"].items()} == expected["froc"]
    assert m["froc_mean"] == pytest.approx(expected["froc_mean"])
    assert (m["n_images"], m["n_images_with_lesion"], m["n_lesions"]) == (3, 2, 2)
    # image a: its mass hit at 0.9; b: its mass missed, a false positive at 0.4; c: one at 0.7
    np.testing.assert_array_equal(scores.hit_scores[0], [0.9])
    assert np.isnan(scores.hit_scores[1]).all()
    assert [list(f) for f in scores.false_positive_scores] == [[], [0.4], [0.7]]


def test_image_scores_over_a_resample_count_repeated_images_again():
    scores = _scores()
    # Images a, a, c: two masses, both found at 0.9; Dice/image 0.75; false positives 0.7
    # over 3 images, so the sensitivity is 1 from 1/3 false positive per image on.
    m = scores.metrics([0, 0, 2], fp_rates=(0.25, 0.5))
    assert m["dice_per_image_mean"] == pytest.approx(0.75) and m["empty_prediction_rate"] == 0
    assert m["froc"] == {0.25: 1.0, 0.5: 1.0}
    assert (m["n_images"], m["n_lesions"]) == (3, 2)
    # Images b, c: the only mass missed; Dice/image 0 and an empty mask.
    m = scores.metrics([1, 2])
    assert m["dice_per_image_mean"] == 0 and m["empty_prediction_rate"] == 1
    assert set(m["froc"].values()) == {0.0}
    # Image c alone: no lesion, so lesion figures are undefined, never 0 or 1.
    m = scores.metrics([2])
    assert np.isnan(m["dice_per_image_mean"]) and np.isnan(m["froc"][1.0])


def test_image_scores_rows_round_trip_and_concatenate():
    import json

    from mammoseg.recipes import ImageScores

    scores = _scores()
    rows = json.loads(json.dumps(scores.to_rows()))
    assert rows[1]["lesion_scores"] == [None] and rows[1]["empty_mask"] is True
    assert rows[0]["dice"] == pytest.approx(0.75) and rows[2]["dice"] is None
    back = ImageScores.from_rows(rows)
    assert back.metrics() == scores.metrics() and back.patient_ids == ("p1", "p1", "p2")
    both = ImageScores.concatenate([scores.subset([2, 0]), scores.subset([1])])
    assert both.image_ids == ("c", "a", "b")
    assert both.metrics()["dice_per_image_mean"] == scores.metrics()["dice_per_image_mean"]
    with pytest.raises(ValueError, match=r"images scored more than once: \['a'\]"):
        ImageScores.concatenate([scores, scores.subset([0])])
    with pytest.raises(ValueError, match=r"one entry per image \(3 image ids\).*'patient_ids': 2"):
        ImageScores(("a", "b", "c"), ("p", "q"), np.zeros((3, 3)), ((),) * 3, ((),) * 3)


def _two_records(tmp_path):
    from mammoseg.data import Record
    from mammoseg.data.pgm import write_pgm

    image = np.zeros((64, 64), np.float32)
    image[4:60, 4:60] = 0.4
    rows, cols = np.mgrid[:64, :64]
    image[np.hypot(rows - 32, cols - 32) <= 6] = 0.8
    write_pgm(tmp_path / "a.pgm", np.round(image * 255).astype(np.uint8))
    lesion = Lesion("mass", center=(32.0, 32.0), radius=6.0)
    return [
        Record("a", "p1", "mias", str(tmp_path / "a.pgm"), lesions=(lesion,)),
        Record("b", "p2", "mias", str(tmp_path / "a.pgm")),
    ]


def test_rescore_changes_the_candidates_scores_and_nothing_else(tmp_path):
    from dataclasses import replace

    from mammoseg.recipes import Predictor, RecipeConfig, evaluate_records

    records = _two_records(tmp_path)
    config = RecipeConfig(working_size=32, patch_size=32, depth=2)
    predictor = Predictor(lambda batch: batch * 20.0 - 10.0, config)  # bright pixels: mass
    seen = []

    def halve(work, prob_work, candidates):
        seen.append((work.image.shape, prob_work.shape))
        return [replace(c, score=c.score / 2) for c in candidates]

    plain = evaluate_records(predictor, records, [0.5])
    halved = evaluate_records(predictor, records, [0.5], rescore=halve)
    assert len(seen) == 2 and all(a == b and len(a) == 2 for a, b in seen)  # image and its map
    assert all(np.array_equal(a, b) for a, b in zip(plain.counts, halved.counts))  # same masks
    before = [c.score for cands in plain.candidates for c in cands]
    after = [c.score for cands in halved.candidates for c in cands]
    assert before and np.allclose(after, np.array(before) / 2)
