"""`mammoseg predict`: PNG, PGM and DICOM in; mask, overlay and predictions.json out."""

import json

import numpy as np
import pytest
from PIL import Image

from mammoseg import cli
from mammoseg.data.dicom import write_dicom
from mammoseg.data.pgm import write_pgm
from mammoseg.recipes import RecipeConfig, build_recipe_model, save_recipe

CONFIG = RecipeConfig(working_size=64, patch_size=32, base_filters=4, depth=2, threshold=0.3)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    folder = tmp_path_factory.mktemp("recipe")
    build_recipe_model(CONFIG).save(folder / "model.keras")
    save_recipe(folder, CONFIG)
    return folder / "model.keras"


def _mammogram(shape=(96, 80)):
    image = np.zeros(shape, np.uint8)
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    image[(rows - 48) ** 2 + cols**2 <= 40**2] = 120
    image[(rows - 40) ** 2 + (cols - 20) ** 2 <= 6**2] = 200  # a bright "mass"
    return image


def test_predict_writes_masks_overlays_and_json(model_path, tmp_path):
    image = _mammogram()
    png, pgm, dcm = tmp_path / "a.png", tmp_path / "b.pgm", tmp_path / "c.dcm"
    Image.fromarray(image).save(png)
    write_pgm(pgm, image)
    write_dicom(dcm, image.astype(np.uint16) * 16, bits_stored=12)
    out = tmp_path / "out"
    status = cli.main(
        [
            "predict",
            "--model",
            str(model_path),
            str(png),
            str(pgm),
            str(dcm),
            "--output-dir",
            str(out),
        ]
    )
    assert status == 0
    for stem in ("a", "b", "c"):
        mask = np.asarray(Image.open(out / f"{stem}_mask.png"))
        assert mask.shape == image.shape and set(np.unique(mask)) <= {0, 255}
        assert (out / f"{stem}_overlay.png").stat().st_size > 1000
    report = json.loads((out / "predictions.json").read_text())
    assert report["threshold"] == 0.3 and report["mask_regions"] is None
    entry = report["images"][str(png)]
    assert entry["crop"]["shape"] == [96, 80]
    row0, row1, col0, col1 = entry["crop"]["box"]
    assert col0 == 0 and row0 <= 8 and row1 >= 88  # the half-disc breast, rows 8..88
    for candidate in entry["candidates"]:
        assert 0.0 <= candidate["score"] <= 1.0 and candidate["area"] >= 1


def test_predict_reports_a_missing_recipe(tmp_path, capsys):
    lone = tmp_path / "model.keras"
    build_recipe_model(CONFIG).save(lone)
    status = cli.main(["predict", "--model", str(lone), "x.png", "--output-dir", str(tmp_path)])
    assert status == 2
    assert "no recipe.json" in capsys.readouterr().err


def test_predict_skips_an_unreadable_image(model_path, tmp_path, capsys):
    status = cli.main(
        [
            "predict",
            "--model",
            str(model_path),
            str(tmp_path / "absent.png"),
            "--output-dir",
            str(tmp_path / "out"),
        ]
    )
    assert status == 1
    assert "skipping" in capsys.readouterr().err


def test_predict_needs_images():
    with pytest.raises(SystemExit):
        cli.main(["predict", "--model", "m.keras", "--output-dir", "x"])
