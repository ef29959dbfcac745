"""notebooks/tutorial.ipynb runs from top to bottom and prints what its steps promise.

The notebook runs in a kernel of this interpreter (a kernelspec written to a temporary folder,
so a user-wide "python3" kernel of another Python cannot stand in), with a temporary working
folder, so it writes nothing into the repository; the phantom images go to the session's
``$MAMMOSEG_CACHE`` (tests/conftest.py). Its cells end with ``assert`` lines on shapes and value
ranges; this test checks that every cell ran, then reads the outputs and the files it wrote.
"""

import json
import re
import sys
from pathlib import Path

import nbclient
import nbformat
import pytest
from ipykernel import kernelspec

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "tutorial.ipynb"
KERNEL = "mammoseg-tutorial"
CELL_TIMEOUT = 300  # seconds, per cell: the slowest (Mask R-CNN's first step) takes ~20 s
N_IMAGES, SIZE = 32, 128  # as the notebook sets them


def _kernel_manager(folder: Path):
    """A kernel manager starting ipykernel on `sys.executable`, whatever kernels are installed."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    kernelspec.write_kernel_spec(folder / KERNEL)
    specs = KernelSpecManager(kernel_dirs=[str(folder)])
    assert specs.get_kernel_spec(KERNEL).argv[0] == sys.executable
    return KernelManager(kernel_name=KERNEL, kernel_spec_manager=specs)


def _text(cell) -> str:
    """A code cell's printed output (stdout and plain-text results)."""
    parts = []
    for output in cell.outputs:
        if output.output_type == "stream" and output.name == "stdout":
            parts.append(output.text)
        elif output.output_type in ("execute_result", "display_data"):
            parts.append(output.get("data", {}).get("text/plain", ""))
    return "".join(parts)


def _cell(notebook, tag: str):
    (cell,) = [c for c in notebook.cells if tag in c.metadata.get("tags", [])]
    return cell


def test_the_notebook_is_stored_without_outputs():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code
    assert [cell.outputs for cell in code] == [[]] * len(code)
    assert [cell.execution_count for cell in code] == [None] * len(code)


@pytest.fixture(scope="module")
def executed(tmp_path_factory, monkeypatch_module):
    # matplotlib's inline backend, whatever the shell chose: the figures must reach the notebook
    monkeypatch_module.delenv("MPLBACKEND", raising=False)
    workdir = tmp_path_factory.mktemp("tutorial")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    before = sorted(NOTEBOOK.parent.rglob("*"))
    client = nbclient.NotebookClient(
        notebook,
        km=_kernel_manager(tmp_path_factory.mktemp("kernels")),
        timeout=CELL_TIMEOUT,
        resources={"metadata": {"path": str(workdir)}},
    )
    client.execute()  # raises CellExecutionError, with the cell and traceback, if a cell fails
    assert sorted(NOTEBOOK.parent.rglob("*")) == before, "the notebook wrote beside itself"
    return notebook, workdir


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@pytest.mark.slow  # a kernel, TensorFlow and three short trainings: about a minute on two cores
def test_every_cell_runs_and_prints_what_it_promises(executed):
    notebook, workdir = executed
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert [cell.execution_count for cell in code] == list(range(1, len(code) + 1))
    errors = [o for cell in code for o in cell.outputs if o.output_type == "error"]
    assert errors == []

    # the patient split: three parts adding up to every image, none sharing a patient
    split = _text(_cell(notebook, "split"))
    parts = re.findall(r"^(train|val|test) +(\d+) images", split, re.M)
    counts = {name: int(n) for name, n in parts}
    assert set(counts) == {"train", "val", "test"} and sum(counts.values()) == N_IMAGES
    assert "no patient in two parts" in split

    # the NumPy metrics: one Dice line per test image, NaN exactly for those without a mass
    evaluate = _text(_cell(notebook, "evaluate"))
    dice = re.findall(r"^mdb\d{3}: Dice (\S+), \d+ pixels predicted as mass$", evaluate, re.M)
    assert len(dice) == counts["test"]
    assert all(value == "nan" or 0.0 <= float(value) <= 1.0 for value in dice)
    assert 0 < dice.count("nan") < len(dice)
    rate = re.search(r"^empty-prediction rate: (\d\.\d\d)$", evaluate, re.M)
    assert rate is not None and 0.0 <= float(rate.group(1)) <= 1.0

    # Mask R-CNN trained one epoch, wrote matterport's checkpoint, and the detector loaded it
    detect = _text(_cell(notebook, "mask-rcnn-detect"))
    assert re.search(r"^weights mask_rcnn_tumor_0001\.h5; mdb\d{3}: [1-9] mass", detect, re.M)
    checkpoints = list((workdir / "runs/tutorial/mask_rcnn").glob("tumor*/mask_rcnn_tumor_0001.h5"))
    assert len(checkpoints) == 1

    # `mammoseg predict` wrote a mask and an overlay per image, at the image's own size
    from PIL import Image

    predictions = workdir / "runs/tutorial/predictions"
    written = json.loads((predictions / "predictions.json").read_text())
    assert written["failed"] == 0 and len(written["images"]) == 2
    for result in written["images"].values():
        with Image.open(predictions / result["mask"]) as mask:
            assert mask.size == (SIZE, SIZE)
        with Image.open(predictions / result["overlay"]) as overlay:
            assert overlay.size[0] == SIZE and overlay.size[1] > SIZE  # a title band on top
    assert (workdir / "runs/tutorial/recipe/recipe.json").is_file()

    # two figures reach the notebook: the data and the prediction overlays
    for tag in ("data", "overlay"):
        outputs = _cell(notebook, tag).outputs
        assert any("image/png" in output.get("data", {}) for output in outputs), tag
