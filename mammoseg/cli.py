"""The ``mammoseg`` command: predict with, train and evaluate the recipe; get and check MIAS.

    mammoseg --version
    mammoseg predict --model runs/recipe/model.keras scans/ 'more/*.dcm' mdb001.pgm \\
        --output-dir predictions/
    mammoseg train --data mias:/data/mias --output-dir runs/recipe [--set working_size=256]
    mammoseg evaluate --model runs/recipe/model.keras [--data mias:/data/mias] [--split test]
    mammoseg download mias --to data/mias [--url URL]
    mammoseg verify mias data/mias

``predict`` takes files, folders (their image files, sorted) and glob patterns. For each image:
``<name>_mask.png`` (the mask at the recipe's threshold, limited to its best regions when the
recipe chose so on validation; the image's own size) and ``<name>_overlay.png`` (full
resolution: mask outline, lesion candidates and their scores, optionally the probability
heatmap); for all images ``predictions.json`` (crop box and candidates of every image) and
``predictions.csv`` (one row per candidate: centroid, box, area in pixels and in mm² where the
pixel size is known).

``train`` runs the recipe as ``experiments/beyond_mass_segmentation.py`` does (phantom
pre-training, patient split, training, threshold and region limit chosen on validation, test
scored once, then the false-positive classifier and the test scored with its re-ranked
candidates) and leaves in ``--output-dir``: ``model.keras``, ``recipe.json`` (settings, data,
split, metrics, version), ``metrics.json``, ``MODEL_CARD.md``, ``history.csv``,
``validation.csv``, a TensorBoard log, ``pretrain/`` and ``fp/`` (the classifier that
``predict`` and ``evaluate`` re-rank the candidates with). ``evaluate`` scores such a model
again, on its recorded split or on other data.

Exit status: 0 done; 1 done, but an image failed (predict), or a copy is incomplete (download,
verify); 2 nothing done: a bad argument, file or folder (the message names it).
"""

from __future__ import annotations

import argparse
import csv
import datetime
import glob
import io
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from mammoseg import __version__


def _limit_text(mask_regions: int | None) -> str:
    if mask_regions is None:
        return ""
    return f", best {mask_regions} region" + ("s" if mask_regions > 1 else "")


# Smallest side and largest side ratio an image may have: below or beyond, the recipe's
# crop, resize and sliding windows have nothing meaningful to work on.
MIN_SIDE = 16
MAX_ASPECT = 20.0
# Share of the image the breast region (found without margin) may cover. On mini-MIAS the breast
# covers 10-90 % of the film (facts.md §4): under 1 % the "breast" is a label or a speck of noise,
# over 99 % nothing separates from a background (an inverted image, a photograph, a tissue
# crop), and the recipe's crop would hand the network a region that is not a breast.
MIN_BREAST_SHARE = 0.01
MAX_BREAST_SHARE = 0.99


def _output_stems(paths: list[Path]) -> list[str]:
    """Output name stems: the file stem, or the path relative to the inputs' common folder
    (``a/mdb001.pgm`` → ``a__mdb001``) when two inputs share a stem."""
    stems = [p.stem for p in paths]
    if len(set(stems)) == len(stems):
        return stems
    resolved = [p.resolve() for p in paths]
    root = Path(os.path.commonpath([r.parent for r in resolved]))
    return ["__".join(r.relative_to(root).with_suffix("").parts) for r in resolved]


def _check_image(image) -> str | None:
    height, width = image.shape[:2]
    if max(height, width) > MAX_ASPECT * min(height, width):
        return f"degenerate image shape {height}×{width} (sides more than {MAX_ASPECT:g}:1)"
    if min(height, width) < MIN_SIDE:
        return f"image too small: {height}×{width}, each side must be at least {MIN_SIDE}"
    return None


def _check_breast(image) -> str | None:
    """Why the breast crop finds no breast in ``image``, or None when it finds one."""
    import numpy as np

    from mammoseg.recipes.breast_crop import find_breast

    if float(np.ptp(image)) < 1.0 / 255.0:
        # find_breast finds no foreground here and would give back the whole frame
        value = float(image.flat[0])
        return f"no breast found: the image is uniform (value {value:.3g})"
    share = float(find_breast(image, margin=0.0).breast.sum()) / image.size
    if share < MIN_BREAST_SHARE:
        return (
            f"no breast found: the largest bright region covers {share:.2%} of the image "
            f"(a breast covers at least {MIN_BREAST_SHARE:.0%}; a label or noise?)"
        )
    if share > MAX_BREAST_SHARE:
        return (
            f"no breast found: no background around a breast, the bright region covers "
            f"{share:.2%} of the image (an inverted image, a photograph or a crop of tissue?)"
        )
    return None


def _read_image(path: Path):
    import warnings

    from PIL import Image

    from mammoseg.data.records import read_pixels

    with warnings.catch_warnings():
        # Past Pillow's pixel limit it only warns; an image that large is refused as well.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            return read_pixels(path)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
            raise ValueError(
                f"refused as over-large (Pillow's decompression-bomb guard): {err}"
            ) from err


# === shared by the commands: progress, messages, data, run folders, provenance ===

BAR_FORMAT = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}, ETA {remaining}]"
RUN_MARKER = "run.json"  # as experiments/ write it: a folder the program may replace
DATA_FORMS = "'phantom', 'mias:PATH' or 'cbis-ddsm:PATH'"


def _progress(total: int, description: str, *, quiet: bool):
    """A progress bar with an ETA on stderr; off with --quiet or when stderr is not a terminal
    (a log file gets no carriage-return noise)."""
    from tqdm import tqdm

    return tqdm(
        total=total,
        desc=description,
        unit="image",
        file=sys.stderr,
        disable=quiet or not sys.stderr.isatty(),
        bar_format=BAR_FORMAT,
        dynamic_ncols=True,
    )


def _say(text: str, *, quiet: bool = False) -> None:
    """A line on stdout that does not break a progress bar on stderr."""
    if not quiet:
        from tqdm import tqdm

        tqdm.write(text, file=sys.stdout)


def _warn(text: str) -> None:
    from tqdm import tqdm

    tqdm.write(text, file=sys.stderr)


class _CountingPredictor:
    """A `Predictor` that advances a progress bar after each image it predicts, so a caller
    of `evaluate_records` (which predicts every record in turn) sees how far it is."""

    def __init__(self, predictor, bar) -> None:
        self.predictor, self.bar = predictor, bar

    @property
    def config(self):
        return self.predictor.config

    def predict(self, image):
        result = self.predictor.predict(image)
        self.bar.update(1)
        return result

    def predict_working(self, work):
        result = self.predictor.predict_working(work)
        self.bar.update(1)
        return result

    def mask(self, probability, threshold=None):
        return self.predictor.mask(probability, threshold)


