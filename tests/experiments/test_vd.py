"""Section V.D: the authors' large-tumour subset trains on non-empty masks, and the over-fit
check is measured on the subset's own training images."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"
sys.path.insert(0, str(EXPERIMENTS))

import common  # noqa: E402
import section_vd_augmentation_oversampling as vd  # noqa: E402

from mammoseg import data as mdata  # noqa: E402

MIAS_DEV = Path(__file__).resolve().parents[3] / "shared" / "data" / "mias-dev"


def _masks(records, kinds, protocol="ours"):
    return common.decode_split(records, 64, kinds=kinds, protocol=protocol)[1]


def _empty(masks) -> int:
    return int((masks.reshape(len(masks), -1).sum(axis=1) == 0).sum())


@pytest.mark.parametrize("kinds", [None, ("mass",)])
def test_every_subset_image_of_the_phantom_has_a_mask(kinds):
    records = mdata.load_records("phantom", n_images=24, size=256)
    subset = vd.large_tumour_subset(records, kinds=kinds, min_radius=12.5)
    assert subset
    assert all(r.has_lesion(kinds) for r in subset)
    assert _empty(_masks(subset, kinds)) == 0


@pytest.mark.skipif(not MIAS_DEV.is_dir(), reason=f"mias-dev excerpt absent: {MIAS_DEV}")
@pytest.mark.parametrize(
    ("kinds", "protocol", "expected"),
    # mias-dev (mdb001-110): lines with radius > 50 px of every kind, and of masses only
    [(None, "ours", 10), (("mass",), "ours", 6), (None, "authors", 10)],
)
def test_every_subset_image_of_mias_dev_has_a_mask(kinds, protocol, expected):
    records = mdata.load_records("mias", MIAS_DEV)
    chosen_by = None if protocol == "authors" else kinds
    subset = vd.large_tumour_subset(records, kinds=chosen_by, min_radius=50.0)
    assert len(subset) == expected
    assert _empty(_masks(subset, chosen_by, protocol)) == 0


@pytest.mark.skipif(not MIAS_DEV.is_dir(), reason=f"mias-dev excerpt absent: {MIAS_DEV}")
def test_the_old_mismatch_left_subset_images_without_a_mask():
    # Chosen from every kind but drawn with masses only (the old script): 4 of 10 empty.
    records = mdata.load_records("mias", MIAS_DEV)
    subset = vd.large_tumour_subset(records, kinds=None, min_radius=50.0)
    assert _empty(_masks(subset, ("mass",))) == 4


def test_overfit_check_scores_the_training_images_it_was_given():
    # A model that returns its input: fed the masks themselves it reproduces them (Dice 1 on
    # both images); fed zeros it predicts nothing (every image empty, Dice 0).
    masks = np.zeros((2, 8, 8, 1), np.float32)
    masks[0, 2:5, 2:5] = 1
    masks[1, 0:2, 0:8] = 1
    inputs = keras.Input((8, 8, 1))
    model = keras.Model(inputs, keras.layers.Identity()(inputs))
    check = vd.TrainingImagesCheck(masks, masks.astype(np.uint8))
    check.set_model(model)
    check.on_train_end()
    assert check.result["n_images"] == 2 and check.result["dice_per_image_mean"] == 1.0
    assert check.result["empty_prediction_rate"] == 0.0
    blind = vd.TrainingImagesCheck(np.zeros_like(masks), masks.astype(np.uint8))
    blind.set_model(model)
    blind.on_train_end()
    assert blind.result["dice_per_image_mean"] == 0.0
    assert blind.result["empty_prediction_rate"] == 1.0


def test_schedules_are_the_authors_at_paper_scale_and_scaled_by_default():
    paper, default = vd.SCHEDULES["paper"], vd.SCHEDULES["default"]
    assert (paper.batch_size, paper.steps, paper.epochs) == (1, 300, 10)
    assert default.batch_size * default.steps * default.epochs == 2400


@pytest.mark.slow
def test_quick_run_reports_the_overfit_check_on_the_subset(tmp_path):
    out = tmp_path / "vd"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run(
        [
            sys.executable,
            str(EXPERIMENTS / "section_vd_augmentation_oversampling.py"),
            "--quick",
            f"--output-dir={out}",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    run = json.loads((out / "metrics.json").read_text())["runs"]["authors_subset"]
    assert run["train_subset"]["n_images"] == run["subset_images"] > 0
    report = (out / "report.md").read_text()
    assert "over-fit check on its own training images" in report
    assert f"{run['subset_images']} training images: Dice/img" in report
    assert "fill_mode 'nearest'" in report
