"""A section script that meets an unreadable checkpoint on --resume stops with a non-zero exit
naming the file (never a "failed sub-run" with the rest of the run going on)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(EXPERIMENTS / "section_vc_weighted_loss.py"), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        timeout=900,
    )


@pytest.mark.slow
def test_a_torn_state_file_ends_the_resumed_run_with_an_error_naming_it(tmp_path):
    out = tmp_path / "vc"
    common = ["--quick", "--epochs=2", f"--output-dir={out}", "--only", "bce_1_1", "dice"]
    first = _run(*common, "--stop-after-epoch=1")
    assert first.returncode != 0 and "stopped after epoch 1" in first.stderr
    state = out / "bce_1_1" / "checkpoint" / "state.json"
    state.write_text(state.read_text()[:25])  # torn: half a JSON document

    resumed = _run(*common, "--resume")
    assert resumed.returncode != 0
    assert f"{state}: cannot be read (JSONDecodeError" in resumed.stderr
    assert "sub-run(s) failed" not in resumed.stderr  # not passed off as one failed sub-run
    assert not (out / "dice" / "history.csv").exists()  # the run stopped there
    assert not (out / "report.md").exists()
