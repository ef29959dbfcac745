"""`beyond_mass_segmentation.py --folds K`: every image tested once, pooled figures with
bootstrap intervals over patients, clear errors for a bad K."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from mammoseg.recipes import ImageScores, RecipeConfig, pretrain_config

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "experiments" / "beyond_mass_segmentation.py"
sys.path.insert(0, str(REPO / "experiments"))
try:
    import beyond_folds
    import beyond_mass_segmentation as beyond
finally:
    sys.path.remove(str(REPO / "experiments"))


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=900
    )


@pytest.mark.slow
def test_quick_two_folds_score_every_image_once_and_report_intervals(tmp_path):
    out = tmp_path / "run"
    done = _run("--quick", "--folds", "2", f"--output-dir={out}", "--no-fp-reduction")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["setup"]["deterministic"] is True  # on by default for the recipe

    # Phantom pre-training is the default: one pre-trained model, every fold starts from it.
    pretrain = metrics["runs"]["pretrain"]
    assert pretrain["status"] == "ok" and pretrain["phantom_seed"] == 1  # not the tested phantom
    start = str(out / "pretrain" / "model.keras")
    assert [metrics["runs"][f"fold_{k}"]["recipe"]["init_weights"] for k in (1, 2)] == [start] * 2
    assert "pre-trained on 14 phantom mammograms (seed 1;" in (out / "report.md").read_text()
    assert "fp_1" not in metrics["runs"]  # --no-fp-reduction

    # The pooled per-image table holds each of the 24 phantom images exactly once, and the
    # two folds' test images are disjoint by patient.
    with open(out / "test_images.csv") as handle:
        rows = list(csv.DictReader(handle))
    from mammoseg.data import load_records

    records = load_records("phantom", n_images=24, size=256)
    assert sorted(row["image_id"] for row in rows) == sorted(r.image_id for r in records)
    patients = {k: {row["patient_id"] for row in rows if row["fold"] == k} for k in "12"}
    assert patients["1"] and patients["2"] and not patients["1"] & patients["2"]
    pooled = metrics["pooled"]
    assert pooled["n_images"] == 24 and pooled["n_patients"] == 12
    masses = sum(len(r.lesions) for r in records if r.has_lesion(("mass",)))
    assert pooled["n_lesions"] == sum(int(row["lesions"]) for row in rows) == masses

    # Every headline figure has a value and a 95 % interval around it.
    names = [
        "dice_per_image_mean",
        "empty_prediction_rate",
        "froc_mean",
        "lesion_sensitivity_at_0.5fppi",
        "lesion_sensitivity_at_1fppi",
        "lesion_sensitivity_at_2fppi",
    ]
    for name in names:
        entry = pooled[name]
        assert entry["low"] <= entry["value"] <= entry["high"], name
    assert set(pooled["froc"]) == {"0.25", "0.5", "1.0", "2.0", "4.0", "8.0"}
    assert pooled["bootstrap"]["unit"] == "patient" and pooled["bootstrap"]["resamples"] == 2000
    assert [row["fold"] for row in metrics["folds"]] == [1, 2]
    assert sum(row["images"][2] for row in metrics["folds"]) == 24  # test parts: every image

    report = (out / "report.md").read_text()
    assert "| pooled test lesion sensitivity at 0.5 / 1 / 2 FP per image |" in report
    value = pooled["lesion_sensitivity_at_1fppi"]
    assert f"{value['value']:.2f} [{value['low']:.2f}, {value['high']:.2f}]" in report
    assert "| fold | patients | images | mass images |" in report and "| 2 | " in report
    assert "bootstrap over patients" in report and "(froc_folds.png)" in report
    assert (out / "froc_folds.png").is_file() and (out / "fold_2" / "model.keras").is_file()

    # --resume reuses the pre-training and both finished folds: the same pooled figures.
    again = _run("--quick", "--folds", "2", f"--output-dir={out}", "--resume", "--no-fp-reduction")
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("already complete, reusing its result") == 3
    assert json.loads((out / "metrics.json").read_text())["pooled"] == pooled

    # Resuming with another start would mix two recipes in one pooled table: refused, by name.
    mixed = _run("--quick", "--folds", "2", f"--output-dir={out}", "--resume", "--pretrain=none")
    assert mixed.returncode != 0 and "was trained from init_weights=" in mixed.stderr
    assert f"{out / 'fold_1'}" in mixed.stderr and "[fold_" not in mixed.stdout  # nothing ran

    # FP reduction (the default) on the finished run: each fold's classifier beside the reused
    # folds, the same images and masks (same Dice, a paired difference of exactly 0),
    # re-ranked candidates.
    fp = _run("--quick", "--folds", "2", f"--output-dir={out}", "--resume")
    assert fp.returncode == 0, fp.stdout[-3000:] + fp.stderr[-3000:]
    assert fp.stdout.count("already complete, reusing its result") == 3
    assert (out / "fp_1" / "fp_classifier.keras").is_file() and (
        out / "froc_folds_fp.png"
    ).is_file()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["pooled"] == pooled
    reduced = metrics["pooled_fp_reduction"]
    assert reduced["dice_per_image_mean"] == pooled["dice_per_image_mean"]
    assert reduced["n_lesions"] == pooled["n_lesions"] and reduced["n_images"] == 24
    assert metrics["fp_reduction_minus_plain"]["dice_per_image_mean"] == {
        "value": 0.0,
        "low": 0.0,
        "high": 0.0,
    }
    with open(out / "test_images_fp.csv") as handle:
        fp_rows = list(csv.DictReader(handle))
    assert [r["image_id"] for r in fp_rows] == [r["image_id"] for r in rows]
    assert [r["lesions_found"] for r in fp_rows] == [r["lesions_found"] for r in rows]
    assert "| with FP reduction minus without:" in (out / "report.md").read_text()


@pytest.mark.parametrize(
    "value, message",
    [
        ("0", "argument --folds: must be an integer >= 2 (one fold would leave nothing to train"),
        ("1", "argument --folds: must be an integer >= 2 (one fold would leave nothing to train"),
        ("-3", "argument --folds: must be an integer >= 2"),
        ("two", "argument --folds: must be an integer >= 2, received 'two'"),
    ],
)
def test_bad_fold_counts_name_the_option(value, message, capsys):
    with pytest.raises(SystemExit) as stop:
        beyond.build_parser().parse_args(["--folds", value])
    assert stop.value.code == 2
    assert message in capsys.readouterr().err


def _phantom_run(records):
    return SimpleNamespace(
        load_records=lambda: records, split_seed=0, args=SimpleNamespace(data="phantom")
    )


def test_more_folds_than_patients_is_refused_before_training(tmp_path):
    from mammoseg.data import load_records

    records = load_records("phantom", n_images=24, size=256)  # 12 patients, 6 with a mass
    with pytest.raises(
        SystemExit,
        match=r"--folds 13: `n_folds` must be at most the number of "
        r"patients \(12\).*24 images of 12 patients, 6 of them with a mass",
    ):
        beyond_folds.make_folds(_phantom_run(records), 13, ("mass",))
    with pytest.raises(SystemExit, match=r"--folds 7: .*patients with a lesion \(6\)"):
        beyond_folds.make_folds(_phantom_run(records), 7, ("mass",))
    folds = beyond_folds.make_folds(_phantom_run(records), 6, ("mass",))
    assert [sum(r.has_lesion() for r in fold.test) for fold in folds].count(0) == 0


def test_fold_budget_only_with_folds_and_only_where_not_set():
    default = beyond.CONFIGS["default"]
    assert default.time_budget_minutes == 24.0 and default.epochs == 30  # single split: as was
    per_fold = beyond_folds.fold_config(default, "default", set())
    settings = beyond_folds.FOLD_SETTINGS["default"]
    assert per_fold.time_budget_minutes == settings["time_budget_minutes"] < 24.0
    assert (per_fold.epochs, per_fold.patience) == (settings["epochs"], settings["patience"])
    assert per_fold.working_size == default.working_size
    items = ["time_budget_minutes=12", "working_size=256"]
    kept = beyond_folds.fold_config(default, "default", beyond_folds.set_keys(items))
    assert kept.time_budget_minutes == 24.0  # --set then decides, per fold
    assert beyond.apply_overrides(kept, items).time_budget_minutes == 12.0
    quick = beyond.CONFIGS["quick"]
    assert beyond_folds.fold_config(quick, "quick", set()) == quick
    assert RecipeConfig().time_budget_minutes == 20.0  # the library's default is untouched


def test_determinism_is_on_by_default_with_an_opt_out():
    parser = beyond.build_parser()
    assert parser.parse_args([]).deterministic is True
    assert parser.parse_args(["--no-deterministic"]).deterministic is False
    assert parser.parse_args(["--folds", "5"]).folds == 5


def _scores(dice_a: float, dice_b: float) -> ImageScores:
    # Patient a: one mass image, TP 1 of 1 truth pixel + FP so that its Dice is dice_a, the mass
    # found at 0.9; patient b likewise with dice_b, its mass missed; no false-positive regions.
    def counts(dice):
        fp = 2 / dice - 2  # Dice = 2 / (2 + FP) with TP 1, FN 0
        return [1, round(fp), 0]

    return ImageScores(
        ("a1", "b1"),
        ("a", "b"),
        np.array([counts(dice_a), counts(dice_b)]),
        (np.array([0.9]), np.array([np.nan])),
        (np.zeros(0), np.zeros(0)),
    )


def test_pooled_metrics_intervals_on_two_patients():
    # Resamples: (a, a), (b, b) a quarter of the time each, (a, b) half: the Dice per mass
    # image is 0.5, 0.25 or 0.375 and the sensitivity 1, 0 or 0.5, at every FP rate.
    pooled = beyond_folds.pooled_metrics(_scores(0.5, 0.25), seed=0, n_resamples=400)
    assert pooled["dice_per_image_mean"] == pytest.approx(
        {"value": 0.375, "low": 0.25, "high": 0.5}
    )
    assert pooled["lesion_sensitivity_at_1fppi"] == {"value": 0.5, "low": 0.0, "high": 1.0}
    assert pooled["empty_prediction_rate"] == {"value": 0.0, "low": 0.0, "high": 0.0}
    assert pooled["froc"]["8.0"] == pooled["lesion_sensitivity_at_2fppi"]
    band = pooled["froc_band"]
    assert len(band["fppi"]) == len(band["low"]) == len(band["high"]) == len(band["sensitivity"])
    assert set(band["sensitivity"]) == {0.5}
    assert (pooled["n_images"], pooled["n_patients"], pooled["n_lesions"]) == (2, 2, 2)


def test_pooled_scores_refuse_an_image_tested_twice():
    scores = _scores(0.5, 0.25)
    fold = SimpleNamespace(test=[SimpleNamespace(image_id="a1"), SimpleNamespace(image_id="b1")])
    result = {"test_images": scores.to_rows()}
    pooled, fold_of = beyond_folds.pooled_scores([fold], [result])
    assert pooled.image_ids == ("a1", "b1") and fold_of == [1, 1]
    with pytest.raises(ValueError, match=r"images scored more than once: \['a1', 'b1'\]"):
        beyond_folds.pooled_scores([fold, fold], [result, result])
    short = {"test_images": scores.subset([0]).to_rows()}
    with pytest.raises(RuntimeError, match=r"not the folds' test images: \['b1'\]"):
        beyond_folds.pooled_scores([fold], [short])


def test_interval_verdicts():
    entry = {"value": 0.85, "low": 0.7, "high": 0.95}
    assert beyond_folds.interval_verdict(entry, 0.8) == (
        "target ≥ 0.8: MET (the interval crosses it)"
    )
    assert beyond_folds.interval_verdict(
        {"value": 0.04, "low": 0.0, "high": 0.05}, 0.1, higher=False
    ) == ("target ≤ 0.1: MET (so is the whole interval)")
    assert beyond_folds.interval_verdict(entry, None) == "no target for this data"
    assert beyond_folds.interval_text({"value": None, "low": None, "high": None}) == "n/a"


def test_fp_reduction_findings_judge_the_paired_froc_difference():
    def entry(value, low, high):
        return {"value": value, "low": low, "high": high}

    pooled = {f"lesion_sensitivity_at_{r:g}fppi": entry(0.5, 0.25, 0.75) for r in (0.5, 1, 2)}
    paired = {f"lesion_sensitivity_at_{r:g}fppi": entry(0.1, -0.1, 0.3) for r in (0.5, 1, 2)}
    rows = beyond_folds.fp_reduction_findings(
        pooled, {**paired, "froc_mean": entry(0.1, 0.02, 0.2)}
    )
    assert rows[0][2] == "0.50 [0.25, 0.75] / 0.50 [0.25, 0.75] / 0.50 [0.25, 0.75]"
    assert rows[1][2].endswith("; 0.100 [0.020, 0.200]")
    assert rows[1][3] == "re-ranked better (paired bootstrap over patients)"
    worse = beyond_folds.fp_reduction_findings(
        pooled, {**paired, "froc_mean": entry(-0.1, -0.2, -0.01)}
    )
    assert worse[1][3] == "re-ranked worse (paired bootstrap over patients)"
    holds = beyond_folds.fp_reduction_findings(
        pooled, {**paired, "froc_mean": entry(0.1, -0.1, 0.3)}
    )
    assert holds[1][3] == "undecided (the interval holds 0) (paired bootstrap over patients)"


def test_paired_difference_resamples_both_on_the_same_patients():
    base = _scores(0.5, 0.25)  # a's mass found, b's missed
    found = ImageScores(
        base.image_ids, base.patient_ids, base.counts, (np.array([0.9]), np.array([0.8])),
        base.false_positive_scores,
    )  # fmt: skip
    diff = beyond_folds.paired_difference(base, found, seed=0, n_resamples=400)
    # Resamples (a, a): +0; (b, b): +1; (a, b): +0.5 (sensitivity at every rate).
    assert diff["lesion_sensitivity_at_1fppi"] == {"value": 0.5, "low": 0.0, "high": 1.0}
    assert diff["froc_mean"] == {"value": 0.5, "low": 0.0, "high": 1.0}
    assert diff["dice_per_image_mean"] == {"value": 0.0, "low": 0.0, "high": 0.0}
    # The other way round, the difference changes sign.
    back = beyond_folds.paired_difference(found, base, seed=0, n_resamples=400)
    assert back["lesion_sensitivity_at_1fppi"] == {"value": -0.5, "low": -1.0, "high": 0.0}
    with pytest.raises(ValueError, match="not score the same images"):
        beyond_folds.paired_difference(base, base.subset([1, 0]), seed=0)


def test_pretraining_and_fp_reduction_are_the_default_with_opt_outs(capsys):
    parser = beyond.build_parser()
    default = parser.parse_args([])
    assert (default.pretrain, default.fp_reduction, default.pretrain_minutes) == (
        "phantom",
        True,
        None,
    )
    assert parser.parse_args(["--no-fp-reduction"]).fp_reduction is False
    assert parser.parse_args(["--pretrain", "none"]).pretrain == "none"
    assert parser.parse_args(["--pretrain-minutes", "2.5"]).pretrain_minutes == 2.5
    for value, message in [
        ("0", "must be positive, received 0"),
        ("ten", "must be a number of minutes, received 'ten'"),
    ]:
        with pytest.raises(SystemExit):
            parser.parse_args(["--pretrain-minutes", value])
        assert f"argument --pretrain-minutes: {message}" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        beyond.main(["--quick", "--pretrain", "none", "--pretrain-minutes", "3"])
    assert "--pretrain-minutes needs --pretrain phantom" in capsys.readouterr().err


def test_the_default_mode_pretrains_on_the_measured_budget_whatever_the_fold_budget():
    # The setting measured in #17: the default recipe, 10 minutes, 16 epochs, patience 10,
    # also under --folds, whose models get 8 minutes, 12 epochs and patience 5.
    args = beyond.build_parser().parse_args(["--folds", "5", "--set", "working_size=320"])
    models, base = beyond.run_configs(args)
    assert (models.time_budget_minutes, models.epochs, models.patience) == (8.0, 12, 5)
    config = pretrain_config(base, **beyond.PRETRAIN["default"])
    assert (config.time_budget_minutes, config.epochs, config.patience) == (10.0, 16, 10)
    assert config.working_size == models.working_size == 320 and config.init_weights is None
    quick = beyond.CONFIGS["quick"]
    assert pretrain_config(quick, **beyond.PRETRAIN["quick"]).epochs == quick.epochs == 1
    args = beyond.build_parser().parse_args(["--quick", "--max-steps", "3"])
    _, base = beyond.run_configs(args)
    assert (base.epochs, base.steps_per_epoch) == (1, 3)


def _resumable(tmp_path, init_weights):
    (tmp_path / "fold_1").mkdir(parents=True)
    result = {"status": "ok", "recipe": RecipeConfig(init_weights=init_weights).to_dict()}
    (tmp_path / "fold_1" / "result.json").write_text(json.dumps(result))
    return SimpleNamespace(args=SimpleNamespace(resume=True), dir=tmp_path)


def test_resume_refuses_finished_models_with_another_start(tmp_path, monkeypatch):
    run = _resumable(tmp_path, None)
    started = RecipeConfig(init_weights=str(tmp_path / "pretrain" / "model.keras"))
    with pytest.raises(SystemExit, match=r"fold_1 was trained from init_weights=None, this run "):
        beyond.check_resumed_starts(run, ["fold_1", "fold_2"], started)
    beyond.check_resumed_starts(run, ["fold_1", "fold_2"], RecipeConfig())  # same start: fine
    run.args.resume = False
    beyond.check_resumed_starts(run, ["fold_1"], started)  # nothing is reused without --resume

    # The run's own pre-training is the same start however the folder is named now (moved).
    run = _resumable(tmp_path / "b", "/elsewhere/b/pretrain/model.keras")
    same = RecipeConfig(init_weights=str(tmp_path / "b" / "pretrain" / "model.keras"))
    beyond.check_resumed_starts(run, ["fold_1"], same)
    with pytest.raises(SystemExit, match="give a new --output-dir"):
        beyond.check_resumed_starts(run, ["fold_1"], RecipeConfig(init_weights="c/model.keras"))
    # A user's file named through another relative path is the same start.
    run = _resumable(tmp_path / "c", str(tmp_path / "mine" / "model.keras"))
    monkeypatch.chdir(tmp_path)
    beyond.check_resumed_starts(run, ["fold_1"], RecipeConfig(init_weights="mine/model.keras"))


def test_fp_rows_say_why_no_classifier_was_trained():
    run = SimpleNamespace(results={"fp": {"status": "not trained", "error": "no classifier: x"}})
    test = {"lesion_sensitivity_at_1fppi": 0.5, "froc_mean": 0.4}
    assert beyond._fp_rows(run, test, 0.8) == [
        ("candidates re-ranked by the FP classifier", "—", "no classifier: x", "—")
    ]
    classifier = {"hits": 3, "false_positives": 9}
    reduced = {"lesion_sensitivity_at_1fppi": 0.75, "froc_mean": 0.55}
    run.results["fp"] = {"status": "ok", "test": reduced, "classifier": classifier}
    sens, froc = beyond._fp_rows(run, test, 0.8)
    assert sens[2] == "0.750 (plain 0.500; classifier trained on 3 hits, 9 false positives)"
    assert sens[3] == "target ≥ 0.8: NOT met"
    assert froc[2] == "0.550 (plain 0.400)"


@pytest.mark.parametrize(
    ("data_name", "mode", "shown"),
    [("mias", "default", True), ("phantom", "default", False), ("mias", "quick", False)],
)
def test_the_fold_development_table_is_shown_only_for_default_mias_runs(
    monkeypatch, data_name, mode, shown
):
    monkeypatch.setattr(beyond_folds, "notes", lambda *args: "")
    run = SimpleNamespace(data_name=data_name, scale=SimpleNamespace(name=mode))
    text = beyond._fold_notes(run, RecipeConfig(), {"pooled": None, "folds": []})
    assert ("Development runs in 5 folds of mias-dev" in text) is shown
    assert "Development runs on the phantom" not in text  # the single split's table


def test_a_skipped_or_failed_pretraining_is_explained(tmp_path):
    args = SimpleNamespace(pretrain="phantom", pretrain_minutes=None, resume=False)
    run = SimpleNamespace(
        args=args,
        dir=tmp_path,
        scale=SimpleNamespace(name="quick"),
        sub_run=lambda name, fn: {"status": "skipped"},  # --sub-runs without "pretrain"
    )
    config = beyond.CONFIGS["quick"]
    with pytest.raises(SystemExit, match="add pretrain to --sub-runs, or pass --pretrain none"):
        beyond.with_pretraining(run, config, config, ["fold_1"])
    (tmp_path / "pretrain").mkdir()
    (tmp_path / "pretrain" / "result.json").write_text(json.dumps({"status": "ok"}))
    started = beyond.with_pretraining(run, config, config, ["fold_1"])  # the earlier one serves
    assert started.init_weights == str(tmp_path / "pretrain" / "model.keras")
    failed = {"status": "failed", "error": "OSError: disk full"}
    run.sub_run = lambda name, fn: failed
    with pytest.raises(SystemExit, match=r"failed: OSError: disk full \(a --resume reuses"):
        beyond.with_pretraining(run, config, config, ["fold_1"])
    args.pretrain = "none"  # from scratch: nothing to pre-train, the config as it was
    assert beyond.with_pretraining(run, config, config, ["fold_1"]) is config
