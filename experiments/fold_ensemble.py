"""Score the ensemble of a ``--folds`` run's models against each model alone, on held-out images.

The fold models of `beyond_mass_segmentation.py --folds K` have each seen every patient but
their own fold's, so the ensemble (`mammoseg.recipes.EnsemblePredictor`, what ``mammoseg
predict --model A --model B ...`` uses) cannot be scored on the run's own images: every image
trained K - 1 of its members. This script scores it on images no member saw: by default a fresh
built-in phantom set (a seed the run neither tested nor pre-trained on), or ``--data
mias:PATH`` / ``cbis-ddsm:PATH`` for real data outside the run.

Each member predicts with its own validation-chosen threshold and region limit; the ensemble
averages the members' probability maps and takes the mean threshold. The pooled figures carry
95 % bootstrap intervals over patients, and the ensemble minus each member is a paired
bootstrap on the same resamples (`beyond_folds.paired_difference`).

Usage:
    python experiments/fold_ensemble.py runs/folds_phantom --images 64 \\
        --output docs/results/fold_ensemble_phantom.md

Prints a Markdown report and writes it to ``--output`` when given (a new file; ``--overwrite``
to replace one), with the numbers beside it as JSON (same name, ``.json``).
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
from compare_fold_runs import ROWS  # noqa: E402

from mammoseg import data as mdata  # noqa: E402
from mammoseg.recipes import (  # noqa: E402
    EnsemblePredictor,
    Predictor,
    evaluate_records,
    image_scores,
)
from mammoseg.recipes.evaluate import ImageScores  # noqa: E402
from mammoseg.recipes.preprocess import WorkingImage  # noqa: E402
from mammoseg.training import save_json, write_text_atomic  # noqa: E402

DEFAULT_PHANTOM_SEED = 2  # the tested phantom is seed 0, the pre-training phantom seed 1
PAIRED_ROWS = tuple(row for row in ROWS if row[0] != "lesion_sensitivity_at_0.5fppi")


class _RememberingPredictor:
    """A member that keeps its working-resolution maps in the order it made them, so the
    ensemble, run over the same records in the same order, reuses them (`evaluate_records`
    prepares images without their ids, so the order is the key)."""

    def __init__(self, predictor: Predictor) -> None:
        self.predictor = predictor
        self.config = predictor.config
        self.maps: list[np.ndarray] = []

    def predict_working(self, work: WorkingImage) -> np.ndarray:
        probability = self.predictor.predict_working(work)
        self.maps.append(probability)
        return probability


class _MeanOfRemembered:
    """The ensemble's map of the i-th image it is asked for: the mean of the members' i-th
    remembered maps (`EnsemblePredictor.predict_working`'s mean, without predicting twice)."""

    def __init__(self, members: list[_RememberingPredictor], config) -> None:
        self.members = members
        self.config = config
        self.calls = 0

    def predict_working(self, work: WorkingImage) -> np.ndarray:
        maps = [member.maps[self.calls] for member in self.members]
        if any(m.shape != work.image.shape[:2] for m in maps):
            raise RuntimeError("the ensemble was asked for the images in another order")
        self.calls += 1
        return np.mean(maps, axis=0).astype(np.float32)


def fold_models(run_dir: str | Path) -> list[Path]:
    """The ``fold_<k>/model.keras`` files of a finished folds run, in fold order.

    Raises:
        FileNotFoundError: fewer than two fold models (naming the folder).
    """
    paths = [path for _, path in beyond_folds.numbered_files(run_dir, "fold", "model.keras")]
    if len(paths) < 2:
        raise FileNotFoundError(
            f"{Path(run_dir)}: {len(paths)} fold_<k>/model.keras file(s); an ensemble needs the "
            "models of a finished --folds run"
        )
    return paths


def run_image_ids(run_dir: Path) -> set[str]:
    """The ids of every image a folds run tested, i.e. every image it saw (each fold model
    trained on the others)."""
    ids = set()
    for _, path in beyond_folds.numbered_files(run_dir, "fold", "result.json"):
        ids |= {row["image_id"] for row in json.loads(path.read_text()).get("test_images", [])}
    return ids


def held_out_records(run_dir: Path, data: str, n_images: int, seed: int) -> list[mdata.Record]:
    """The images to score: ``n_images`` phantom mammograms of ``seed``, or the images of the
    dataset ``data`` names that the run never saw (the first ``n_images``; 0: all).

    Raises:
        ValueError: a phantom seed the run trained, tested or pre-trained on, or real data with
            no image outside the run (naming them and the run's metrics.json).
    """
    setup, runs = {}, {}
    metrics = run_dir / "metrics.json"
    if metrics.is_file():
        saved = json.loads(metrics.read_text())
        setup, runs = saved.get("setup", {}), saved.get("runs", {})
    if data == "phantom":
        if n_images < 1:
            raise ValueError(
                f"--images must be at least 1 with --data phantom, received {n_images}"
            )
        used = {0} if setup.get("data", "phantom") == "phantom" else set()
        pretrain = runs.get("pretrain", {})
        if pretrain.get("status") == "ok":
            used.add(pretrain["phantom_seed"])
        if seed in used:
            raise ValueError(
                f"--phantom-seed {seed}: {metrics} trained or pre-trained on the phantom of "
                f"seed(s) {sorted(used)}; pick another seed"
            )
        size = (setup.get("scale") or {}).get("phantom_size", 1024)
        return mdata.load_records("phantom", n_images=n_images, size=size, seed=seed)
    name, _, path = data.partition(":")
    if name not in ("mias", "cbis-ddsm") or not path:
        raise ValueError(f"--data must be phantom, mias:PATH or cbis-ddsm:PATH, received {data!r}")
    records = mdata.load_records(name, path)
    seen = run_image_ids(run_dir) if setup.get("data", "phantom") != "phantom" else set()
    unseen = [r for r in records if r.image_id not in seen]
    if not unseen:
        raise ValueError(
            f"--data {data}: all {len(records)} images were in the run {run_dir} (trained on or "
            "tested by its fold models); give other images"
        )
    if len(unseen) < len(records):
        print(f"  {len(records) - len(unseen)} image(s) of --data {data} were in the run: left out")
    return unseen[:n_images] if n_images else unseen


CHUNK = 32  # images whose member maps are held at once (memory: members x CHUNK maps)


def evaluate_ensemble(model_paths: list[Path], records, *, seed: int = 0) -> tuple[str, dict]:
    """Score each model alone and their ensemble on ``records``; the Markdown report and the
    numbers ({"models", "pooled", "ensemble_minus_model"})."""
    members = [_RememberingPredictor(Predictor.load(path)) for path in model_paths]
    ensemble_config = EnsemblePredictor([m.predictor for m in members]).config
    member_parts: list[list] = [[] for _ in members]
    ensemble_parts = []
    for start in range(0, len(records), CHUNK):
        chunk = records[start : start + CHUNK]
        print(f"  images {start + 1}-{start + len(chunk)} of {len(records)} ...", flush=True)
        patients = [r.patient_id for r in chunk]
        for member, parts in zip(members, member_parts):
            member.maps = []
            threshold = member.config.threshold
            evaluation = evaluate_records(member, chunk, [threshold])
            parts.append(image_scores(evaluation, threshold, patients))
        mean = _MeanOfRemembered(members, ensemble_config)
        evaluation = evaluate_records(mean, chunk, [ensemble_config.threshold])
        ensemble_parts.append(image_scores(evaluation, ensemble_config.threshold, patients))
    scores = [ImageScores.concatenate(parts) for parts in member_parts]
    ensemble = ImageScores.concatenate(ensemble_parts)
    names = [
        f"{path.parent.name} (threshold {m.config.threshold:g})"
        for path, m in zip(model_paths, members)
    ]
    names.append(f"ensemble of {len(members)} (threshold {ensemble_config.threshold:.3g})")
    pooled = [beyond_folds.pooled_metrics(s, seed=seed) for s in [*scores, ensemble]]
    paired = [beyond_folds.paired_difference(s, ensemble, seed=seed) for s in scores]
    return _report(names, pooled, paired, records), {
        "models": names,
        "pooled": pooled,
        "ensemble_minus_model": paired,
    }


def _report(names, pooled, paired, records) -> str:
    n_patients = len({r.patient_id for r in records})
    lines = [
        "| model | " + " | ".join(label for _, label, _ in ROWS) + " |",
        "|---" * (len(ROWS) + 1) + "|",
    ]
    for name, figures in zip(names, pooled):
        cells = [beyond_folds.interval_text(figures[key], digits) for key, _, digits in ROWS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Ensemble minus each model alone (paired, 95 % interval; verdict only where it "
        "excludes 0):",
        "",
        "| model | " + " | ".join(label for _, label, _ in PAIRED_ROWS) + " |",
        "|---" * (len(PAIRED_ROWS) + 1) + "|",
    ]
    for name, diff in zip(names, paired):
        cells = [
            f"{beyond_folds.interval_text(diff[key], digits)} "
            f"({difference_verdict(diff[key], key, 'ensemble')})"
            for key, _, digits in PAIRED_ROWS
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    n = pooled[0]
    lines += [
        "",
        f"{n['n_images']} held-out images of {n_patients} patients, {n['n_lesions']} masses; "
        f"intervals: percentile bootstrap over patients, {beyond_folds.N_RESAMPLES} resamples, "
        "the same resamples for every model.",
    ]
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", help="a finished --folds run's folder")
    parser.add_argument(
        "--data", default="phantom", help="phantom (default) | mias:PATH | cbis-ddsm:PATH"
    )
    parser.add_argument(
        "--images", type=int, default=64, help="how many images (real data: 0 for all)"
    )
    parser.add_argument("--phantom-seed", type=int, default=DEFAULT_PHANTOM_SEED)
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    parser.add_argument("--output", default=None, help="also write the report to this new file")
    parser.add_argument("--overwrite", action="store_true", help="replace --output")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    output = Path(args.output) if args.output else None
    if output is not None and not args.overwrite:
        taken = [p for p in (output, output.with_suffix(".json")) if p.exists()]
        if taken:
            print(f"fold_ensemble: {taken[0]} exists; pass --overwrite", file=sys.stderr)
            return 2
    if args.images < 0:
        print(f"fold_ensemble: --images must be >= 0, received {args.images}", file=sys.stderr)
        return 2
    try:
        paths = fold_models(args.run_dir)
        records = held_out_records(Path(args.run_dir), args.data, args.images, args.phantom_seed)
        report, numbers = evaluate_ensemble(paths, records, seed=args.seed)
    except (FileNotFoundError, ValueError) as err:
        print(f"fold_ensemble: {err}", file=sys.stderr)
        return 2
    header = (
        f"Fold models of `{args.run_dir}` alone and as an ensemble, on {len(records)} held-out "
        f"images (--data {args.data}"
        + (f", phantom seed {args.phantom_seed}" if args.data == "phantom" else "")
        + ").\n\n"
    )
    print(header + report)
    if output is not None:
        save_json(output.with_suffix(".json"), {"run_dir": str(args.run_dir), **numbers})
        write_text_atomic(output, header + report)
    return 0


if __name__ == "__main__":
    np.seterr(invalid="ignore")
    sys.exit(main())
