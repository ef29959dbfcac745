"""Re-score a finished ``--folds`` run at fixed mask thresholds instead of validation-chosen ones.

Each fold of `beyond_mass_segmentation.py --folds K` chooses its mask threshold on the few masses
of its validation patients (mias-dev: about 4), and the choice swings from 0.05 to 0.9 from fold
to fold. This script predicts each fold's test images again with the fold's own model and counts
its masks at fixed thresholds too (region limit as the fold chose it), so the rule "one fixed
threshold" can be compared with "chosen on validation" on the same images and models: Dice per
mass image and the empty-prediction rate, pooled over the folds with 95 % bootstrap intervals
over patients, and the paired difference to the chosen thresholds. Candidates, and so the FROC,
do not depend on the mask threshold.

Usage:
    python experiments/fixed_thresholds.py runs/folds_miasdev --thresholds 0.3 0.5 \\
        --output docs/results/fixed_thresholds.md

The run's data (``--data`` of the run, from its ``metrics.json``) must still be where it was;
``--data`` names it otherwise. Prints a Markdown table, and writes it to ``--output`` when given
(a new file; ``--overwrite`` to replace one).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import beyond_folds  # noqa: E402
from beyond_folds import difference_verdict  # noqa: E402

from mammoseg import data as mdata  # noqa: E402
from mammoseg.recipes import Predictor, evaluate_records, image_scores  # noqa: E402
from mammoseg.recipes.evaluate import ImageScores  # noqa: E402
from mammoseg.training import write_text_atomic  # noqa: E402

ROWS = (
    ("dice_per_image_mean", "Dice per mass image", 3),
    ("empty_prediction_rate", "empty rate", 2),
)


def run_records(run_dir: Path, data: str | None) -> dict[str, mdata.Record]:
    """The run's images by id: ``data`` (phantom | mias:PATH | cbis-ddsm:PATH) or the run's own
    ``--data`` from its metrics.json.

    Raises:
        FileNotFoundError: no metrics.json (an unfinished run) when ``data`` is not given.
    """
    metrics = run_dir / "metrics.json"
    if not metrics.is_file():
        raise FileNotFoundError(f"{run_dir}: no metrics.json: the run has not finished")
    setup = json.loads(metrics.read_text())["setup"]
    data = data or setup["data"]
    if data == "phantom":
        scale = setup["scale"]
        records = mdata.load_records(
            "phantom", n_images=scale["phantom_images"], size=scale["phantom_size"]
        )
    else:
        name, _, path = data.partition(":")
        records = mdata.load_records(name, path)
    return {r.image_id: r for r in records}


def rescore(run_dir: Path, records: dict, thresholds: list[float]) -> dict[str, ImageScores]:
    """Every fold's test images at its chosen threshold ("chosen") and at each fixed one, pooled
    in fold order.

    Raises:
        FileNotFoundError: a fold without its result or model (naming it).
        KeyError: a test image missing from ``records`` (naming it).
    """
    folds = [
        (k, path.parent) for k, path in beyond_folds.numbered_files(run_dir, "fold", "result.json")
    ]
    if not folds:
        raise FileNotFoundError(f"{run_dir}: no fold_<k>/result.json (not a --folds run?)")
    parts: dict[str, list[ImageScores]] = {"chosen": [], **{f"{t:g}": [] for t in thresholds}}
    for k, folder in folds:
        result = json.loads((folder / "result.json").read_text())
        rows = result["test_images"]
        missing = [row["image_id"] for row in rows if row["image_id"] not in records]
        if missing:
            raise KeyError(f"fold {k}: test images {missing[:5]} are not in the data given")
        predictor = Predictor.load(folder / "model.keras")
        chosen = predictor.config.threshold
        print(f"  fold {k}: chosen threshold {chosen:g}, predicting {len(rows)} images", flush=True)
        levels = sorted({chosen, *thresholds})
        evaluation = evaluate_records(predictor, [records[row["image_id"]] for row in rows], levels)
        patients = [row["patient_id"] for row in rows]
        parts["chosen"].append(image_scores(evaluation, chosen, patients))
        for t in thresholds:
            parts[f"{t:g}"].append(image_scores(evaluation, t, patients))
    return {name: ImageScores.concatenate(scores) for name, scores in parts.items()}


def table(scores: dict[str, ImageScores], *, seed: int = 0) -> tuple[str, dict]:
    """Markdown rows: each rule's pooled Dice per mass image and empty rate, and its paired
    difference to the chosen thresholds; and the numbers."""
    base = scores["chosen"]
    pooled = {name: beyond_folds.pooled_metrics(s, seed=seed) for name, s in scores.items()}
    lines = [
        "| mask threshold | Dice per mass image | empty rate | minus chosen (paired): Dice | "
        "minus chosen (paired): empty rate |",
        "|---|---|---|---|---|",
    ]
    numbers = {"pooled": pooled, "minus_chosen": {}}
    for name, s in scores.items():
        cells = [beyond_folds.interval_text(pooled[name][key], d) for key, _, d in ROWS]
        if name == "chosen":
            lines.append(f"| chosen on validation | {cells[0]} | {cells[1]} | — | — |")
            continue
        diff = beyond_folds.paired_difference(base, s, seed=seed)
        numbers["minus_chosen"][name] = {key: diff[key] for key, _, _ in ROWS}
        paired = [
            f"{beyond_folds.interval_text(diff[key], d)} ({difference_verdict(diff[key], key)})"
            for key, _, d in ROWS
        ]
        lines.append(f"| {name} fixed | {cells[0]} | {cells[1]} | {paired[0]} | {paired[1]} |")
    n = pooled["chosen"]
    lines += [
        "",
        f"{n['n_images']} test images of {len(set(base.patient_ids))} patients, "
        f'{n["n_lesions"]} masses; "second" is the fixed threshold; percentile bootstrap over '
        f"patients, {beyond_folds.N_RESAMPLES} resamples, the same for every row.",
    ]
    return "\n".join(lines) + "\n", numbers


def _threshold(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number in (0, 1), received {text!r}") from None
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in (0, 1), received {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", help="a finished --folds run's folder")
    parser.add_argument("--thresholds", type=_threshold, nargs="+", default=[0.3, 0.5])
    parser.add_argument("--data", default=None, help="the run's data, if it moved")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    parser.add_argument("--output", default=None, help="also write the table to this new file")
    parser.add_argument("--overwrite", action="store_true", help="replace --output")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    output = Path(args.output) if args.output else None
    if output is not None and output.exists() and not args.overwrite:
        print(f"fixed_thresholds: {output} exists; pass --overwrite", file=sys.stderr)
        return 2
    run_dir = Path(args.run_dir)
    try:
        records = run_records(run_dir, args.data)
        text, _ = table(rescore(run_dir, records, args.thresholds), seed=args.seed)
    except (FileNotFoundError, KeyError, ValueError) as err:
        print(f"fixed_thresholds: {err}", file=sys.stderr)
        return 2
    print(text)
    if output is not None:
        write_text_atomic(output, text)
    return 0


if __name__ == "__main__":
    np.seterr(invalid="ignore")
    sys.exit(main())
