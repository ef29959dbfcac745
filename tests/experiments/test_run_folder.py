"""The run folder: a user's files are never deleted or reused by surprise, one run at a time,
options out of range are refused before any work (issue #15)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "experiments"))

import common  # noqa: E402

SETTINGS = {"section": "V.C", "data": "phantom", "seed": 0, "deterministic": False, "scale": {}}


def test_a_new_folder_gets_the_marker_first(tmp_path):
    folder = tmp_path / "run"
    common.prepare_run_folder(folder, SETTINGS, resume=False, overwrite=False)
    assert json.loads((folder / "run.json").read_text()) == SETTINGS


def test_an_empty_existing_folder_is_used(tmp_path):
    common.prepare_run_folder(tmp_path, SETTINGS, resume=False, overwrite=False)
    assert (tmp_path / "run.json").is_file()


@pytest.mark.parametrize("flags", [(False, False), (True, False), (False, True)])
def test_a_foreign_folder_is_refused_and_left_untouched(tmp_path, flags):
    (tmp_path / "thesis.tex").write_text("years of work")
    with pytest.raises(SystemExit, match="is not a mammoseg run folder"):
        common.prepare_run_folder(tmp_path, SETTINGS, resume=flags[0], overwrite=flags[1])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["thesis.tex"]


def test_an_output_dir_that_is_a_file_is_refused(tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(SystemExit, match="exists and is not a folder"):
        common.prepare_run_folder(target, SETTINGS, resume=False, overwrite=False)
    assert target.read_text() == "x"


def test_an_earlier_run_needs_resume_or_overwrite(tmp_path):
    common.prepare_run_folder(tmp_path, SETTINGS, resume=False, overwrite=False)
    (tmp_path / "report.md").write_text("finished")
    with pytest.raises(SystemExit, match="pass --resume to continue it or --overwrite"):
        common.prepare_run_folder(tmp_path, SETTINGS, resume=False, overwrite=False)
    assert (tmp_path / "report.md").read_text() == "finished"


def test_overwrite_deletes_only_its_own_run_folder(tmp_path):
    common.prepare_run_folder(tmp_path, SETTINGS, resume=False, overwrite=False)
    (tmp_path / "report.md").write_text("old")
    common.prepare_run_folder(tmp_path, SETTINGS, resume=False, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.json"]


def test_resume_keeps_the_folder(tmp_path):
    common.prepare_run_folder(tmp_path, SETTINGS, resume=False, overwrite=False)
    (tmp_path / "report.md").write_text("half")
    common.prepare_run_folder(tmp_path, SETTINGS, resume=True, overwrite=False)
    assert (tmp_path / "report.md").read_text() == "half"


def test_resume_with_other_settings_lists_the_differences(tmp_path):
    common.prepare_run_folder(tmp_path, SETTINGS, resume=False, overwrite=False)
    other = {**SETTINGS, "seed": 3, "data": "mias:/d"}
    with pytest.raises(SystemExit) as info:
        common.prepare_run_folder(tmp_path, other, resume=True, overwrite=False)
    message = str(info.value)
    assert "--resume refused" in message
    assert "seed: run has 0, now 3" in message
    assert "data: run has 'phantom', now 'mias:/d'" in message


def test_resume_with_an_unreadable_marker_is_refused(tmp_path):
    (tmp_path / "run.json").write_text('{"sect')  # torn write
    with pytest.raises(SystemExit, match="run.json cannot be read"):
        common.prepare_run_folder(tmp_path, SETTINGS, resume=True, overwrite=False)


def test_a_live_lock_is_refused_with_its_holder(tmp_path):
    holder = {"pid": os.getppid(), "host": socket.gethostname()}
    (tmp_path / "run.lock").write_text(json.dumps(holder))
    with pytest.raises(SystemExit, match=f"in use by pid {holder['pid']} on {holder['host']}"):
        common.acquire_lock(tmp_path)


def test_a_stale_lock_is_taken_over_with_a_warning(tmp_path, capsys):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / "run.lock").write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname()}))
    lock = common.acquire_lock(tmp_path)
    assert json.loads(lock.read_text())["pid"] == os.getpid()
    assert f"taking over the stale lock {lock} of pid {dead.pid}" in capsys.readouterr().out
    lock.unlink()


def test_a_lock_from_another_host_is_not_taken(tmp_path):
    (tmp_path / "run.lock").write_text(json.dumps({"pid": 1, "host": "elsewhere.invalid"}))
    with pytest.raises(SystemExit, match="in use by pid 1 on elsewhere.invalid"):
        common.acquire_lock(tmp_path)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--epochs", "-1"], "argument --epochs: must be a positive integer, received -1"),
        (["--epochs", "0"], "argument --epochs: must be a positive integer, received 0"),
        (["--seed", "-2"], "argument --seed: must be a non-negative integer, received -2"),
        (["--epochs", "two"], "argument --epochs: must be an integer, received 'two'"),
        (["--resume", "--overwrite"], "argument --overwrite: not allowed with argument --resume"),
    ],
)
def test_options_out_of_range_are_argparse_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as info:
        common.build_parser("test").parse_args(argv)
    assert info.value.code == 2
    assert message in capsys.readouterr().err
