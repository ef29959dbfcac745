"""experiments/compare_fold_runs.py: two finished folds runs compared image by image."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "experiments"))
try:
    import beyond_folds
    import compare_fold_runs as compare
finally:
    sys.path.remove(str(REPO / "experiments"))


def _row(image, patient, found_score=None, fp_scores=()):
    """One mass image: its mass found at ``found_score`` (None: missed)."""
    tp, fn = (30, 10) if found_score is not None else (0, 40)
    return {
        "image_id": image,
        "patient_id": patient,
        "tp": tp,
        "fp": 10 if found_score is not None else 0,
        "fn": fn,
        "lesion_scores": [found_score],
        "false_positive_scores": list(fp_scores),
    }


def _write_run(folder: Path, folds: list[list[dict]], prefix: str = "fold") -> Path:
    for k, rows in enumerate(folds, 1):
        (folder / f"{prefix}_{k}").mkdir(parents=True)
        result = {"status": "ok", "test_images": rows}
        (folder / f"{prefix}_{k}" / "result.json").write_text(json.dumps(result))
    (folder / "metrics.json").write_text(
        json.dumps({"folds": [{"fold": k} for k in range(1, len(folds) + 1)]})
    )
    return folder


def _two_runs(tmp_path):
    # Eight patients, one mass image each; base finds 2 masses, other finds 6 (a superset).
    found_base = {0, 1}
    found_other = {0, 1, 2, 3, 4, 5}
    base, other = [[], []], [[], []]
    for i in range(8):
        fold = i % 2
        base[fold].append(_row(f"img{i}", f"p{i}", 0.9 if i in found_base else None))
        other[fold].append(_row(f"img{i}", f"p{i}", 0.9 if i in found_other else None))
    return _write_run(tmp_path / "base", base), _write_run(tmp_path / "other", other)


def test_load_pools_the_folds_in_fold_order(tmp_path):
    base_dir, _ = _two_runs(tmp_path)
    (base_dir / "fold_notes").mkdir()  # not a fold: ignored
    scores = compare.load_run_scores(base_dir)
    assert scores.image_ids == ("img0", "img2", "img4", "img6", "img1", "img3", "img5", "img7")
    assert scores.metrics()["froc"][1.0] == pytest.approx(2 / 8)


def test_the_difference_and_its_verdict_are_paired(tmp_path):
    base_dir, other_dir = _two_runs(tmp_path)
    base, other = compare.load_run_scores(base_dir), compare.load_run_scores(other_dir)
    table, numbers = compare.comparison_table(base, other, names=("base", "other"), seed=0)
    diff = numbers["difference"]["lesion_sensitivity_at_1fppi"]
    assert diff["value"] == pytest.approx(6 / 8 - 2 / 8)
    # Every resample has other >= base (a superset of finds); 0 only if no patient 2-5 drawn.
    assert 0.0 <= diff["low"] <= diff["value"] <= diff["high"] <= 1.0
    empty = numbers["difference"]["empty_prediction_rate"]
    assert empty["value"] == pytest.approx(2 / 8 - 6 / 8)  # fewer empty masks
    assert "| sensitivity at 1 FP/image | 0.25 [" in table
    assert "8 test images of 8 patients, 8 masses" in table


def test_difference_verdicts():
    verdict = beyond_folds.difference_verdict
    assert verdict({"value": 0.3, "low": 0.1, "high": 0.5}, "froc_mean") == "second better"
    assert verdict({"value": -0.3, "low": -0.5, "high": -0.1}, "froc_mean") == "second worse"
    low_empty = {"value": -0.3, "low": -0.5, "high": -0.1}
    assert verdict(low_empty, "empty_prediction_rate") == "second better"
    assert verdict(low_empty, "empty_prediction_rate", "re-ranked") == "re-ranked better"
    same = {"value": 0.0, "low": 0.0, "high": 0.0}
    assert verdict(same, "dice_per_image_mean") == "the same on every image"
    holds = {"value": 0.1, "low": -0.1, "high": 0.3}
    assert verdict(holds, "froc_mean") == "undecided (the interval holds 0)"
    assert verdict({"value": None, "low": None, "high": None}, "froc_mean") == "n/a"


def test_runs_of_other_images_are_refused(tmp_path):
    base_dir, _ = _two_runs(tmp_path)
    rows = [[_row("x0", "q0", 0.9)], [_row("x1", "q1")]]
    other_dir = _write_run(tmp_path / "elsewhere", rows)
    base, other = compare.load_run_scores(base_dir), compare.load_run_scores(other_dir)
    with pytest.raises(ValueError, match=r"same --data, --folds and --seed"):
        compare.comparison_table(base, other, names=("a", "b"))


def test_unfinished_missing_or_absent_folds_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no fold_<k>/result.json"):
        compare.load_run_scores(tmp_path)
    base_dir, _ = _two_runs(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"no fp_<k>/result.json"):
        compare.load_run_scores(base_dir, "fp")
    (base_dir / "metrics.json").write_text(json.dumps({"folds": [{}, {}, {}]}))
    with pytest.raises(RuntimeError, match=r"2 fold_<k>/result.json for the 3 folds"):
        compare.load_run_scores(base_dir)  # a fold at the end missing
    (base_dir / "metrics.json").unlink()
    with pytest.raises(RuntimeError, match=r"no metrics.json: the run has not finished"):
        compare.load_run_scores(base_dir)
    (base_dir / "metrics.json").write_text(json.dumps({"folds": [{}, {}, {}]}))
    (base_dir / "fold_4").mkdir()
    (base_dir / "fold_4" / "result.json").write_text(json.dumps({"status": "ok"}))
    with pytest.raises(RuntimeError, match=r"fold_3/result.json is missing"):
        compare.load_run_scores(base_dir)
    (base_dir / "fold_4" / "result.json").unlink()
    (base_dir / "metrics.json").write_text(json.dumps({"folds": [{}, {}]}))
    (base_dir / "fold_2" / "result.json").write_text(json.dumps({"status": "failed"}))
    with pytest.raises(RuntimeError, match=r"fold_2/result.json: the fold did not finish"):
        compare.load_run_scores(base_dir)


def test_the_command_writes_a_new_table_and_keeps_an_existing_file(tmp_path, capsys):
    base_dir, other_dir = _two_runs(tmp_path)
    out = tmp_path / "table.md"
    assert (
        compare.main([str(base_dir), str(other_dir), "--name", "more", "--output", str(out)]) == 0
    )
    text = out.read_text()
    assert "| metric | base (plain) | more |" in text and text in capsys.readouterr().out
    out.write_text("mine")
    assert compare.main([str(base_dir), str(other_dir), "--output", str(out)]) == 2
    assert out.read_text() == "mine" and "exists" in capsys.readouterr().err
    assert compare.main([str(base_dir), str(tmp_path / "nowhere")]) == 2
    assert "nowhere: no fold_<k>/result.json" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.part"))
    assert np.isfinite(compare.load_run_scores(other_dir).metrics()["froc_mean"])
