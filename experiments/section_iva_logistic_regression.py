"""Section IV.A: per-pixel logistic regression, the paper's baseline.

The paper classifies every pixel as tumour or not with logistic regression; the authors' code
used scikit-learn's `LogisticRegression(solver="lbfgs")` on the raw pixel intensity only
(facts.md §1). The paper gives no number for it. This script fits:
  * the authors' baseline (scikit-learn, raw intensity, no class weights),
  * the same with balanced class weights (tumour pixels are well under 1 % of the image),
  * the Keras model (a 1×1 convolution + sigmoid) trained with weighted cross-entropy,
on a bounded sample of pixels (so 1024² images never exhaust memory) and scores whole images.

    python experiments/section_iva_logistic_regression.py [--quick | --paper-scale]
"""

from __future__ import annotations

import common

from mammoseg import losses
from mammoseg.models import build_model
from mammoseg.models.logistic import PixelLogisticRegression

SECTION, TITLE = "IV.A", "Pixel-wise logistic regression baseline"
LABELS = {
    "sklearn_unweighted": "scikit-learn, raw intensity (authors)",
    "sklearn_balanced": "scikit-learn, balanced class weights",
    "keras_weighted": "Keras 1×1 conv + sigmoid, weighted BCE",
}
MAX_PIXELS = {"quick": 20_000, "default": 400_000, "paper": 2_000_000}


def fit_sklearn(run: common.Run, class_weight) -> dict:
    images, masks = run.arrays("train")
    clf = PixelLogisticRegression(
        max_pixels=MAX_PIXELS[run.scale.name], class_weight=class_weight, random_state=run.args.seed
    )
    clf.fit(images[..., 0], masks[..., 0])
    result = {"coefficient": float(clf.coef_[0]), "intercept": clf.intercept_}
    for split in ("val", "test"):
        images, masks = run.arrays(split)
        result[split] = common.segmentation_metrics(clf.predict_proba(images[..., 0]), masks)
    return result


def main(argv=None) -> None:
    args = common.build_parser(__doc__).parse_args(argv)
    scale = common.SCALES[args.mode]
    run = common.Run(SECTION, TITLE, args, scale)
    images, masks = run.arrays("train")
    positive_share = float(masks.mean())

    run.sub_run("sklearn_unweighted", lambda folder: fit_sklearn(run, None))
    run.sub_run("sklearn_balanced", lambda folder: fit_sklearn(run, "balanced"))
    weight = (1.0 - positive_share) / max(positive_share, 1e-6)
    run.sub_run(
        "keras_weighted",
        lambda folder: run.train_and_evaluate(
            folder,
            lambda: build_model("logistic_regression", input_shape=(None, None, 1)),
            lambda: losses.WeightedBinaryCrossentropy(weight),
            1e-2,
        ),
    )
    paper = "baseline; no figure reported"
    findings = [run.collapse_row(name, label, paper) for name, label in LABELS.items()]
    notes = (
        f"Tumour pixels are {100 * positive_share:.3f} % of the training images. With intensity "
        "as the only feature a linear classifier can only threshold brightness: unweighted, it "
        "predicts no tumour anywhere; weighted, it marks every bright (dense) pixel. Keras "
        f"model: positive weight {weight:.0f} (the inverse class ratio), Adam 1e-2, "
        f"{scale.epochs} epoch(s)."
    )
    run.write(findings, notes, run.figures_for(LABELS, triplets=("keras_weighted",)))


if __name__ == "__main__":
    main()
