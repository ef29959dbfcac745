"""CBIS-DDSM runs read the HDF5 preprocessing cache: the DICOMs are decoded by the first run
only, and a second run trains without decoding any image."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"
# The second run fails loudly if anything decodes an image: the per-run decoder and the
# cache's own decoder are both replaced before the script starts.
NO_DECODING = """
import runpy, sys
import mammoseg.data.cache as cache
import mammoseg.data.pipeline as pipeline

def boom(*args, **kwargs):
    raise RuntimeError("an image was decoded although the cache holds it")

pipeline.decode_records = boom
cache._process = boom
script = sys.argv[1]
sys.argv = sys.argv[1:]
sys.path.insert(0, str(__import__("pathlib").Path(script).parent))
runpy.run_path(script, run_name="__main__")
"""


def _run(code: list[str], root: Path, out: Path, cache: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            *code,
            str(EXPERIMENTS / "section_vb_semantic_segmentation.py"),
            "--quick",
            f"--data=cbis-ddsm:{root}",
            f"--output-dir={out}",
            "--sub-runs",
            "unet",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "MAMMOSEG_CACHE": str(cache)},
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    runs = json.loads((out / "metrics.json").read_text())["runs"]
    assert runs["unet"]["status"] == "ok", runs["unet"].get("error")


@pytest.mark.slow
def test_the_second_cbis_run_reads_the_cache_and_decodes_nothing(tmp_path):
    from mammoseg.data.phantom_cbis import write_cbis_phantom

    root = write_cbis_phantom(tmp_path / "cbis", 16, seed=0, size=256, progress=False)
    cache = tmp_path / "cache"
    _run([], root, tmp_path / "first", cache)
    built = sorted(cache.glob("cbis-ddsm-*-64.h5"))
    assert len(built) == 1  # one cache, at the quick mode's 64²
    stamp = built[0].stat().st_mtime_ns
    _run(["-c", NO_DECODING], root, tmp_path / "second", cache)
    assert built[0].stat().st_mtime_ns == stamp  # reused, not rebuilt
