"""The `mammoseg` command: --version; predict (files, folders, globs; masks, overlays,
predictions.json and .csv); train and evaluate the recipe; download and verify mini-MIAS."""

import csv
import datetime
import functools
import hashlib
import http.server
import io
import json
import re
import subprocess
import sys
import tarfile
import threading
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import mammoseg
from mammoseg import cli
from mammoseg.data.dicom import write_dicom
from mammoseg.data.pgm import write_pgm
from mammoseg.recipes import Predictor, RecipeConfig, build_recipe_model, save_recipe
from mammoseg.recipes.preprocess import preprocess_image

REPO = Path(__file__).resolve().parents[1]

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


# === --version: one source ===


def test_version_is_the_packages(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"mammoseg {mammoseg.__version__}\n"


def test_python_dash_m_mammoseg_is_the_command():
    result = subprocess.run(
        [sys.executable, "-m", "mammoseg", "--version"], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"mammoseg {mammoseg.__version__}\n"


def test_setup_py_reads_the_same_version():
    result = subprocess.run(
        [sys.executable, "setup.py", "--version"], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == mammoseg.__version__


# === predict: folders and globs, progress bar, predictions.csv ===


def _touch_images(folder, names):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        if name.endswith(".pgm"):
            write_pgm(folder / name, _mammogram())
        else:
            Image.fromarray(_mammogram()).save(folder / name)
    return [folder / name for name in names]


def test_expand_inputs_takes_folders_globs_and_files(tmp_path):
    _touch_images(tmp_path / "scans", ["b.png", "a.pgm"])
    (tmp_path / "scans" / "notes.txt").write_text("not an image")
    (tmp_path / "scans" / "sub").mkdir()
    _touch_images(tmp_path / "more", ["y.pgm", "x.pgm", "z.png"])
    found = cli.expand_inputs(
        [str(tmp_path / "scans"), str(tmp_path / "more" / "*.pgm"), str(tmp_path / "absent.png")]
    )
    assert found == [
        tmp_path / "scans" / "a.pgm",
        tmp_path / "scans" / "b.png",
        tmp_path / "more" / "x.pgm",
        tmp_path / "more" / "y.pgm",
        tmp_path / "absent.png",  # kept: reported as that image's failure
    ]
    assert cli.expand_inputs([str(tmp_path / "**" / "z.png")]) == [tmp_path / "more" / "z.png"]


@pytest.mark.parametrize(
    ("item", "message"),
    [("empty", "the folder holds no image file"), ("*.dcm", "the pattern matches no file")],
)
def test_predict_refuses_an_empty_folder_or_pattern(model_path, tmp_path, capsys, item, message):
    (tmp_path / "empty").mkdir()
    status = _run(model_path, [tmp_path / item], tmp_path / "out")
    assert status == 2
    assert f"mammoseg predict: {tmp_path / item}: {message}" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_predict_runs_every_image_of_a_folder(model_path, tmp_path):
    _touch_images(tmp_path / "scans", ["b.png", "a.pgm"])
    out = tmp_path / "out"
    assert _run(model_path, [tmp_path / "scans"], out) == 0
    report = json.loads((out / "predictions.json").read_text())
    assert list(report["images"]) == [str(tmp_path / "scans" / n) for n in ("a.pgm", "b.png")]
    assert (out / "a_mask.png").is_file() and (out / "b_overlay.png").is_file()


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_predict_shows_a_progress_bar_with_an_eta_on_a_terminal(
    model_path, tmp_path, monkeypatch, capsys
):
    images = _touch_images(tmp_path / "scans", ["a.pgm", "b.pgm"])
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert _run(model_path, images, tmp_path / "out") == 0
    bar = terminal.getvalue()
    assert "predict: 100%" in bar and "2/2" in bar and "ETA" in bar
    assert "a.pgm: " in capsys.readouterr().out  # the per-image line
    # --quiet: neither the bar nor the per-image lines
    terminal.truncate(0)
    assert _run(model_path, images, tmp_path / "out", "--overwrite", "--quiet") == 0
    assert "ETA" not in terminal.getvalue() and capsys.readouterr().out == ""


def test_predict_shows_no_bar_when_stderr_is_not_a_terminal(model_path, tmp_path, capsys):
    images = _touch_images(tmp_path / "scans", ["a.pgm"])
    assert _run(model_path, images, tmp_path / "out") == 0
    assert "ETA" not in capsys.readouterr().err


def _breast(shape):
    """A half-disc breast filling about 40 % of the image, on black."""
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    image = np.zeros(shape, np.uint8)
    image[(rows - shape[0] // 2) ** 2 + cols**2 <= (0.45 * shape[0]) ** 2] = 120
    return image


def test_predictions_csv_has_a_row_per_candidate_with_areas_in_mm2(
    model_path, tmp_path, monkeypatch
):
    # A fixed probability map, whatever the image: a square at 0.9 and a block at 0.6. The
    # recipe drops candidates under 4 working pixels, i.e. 4 / (64 / 1024)² = 1024 original
    # pixels at 1024² and 4 / (64 / 96)² = 9 at 96×80: the regions are larger than that.
    def fixed_predict(self, image):
        prob = np.zeros(image.shape, np.float32)
        if image.shape[0] == 1024:
            prob[200:240, 300:340] = 0.9  # 40×40
            prob[500:532, 100:140] = 0.6  # 32×40
        else:
            prob[20:30, 30:40] = 0.9  # 10×10
            prob[50:53, 10:14] = 0.6  # 3×4
        return prob, preprocess_image(image, self.config)

    monkeypatch.setattr(Predictor, "predict", fixed_predict)
    mias = tmp_path / "mdb001.pgm"  # mini-MIAS: 1024², 0.2 mm pixels
    write_pgm(mias, _breast((1024, 1024)))
    dcm = tmp_path / "scan.dcm"  # PixelSpacing 0.1 × 0.05 mm
    write_dicom(dcm, _breast((96, 80)).astype(np.uint16) * 16, PixelSpacing=[0.1, 0.05])
    png = tmp_path / "photo.png"  # no pixel size
    Image.fromarray(_breast((96, 80))).save(png)
    out = tmp_path / "out"
    assert _run(model_path, [mias, dcm, png], out) == 0
    with open(out / "predictions.csv", newline="") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames) == cli.CSV_COLUMNS
        rows = list(reader)
    assert len(rows) == 6  # two candidates per image
    first = {k: rows[0][k] for k in cli.CSV_COLUMNS}
    assert first == {
        "image": str(mias),
        "candidate": "1",
        "score": "0.9",
        "row": "219.5",
        "col": "319.5",
        "box_row0": "200",
        "box_col0": "300",
        "box_row1": "240",
        "box_col1": "340",
        "area_px": "1600",
        "area_mm2": "64.0",  # 1600 × 0.2 × 0.2
    }
    second = rows[1]
    assert (second["candidate"], second["score"], second["row"], second["col"]) == (
        "2",
        "0.6",
        "515.5",
        "119.5",
    )
    assert (second["area_px"], second["area_mm2"]) == ("1280", "51.2")
    by_image = {}
    for row in rows:
        by_image.setdefault(Path(row["image"]).name, []).append(row["area_mm2"])
    assert by_image["scan.dcm"] == ["0.5", "0.06"]  # 100 × 0.1 × 0.05, 12 × 0.005
    dcm_rows = [r for r in rows if r["image"] == str(dcm)]
    assert [(r["row"], r["col"], r["box_row1"], r["box_col1"]) for r in dcm_rows] == [
        ("24.5", "34.5", "30", "40"),
        ("51.0", "11.5", "53", "14"),
    ]
    assert by_image["photo.png"] == ["", ""]  # unknown pixel size: empty
    report = json.loads((out / "predictions.json").read_text())
    assert report["images"][str(dcm)]["pixel_spacing_mm"] == [0.1, 0.05]
    assert report["images"][str(png)]["pixel_spacing_mm"] is None
    candidate = report["images"][str(mias)]["candidates"][0]
    assert candidate == {
        "score": 0.9,
        "centroid": [219.5, 319.5],
        "box": [200, 300, 240, 340],
        "area": 1600,
        "area_mm2": 64.0,
    }
    assert not list(out.glob("*.part")) and not list(out.glob(".*part*"))
    # --pixel-size overrides every image's
    assert _run(model_path, [png], tmp_path / "out2", "--pixel-size", "0.5", "--heatmap") == 0
    text = (tmp_path / "out2" / "predictions.csv").read_text().splitlines()
    assert text[1].endswith(",100,25.0") and text[2].endswith(",12,3.0")


def test_predict_refuses_a_non_positive_pixel_size(model_path, tmp_path, capsys):
    assert _run(model_path, ["x.png"], tmp_path / "out", "--pixel-size", "0") == 2
    assert "--pixel-size must be positive (mm), received 0.0" in capsys.readouterr().err


def test_predict_refuses_to_overwrite_predictions_csv(model_path, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "predictions.csv").write_text("the user's table")
    write_pgm(tmp_path / "scan.pgm", _mammogram())
    assert _run(model_path, [tmp_path / "scan.pgm"], out) == 2
    assert "predictions.csv" in capsys.readouterr().err
    assert (out / "predictions.csv").read_text() == "the user's table"


# === train and evaluate the recipe ===

TINY = [
    "working_size=64",
    "patch_size=32",
    "base_filters=4",
    "depth=2",
    "batch_size=2",
    "steps_per_epoch=2",
    "epochs=1",
    "tta=false",
    "time_budget_minutes=None",
]


def _set_options(items):
    return [part for item in items for part in ("--set", item)]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, tiny_phantom):
    """`mammoseg train` on the 12-image tiny phantom with a tiny config, in its own process
    (it sets the global precision policy and seeds)."""
    root = Path(tiny_phantom[0].path).parent
    out = tmp_path_factory.mktemp("train") / "run"
    command = [sys.executable, "-m", "mammoseg.cli", "train", "--data", f"mias:{root}"]
    command += ["--output-dir", str(out), "--precision", "fp32", "--quiet", *_set_options(TINY)]
    command += ["--phantom-images", "12", "--phantom-size", "128"]  # a tiny pre-training
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    return root, out, result


def _assert_is_our_commit(commit: str) -> None:
    """``commit`` is this checkout's HEAD when it trained, or "unknown" outside a checkout
    (HEAD may have moved on since: it must then be an ancestor of today's)."""
    if not (REPO / ".git").exists():
        assert commit == "unknown"
        return
    commit = commit.removesuffix("-dirty")
    assert re.fullmatch(r"[0-9a-f]{40}", commit), commit
    ancestor = ["git", "-C", str(REPO), "merge-base", "--is-ancestor", commit, "HEAD"]
    assert subprocess.run(ancestor).returncode == 0


@pytest.mark.slow  # trains in its own process (about 30 s)
def test_train_writes_the_model_recipe_metrics_and_card(trained_run):
    root, out, result = trained_run
    assert result.returncode == 0, result.stderr[-3000:]
    for name in ("model.keras", "recipe.json", "metrics.json", "MODEL_CARD.md", "run.json"):
        assert (out / name).is_file(), name
    recorded = json.loads((out / "recipe.json").read_text())
    recipe = recorded["recipe"]
    assert (recipe["working_size"], recipe["patch_size"], recipe["depth"]) == (64, 32, 2)
    assert recipe["tta"] is False and recipe["time_budget_minutes"] is None
    assert recorded["data"] == f"mias:{root}" and recorded["seed"] == 0
    split = recorded["split"]
    ids = split["train"] + split["val"] + split["test"]
    assert sorted(ids) == sorted(f"mdb{k:03d}" for k in range(1, 13)) and len(set(ids)) == 12
    assert split["counts"]["test"][0] == len(split["test"])
    assert recorded["mammoseg"]["version"] == mammoseg.__version__
    _assert_is_our_commit(recorded["mammoseg"]["commit"])
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["val"] == recorded["metrics"]["val"]
    assert metrics["test"] == recorded["metrics"]["test"]
    assert metrics["threshold"] == recipe["threshold"]
    assert metrics["test"]["n_images"] == len(split["test"])
    assert 0.0 <= metrics["test"]["dice_pooled"] <= 1.0
    # The default recipe: pre-trained on a phantom (seed 0: the data is not the phantom) ...
    assert recipe["init_weights"] == str(out / "pretrain" / "model.keras")
    pretraining = recorded["pretraining"]
    assert pretraining["phantom_seed"] == 0 and pretraining["training"]["epochs_run"] == 1
    assert (out / "pretrain" / "model.keras").is_file()
    # ... and its test candidates re-ranked by a classifier of the training candidates.
    fp = recorded["fp_reduction"]
    if fp["trained"]:
        assert (out / "fp" / "fp_classifier.keras").is_file() and fp["lesions"] >= 1
        reranked = metrics["test_fp_reduction"]
        assert reranked["n_images"] == len(split["test"])
        assert reranked["dice_per_image_mean"] == metrics["test"]["dice_per_image_mean"]
    else:  # a one-epoch model may leave only hits or only false positives
        assert "needs both hits and false positives" in fp["reason"]
        assert "test_fp_reduction" not in metrics
    # the printed lines are the written numbers
    test = metrics["test"]
    assert (
        f"test: {test['n_images']} images ({test['n_images_with_lesion']} with a lesion), "
        f"Dice/image {cli._fmt(test['dice_per_image_mean'])}, "
        f"Dice pooled {cli._fmt(test['dice_pooled'])}"
    ) in result.stdout


@pytest.mark.slow  # trains in its own process (about 30 s)
def test_the_model_card_says_what_how_and_how_well(trained_run):
    root, out, _ = trained_run
    card = (out / "MODEL_CARD.md").read_text()
    recorded = json.loads((out / "recipe.json").read_text())
    assert card.startswith("# Model card: mammoseg mass-finding recipe\n")
    assert "**Research use only.**" in card
    assert f"| data | `mias:{root}` |" in card
    assert "| lesion kinds | mass |" in card
    assert "| seed | 0 |" in card
    assert "| start | pre-trained on " in card and "phantom mammograms (seed 0; 1 epoch(s)" in card
    fp = recorded["fp_reduction"]
    if fp["trained"]:
        assert (
            f"| false-positive reduction | candidate classifier in `fp/` ({fp['hits']} hits" in card
        )
    else:
        assert f"| false-positive reduction | no classifier: {fp['reason']}" in card
    counts = recorded["split"]["counts"]
    assert f"seed 0; train {counts['train'][0]} images ({counts['train'][1]} with a lesion)" in card
    commit = recorded["mammoseg"]["commit"]
    assert f"| mammoseg | version {mammoseg.__version__}, commit {commit} |" in card
    today = datetime.datetime.now(datetime.timezone.utc).date().isoformat()
    assert re.search(rf"\| date \| {today}T\d\d:\d\d:\d\d\+00:00 \|", card)
    for name, label in (("val", "validation"), ("test", "test")):
        m = recorded["metrics"][name]
        row = (
            f"| {label} | {m['n_images']} | {m['n_images_with_lesion']} "
            f"| {cli._fmt(m['dice_per_image_mean'])} | {cli._fmt(m['dice_pooled'])} "
        )
        assert row in card
    assert f"mask threshold {recorded['recipe']['threshold']:g}" in card


@pytest.mark.slow  # trains in its own process (about 30 s)
def test_evaluate_scores_the_recorded_test_split_again(trained_run, tmp_path, capsys):
    _, out, _ = trained_run
    output = tmp_path / "evaluation.json"
    status = cli.main(
        ["evaluate", "--model", str(out / "model.keras"), "--output", str(output), "--quiet"]
    )
    assert status == 0
    recorded = json.loads((out / "recipe.json").read_text())
    written = json.loads(output.read_text())
    assert written["images"] == recorded["split"]["test"] and written["split"] == "test"
    expected, got = recorded["metrics"]["test"], written["metrics"]
    for key in ("dice_per_image_mean", "dice_pooled", "empty_prediction_rate", "n_images"):
        assert got[key] == pytest.approx(expected[key], abs=1e-6), key
    printed = capsys.readouterr().out
    assert cli._metrics_line("test", got) in printed
    # the run's own fp/ classifier re-ranks the candidates, as `mammoseg train` scored them
    if recorded["fp_reduction"]["trained"]:
        assert written["fp_classifier"] == str(out / "fp")
        reranked = written["metrics_fp_reduction"]
        expected = recorded["metrics"]["test_fp_reduction"]
        for key in ("froc_mean", "lesion_sensitivity_at_1fppi", "dice_per_image_mean"):
            assert reranked[key] == pytest.approx(expected[key], abs=1e-6), key
        assert f"test, candidates re-ranked by {out / 'fp'}: " in printed
    else:
        assert written["fp_classifier"] is None and written["metrics_fp_reduction"] is None
    skipped = tmp_path / "plain.json"
    args = ["evaluate", "--model", str(out / "model.keras"), "--fp-classifier", "none"]
    assert cli.main([*args, "--output", str(skipped), "--quiet"]) == 0
    plain = json.loads(skipped.read_text())
    assert plain["fp_classifier"] is None and plain["metrics_fp_reduction"] is None
    assert plain["metrics"] == written["metrics"]
    assert "re-ranked" not in capsys.readouterr().out
    args[-1] = str(tmp_path)  # a folder without a classifier, named explicitly
    assert cli.main([*args, "--quiet"]) == 2
    assert f"mammoseg evaluate: no fp_classifier.keras in {tmp_path}" in capsys.readouterr().err
    # every image, and the refusal to overwrite --output
    assert cli.main(["evaluate", "--model", str(out / "model.keras"), "--output", str(output)]) == 2
    assert f"--output {output} exists; pass --overwrite" in capsys.readouterr().err
    args = ["evaluate", "--model", str(out / "model.keras"), "--split", "all", "--quiet"]
    assert cli.main(args) == 0
    assert "all: 12 images" in capsys.readouterr().out


@pytest.mark.slow  # trains in its own process (about 30 s)
def test_evaluate_shows_its_progress_on_a_terminal(trained_run, monkeypatch):
    _, out, _ = trained_run
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert cli.main(["evaluate", "--model", str(out / "model.keras"), "--split", "val"]) == 0
    assert "val (whole images): 100%" in terminal.getvalue() and "ETA" in terminal.getvalue()


@pytest.mark.slow  # trains in its own process (about 30 s)
def test_evaluate_names_recorded_images_missing_from_other_data(trained_run, tmp_path, capsys):
    _, out, _ = trained_run
    from mammoseg.data import phantom

    other = tmp_path / "other"
    phantom.generate(other, n_images=2, seed=1, size=128, progress=False)  # mdb001, mdb002
    test_ids = json.loads((out / "recipe.json").read_text())["split"]["test"]
    assert set(test_ids) - {"mdb001", "mdb002"}  # the recorded test split is not all there
    args = ["evaluate", "--model", str(out / "model.keras"), "--data", f"mias:{other}"]
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert "image(s) of the recorded test split are not in --data" in err
    assert "pass --split all" in err


@pytest.mark.slow  # trains in its own process (about 30 s)
def test_train_refuses_a_foreign_or_earlier_run_folder(trained_run, tmp_path, capsys):
    root, out, _ = trained_run
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("my thesis")
    base = ["train", "--data", f"mias:{root}", *_set_options(TINY)]
    assert cli.main([*base, "--output-dir", str(foreign), "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert f"--output-dir {foreign} is not empty and is not a mammoseg run folder" in err
    assert (foreign / "thesis.tex").read_text() == "my thesis"
    before = (out / "recipe.json").read_text()
    assert cli.main([*base, "--output-dir", str(out)]) == 2
    assert f"--output-dir {out} holds an earlier run; pass --overwrite" in capsys.readouterr().err
    assert (out / "recipe.json").read_text() == before


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--set", "workin_size=64"], "--set 'workin_size=64': expected KEY=VALUE with KEY a "),
        (["--set", "workin_size=64"], "; did you mean 'working_size'?"),
        (["--set", "depth"], "--set 'depth': expected KEY=VALUE"),
        (["--set", "tta=1"], "--set tta=1: expected true or false"),
        (["--set", "depth=deep"], "--set depth=deep: expected a number"),
        (["--set", "patch_size=40"], "--set: `patch_size` must be a multiple of 2**depth = 32"),
        (["--data", "mias"], "--data must be 'phantom', 'mias:PATH' or 'cbis-ddsm:PATH', "),
        (["--data", "mias:/no/such/folder"], "--data mias:/no/such/folder: /no/such/folder is"),
        (["--pretrain", "none", "--pretrain-minutes", "3"], "--pretrain-minutes needs --pretrain"),
    ],
)
def test_train_refuses_bad_options(tmp_path, capsys, options, message):
    argv = ["train", "--data", "phantom", "--output-dir", str(tmp_path / "run"), *options]
    assert cli.main(argv) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--pretrain-minutes", "0"], "argument --pretrain-minutes: must be positive, received 0"),
        (["--pretrain-minutes", "x"], "--pretrain-minutes: must be a number of minutes, received"),
        (["--pretrain", "imagenet"], "argument --pretrain: invalid choice: 'imagenet'"),
    ],
)
def test_train_pretraining_options_are_argparse_errors(tmp_path, capsys, options, message):
    argv = ["train", "--data", "phantom", "--output-dir", str(tmp_path / "run"), *options]
    with pytest.raises(SystemExit) as stop:
        cli.main(argv)
    assert stop.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_config_with_overrides_reads_json_values():
    config = cli.config_with_overrides(
        RecipeConfig(),
        ["depth=4", 'kinds=["mass", "calc"]', "mask_regions=None", "loss=focal_tversky"],
    )
    assert (config.depth, config.kinds, config.mask_regions) == (4, ("mass", "calc"), None)
    assert config.loss == "focal_tversky"


# === download and verify mini-MIAS (a local server, fake archives and sums) ===

FAKE = {
    "Info.txt": b"mdb001 G CIRC B 535 425 197\r\n",
    "mdb001.pgm": b"P5 a",
    "mdb002.pgm": b"P5 b",
}


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path):
    """An HTTP server on 127.0.0.1 serving ``tmp_path / "www"``; yields its base URL."""
    www = tmp_path / "www"
    www.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(www))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.timeout = 5
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield www, f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


