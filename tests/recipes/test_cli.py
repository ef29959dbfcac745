"""`mammoseg predict`: PNG, PGM and DICOM in; mask, overlay and predictions.json out."""

import json
from pathlib import Path

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


# === bad input: each case, the message and the exit status (issue 15) ===


def _run(model_path, images, out, *extra):
    return cli.main(
        ["predict", "--model", str(model_path), *map(str, images), "--output-dir", str(out)]
        + list(extra)
    )


def test_predict_gives_two_same_named_inputs_distinct_outputs(model_path, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    write_pgm(tmp_path / "a" / "mdb001.pgm", _mammogram())
    write_pgm(tmp_path / "b" / "mdb001.pgm", _mammogram()[::-1].copy())
    out = tmp_path / "out"
    status = _run(model_path, [tmp_path / "a/mdb001.pgm", tmp_path / "b/mdb001.pgm"], out)
    assert status == 0
    report = json.loads((out / "predictions.json").read_text())
    masks = sorted(entry["mask"] for entry in report["images"].values())
    assert masks == ["a__mdb001_mask.png", "b__mdb001_mask.png"]
    assert (out / "a__mdb001_overlay.png").is_file() and (out / "b__mdb001_mask.png").is_file()
    assert not list(out.glob(".*part*"))  # temporary names renamed away


def test_predict_refuses_to_overwrite_a_users_file(model_path, tmp_path, capsys):
    write_pgm(tmp_path / "scan.pgm", _mammogram())
    out = tmp_path / "out"
    out.mkdir()
    (out / "scan_mask.png").write_bytes(b"the user's own file")
    status = _run(model_path, [tmp_path / "scan.pgm"], out)
    assert status == 2
    err = capsys.readouterr().err
    assert "would overwrite existing files" in err and "scan_mask.png" in err
    assert "--overwrite" in err
    assert (out / "scan_mask.png").read_bytes() == b"the user's own file"
    assert not (out / "predictions.json").exists()
    assert _run(model_path, [tmp_path / "scan.pgm"], out, "--overwrite") == 0
    assert np.asarray(Image.open(out / "scan_mask.png")).shape == (96, 80)


def test_predict_reports_each_bad_image_and_goes_on(model_path, tmp_path, capsys, monkeypatch):
    good = tmp_path / "good.pgm"
    write_pgm(good, _mammogram())
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG not really")
    tiny = tmp_path / "tiny.png"
    Image.fromarray(np.full((4, 4), 100, np.uint8)).save(tiny)
    strip = tmp_path / "strip.png"
    Image.fromarray(np.tile(np.arange(200, dtype=np.uint8), (1, 20))[:, :4000]).save(strip)
    blank = tmp_path / "blank.png"
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(blank)
    big = tmp_path / "big.png"
    Image.fromarray(_mammogram((200, 200))).save(big)
    out = tmp_path / "out"
    # 40 000 pixels over a 10 000-pixel limit: more than twice it, Pillow's error
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)
    inputs = [broken, tiny, good, strip, blank, big, tmp_path / "absent.png"]
    status = _run(model_path, inputs, out)
    assert status == 1
    err = capsys.readouterr().err
    report = json.loads((out / "predictions.json").read_text())
    errors = {Path(k).name: v.get("error") for k, v in report["images"].items()}
    expected = {
        "broken.png": "cannot decode image",
        "tiny.png": "image too small: 4×4",
        "strip.png": "degenerate image shape 1×4000",
        "blank.png": "no breast found",
        "big.png": "decompression-bomb guard",
        "absent.png": "not found",
    }
    for name, words in expected.items():
        assert words in errors[name], (name, errors[name])
        assert f"skipping {tmp_path / name}" in err
    assert errors["good.pgm"] is None and (out / "good_mask.png").is_file()
    assert report["failed"] == 6


def test_predict_refuses_over_limit_images_that_pillow_only_warns_about(
    model_path, tmp_path, monkeypatch
):
    big = tmp_path / "big.png"
    Image.fromarray(_mammogram((120, 120))).save(big)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)  # 14 400: over, not twice
    out = tmp_path / "out"
    assert _run(model_path, [big], out) == 1
    report = json.loads((out / "predictions.json").read_text())
    assert "decompression-bomb" in report["images"][str(big)]["error"]


