"""Section V.B: semantic segmentation with a shallow CNN and a UNet under plain cross-entropy.

The paper (V.B): a shallow CNN (5×5×16, 5×5×8, max-pool 50×50, dropout 0.25, 5×5×16, two dense
layers, per-pixel softmax) and then a standard UNet, both trained with pixel-wise binary
cross-entropy, "could not predict anything other than 0s", even after a hyper-parameter search.
The paper judged models by the mean IoU over both classes, which a model that predicts nothing
scores about 0.5 on; this script reports it beside foreground IoU, Dice and the share of images
with a mass whose prediction is empty.

    python experiments/section_vb_semantic_segmentation.py [--quick | --paper-scale] [--data ...]
"""

from __future__ import annotations

import common
import keras
import tensorflow as tf

from mammoseg import losses
from mammoseg.models import build_model

SECTION, TITLE = "V.B", "Semantic segmentation: shallow CNN and UNet with cross-entropy"
LEARNING_RATE = {"quick": 1e-3, "default": 1e-3, "paper": 1e-4}
LABELS = {"shallow_cnn": "shallow CNN, softmax + cross-entropy", "unet": "UNet, BCE"}


def per_pixel_classes(images, masks):
    """The shallow CNN predicts a (B, H, W, 2) softmax: its targets are class indices (B, H, W)."""
    return images, tf.cast(masks[..., 0], tf.int32)


def main(argv=None) -> None:
    args = common.build_parser(__doc__).parse_args(argv)
    scale = common.SCALES[args.mode]
    run = common.Run(SECTION, TITLE, args, scale)
    shape = (scale.image_size, scale.image_size, 1)
    lr = LEARNING_RATE[scale.name]

    run.sub_run(
        "shallow_cnn",
        lambda folder: run.train_and_evaluate(
            folder,
            lambda: build_model("shallow_cnn", input_shape=shape, pool_size=min(50, shape[0] // 2)),
            keras.losses.SparseCategoricalCrossentropy,
            lr,
            target_fn=per_pixel_classes,
        ),
    )
    run.sub_run(
        "unet",
        lambda folder: run.train_and_evaluate(
            folder,
            lambda: build_model(
                "unet", input_shape=shape, base_filters=scale.base_filters, depth=scale.depth
            ),
            lambda: losses.WeightedBinaryCrossentropy(1.0),
            lr,
        ),
    )
    paper = "only zeros, whatever the hyper-parameters"
    findings = [run.collapse_row(name, label, paper) for name, label in LABELS.items()]
    notes = (
        "The shallow CNN follows the paper's layer list (the authors' code had 4 filters in the "
        "third convolution, the paper says 16; we use 16). Its max-pool is 50×50 as in the paper "
        "(halved on inputs smaller than 100 px). Both models: Adam "
        f"{lr:g}, {scale.epochs} epoch(s), threshold 0.5 on the tumour probability."
    )
    run.write(findings, notes, run.figures_for(LABELS, triplets=("shallow_cnn", "unet")))


if __name__ == "__main__":
    main()