def _evaluate_with_progress(predictor, records, thresholds, *, description, quiet, **options):
    from mammoseg.recipes import evaluate_records

    with _progress(len(records), description, quiet=quiet) as bar:
        return evaluate_records(_CountingPredictor(predictor, bar), records, thresholds, **options)


def parse_data_option(value: str) -> tuple[str, Path | None]:
    """``--data`` as the experiments take it: "phantom", "mias:PATH" or "cbis-ddsm:PATH".

    Raises:
        ValueError: any other form, echoing it.

    Example:
        >>> parse_data_option("mias:/data/mias")
        ('mias', PosixPath('/data/mias'))
    """
    if value == "phantom":
        return "phantom", None
    name, sep, path = value.partition(":")
    if name in ("mias", "cbis-ddsm") and sep and path:
        return name, Path(path)
    raise ValueError(f"--data must be {DATA_FORMS}, received {value!r}")


def _load_records(data: str, *, phantom_images: int, phantom_size: int, quiet: bool):
    """The records of ``--data`` (raises ValueError / MammosegDataError naming the problem)."""
    from mammoseg.data import load_records

    name, path = parse_data_option(data)
    if name == "phantom":
        return load_records(
            "phantom", n_images=phantom_images, size=phantom_size, progress=not quiet
        )
    if not path.is_dir():
        raise ValueError(f"--data {data}: {path} is not a folder")
    return load_records(name, path)


def parse_set(items: Sequence[str], known: Sequence[str], what: str = "one of") -> dict:
    """``--set KEY=VALUE`` items → {key: value}; values read as JSON (``None`` / ``null`` for
    None), else kept as text. The one parser of ``--set`` (the CLI and the experiments).

    Args:
        items: the ``KEY=VALUE`` strings.
        known: the accepted keys.
        what: how the message introduces the keys ("one of", "a RecipeConfig field").

    Raises:
        ValueError: an item without ``=`` or with an unknown key (with the closest one).

    Example:
        >>> parse_set(["depth=4", "loss=dice_bce", "budget=None"], ["depth", "loss", "budget"])
        {'depth': 4, 'loss': 'dice_bce', 'budget': None}
    """
    from mammoseg.checks import closest_match

    values = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or key not in known:
            hint = closest_match(key, list(known)) if sep else ""
            raise ValueError(
                f"--set {item!r}: expected KEY=VALUE with KEY {what}{hint} "
                f"(keys: {', '.join(known)})"
            )
        if text in ("None", "null"):
            values[key] = None
            continue
        try:
            values[key] = json.loads(text)
        except json.JSONDecodeError:
            values[key] = text
    return values


def config_with_overrides(config, items: Sequence[str]):
    """A `RecipeConfig` with ``--set KEY=VALUE`` items applied (`parse_set`).

    Raises:
        ValueError: an item without ``=``, an unknown key (with the closest field), a value of
            the wrong kind or out of range (RecipeConfig's own message).

    Example:
        >>> from mammoseg.recipes import RecipeConfig
        >>> config_with_overrides(RecipeConfig(), ["working_size=256", "depth=4"]).depth
        4
    """
    from mammoseg.recipes import RecipeConfig

    values = config.to_dict()
    for key, value in parse_set(items, list(values), "a RecipeConfig field").items():
        default = values[key]
        item = f"{key}={value}"
        if isinstance(default, bool) and not isinstance(value, bool):
            raise ValueError(f"--set {item}: expected true or false")
        if isinstance(default, (int, float)) and not isinstance(value, (int, float, type(None))):
            raise ValueError(f"--set {item}: expected a number")
        values[key] = value
    try:
        return RecipeConfig.from_dict(values)
    except (TypeError, ValueError) as err:
        raise ValueError(f"--set: {err}") from None


def _run_folder_problem(folder: Path, *, overwrite: bool) -> str | None:
    """Why ``folder`` may not become this run's folder (the experiments' rules), or None.

    A non-empty folder is replaced only when it holds a mammoseg run (its ``run.json``) and
    ``--overwrite`` is given; anything else non-empty is never touched.
    """
    if folder.exists() and not folder.is_dir():
        return f"--output-dir {folder} exists and is not a folder"
    if folder.is_dir() and any(folder.iterdir()):
        if not (folder / RUN_MARKER).is_file():
            return (
                f"--output-dir {folder} is not empty and is not a mammoseg run folder (no "
                f"{RUN_MARKER}); choose another folder, nothing was changed"
            )
        if not overwrite:
            return f"--output-dir {folder} holds an earlier run; pass --overwrite to replace it"
    return None


def _claim_run_folder(folder: Path, settings: dict) -> None:
    """Empty (a checked earlier run) or create ``folder`` and write its ``run.json``."""
    from mammoseg.training import save_json

    if folder.is_dir() and any(folder.iterdir()):
        if not (folder / RUN_MARKER).is_file():  # never a folder this program did not make
            raise RuntimeError(f"{folder}: not a mammoseg run folder (no {RUN_MARKER})")
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_json(folder / RUN_MARKER, settings)


def git_commit() -> str:
    """The commit of the mammoseg checkout this code runs from (with ``-dirty`` when files
    differ from it), or "unknown" (an installed wheel, no git).

    Example:
        >>> git_commit()  # doctest: +SKIP
        '3238471a...'
    """
    root = Path(__file__).resolve().parents[1]
    if not (root / ".git").exists():  # not a checkout of mammoseg (a wheel, a foreign repo)
        return "unknown"
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        if head.returncode != 0 or not head.stdout.strip():
            return "unknown"
        status = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    dirty = status.returncode == 0 and bool(status.stdout.strip())
    return head.stdout.strip() + ("-dirty" if dirty else "")