@pytest.fixture
def fake_sums(tmp_path):
    path = tmp_path / "sums.txt"
    path.write_text("".join(f"{hashlib.sha256(d).hexdigest()}  {n}\n" for n, d in FAKE.items()))
    return path


def _tar_gz(path, members):
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def _download(url, to, sums):
    return cli.main(["download", "mias", "--to", str(to), "--url", url, "--sums", str(sums)])


def test_download_fetches_extracts_and_verifies_a_tar_gz(server, fake_sums, tmp_path, capsys):
    www, base = server
    _tar_gz(www / "all-mias.tar.gz", {f"all-mias/{n}": d for n, d in FAKE.items()})
    to = tmp_path / "mias"
    assert _download(f"{base}/all-mias.tar.gz", to, fake_sums) == 0
    out = capsys.readouterr().out
    assert f"{to / 'all-mias'}: 3 ok, 0 missing, 0 mismatched of 3 files" in out
    assert (to / "all-mias" / "mdb002.pgm").read_bytes() == b"P5 b"
    assert sorted(p.name for p in to.iterdir()) == ["all-mias"]  # the archive removed


def test_download_reports_a_zip_with_an_altered_file(server, fake_sums, tmp_path, capsys):
    www, base = server
    with zipfile.ZipFile(www / "mias.zip", "w") as zf:
        for name, data in FAKE.items():
            zf.writestr(name, data if name != "mdb002.pgm" else b"P5 re-encoded")
    to = tmp_path / "mias"
    assert _download(f"{base}/mias.zip", to, fake_sums) == 1
    captured = capsys.readouterr()
    assert f"{to}: 2 ok, 0 missing, 1 mismatched" in captured.out
    assert "mismatched (not the standard content): mdb002.pgm" in captured.out
    assert f"{to} is not the standard mini-MIAS" in captured.err


