"""Issue #13: what the section scripts draw (--kinds), which pipeline they run (--protocol) and
how several seeds become one report (--seeds)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "experiments"))

import common  # noqa: E402
import reporting  # noqa: E402

from tests.experiments.test_sections import run_script  # noqa: E402

MIAS_DEV = REPO.parent / "shared" / "data" / "mias-dev"
needs_mias = pytest.mark.skipif(
    not (MIAS_DEV / "Info.txt").is_file(), reason=f"mias-dev not found at {MIAS_DEV}"
)


# ---------------------------------------------------------------- --kinds and --protocol


@needs_mias
@pytest.mark.parametrize(
    ("kinds", "protocol", "with_mask"),
    # facts.md §8: mias-dev has 34 images with a located lesion, 20 with a located mass; the
    # authors drew every kind (their last circle only), so 34 images have a mask there too.
    [("all", "ours", 34), ("mass", "ours", 20), ("mass", "authors", 34), ("all", "authors", 34)],
)
def test_mias_dev_masks_drawn_per_kinds_and_protocol(kinds, protocol, with_mask):
    from mammoseg import data

    records = data.load_records("mias", MIAS_DEV)
    assert len(records) == 110
    _, masks = common.decode_split(records, 64, kinds=common.KINDS[kinds], protocol=protocol)
    assert int(masks.reshape(len(masks), -1).any(axis=1).sum()) == with_mask


@needs_mias
def test_authors_masks_keep_only_the_last_circle_of_mdb005():
    from mammoseg import data

    record = next(r for r in data.load_records("mias", MIAS_DEV) if r.image_id == "mdb005")
    assert sum(les.has_region for les in record.lesions) == 2  # two Info.txt lines
    _, ours = common.decode_split([record], 256, kinds=None, protocol="ours")
    _, authors = common.decode_split([record], 256, kinds=None, protocol="authors")
    assert authors.sum() < ours.sum()
    assert np.all(ours[authors > 0] == 1)  # the last circle is one of ours


def test_the_section_options_default_to_the_papers_target_and_our_protocol():
    args = common.build_parser("t").parse_args([])
    assert (args.kinds, args.protocol, args.seeds) == ("all", "ours", None)
    assert common.KINDS[args.kinds] is None and common.KINDS["mass"] == ("mass",)
    # The mass recipe keeps its own target: the options are not offered.
    recipe = common.build_parser("t", target_options=False)
    assert (recipe.parse_args([]).kinds, recipe.parse_args([]).protocol) == ("mass", "ours")
    with pytest.raises(SystemExit):
        recipe.parse_args(["--kinds", "all"])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--kinds", "calc"], "argument --kinds: invalid choice: 'calc'"),
        (["--protocol", "theirs"], "argument --protocol: invalid choice: 'theirs'"),
        (["--seeds"], "argument --seeds: expected at least one argument"),
        (["--seeds", "-1"], "argument --seeds: must be a non-negative integer, received -1"),
        (["--seeds", "x"], "argument --seeds: must be an integer, received 'x'"),
        (["--seed", "1", "--see", "2"], "unrecognized arguments: --see 2"),
    ],
)
def test_bad_section_options_are_refused_by_name(argv, message, capsys):
    with pytest.raises(SystemExit):
        common.build_parser("t").parse_args(argv)
    assert message in capsys.readouterr().err


def test_authors_split_is_the_per_line_split_whatever_the_seed():
    from mammoseg.data import load_records

    records = load_records("phantom", n_images=24, size=256)
    first = common.split_records(records, protocol="authors", seed=0)
    again = common.split_records(records, protocol="authors", seed=7)
    assert [[r.image_id for r in part] for part in first] == [
        [r.image_id for r in part] for part in again
    ]
    ours = common.split_records(records, protocol="ours", seed=0)
    train = {r.patient_id for r in ours[0]}
    assert not train & {r.patient_id for r in ours[2]}  # ours never shares a patient


# ---------------------------------------------------------------- --seeds


def test_seed_argv_replaces_the_driver_options():
    argv = ["--quick", "--seeds", "0", "1", "--only", "dice", "--output-dir=x", "--seed", "5"]
    argv += ["--overwrite", "--protocol=authors"]
    assert common.seed_argv(argv, 1, 0, Path("x/seed_1")) == [
        "--quick",
        "--only",
        "dice",
        "--protocol=authors",
        "--seed=1",
        "--split-seed=0",
        "--deterministic",
        "--output-dir=x/seed_1",
    ]


def test_spread_is_mean_sample_std_min_max():
    # values 0.2, 0.4, 0.9: mean 0.5; deviations -0.3, -0.1, 0.4 → squares 0.26 / 2 = 0.13
    stats = reporting.spread([0.2, 0.4, 0.9])
    assert stats["mean"] == pytest.approx(0.5)
    assert stats["std"] == pytest.approx(np.sqrt(0.13))
    assert (stats["min"], stats["max"], stats["n"]) == (0.2, 0.9, 3)
    assert reporting.spread([0.3])["std"] == 0.0


def _seed_metrics(dice: float, verdict: str, mode: str = "default") -> dict:
    return {
        "setup": {"mode": mode, "seed": 0, "protocol": "ours", "kinds": "all"},
        "findings": [{"what": "BCE", "paper": "zeros", "ours": f"Dice {dice}", "verdict": verdict}],
        "runs": {
            "bce": {
                "status": "ok",
                "seconds": 3.0,
                "test": {"dice_per_image_mean": dice, "empty_prediction_rate": None},
                "history": {"loss": [1.0, 0.5]},
            }
        },
    }


def test_aggregate_seeds_gives_a_verdict_only_where_the_seeds_agree():
    summary = reporting.aggregate_seeds(
        {
            0: _seed_metrics(0.1, "reproduced: empty masks"),
            1: _seed_metrics(0.3, "reproduced: near-empty masks (2.0 px per image)"),
            2: _seed_metrics(0.2, "not reproduced: predicts non-empty masks"),
        }
    )
    assert summary["setup"]["seeds"] == [0, 1, 2] and "seed" not in summary["setup"]
    finding = summary["findings"][0]
    assert finding["verdict"].startswith("undecided (seeds disagree: reproduced: empty masks")
    assert finding["ours"] == "seed 0: Dice 0.1<br>seed 1: Dice 0.3<br>seed 2: Dice 0.2"
    dice = summary["runs"]["bce"]["test.dice_per_image_mean"]
    assert dice["mean"] == pytest.approx(0.2) and dice["std"] == pytest.approx(0.1)
    assert dice["values"] == {"0": 0.1, "1": 0.3, "2": 0.2}
    # None, the history and the wall time are not metrics
    assert set(summary["runs"]["bce"]) == {"test.dice_per_image_mean"}

    two = reporting.aggregate_seeds(
        {0: _seed_metrics(0.1, "reproduced: empty masks"), 1: _seed_metrics(0.2, "reproduced")}
    )
    assert two["findings"][0]["verdict"] == "reproduced (every seed)"


def test_quick_seeds_report_no_verdict():
    summary = reporting.aggregate_seeds(
        {s: _seed_metrics(0.1, "reproduced", mode="quick") for s in (0, 1)}
    )
    assert summary["findings"][0]["verdict"] == "smoke test: no verdict"


def test_a_failed_sub_run_of_one_seed_is_named_and_left_out_of_the_spread():
    failed = _seed_metrics(0.5, "reproduced")
    failed["runs"]["bce"] = {"status": "failed", "error": "boom"}
    summary = reporting.aggregate_seeds({0: _seed_metrics(0.1, "reproduced"), 1: failed})
    assert summary["failed"] == {1: ["bce"]}
    assert summary["runs"]["bce"]["test.dice_per_image_mean"]["n"] == 1


def test_results_summary_says_one_seed_and_gives_the_spread_of_several(tmp_path):
    one = _seed_metrics(0.25, "reproduced")
    one["setup"].update(section="V.C", data="phantom", batch_size=8, precision="bf16")
    one["setup"].update(learning_rates={"bce": 1e-4}, seconds=60.0, split_sizes={})
    (tmp_path / "metrics.json").write_text(json.dumps(one))
    text = reporting.results_summary(tmp_path, "python vc.py", "abc1234")
    assert "* Seeds: 0 (one seed)" in text and "* Commit: `abc1234`" in text
    assert "| bce | 0.250 | n/a |" in text  # Dice/img, then the empty rate (None)
    seeds = reporting.aggregate_seeds({0: one, 1: _seed_metrics(0.75, "reproduced")})
    seeds["setup"].update(seconds=120.0)
    (tmp_path / "metrics.json").write_text(json.dumps(seeds))
    text = reporting.results_summary(tmp_path, "python vc.py --seeds 0 1", "abc1234")
    # mean 0.5, sample std of 0.25 and 0.75 = 0.3536
    assert "* Seeds: 0, 1 (deterministic ops, one split)" in text
    assert "| bce | 0.5 ± 0.35 (0.25–0.75) |" in text


def test_loss_curves_of_very_different_scales_get_a_log_axis(tmp_path, monkeypatch):
    from mammoseg import plots

    scales = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: scales.append(fig.axes[0].get_yscale()))
    plots.plot_curves(
        {"bce": ([1, 2], [0.7, 0.3]), "1:1e6": ([1, 2], [4e4, 2e4])}, "a", "loss", log_y=None
    )
    plots.plot_curves(
        {"bce": ([1, 2], [0.7, 0.3]), "dice": ([1, 2], [0.9, 0.8])}, "b", "loss", log_y=None
    )
    assert scales == ["log", "linear"]


# ---------------------------------------------------------------- whole scripts (own process)


@pytest.mark.slow
def test_run_all_quick_under_the_authors_protocol_runs_every_section(tmp_path):
    out = tmp_path / "all"
    run_script("run_all.py", "--quick", "--protocol", "authors", f"--output-dir={out}")
    summary = (out / "summary.md").read_text()
    assert "protocol `authors`" in summary
    for section, script in _sections():
        metrics = json.loads((out / Path(script).stem / "metrics.json").read_text())
        setup = metrics["setup"]
        assert f"| {section} | ok" in summary
        if section == "beyond":  # the recipe keeps its own target and our protocol
            assert (setup["protocol"], setup["kinds"]) == ("ours", "mass")
            continue
        assert (setup["protocol"], setup["kinds"], setup["precision"]) == ("authors", "all", "fp32")
        if section != "V.A":  # V.A's regressor keeps the authors' batch 32
            assert setup["batch_size"] == 1, section
        report = (out / Path(script).stem / "report.md").read_text()
        assert "protocol **authors**" in report and "precision fp32" in report
        assert all(f["verdict"] == "smoke test: no verdict" for f in metrics["findings"])


@pytest.mark.slow
def test_run_all_quick_with_two_seeds_runs_every_section_twice(tmp_path):
    out = tmp_path / "all"
    # Every section twice in one process tree: the slowest test; a busy CI machine needs time.
    run_script("run_all.py", "--quick", "--seeds", "0", "1", f"--output-dir={out}", timeout=1800)
    for section, script in _sections():
        folder = out / Path(script).stem
        metrics = json.loads((folder / "metrics.json").read_text())
        assert metrics["setup"]["seeds"] == [0, 1], section
        for seed in (0, 1):
            seed_setup = json.loads((folder / f"seed_{seed}" / "metrics.json").read_text())
            assert seed_setup["setup"]["seed"] == seed and seed_setup["setup"]["deterministic"]
            assert seed_setup["setup"]["split_seed"] == 0
        assert metrics["runs"], section
        for name, stats in metrics["runs"].items():
            for key, value in stats.items():
                # A value can be a number for one seed only (the recipe's region limit is
                # None, "keep every region", when validation says so): n counts the numbers.
                assert value["n"] == 2 or (value["n"] == 1 and "mask_regions" in key), (
                    section,
                    name,
                    key,
                )
                assert value["min"] <= value["mean"] <= value["max"]
        report = (folder / "report.md").read_text()
        assert "| sub-run | metric | mean ± std | min–max | seeds |" in report
        assert all(f["verdict"] == "smoke test: no verdict" for f in metrics["findings"])


def _sections():
    import run_all

    return run_all.SECTIONS
