"""run_all forwards every common option to every section, and each section's own options
(--weights to V.F, --yaroslav-weights to V.E) to that section only."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "experiments"))
run_all = pytest.importorskip("run_all")


def test_options_reach_the_sections_that_take_them(tmp_path, monkeypatch):
    commands: dict[str, list[str]] = {}

    def call(command):
        commands[Path(command[1]).stem] = command[2:]
        return 1  # no metrics.json: each section counts as failed, which is fine here

    monkeypatch.setattr(run_all.subprocess, "call", call)
    with pytest.raises(SystemExit, match="sections failed"):
        run_all.main(
            [
                "--quick",
                f"--output-dir={tmp_path / 'all'}",
                "--seed=3",
                "--max-steps=2",
                "--precision=fp32",
                "--kinds=mass",
                "--protocol=authors",
                "--weights=coco:/w/coco.h5",
                "--weights=imagenet:/w/r50.h5",
                "--yaroslav-weights=/w/s10.h5",
            ]
        )
    assert len(commands) == len(run_all.SECTIONS)
    for name, args in commands.items():
        for option in ("--quick", "--seed=3", "--max-steps=2", "--precision=fp32"):
            assert option in args, (name, option)
        target = ["--kinds=mass", "--protocol=authors"]
        assert all(o in args for o in target) == (name != "beyond_mass_segmentation"), name
        assert ("--yaroslav-weights=/w/s10.h5" in args) == (name == "section_ve_data_vs_model")
        weights = [a for a in args if a.startswith("--weights=")]
        expected = ["--weights=coco:/w/coco.h5", "--weights=imagenet:/w/r50.h5"]
        assert weights == (expected if name == "section_vf_mask_rcnn" else []), name