def _fmt(value, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _metrics_line(name: str, metrics: dict) -> str:
    return (
        f"{name}: {metrics['n_images']} images ({metrics['n_images_with_lesion']} with a lesion), "
        f"Dice/image {_fmt(metrics['dice_per_image_mean'])}, "
        f"Dice pooled {_fmt(metrics['dice_pooled'])}, "
        f"empty-prediction rate {_fmt(metrics['empty_prediction_rate'])}, "
        f"sensitivity at 1 FP/image {_fmt(metrics['lesion_sensitivity_at_1fppi'])}, "
        f"FROC mean {_fmt(metrics['froc_mean'])}"
    )


# === predict ===

IMAGE_SUFFIXES = (".pgm", ".dcm", ".dicom", ".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
DICOM_SUFFIXES = (".dcm", ".dicom", "")  # as `mammoseg.data.records.read_pixels` tells them
# mini-MIAS: "reduced to 200 micron pixel edge ... every image is 1024 pixels x 1024 pixels"
# (its README); known by its file names and size, since a PGM carries no pixel size.
MIAS_PIXEL_MM = 0.2
MIAS_NAME = re.compile(r"mdb\d{3}")
CSV_COLUMNS = (
    "image",
    "candidate",
    "score",
    "row",
    "col",
    "box_row0",
    "box_col0",
    "box_row1",
    "box_col1",
    "area_px",
    "area_mm2",
)


def expand_inputs(items: Sequence[str]) -> list[Path]:
    """The image paths named on the command line, in order.

    A folder gives its image files (suffixes `IMAGE_SUFFIXES`, sorted, not its subfolders); a
    name with ``*``, ``?`` or ``[`` that is not an existing file is a glob pattern (``**``
    spans folders) and gives the files it matches, sorted; anything else is taken as a file
    (a missing one is reported later, as that image's failure).

    Raises:
        ValueError: a folder without an image file, or a pattern that matches no file.

    Example:
        >>> expand_inputs(["scans/", "extra/*.dcm", "mdb001.pgm"])  # doctest: +SKIP
        [PosixPath('scans/a.pgm'), PosixPath('scans/b.png'), PosixPath('extra/c.dcm'), ...]
    """
    paths: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            found = sorted(
                p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
            )
            if not found:
                raise ValueError(
                    f"{item}: the folder holds no image file ({' '.join(IMAGE_SUFFIXES)})"
                )
            paths += found
        elif not path.exists() and any(c in item for c in "*?["):
            found = sorted(Path(p) for p in glob.glob(item, recursive=True) if Path(p).is_file())
            if not found:
                raise ValueError(f"{item}: the pattern matches no file")
            paths += found
        else:
            paths.append(path)
    return paths


def pixel_spacing_mm(path: str | os.PathLike, shape: tuple[int, int]) -> tuple[float, float] | None:
    """The (row, column) pixel size in mm of an image file, where it is known: a DICOM's
    ``PixelSpacing`` (or ``ImagerPixelSpacing``), 0.2 mm for a 1024×1024 mini-MIAS
    ``mdbNNN.pgm``; None otherwise.

    Example:
        >>> pixel_spacing_mm("mdb001.pgm", (1024, 1024))
        (0.2, 0.2)
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in DICOM_SUFFIXES:
        from mammoseg.data.dicom import read_dicom_header
        from mammoseg.data.errors import MammosegDataError

        try:
            return read_dicom_header(path)["pixel_spacing"]
        except MammosegDataError:
            return None
    if suffix == ".pgm" and MIAS_NAME.fullmatch(path.stem) and tuple(shape) == (1024, 1024):
        return (MIAS_PIXEL_MM, MIAS_PIXEL_MM)
    return None


def candidate_rows(image: str, candidates: Sequence, spacing: tuple[float, float] | None):
    """The ``predictions.csv`` rows of one image's candidates (best first, numbered from 1).

    ``row``/``col`` is the centroid; the box is ``image[box_row0:box_row1,
    box_col0:box_col1]`` (ends exclusive); ``area_mm2`` is empty when the pixel size is unknown.

    Example:
        >>> region = Region(0.9, (1.5, 2.0), 2, np.array([[1, 2], [2, 2]]))  # doctest: +SKIP
        >>> candidate_rows("a.png", [region], (0.2, 0.2))[0]["area_mm2"]  # doctest: +SKIP
        0.08
    """
    from mammoseg.recipes.overlay import region_box

    rows = []
    for rank, region in enumerate(candidates, 1):
        row0, col0, row1, col1 = region_box(region)
        area_mm2 = "" if spacing is None else round(region.area * spacing[0] * spacing[1], 4)
        rows.append(
            {
                "image": image,
                "candidate": rank,
                "score": round(float(region.score), 4),
                "row": round(region.centroid[0], 1),
                "col": round(region.centroid[1], 1),
                "box_row0": row0,
                "box_col0": col0,
                "box_row1": row1,
                "box_col1": col1,
                "area_px": int(region.area),
                "area_mm2": area_mm2,
            }
        )
    return rows


def _write_csv(path: Path, rows: Sequence[dict]) -> None:
    from mammoseg.training import write_text_atomic

    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, text.getvalue())


class _ImageFailed(Exception):
    """One image of ``predict`` failed after its prediction (reported, the next one goes on)."""


def _predict(args: argparse.Namespace) -> int:
    import numpy as np

    from mammoseg.recipes.candidates import extract_candidates
    from mammoseg.recipes.inference import EnsemblePredictor, Predictor
    from mammoseg.recipes.overlay import save_mask_png, save_overlay_png
    from mammoseg.recipes.preprocess import preprocess_image
    from mammoseg.training import save_json

    # === check everything before touching the disk ===
    try:
        paths = expand_inputs(args.images)
    except ValueError as err:
        print(f"mammoseg predict: {err}", file=sys.stderr)
        return 2
    if args.pixel_size is not None and not args.pixel_size > 0:
        print(
            f"mammoseg predict: --pixel-size must be positive (mm), received {args.pixel_size}",
            file=sys.stderr,
        )
        return 2
    stems = _output_stems(paths)
    clashes = {s: [str(p) for p, t in zip(paths, stems) if t == s] for s in stems}
    clashes = {s: names for s, names in clashes.items() if len(names) > 1}
    if clashes:
        listed = "; ".join(f"{s}: {', '.join(names)}" for s, names in clashes.items())
        print(f"mammoseg predict: inputs would share an output name ({listed})", file=sys.stderr)
        return 2
    out_dir = Path(args.output_dir)
    targets = [out_dir / "predictions.json", out_dir / "predictions.csv"]
    for stem in stems:
        targets += [out_dir / f"{stem}_mask.png", out_dir / f"{stem}_overlay.png"]
    existing = [str(t) for t in targets if t.exists()]
    if existing and not args.overwrite:
        print(
            f"mammoseg predict: would overwrite existing files ({', '.join(existing[:5])}"
            + (f" and {len(existing) - 5} more" if len(existing) > 5 else "")
            + "); pass --overwrite or choose another --output-dir",
            file=sys.stderr,
        )
        return 2
    try:
        if len(args.model) == 1:
            predictor = Predictor.load(args.model[0])
        else:
            predictor = EnsemblePredictor.load(args.model)
        reducer, reducer_folder = _run_classifier(
            args.fp_classifier, [Path(m) for m in args.model], predictor.config.working_size
        )
    except (FileNotFoundError, ValueError) as err:
        print(f"mammoseg predict: {err}", file=sys.stderr)
        return 2
    config = predictor.config
    threshold = config.threshold if args.threshold is None else args.threshold
    if not 0.0 <= threshold <= 1.0:
        print(
            f"mammoseg predict: --threshold must be in [0, 1], received {threshold}",
            file=sys.stderr,
        )
        return 2
    out_dir.mkdir(parents=True, exist_ok=True)
    if reducer_folder is not None:
        _say(f"mammoseg predict: candidates re-ranked by {reducer_folder}", quiet=args.quiet)
    report = {
        "model": str(args.model[0]) if len(args.model) == 1 else [str(m) for m in args.model],
        "threshold": threshold,
        "mask_regions": config.mask_regions,
        "fp_classifier": None if reducer_folder is None else str(reducer_folder),
        "images": {},
    }
    rows: list[dict] = []

    limit_text = _limit_text(config.mask_regions)

    # === each image on its own: a failure is reported and the next one goes on ===
    failures = 0
    bar = _progress(len(paths), "predict", quiet=args.quiet)
    for path, stem in zip(paths, stems):
        try:
            image = _read_image(path)
            if image.ndim == 3:  # a colour PNG: average the channels
                image = image.mean(axis=-1)
            problem = _check_image(image) or _check_breast(image)
            if problem is not None:
                raise ValueError(problem)
            if reducer is None:
                prob, work = predictor.predict(image)
            else:  # the classifier also reads the working-resolution map
                work = preprocess_image(image, config)
                prob_work = predictor.predict_working(work)
                prob = work.crop.to_original(prob_work)
        except Exception as err:  # noqa: BLE001 - any failure of one image is its own
            _warn(f"mammoseg predict: skipping {path}: {err}")
            report["images"][str(path)] = {"error": str(err)}
            failures += 1
            bar.update(1)
            continue
        if args.pixel_size is not None:
            spacing = (args.pixel_size, args.pixel_size)
        else:
            spacing = pixel_spacing_mm(path, image.shape)
        try:  # a full disk or a bad path fails this image, not the run
            mask = predictor.mask(prob, threshold)
            min_area = config.min_candidate_area / config.scale_for(image.shape) ** 2
            candidates = extract_candidates(
                prob, config.candidate_threshold, int(np.ceil(min_area))
            )
            if reducer is not None:  # the second stage re-ranks them (the mask is the same)
                try:
                    candidates = reducer.rescore(work, prob_work, candidates)
                except Exception as err:  # noqa: BLE001 - this image's failure, not the run's
                    raise _ImageFailed(f"the false-positive classifier failed: {err}") from err
            save_mask_png(mask, out_dir / f"{stem}_mask.png")
            save_overlay_png(
                image,
                mask,
                candidates,
                out_dir / f"{stem}_overlay.png",
                probability=prob if args.heatmap else None,
                title=f"{path.name}: mask at {threshold:g}{limit_text} (red), "
                "candidates (yellow, score)" + (", probability (heatmap)" if args.heatmap else ""),
            )
        except _ImageFailed as err:
            _warn(f"mammoseg predict: skipping {path}: {err}")
            report["images"][str(path)] = {"error": str(err)}
            failures += 1
            bar.update(1)
            continue
        except OSError as err:
            _warn(f"mammoseg predict: cannot write the outputs of {path}: {err}")
            report["images"][str(path)] = {"error": f"cannot write outputs: {err}"}
            failures += 1
            bar.update(1)
            continue
        image_rows = candidate_rows(str(path), candidates, spacing)
        rows += image_rows
        report["images"][str(path)] = {
            "mask": f"{stem}_mask.png",
            "overlay": f"{stem}_overlay.png",
            "crop": work.crop.to_dict(),
            "mask_pixels": int(mask.sum()),
            "pixel_spacing_mm": list(spacing) if spacing is not None else None,
            "candidates": [
                {
                    "score": row["score"],
                    "centroid": [row["row"], row["col"]],
                    "box": [row["box_row0"], row["box_col0"], row["box_row1"], row["box_col1"]],
                    "area": row["area_px"],
                    "area_mm2": row["area_mm2"] if spacing is not None else None,
                }
                for row in image_rows
            ],
        }
        bar.update(1)
        best = f"{candidates[0].score:.2f}" if candidates else "none"
        _say(
            f"{path}: {len(candidates)} candidate(s), best score {best}, mask {mask.sum()} px",
            quiet=args.quiet,
        )
    bar.close()
    report["failed"] = failures
    save_json(out_dir / "predictions.json", report)
    _write_csv(out_dir / "predictions.csv", rows)
    return 1 if failures else 0


# === train and evaluate the recipe ===

MODEL_CARD = "MODEL_CARD.md"
METRICS_FILE = "metrics.json"
SPLITS = ("train", "val", "test")


def _split_facts(splits: dict, kinds: Sequence[str], seed: int) -> dict:
    return {
        "method": "by patient, 60/20/20, stratified on images with a lesion of the kinds",
        "seed": seed,
        "kinds": list(kinds),
        **{name: [r.image_id for r in records] for name, records in splits.items()},
        "counts": {
            name: [len(records), sum(r.has_lesion(kinds) for r in records)]
            for name, records in splits.items()
        },
    }


def _train(args: argparse.Namespace) -> int:
    from mammoseg.data import MammosegDataError

    # === settings and the output folder: checked before anything is read or written ===
    from mammoseg.recipes import RecipeConfig

    try:
        config = config_with_overrides(RecipeConfig(), args.set)
        parse_data_option(args.data)
        if args.pretrain_minutes is not None and args.pretrain == "none":
            raise ValueError("--pretrain-minutes needs --pretrain phantom")
    except ValueError as err:
        print(f"mammoseg train: {err}", file=sys.stderr)
        return 2
    out = Path(args.output_dir)
    problem = _run_folder_problem(out, overwrite=args.overwrite)
    if problem:
        print(f"mammoseg train: {problem}", file=sys.stderr)
        return 2

    # === data and the patient split ===
    from mammoseg.data.split import split_by_patient

    try:
        records = _load_records(
            args.data,
            phantom_images=args.phantom_images,
            phantom_size=args.phantom_size,
            quiet=args.quiet,
        )
    except (ValueError, MammosegDataError) as err:
        print(f"mammoseg train: {err}", file=sys.stderr)
        return 2
    parts = split_by_patient(records, seed=args.seed, kinds=config.kinds)
    splits = dict(zip(SPLITS, parts))
    for name in ("train", "val"):
        if not any(r.has_lesion(config.kinds) for r in splits[name]):
            print(
                f"mammoseg train: the {name} split of --data {args.data} ({len(splits[name])} "
                f"images) holds no lesion of kinds {list(config.kinds)}: more images or "
                "another --seed",
                file=sys.stderr,
            )
            return 2
    settings = {
        "command": "mammoseg train",
        "data": args.data,
        "seed": args.seed,
        "recipe": config.to_dict(),
        "mammoseg": __version__,
    }
    _claim_run_folder(out, settings)
    _say(
        f"mammoseg train: {len(records)} images from {args.data}, split "
        + ", ".join(f"{name} {len(part)}" for name, part in splits.items())
        + f" (seed {args.seed}); output {out}",
        quiet=args.quiet,
    )

    # === train ===
    import keras

    from mammoseg import training
    from mammoseg.recipes import Predictor, prepare_records, train_recipe

    keras.utils.set_random_seed(args.seed)
    if args.deterministic:
        training.set_determinism(enabled=True)
    precision = training.set_precision(args.precision)
    pretraining = None
    if args.pretrain == "phantom" and config.init_weights is None:
        pretraining = _pretrain(args, config, out)
        config = replace(config, init_weights=pretraining["model"])
    _say(f"  preparing images (breast crop, working resolution); {precision}", quiet=args.quiet)
    train_images = prepare_records(splits["train"], config)
    val_images = prepare_records(splits["val"], config)
    model, info = train_recipe(
        train_images, val_images, config, out, seed=args.seed, verbose=0 if args.quiet else 2
    )
    predictor = Predictor(model, config)

    # === validation chooses the threshold and region limit; test is scored once ===
    metrics = _choose_and_score(predictor, splits, quiet=args.quiet)
    status = 0
    if args.fp_reduction:
        try:
            metrics.update(_fp_stage(predictor, splits, out, seed=args.seed, quiet=args.quiet))
        except Exception as err:  # noqa: BLE001 - the model and its record are kept
            _warn(f"mammoseg train: the false-positive stage failed: {type(err).__name__}: {err}")
            reason = f"failed: {type(err).__name__}: {err}"
            metrics["fp_reduction"] = {"trained": False, "reason": reason}
            status = 1

    # === the record: recipe.json, metrics.json, MODEL_CARD.md ===
    facts = {
        "data": args.data,
        "data_options": {"phantom_images": args.phantom_images, "phantom_size": args.phantom_size}
        if args.data == "phantom"
        else {},
        "seed": args.seed,
        "split": _split_facts(splits, config.kinds, args.seed),
        "metrics": {k: metrics[k] for k in ("val", "test", "test_fp_reduction") if k in metrics},
        "training": {k: v for k, v in info.items() if k not in ("history", "validation")},
        "pretraining": None
        if pretraining is None
        else {k: v for k, v in pretraining.items() if k not in ("history", "recipe")},
        "fp_reduction": metrics.get("fp_reduction"),
        "precision": precision,
        "mammoseg": {"version": __version__, "commit": git_commit()},
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    _write_record(out, predictor.config, facts, metrics)
    for split in ("val", "test", "test_fp_reduction"):
        if split in metrics:
            _say(_metrics_line(split, metrics[split]), quiet=False)
    _say(f"model, recipe, metrics and {MODEL_CARD} in {out}", quiet=args.quiet)
    return status


def positive_minutes(text: str) -> float:
    """argparse type of ``--pretrain-minutes`` (here and in the experiments): a positive number.

    Example:
        >>> positive_minutes("2.5")
        2.5
    """
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be a number of minutes, received {text!r}"
        ) from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, received {text}")
    return value


def _pretrain(args: argparse.Namespace, config, out: Path) -> dict:
    """The recipe's first step: `mammoseg.recipes.pretrain_on_phantom` into ``out/pretrain``
    (``--phantom-images`` of ``--phantom-size`` px; a second phantom set when the data is the
    phantom itself), on ``--pretrain-minutes``."""
    from mammoseg.recipes import (
        PRETRAIN_DIR,
        PRETRAIN_MINUTES,
        pretrain_config,
        pretrain_on_phantom,
        pretrain_phantom_seed,
    )

    base = pretrain_config(config, minutes=args.pretrain_minutes or PRETRAIN_MINUTES)
    phantom_seed = pretrain_phantom_seed(args.data)
    _say(
        f"  pre-training on {args.phantom_images} phantom mammograms (seed {phantom_seed}), "
        f"{base.time_budget_minutes:g} min at most (--pretrain none to skip)",
        quiet=args.quiet,
    )
    return pretrain_on_phantom(
        base,
        out / PRETRAIN_DIR,
        n_images=args.phantom_images,
        size=args.phantom_size,
        phantom_seed=phantom_seed,
        split_seed=args.seed,
        seed=args.seed,
        verbose=0 if args.quiet else 2,
    )


def _fp_stage(predictor, splits: dict, out: Path, *, seed: int, quiet: bool) -> dict:
    """The recipe's second stage: a candidate classifier trained on the training and validation
    images (``out/fp``), and the test split's candidates re-ranked by it (same masks)."""
    from mammoseg.recipes import OneClassCandidates, split_metrics, train_candidate_classifier

    _say("  false-positive reduction: training the candidate classifier ...", quiet=quiet)
    try:
        reducer, info = train_candidate_classifier(
            predictor, [*splits["train"], *splits["val"]], out / "fp", seed=seed
        )
    except OneClassCandidates as err:
        _warn(f"mammoseg train: no false-positive classifier: {err}")
        return {"fp_reduction": {"trained": False, "reason": str(err)}}
    threshold = predictor.config.threshold
    test_eval = _evaluate_with_progress(
        predictor,
        splits["test"],
        [threshold],
        description="test, candidates re-ranked",
        quiet=quiet,
        rescore=reducer.rescore,
    )
    counts = {k: info[k] for k in ("hits", "false_positives", "lesions", "patches")}
    return {
        "test_fp_reduction": split_metrics(test_eval, threshold),
        "fp_reduction": {"trained": True, "folder": "fp", **counts},
    }


def _choose_and_score(predictor, splits: dict, *, quiet: bool) -> dict:
    """The threshold and region limit chosen on validation (set on ``predictor.config``), and
    the metrics of validation and test at them."""
    from mammoseg.recipes import (
        DEFAULT_THRESHOLDS,
        REGION_CHOICES,
        select_postprocessing,
        split_metrics,
        with_region_limit,
    )

    val_eval = _evaluate_with_progress(
        predictor,
        splits["val"],
        DEFAULT_THRESHOLDS,
        description="validation (whole images)",
        quiet=quiet,
        region_choices=REGION_CHOICES,
    )
    threshold, regions, _ = select_postprocessing(
        val_eval.counts, val_eval.limited_counts, DEFAULT_THRESHOLDS
    )
    predictor.config = predictor.config.with_postprocessing(threshold, regions)
    _say(f"  threshold {threshold:g}, mask regions {regions or 'all'} (chosen on validation)")
    test_eval = _evaluate_with_progress(
        predictor, splits["test"], [threshold], description="test (whole images)", quiet=quiet
    )
    return {
        "val": split_metrics(with_region_limit(val_eval, regions), threshold),
        "test": split_metrics(test_eval, threshold),
        "threshold": threshold,
        "mask_regions": regions,
    }


def _write_record(out: Path, config, facts: dict, metrics: dict) -> None:
    from mammoseg.recipes import save_recipe
    from mammoseg.training import save_json, write_text_atomic

    save_recipe(out, config, **facts)
    save_json(out / METRICS_FILE, {**metrics, "training": facts["training"]})
    write_text_atomic(out / MODEL_CARD, model_card(config, facts))


def _start_text(config, pretraining: dict | None) -> str:
    if pretraining is not None:
        t = pretraining["training"]
        return (
            f"pre-trained on {pretraining['images']['train']} phantom mammograms (seed "
            f"{pretraining['phantom_seed']}; {t.get('epochs_run', '?')} epoch(s), "
            f"{t.get('train_seconds', 0) / 60:.1f} min; `pretrain/`), then trained here"
        )
    if config.init_weights is not None:
        return f"the weights of `{config.init_weights}`"
    return "random (--pretrain none)"


def _fp_text(fp: dict | None) -> str:
    if fp is None:
        return "off (--no-fp-reduction)"
    if not fp["trained"]:
        return f"no classifier: {fp['reason']}"
    return (
        f"candidate classifier in `fp/` ({fp['hits']} hits, {fp['false_positives']} false "
        "positives of the training images); `mammoseg predict` and `mammoseg evaluate` "
        "re-rank with it (the masks are the same)"
    )


def model_card(config, facts: dict) -> str:
    """``MODEL_CARD.md`` of a recipe model: what it was trained on, how, how well, by which
    mammoseg, and that it is for research only.

    Args:
        config: the model's `RecipeConfig` (threshold and region limit included).
        facts: what `mammoseg train` records in ``recipe.json`` besides the config: ``data``,
            ``seed``, ``split``, ``metrics`` (``val``, ``test``), ``training``, ``mammoseg``
            (``version``, ``commit``), ``date``.

    Example:
        >>> text = model_card(config, facts)  # doctest: +SKIP
        >>> text.splitlines()[0]
        '# Model card: mammoseg mass-finding recipe'
    """
    split = facts["split"]
    counts = split["counts"]
    training = facts.get("training", {})
    provenance = facts["mammoseg"]
    regions = (
        "every region kept"
        if config.mask_regions is None
        else f"best {config.mask_regions} region(s) kept"
    )
    lines = [
        "# Model card: mammoseg mass-finding recipe",
        "",
        "**Research use only.** Not a medical device: not validated for diagnosis, screening or "
        "any clinical decision.",
        "",
        "| | |",
        "|---|---|",
        "| model | `model.keras`, settings in `recipe.json` (read by `mammoseg predict`) |",
        f"| date | {facts['date']} |",
        f"| mammoseg | version {provenance['version']}, commit {provenance['commit']} |",
        f"| data | `{facts['data']}` |",
        f"| lesion kinds | {', '.join(config.kinds)} |",
        f"| split | {split['method']}; seed {split['seed']}; "
        + "; ".join(f"{name} {n} images ({k} with a lesion)" for name, (n, k) in counts.items())
        + " |",
        f"| seed | {facts['seed']} |",
        f"| training | {training.get('epochs_run', '?')} epoch(s), best at epoch "
        f"{training.get('best_epoch', '?')} ({training.get('stop_reason', '?')}), "
        f"{training.get('train_seconds', 0) / 60:.1f} min |",
        f"| start | {_start_text(config, facts.get('pretraining'))} |",
        f"| post-processing | mask threshold {config.threshold:g}, "
        f"{regions} (chosen on the validation split) |",
        f"| false-positive reduction | {_fp_text(facts.get('fp_reduction'))} |",
        "",
        "## Metrics (original image pixels)",
        "",
        "| split | images | with a lesion | Dice per image | Dice pooled | empty-prediction rate "
        "| sensitivity at 1 FP/image | FROC mean |",
        "|---|---|---|---|---|---|---|---|",
    ]
    rows = [("val", "validation"), ("test", "test"), ("test_fp_reduction", "test, re-ranked")]
    for name, label in rows:
        if name not in facts["metrics"]:
            continue
        m = facts["metrics"][name]
        lines.append(
            f"| {label} | {m['n_images']} | {m['n_images_with_lesion']} "
            f"| {_fmt(m['dice_per_image_mean'])} | {_fmt(m['dice_pooled'])} "
            f"| {_fmt(m['empty_prediction_rate'])} | {_fmt(m['lesion_sensitivity_at_1fppi'])} "
            f"| {_fmt(m['froc_mean'])} |"
        )
    lines += [
        "",
        "Dice per image is over images with a lesion; the empty-prediction rate is the share of "
        "those whose mask is empty; a lesion is found when a candidate's centroid lies inside "
        "its truth circle. The threshold was chosen on validation, so only the test row is an "
        "unbiased estimate, and on a small test split a wide one.",
        "",
        "## Intended use and limits",
        "",
        "Research on mass segmentation in mammograms, on images like the training data (same "
        "database, scanner and resolution). Not for patient care. Other databases, views or "
        "pixel sizes change the results; check them on your own labelled images first.",
        "",
        "## Settings",
        "",
        "```json",
        json.dumps(config.to_dict(), indent=2),
        "```",
        "",
    ]
    return "\n".join(lines)


def _evaluate(args: argparse.Namespace) -> int:
    from mammoseg.data import MammosegDataError
    from mammoseg.recipes import Predictor, split_metrics
    from mammoseg.recipes.config import RECIPE_FILE
    from mammoseg.training import save_json

    # === model, recipe and output: checked first ===
    output = Path(args.output) if args.output else None
    if output is not None and output.exists() and not args.overwrite:
        print(
            f"mammoseg evaluate: --output {output} exists; pass --overwrite to replace it",
            file=sys.stderr,
        )
        return 2
    try:
        predictor = Predictor.load(args.model)
        reducer, reducer_folder = _run_classifier(
            args.fp_classifier, [Path(args.model)], predictor.config.working_size
        )
    except (FileNotFoundError, ValueError) as err:
        print(f"mammoseg evaluate: {err}", file=sys.stderr)
        return 2
    recorded = json.loads(Path(args.model).with_name(RECIPE_FILE).read_text())
    data = args.data or recorded.get("data")
    if data is None:
        print(
            f"mammoseg evaluate: {Path(args.model).with_name(RECIPE_FILE)} records no data: "
            f"pass --data {DATA_FORMS}",
            file=sys.stderr,
        )
        return 2
    options = recorded.get("data_options") or {}

    # === the images: the recorded split, or every image ===
    try:
        records = _load_records(
            data,
            phantom_images=options.get("phantom_images", args.phantom_images),
            phantom_size=options.get("phantom_size", args.phantom_size),
            quiet=args.quiet,
        )
    except (ValueError, MammosegDataError) as err:
        print(f"mammoseg evaluate: {err}", file=sys.stderr)
        return 2
    try:
        chosen, how = _split_records(records, recorded, args.split, data)
    except ValueError as err:
        print(f"mammoseg evaluate: {err}", file=sys.stderr)
        return 2
    _say(f"mammoseg evaluate: {len(chosen)} images ({how}) of {data}", quiet=args.quiet)

    # === score ===
    threshold = predictor.config.threshold
    evaluation = _evaluate_with_progress(
        predictor, chosen, [threshold], description=f"{args.split} (whole images)", quiet=args.quiet
    )
    metrics = split_metrics(evaluation, threshold)
    _say(_metrics_line(args.split, metrics))
    reranked = None
    if reducer is not None:
        reranked = split_metrics(
            _evaluate_with_progress(
                predictor,
                chosen,
                [threshold],
                description=f"{args.split}, candidates re-ranked",
                quiet=args.quiet,
                rescore=reducer.rescore,
            ),
            threshold,
        )
        _say(_metrics_line(f"{args.split}, candidates re-ranked by {reducer_folder}", reranked))
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        save_json(
            output,
            {
                "model": str(args.model),
                "data": data,
                "split": args.split,
                "images": evaluation.image_ids,
                "metrics": metrics,
                "fp_classifier": None if reducer_folder is None else str(reducer_folder),
                "metrics_fp_reduction": reranked,
                "mammoseg": {"version": __version__, "commit": git_commit()},
            },
        )
        _say(f"metrics written to {output}", quiet=args.quiet)
    return 0


def _run_classifier(choice: str, models: list[Path], working_size: int):
    """(the candidate classifier, its folder) that `_predict` and `_evaluate` re-rank with, or
    (None, None).

    ``auto``: the run's ``fp/`` beside a single model when it holds a classifier (``mammoseg
    train`` saves it there), else none (fold models of an ensemble have none of their own);
    ``none``: none; otherwise that folder.

    Raises:
        FileNotFoundError: a folder named explicitly holds no classifier.
        ValueError: its settings file is unusable, or it serves another working size.
    """
    from mammoseg.recipes.fp_reduction import FP_MODEL_FILE, CandidateClassifier

    if choice == "none" or (choice == "auto" and len(models) > 1):
        return None, None
    folder = models[0].parent / "fp" if choice == "auto" else Path(choice)
    if choice == "auto" and not (folder / FP_MODEL_FILE).is_file():
        return None, None
    return CandidateClassifier.load(folder, working_size=working_size), folder


def _split_records(records, recorded: dict, split: str, data: str):
    """(the records of ``split``, how they were chosen) for `_evaluate`.

    ``all``: every record. Otherwise the image ids that ``mammoseg train`` recorded in
    recipe.json; a recipe without them (trained by ``experiments/``) is split again by patient
    with its recorded seed, as the experiments split by default (``--kinds all``).

    Raises:
        ValueError: recorded images absent from the data (named), an empty split.
    """
    if split == "all":
        return list(records), "every image"
    ids = (recorded.get("split") or {}).get(split)
    if ids is None:
        from mammoseg.data.split import split_by_patient

        seed = int(recorded.get("seed", 0))
        parts = dict(zip(SPLITS, split_by_patient(records, seed=seed, kinds=None)))
        chosen, how = parts[split], f"{split} split by patient again, seed {seed}"
    else:
        by_id = {r.image_id: r for r in records}
        absent = [i for i in ids if i not in by_id]
        if absent:
            raise ValueError(
                f"{len(absent)} image(s) of the recorded {split} split are not in --data "
                f"{data}: {', '.join(absent[:5])}{' ...' if len(absent) > 5 else ''}; pass "
                "--split all to score every image of that data"
            )
        chosen, how = [by_id[i] for i in ids], f"the recorded {split} split"
    if not chosen:
        raise ValueError(f"the {split} split of {data} is empty; pass --split all")
    return chosen, how


# === download and verify mini-MIAS ===


def _download(args: argparse.Namespace) -> int:
    from mammoseg.data import MammosegDataError, download_mias
    from mammoseg.data.verify import MIAS_ARCHIVE_URL

    try:
        report = download_mias(
            args.to,
            args.url or MIAS_ARCHIVE_URL,
            sums=args.sums,
            timeout=args.timeout,
            progress=not args.quiet,
        )
    except (ValueError, MammosegDataError) as err:  # MammosegDataError names the URL/file
        print(f"mammoseg download: {err}", file=sys.stderr)
        return 2
    print(report.summary())
    if not report.complete:
        print(
            f"mammoseg download: {args.to} is not the standard mini-MIAS (see above)",
            file=sys.stderr,
        )
        return 1
    return 0


def _verify(args: argparse.Namespace) -> int:
    from mammoseg.data import MammosegDataError, verify_mias

    try:
        report = verify_mias(args.folder, args.sums)
    except MammosegDataError as err:
        print(f"mammoseg verify: {err}", file=sys.stderr)
        return 2
    print(report.summary())
    return 0 if report.complete else 1


# === the command line ===


def _add_data_options(parser: argparse.ArgumentParser, *, required: bool) -> None:
    parser.add_argument(
        "--data",
        required=required,
        default=None,
        help=f"{DATA_FORMS} (the experiments' option)"
        + ("" if required else "; default: the data recorded in recipe.json"),
    )
    parser.add_argument(
        "--phantom-images",
        type=int,
        default=322,
        help="images of the built-in phantom data (--data phantom; default 322, as MIAS)",
    )
    parser.add_argument(
        "--phantom-size",
        type=int,
        default=1024,
        help="side of the phantom images in pixels (default 1024, as MIAS)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``mammoseg`` argument parser (see the module docstring for the commands).

    Example:
        >>> build_parser().parse_args(["verify", "mias", "data/mias"]).folder
        'data/mias'
    """
    parser = argparse.ArgumentParser(
        prog="mammoseg", description="Breast-mass segmentation on mammograms."
    )
    parser.add_argument("--version", action="version", version=f"mammoseg {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    quiet = argparse.ArgumentParser(add_help=False)
    quiet.add_argument(
        "--quiet", action="store_true", help="no progress bar and no per-image lines"
    )

    # --- predict
    predict = commands.add_parser(
        "predict",
        parents=[quiet],
        help="segment masses on images with a trained recipe model",
        description="Predict a mass mask and lesion candidates for each image (PGM, DICOM, "
        "PNG): masks, overlays, predictions.json and predictions.csv.",
    )
    predict.add_argument(
        "--model",
        required=True,
        action="append",
        help="model.keras of a recipe run (recipe.json beside it); give it several times "
        "(e.g. each fold_k/model.keras of a --folds run) to average their probability maps",
    )
    predict.add_argument(
        "images",
        nargs="+",
        help="image files (.pgm, .dcm, .png, ...), folders (their image files) or glob "
        "patterns (quoted: 'scans/**/*.dcm')",
    )
    predict.add_argument("--output-dir", required=True, help="where masks and overlays go")
    predict.add_argument(
        "--fp-classifier",
        default="auto",
        metavar="FOLDER",
        help="re-rank the candidates with the false-positive classifier saved there "
        "(fp_classifier.keras: a run's fp/ or fp_<k>/ folder); default auto: the run's fp/ "
        "beside a single --model when it holds one, as `mammoseg train` scored them; none: "
        "keep the segmentation scores. The masks are unchanged",
    )
    predict.add_argument(
        "--threshold", type=float, default=None, help="mask threshold (default: the recipe's)"
    )
    predict.add_argument(
        "--heatmap", action="store_true", help="draw the probability map on the overlays"
    )
    predict.add_argument(
        "--pixel-size",
        type=float,
        default=None,
        metavar="MM",
        help="pixel size in mm for every image, for area_mm2 (default: DICOM PixelSpacing, "
        "0.2 for mini-MIAS mdbNNN.pgm, else unknown)",
    )
    predict.add_argument(
        "--overwrite",
        action="store_true",
        help="replace masks, overlays and predictions.json/.csv already in --output-dir",
    )
    predict.set_defaults(func=_predict)

    # --- train
    train = commands.add_parser(
        "train",
        parents=[quiet],
        help="train the mass-finding recipe and score it (model, recipe.json, MODEL_CARD.md)",
        description="Train the recipe on a patient split, choose its threshold on validation "
        "and score the test split once, as experiments/beyond_mass_segmentation.py does.",
    )
    _add_data_options(train, required=True)
    train.add_argument("--output-dir", required=True, help="the run's folder (new or empty)")
    train.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a RecipeConfig field, e.g. --set working_size=256 --set epochs=10 (repeatable)",
    )
    train.add_argument("--seed", type=int, default=0, help="split, sampling and weights seed")
    train.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16"),
        default="auto",
        help="bf16 where the CPU/GPU runs it faster (auto), or forced",
    )
    train.add_argument(
        "--deterministic", action="store_true", help="bit-reproducible TensorFlow ops"
    )
    train.add_argument(
        "--pretrain",
        choices=("phantom", "none"),
        default="phantom",
        help="start from a model pre-trained on built-in phantom mammograms (default: "
        "--phantom-images of --phantom-size px, into OUTPUT_DIR/pretrain) or from scratch; "
        "--set init_weights=PATH starts from your own model instead",
    )
    train.add_argument(
        "--pretrain-minutes",
        type=positive_minutes,
        default=None,
        metavar="M",
        help="time budget of the pre-training (default 10)",
    )
    train.add_argument(
        "--fp-reduction",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="train the candidate classifier (OUTPUT_DIR/fp) and score the test split with "
        "its re-ranked candidates too (default: on)",
    )
    train.add_argument(
        "--overwrite", action="store_true", help="replace an earlier run in --output-dir"
    )
    train.set_defaults(func=_train)

    # --- evaluate
    evaluate = commands.add_parser(
        "evaluate",
        parents=[quiet],
        help="score a trained recipe model on whole images",
        description="Dice, empty-prediction rate, lesion sensitivity and FROC of a recipe "
        "model, in the original images' pixels, at its recorded threshold.",
    )
    evaluate.add_argument("--model", required=True, help="model.keras of a recipe run")
    _add_data_options(evaluate, required=False)
    evaluate.add_argument(
        "--split",
        choices=(*SPLITS, "all"),
        default="test",
        help="the recorded split to score (default test), or every image",
    )
    evaluate.add_argument(
        "--fp-classifier",
        default="auto",
        metavar="FOLDER",
        help="also score the candidates re-ranked by the false-positive classifier saved there "
        "(default auto: the run's fp/ beside --model when it holds one, as `mammoseg train` "
        "scored them; none: skip)",
    )
    evaluate.add_argument("--output", default=None, help="write the metrics to this JSON file")
    evaluate.add_argument("--overwrite", action="store_true", help="replace --output")
    evaluate.set_defaults(func=_evaluate)

    # --- download, verify
    download = commands.add_parser(
        "download",
        parents=[quiet],
        help="download mini-MIAS and verify it",
        description="Fetch a mini-MIAS archive (tar.gz or zip), extract it safely and check "
        "every file against the standard archive's SHA-256 sums.",
    )
    download.add_argument("dataset", choices=("mias",), help="the dataset: mias")
    download.add_argument("--to", required=True, help="an empty or new folder for the files")
    download.add_argument("--url", default=None, help="the archive's address (default: PEIPA)")
    download.add_argument("--timeout", type=float, default=60.0, help=argparse.SUPPRESS)
    download.add_argument("--sums", default=None, help=argparse.SUPPRESS)  # tests: fake sums
    download.set_defaults(func=_download)
    verify = commands.add_parser(
        "verify",
        help="check a mini-MIAS copy against the standard archive's SHA-256 sums",
        description="Say which files of a mini-MIAS copy are ok, missing or mismatched.",
    )
    verify.add_argument("dataset", choices=("mias",), help="the dataset: mias")
    verify.add_argument("folder", help="the folder holding Info.txt and mdbNNN.pgm")
    verify.add_argument("--sums", default=None, help=argparse.SUPPRESS)
    verify.set_defaults(func=_verify)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``mammoseg`` console script; returns the exit status.

    Example:
        >>> main(["verify", "mias", "data/mias"])  # doctest: +SKIP
        0
    """
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
