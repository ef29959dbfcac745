"""Section V.F: Mask R-CNN with transfer learning, scored with both mAP definitions.

The paper (IV.F, V): matterport's Mask R-CNN, started from COCO weights (ImageNet weights did
worse), trained on the heads and then on all layers, gave the best result: "mean AP over 50
images in our validation set" 0.0786 — most likely the per-image mean of matterport's
`compute_ap_range` (IoU 0.50:0.05:0.95), see facts.md §1. The model predicted "multiple masks
that do not consist of the tumor".

This script trains `mammoseg.models.mask_rcnn.MaskRCNN` with the authors' schedule (heads, then
all layers), detects on 50 validation images that all have a lesion (or all there are, and the
report says how many) and reports matterport's mAP beside the paper's, the COCO mask and box
AP (pycocotools) that other papers quote, FROC, a precision-recall curve at IoU 0.5 (Fig. 6),
the loss curves and truth-vs-prediction figures (Fig. 5). Given both a COCO and an ImageNet
weights file (`--weights` twice), it trains from each and plots both loss curves together, as
Fig. 6 (right) compares them.

    python experiments/section_vf_mask_rcnn.py [--quick | --paper-scale]
        [--weights coco:mask_rcnn_coco.h5] [--weights imagenet:resnet50_..._notop.h5]
        [--max-steps N]

The default (CPU) run uses a narrow ResNet ("resnet_tiny") and narrow heads at 256², random
flips and quarter turns, and trains in about 15-20 minutes on two cores. Without a weights file
there are no pretrained features to protect, so it skips the heads stage and trains every layer
for 60 epochs at matterport's learning rate 0.001 (at 0.01 the RPN's shared ReLU conv died on
P4-P6 and the RPN learnt nothing). `--paper-scale` is the authors' configuration (ResNet-50,
images loaded at 1024², scaled ×2 to 2048² and cropped to 512², 20 + 20 epochs; detection one
image at a time at 2048², padded to multiples of 64, as matterport's nucleus sample's inference
config). `--max-steps N` trains N steps per stage (one heads epoch and one all-layers epoch
with pretrained weights, one epoch without): the paper-scale path on a CPU. A weights file
needs a full ResNet, so
`--weights coco:/imagenet:` switches the backbone to ResNet-50. `--set KEY=VALUE` overrides a
mode key (`size`, `total`, `lr`, …) or any Config field (`RPN_NMS_THRESHOLD=0.7`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, replace
from pathlib import Path

import common
import numpy as np
from vf_figures import plot_examples, plot_froc, plot_losses, plot_pr

from mammoseg.checks import check_positive_int
from mammoseg.metrics import froc, froc_curve
from mammoseg.models.mask_rcnn import (
    COCO_HEADS,
    MammoConfig,
    MaskRCNN,
    RandomFlips,
    RecordDataset,
    evaluate,
    utils,
)

SECTION, TITLE = "V.F", "Mask R-CNN: transfer learning, matterport and COCO AP"
PAPER_MAP = 0.0786
VAL_IMAGES = 50


@dataclass(frozen=True, kw_only=True)
class Mode:
    """Sizes and schedule of one run mode; each field can be overridden with ``--set``.

    Raises:
        ValueError: a field out of range, naming it (``--set total=0``).

    Example:
        >>> replace(MODES["quick"], total=3).total
        3
    """

    size: int  # side of the (square) input
    load_size: int  # side the images are loaded at; above `size`: scaled ×2, then `size` crops
    backbone: str  # "resnet_tiny" or "resnet50" (a weights file needs "resnet50")
    narrow: bool  # narrow FPN, RPN and heads (resnet_tiny only)
    heads: int  # epochs of the heads stage (skipped without pretrained weights)
    total: int  # epochs in total, the heads stage included
    steps: int | None  # steps per epoch (None: one pass over the training images)
    lr: float  # learning rate
    val_images: int  # validation images detected and scored
    augment: bool  # random flips and quarter turns when training

    def __post_init__(self) -> None:
        for name in ("size", "load_size", "total", "val_images"):
            check_positive_int(name, getattr(self, name))
        if self.load_size < self.size:
            raise ValueError(
                f"`load_size` must be at least `size` ({self.size}), received {self.load_size}"
            )
        if self.heads != 0:
            check_positive_int("heads", self.heads)
        if self.steps is not None:
            check_positive_int("steps", self.steps)
        if isinstance(self.lr, bool) or not isinstance(self.lr, (int, float)) or self.lr <= 0:
            raise ValueError(f"`lr` must be a positive number, received {self.lr!r}")
        for name in ("narrow", "augment"):
            value = getattr(self, name)
            if not isinstance(value, bool):
                raise ValueError(f"`{name}` must be true or false, received {value!r}")


MODES = {
    "quick": Mode(
        size=64,
        load_size=64,
        backbone="resnet_tiny",
        narrow=True,
        heads=1,
        total=2,
        steps=2,
        lr=0.01,
        val_images=4,
        augment=True,
    ),
    "default": Mode(
        size=256,
        load_size=256,
        backbone="resnet_tiny",
        narrow=True,
        heads=3,
        total=60,
        steps=100,
        lr=0.001,
        val_images=VAL_IMAGES,
        augment=True,
    ),
    "paper": Mode(
        size=512,
        load_size=1024,  # the authors' 1024² images, doubled to 2048², then 512² crops
        backbone="resnet50",
        narrow=False,
        heads=20,
        total=40,
        steps=None,
        lr=0.001,
        val_images=VAL_IMAGES,
        augment=False,
    ),
}
MODE_FIELDS = tuple(field.name for field in dataclasses.fields(Mode))


# What was tried on the way to the default run (phantom, seed 0, 50 validation images, 16 with
# a mass); shown under the default run's report.
DEVELOPMENT = [
    "## Development runs on the phantom (same split, seed 0; not measured by this run)",
    "",
    "| settings | matterport mAP@[.5:.95] | mAP@0.5 | COCO mask AP / AP50 | what we saw |",
    "|---|---|---|---|---|",
    "| first default: heads 3 epochs, then all to 20, SGD 0.01, RPN positives at IoU 0.7, "
    "bfloat16 RPN logits (6 min) | 0.000 | 0.000 | 0.000 / 0.000 | the RPN's shared ReLU conv "
    "was 99.9 % zeros on P4-P6 and 91 % on P2, so thousands of anchors tied on one score (59 "
    "distinct values among the best 3,000 with bfloat16 logits) and top-k took the top-left "
    "corner's 3-px anchors as proposals |",
    "| + flips and quarter turns, RPN positives at IoU 0.5 (SGD 0.01) | 0.000 | 0.000 | "
    "0.000 / 0.000 | the same dead RPN |",
    "| RPN and head outputs in float32, all layers from the start, SGD 0.001, 60 epochs "
    "(the default mode then, 18.6 min wall time) | 0.120 | 0.240 | 0.079 / 0.197 | RPN alive "
    "(about 60 % zeros on every level); AP > 0 on 5 of the 7 masses of radius >= 67 px "
    "(at 1024²), on none of the 6 below 35 px |",
    "| the same at 320² (18.8 min) | 0.059 | 0.125 | 0.070 / 0.158 | no better; with one run "
    "each, resolution cannot be told apart from run-to-run spread |",
]


def make_config(
    mode: Mode,
    n_train: int,
    *,
    backbone: str,
    pretrained: bool,
    overrides: dict | None = None,
) -> MammoConfig:
    """The authors' `MammoConfig`, shrunk for a CPU outside paper scale; ``overrides`` (Config
    fields, from ``--set``) come last.

    matterport freezes batch norm (TRAIN_BN False), which suits a pretrained backbone; from
    random weights the un-normalised network collapses to one output for every ROI, so batch
    norm learns then.
    """
    if mode.narrow and backbone == "resnet_tiny":
        fields = dict(
            TOP_DOWN_PYRAMID_SIZE=64,
            RPN_CONV_FILTERS=128,
            MASK_HEAD_FILTERS=64,
            FPN_CLASSIF_FC_LAYERS_SIZE=256,
            POST_NMS_ROIS_TRAINING=500,
            POST_NMS_ROIS_INFERENCE=500,
            PRE_NMS_LIMIT=3000,
            TRAIN_ROIS_PER_IMAGE=64,
        )
    else:
        fields = {}
    if mode.load_size == mode.size:  # whole images, no ×2 crop, below paper scale
        fields.update(IMAGE_RESIZE_MODE="square", IMAGE_MIN_SCALE=0)
        # From scratch the RPN soon proposes only a few bright spots and the heads stop seeing
        # any lesion (their losses fall to 0); Detectron adds the truth boxes to the proposals.
        fields.update(ADD_GT_TO_PROPOSALS=True)
        # Masses are 5-73 px at 256², between the one-scale-per-level anchors: the best anchor
        # of a mass has IoU 0.57 (median) and only 9 % of masses have any anchor at 0.7, so at
        # matterport's 0.7 the RPN had one positive per mass (its best anchor); at 0.5, a
        # median of two.
        fields.update(RPN_POSITIVE_IOU=0.5)
    images_per_gpu = 6 if mode.size >= 512 else 2
    fields.update(
        BACKBONE=backbone,
        IMAGE_MIN_DIM=mode.size,
        IMAGE_MAX_DIM=mode.size,
        IMAGES_PER_GPU=images_per_gpu,
        TRAIN_BN=not pretrained,
        LEARNING_RATE=mode.lr,
        STEPS_PER_EPOCH=mode.steps or max(1, n_train // images_per_gpu),
        VALIDATION_STEPS=max(1, min(5, mode.val_images // images_per_gpu)),
        DETECTION_MAX_INSTANCES=100 if mode.size < 512 else 400,
    )
    return MammoConfig(**{**fields, **(overrides or {})})


def parse_weights(value: str) -> tuple[str, str | None]:
    """ "coco:PATH" / "imagenet:PATH" / "none" → (kind, path)."""
    if value == "none":
        return "none", None
    kind, _, path = value.partition(":")
    if kind not in ("coco", "imagenet") or not path:
        raise SystemExit(f"--weights must be coco:PATH, imagenet:PATH or none, received {value!r}")
    return kind, path


def scored_val_records(val: list, kinds, n: int) -> list:
    """The first ``n`` validation records that have a lesion of ``kinds`` (or all there are):
    the paper's "50 images in our validation set" all hold a lesion.

    Example:
        >>> len(scored_val_records(splits["val"], None, 50))  # doctest: +SKIP
        50
    """
    return [r for r in val if r.has_lesion(kinds)][:n]


def train_and_detect(
    folder: Path,
    run: common.Run,
    mode: Mode,
    weights: tuple[str, str | None],
    overrides: dict | None = None,
) -> dict:
    # === data: images loaded at load_size; paper scale crops `size` from them scaled ×2 ===
    splits = run.splits()
    train_set = RecordDataset.from_records(splits["train"], size=mode.load_size, kinds=run.kinds)
    val_records = scored_val_records(splits["val"], run.kinds, mode.val_images)
    if not val_records:
        raise ValueError("no validation image has a lesion of the chosen kinds: nothing to score")
    val_set = RecordDataset.from_records(val_records, size=mode.load_size, kinds=run.kinds)
    backbone = mode.backbone if weights[0] == "none" else "resnet50"
    config = make_config(
        mode,
        len(train_set.image_ids),
        backbone=backbone,
        pretrained=weights[0] != "none",
        overrides=overrides,
    )

    # === train: heads, then all layers ===
    model = MaskRCNN("training", config, folder)
    if weights[0] == "coco":  # the authors' start: heads that depend on the classes excluded
        model.load_weights(weights[1], by_name=True, exclude=COCO_HEADS)
    elif weights[0] == "imagenet":
        model.load_weights(model.get_imagenet_weights(weights[1]), by_name=True)
    flips = RandomFlips(seed=run.args.seed) if mode.augment else None
    if weights[0] != "none":
        # The heads stage protects pretrained features; a random backbone has none to protect,
        # and frozen it runs its batch norm on initial statistics, so from scratch every
        # layer trains from the first step.
        model.train(train_set, val_set, config.LEARNING_RATE, mode.heads, "heads", flips)
    model.train(train_set, val_set, config.LEARNING_RATE, mode.total, "all", flips)
    history = folder / Path(model.log_dir).name / "history.csv"

    # === detect, one image at a time (matterport's nucleus inference config) ===
    inference_config = make_config(
        mode,
        len(train_set.image_ids),
        backbone=backbone,
        pretrained=weights[0] != "none",
        overrides={**(overrides or {}), "IMAGES_PER_GPU": 1},
    )
    inference = MaskRCNN("inference", inference_config, folder)
    inference.load_weights(inference.find_last())
    gts, preds, per_image = [], [], []
    for image_id in val_set.image_ids:
        pred = inference.detect([val_set.load_image(image_id)])[0]
        masks, class_ids = val_set.load_mask(image_id)
        # the paper's number uses every detection; COCO keeps the best 100 per image
        per_image.append(
            utils.compute_ap_range(
                None,
                class_ids,
                masks,
                pred["rois"],
                pred["class_ids"],
                pred["scores"],
                pred["masks"],
            )
        )
        keep = np.argsort(-pred["scores"], kind="stable")[:100]
        preds.append({k: (v[..., keep] if k == "masks" else v[keep]) for k, v in pred.items()})
        gts.append({"masks": masks, "class_ids": class_ids})

    # === score ===
    per_image = np.array(per_image)
    with_truth = ~np.isnan(per_image)
    ap50 = evaluate.matterport_map(gts, preds, [0.5])
    segm = evaluate.coco_evaluate(gts, preds, "segm", class_ids=[1])
    bbox = evaluate.coco_evaluate(gts, preds, "bbox", class_ids=[1])
    lesions, detections = evaluate.froc_inputs(gts, preds)
    froc_at = froc(lesions, detections, min_iou=0.5)
    fp_per_image, sensitivity, _ = froc_curve(lesions, detections, min_iou=0.5)
    precision, recall = evaluate.precision_recall_curve(gts, preds, 0.5)
    prefix = "" if folder.name == "mask_rcnn" else folder.name.removeprefix("mask_rcnn_") + "_"
    figures = [
        plot_pr(run.dir / f"{prefix}fig6_precision_recall.png", precision, recall),
        plot_examples(run.dir / f"{prefix}fig5_truth_vs_prediction.png", val_set, gts, preds),
        plot_froc(run.dir / f"{prefix}froc.png", fp_per_image, sensitivity),
    ]
    return {
        "val_images": len(gts),
        "val_images_with_truth": int(with_truth.sum()),
        "val_images_available": len(splits["val"]),
        "matterport_map": float(per_image[with_truth].mean()) if with_truth.any() else None,
        "matterport_map50": ap50["map"],
        "matterport_ap_per_image": per_image.tolist(),
        "coco_segm": segm,
        "coco_bbox": bbox,
        "froc_mean_sensitivity": float(np.mean(list(froc_at.values()))),
        "froc_at": {str(k): v for k, v in froc_at.items()},
        "backbone": backbone,
        "weights": weights[0],
        "epochs": [mode.heads, mode.total],
        "steps_per_epoch": config.STEPS_PER_EPOCH,
        "load_size": mode.load_size,
        "augment": mode.augment,
        "config": config.to_dict(),
        "history_csv": str(history.relative_to(run.dir)) if history.is_file() else None,
        "figures": [f for f in figures if f],
    }


def start_name(kind: str, n_starts: int) -> str:
    """Sub-run name of one start: "mask_rcnn" alone, "mask_rcnn_coco" etc. beside others."""
    return "mask_rcnn" if n_starts == 1 else f"mask_rcnn_{kind}"


def apply_overrides(
    mode: Mode, items: list[str], *, epochs: int | None = None
) -> tuple[Mode, dict]:
    """``--set KEY=VALUE`` pairs (`common.parse_set`) split into the mode with its keys
    replaced and the `MammoConfig` fields (applied last, in `make_config`); ``--epochs``
    sets ``total`` (kept above the heads stage).

    Raises:
        SystemExit: an unknown key (the message lists the known ones) or a value out of range.

    Example:
        >>> mode, config = apply_overrides(MODES["quick"], ["total=3", "RPN_POSITIVE_IOU=0.5"])
        >>> mode.total, config
        (3, {'RPN_POSITIVE_IOU': 0.5})
    """
    values = common.parse_set(items, [*MODE_FIELDS, *MammoConfig.field_names()])
    changes = {k: v for k, v in values.items() if k in MODE_FIELDS}
    if epochs is not None:
        changes["total"] = max(epochs, changes.get("heads", mode.heads) + 1)
    try:
        mode = replace(mode, **changes)
    except ValueError as error:
        raise SystemExit(f"--set: {error}") from None
    return mode, {k: v for k, v in values.items() if k not in MODE_FIELDS}


def parse_starts(values: list[str] | None) -> list[tuple[str, str | None]]:
    """The ``--weights`` options → one start per option, each kind at most once.

    Raises:
        SystemExit: a malformed value, or "none" beside a weights file, or a kind twice.

    Example:
        >>> parse_starts(["coco:a.h5", "imagenet:b.h5"])
        [('coco', 'a.h5'), ('imagenet', 'b.h5')]
    """
    starts = [parse_weights(v) for v in (values or ["none"])]
    kinds = [kind for kind, _ in starts]
    if len(set(kinds)) != len(kinds) or ("none" in kinds and len(kinds) > 1):
        raise SystemExit(
            f"--weights: give each of coco:PATH and imagenet:PATH at most once, or none alone; "
            f"received {values}"
        )
    return starts


def main(argv=None) -> None:
    parser = common.build_parser(__doc__)
    parser.add_argument(
        "--weights",
        action="append",
        default=None,
        help="coco:PATH | imagenet:PATH | none; twice (coco and imagenet) trains from both",
    )
    common.add_set_option(parser, "total=40 (a mode key) or RPN_NMS_THRESHOLD=0.7 (a Config field)")
    args = parser.parse_args(argv)
    starts = parse_starts(args.weights)
    mode, overrides = apply_overrides(MODES[args.mode], args.set, epochs=args.epochs)
    if args.max_steps is not None:
        mode = replace(mode, steps=args.max_steps, heads=1, total=2)
    scale = replace(common.SCALES[args.mode], image_size=mode.size, epochs=mode.total)
    run = common.Run(SECTION, TITLE, args, scale)

    # === one training per start (Fig. 6 right compares COCO and ImageNet) ===
    results = {}
    for kind, path in starts:
        name = start_name(kind, len(starts))
        start_mode = mode if kind != "none" or args.max_steps is None else replace(mode, total=1)
        results[name] = run.sub_run(
            name,
            lambda folder, w=(kind, path), m=start_mode: train_and_detect(
                folder, run, m, w, overrides
            ),
        )

    # === report ===
    findings, figures = [], []
    for (kind, _), result in zip(starts, results.values()):
        label = "" if len(starts) == 1 else f" ({kind} start)"
        findings += start_findings(result, label, args.data)
        figures += result.get("figures", []) if result.get("status") == "ok" else []
    histories = {
        f"{kind} start": run.dir / r["history_csv"]
        for (kind, _), r in zip(starts, results.values())
        if r.get("status") == "ok" and r.get("history_csv")
    }
    loss_figure = plot_losses(run.dir / "fig6_losses.png", histories)
    figures = [loss_figure, *figures] if loss_figure else figures
    notes = (
        "Two numbers are called mAP. matterport's (the paper's) is computed per image — "
        "greedy matching of score-sorted detections to truth masks by mask IoU, all-point "
        "interpolated AP — averaged over the IoU thresholds 0.50:0.05:0.95 and then over images; "
        "an image without a lesion has no defined recall, so the scored validation images are "
        "the first ones that have a lesion (the paper's 50, or all there are). COCO's "
        "(pycocotools) pools the detections of all images, counts the detections on normal "
        "images as false positives and keeps at most 100 per image. Start weights: "
        f"`{', '.join(args.weights or ['none'])}` (`mask_rcnn_coco.h5` cannot be downloaded "
        "here; the authors excluded mrcnn_class_logits, mrcnn_bbox_fc, mrcnn_bbox and "
        "mrcnn_mask when loading it). The project's quality target for the default phantom run "
        "is matterport mAP@[.5:.95] >= 0.3 and COCO mask AP50 >= 0.6; see the findings for "
        "whether it was reached.\n\n" + settings_note(mode, starts, args.max_steps)
    )
    if run.data_name == "phantom" and args.mode == "default":
        notes += "\n\n" + "\n".join(DEVELOPMENT)
    run.write(findings, notes, figures)


def start_findings(result: dict, label: str, data: str) -> list[tuple[str, str, str, str]]:
    """The findings rows of one start (``label`` names it when there are several)."""
    if result.get("status") != "ok":
        return [(f"Mask R-CNN{label}", str(PAPER_MAP), "failed: " + result.get("error", "?"), "—")]
    ours = common.fmt(result["matterport_map"], 4)
    verdict = common.verdict(
        (result["matterport_map"] or 0) > PAPER_MAP,
        f"above the paper's (on `{data}`)",
        "at or below the paper's",
    )
    segm, bbox = result["coco_segm"], result["coco_bbox"]
    n = (
        f"{result['val_images']} val images with a lesion, of "
        f"{result['val_images_available']} in the split"
    )
    return [
        (
            f"matterport mAP@[.5:.95], mean over images{label}",
            f"{PAPER_MAP} (50 val images with a lesion)",
            f"{ours} ({n})",
            verdict,
        ),
        (f"matterport mAP@0.5{label}", "—", common.fmt(result["matterport_map50"]), "—"),
        (
            f"COCO mask AP@[.5:.95] / AP50{label}",
            "—",
            f"{common.fmt(segm['AP'])} / {common.fmt(segm['AP50'])}",
            "pooled over images",
        ),
        (
            f"COCO box AP@[.5:.95] / AP50{label}",
            "—",
            f"{common.fmt(bbox['AP'])} / {common.fmt(bbox['AP50'])}",
            "—",
        ),
        (
            f"FROC mean sensitivity (0.25–8 FP/image){label}",
            "—",
            common.fmt(result["froc_mean_sensitivity"]),
            "—",
        ),
        (
            f"project target: mAP@[.5:.95] >= 0.3 and COCO mask AP50 >= 0.6 (phantom){label}",
            "—",
            f"{ours} / {common.fmt(segm['AP50'])}",
            "met"
            if (result["matterport_map"] or 0) >= 0.3 and (segm["AP50"] or 0) >= 0.6
            else "not met",
        ),
    ]


def settings_note(mode: Mode, starts: list, max_steps: int | None) -> str:
    """Which of the paper's settings this run used, and which it could not."""
    kinds = {kind for kind, _ in starts}
    used = [
        "matterport's Mask R-CNN with the authors' tumour Config (facts.md §1)",
        "matterport's per-image mAP@[.5:.95] (float32 IoUs, unrounded thresholds)",
    ]
    not_used = []
    paper = MODES["paper"]
    backbone = mode.backbone if kinds == {"none"} else "resnet50"
    if (mode.size, mode.load_size, mode.backbone) == (paper.size, paper.load_size, "resnet50"):
        used.append("ResNet-50 on 512² crops of 1024² images scaled ×2 (2048²)")
    else:
        not_used.append(
            f"ResNet-50 on 512² crops of 2048² images: {mode.size}² inputs from "
            f"{mode.load_size}² images, backbone {backbone}"
        )
    if (mode.heads, mode.total) == (paper.heads, paper.total) and max_steps is None:
        used.append("heads to epoch 20, then all layers to epoch 40, learning rate 0.001")
    else:
        not_used.append(
            f"the schedule (heads to 20, all to 40): heads to {mode.heads}, all to {mode.total}"
            + (f", {max_steps} step(s) per epoch (--max-steps)" if max_steps else "")
        )
    if "coco" in kinds:
        used.append("the COCO start, class-specific heads excluded")
    else:
        not_used.append("the COCO start (mask_rcnn_coco.h5 not given)")
    if kinds >= {"coco", "imagenet"}:
        used.append("COCO and ImageNet starts compared (Fig. 6 right)")
    else:
        not_used.append("the COCO vs ImageNet comparison (needs both weight files)")
    not_used.append(
        "the authors' data (CBIS-DDSM/MIAS as they prepared it) unless --data names it, and "
        "their validation images"
    )
    return common.paper_settings_paragraph(used, not_used)


if __name__ == "__main__":
    main()
