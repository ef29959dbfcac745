"""Compare two finished ``--folds`` runs of `beyond_mass_segmentation.py` image by image.

Two recipes measured in the same folds (same data, ``--folds``, ``--seed``) scored the same test
images; their difference is only meaningful against its own spread. This script pools each run's
fold results (``fold_<k>/result.json``; ``fp_<k>`` for the candidates re-scored by
``--fp-reduction``) and resamples the patients once for both runs (a paired bootstrap), so the
images' shared difficulty cancels out.

Usage:
    python experiments/compare_fold_runs.py runs/folds runs/folds_pretrained \\
        --name "phantom pre-training" --output docs/results/pretraining.md

Prints a Markdown table (both runs' pooled figures and the difference with its 95 % interval) and
writes it to ``--output`` when given (a new file; ``--overwrite`` to replace one).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import beyond_folds  # noqa: E402

from mammoseg.recipes.evaluate import ImageScores  # noqa: E402
from mammoseg.training import write_text_atomic  # noqa: E402

STAGES = {"plain": "fold", "fp": "fp"}

ROWS = (
    ("dice_per_image_mean", "Dice per mass image", 3),
    ("empty_prediction_rate", "empty-prediction rate (mass images)", 2),
    ("lesion_sensitivity_at_0.5fppi", "sensitivity at 0.5 FP/image", 2),
    ("lesion_sensitivity_at_1fppi", "sensitivity at 1 FP/image", 2),
    ("lesion_sensitivity_at_2fppi", "sensitivity at 2 FP/image", 2),
    ("froc_mean", "FROC mean", 3),
)


def load_run_scores(run_dir: str | Path, stage: str = "plain") -> ImageScores:
    """Every fold's test images of a finished folds run, pooled in fold order.

    Args:
        run_dir: the run's folder (holding ``fold_1``, ``fold_2``, ...).
        stage: ``"plain"`` (the recipe's candidates) or ``"fp"`` (re-scored by
            ``--fp-reduction``).

    Raises:
        ValueError: an unknown stage.
        FileNotFoundError: no fold results in ``run_dir`` (naming the folder and the pattern).
        RuntimeError: an unfinished run (no ``metrics.json``), a fold that did not finish, or
            fewer or more folds than the run's ``metrics.json`` lists (naming them).

    Example:
        >>> scores = load_run_scores("runs/folds_miasdev")  # doctest: +SKIP
        >>> scores.metrics()["froc"][1.0]  # doctest: +SKIP
        0.55
    """
    if stage not in STAGES:
        raise ValueError(f"`stage` must be one of {sorted(STAGES)}, received {stage!r}")
    run_dir = Path(run_dir)
    prefix = STAGES[stage]
    files = [path for _, path in beyond_folds.numbered_files(run_dir, prefix, "result.json")]
    if not files:
        raise FileNotFoundError(f"{run_dir}: no {prefix}_<k>/result.json (not a folds run?)")
    metrics = run_dir / "metrics.json"
    if not metrics.is_file():
        raise RuntimeError(f"{run_dir}: no metrics.json: the run has not finished")
    n_folds = len(json.loads(metrics.read_text()).get("folds", []))
    if len(files) != n_folds:
        raise RuntimeError(
            f"{run_dir}: {len(files)} {prefix}_<k>/result.json for the {n_folds} folds of its "
            "metrics.json"
        )
    parts = []
    for expected, path in enumerate(files, 1):
        if path.parent.name != f"{prefix}_{expected}":
            raise RuntimeError(f"{run_dir}: {prefix}_{expected}/result.json is missing")
        result = json.loads(path.read_text())
        if result.get("status") != "ok" or "test_images" not in result:
            raise RuntimeError(f"{path}: the fold did not finish (status {result.get('status')})")
        parts.append(ImageScores.from_rows(result["test_images"]))
    return ImageScores.concatenate(parts)


def comparison_table(
    base: ImageScores, other: ImageScores, *, names: tuple[str, str], seed: int = 0
) -> tuple[str, dict]:
    """Markdown table of both runs' pooled figures and ``other`` minus ``base``, and the numbers.

    Raises:
        ValueError: the runs did not score the same images in the same order.
    """
    if base.image_ids != other.image_ids:
        only = sorted(set(base.image_ids) ^ set(other.image_ids))
        detail = f"images in one run only: {only[:5]}" if only else "same images, other folds"
        raise ValueError(
            f"the two runs did not score the same test images in the same folds ({detail}); "
            "compare runs made with the same --data, --folds and --seed"
        )
    pooled = [beyond_folds.pooled_metrics(s, seed=seed) for s in (base, other)]
    paired = beyond_folds.paired_difference(base, other, seed=seed)
    lines = [
        f"| metric | {names[0]} | {names[1]} | difference (paired, 95 % interval) | verdict |",
        "|---|---|---|---|---|",
    ]
    for key, label, digits in ROWS:
        diff = paired[key]
        lines.append(
            f"| {label} | {beyond_folds.interval_text(pooled[0][key], digits)} | "
            f"{beyond_folds.interval_text(pooled[1][key], digits)} | "
            f"{beyond_folds.interval_text(diff, digits)} | "
            f"{beyond_folds.difference_verdict(diff, key)} |"
        )
    n = pooled[0]
    lines.append("")
    lines.append(
        f"{n['n_images']} test images of {len(set(base.patient_ids))} patients, "
        f"{n['n_lesions']} masses; intervals: percentile bootstrap over patients, "
        f"{beyond_folds.N_RESAMPLES} resamples, the same resamples for both runs."
    )
    return "\n".join(lines) + "\n", {"base": pooled[0], "other": pooled[1], "difference": paired}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("base", help="the first folds run's folder (the reference)")
    parser.add_argument("other", help="the second folds run's folder")
    parser.add_argument("--base-stage", choices=sorted(STAGES), default="plain")
    parser.add_argument("--other-stage", choices=sorted(STAGES), default="plain")
    parser.add_argument("--name", default=None, help="the second run's name in the table")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    parser.add_argument("--output", default=None, help="also write the table to this new file")
    parser.add_argument("--overwrite", action="store_true", help="replace --output")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    output = Path(args.output) if args.output else None
    if output is not None and output.exists() and not args.overwrite:
        print(f"compare_fold_runs: {output} exists; pass --overwrite", file=sys.stderr)
        return 2
    try:
        base = load_run_scores(args.base, args.base_stage)
        other = load_run_scores(args.other, args.other_stage)
        names = (
            f"{Path(args.base).name} ({args.base_stage})",
            args.name or f"{Path(args.other).name} ({args.other_stage})",
        )
        table, _ = comparison_table(base, other, names=names, seed=args.seed)
    except (FileNotFoundError, RuntimeError, ValueError) as err:
        print(f"compare_fold_runs: {err}", file=sys.stderr)
        return 2
    print(table)
    if output is not None:
        write_text_atomic(output, table)
    return 0


if __name__ == "__main__":
    np.seterr(invalid="ignore")
    sys.exit(main())
