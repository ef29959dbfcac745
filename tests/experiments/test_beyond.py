"""The beyond-the-paper recipe runs end to end with --quick and its model predicts new images."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "experiments" / "beyond_mass_segmentation.py"
SPLIT_KEYS = {
    "dice_per_image_mean",
    "dice_pooled",
    "foreground_iou",
    "empty_prediction_rate",
    "lesion_sensitivity_at_1fppi",
    "froc",
    "n_images",
}


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=env, timeout=900
    )
    if done.returncode != 0:
        raise AssertionError(f"{args} failed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}")
    return done


@pytest.mark.slow
def test_quick_run_writes_report_metrics_model_and_recipe(tmp_path):
    out = tmp_path / "run"
    _run(str(SCRIPT), "--quick", f"--output-dir={out}")
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["setup"]["mode"] == "quick"
    recipe = metrics["runs"]["recipe"]
    assert recipe["status"] == "ok"
    for split in ("val", "test"):
        for where in (metrics, recipe):
            assert SPLIT_KEYS <= set(where[split])
            assert set(where[split]["froc"]) == {"0.25", "0.5", "1.0", "2.0", "4.0", "8.0"}
            assert where[split]["n_images"] == 4
    assert metrics["threshold"] == recipe["threshold"] == recipe["val"]["threshold"]
    # The default recipe: phantom pre-training first, FP reduction after (same masks).
    assert metrics["runs"]["pretrain"]["status"] == "ok"
    assert recipe["recipe"]["init_weights"] == str(out / "pretrain" / "model.keras")
    fp = metrics["runs"]["fp"]
    assert fp["status"] == "ok" and metrics["test_fp_reduction"] == fp["test"]
    assert fp["test"]["dice_per_image_mean"] == recipe["test"]["dice_per_image_mean"]
    assert fp["classifier"]["hits"] >= 1 and (out / "fp" / "fp_classifier.keras").is_file()
    saved = json.loads((out / "recipe" / "recipe.json").read_text())["recipe"]
    assert saved["threshold"] == metrics["threshold"] and saved["working_size"] == 128
    # the region limit: chosen on validation, saved for `mammoseg predict`, used on test
    assert metrics["mask_regions"] == saved["mask_regions"] == recipe["test"]["mask_regions"]
    assert metrics["mask_regions"] in (None, 1, 2)
    assert {"all", "1", "2"} == set(recipe["threshold_curve"])
    for name in ("model.keras", "history.csv", "validation.csv"):
        assert (out / "recipe" / name).is_file()
    report = (out / "report.md").read_text()
    assert "| what | paper | ours | verdict |" in report
    assert "all-zero" in report and "ARF-Net" in report
    assert "smoke test: no verdict" in report and "MET" not in report  # --quick: no verdicts
    assert all((out / f).is_file() for f in recipe["figures"])

    # The trained model predicts a new image through the console command's code.
    source = _phantom_image(tmp_path)
    _run(
        "-m",
        "mammoseg.cli",
        "predict",
        "--model",
        str(out / "recipe" / "model.keras"),
        str(source),
        "--output-dir",
        str(tmp_path / "pred"),
    )
    assert (tmp_path / "pred" / f"{source.stem}_mask.png").is_file()
    assert (tmp_path / "pred" / f"{source.stem}_overlay.png").is_file()


def _phantom_image(tmp_path: Path) -> Path:
    from mammoseg.data import phantom

    root = phantom.generate(tmp_path / "ph", n_images=1, size=128, progress=False)
    return root / "mdb001.pgm"


def test_set_overrides_recipe_fields_and_names_bad_keys():
    sys.path.insert(0, str(REPO / "experiments"))
    try:
        import beyond_mass_segmentation as beyond
    finally:
        sys.path.remove(str(REPO / "experiments"))
    base = beyond.CONFIGS["default"]
    config = beyond.apply_overrides(base, ["working_size=256", "scale_range=[0.8, 1.25]"])
    assert config.working_size == 256 and config.scale_range == (0.8, 1.25)
    assert config.patch_size == base.patch_size
    assert beyond.apply_overrides(base, ["loss=focal_tversky"]).loss == "focal_tversky"
    with pytest.raises(SystemExit, match="working_sise=256.*did you mean 'working_size'"):
        beyond.apply_overrides(base, ["working_sise=256"])
    with pytest.raises(SystemExit, match="`patch_size` must be a multiple"):
        beyond.apply_overrides(base, ["patch_size=100"])
    assert beyond.apply_overrides(base, ["time_budget_minutes=None"]).time_budget_minutes is None
    assert beyond.apply_overrides(base, ["time_budget_minutes=null"]).time_budget_minutes is None
    with pytest.raises(SystemExit, match="--set epochs=many: expected a number"):
        beyond.apply_overrides(base, ["epochs=many"])
    with pytest.raises(SystemExit, match="--set tta=1: expected true or false"):
        beyond.apply_overrides(base, ["tta=1"])


@pytest.mark.slow
def test_deterministic_runs_repeat_to_the_bit(tmp_path):
    import keras
    import numpy as np

    weights, metrics = [], []
    for name in ("a", "b"):
        out = tmp_path / name
        _run(str(SCRIPT), "--quick", "--seed", "3", "--deterministic", "--output-dir", str(out))
        model = keras.saving.load_model(out / "recipe" / "model.keras", compile=False)
        weights.append(np.concatenate([w.ravel() for w in model.get_weights()]))
        saved = json.loads((out / "metrics.json").read_text())
        assert saved["setup"]["deterministic"] is True
        metrics.append((saved["test"], saved.get("test_fp_reduction")))
    np.testing.assert_array_equal(weights[0], weights[1])
    assert metrics[0] == metrics[1]
