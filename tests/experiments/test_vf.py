"""Section V.F at the paper's settings: 1024² images scaled ×2 to 2048² and cropped to 512²,
COCO and ImageNet starts side by side, and the scored validation images all hold a lesion."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"
sys.path.insert(0, str(EXPERIMENTS))

import section_vf_mask_rcnn as vf  # noqa: E402
import vf_figures  # noqa: E402

from mammoseg import data as mdata  # noqa: E402
from mammoseg.models.mask_rcnn import RecordDataset, utils  # noqa: E402
from mammoseg.models.mask_rcnn.model import load_image_gt  # noqa: E402


def test_paper_mode_loads_1024_and_crops_512_from_2048():
    paper = vf.MODES["paper"]
    assert (paper.load_size, paper.size, paper.backbone, paper.heads, paper.total) == (
        1024,
        512,
        "resnet50",
        20,
        40,
    )
    config = vf.make_config(paper, 12, backbone="resnet50", pretrained=True)
    assert config.IMAGE_RESIZE_MODE == "crop" and config.IMAGE_MIN_SCALE == 2.0
    assert (config.IMAGE_MIN_DIM, config.IMAGES_PER_GPU, config.TRAIN_BN) == (512, 6, False)
    # a 1024² image: scale max(1, 512 / 1024) = 1 < IMAGE_MIN_SCALE, so ×2 → 2048², 512² crop
    _, window, scale, _, crop = utils.resize_image(
        np.zeros((1024, 1024, 3), np.uint8), min_dim=512, max_dim=512, min_scale=2.0, mode="crop"
    )
    assert scale == 2.0 and window == (0, 0, 512, 512)
    assert crop[2:] == (512, 512) and 0 <= crop[0] <= 1536 and 0 <= crop[1] <= 1536


def test_paper_mode_training_images_are_crops_of_doubled_1024_images():
    records = mdata.load_records("phantom", n_images=4, size=256)
    records = [r for r in records if r.has_lesion(None)][:1]
    dataset = RecordDataset.from_records(records, size=vf.MODES["paper"].load_size, kinds=None)
    assert dataset.load_image(dataset.image_ids[0]).shape == (1024, 1024, 3)
    config = vf.make_config(vf.MODES["paper"], 2, backbone="resnet50", pretrained=True)
    image, meta = load_image_gt(dataset, config, dataset.image_ids[0])[:2]
    assert image.shape == (512, 512, 3)
    # meta: id, original shape (3), molded shape (3), window (4), scale
    assert meta[1:4].tolist() == [1024, 1024, 3] and meta[11] == 2.0


def test_default_and_quick_modes_use_whole_images():
    for name in ("quick", "default"):
        mode = vf.MODES[name]
        assert mode.load_size == mode.size
        config = vf.make_config(mode, 12, backbone="resnet_tiny", pretrained=False)
        assert config.IMAGE_RESIZE_MODE == "square"


def test_load_size_below_size_is_refused():
    with pytest.raises(
        ValueError, match=r"`load_size` must be at least `size` \(512\), received 256"
    ):
        replace(vf.MODES["paper"], load_size=256)


def test_scored_val_records_are_the_first_with_a_lesion():
    records = [SimpleNamespace(name=i, has_lesion=lambda kinds, i=i: i % 3 != 0) for i in range(9)]
    assert [r.name for r in vf.scored_val_records(records, None, 4)] == [1, 2, 4, 5]
    assert [r.name for r in vf.scored_val_records(records, None, 50)] == [1, 2, 4, 5, 7, 8]


def test_both_starts_are_parsed_and_named():
    starts = vf.parse_starts(["coco:a.h5", "imagenet:b.h5"])
    assert starts == [("coco", "a.h5"), ("imagenet", "b.h5")]
    assert [vf.start_name(k, 2) for k, _ in starts] == ["mask_rcnn_coco", "mask_rcnn_imagenet"]
    assert vf.parse_starts(None) == [("none", None)] and vf.start_name("none", 1) == "mask_rcnn"


@pytest.mark.parametrize(
    "values", [["coco:a.h5", "coco:b.h5"], ["none", "coco:a.h5"]], ids=["twice", "none"]
)
def test_bad_starts_are_refused(values):
    with pytest.raises(SystemExit, match="give each of coco:PATH and imagenet:PATH at most once"):
        vf.parse_starts(values)


def _history(path: Path, losses: list[float]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["epoch", "loss", "val_loss"])
        writer.writerows([i, v, v + 0.1] for i, v in enumerate(losses))
    return path


def test_loss_figure_plots_every_start(tmp_path):
    coco = _history(tmp_path / "coco.csv", [2.0, 1.5])
    imagenet = _history(tmp_path / "imagenet.csv", [2.5, 2.2])
    name = vf_figures.plot_losses(
        tmp_path / "fig6_losses.png", {"coco start": coco, "imagenet start": imagenet}
    )
    assert name == "fig6_losses.png" and (tmp_path / name).stat().st_size > 1000
    assert vf_figures.plot_losses(tmp_path / "none.png", {"x": tmp_path / "missing.csv"}) is None


@pytest.mark.slow
def test_coco_and_imagenet_starts_both_train_and_share_the_loss_figure(tmp_path):
    from mammoseg.models.mask_rcnn import MammoConfig, MaskRCNN
    from tests.models.mask_rcnn.test_mrcnn_weights import layer_shapes, write_keras2_file

    model = MaskRCNN("inference", MammoConfig(IMAGES_PER_GPU=1), tmp_path / "build")
    shapes = layer_shapes(model.keras_model)
    # Values at a trained network's scale (zero-mean kernels, neutral batch norm): the raw
    # all-positive uniform(0.5, 1.5) values, even x0.01, overflow any ResNet-50 to inf (#14).
    write_keras2_file(tmp_path / "coco.h5", shapes, trained=True)
    backbone = {n: s for n, s in shapes.items() if n.startswith(("conv1", "bn_conv1", "res", "bn"))}
    write_keras2_file(tmp_path / "imagenet.h5", backbone, trained=True)
    out = tmp_path / "vf"
    done = subprocess.run(
        [
            sys.executable,
            str(EXPERIMENTS / "section_vf_mask_rcnn.py"),
            "--quick",
            f"--output-dir={out}",
            f"--weights=coco:{tmp_path / 'coco.h5'}",
            f"--weights=imagenet:{tmp_path / 'imagenet.h5'}",
            "--set",
            "total=2",
            "--set",
            "lr=0.0001",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        timeout=1800,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    runs = json.loads((out / "metrics.json").read_text())["runs"]
    assert set(runs) == {"mask_rcnn_coco", "mask_rcnn_imagenet"}
    assert [runs[k]["weights"] for k in sorted(runs)] == ["coco", "imagenet"]
    report = (out / "report.md").read_text()
    assert "matterport mAP@[.5:.95], mean over images (coco start)" in report
    assert "matterport mAP@[.5:.95], mean over images (imagenet start)" in report
    assert "COCO and ImageNet starts compared (Fig. 6 right)" in report
    assert (out / "fig6_losses.png").is_file() and (out / "imagenet_froc.png").is_file()
