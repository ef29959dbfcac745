"""A recipe that segments masses on whole mammograms instead of predicting all zeros.

Beyond the paper (whose every semantic model collapsed to empty masks), following what published
whole-image work does (facts.md §6): a breast crop before resizing, lesion-centred patch
sampling (nnU-Net), an overlap loss, sliding-window inference with flip averaging, a threshold
chosen on the validation split (with, where it helps there, only the best-scored regions kept,
as nnU-Net keeps the largest component), and connected-component lesion candidates for FROC.

Modules:
    config       `RecipeConfig`, saved beside the model as ``recipe.json``
    breast_crop  the breast region (Otsu), so film labels and background are dropped
    preprocess   crop, resize, normalise: `WorkingImage`
    sampling     lesion-centred patches for training
    network      the recipe's UNet (`build_recipe_model`)
    train        `train_recipe`: patches in, whole-image validation, time budget
    inference    sliding windows with flips: `Predictor`, `EnsemblePredictor` (fold models)
    candidates   lesion candidates, the validation-chosen threshold and region limit
    fp_reduction the second stage: a candidate classifier that re-ranks the candidates
    pretrain     the first step: a model pre-trained on phantom mammograms to start from
    evaluate     Dice, FROC and sensitivity in the original images' pixels; `ImageScores`,
                 per-image results to pool over folds and resample by patient
    overlay      mask PNGs and overlays with the scored candidates

Example:
    >>> from mammoseg import recipes
    >>> config = recipes.RecipeConfig(working_size=384, patch_size=160)
    >>> train = recipes.prepare_records(train_records, config)  # doctest: +SKIP
    >>> model, info = recipes.train_recipe(train, val, config, "runs/recipe")  # doctest: +SKIP
    >>> prob, work = recipes.Predictor(model, config).predict(image)  # doctest: +SKIP
"""

from mammoseg.recipes.breast_crop import BreastCrop, crop_breast, find_breast
from mammoseg.recipes.candidates import (
    DEFAULT_THRESHOLDS,
    REGION_CHOICES,
    extract_candidates,
    keep_best_regions,
    overlap_counts,
    region_limited_counts,
    select_postprocessing,
    select_threshold,
)
from mammoseg.recipes.config import RecipeConfig, load_recipe, save_recipe
from mammoseg.recipes.evaluate import (
    Evaluation,
    ImageScores,
    evaluate_records,
    image_scores,
    split_metrics,
    with_region_limit,
)
from mammoseg.recipes.fp_reduction import (
    CandidateClassifier,
    FPReductionConfig,
    OneClassCandidates,
    train_candidate_classifier,
)
from mammoseg.recipes.inference import (
    EnsemblePredictor,
    Predictor,
    sliding_window_predict,
    window_starts,
)
from mammoseg.recipes.network import build_recipe_model, load_initial_weights
from mammoseg.recipes.preprocess import (
    WorkingImage,
    prepare_record,
    prepare_records,
    preprocess_image,
)
from mammoseg.recipes.pretrain import (
    PRETRAIN_DIR,
    PRETRAIN_EPOCHS,
    PRETRAIN_MINUTES,
    pretrain_config,
    pretrain_on_phantom,
    pretrain_phantom_seed,
)
from mammoseg.recipes.sampling import LesionCentredSampler
from mammoseg.recipes.train import train_recipe

__all__ = [
    "DEFAULT_THRESHOLDS",
    "PRETRAIN_DIR",
    "PRETRAIN_EPOCHS",
    "PRETRAIN_MINUTES",
    "REGION_CHOICES",
    "BreastCrop",
    "CandidateClassifier",
    "Evaluation",
    "FPReductionConfig",
    "ImageScores",
    "LesionCentredSampler",
    "EnsemblePredictor",
    "OneClassCandidates",
    "Predictor",
    "RecipeConfig",
    "WorkingImage",
    "build_recipe_model",
    "crop_breast",
    "evaluate_records",
    "extract_candidates",
    "find_breast",
    "image_scores",
    "keep_best_regions",
    "load_initial_weights",
    "load_recipe",
    "overlap_counts",
    "prepare_record",
    "pretrain_config",
    "pretrain_on_phantom",
    "pretrain_phantom_seed",
    "prepare_records",
    "preprocess_image",
    "region_limited_counts",
    "save_recipe",
    "select_postprocessing",
    "select_threshold",
    "sliding_window_predict",
    "split_metrics",
    "train_candidate_classifier",
    "train_recipe",
    "window_starts",
    "with_region_limit",
]
