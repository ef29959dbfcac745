"""The beyond script chooses its threshold and region limit on the validation split only, uses
them on the test split, and passes --resume on to training (issue #20: each of these passed the
earlier tests when broken, because a fresh run or validation-on-itself gives the same files)."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from mammoseg.data import Record
from mammoseg.recipes import RecipeConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "experiments"))
beyond = pytest.importorskip("beyond_mass_segmentation")


def _records(prefix: str, n: int = 3) -> list[Record]:
    return [
        Record(f"{prefix}{i}", f"{prefix}p{i}", "phantom", f"{prefix}{i}.pgm") for i in range(n)
    ]


@pytest.fixture
def calls(monkeypatch):
    seen: dict[str, list] = {
        "evaluate": [],
        "select": [],
        "train": [],
        "split_metrics": [],
        "image_scores": [],
    }

    def evaluate_records(predictor, records, thresholds, keep=(), region_choices=()):
        seen["evaluate"].append(([r.image_id for r in records], list(thresholds)))
        return SimpleNamespace(
            counts=f"counts of {records[0].image_id[:-1]}",
            limited_counts=f"limited of {records[0].image_id[:-1]}",
            split=records[0].image_id[:-1],
        )

    def select_postprocessing(counts, limited, thresholds):
        seen["select"].append((counts, limited))
        return 0.35, 2, {"all": [0.0] * len(thresholds)}

    def train_recipe(train, val, config, folder, **options):
        seen["train"].append(options)
        return "model", {"history": {}}

    def split_metrics(evaluation, threshold):
        seen["split_metrics"].append((evaluation.split, threshold))
        return {}

    monkeypatch.setattr(beyond, "prepare_records", lambda records, config: records)
    monkeypatch.setattr(beyond, "train_recipe", train_recipe)
    monkeypatch.setattr(beyond, "evaluate_records", evaluate_records)
    monkeypatch.setattr(beyond, "select_postprocessing", select_postprocessing)

    def image_scores(evaluation, threshold, patient_ids):
        seen["image_scores"].append((evaluation.split, threshold, list(patient_ids)))
        return SimpleNamespace(to_rows=lambda: [f"rows of {evaluation.split}"])

    monkeypatch.setattr(beyond, "split_metrics", split_metrics)
    monkeypatch.setattr(beyond, "image_scores", image_scores)
    monkeypatch.setattr(beyond, "with_region_limit", lambda evaluation, regions: evaluation)
    monkeypatch.setattr(beyond, "save_recipe", lambda *args, **kwargs: None)
    monkeypatch.setattr(beyond, "_figures", lambda *args, **kwargs: [])
    monkeypatch.setattr(beyond, "_showcase_ids", lambda records, kinds, n=4: [])
    return seen


def _run(resume: bool) -> SimpleNamespace:
    splits = {"train": _records("train"), "val": _records("val"), "test": _records("test")}
    args = SimpleNamespace(seed=3, resume=resume, data="phantom")
    return SimpleNamespace(splits=lambda: splits, args=args, strategy=None, callbacks=[])


@pytest.mark.parametrize("resume", [False, True])
def test_threshold_is_chosen_on_validation_and_used_on_test(calls, tmp_path, resume):
    result = beyond.run_recipe(_run(resume), RecipeConfig(), tmp_path)
    (val_ids, val_thresholds), (test_ids, test_thresholds) = calls["evaluate"]
    assert val_ids == ["val0", "val1", "val2"] and len(val_thresholds) > 1
    assert calls["select"] == [("counts of val", "limited of val")]  # never the test counts
    assert test_ids == ["test0", "test1", "test2"] and test_thresholds == [0.35]
    assert calls["split_metrics"] == [("val", 0.35), ("test", 0.35)]
    # the per-image table that --folds pools: the test images at the chosen threshold
    assert calls["image_scores"] == [("test", 0.35, ["testp0", "testp1", "testp2"])]
    assert result["test_images"] == ["rows of test"]
    assert result["threshold"] == 0.35 and result["mask_regions"] == 2
    assert calls["train"][0]["resume"] is resume  # --resume reaches training
