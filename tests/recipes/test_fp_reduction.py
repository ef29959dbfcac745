"""The false-positive reduction stage: patches, labels, scores and a classifier that learns."""

from dataclasses import replace

import numpy as np
import pytest

from mammoseg.metrics import Region
from mammoseg.recipes import CandidateClassifier, FPReductionConfig, OneClassCandidates
from mammoseg.recipes.breast_crop import BreastCrop
from mammoseg.recipes.fp_reduction import (
    combine_scores,
    dihedral,
    extract_patches,
    to_working,
    training_patches,
)
from mammoseg.recipes.preprocess import WorkingImage


def _work(image, mask=None, lesions=(), crop=None):
    image = np.asarray(image, np.float32)
    crop = crop or BreastCrop((0, image.shape[0], 0, image.shape[1]), image.shape, None)
    return WorkingImage(image, np.ones(image.shape, bool), crop, -1.0, mask, tuple(lesions))


def test_to_working_maps_the_crop_box_and_its_scale():
    crop = BreastCrop((100, 500, 40, 240), (1024, 1024), None)
    work = _work(np.zeros((200, 100)), crop=crop)
    assert to_working(work, (100.0, 40.0)) == (0.0, 0.0)
    assert to_working(work, (300.0, 140.0)) == (100.0, 50.0)  # half the size each way
    assert to_working(work, (500.0, 240.0)) == (200.0, 100.0)


def test_patches_are_centred_and_padded_with_the_background():
    image = np.arange(36, dtype=np.float32).reshape(6, 6)
    prob = np.zeros((6, 6), np.float32)
    prob[3, 3] = 0.8
    patches = extract_patches(_work(image), prob, [(3.0, 3.0), (0.0, 5.0)], 4)
    assert patches.shape == (2, 4, 4, 2)
    # centre (3, 3) sits at (2, 2) of an even patch: rows 1..4, cols 1..4
    np.testing.assert_array_equal(patches[0, ..., 0], image[1:5, 1:5])
    assert patches[0, 2, 2, 1] == pytest.approx(0.8) and patches[0, ..., 1].sum() == pytest.approx(
        0.8
    )
    # corner patch: the two rows above and the column right of the image are background
    np.testing.assert_array_equal(patches[1, :2, :, 0], -1.0)
    np.testing.assert_array_equal(patches[1, :, 3, 0], -1.0)
    np.testing.assert_array_equal(patches[1, 2:, :3, 0], image[0:2, 3:6])


def test_patches_refuse_a_map_of_another_shape():
    with pytest.raises(ValueError, match=r"working image's shape \(6, 6\)"):
        extract_patches(_work(np.zeros((6, 6))), np.zeros((5, 6)), [(1.0, 1.0)], 4)


def test_training_patches_label_hits_false_positives_and_add_every_lesion():
    mask = np.zeros((40, 40), np.uint8)
    mask[8:13, 8:13] = 1
    prob = np.zeros((40, 40), np.float32)
    prob[9:12, 9:12] = 0.9  # a hit: its centroid (10, 10) is on the mask
    prob[28:31, 28:31] = 0.6  # a false positive
    prob[2, 35] = 0.9  # one pixel: below min_area, no candidate
    work = _work(np.zeros((40, 40)), mask, [(10.0, 10.0, 2.8)])
    patches, labels, counts = training_patches([work], [prob], 8, 0.2, min_area=4)
    assert counts == {"hits": 1, "false_positives": 1, "lesions": 1}
    # candidates best first (the hit, then the false positive), then the lesion's own patch
    np.testing.assert_array_equal(labels, [1.0, 0.0, 1.0])
    assert patches.shape == (3, 8, 8, 2)
    assert patches[1, 4, 4, 1] == pytest.approx(0.6)


def test_training_patches_need_truth_and_one_map_per_image():
    with pytest.raises(ValueError, match="no truth mask"):
        training_patches([_work(np.zeros((8, 8)))], [np.zeros((8, 8))], 8)
    with pytest.raises(ValueError, match="2 images, 1 maps"):
        training_patches([_work(np.zeros((8, 8)))] * 2, [np.zeros((8, 8))], 8)


def test_dihedral_gives_eight_distinct_transforms():
    patch = np.arange(9, dtype=np.float32).reshape(1, 3, 3, 1)
    outs = {dihedral(patch, k).tobytes() for k in range(8)}
    assert len(outs) == 8
    np.testing.assert_array_equal(dihedral(patch, 0), patch)
    np.testing.assert_array_equal(dihedral(patch, 4)[0, :, :, 0], patch[0, :, ::-1, 0])


def test_combine_scores_is_a_weighted_geometric_mean():
    assert combine_scores(0.81, 0.25) == pytest.approx(0.45)
    assert combine_scores(0.81, 0.25, weight=0.0) == pytest.approx(0.81)
    assert combine_scores(0.81, 0.25, weight=1.0) == pytest.approx(0.25)


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("patch_size", 20, "multiple of 8"),
        ("epochs", 0, "`epochs` must be a positive integer"),
        ("weight", 1.5, r"`weight` must be in \[0, 1\]"),
        ("learning_rate", 0.0, "`learning_rate` must be positive"),
        ("working_size", 0, "`working_size` must be a positive integer or None"),
    ],
)
def test_config_errors_name_the_field(field, value, message):
    with pytest.raises(ValueError, match=message):
        FPReductionConfig(**{field: value})


