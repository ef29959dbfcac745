"""experiments/fixed_thresholds.py: a folds run's models re-scored at fixed mask thresholds."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import keras
import pytest

from mammoseg.data import load_records
from mammoseg.recipes import (
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
    import fixed_thresholds
finally:
    sys.path.remove(str(REPO / "experiments"))

CONFIG = RecipeConfig(working_size=64, patch_size=32, base_filters=4, depth=2, tta=False)


def _folds_run(tmp_path: Path) -> tuple[Path, list]:
    """Two folds of six phantom images each, scored as `beyond_mass_segmentation` scores them."""
    records = load_records("phantom", n_images=12, size=128)
    run = tmp_path / "run"
    for k, (threshold, part) in enumerate(((0.45, records[:6]), (0.55, records[6:])), 1):
        keras.utils.set_random_seed(k)
        folder = run / f"fold_{k}"
        folder.mkdir(parents=True)
        build_recipe_model(CONFIG).save(folder / "model.keras")
        save_recipe(folder, CONFIG.with_postprocessing(threshold, None))
        predictor = Predictor.load(folder / "model.keras")
        evaluation = evaluate_records(predictor, part, [threshold])
        rows = image_scores(evaluation, threshold, [r.patient_id for r in part]).to_rows()
        (folder / "result.json").write_text(json.dumps({"status": "ok", "test_images": rows}))
    setup = {"data": "phantom", "scale": {"phantom_images": 12, "phantom_size": 128}}
    (run / "metrics.json").write_text(json.dumps({"setup": setup}))
    return run, records


def test_the_chosen_thresholds_reproduce_the_run_and_a_fixed_one_is_paired(tmp_path):
    run, records = _folds_run(tmp_path)
    by_id = fixed_thresholds.run_records(run, None)
    assert sorted(by_id) == sorted(r.image_id for r in records)
    scores = fixed_thresholds.rescore(run, by_id, [0.45, 0.9])
    assert list(scores) == ["chosen", "0.45", "0.9"]
    saved = [
        row
        for k in (1, 2)
        for row in json.loads((run / f"fold_{k}" / "result.json").read_text())["test_images"]
    ]
    assert scores["chosen"].to_rows() == saved  # the re-scoring reproduces the run exactly
    text, numbers = fixed_thresholds.table(scores)
    # fold 1 chose 0.45 itself: only fold 2's images can differ at a fixed 0.45
    assert scores["0.45"].to_rows()[:6] == saved[:6]
    high = numbers["pooled"]["0.9"]["empty_prediction_rate"]["value"]
    assert high >= numbers["pooled"]["chosen"]["empty_prediction_rate"]["value"]
    assert "| chosen on validation |" in text and "| 0.9 fixed |" in text
    assert "12 test images of" in text


def test_bad_thresholds_and_unfinished_runs_are_refused(tmp_path, capsys):
    for value in ("0", "1.5", "x"):
        with pytest.raises(SystemExit):
            fixed_thresholds.build_parser().parse_args([str(tmp_path), "--thresholds", value])
        assert "argument --thresholds: must be" in capsys.readouterr().err
    assert fixed_thresholds.main([str(tmp_path)]) == 2
    assert "no metrics.json: the run has not finished" in capsys.readouterr().err
