"""A dataset too small for the 60/20/20 patient split is refused before any sub-run starts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"
MIAS_DEV = Path(__file__).resolve().parents[3] / "shared" / "data" / "mias-dev"


@pytest.mark.skipif(not MIAS_DEV.is_dir(), reason=f"mias-dev excerpt absent: {MIAS_DEV}")
def test_one_patient_is_refused_naming_the_empty_splits(tmp_path):
    data = tmp_path / "mias"
    data.mkdir()
    lines = (MIAS_DEV / "Info.txt").read_text(errors="replace").splitlines(keepends=True)
    keep = ("mdb001", "mdb002")  # one woman's two breasts
    (data / "Info.txt").write_text(
        "".join(line for line in lines if not line.startswith("mdb") or line[:6] in keep)
    )
    for name in keep:
        (data / f"{name}.pgm").symlink_to(MIAS_DEV / f"{name}.pgm")
    out = tmp_path / "vb"
    done = subprocess.run(
        [
            sys.executable,
            str(EXPERIMENTS / "section_vb_semantic_segmentation.py"),
            "--quick",
            f"--data=mias:{data}",
            f"--output-dir={out}",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        timeout=600,
    )
    assert done.returncode == 1
    assert (
        f"--data mias:{data}: 2 image(s) of 1 patient(s) leave the val and test split(s) empty"
        in done.stderr
    )
    assert sorted(p.name for p in out.iterdir()) == ["run.json"]  # no sub-run was started
