"""Section V.D: rotation augmentation and oversampling of large tumours.

The paper (V.D): oversampling "above average large" tumours and rotating images with Keras'
`ImageDataGenerator` still gave models that predicted no mask at all; training only on the larger,
rounder tumours (the authors' code: MIAS lines with radius > 50 of every lesion kind, 32 images,
rotation_range=360, batch 1, 300 steps × 10 epochs; facts.md §1) to over-fit them also converged
to empty masks.

This script trains the UNet with binary cross-entropy, as the paper did at that point, under the
same budget: no augmentation; rotation (rotation_range 360, `fill_mode="nearest"` as
`ImageDataGenerator`'s default); oversampling (records whose lesion is above the mean size
repeated ×3, the paper's "above average" rule); both; and the authors' large-tumour subset
(radius > 50 px at 1024²) with rotation. The subset is chosen by the lesion kinds its masks are
drawn with (`--kinds`; every kind under `--protocol authors`), so no subset image trains on an
empty mask. Whether the subset could be over-fitted is measured on its own training images.

Schedule: `--paper-scale` runs the authors' (batch 1, 300 steps × 10 epochs = 3,000 images per
variant, the training set repeated); the default a scaled one (batch 8, 30 steps × 10 epochs =
2,400 images at 256²); `--quick` two steps.

    python experiments/section_vd_augmentation_oversampling.py [--quick | --paper-scale]
        [--max-steps N]

`--max-steps N` trains every variant for one epoch of N steps: the paper-scale path on a CPU.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import common
import keras
import numpy as np

from mammoseg import losses
from mammoseg.data import Record, RotationAugment, authors_large_tumour_subset, oversample
from mammoseg.data.oversampling import lesion_size
from mammoseg.models import build_model
from mammoseg.training import predict_probabilities

SECTION, TITLE = "V.D", "Data augmentation (rotations) and oversampling of large tumours"
LEARNING_RATE = {"quick": 1e-3, "default": 1e-3, "paper": 1e-4}
AUTHORS_MIN_RADIUS = 50.0  # px at MIAS's 1024², the authors' subset rule
OVERSAMPLING_FACTOR = 3
VARIANTS = {
    "plain": "no augmentation",
    "rotation": "rotation_range 360",
    "oversampling": "above-average lesions x3",
    "rotation_oversampling": "rotation + oversampling",
    "authors_subset": "authors: radius > 50 only, rotation",
}


@dataclass(frozen=True, kw_only=True)
class Schedule:
    """Batch size, epochs and steps per epoch of every variant (the training set repeated)."""

    batch_size: int | None  # None: the mode's
    epochs: int
    steps: int


SCHEDULES = {
    "quick": Schedule(batch_size=None, epochs=1, steps=2),
    "default": Schedule(batch_size=8, epochs=10, steps=30),  # scaled: 2,400 images at 256²
    "paper": Schedule(batch_size=1, epochs=10, steps=300),  # the authors': 3,000 images
}


def large_tumour_subset(
    train: Sequence[Record], *, kinds: Sequence[str] | None, min_radius: float
) -> list[Record]:
    """The authors' subset, chosen by the lesion kinds its masks are drawn with.

    Tiny runs with no lesion that large keep the (up to) four records with the largest
    lesions of ``kinds``, so the variant still trains on lesions.

    Example:
        >>> large_tumour_subset(train, kinds=None, min_radius=50.0)  # doctest: +SKIP
    """
    subset = authors_large_tumour_subset(train, min_radius=min_radius, kinds=kinds)
    if not subset:
        with_lesion = [r for r in train if r.has_lesion(kinds)]
        subset = sorted(with_lesion, key=lambda r: -lesion_size(r, "radius", kinds))[:4]
    return subset


class TrainingImagesCheck(keras.callbacks.Callback):
    """The over-fit check: metrics on the (unaugmented) training images when training ends."""

    def __init__(self, images: np.ndarray, masks: np.ndarray) -> None:
        super().__init__()
        self.images, self.masks = images, masks
        self.result: dict | None = None

    def on_train_end(self, logs=None) -> None:
        probabilities = predict_probabilities(self.model, self.images)
        self.result = common.segmentation_metrics(probabilities, self.masks)


def settings_note(run: common.Run, schedule: Schedule, max_steps: int | None) -> str:
    """Which of the paper's settings this run used, and which it could not."""
    scale = run.scale
    used = [
        "binary cross-entropy, Adam, the UNet",
        "rotation_range 360 with fill_mode 'nearest' (ImageDataGenerator's default)",
        "the authors' subset rule (radius > 50 px at 1024², every lesion kind under --kinds all)",
        "the paper's 'above average' oversampling rule",
    ]
    not_used = []
    if scale.name == "paper" and max_steps is None:
        used.append("batch 1, 300 steps × 10 epochs (the authors' schedule), 1024², the full UNet")
    else:
        not_used.append(
            f"the authors' schedule (batch 1, 300 steps × 10 epochs): batch {scale.batch_size}, "
            f"{schedule.steps} steps × {schedule.epochs} epoch(s) here"
        )
    if scale.name != "paper":
        not_used.append(
            f"1024² and the full UNet: {scale.image_size}², {scale.base_filters} base filters, "
            f"depth {scale.depth}"
        )
    not_used.append(
        "two ImageDataGenerators zipped with a shared seed: one transform is applied to image "
        "and mask together (`RotationAugment`)"
    )
    if run.data_name != "mias":
        not_used.append(f"MIAS images ({run.data_name} here): the subset is not their 32 images")
    return common.paper_settings_paragraph(used, not_used)


