"""The ``mammoseg`` command.

    mammoseg predict --model runs/beyond_mass_segmentation/recipe/model.keras \\
        mdb001.pgm scan.dcm photo.png --output-dir predictions/

For each image: ``<name>_mask.png`` (the mask at the recipe's threshold, limited to its best
regions when the recipe chose so on validation; the image's own size),
``<name>_overlay.png`` (mask outline, lesion candidates and their scores) and one
``predictions.json`` with the crop box and the candidates of every image.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


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


def _predict(args: argparse.Namespace) -> int:
    import numpy as np

    from mammoseg.recipes.candidates import extract_candidates
    from mammoseg.recipes.inference import Predictor
    from mammoseg.recipes.overlay import save_mask_png, save_overlay_png
    from mammoseg.training import save_json

    # === check everything before touching the disk ===
    paths = [Path(name) for name in args.images]
    stems = _output_stems(paths)
    clashes = {s: [str(p) for p, t in zip(paths, stems) if t == s] for s in stems}
    clashes = {s: names for s, names in clashes.items() if len(names) > 1}
    if clashes:
        listed = "; ".join(f"{s}: {', '.join(names)}" for s, names in clashes.items())
        print(f"mammoseg predict: inputs would share an output name ({listed})", file=sys.stderr)
        return 2
    out_dir = Path(args.output_dir)
    targets = [out_dir / "predictions.json"]
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
        predictor = Predictor.load(args.model)
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
    report = {
        "model": str(args.model),
        "threshold": threshold,
        "mask_regions": config.mask_regions,
        "images": {},
    }

    limit_text = _limit_text(config.mask_regions)

    # === each image on its own: a failure is reported and the next one goes on ===
    failures = 0
    for path, stem in zip(paths, stems):
        try:
            image = _read_image(path)
            if image.ndim == 3:  # a colour PNG: average the channels
                image = image.mean(axis=-1)
            problem = _check_image(image) or _check_breast(image)
            if problem is not None:
                raise ValueError(problem)
            prob, work = predictor.predict(image)
        except Exception as err:  # noqa: BLE001 - any failure of one image is its own
            print(f"mammoseg predict: skipping {path}: {err}", file=sys.stderr)
            report["images"][str(path)] = {"error": str(err)}
            failures += 1
            continue
        try:  # a full disk or a bad path fails this image, not the run
            mask = predictor.mask(prob, threshold)
            min_area = config.min_candidate_area / config.scale_for(image.shape) ** 2
            candidates = extract_candidates(
                prob, config.candidate_threshold, int(np.ceil(min_area))
            )
            save_mask_png(mask, out_dir / f"{stem}_mask.png")
            save_overlay_png(
                image,
                mask,
                candidates,
                out_dir / f"{stem}_overlay.png",
                title=f"{path.name}: mask at {threshold:g}{limit_text} (red), "
                "candidates (yellow, score)",
            )
        except OSError as err:
            print(f"mammoseg predict: cannot write the outputs of {path}: {err}", file=sys.stderr)
            report["images"][str(path)] = {"error": f"cannot write outputs: {err}"}
            failures += 1
            continue
        report["images"][str(path)] = {
            "mask": f"{stem}_mask.png",
            "overlay": f"{stem}_overlay.png",
            "crop": work.crop.to_dict(),
            "mask_pixels": int(mask.sum()),
            "candidates": [
                {
                    "score": round(c.score, 4),
                    "centroid": [round(v, 1) for v in c.centroid],
                    "area": c.area,
                }
                for c in candidates
            ],
        }
        best = f"{candidates[0].score:.2f}" if candidates else "none"
        print(f"{path}: {len(candidates)} candidate(s), best score {best}, mask {mask.sum()} px")
    report["failed"] = failures
    save_json(out_dir / "predictions.json", report)
    return 1 if failures else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mammoseg", description="Breast-mass segmentation on mammograms."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    predict = commands.add_parser(
        "predict",
        help="segment masses on images with a trained recipe model",
        description="Predict a mass mask and lesion candidates for each image (PGM, DICOM, PNG).",
    )
    predict.add_argument(
        "--model", required=True, help="model.keras of a recipe run (recipe.json beside it)"
    )
    predict.add_argument("images", nargs="+", help="image files: .pgm, .dcm, .png, ...")
    predict.add_argument("--output-dir", required=True, help="where masks and overlays go")
    predict.add_argument(
        "--threshold", type=float, default=None, help="mask threshold (default: the recipe's)"
    )
    predict.add_argument(
        "--overwrite",
        action="store_true",
        help="replace masks, overlays and predictions.json already in --output-dir",
    )
    predict.set_defaults(func=_predict)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``mammoseg`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
