"""Section V.E: the data or the model? A breast-outline sanity task, and YaroslavNet transfer.

The paper (V.E): to tell a bug in the models from a problem in the data, the authors asked the
same models to segment the whole breast instead of the tumour, and they "were able to accomplish
this task with considerable accuracy" (judged by eye). They then tried transfer learning from
YaroslavNet, a patch classifier trained on CBIS-DDSM (s10_YaroslavNet.h5): "the model still
converged to a local minima of not predicting a mask".

This script trains the UNet with binary cross-entropy on two targets from the same images, the
breast region (threshold + largest component) and the tumour mask, and measures both; then the
YaroslavNet segmenter (the paper's dense head, or a fully convolutional one) from random
weights or from the published file with `--yaroslav-weights PATH`.

    python experiments/section_ve_data_vs_model.py [--quick] [--yaroslav-weights s10_YaroslavNet.h5]
"""

from __future__ import annotations

from pathlib import Path

import common
import numpy as np
from scipy import ndimage

from mammoseg import losses
from mammoseg.models import build_model

SECTION, TITLE = "V.E", "Data vs the model: breast-outline task and YaroslavNet transfer"
LEARNING_RATE = {"quick": 1e-3, "default": 1e-3, "paper": 1e-4}


def breast_region(image: np.ndarray, threshold: float = 0.08) -> np.ndarray:
    """The breast as the largest bright connected component, holes filled (uint8 mask)."""
    labels, count = ndimage.label(image > threshold)
    if count == 0:
        return np.zeros(image.shape, np.uint8)
    sizes = ndimage.sum(np.ones_like(labels), labels, index=range(1, count + 1))
    largest = labels == (int(np.argmax(sizes)) + 1)
    return ndimage.binary_fill_holes(largest).astype(np.uint8)


def main(argv=None) -> None:
    parser = common.build_parser(__doc__)
    parser.add_argument(
        "--yaroslav-weights",
        type=Path,
        default=None,
        help="the published s10_YaroslavNet.h5 (default: random start)",
    )
    parser.add_argument("--yaroslav-head", choices=("dense", "fcn"), default="fcn")
    args = parser.parse_args(argv)
    scale = common.SCALES[args.mode]
    run = common.Run(SECTION, TITLE, args, scale)
    shape = (scale.image_size, scale.image_size, 1)
    lr = LEARNING_RATE[scale.name]

    def unet():
        return build_model(
            "unet", input_shape=shape, base_filters=scale.base_filters, depth=scale.depth
        )

    tumour_arrays = {split: run.arrays(split) for split in ("train", "val", "test")}
    # The breast task: same images, the breast region as the target.
    for split, (images, _) in tumour_arrays.items():
        outline = np.stack([breast_region(im[..., 0]) for im in images])[..., None]
        run._arrays[split] = (images, outline)
    run.sub_run(
        "unet_breast_outline",
        lambda folder: run.train_and_evaluate(
            folder, unet, lambda: losses.WeightedBinaryCrossentropy(1.0), lr
        ),
    )
    run._arrays.update(tumour_arrays)
    run.sub_run(
        "unet_tumour",
        lambda folder: run.train_and_evaluate(
            folder, unet, lambda: losses.WeightedBinaryCrossentropy(1.0), lr
        ),
    )

    weights = str(args.yaroslav_weights) if args.yaroslav_weights else None
    run.sub_run(
        "yaroslav_transfer",
        lambda folder: run.train_and_evaluate(
            folder,
            lambda: build_model(
                "yaroslav_segmenter", input_shape=shape, head=args.yaroslav_head, weights=weights
            ),
            lambda: losses.WeightedBinaryCrossentropy(1.0),
            lr,
        ),
    )
    start = "published weights" if weights else "random start (no weights file given)"
    outline = run.results.get("unet_breast_outline", {})
    if outline.get("status") == "ok":
        m = outline["test"]
        ours = (
            f"test Dice/img {common.fmt(m['dice_per_image_mean'])}, "
            f"fg IoU {common.fmt(m['foreground_iou'])}"
        )
        good = (m["dice_per_image_mean"] or 0) > 0.8
        row = (
            "UNet, breast outline",
            "learned 'with considerable accuracy' (by eye)",
            ours,
            "reproduced: the model learns a large target" if good else "not reproduced",
        )
    else:
        row = ("UNet, breast outline", "learned", "failed: " + outline.get("error", "?"), "—")
    findings = [
        row,
        run.collapse_row("unet_tumour", "UNet, tumour (same images)", "only zeros"),
        run.collapse_row(
            "yaroslav_transfer",
            f"YaroslavNet segmenter ({args.yaroslav_head} head, {start})",
            "converged to no mask",
        ),
    ]
    notes = (
        "Same architecture, same loss, same images, two targets: the breast covers about a third "
        "of the image, a mass well under 1 %. When the breast is learned and the mass is not, the "
        "model and the code are fine and the imbalance is the problem (see section V.C for "
        "losses that handle it). The published YaroslavNet weights cannot be downloaded here; "
        "pass the file with --yaroslav-weights to start from it."
    )
    labels = {
        "unet_breast_outline": "UNet, breast outline",
        "unet_tumour": "UNet, tumour",
        "yaroslav_transfer": "YaroslavNet segmenter",
    }
    run.write(findings, notes, run.figures_for(labels, triplets=("unet_tumour",)))


if __name__ == "__main__":
    main()