def _blob_images(n, seed):
    """Images with one bright disc (the mass, on the truth) and one thin bright bar (tissue)."""
    rng = np.random.default_rng(seed)
    works, probs = [], []
    rows, cols = np.mgrid[:64, :64]
    for _ in range(n):
        image = rng.normal(0, 0.3, (64, 64)).astype(np.float32)
        r, c = rng.integers(12, 24, 2)
        disc = (rows - r) ** 2 + (cols - c) ** 2 <= 16
        image[disc] += 2.0
        br, bc = rng.integers(40, 52, 2)
        image[br - 1 : br + 2, bc - 8 : bc + 9] += 2.0  # elongated: a false positive
        prob = np.zeros((64, 64), np.float32)
        prob[disc] = 0.7
        prob[br - 1 : br + 2, bc - 8 : bc + 9] = 0.7  # the UNet cannot tell them apart
        mask = disc.astype(np.uint8)
        works.append(_work(image, mask, [(float(r), float(c), 4.0)]))
        probs.append(prob)
    return works, probs


def test_the_classifier_learns_to_rank_masses_above_look_alikes(tmp_path):
    works, probs = _blob_images(24, seed=0)
    reducer = CandidateClassifier(FPReductionConfig(patch_size=24, filters=8, epochs=12))
    info = reducer.fit(works, probs, candidate_threshold=0.5, min_area=4)
    assert (info["hits"], info["false_positives"], info["lesions"]) == (24, 24, 24)
    test_works, test_probs = _blob_images(6, seed=1)
    ranked_right = 0
    for work, prob in zip(test_works, test_probs):
        (r, c, _), bar = work.lesions[0], np.argwhere(prob * (work.mask == 0) > 0).mean(axis=0)
        candidates = [
            Region(0.7, (float(bar[0]), float(bar[1])), 51, np.zeros((0, 2))),
            Region(0.7, (r, c), 49, np.zeros((0, 2))),
        ]
        rescored = reducer.rescore(work, prob, candidates)
        assert sorted(x.centroid for x in rescored) == sorted(x.centroid for x in candidates)
        ranked_right += rescored[0].centroid == (r, c)
    assert ranked_right >= 5  # equal segmentation scores: the classifier alone decides
    # saved and loaded, it gives the same probabilities
    reducer.save(tmp_path)
    again = CandidateClassifier.load(tmp_path)
    patches = extract_patches(test_works[0], test_probs[0], [test_works[0].lesions[0][:2]], 24)
    np.testing.assert_allclose(again.predict(patches), reducer.predict(patches), atol=1e-6)
    assert again.config == reducer.config
    # a size it never recorded (older files) loads for any model ...
    assert reducer.config.working_size is None
    assert CandidateClassifier.load(tmp_path, working_size=512).config == reducer.config
    # ... a recorded one only for a model of that size
    reducer.config = replace(reducer.config, working_size=64)
    reducer.save(tmp_path / "sized")
    assert CandidateClassifier.load(tmp_path / "sized", working_size=64).config.working_size == 64
    with pytest.raises(ValueError) as refused:
        CandidateClassifier.load(tmp_path / "sized", working_size=384)
    assert str(refused.value) == (
        f"{tmp_path / 'sized'}: the classifier was trained on candidates of a model with working "
        "size 64, this model's is 384; use the classifier saved with this model (its run's fp/ "
        "or fp_<k>/ folder)"
    )


def test_fit_refuses_when_there_is_nothing_to_tell_apart():
    mask = np.zeros((32, 32), np.uint8)
    prob = np.zeros((32, 32), np.float32)
    prob[20:24, 20:24] = 0.9  # only false positives, no lesion
    with pytest.raises(OneClassCandidates, match="both hits and false positives"):
        CandidateClassifier(FPReductionConfig(patch_size=16, epochs=1)).fit(
            [_work(np.zeros((32, 32)), mask)], [prob]
        )


def test_an_untrained_classifier_says_so(tmp_path):
    with pytest.raises(RuntimeError, match="not trained"):
        CandidateClassifier().predict(np.zeros((1, 48, 48, 2), np.float32))
    with pytest.raises(FileNotFoundError, match="no fp_classifier.keras"):
        CandidateClassifier.load(tmp_path)


def test_load_names_unusable_settings(tmp_path):
    from mammoseg.recipes.fp_reduction import FP_MODEL_FILE

    (tmp_path / FP_MODEL_FILE).write_bytes(b"not read")
    (tmp_path / "fp_classifier.json").write_text('{"patch_sise": 48}')
    with pytest.raises(ValueError, match=r"fp_classifier.json: unusable classifier settings"):
        CandidateClassifier.load(tmp_path)
