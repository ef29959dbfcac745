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
import sys
from pathlib import Path


def _limit_text(mask_regions: int | None) -> str:
    if mask_regions is None:
        return ""
    return f", best {mask_regions} region" + ("s" if mask_regions > 1 else "")


def _predict(args: argparse.Namespace) -> int:
    import numpy as np

    from mammoseg.data.errors import MammosegDataError
    from mammoseg.data.records import read_pixels
    from mammoseg.recipes.candidates import extract_candidates
    from mammoseg.recipes.inference import Predictor
    from mammoseg.recipes.overlay import save_mask_png, save_overlay_png
    from mammoseg.training import save_json

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
    out_dir = Path(args.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = {
        "model": str(args.model),
        "threshold": threshold,
        "mask_regions": config.mask_regions,
        "images": {},
    }
    failures = 0
    for name in args.images:
        path = Path(name)
        try:
            image = read_pixels(path)
        except (MammosegDataError, OSError, ValueError) as err:
            print(f"mammoseg predict: skipping {path}: {err}", file=sys.stderr)
            failures += 1
            continue
        if image.ndim == 3:  # a colour PNG: average the channels
            image = image.mean(axis=-1)
        prob, work = predictor.predict(image)
        mask = predictor.mask(prob, threshold)
        min_area = config.min_candidate_area / config.scale_for(image.shape) ** 2
        candidates = extract_candidates(prob, config.candidate_threshold, int(np.ceil(min_area)))
        stem = path.stem
        save_mask_png(mask, out_dir / f"{stem}_mask.png")
        save_overlay_png(
            image,
            mask,
            candidates,
            out_dir / f"{stem}_overlay.png",
            title=f"{path.name}: mask at {threshold:g}{_limit_text(config.mask_regions)} (red), "
            "candidates (yellow, score)",
        )
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
    predict.set_defaults(func=_predict)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``mammoseg`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
