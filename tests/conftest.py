"""Fixtures shared by the whole suite.

The environment is set at import time, before any test module imports TensorFlow or touches
the built-in phantom cache: TensorFlow's C++ log is quietened, and the phantom cache goes to a
temporary folder for the session so tests never write to ~/.cache.
"""

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if "MAMMOSEG_CACHE" not in os.environ:
    _session_cache = tempfile.mkdtemp(prefix="mammoseg-test-cache-")
    os.environ["MAMMOSEG_CACHE"] = _session_cache
    atexit.register(shutil.rmtree, _session_cache, ignore_errors=True)

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The development workspace's real data (../shared/data); skips when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(
            "../shared/data not found: real MIAS/CBIS files are only in the development workspace"
        )
    return SHARED_DATA


@pytest.fixture(scope="session")
def mias_dev(shared_data) -> Path:
    """The 110-image mini-MIAS excerpt; skips when it is absent."""
    root = shared_data / "mias-dev"
    if not (root / "Info.txt").is_file():
        pytest.skip(f"{root} has no Info.txt: the real MIAS excerpt is not in this workspace")
    return root


@pytest.fixture(scope="session")
def tiny_phantom(tmp_path_factory):
    """12 phantom mammograms of 128² in the MIAS layout (seed 0, most with a lesion), read back.

    Returns the records; their folder is ``Path(records[0].path).parent``.
    """
    from mammoseg.data import phantom
    from mammoseg.data.mias import read_mias

    root = tmp_path_factory.mktemp("tiny_phantom")
    phantom.generate(root, n_images=12, seed=0, size=128, normal_fraction=0.2, progress=False)
    return read_mias(root, source="phantom")
