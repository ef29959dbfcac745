"""Section V.D: rotation augmentation and oversampling of large tumours.

The paper (V.D): oversampling "above average large" tumours and rotating images with Keras'
`ImageDataGenerator` still gave models that predicted no mask at all; training only on the larger,
rounder tumours (the authors' code: MIAS lines with radius > 50, 32 images, rotation_range=360,
facts.md §1) to over-fit them also converged to empty masks.

This script trains the UNet with binary cross-entropy, as the paper did at that point, under the
same budget: no augmentation; rotation (rotation_range 360); oversampling (large tumours ×3);
both; and the authors' large-tumour subset with rotation. Patients never cross splits.

    python experiments/section_vd_augmentation_oversampling.py [--quick | --paper-scale]
"""

from __future__ import annotations

import common

from mammoseg import losses
from mammoseg.data import RotationAugment, authors_large_tumour_subset, oversample
from mammoseg.models import build_model

SECTION, TITLE = "V.D", "Data augmentation (rotations) and oversampling of large tumours"
LEARNING_RATE = {"quick": 1e-3, "default": 1e-3, "paper": 1e-4}
VARIANTS = {
    "plain": "no augmentation",
    "rotation": "rotation_range 360",
    "oversampling": "large tumours x3",
    "rotation_oversampling": "rotation + oversampling",
    "authors_subset": "authors: radius > 50 only, rotation",
}


def main(argv=None) -> None:
    args = common.build_parser(__doc__).parse_args(argv)
    scale = common.SCALES[args.mode]
    run = common.Run(SECTION, TITLE, args, scale)
    shape = (scale.image_size, scale.image_size, 1)
    train = run.splits()["train"]
    rotation = RotationAugment(rotation_range=360, fill_mode="constant")
    # Radii are in each image's own pixels; 50 px at MIAS's 1024² is the authors' threshold.
    native = train[0].shape[0] if train and train[0].shape else 1024
    large = 50.0 * native / 1024.0
    subset = authors_large_tumour_subset(train, min_radius=large)
    if not subset:  # tiny runs: keep the largest lesions so the variant still trains
        subset = sorted(train, key=lambda r: -max(r.lesion_radii(None), default=0))[:4]
    datasets = {
        "plain": lambda: run.dataset("train"),
        "rotation": lambda: run.dataset("train", augment=rotation),
        "oversampling": lambda: run.dataset("train", records=oversample(train, large, 3)),
        "rotation_oversampling": lambda: run.dataset(
            "train", augment=rotation, records=oversample(train, large, 3)
        ),
        "authors_subset": lambda: run.dataset("train", augment=rotation, records=subset),
    }
    for name in VARIANTS:
        run.sub_run(
            name,
            lambda folder, name=name: run.train_and_evaluate(
                folder,
                lambda: build_model(
                    "unet", input_shape=shape, base_filters=scale.base_filters, depth=scale.depth
                ),
                lambda: losses.WeightedBinaryCrossentropy(1.0),
                LEARNING_RATE[scale.name],
                train_data=datasets[name](),
            ),
        )
    paper = {
        "plain": "empty masks (V.B)",
        "rotation": "no mask at all",
        "oversampling": "no mask at all",
        "rotation_oversampling": "no mask at all",
        "authors_subset": "could not even over-fit: empty masks",
    }
    findings = [run.collapse_row(n, label, paper[n]) for n, label in VARIANTS.items()]
    notes = (
        f"Training images: {len(train)}; oversampled set: {len(oversample(train, large, 3))} "
        f"(lesions with radius > {large:g} px in the native images repeated 3 times); the "
        f"authors' subset: {len(subset)} image(s). The authors used every lesion kind for the "
        "subset and zipped two `ImageDataGenerator`s with a shared seed; `RotationAugment` "
        "applies one transform to image and mask. Evaluation: val/test at threshold 0.5."
    )
    run.write(findings, notes, run.figures_for(VARIANTS, triplets=("rotation_oversampling",)))


if __name__ == "__main__":
    main()