def main(argv=None) -> None:
    parser = common.build_parser(__doc__)
    args = parser.parse_args(argv)
    schedule = SCHEDULES[args.mode]
    if args.max_steps is not None:
        schedule = replace(schedule, epochs=1, steps=args.max_steps)
    scale = common.SCALES[args.mode]
    scale = replace(
        scale, epochs=schedule.epochs, batch_size=schedule.batch_size or scale.batch_size
    )
    run = common.Run(SECTION, TITLE, args, scale)
    scale = run.scale
    shape = (scale.image_size, scale.image_size, 1)

    # === the training sets ===
    train = run.splits()["train"]
    rotation = RotationAugment(rotation_range=360)  # fill_mode "nearest", as Keras' default
    # The subset's masks are drawn with the kinds it is chosen by: --kinds under our protocol,
    # every kind under the authors' (their masks hold every kind).
    kinds = None if args.protocol == "authors" else run.kinds
    # Radii are in each image's own pixels; 50 px at MIAS's 1024² is the authors' threshold.
    native = train[0].shape[0] if train and train[0].shape else 1024
    large = AUTHORS_MIN_RADIUS * native / 1024.0
    subset = large_tumour_subset(train, kinds=kinds, min_radius=large)
    oversampled = oversample(train, None, OVERSAMPLING_FACTOR, kinds=kinds)
    datasets = {
        "plain": lambda: run.dataset("train"),
        "rotation": lambda: run.dataset("train", augment=rotation),
        "oversampling": lambda: run.dataset("train", records=oversampled),
        "rotation_oversampling": lambda: run.dataset(
            "train", augment=rotation, records=oversampled
        ),
        "authors_subset": lambda: run.dataset("train", augment=rotation, records=subset),
    }
    subset_images, subset_masks = common.decode_split(
        subset, scale.image_size, kinds=kinds, protocol=args.protocol
    )

    # === train every variant ===
    def train_variant(folder, name):
        check = TrainingImagesCheck(subset_images[..., None], subset_masks[..., None])
        if name == "authors_subset":
            run.callbacks.append(check)
        try:
            result = run.train_and_evaluate(
                folder,
                lambda: build_model(
                    "unet", input_shape=shape, base_filters=scale.base_filters, depth=scale.depth
                ),
                lambda: losses.WeightedBinaryCrossentropy(1.0),
                LEARNING_RATE[scale.name],
                train_data=datasets[name]().repeat(),
                steps_per_epoch=schedule.steps,
            )
        finally:
            if check in run.callbacks:
                run.callbacks.remove(check)
        if name == "authors_subset":
            result["train_subset"] = check.result
            result["subset_images"] = len(subset)
        return result

    for name in VARIANTS:
        run.sub_run(name, lambda folder, name=name: train_variant(folder, name))

    # === report ===
    paper = {
        "plain": "empty masks (V.B)",
        "rotation": "no mask at all",
        "oversampling": "no mask at all",
        "rotation_oversampling": "no mask at all",
        "authors_subset": "could not even over-fit: empty masks",
    }
    findings = [run.collapse_row(n, label, paper[n]) for n, label in VARIANTS.items()]
    findings.append(overfit_row(run.results.get("authors_subset", {})))
    notes = (
        f"Training images: {len(train)}; oversampled set: {len(oversampled)} (records whose "
        f"largest lesion is above the mean over records with a lesion repeated "
        f"{OVERSAMPLING_FACTOR} times); the authors' subset: {len(subset)} image(s) with a "
        f"lesion of radius > {large:g} px in the native images, masks drawn with the same "
        f"kinds. Schedule: batch {scale.batch_size}, {schedule.steps} steps × "
        f"{schedule.epochs} epoch(s) per variant, the training set repeated. Evaluation: "
        "val/test at threshold 0.5; the over-fit check on the subset's own training images "
        "(unrotated).\n\n" + settings_note(run, schedule, args.max_steps)
    )
    run.write(findings, notes, run.figures_for(VARIANTS, triplets=("rotation_oversampling",)))


def overfit_row(result: dict) -> tuple[str, str, str, str]:
    """The paper's "could not even over-fit", measured on the subset's training images."""
    label = "authors' subset, over-fit check on its own training images"
    metrics = result.get("train_subset")
    if result.get("status") != "ok" or not metrics:
        return (label, "could not even over-fit", "failed: " + result.get("error", "?"), "—")
    ours = (
        f"{metrics['n_images']} training images: Dice/img "
        f"{common.fmt(metrics['dice_per_image_mean'])}, empty "
        f"{common.fmt(metrics['empty_prediction_rate'], 2)}"
    )
    overfit = (metrics["dice_per_image_mean"] or 0) >= 0.5
    verdict = "over-fitted (Dice >= 0.5)" if overfit else "reproduced: not over-fitted"
    return (label, "could not even over-fit", ours, verdict)


if __name__ == "__main__":
    main()