def test_download_refuses_an_archive_that_climbs_out(server, fake_sums, tmp_path, capsys):
    www, base = server
    _tar_gz(www / "evil.tar.gz", {"mdb001.pgm": b"P5 a", "../evil.pgm": b"evil"})
    to = tmp_path / "mias"
    url = f"{base}/evil.tar.gz"
    assert _download(url, to, fake_sums) == 2
    err = capsys.readouterr().err
    assert f"mammoseg download: {url}: unsafe archive member '../evil.pgm'" in err
    assert not (tmp_path / "evil.pgm").exists() and not list(to.iterdir())


def test_download_names_a_url_that_fails(server, fake_sums, tmp_path, capsys):
    _, base = server
    url = f"{base}/absent.tar.gz"
    assert _download(url, tmp_path / "mias", fake_sums) == 2
    assert f"mammoseg download: {url}: cannot download: HTTP Error 404" in capsys.readouterr().err


def test_download_refuses_a_non_empty_folder(fake_sums, tmp_path, capsys):
    to = tmp_path / "mias"
    to.mkdir()
    (to / "keep.txt").write_text("mine")
    assert _download("http://127.0.0.1:9/x.tar.gz", to, fake_sums) == 2
    assert f"`to` {to} is not empty" in capsys.readouterr().err


