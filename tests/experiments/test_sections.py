"""Every experiment script runs with --quick and leaves a complete run folder.

Each script runs in its own process (as users run them), so the Keras precision policy a run
sets never leaks into other tests.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXPERIMENTS = REPO / "experiments"
SCRIPTS = [
    "section_iva_logistic_regression.py",
    "section_va_preliminary_regression.py",
    "section_vb_semantic_segmentation.py",
    "section_vc_weighted_loss.py",
    "section_vd_augmentation_oversampling.py",
    "section_ve_data_vs_model.py",
]


def run_script(
    script: str, *args: str, check: bool = True, timeout: float = 900
) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run(
        [sys.executable, str(EXPERIMENTS / script), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )
    if check and done.returncode != 0:
        raise AssertionError(
            f"{script} {args} failed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
        )
    return done


def history_epochs(path: Path) -> list[int]:
    with open(path, newline="") as handle:
        return [int(row["epoch"]) for row in csv.DictReader(handle)]


@pytest.mark.slow
@pytest.mark.parametrize("script", SCRIPTS)
def test_quick_run_writes_report_metrics_and_figures(script, tmp_path):
    out = tmp_path / "run"
    run_script(script, "--quick", f"--output-dir={out}")
    report = (out / "report.md").read_text()
    assert report.startswith("# Section ")
    assert "| what | paper | ours | verdict |" in report
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["setup"]["mode"] == "quick"
    assert metrics["findings"], "the report has no findings"
    runs = metrics["runs"]
    assert runs and all(r["status"] == "ok" for r in runs.values()), runs
    if script == "section_va_preliminary_regression.py":
        return  # a regression: no masks, no figures
    assert (out / "fig1_sample.png").stat().st_size > 1000
    for name, result in runs.items():
        for split in ("val", "test"):
            m = result[split]
            assert 0.0 <= m["mean_iou_both_classes"] <= 1.0
            assert 0.0 <= m["empty_prediction_rate"] <= 1.0
            assert m["n_images"] == metrics["setup"]["split_sizes"][split]
        if "history" in result and result["history"]:
            folder = out / name
            assert (folder / "model.keras").is_file()
            assert (folder / "tensorboard").is_dir()
            assert history_epochs(folder / "history.csv") == [0]
    if script != "section_iva_logistic_regression.py":
        assert (out / "fig4_mean_iou.png").is_file() and (out / "loss_curves.png").is_file()


@pytest.mark.slow
def test_resume_continues_from_the_last_completed_epoch(tmp_path):
    out = tmp_path / "vc"
    common = ["--quick", "--epochs=2", f"--output-dir={out}", "--only", "bce_1_1", "dice"]
    first = run_script("section_vc_weighted_loss.py", *common, "--stop-after-epoch=1", check=False)
    assert first.returncode != 0
    assert "stopped after epoch 1" in first.stderr
    assert history_epochs(out / "bce_1_1" / "history.csv") == [0]
    assert not (out / "report.md").exists()

    second = run_script("section_vc_weighted_loss.py", *common, "--resume")
    # --resume reached training: a fresh retrain would give the same files (issue #20).
    assert "resuming after epoch 1" in second.stdout
    for name in ("bce_1_1", "dice"):
        assert history_epochs(out / name / "history.csv") == [0, 1], name
        assert not (out / name / "backup").exists()  # removed once training completed
    metrics = json.loads((out / "metrics.json").read_text())
    assert all(r["status"] == "ok" for r in metrics["runs"].values())
    # The half-epoch curve of the resumed run covers the second epoch only once.
    epochs = [row["epoch"] for row in metrics["runs"]["bce_1_1"]["half_epoch"]]
    assert epochs.count(2.0) == 1
    assert "## Failed sub-runs" not in (out / "report.md").read_text()


@pytest.mark.slow
def test_a_failing_sub_run_is_reported_and_the_others_still_run(tmp_path):
    out = tmp_path / "ve"
    missing = tmp_path / "no_such_s10_YaroslavNet.h5"
    done = run_script(
        "section_ve_data_vs_model.py",
        "--quick",
        f"--output-dir={out}",
        f"--yaroslav-weights={missing}",
        check=False,
    )
    # The report lists what succeeded; the exit status says a sub-run failed.
    assert done.returncode == 1
    # Both transfer rows (the paper's dense head and ours) need the weights file.
    assert "2 of 4 sub-run(s) failed: yaroslav_transfer, yaroslav_fcn" in done.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    runs = metrics["runs"]
    assert runs["yaroslav_transfer"]["status"] == "failed"
    assert "no_such_s10_YaroslavNet.h5" in runs["yaroslav_transfer"]["error"]
    assert runs["unet_breast_outline"]["status"] == "ok"
    assert runs["unet_tumour"]["status"] == "ok"
    report = (out / "report.md").read_text()
    assert "## Failed sub-runs" in report and "yaroslav_transfer" in report


def test_bad_data_option_is_a_clear_error(tmp_path):
    done = run_script(
        "section_vc_weighted_loss.py",
        "--quick",
        "--data=mias",
        f"--output-dir={tmp_path}",
        check=False,
    )
    assert done.returncode != 0
    assert "--data must be 'phantom', 'mias:PATH' or 'cbis-ddsm:PATH'" in done.stderr


@pytest.mark.slow
def test_run_all_quick_writes_the_summary_table(tmp_path):
    out = tmp_path / "all"
    run_script("run_all.py", "--quick", f"--output-dir={out}", "--only", "IV.A", "V.A")
    summary = (out / "summary.md").read_text()
    assert "| section | what | paper | ours | verdict |" in summary
    for section in ("IV.A", "V.A"):
        assert f"| {section} | ok" in summary
        assert f"\n| {section} | " in summary.split("| section | what")[1]
    assert "V.B" not in summary.split("| section | what")[0]  # not asked for


@pytest.mark.slow
def test_quick_run_on_a_cbis_ddsm_layout(tmp_path):
    from mammoseg.data.phantom_cbis import write_cbis_phantom

    root = write_cbis_phantom(tmp_path / "cbis", 16, seed=0, size=256, progress=False)
    out = tmp_path / "run"
    run_script(
        "section_vb_semantic_segmentation.py",
        "--quick",
        f"--data=cbis-ddsm:{root}",
        f"--output-dir={out}",
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["setup"]["data"] == f"cbis-ddsm:{root}"
    assert all(r["status"] == "ok" for r in metrics["runs"].values())
    # Patients (P_xxxxx), not files, were split: every record of a woman is in one part.
    assert sum(metrics["setup"]["split_sizes"].values()) >= 16
