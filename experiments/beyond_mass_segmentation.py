"""Beyond the paper: a recipe that finds masses on whole mammograms instead of predicting zeros.

The paper: every semantic model (logistic regression, feed-forward net, shallow CNN, UNet with
plain or weighted BCE, YaroslavNet transfer) converged to empty masks. Published whole-image
work reaches Dice 0.79-0.86 (AUNet 0.818 / 0.791, ARF-Net 0.858 / 0.861 on CBIS-DDSM / INbreast)
with overlap losses, lesion-centred sampling and breast crops (facts.md §6).

This script runs `mammoseg.recipes` on the patient split (no patient in two parts):
  * phantom pre-training (default; ``--pretrain none`` trains from scratch): the recipe first
    trains on built-in phantom mammograms (10 minutes), and every model of the run starts from
    that one (``pretrain/model.keras``); evaluated on the phantom itself, it pre-trains on a
    second phantom set, so no tested image is seen;
  * breast crop (threshold + largest component, labels removed), resized so the original
    image's long side becomes ``working_size`` pixels;
  * a batch-normalised UNet trained on patches, a third of them centred on a mass (nnU-Net),
    with Dice + BCE, ``mixed_bfloat16`` where faster, early stopping on the whole-image
    validation Dice and a time budget;
  * sliding windows (50 % overlap, Gaussian blending) with flip averaging at inference, the mask
    threshold chosen on the validation split, connected-component candidates for FROC;
  * false-positive reduction (default; ``--no-fp-reduction`` skips it): a small classifier
    trained on the training images' candidates (hits against false positives) re-ranks the
    test candidates (``fp/`` or ``fp_<k>/``; the masks are the same);
  * metrics on the original images: Dice per image (images with a mass) and pooled, foreground
    IoU, empty-prediction rate, lesion sensitivity at 1 false positive per image, FROC.

Why these two are the default: in 5 folds of mias-dev, both together raised the FROC mean over
training from scratch by 0.111 [0.022, 0.250] (paired bootstrap over patients, one run each;
docs/results/recipe_folds_miasdev.md).

    python experiments/beyond_mass_segmentation.py                 # phantom, ~40 min on 2 CPUs
    python experiments/beyond_mass_segmentation.py --quick         # seconds
    python experiments/beyond_mass_segmentation.py --data mias:/data/mias
    python experiments/beyond_mass_segmentation.py --data mias:/data/mias --folds 5
    mammoseg predict --model runs/beyond_mass_segmentation/recipe/model.keras mdb001.pgm \
        --fp-classifier runs/beyond_mass_segmentation/fp --output-dir predictions/

``--folds K`` (`beyond_folds`): patient-level K-fold cross-validation, one model per fold in
``fold_<k>/``, every image tested once; the pooled FROC, sensitivity at 0.5 / 1 / 2 false
positives per image, Dice per mass image and empty-prediction rate with 95 % bootstrap intervals
over patients, and each fold's figures. Each fold gets a smaller budget than the single split
(`beyond_folds.FOLD_SETTINGS`): 5 folds of MIAS-sized data take about 55 minutes on two cores,
plus 10 for the pre-training and 5-6 a fold for the classifiers (measured: mias-dev, 110
images, 72-86 min in all; 322 phantom images about two hours on shared cores;
``--no-fp-reduction`` saves the classifiers' share). `experiments/fold_ensemble.py` scores the
fold models' ensemble on held-out images.

TensorFlow's ops are deterministic by default here (a seed gives the same model; measured at no
cost on two cores, benchmarks/bench_determinism.py); ``--no-deterministic`` turns that off.

Targets (issue 7): phantom test Dice/image >= 0.80, empty-prediction rate <= 0.05, sensitivity at
1 FPPI >= 0.90; mini-MIAS test sensitivity at 1 FPPI >= 0.8 and Dice/image >= 0.5.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import beyond_folds
import common
import numpy as np
from beyond_development import DEVELOPMENT, FOLD_DEVELOPMENT

from mammoseg import cli
from mammoseg.recipes import (
    DEFAULT_THRESHOLDS,
    PRETRAIN_DIR,
    PRETRAIN_EPOCHS,
    PRETRAIN_MINUTES,
    REGION_CHOICES,
    Predictor,
    RecipeConfig,
    evaluate_records,
    image_scores,
    prepare_records,
    pretrain_config,
    pretrain_on_phantom,
    pretrain_phantom_seed,
    save_recipe,
    select_postprocessing,
    split_metrics,
    train_recipe,
    with_region_limit,
)
from mammoseg.training import save_json

SECTION, TITLE = "beyond", "Whole-mammogram mass segmentation that does not collapse"
CONFIGS = {
    "quick": RecipeConfig(
        working_size=128,
        patch_size=64,
        base_filters=8,
        depth=3,
        batch_size=4,
        steps_per_epoch=4,
        epochs=1,
        patience=1,
        time_budget_minutes=None,
    ),
    # 1024² → 384: median mass radius 16 px; 160² patches, a depth-5 UNet (its field of view
    # spans the patch, so a large mass is seen with tissue around it) and patches zoomed
    # 0.75-1.33×: 30 epochs of 80 steps, about 21 minutes on two busy cores (the time budget
    # stops it in time on a slower machine).
    "default": RecipeConfig(epochs=30, patience=10, time_budget_minutes=24.0),
    "paper": RecipeConfig(
        working_size=512,
        patch_size=256,
        base_filters=32,
        steps_per_epoch=250,
        epochs=100,
        patience=15,
        time_budget_minutes=None,
    ),
}
# Phantom pre-training, the first step of the default (`mammoseg.recipes.pretrain`): the
# mode's recipe trained on built-in phantom mammograms on this budget, then every model of the
# run starts from it.
PRETRAIN = {  # arguments of `mammoseg.recipes.pretrain_config`
    "quick": {},  # the quick recipe's single epoch
    "default": {"minutes": PRETRAIN_MINUTES, "epochs": PRETRAIN_EPOCHS},
    "paper": {"minutes": 60.0, "epochs": 40},
}
TARGETS = {  # data → (Dice/image, empty-prediction rate, sensitivity at 1 FPPI)
    "phantom": (0.80, 0.05, 0.90),
    "mias": (0.50, None, 0.80),
}
PUBLISHED = (
    "AUNet Dice 0.818 (CBIS-DDSM) / 0.791 (INbreast); ARF-Net 0.858 / 0.861; "
    "Faster R-CNN on INbreast: sensitivity 0.99 at 1.17 FP/image (facts.md §6)"
)


def run_recipe(
    run: common.Run, config: RecipeConfig, folder, splits=None, *, showcase: bool = True
) -> dict:
    """Train on ``splits`` (default: the run's patient split), choose the threshold and region
    limit on its validation part, score its test part once; the result of the sub-run."""
    splits = splits if splits is not None else run.splits()
    print("  preparing images (breast crop, working resolution) ...", flush=True)
    train = prepare_records(splits["train"], config)
    val = prepare_records(splits["val"], config)
    model, info = train_recipe(
        train,
        val,
        config,
        folder,
        seed=run.args.seed,
        strategy=run.strategy,
        resume=run.args.resume,
        callbacks=run.callbacks,
    )
    predictor = Predictor(model, config)
    print("  validation: choosing the threshold and the region limit ...", flush=True)
    val_eval = evaluate_records(
        predictor, splits["val"], DEFAULT_THRESHOLDS, region_choices=REGION_CHOICES
    )
    threshold, regions, curves = select_postprocessing(
        val_eval.counts, val_eval.limited_counts, DEFAULT_THRESHOLDS
    )
    predictor.config = config.with_postprocessing(threshold, regions)
    save_recipe(folder, predictor.config, data=run.args.data, seed=run.args.seed)
    print(f"  test at threshold {threshold:g}, mask regions {regions or 'all'} ...", flush=True)
    keep = _showcase_ids(splits["test"], config.kinds) if showcase else []
    test_eval = evaluate_records(predictor, splits["test"], [threshold], keep=keep)
    figures = _figures(run, folder, splits["test"], test_eval, predictor)
    patients = [r.patient_id for r in splits["test"]]
    return {
        "val": split_metrics(with_region_limit(val_eval, regions), threshold),
        "test": split_metrics(test_eval, threshold),
        "threshold": threshold,
        "mask_regions": regions,
        "threshold_curve": {
            name: dict(zip([str(t) for t in DEFAULT_THRESHOLDS], curve))
            for name, curve in curves.items()
        },
        "recipe": predictor.config.to_dict(),
        "training": {k: v for k, v in info.items() if k != "history"},
        "history": info["history"],
        "figures": figures,
        # per test image: counts, Dice, candidate scores (pooled over folds by --folds)
        "test_images": image_scores(test_eval, threshold, patients).to_rows(),
    }


def run_pretrain(run: common.Run, config: RecipeConfig, folder) -> dict:
    """`mammoseg.recipes.pretrain_on_phantom` at the mode's phantom size, the run's split seed
    and seed; ``folder/model.keras`` is then every model's starting point."""
    phantom_seed = pretrain_phantom_seed(run.args.data)
    print(
        f"  pre-training on {run.scale.phantom_images} phantom mammograms (seed {phantom_seed}, "
        f"{run.scale.phantom_size} px), budget {config.time_budget_minutes:g} min ...",
        flush=True,
    )
    return pretrain_on_phantom(
        config,
        folder,
        n_images=run.scale.phantom_images,
        size=run.scale.phantom_size,
        phantom_seed=phantom_seed,
        split_seed=run.split_seed,
        seed=run.args.seed,
        strategy=run.strategy,
        resume=run.args.resume,
        callbacks=run.callbacks,
    )


def with_pretraining(
    run: common.Run, config: RecipeConfig, pretrain_base: RecipeConfig, names: list[str]
) -> RecipeConfig:
    """``config`` starting from the phantom pre-trained model (`run_pretrain` of
    ``pretrain_base``, the mode's recipe with the ``--set`` fields, on the mode's `PRETRAIN`
    budget; resumable), unless ``--pretrain none`` or ``--set init_weights=PATH`` chose the
    start. The sub-runs ``names`` that ``--resume`` would reuse are checked first
    (`check_resumed_starts`); a failed pre-training ends the run (every model would silently
    start from scratch otherwise)."""
    if run.args.pretrain == "none" or config.init_weights is not None:
        check_resumed_starts(run, names, config)
        return config
    started = replace(config, init_weights=str(run.dir / PRETRAIN_DIR / "model.keras"))
    check_resumed_starts(run, names, started)
    budget = PRETRAIN[run.scale.name]
    if run.args.pretrain_minutes is not None:
        budget = {**budget, "minutes": run.args.pretrain_minutes}
    base = pretrain_config(pretrain_base, **budget)
    result = run.sub_run(PRETRAIN_DIR, lambda folder: run_pretrain(run, base, folder))
    if result.get("status") == "skipped":  # --sub-runs without it: an earlier one may serve
        if not (run.dir / PRETRAIN_DIR / "result.json").is_file():
            raise SystemExit(
                f"--sub-runs: the models start from the pre-training, which has not run in "
                f"{run.dir}; add {PRETRAIN_DIR} to --sub-runs, or pass --pretrain none"
            )
        result = json.loads((run.dir / PRETRAIN_DIR / "result.json").read_text())
    if result.get("status") != "ok":
        raise SystemExit(
            f"phantom pre-training failed: {result.get('error', result['status'])} (a --resume "
            f"reuses this result: delete {run.dir / PRETRAIN_DIR} to try again)"
        )
    return started  # the path as this run sees it (the result's may predate a moved folder)


def _start_key(init_weights: str | None) -> str | None:
    """What a start means for `check_resumed_starts`: the run's own pre-training wherever the
    run folder was when it was written (``.../pretrain/model.keras``), else the resolved path."""
    if init_weights is None:
        return None
    path = Path(init_weights)
    if path.parts[-2:] == (PRETRAIN_DIR, "model.keras"):
        return f"the run's {PRETRAIN_DIR}"
    return str(path.resolve())


def check_resumed_starts(run: common.Run, names: list[str], config: RecipeConfig) -> None:
    """Before anything trains: every finished sub-run that ``--resume`` would reuse must have
    started from the weights this run starts from, or the pooled figures would mix two recipes
    (e.g. folds trained from scratch before the default pre-trained).

    Raises:
        SystemExit: naming the sub-run's folder, both starts and the way out.
    """
    if not run.args.resume:
        return
    current = config.init_weights
    for name in names:
        path = run.dir / name / "result.json"
        if not path.is_file():
            continue
        result = json.loads(path.read_text())
        saved = (result.get("recipe") or {}).get("init_weights")
        same = _start_key(saved) == _start_key(current)
        if result.get("status") == "ok" and not same:
            raise SystemExit(
                f"--resume: {run.dir / name} was trained from init_weights={saved!r}, this run "
                f"starts from {current!r}; resume with the same --pretrain / --set "
                "init_weights as before, or give a new --output-dir"
            )


def run_fold(run: common.Run, config: RecipeConfig, folder, fold, k: int) -> dict:
    """One fold of ``--folds``: `run_recipe` on the fold's train / val / test (the first fold
    also draws the showcase figures)."""
    splits = {"train": fold.train, "val": fold.val, "test": fold.test}
    return run_recipe(run, config, folder, splits, showcase=k == 1)


def run_fp_fold(run: common.Run, folder, fold, k: int) -> dict:
    """The second stage of fold ``k``: `run_fp_stage` with the fold's model (``fold_<k>/``)."""
    return run_fp_stage(run, folder, f"fold_{k}", fold.train, fold.val, fold.test)


def run_fp_stage(run: common.Run, folder, base: str, train, val, test) -> dict:
    """False-positive reduction (on by default; ``--no-fp-reduction`` skips it): the model of
    sub-run ``base``'s candidate classifier, trained on the training and validation images
    (`mammoseg.recipes.train_candidate_classifier`), then the ``test`` images scored again with
    their candidates re-ranked by it (the masks are the same)."""
    from mammoseg.recipes import OneClassCandidates, train_candidate_classifier

    base_result = run.results[base]
    predictor = Predictor.load(run.dir / base / "model.keras")
    print("  candidate classifier: predicting the training images ...", flush=True)
    try:
        reducer, info = train_candidate_classifier(
            predictor, [*train, *val], folder, seed=run.args.seed
        )
    except OneClassCandidates as err:  # not a failure of the run: the model left nothing to rank
        print(f"  no candidate classifier: {err}", flush=True)
        return {"status": "not trained", "error": f"no classifier: {err}"}
    print(
        f"  trained on {info['patches']} patches ({info['hits']} hits, {info['false_positives']} "
        f"false positives, {info['lesions']} masses); re-scoring the test images ...",
        flush=True,
    )
    threshold = base_result["threshold"]
    test_eval = evaluate_records(predictor, test, [threshold], rescore=reducer.rescore)
    patients = [r.patient_id for r in test]
    return {
        "classifier": {**info, "config": reducer.config.__dict__},
        "threshold": threshold,
        "mask_regions": base_result.get("mask_regions"),
        "training": base_result["training"],
        "test": split_metrics(test_eval, threshold),
        "test_images": image_scores(test_eval, threshold, patients).to_rows(),
    }


def _showcase_ids(records, kinds, n: int = 4) -> list[str]:
    with_lesion = [r.image_id for r in records if r.has_lesion(kinds)]
    normal = [r.image_id for r in records if not r.has_lesion(kinds)]
    return with_lesion[: n - 1] + normal[:1]


def _figures(run, folder, records, evaluation, predictor) -> list[str]:
    from mammoseg.data.records import read_pixels
    from mammoseg.recipes.overlay import save_overlay_png

    config = predictor.config
    limit = "" if config.mask_regions is None else f", best {config.mask_regions} region(s)"
    by_id = {r.image_id: r for r in records}
    names = []
    for k, image_id in enumerate(evaluation.kept):
        record = by_id[image_id]
        prob = evaluation.kept[image_id]
        index = evaluation.image_ids.index(image_id)
        circles = [
            (les.center[0], les.center[1], les.radius)
            for les in record.lesions
            if les.kind in config.kinds and les.center is not None and les.radius is not None
        ]
        name = f"fig{k + 1}_test_{image_id}.png"
        save_overlay_png(
            read_pixels(record.path),
            predictor.mask(prob),
            evaluation.candidates[index],
            folder / name,
            truth_circles=circles,
            title=f"{image_id}: truth (green{'' if circles else ': no mass'}), mask at "
            f"{config.threshold:g}{limit} (red), candidates",
        )
        names.append(f"{folder.name}/{name}")
    return names


def _findings(run: common.Run) -> list[tuple[str, str, str, str]]:
    result = run.results.get("recipe", {})
    if result.get("status") != "ok":
        return [("recipe", "all-zero masks", "failed: " + result.get("error", "?"), "—")]
    test, val = result["test"], result["val"]
    dice_t, empty_t, sens_t = TARGETS.get(run.data_name, (None, None, None))

    def verdict(value, target, *, higher=True):
        if target is None or value is None:
            return "no target for this data"
        met = value >= target if higher else value <= target
        return f"target {'≥' if higher else '≤'} {target:g}: {'MET' if met else 'NOT met'}"

    train_min = result["training"]["train_seconds"] / 60
    return [
        (
            "test Dice per image (images with a mass)",
            "0 (all-zero masks)",
            f"{common.fmt(test['dice_per_image_mean'])} "
            f"(val {common.fmt(val['dice_per_image_mean'])})",
            verdict(test["dice_per_image_mean"], dice_t),
        ),
        (
            "test empty-prediction rate",
            "1.0 (every prediction empty)",
            f"{common.fmt(test['empty_prediction_rate'])}",
            verdict(test["empty_prediction_rate"], empty_t, higher=False),
        ),
        (
            "test lesion sensitivity at 1 FP/image",
            "0 (nothing detected)",
            f"{common.fmt(test['lesion_sensitivity_at_1fppi'])} "
            f"(val {common.fmt(val['lesion_sensitivity_at_1fppi'])})",
            verdict(test["lesion_sensitivity_at_1fppi"], sens_t),
        ),
        (
            "test Dice pooled / foreground IoU",
            f"0 / 0; published whole-image: {PUBLISHED}",
            f"{common.fmt(test['dice_pooled'])} / {common.fmt(test['foreground_iou'])}",
            "for comparison (different data and truth)",
        ),
        (
            "test FROC (sensitivity at 0.25, 0.5, 1, 2, 4, 8 FP/image)",
            "not reported",
            ", ".join(common.fmt(v, 2) for v in test["froc"].values())
            + f"; mean {common.fmt(test['froc_mean'])}",
            "—",
        ),
        (
            "test Dice per image by mass radius (at 1024 px: < 29, 29-64, ≥ 64 px)",
            "—",
            "; ".join(
                f"{band} {common.fmt(value)} (n={count})"
                for band, (value, count) in test.get("dice_by_size", {}).items()
            )
            or "—",
            "where the recipe succeeds and fails",
        ),
        (
            "test Dice per image by mass contrast (MIAS quartiles: < 0.75, 0.75-1.56, ≥ 1.56)",
            "—",
            "; ".join(
                f"{band} {common.fmt(value)} (n={count})"
                for band, (value, count) in test.get("dice_by_contrast", {}).items()
            )
            or "—",
            "contrast: (mean inside − mean of the ring r..1.5r) / std of the ring",
        ),
        *_fp_rows(run, test, sens_t),
        _start_row(run, RecipeConfig.from_dict(result["recipe"])),
        (
            "training time (default run: ≤ 30 min on 2 CPU cores, pre-training apart)",
            "—",
            f"{train_min:.1f} min, {result['training']['epochs_run']} epochs, best at "
            f"{result['training']['best_epoch']} ({result['training']['stop_reason']})",
            verdict(train_min, 30.0, higher=False) if run.scale.name == "default" else "—",
        ),
    ]


def _start_row(run: common.Run, config: RecipeConfig) -> tuple[str, str, str, str]:
    """The findings row that says where every model of the run started."""
    pre = run.results.get(PRETRAIN_DIR, {})
    if pre.get("status") == "ok":
        t = pre["training"]
        text = (
            f"pre-trained on {pre['images']['train']} phantom mammograms (seed "
            f"{pre['phantom_seed']}; {t['train_seconds'] / 60:.1f} min, {t['epochs_run']} "
            f"epochs, best validation Dice {common.fmt(t['best_val_dice'])}), then trained here"
        )
    elif config.init_weights is not None:
        text = f"started from `{config.init_weights}` (--set init_weights)"
    else:
        text = "random (--pretrain none)"
    return ("start of every model", "random", text, "phantom pre-training is the default (#17)")


def _fp_rows(run: common.Run, test: dict, sens_target) -> list[tuple[str, str, str, str]]:
    """Findings rows of the single split's false-positive reduction (one row when it did not
    run, saying why)."""
    reduced = run.results.get("fp", {})
    if reduced.get("status") != "ok":
        why = reduced.get("error", "off (--no-fp-reduction)")
        return [("candidates re-ranked by the FP classifier", "—", why, "—")]
    fp, info = reduced["test"], reduced["classifier"]
    sens = fp["lesion_sensitivity_at_1fppi"]
    if sens is None or sens_target is None:
        verdict = "no target for this data"
    else:
        verdict = f"target ≥ {sens_target:g}: {'MET' if sens >= sens_target else 'NOT met'}"
    return [
        (
            "test lesion sensitivity at 1 FP/image, candidates re-ranked (FP reduction)",
            "—",
            f"{common.fmt(sens)} (plain {common.fmt(test['lesion_sensitivity_at_1fppi'])}; "
            f"classifier trained on {info['hits']} hits, {info['false_positives']} false "
            "positives)",
            verdict,
        ),
        (
            "test FROC mean, candidates re-ranked (FP reduction)",
            "not reported",
            f"{common.fmt(fp['froc_mean'])} (plain {common.fmt(test['froc_mean'])})",
            "one split, one run: a difference here is not evidence (see --folds)",
        ),
    ]


def _regions_text(mask_regions) -> str:
    if mask_regions is None:
        return "none: every region kept"
    return f"only the {mask_regions} best-scored region(s) kept"


def _scoring_text(config: RecipeConfig) -> str:
    return (
        "Metrics are computed in the original images' pixels against the truth circles "
        "(masses only; images whose only lesions are of other kinds count as normal). A lesion "
        "is found when a candidate's centroid lies inside its circle; candidates are regions of "
        f"probability ≥ {config.candidate_threshold:g}, scored by their highest probability."
    )


COMPARISON = (
    "The paper's outcome for every semantic model was an all-zero mask (Dice 0, "
    "empty-prediction rate 1). Published whole-image results: " + PUBLISHED + "; they are "
    "on other databases with pixel-level truth, so they are a yardstick, not a like-for-like "
    "comparison. mini-MIAS has no pixel-level benchmark: its truth is circles."
)


def _notes(run: common.Run, config: RecipeConfig) -> str:
    result = run.results.get("recipe", {})
    threshold = result.get("threshold")
    lines = [
        "## Setup",
        "",
        f"Recipe settings (saved as `recipe/recipe.json` beside `recipe/model.keras`): "
        f"`{json.dumps(result.get('recipe', config.to_dict()))}`.",
        "",
        f"The mask threshold ({common.fmt(threshold, 2)}) and the region limit "
        f"({_regions_text(result.get('mask_regions'))}) were chosen on the validation split "
        "(highest mean Dice per image over images with a mass; a limit only if it beats keeping "
        "every region); the test split was scored once, with those. " + _scoring_text(config),
        "",
        COMPARISON,
    ]
    if run.data_name == "phantom" and run.scale.name == "default":
        lines += ["", *DEVELOPMENT]
    if run.data_name == "mias":
        lines += [
            "",
            "Only part of mini-MIAS may be present (e.g. the 110-image development subset): its "
            "own patient split is then small, and the figures carry wide uncertainty.",
        ]
    return "\n".join(lines)


def _fold_notes(run: common.Run, config: RecipeConfig, summary: dict) -> str:
    lines = [
        "## Setup",
        "",
        "Recipe settings of every fold (each `fold_<k>/recipe.json` beside its `model.keras` "
        "adds the threshold and region limit chosen on that fold's validation patients): "
        f"`{json.dumps(config.to_dict())}`.",
        "",
        _scoring_text(config),
        "",
        beyond_folds.notes(run, config, summary["pooled"], summary["folds"]),
        "",
        COMPARISON,
    ]
    if run.data_name == "mias" and run.scale.name == "default":
        lines += ["", *FOLD_DEVELOPMENT]
    return "\n".join(lines)


def apply_overrides(config: RecipeConfig, items: list[str]) -> RecipeConfig:
    """``--set KEY=VALUE`` pairs over a mode's config (`mammoseg.cli.config_with_overrides`,
    the same rules as ``mammoseg train``); a bad pair ends the script with the message.

    Example: ``apply_overrides(CONFIGS["default"], ["working_size=256", "depth=4"])`` is the
    default mode at 256 pixels with a depth-4 UNet.
    """
    try:
        return cli.config_with_overrides(config, items)
    except ValueError as err:
        raise SystemExit(str(err)) from None


def _fold_count(text: str) -> int:
    """argparse type of ``--folds``: an integer K >= 2 (argparse names the option)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 2, received {text!r}") from None
    if value < 2:
        raise argparse.ArgumentTypeError(
            f"must be an integer >= 2 (one fold would leave nothing to train on), received {text}"
        )
    return value


def build_parser() -> argparse.ArgumentParser:
    """The common options, ``--set``, ``--folds`` and ``--no-deterministic``."""
    # The recipe's target is its own config's (masses): no --kinds / --protocol.
    parser = common.build_parser(__doc__, target_options=False)
    common.add_set_option(parser, "working_size=256 (a RecipeConfig field)")
    parser.add_argument(
        "--folds",
        type=_fold_count,
        default=None,
        metavar="K",
        help="patient-level K-fold cross-validation: one model per fold, every image tested "
        "once, pooled figures with 95%% bootstrap intervals over patients",
    )
    parser.add_argument(
        "--fp-reduction",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="train a candidate classifier on the training images (false-positive reduction) "
        "and report the test figures with the candidates re-ranked beside the plain ones "
        "(default: on; a finished run gains them with --resume)",
    )
    parser.add_argument(
        "--pretrain",
        choices=("phantom", "none"),
        default="phantom",
        help="start every model from one pre-trained on built-in phantom mammograms (default; "
        "a second phantom set when the data is the phantom itself) or from scratch (none); "
        "--set init_weights=PATH starts from your own model instead",
    )
    parser.add_argument(
        "--pretrain-minutes",
        type=cli.positive_minutes,
        default=None,
        metavar="M",
        help="time budget of the phantom pre-training (default: the mode's, 10 min)",
    )
    # Deterministic ops cost nothing measurable on two cores (benchmarks/bench_determinism.py)
    # and make a seed mean one model: on by default for the recipe.
    parser.set_defaults(deterministic=True)
    parser.add_argument(
        "--no-deterministic",
        dest="deterministic",
        action="store_false",
        help="let TensorFlow pick non-deterministic kernels (a seed no longer fixes the model)",
    )
    return parser


def run_configs(args: argparse.Namespace) -> tuple[RecipeConfig, RecipeConfig]:
    """(the recipe of the run's models, the recipe the pre-training starts from): the mode's
    recipe with the ``--set`` fields, the per-fold budget under ``--folds`` for the first only
    (the pre-training keeps, e.g., the default mode's patience of 10 epochs), ``--max-steps``
    and ``--epochs`` for both. `pretrain_config` then gives the pre-training its own budget.

    Example:
        >>> args = build_parser().parse_args(["--folds", "5"])
        >>> models, pretraining = run_configs(args)
        >>> models.time_budget_minutes, pretraining.time_budget_minutes
        (8.0, 24.0)
    """
    config = CONFIGS[args.mode]
    pretrain_base = apply_overrides(config, args.set)
    if args.folds is not None:  # a smaller budget per fold, unless --set gives one
        config = beyond_folds.fold_config(config, args.mode, beyond_folds.set_keys(args.set))
    config = apply_overrides(config, args.set)
    if args.max_steps is not None:  # one epoch of N steps (the paper-scale path on a CPU)
        config = replace(config, epochs=1, steps_per_epoch=args.max_steps)
        pretrain_base = replace(pretrain_base, epochs=1, steps_per_epoch=args.max_steps)
    if args.epochs is not None:
        pretrain_base = replace(pretrain_base, epochs=args.epochs)
    return config, pretrain_base


def main(argv=None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.pretrain_minutes is not None and args.pretrain == "none":
        parser.error("--pretrain-minutes needs --pretrain phantom")
    config, pretrain_base = run_configs(args)
    scale = replace(
        common.SCALES[args.mode],
        image_size=config.working_size,
        epochs=config.epochs,
        batch_size=config.batch_size,
        base_filters=config.base_filters,
        depth=config.depth,
    )
    run = common.Run(SECTION, TITLE, args, scale)
    config = replace(config, epochs=run.scale.epochs)
    if args.folds is not None:
        cross_validate(run, config, pretrain_base)
    else:
        single_split(run, config, pretrain_base)


def single_split(run: common.Run, config: RecipeConfig, pretrain_base: RecipeConfig) -> None:
    """Pre-train (default), train on the patient split, choose on validation, score the test
    split once, then re-rank its candidates (default)."""
    splits = run.splits()  # also when --resume reuses a finished result: the report shows it
    config = with_pretraining(run, config, pretrain_base, ["recipe"])
    run.sub_run("recipe", lambda folder: run_recipe(run, config, folder))
    result = run.results["recipe"]
    if run.args.fp_reduction and result.get("status") == "ok":
        run.sub_run(
            "fp",
            lambda folder: run_fp_stage(
                run, folder, "recipe", splits["train"], splits["val"], splits["test"]
            ),
        )
    try:
        run.write(_findings(run), notes=_notes(run, config), figures=result.get("figures", ()))
    finally:  # also when a failed FP stage makes `write` end the run: the recipe's figures stay
        if result.get("status") == "ok":  # the headline numbers at the top of metrics.json
            reduced = run.results.get("fp", {})
            extra = {"test_fp_reduction": reduced["test"]} if reduced.get("status") == "ok" else {}
            _add_to_metrics(
                run,
                val=result["val"],
                test=result["test"],
                threshold=result["threshold"],
                mask_regions=result.get("mask_regions"),
                **extra,
            )
    if result.get("status") != "ok":
        raise SystemExit(f"the recipe failed: {result.get('error')}")
    for split in ("val", "test"):
        m = result[split]
        print(
            f"  {split}: Dice/img {common.fmt(m['dice_per_image_mean'])} pooled "
            f"{common.fmt(m['dice_pooled'])} empty {common.fmt(m['empty_prediction_rate'])} "
            f"sens@1FPPI {common.fmt(m['lesion_sensitivity_at_1fppi'])} n={m['n_images']}"
        )


def cross_validate(run: common.Run, config: RecipeConfig, pretrain_base: RecipeConfig) -> None:
    """``--folds K``: pre-training (default), one model per fold, the test images of all folds
    pooled with intervals, then each fold's candidates re-ranked (default)."""
    folds = beyond_folds.make_folds(run, run.args.folds, config.kinds)
    names = [f"fold_{k}" for k in range(1, len(folds) + 1)]
    config = with_pretraining(run, config, pretrain_base, names)
    results = beyond_folds.run_folds(
        run, folds, lambda folder, fold, k: run_fold(run, config, folder, fold, k)
    )
    summary = beyond_folds.report_folds(run, folds, results, config.kinds)
    pooled = summary["pooled"]
    figures = [summary["figure"]] if pooled else []
    rows = beyond_folds.findings(run, pooled, TARGETS, PUBLISHED, summary.get("problem", ""))
    rows.append(_start_row(run, config))
    extra = {}
    if run.args.fp_reduction:
        fp_results = [
            run.sub_run(f"fp_{k}", lambda folder, f=fold, k=k: run_fp_fold(run, folder, f, k))
            if result.get("status") == "ok"
            else {"status": f"fold_{k} {result.get('status')}"}
            for k, (fold, result) in enumerate(zip(folds, results), 1)
        ]
        fp_summary = beyond_folds.report_folds(
            run, folds, fp_results, config.kinds, suffix="_fp", title=" (FP reduction)"
        )
        extra = {"pooled_fp_reduction": fp_summary["pooled"], "folds_fp_reduction": fp_summary}
        if pooled and not fp_summary["pooled"]:
            why = fp_summary.get("problem", "no pooled figures")
            rows.append(("with FP reduction", "—", f"not pooled: {why}", "—"))
        if pooled and fp_summary["pooled"]:
            base, _ = beyond_folds.pooled_scores(folds, results)
            reduced, _ = beyond_folds.pooled_scores(folds, fp_results)
            paired = beyond_folds.paired_difference(base, reduced, seed=run.args.seed)
            extra["fp_reduction_minus_plain"] = paired
            rows += beyond_folds.fp_reduction_findings(fp_summary["pooled"], paired)
            figures.append(fp_summary["figure"])
    figures += results[0].get("figures", []) if results[0].get("status") == "ok" else []
    try:
        run.write(rows, notes=_fold_notes(run, config, summary), figures=figures)
    finally:  # also when a failed fold makes `write` end the run: the per-fold rows stay
        extra.pop("folds_fp_reduction", None)
        _add_to_metrics(run, pooled=pooled, folds=summary["folds"], **extra)
    if pooled is None:
        raise SystemExit(summary["problem"])
    print(
        "  pooled over {n_images} test images ({n_lesions} masses): Dice/img {dice}, empty "
        "{empty}, sens@1FPPI {sens}, FROC mean {froc}".format(
            n_images=pooled["n_images"],
            n_lesions=pooled["n_lesions"],
            dice=beyond_folds.interval_text(pooled["dice_per_image_mean"], 3),
            empty=beyond_folds.interval_text(pooled["empty_prediction_rate"], 2),
            sens=beyond_folds.interval_text(pooled["lesion_sensitivity_at_1fppi"]),
            froc=beyond_folds.interval_text(pooled["froc_mean"], 3),
        )
    )


def _add_to_metrics(run: common.Run, **values) -> None:
    """Put ``values`` at the top level of the run's metrics.json (written by `Run.write`)."""
    path = run.dir / "metrics.json"
    if path.is_file():
        save_json(path, {**json.loads(path.read_text()), **values})


if __name__ == "__main__":
    np.seterr(invalid="ignore")
    main()