@pytest.mark.parametrize(
    ("recipe", "message"),
    [
        (dict(CONFIG.to_dict(), patch_size=48), "recipe patch_size 48 needs (48, 48, 1)"),
        (dict(CONFIG.to_dict(), base_filters=8), "another architecture"),
        (dict(CONFIG.to_dict(), depth=3), "another architecture"),
        (dict(CONFIG.to_dict(), colour="red"), "unknown recipe settings ['colour']"),
    ],
)
def test_predict_refuses_a_model_that_does_not_match_its_recipe(
    model_path, tmp_path, capsys, recipe, message
):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "model.keras").write_bytes(model_path.read_bytes())
    (folder / "recipe.json").write_text(json.dumps({"recipe": recipe}))
    write_pgm(tmp_path / "scan.pgm", _mammogram())
    status = _run(folder / "model.keras", [tmp_path / "scan.pgm"], tmp_path / "out")
    assert status == 2
    err = capsys.readouterr().err
    assert message in err and str(folder / "recipe.json") in err
    assert not (tmp_path / "out").exists()


def test_predict_refuses_a_recipe_without_its_settings(model_path, tmp_path, capsys):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "model.keras").write_bytes(model_path.read_bytes())
    (folder / "recipe.json").write_text(json.dumps({"data": "mias"}))
    status = _run(folder / "model.keras", ["x.png"], tmp_path / "out")
    assert status == 2
    assert "unusable recipe: missing key 'recipe'" in capsys.readouterr().err


def test_predict_refuses_one_file_given_twice(model_path, tmp_path, capsys):
    scan = tmp_path / "scan.pgm"
    write_pgm(scan, _mammogram())
    assert _run(model_path, [scan, scan], tmp_path / "out") == 2
    assert "inputs would share an output name (scan:" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_predict_refuses_a_damaged_model_file(model_path, tmp_path, capsys):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "model.keras").write_bytes(model_path.read_bytes()[:500])  # a torn copy
    save_recipe(folder, CONFIG)
    assert _run(folder / "model.keras", ["x.png"], tmp_path / "out") == 2
    assert f"{folder / 'model.keras'}: cannot load the model" in capsys.readouterr().err


def test_predict_reports_an_image_whose_outputs_cannot_be_written(model_path, tmp_path, capsys):
    first, second = tmp_path / "first.pgm", tmp_path / "second.pgm"
    write_pgm(first, _mammogram())
    write_pgm(second, _mammogram())
    out = tmp_path / "out"
    out.mkdir()
    (out / "first_mask.png").mkdir()  # a folder where the mask must go: the rename fails
    assert _run(model_path, [first, second], out, "--overwrite") == 1
    assert f"cannot write the outputs of {first}" in capsys.readouterr().err
    report = json.loads((out / "predictions.json").read_text())
    assert "cannot write outputs" in report["images"][str(first)]["error"]
    assert (out / "second_mask.png").is_file()


def test_predict_says_no_breast_found_where_the_crop_finds_none(model_path, tmp_path, capsys):
    # A speck on black: the largest bright region is the 5-pixel cross that the opening keeps of
    # the smoothed speck, 5 / 4096 = 0.12 %. An inverted
    # mammogram: the "breast" (everything brighter than Otsu's level) covers the whole frame.
    # Both used to be cropped and segmented without a word.
    good = tmp_path / "good.pgm"
    write_pgm(good, _mammogram())
    speck = tmp_path / "speck.png"
    image = np.zeros((64, 64), np.uint8)
    image[30, 30] = 255
    Image.fromarray(image).save(speck)
    inverted = tmp_path / "inverted.png"
    Image.fromarray(255 - _mammogram()).save(inverted)
    out = tmp_path / "out"
    assert _run(model_path, [speck, good, inverted], out) == 1
    err = capsys.readouterr().err
    report = json.loads((out / "predictions.json").read_text())
    speck_error = report["images"][str(speck)]["error"]
    assert speck_error.startswith("no breast found: the largest bright region covers 0.12%")
    inverted_error = report["images"][str(inverted)]["error"]
    assert inverted_error.startswith("no breast found: no background around a breast")
    assert f"skipping {speck}: no breast found" in err
    assert f"skipping {inverted}: no breast found" in err
    assert report["failed"] == 2 and not (out / "speck_mask.png").exists()
    assert report["images"][str(good)]["mask"] == "good_mask.png"
