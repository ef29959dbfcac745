"""experiments/fold_ensemble.py: the fold models alone and as an ensemble, on held-out images."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import keras
import pytest

from mammoseg.recipes import (
    EnsemblePredictor,
    Predictor,
    RecipeConfig,
    build_recipe_model,
    evaluate_records,
    image_scores,
    save_recipe,
)

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "experiments"))
try:
    import beyond_folds
    import fold_ensemble
finally:
    sys.path.remove(str(REPO / "experiments"))

CONFIG = RecipeConfig(working_size=64, patch_size=32, base_filters=4, depth=2, tta=False)


def _folds_run(tmp_path: Path, thresholds=(0.45, 0.55)) -> Path:
    run = tmp_path / "run"
    for k, threshold in enumerate(thresholds, 1):
        keras.utils.set_random_seed(k)
        folder = run / f"fold_{k}"
        folder.mkdir(parents=True)
        build_recipe_model(CONFIG).save(folder / "model.keras")
        save_recipe(folder, CONFIG.with_postprocessing(threshold, None))
    setup = {"data": "phantom", "scale": {"phantom_size": 128}}
    runs = {"pretrain": {"status": "ok", "phantom_seed": 1}}
    (run / "metrics.json").write_text(json.dumps({"setup": setup, "runs": runs}))
    return run


def _pooled(predictor, records, threshold):
    evaluation = evaluate_records(predictor, records, [threshold])
    scores = image_scores(evaluation, threshold, [r.patient_id for r in records])
    return beyond_folds.pooled_metrics(scores, seed=0)


def test_the_ensemble_scores_as_the_ensemble_predictor_and_each_model_as_itself(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(fold_ensemble, "CHUNK", 4)  # 6 images: two chunks, maps held 4 at most
    run = _folds_run(tmp_path)
    paths = fold_ensemble.fold_models(run)
    assert paths == [run / "fold_1" / "model.keras", run / "fold_2" / "model.keras"]
    records = fold_ensemble.held_out_records(run, "phantom", 6, 2)
    assert len(records) == 6 and records[0].shape == (128, 128)

    report, numbers = fold_ensemble.evaluate_ensemble(paths, records)

    # The remembered maps give what predicting through EnsemblePredictor gives, image by image.
    ensemble = EnsemblePredictor.load(paths)
    assert ensemble.config.threshold == pytest.approx(0.5)
    assert numbers["pooled"][-1] == _pooled(ensemble, records, ensemble.config.threshold)
    for k, path in enumerate(paths):
        member = Predictor.load(path)
        assert numbers["pooled"][k] == _pooled(member, records, member.config.threshold)
    assert numbers["models"] == [
        "fold_1 (threshold 0.45)",
        "fold_2 (threshold 0.55)",
        "ensemble of 2 (threshold 0.5)",
    ]
    # Each difference is the ensemble minus that model on the same resamples.
    froc = [p["froc_mean"]["value"] for p in numbers["pooled"]]
    for k in range(2):
        diff = numbers["ensemble_minus_model"][k]["froc_mean"]["value"]
        assert diff == pytest.approx(froc[2] - froc[k])
    assert report.count("| fold_") == 4 and "| ensemble of 2 (threshold 0.5) |" in report
    assert "6 held-out images of" in report


def test_images_the_run_saw_are_refused_by_name(tmp_path):
    run = _folds_run(tmp_path)
    for seed in (0, 1):  # tested by the folds, pre-trained on
        with pytest.raises(ValueError, match=rf"--phantom-seed {seed}: .* seed\(s\) \[0, 1\]"):
            fold_ensemble.held_out_records(run, "phantom", 4, seed)
    with pytest.raises(ValueError, match="--images must be at least 1 with --data phantom"):
        fold_ensemble.held_out_records(run, "phantom", 0, 2)
    with pytest.raises(ValueError, match="received 'inbreast:/x'"):
        fold_ensemble.held_out_records(run, "inbreast:/x", 0, 2)
    # A run on real data pre-trains on phantom seed 0: seed 1 is held out, 0 is not.
    metrics = {
        "setup": {"data": "mias:/data/mias-dev", "scale": {"phantom_size": 128}},
        "runs": {"pretrain": {"status": "ok", "phantom_seed": 0}},
    }
    (run / "metrics.json").write_text(json.dumps(metrics))
    assert len(fold_ensemble.held_out_records(run, "phantom", 3, 1)) == 3
    with pytest.raises(ValueError, match=r"seed\(s\) \[0\]; pick another seed"):
        fold_ensemble.held_out_records(run, "phantom", 3, 0)


def test_real_images_the_run_tested_are_left_out(tmp_path, tiny_phantom):
    root = Path(tiny_phantom[0].path).parent  # 12 images in the MIAS layout
    run = _folds_run(tmp_path)
    metrics = {"setup": {"data": "mias:/data/mias-dev"}, "runs": {}}
    (run / "metrics.json").write_text(json.dumps(metrics))
    seen = [{"image_id": "mdb001"}, {"image_id": "mdb007"}]
    (run / "fold_1" / "result.json").write_text(json.dumps({"test_images": seen[:1]}))
    (run / "fold_2" / "result.json").write_text(json.dumps({"test_images": seen[1:]}))
    records = fold_ensemble.held_out_records(run, f"mias:{root}", 0, 2)
    ids = [r.image_id for r in records]
    assert len(ids) == 10 and "mdb001" not in ids and "mdb007" not in ids
    assert [r.image_id for r in fold_ensemble.held_out_records(run, f"mias:{root}", 3, 2)] == ids[
        :3
    ]
    every = [{"image_id": r.image_id} for r in tiny_phantom]
    (run / "fold_2" / "result.json").write_text(json.dumps({"test_images": every}))
    with pytest.raises(ValueError, match=r"all 12 images were in the run"):
        fold_ensemble.held_out_records(run, f"mias:{root}", 0, 2)


def test_fewer_than_two_models_and_a_taken_output_are_refused(tmp_path, capsys):
    run = _folds_run(tmp_path, thresholds=(0.5,))
    with pytest.raises(FileNotFoundError, match=r"run: 1 fold_<k>/model.keras file\(s\)"):
        fold_ensemble.fold_models(run)
    taken = tmp_path / "report.md"
    taken.write_text("mine")
    assert fold_ensemble.main([str(run), "--output", str(taken)]) == 2
    assert f"{taken} exists; pass --overwrite" in capsys.readouterr().err
    assert taken.read_text() == "mine"
    assert fold_ensemble.main([str(run)]) == 2
    assert "an ensemble needs the models of a finished --folds run" in capsys.readouterr().err