def test_verify_command_on_a_fake_copy(fake_sums, tmp_path, capsys):
    copy = tmp_path / "copy"
    copy.mkdir()
    for name, data in FAKE.items():
        (copy / name).write_bytes(data)
    assert cli.main(["verify", "mias", str(copy), "--sums", str(fake_sums)]) == 0
    assert f"{copy}: 3 ok, 0 missing, 0 mismatched" in capsys.readouterr().out
    (copy / "mdb001.pgm").unlink()
    assert cli.main(["verify", "mias", str(copy), "--sums", str(fake_sums)]) == 1
    assert "missing: mdb001.pgm" in capsys.readouterr().out
    assert cli.main(["verify", "mias", str(tmp_path / "nowhere")]) == 2
    assert f"{tmp_path / 'nowhere'}: not a folder" in capsys.readouterr().err


def test_verify_command_on_the_real_development_subset(mias_dev, capsys):
    assert cli.main(["verify", "mias", str(mias_dev)]) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"{mias_dev}: 110 ok, 212 missing, 1 mismatched of 323 files")
    assert "mismatched (not the standard content): Info.txt" in out


def test_predict_averages_several_models(model_path, tmp_path):
    import keras

    keras.utils.set_random_seed(7)
    other = tmp_path / "fold_2"
    other.mkdir()
    build_recipe_model(CONFIG).save(other / "model.keras")
    save_recipe(other, CONFIG.with_threshold(0.5))
    write_pgm(tmp_path / "scan.pgm", _mammogram())
    status = _run(
        model_path, [tmp_path / "scan.pgm"], tmp_path / "out", "--model", str(other / "model.keras")
    )
    assert status == 0
    report = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert report["model"] == [str(model_path), str(other / "model.keras")]
    assert report["threshold"] == pytest.approx(0.4)  # mean of 0.3 and 0.5
    mask = np.asarray(Image.open(tmp_path / "out" / "scan_mask.png")) > 0
    one, two = Predictor.load(model_path), Predictor.load(other / "model.keras")
    image = cli._read_image(tmp_path / "scan.pgm")  # as predict reads it: scaled to [0, 1]
    mean = (one.predict(image)[0] + two.predict(image)[0]) / 2
    differ = mask != (mean >= 0.4)
    assert mask.sum() > 0 and np.all(np.abs(mean[differ] - 0.4) < 1e-5)  # float noise only
    assert not np.array_equal(mask, one.predict(image)[0] >= 0.3)  # not the first model alone


