"""`beyond_mass_segmentation.py --folds K`: the recipe measured by patient-level cross-validation.

One split of mini-MIAS tests 10 masses (mias-dev: 4), so a sensitivity moves by ± 0.16 from one
lucky split to the next and two recipes cannot be told apart. With K folds every image is tested
once, by the fold model that never saw its patient:

  * `mammoseg.data.split.kfold_by_patient` deals the patients to K folds, stratified on
    patients with a mass and balanced in mass images; inside each fold the other folds'
    patients are split again by patient into train and validation (3:1), and validation alone
    chooses the epoch, the mask threshold and the region limit;
  * each fold trains and scores its own model in ``fold_<k>/`` (a finished fold is reused by
    ``--resume``);
  * the test images of all folds are pooled (every mass scored exactly once) and the pooled
    FROC, sensitivity at 0.5, 1 and 2 false positives per image, Dice per mass image and the
    empty-prediction rate get a 95 % bootstrap interval over patients
    (`mammoseg.metrics.bootstrap_interval`, 2000 resamples).

The fold models' scores are pooled as they are: candidates of different models share one FROC
threshold sweep, as in the usual pooled cross-validated FROC.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import common
import numpy as np

from mammoseg.data.split import Fold, kfold_by_patient
from mammoseg.metrics import FROC_FP_RATES, bootstrap_interval
from mammoseg.recipes import ImageScores, RecipeConfig

# Per fold, in place of the single split's 30 epochs / 24 minutes, so that 5 folds of
# MIAS-sized data (322 images) fit about 75 minutes on two cores. Measured on one mias-dev fold
# (66 / 22 / 22 images) on two cores shared with other runs (load 5): 62-84 s an epoch (80
# steps and the whole-image validation), then 2.8 min to save the model, choose the threshold
# on validation (3.5 s an image: flips, 19 thresholds, region limits) and score the test part
# (1.1 s an image). A fold of 322 images has three times the validation and test images: about
# 6.5 min after training, so 8 min of training (the budget ends the epoch that crosses it) makes
# about 15 min a fold. On a quiet machine (42 s an epoch) the 12 epochs fit in the 8 minutes.
FOLD_SETTINGS = {"default": {"epochs": 12, "patience": 5, "time_budget_minutes": 8.0}}
N_RESAMPLES = 2000
CONFIDENCE = 0.95
HEADLINE_RATES = (0.5, 1.0, 2.0)  # false positives per image (issue #17)
# The FROC figure's x axis: false positives per image, log-spaced, plus the reported rates.
BAND_RATES = tuple(sorted(set(np.round(np.geomspace(1 / 16, 8, 29), 4)) | set(FROC_FP_RATES)))
POOLED_TABLE = "test_images.csv"
FROC_FIGURE = "froc_folds.png"


def fold_config(config: RecipeConfig, mode: str, overridden: set[str]) -> RecipeConfig:
    """The mode's config with the per-fold budget (`FOLD_SETTINGS`), except the fields the
    command line set itself (``--set time_budget_minutes=T`` is then T per fold).

    Example:
        >>> fold_config(RecipeConfig(), "default", set()).time_budget_minutes
        8.0
    """
    settings = {k: v for k, v in FOLD_SETTINGS.get(mode, {}).items() if k not in overridden}
    return replace(config, **settings)


def numbered_files(run_dir: str | Path, prefix: str, name: str) -> list[tuple[int, Path]]:
    """The ``<prefix>_<k>/<name>`` files of a folds run's folder as (k, path), by k (folders
    whose suffix is not a number are not sub-runs of the folds).

    Example:
        >>> numbered_files("runs/folds", "fold", "model.keras")  # doctest: +SKIP
        [(1, PosixPath('runs/folds/fold_1/model.keras')), ...]
    """
    found = []
    for path in Path(run_dir).glob(f"{prefix}_*/{name}"):
        number = path.parent.name[len(prefix) + 1 :]
        if number.isdigit():
            found.append((int(number), path))
    return sorted(found)


def set_keys(items: list[str]) -> set[str]:
    """The keys of ``--set KEY=VALUE`` items."""
    return {item.split("=", 1)[0].strip() for item in items}


def make_folds(run: common.Run, n_folds: int, kinds) -> list[Fold]:
    """The run's K folds (split seed, the recipe's kinds); a bad K ends the run with the reason.

    Raises:
        SystemExit: ``--folds`` larger than the patients (or the patients with a mass).
    """
    records = run.load_records()
    try:
        return kfold_by_patient(records, n_folds, seed=run.split_seed, kinds=kinds)
    except ValueError as err:
        patients = {r.patient_id for r in records}
        with_mass = {r.patient_id for r in records if r.has_lesion(kinds)}
        raise SystemExit(
            f"--folds {n_folds}: {err}; --data {run.args.data} has {len(records)} images of "
            f"{len(patients)} patients, {len(with_mass)} of them with a mass"
        ) from None


def run_folds(
    run: common.Run, folds: list[Fold], run_fold: Callable[[Path, Fold, int], dict]
) -> list[dict]:
    """Train and score every fold in its own sub-run ``fold_<k>`` (resumable); their results."""
    results = []
    for k, fold in enumerate(folds, 1):
        print(
            f"== fold {k} of {len(folds)}: train {len(fold.train)}, val {len(fold.val)}, "
            f"test {len(fold.test)} images",
            flush=True,
        )
        results.append(run.sub_run(f"fold_{k}", lambda folder, f=fold, k=k: run_fold(folder, f, k)))
    return results


# ---------------------------------------------------------------- pooling and intervals


def pooled_scores(folds: list[Fold], results: list[dict]) -> tuple[ImageScores, list[int]]:
    """Every fold's test images as one `ImageScores`, and each image's fold (1-based).

    Raises:
        RuntimeError: an image tested twice or never (the folds would not be a partition).
    """
    parts = [ImageScores.from_rows(result["test_images"]) for result in results]
    scores = ImageScores.concatenate(parts)
    expected = sorted(r.image_id for fold in folds for r in fold.test)
    if sorted(scores.image_ids) != expected:
        missing = sorted(set(expected) - set(scores.image_ids))
        raise RuntimeError(f"the pooled test images are not the folds' test images: {missing}")
    fold_of = [k for k, part in enumerate(parts, 1) for _ in range(len(part))]
    return scores, fold_of


def _statistic_vector(metrics: dict) -> np.ndarray:
    headline = [
        metrics["dice_per_image_mean"],
        metrics["empty_prediction_rate"],
        metrics["dice_pooled"],
        float(np.mean([metrics["froc"][float(r)] for r in FROC_FP_RATES])),
    ]
    return np.array(headline + [metrics["froc"][float(r)] for r in BAND_RATES], dtype=np.float64)


HEADLINE = ("dice_per_image_mean", "empty_prediction_rate", "dice_pooled", "froc_mean")


def pooled_metrics(scores: ImageScores, *, seed: int, n_resamples: int = N_RESAMPLES) -> dict:
    """The pooled figures, each ``{"value", "low", "high"}`` (95 % bootstrap over patients).

    Returns:
        dict with the `HEADLINE` metrics, ``froc`` ({rate: interval} at the standard rates),
        ``lesion_sensitivity_at_<r>fppi`` for r in `HEADLINE_RATES`, ``froc_band`` (the
        curve and its band on `BAND_RATES`), counts and the bootstrap's settings.

    Example:
        >>> pooled_metrics(scores, seed=0)["lesion_sensitivity_at_1fppi"]  # doctest: +SKIP
        {'value': 0.55, 'low': 0.35, 'high': 0.75}
    """
    interval = bootstrap_interval(
        lambda indices: _statistic_vector(scores.metrics(indices, fp_rates=BAND_RATES)),
        scores.patient_ids,
        n_resamples=n_resamples,
        confidence=CONFIDENCE,
        seed=seed,
    )

    def entry(k: int) -> dict:
        return {
            "value": _number(interval.estimate[k]),
            "low": _number(interval.low[k]),
            "high": _number(interval.high[k]),
        }

    first = len(HEADLINE)
    band = {rate: first + j for j, rate in enumerate(BAND_RATES)}
    all_images = scores.metrics()
    out = {name: entry(k) for k, name in enumerate(HEADLINE)}
    out["froc"] = {str(float(rate)): entry(band[rate]) for rate in FROC_FP_RATES}
    for rate in HEADLINE_RATES:
        out[f"lesion_sensitivity_at_{rate:g}fppi"] = entry(band[rate])
    out["froc_band"] = {
        "fppi": list(BAND_RATES),
        "sensitivity": [_number(interval.estimate[band[r]]) for r in BAND_RATES],
        "low": [_number(interval.low[band[r]]) for r in BAND_RATES],
        "high": [_number(interval.high[band[r]]) for r in BAND_RATES],
    }
    out.update(
        n_images=all_images["n_images"],
        n_images_with_lesion=all_images["n_images_with_lesion"],
        n_lesions=all_images["n_lesions"],
        n_patients=len(set(scores.patient_ids)),
        bootstrap={
            "unit": "patient",
            "resamples": n_resamples,
            "confidence": CONFIDENCE,
            "seed": seed,
            "undefined_resamples": dict(
                zip(HEADLINE, np.atleast_1d(interval.n_undefined)[: len(HEADLINE)].tolist())
            ),
        },
    )
    return out


def _number(value) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None


def fold_rows(folds: list[Fold], results: list[dict], kinds) -> list[dict]:
    """One row per fold: its sizes, choices, training and test figures (no interval)."""
    rows = []
    for k, (fold, result) in enumerate(zip(folds, results), 1):
        row = {
            "fold": k,
            "status": result.get("status"),
            "patients": [len({r.patient_id for r in part}) for part in fold],
            "images": [len(part) for part in fold],
            "mass_images": [sum(r.has_lesion(kinds) for r in part) for part in fold],
        }
        if result.get("status") == "ok":
            test = ImageScores.from_rows(result["test_images"]).metrics(fp_rates=FROC_FP_RATES)
            row.update(
                threshold=result["threshold"],
                mask_regions=result.get("mask_regions"),
                epochs_run=result["training"]["epochs_run"],
                best_epoch=result["training"]["best_epoch"],
                train_minutes=round(result["training"]["train_seconds"] / 60, 1),
                minutes=round(result.get("seconds", 0.0) / 60, 1),
                n_lesions=test["n_lesions"],
                dice_per_image_mean=_number(test["dice_per_image_mean"]),
                empty_prediction_rate=_number(test["empty_prediction_rate"]),
                froc_mean=_number(test["froc_mean"]),
                **{
                    f"lesion_sensitivity_at_{r:g}fppi": _number(test["froc"][float(r)])
                    for r in HEADLINE_RATES
                },
            )
        rows.append(row)
    return rows


def write_pooled_table(path: Path, scores: ImageScores, fold_of: list[int]) -> None:
    """The pooled per-image table: one row per test image (each image once), with its fold."""
    rows = scores.to_rows()
    columns = ["fold", *[k for k in rows[0] if k not in ("lesion_scores", "false_positive_scores")]]
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[*columns, "lesion_scores", "fp_scores"])
        writer.writeheader()
        for fold, row in zip(fold_of, rows):
            writer.writerow(
                {
                    "fold": fold,
                    **{k: row[k] for k in columns[1:]},
                    "lesion_scores": " ".join(_score_text(v) for v in row["lesion_scores"]),
                    "fp_scores": " ".join(_score_text(v) for v in row["false_positive_scores"]),
                }
            )


def _score_text(value) -> str:
    return "missed" if value is None else f"{value:.4f}"


# ---------------------------------------------------------------- report


def interval_text(entry: dict, digits: int = 2) -> str:
    """``"0.55 [0.35, 0.75]"``; ``"n/a"`` for an undefined value.

    Example:
        >>> interval_text({"value": 0.55, "low": 0.35, "high": 0.75})
        '0.55 [0.35, 0.75]'
    """
    if entry["value"] is None:
        return "n/a"
    low, high = (common.fmt(entry[k], digits) for k in ("low", "high"))
    return f"{common.fmt(entry['value'], digits)} [{low}, {high}]"


def interval_verdict(entry: dict, target: float | None, *, higher: bool = True) -> str:
    """The target met or not by the pooled value, and where the interval lies.

    Example:
        >>> interval_verdict({"value": 0.6, "low": 0.4, "high": 0.85}, 0.8)
        'target ≥ 0.8: NOT met (the interval reaches it)'
    """
    if target is None or entry["value"] is None:
        return "no target for this data"
    value, low, high = entry["value"], entry["low"], entry["high"]
    met = value >= target if higher else value <= target
    if low is None or high is None:
        where = ""
    elif low <= target <= high:
        where = " (the interval reaches it)" if not met else " (the interval crosses it)"
    else:
        where = " (so is the whole interval)"
    return f"target {'≥' if higher else '≤'} {target:g}: {'MET' if met else 'NOT met'}{where}"


def findings(run: common.Run, pooled: dict | None, targets, published: str, problem: str = ""):
    """The findings rows of a ``--folds`` run (pooled over every fold's test images)."""
    if pooled is None:
        return [("pooled cross-validation", "all-zero masks", problem, "—")]
    dice_t, empty_t, sens_t = targets.get(run.data_name, (None, None, None))
    n = (
        f"{pooled['n_images']} images, {pooled['n_lesions']} masses, "
        f"{pooled['n_patients']} patients"
    )
    sens = [pooled[f"lesion_sensitivity_at_{r:g}fppi"] for r in HEADLINE_RATES]
    return [
        (
            f"pooled test Dice per image (images with a mass; {n})",
            "0 (all-zero masks)",
            interval_text(pooled["dice_per_image_mean"], 3),
            interval_verdict(pooled["dice_per_image_mean"], dice_t),
        ),
        (
            "pooled test empty-prediction rate",
            "1.0 (every prediction empty)",
            interval_text(pooled["empty_prediction_rate"], 3),
            interval_verdict(pooled["empty_prediction_rate"], empty_t, higher=False),
        ),
        (
            "pooled test lesion sensitivity at 0.5 / 1 / 2 FP per image",
            "0 (nothing detected)",
            " / ".join(interval_text(s) for s in sens),
            interval_verdict(sens[1], sens_t) + " (at 1 FP/image)",
        ),
        (
            "pooled test FROC (sensitivity at 0.25, 0.5, 1, 2, 4, 8 FP/image) and its mean",
            "not reported",
            ", ".join(common.fmt(v["value"], 2) for v in pooled["froc"].values())
            + f"; mean {interval_text(pooled['froc_mean'], 3)}",
            "—",
        ),
        (
            "pooled test Dice pooled over pixels",
            f"0; published whole-image: {published}",
            interval_text(pooled["dice_pooled"], 3),
            "for comparison (different data and truth)",
        ),
    ]


def difference_verdict(diff: dict, key: str, subject: str = "second") -> str:
    """Whether ``subject`` (the second of a paired difference, second minus first) is better
    by one metric, only where the paired interval excludes 0; the one rule of every paired
    comparison in the experiments.

    Example:
        >>> difference_verdict({"value": 0.1, "low": 0.02, "high": 0.2}, "froc_mean")
        'second better'
        >>> difference_verdict({"value": 0.1, "low": -0.02, "high": 0.2}, "froc_mean", "ensemble")
        'undecided (the interval holds 0)'
    """
    if diff["value"] is None or diff["low"] is None or diff["high"] is None:
        return "n/a"
    if diff["low"] == diff["high"] == 0:
        return "the same on every image"
    lower_is_better = key == "empty_prediction_rate"
    if diff["low"] > 0:
        return f"{subject} worse" if lower_is_better else f"{subject} better"
    if diff["high"] < 0:
        return f"{subject} better" if lower_is_better else f"{subject} worse"
    return "undecided (the interval holds 0)"


def fp_reduction_findings(pooled: dict, paired: dict) -> list[tuple[str, str, str, str]]:
    """Findings rows of ``--fp-reduction``: the re-ranked candidates' pooled FROC and its paired
    difference from the plain candidates (same images, same masks)."""
    sens = [pooled[f"lesion_sensitivity_at_{r:g}fppi"] for r in HEADLINE_RATES]
    diffs = [paired[f"lesion_sensitivity_at_{r:g}fppi"] for r in HEADLINE_RATES]
    froc_diff = paired["froc_mean"]
    verdict = difference_verdict(froc_diff, "froc_mean", "re-ranked")
    return [
        (
            "with FP reduction: pooled test sensitivity at 0.5 / 1 / 2 FP per image",
            "—",
            " / ".join(interval_text(v) for v in sens),
            "the masks are unchanged; only the candidates' ranking is",
        ),
        (
            "with FP reduction minus without: sensitivity at 0.5 / 1 / 2 FP per image; FROC mean",
            "—",
            " / ".join(interval_text(v) for v in diffs) + f"; {interval_text(froc_diff, 3)}",
            verdict + " (paired bootstrap over patients)",
        ),
    ]


def notes(run: common.Run, config: RecipeConfig, pooled: dict | None, rows: list[dict]) -> str:
    """The Markdown after the findings: how the folds were made and scored, the per-fold table."""
    k = len(rows)
    lines = [
        "## Cross-validation",
        "",
        f"{k} folds by patient (`mammoseg.data.split.kfold_by_patient`, split seed "
        f"{run.split_seed}): patients with a mass dealt first so that every fold tests its share "
        "of mass images, the others evening out the sizes. In each fold the other folds' "
        "patients are split by patient 3:1 into train and validation; validation alone chose "
        "the epoch, the mask threshold and the region limit, and the fold's test patients were "
        "scored once. The test images of every fold are pooled: each image, and each mass, is "
        "scored exactly once (`test_images.csv`, one row per image with its fold).",
        "",
        f"Intervals: 95 % percentile bootstrap over patients ({N_RESAMPLES} resamples of the "
        f"{pooled['n_patients'] if pooled else '?'} patients with replacement, each drawn "
        "patient bringing all her images; the pooled statistic recomputed on each, "
        "`mammoseg.metrics.bootstrap_interval`). They show how much the figures depend on which "
        "women are in the data; the spread from training (seeds) comes on top.",
        "",
        budget_paragraph(run, config, k),
        "",
        "The header's split sizes are those of the single 60/20/20 split, which `--folds` does "
        "not use; each fold's sizes are below (patients and images as train / val / test).",
        "",
        "| fold | patients | images | mass images | threshold | regions | epochs (best) | "
        "train min | Dice/img | empty | sens. 0.5 / 1 / 2 FP | FROC mean |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        sizes = (
            " / ".join(str(v) for v in row["patients"]),
            " / ".join(str(v) for v in row["images"]),
        )
        masses = " / ".join(str(v) for v in row["mass_images"])
        if row["status"] != "ok":
            lines.append(
                f"| {row['fold']} | {sizes[0]} | {sizes[1]} | {masses} | {row['status']} |"
                + " — |" * 7
            )
            continue
        sens = " / ".join(
            common.fmt(row[f"lesion_sensitivity_at_{r:g}fppi"], 2) for r in HEADLINE_RATES
        )
        lines.append(
            f"| {row['fold']} | {sizes[0]} | {sizes[1]} | {masses} | {row['threshold']:g} | "
            f"{row['mask_regions'] or 'all'} | {row['epochs_run']} ({row['best_epoch']}) | "
            f"{row['train_minutes']:.1f} | {common.fmt(row['dice_per_image_mean'])} | "
            f"{common.fmt(row['empty_prediction_rate'], 2)} | {sens} | "
            f"{common.fmt(row['froc_mean'])} |"
        )
    return "\n".join(lines)


def budget_paragraph(run: common.Run, config: RecipeConfig, n_folds: int) -> str:
    """What each fold was allowed, and what a 5-fold default run costs."""
    budget = config.time_budget_minutes
    text = (
        f"Per fold: {config.epochs} epoch(s) of {config.steps_per_epoch} steps, patience "
        f"{config.patience}, time budget "
        + ("none" if budget is None else f"{budget:g} min")
        + f" ({n_folds} folds)."
    )
    if run.scale.name == "default":
        text += (
            " The default per-fold budget replaces the single split's 30 epochs / 24 min so that "
            "5 folds fit a CPU session: measured on a mias-dev fold on two busy cores, an epoch "
            "takes 62-84 s and a fold about 3 min after training (saving, choosing on "
            "validation, scoring its test part), so 5 folds of mias-dev take about 55-60 min, and "
            "of 322 images (three times the validation and test images per fold) about 75 min. "
            "`--set time_budget_minutes=T` sets another per-fold budget."
        )
    return text


def plot_froc_band(
    path: Path, pooled: dict, fold_curves: dict[int, list[float]], title: str = ""
) -> None:
    """The pooled FROC with its 95 % band over patients, and each fold's curve, thin."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mammoseg.plots import save_figure

    band = pooled["froc_band"]
    x = np.array(band["fppi"])

    def values(key):
        return np.array([np.nan if v is None else v for v in band[key]], dtype=np.float64)

    fig, ax = plt.subplots(figsize=(6, 4.2))
    for k, curve in fold_curves.items():
        ax.step(x, curve, where="post", lw=0.8, alpha=0.5, label=f"fold {k}")
    ax.fill_between(
        x,
        values("low"),
        values("high"),
        step="post",
        color="C0",
        alpha=0.2,
        label="95 % bootstrap over patients",
    )
    ax.step(x, values("sensitivity"), where="post", color="k", lw=2, label="pooled")
    ax.set_xscale("log", base=2)
    ax.set_xticks(
        [1 / 16, 1 / 8, *FROC_FP_RATES], ["1/16", "1/8", *(f"{r:g}" for r in FROC_FP_RATES)]
    )
    ax.set_xlabel("false positives per image")
    ax.set_ylabel("lesion sensitivity")
    ax.set_ylim(0, 1.02)
    ax.set_title(
        f"FROC of {len(fold_curves)} folds pooled: {pooled['n_lesions']} masses, "
        f"{pooled['n_images']} images{title}"
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def report_folds(
    run: common.Run,
    folds: list[Fold],
    results: list[dict],
    kinds,
    *,
    suffix: str = "",
    title: str = "",
) -> dict:
    """Pool the finished folds, write ``test_images<suffix>.csv`` and the FROC figure; the
    summary for metrics.json (``pooled`` is None when a fold did not finish).

    Args:
        suffix: added to the table's and the figure's names (``"_fp"`` for the candidates
            re-scored by the false-positive reduction).
        title: added to the figure's title.
    """
    rows = fold_rows(folds, results, kinds)
    unfinished = [f"fold_{row['fold']} ({row['status']})" for row in rows if row["status"] != "ok"]
    if unfinished:
        return {"pooled": None, "folds": rows, "problem": "not pooled: " + ", ".join(unfinished)}
    table, figure = _with_suffix(POOLED_TABLE, suffix), _with_suffix(FROC_FIGURE, suffix)
    scores, fold_of = pooled_scores(folds, results)
    write_pooled_table(run.dir / table, scores, fold_of)
    print(f"  pooling {len(scores)} test images; bootstrap over patients ...", flush=True)
    pooled = pooled_metrics(scores, seed=run.args.seed)
    curves = {}
    for k, result in enumerate(results, 1):
        froc = ImageScores.from_rows(result["test_images"]).metrics(fp_rates=BAND_RATES)["froc"]
        curves[k] = [froc[float(r)] for r in BAND_RATES]
    plot_froc_band(run.dir / figure, pooled, curves, title)
    return {"pooled": pooled, "folds": rows, "figure": figure, "table": table}


def _with_suffix(name: str, suffix: str) -> str:
    stem, dot, extension = name.rpartition(".")
    return f"{stem}{suffix}{dot}{extension}"


# ---------------------------------------------------------------- paired comparison

PAIRED = (
    "dice_per_image_mean",
    "empty_prediction_rate",
    "froc_mean",
    *(f"lesion_sensitivity_at_{r:g}fppi" for r in HEADLINE_RATES),
)


def _paired_vector(metrics: dict) -> np.ndarray:
    froc = metrics["froc"]
    return np.array(
        [
            metrics["dice_per_image_mean"],
            metrics["empty_prediction_rate"],
            metrics["froc_mean"],
            *(froc[float(r)] for r in HEADLINE_RATES),
        ],
        dtype=np.float64,
    )


def paired_difference(
    base: ImageScores, other: ImageScores, *, seed: int, n_resamples: int = N_RESAMPLES
) -> dict:
    """``other`` minus ``base`` on the same test images, with a 95 % bootstrap interval over
    patients (both recomputed on each resample of the same patients, so the images' shared
    difficulty cancels out): {metric: {"value", "low", "high"}} for the `PAIRED` metrics.

    Raises:
        ValueError: the two do not hold the same images in the same order.

    Example:
        >>> paired_difference(baseline, with_fp_reduction, seed=0)["froc_mean"]  # doctest: +SKIP
        {'value': 0.05, 'low': -0.02, 'high': 0.12}
    """
    if base.image_ids != other.image_ids:
        raise ValueError("the two runs did not score the same images in the same order")

    def statistic(indices):
        return _paired_vector(other.metrics(indices, fp_rates=FROC_FP_RATES)) - _paired_vector(
            base.metrics(indices, fp_rates=FROC_FP_RATES)
        )

    interval = bootstrap_interval(
        statistic,
        base.patient_ids,
        n_resamples=n_resamples,
        confidence=CONFIDENCE,
        seed=seed,
    )
    return {
        name: {
            "value": _number(interval.estimate[k]),
            "low": _number(interval.low[k]),
            "high": _number(interval.high[k]),
        }
        for k, name in enumerate(PAIRED)
    }
