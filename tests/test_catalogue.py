"""docs/bad_input.md names only tests that exist, so the catalogue of bad input cannot go stale."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CATALOGUE = REPO / "docs" / "bad_input.md"
_TEST_ID = re.compile(r"(tests/[\w/]+\.py)::(\w+)")


def catalogue_rows(text: str) -> list[tuple[str, list[tuple[str, str]]]]:
    """(case, [(test file, test name)]) of every table row below a header row."""
    rows = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("|") or len(cells) != 4 or cells[0] in ("case", "---"):
            continue
        rows.append((cells[0], _TEST_ID.findall(cells[3])))
    return rows


def test_catalogue_parser_reads_a_row():
    text = (
        "| case | where | gets | test |\n|---|---|---|---|\n"
        "| a | b | c | tests/x.py::t<br>tests/y/z.py::u |\n"
        "| prose | not | a | catalogue row | at all |"
    )
    assert catalogue_rows(text) == [("a", [("tests/x.py", "t"), ("tests/y/z.py", "u")])]


def test_every_row_names_a_test_that_is_collected():
    rows = catalogue_rows(CATALOGUE.read_text(encoding="utf-8"))
    assert len(rows) >= 60, f"only {len(rows)} rows parsed from {CATALOGUE}"
    assert not [case for case, tests in rows if not tests], "rows without a test"
    files = sorted({path for _, tests in rows for path, _ in tests})
    missing_files = [f for f in files if not (REPO / f).is_file()]
    assert not missing_files, f"{CATALOGUE.name} names missing test files: {missing_files}"
    # Collect only the named files: the real test ids (parametrised ones once, by name).
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *files],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={"TF_CPP_MIN_LOG_LEVEL": "3", **os.environ},
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    collected = {line.split("[")[0] for line in done.stdout.splitlines() if "::" in line}
    named = {f"{path}::{name}" for _, tests in rows for path, name in tests}
    stale = sorted(named - collected)
    assert not stale, f"{CATALOGUE.name} names tests that are not collected: {stale}"
