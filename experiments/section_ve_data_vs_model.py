"""Section V.E: the data or the model? A breast-outline sanity task, and YaroslavNet transfer.

The paper (V.E): to tell a bug in the models from a problem in the data, the authors asked the
same models to segment the whole breast instead of the tumour, and they "were able to accomplish
this task with considerable accuracy" (judged by eye). They then tried transfer learning from
YaroslavNet, a patch classifier trained on CBIS-DDSM (s10_YaroslavNet.h5): "the model still
converged to a local minima of not predicting a mask".

This script trains the UNet with binary cross-entropy on two targets from the same images, the
breast region (threshold + largest component) and the tumour mask, measures both and shows the
breast-task predictions (the paper judged that task by eye); then two YaroslavNet segmenters:

* the paper's (`yaroslav_transfer`): YaroslavNet without its last layer ("predictions") and the
  authors' head Dense(10, relu) → Dense(H·W) → reshape → Dense(1, sigmoid) (facts.md §1), from
  the published `s10_YaroslavNet.h5` when `--yaroslav-weights PATH` is given (random otherwise,
  and the report says so);
* ours (`yaroslav_fcn`): the same backbone under a fully convolutional head, a separate row.

Both are fed the input YaroslavNet was trained on (end2end-all-conv: pixels scaled to a
maximum of 255, the training mean 59.6 subtracted; `YAROSLAV_FEATUREWISE_MEAN`).

    python experiments/section_ve_data_vs_model.py [--quick | --paper-scale]
        [--yaroslav-weights s10_YaroslavNet.h5] [--max-steps N]

`--max-steps N` trains every model for one epoch of N steps: the paper-scale path on a CPU.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import common
import numpy as np
import reporting
from scipy import ndimage

from mammoseg import losses, plots
from mammoseg.models import build_model
from mammoseg.models.yaroslav import YAROSLAV_FEATUREWISE_MEAN

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
    args = parser.parse_args(argv)
    scale = common.SCALES[args.mode]
    if args.max_steps is not None:
        scale = replace(scale, epochs=1)
    run = common.Run(SECTION, TITLE, args, scale)
    steps = args.max_steps
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
    breast_val = run._arrays["val"]
    run.sub_run(
        "unet_breast_outline",
        lambda folder: run.train_and_evaluate(
            folder, unet, lambda: losses.WeightedBinaryCrossentropy(1.0), lr, steps_per_epoch=steps
        ),
    )
    run._arrays.update(tumour_arrays)
    run.sub_run(
        "unet_tumour",
        lambda folder: run.train_and_evaluate(
            folder, unet, lambda: losses.WeightedBinaryCrossentropy(1.0), lr, steps_per_epoch=steps
        ),
    )

    weights = str(args.yaroslav_weights) if args.yaroslav_weights else None
    for name, head in (("yaroslav_transfer", "dense"), ("yaroslav_fcn", "fcn")):
        run.sub_run(
            name,
            lambda folder, head=head: run.train_and_evaluate(
                folder,
                lambda: build_model(
                    "yaroslav_segmenter",
                    input_shape=shape,
                    head=head,
                    weights=weights,
                    featurewise_mean=YAROSLAV_FEATUREWISE_MEAN,
                ),
                lambda: losses.WeightedBinaryCrossentropy(1.0),
                lr,
                steps_per_epoch=steps,
            ),
        )
    start = "published weights" if weights else "random start (no weights file given)"
    breast_figure = plot_breast_predictions(run, *breast_val)
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
            f"the paper's: YaroslavNet − predictions + Dense 10 → Dense H·W → Dense 1 ({start})",
            "converged to no mask",
        ),
        run.collapse_row(
            "yaroslav_fcn",
            f"ours, not the paper's: YaroslavNet + fully convolutional head ({start})",
            "—",
        ),
    ]
    notes = (
        "Same architecture, same loss, same images, two targets: the breast covers about a third "
        "of the image, a mass well under 1 %. When the breast is learned and the mass is not, the "
        "model and the code are fine and the imbalance is the problem (see section V.C for "
        "losses that handle it). The published YaroslavNet weights cannot be downloaded here; "
        "pass the file with --yaroslav-weights to start from it.\n\n"
        + settings_note(run, weights, steps)
    )
    labels = {
        "unet_breast_outline": "UNet, breast outline",
        "unet_tumour": "UNet, tumour",
        "yaroslav_transfer": "YaroslavNet, the paper's dense head",
        "yaroslav_fcn": "YaroslavNet, fcn head (ours)",
    }
    figures = run.figures_for(labels, triplets=("unet_tumour",))
    run.write(findings, notes, figures + [f for f in (breast_figure,) if f])


def plot_breast_predictions(run: common.Run, images: np.ndarray, outline: np.ndarray) -> str:
    """The breast task's validation predictions beside their truth (judged by eye in the
    paper); returns the file name, or "" when that sub-run did not finish."""
    path = run.dir / "unet_breast_outline" / "val_probabilities.npy"
    if run.results.get("unet_breast_outline", {}).get("status") != "ok" or not path.is_file():
        return ""
    pick = reporting.showcase(outline)  # the images `train_and_evaluate` saved, in its order
    probabilities = np.load(path).astype(np.float32)
    name = "fig_breast_outline_predictions.png"
    plots.plot_triplets(
        images[pick, ..., 0],
        outline[pick, ..., 0],
        probabilities[..., 0] if probabilities.ndim == 4 else probabilities,
        run.dir / name,
        titles=["breast task, val image"] * len(pick),
    )
    return name


def settings_note(run: common.Run, weights: str | None, max_steps: int | None) -> str:
    """Which of the paper's settings this run used, and which it could not."""
    scale = run.scale
    used = [
        "binary cross-entropy, Adam",
        "YaroslavNet's published architecture (5,904,357 parameters) without `predictions`, "
        "under the authors' Dense 10 → Dense H·W → Dense 1 sigmoid head",
        "YaroslavNet's training input: pixels × 255 − 59.6",
    ]
    if scale.name == "paper":
        used.append(f"{scale.image_size}² inputs, the paper's UNet (64 filters, depth 4)")
    if weights:
        used.append(f"the published weights `{weights}`")
    not_used = []
    if not weights:
        not_used.append("the published `s10_YaroslavNet.h5` (not given): random start")
    if scale.name != "paper":
        not_used.append(
            f"1024² inputs and the full UNet: {scale.image_size}², {scale.base_filters} "
            f"base filters, depth {scale.depth}"
        )
    if scale.batch_size != 1:
        not_used.append(f"batch 1 for YaroslavNet (batch {scale.batch_size} here)")
    not_used.append(
        "histogram equalisation of YaroslavNet's training patches (end2end-all-conv's patch "
        "script used it; these images are not equalised)"
    )
    if max_steps is not None:
        not_used.append(f"the full schedule: one epoch of {max_steps} step(s) (--max-steps)")
    return common.paper_settings_paragraph(used, not_used)


if __name__ == "__main__":
    main()