def test_scoring_with_a_progress_bar_counts_each_image_once(tmp_path):
    from mammoseg.data import Lesion, Record

    write_pgm(tmp_path / "a.pgm", _mammogram())
    lesion = Lesion("mass", center=(40.0, 20.0), radius=6.0)
    records = [
        Record("a", "p1", "mias", str(tmp_path / "a.pgm"), lesions=(lesion,)),
        Record("b", "p2", "mias", str(tmp_path / "a.pgm")),
    ]
    predictor = Predictor(lambda batch: batch * 0.0 - 10.0, CONFIG)  # predicts nothing
    updates = []
    with pytest.MonkeyPatch.context() as patch:
        real = cli._progress

        def counting(total, description, *, quiet):
            bar = real(total, description, quiet=quiet)
            original = bar.update
            bar.update = lambda n=1: (updates.append(n), original(n))[1]
            return bar

        patch.setattr(cli, "_progress", counting)
        evaluation = cli._evaluate_with_progress(
            predictor, records, [0.5], description="test", quiet=True
        )
    assert evaluation.image_ids == ["a", "b"] and updates == [1, 1]
    assert evaluation.counts[0][0].tolist() == [0, 0, int(evaluation.counts[0][0][2])]


def test_predict_re_ranks_candidates_with_a_saved_fp_classifier(model_path, tmp_path, capsys):
    import keras

    from mammoseg.recipes import CandidateClassifier, FPReductionConfig
    from mammoseg.recipes.candidates import extract_candidates
    from mammoseg.recipes.fp_reduction import build_classifier

    keras.utils.set_random_seed(3)
    settings = FPReductionConfig(patch_size=16, filters=4)
    reducer = CandidateClassifier(settings, build_classifier(settings))
    reducer.save(tmp_path / "fp")
    write_pgm(tmp_path / "scan.pgm", _mammogram())
    plain = _run(model_path, [tmp_path / "scan.pgm"], tmp_path / "plain")
    status = _run(
        model_path,
        [tmp_path / "scan.pgm"],
        tmp_path / "out",
        "--fp-classifier",
        str(tmp_path / "fp"),
    )
    assert plain == status == 0
    report = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert report["fp_classifier"] == str(tmp_path / "fp")
    found = report["images"][str(tmp_path / "scan.pgm")]["candidates"]
    before = json.loads((tmp_path / "plain" / "predictions.json").read_text())
    assert before["fp_classifier"] is None
    assert len(found) == len(before["images"][str(tmp_path / "scan.pgm")]["candidates"]) > 0
    # The scores are the classifier's re-scoring of the plain candidates, best first.
    predictor = Predictor.load(model_path)
    image = cli._read_image(tmp_path / "scan.pgm")
    work = preprocess_image(image, predictor.config)
    prob_work = predictor.predict_working(work)
    min_area = int(np.ceil(CONFIG.min_candidate_area / CONFIG.scale_for(image.shape) ** 2))
    candidates = extract_candidates(work.crop.to_original(prob_work), 0.2, min_area)
    expected = reducer.rescore(work, prob_work, candidates)
    assert [c["score"] for c in found] == pytest.approx([c.score for c in expected], abs=1e-4)
    assert [c.score for c in expected] != [c.score for c in candidates]
    # the masks are the same with and without it
    np.testing.assert_array_equal(
        np.asarray(Image.open(tmp_path / "out" / "scan_mask.png")),
        np.asarray(Image.open(tmp_path / "plain" / "scan_mask.png")),
    )
    missing = _run(
        model_path, [tmp_path / "scan.pgm"], tmp_path / "x", "--fp-classifier", str(tmp_path)
    )
    assert missing == 2 and f"no fp_classifier.keras in {tmp_path}" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()  # nothing written
    # Beside the model (a run's fp/), it is used without being named; `none` opts out.
    import shutil

    run = tmp_path / "run"
    run.mkdir()
    for name in ("model.keras", "recipe.json"):
        shutil.copy(model_path.with_name(name), run / name)
    reducer.save(run / "fp")
    assert _run(run / "model.keras", [tmp_path / "scan.pgm"], tmp_path / "auto") == 0
    assert "candidates re-ranked by " + str(run / "fp") in capsys.readouterr().out
    auto = json.loads((tmp_path / "auto" / "predictions.json").read_text())
    assert auto["fp_classifier"] == str(run / "fp")
    assert auto["images"][str(tmp_path / "scan.pgm")]["candidates"] == found
    argv = ["--fp-classifier", "none"]
    assert _run(run / "model.keras", [tmp_path / "scan.pgm"], tmp_path / "none", *argv) == 0
    plain_again = json.loads((tmp_path / "none" / "predictions.json").read_text())
    assert plain_again["fp_classifier"] is None
    assert (
        plain_again["images"][str(tmp_path / "scan.pgm")]
        == (before["images"][str(tmp_path / "scan.pgm")])
    )
    # a classifier of a model with another working size: refused before anything is written
    other = CandidateClassifier(
        replace(settings, working_size=CONFIG.working_size * 2), reducer.model
    )
    other.save(tmp_path / "fp_other")
    argv = ["--fp-classifier", str(tmp_path / "fp_other")]
    assert _run(model_path, [tmp_path / "scan.pgm"], tmp_path / "x", *argv) == 2
    err = capsys.readouterr().err
    assert f"model with working size {CONFIG.working_size * 2}, this model's is " in err
    assert not (tmp_path / "x").exists()
