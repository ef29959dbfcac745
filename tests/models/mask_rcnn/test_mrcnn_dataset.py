"""Dataset registry (matterport's), the Records adapter, the registry builder, .keras saving."""

import json
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import tiny_config

from mammoseg.data import Lesion, Record
from mammoseg.data.pgm import write_pgm
from mammoseg.models.mask_rcnn import Dataset, MaskRCNN, RecordDataset

REPO = Path(__file__).resolve().parents[3]


def test_dataset_registry_like_matterport():
    ds = Dataset()
    ds.add_class("mias", 1, "tumor")
    ds.add_class("mias", 1, "tumor")  # duplicates ignored
    ds.add_class("cbis", 1, "mass,benign")
    ds.add_image("mias", "mdb001", "a.pgm", extra=3)
    ds.add_image("cbis", "P_00001", "b.dcm")
    ds.prepare()
    assert ds.class_names == ["BG", "tumor", "mass"]
    assert ds.num_classes == 3 and list(ds.image_ids) == [0, 1]
    assert ds.map_source_class_id("cbis.1") == 2
    assert ds.get_source_class_id(2, "cbis") == 1
    assert ds.source_class_ids == {"": [0], "cbis": [0, 2], "mias": [0, 1]}
    assert ds.image_reference(0) == "a.pgm" and ds.image_info[0]["extra"] == 3
    with pytest.raises(ValueError, match="class 2 belongs to source 'cbis', not 'mias'"):
        ds.get_source_class_id(2, "mias")
    with pytest.raises(ValueError, match="`source` must not contain a dot, received 'a.b'"):
        ds.add_class("a.b", 1, "x")


def test_base_load_image_grey_to_rgb(tmp_path):
    path = tmp_path / "grey.png"
    import skimage.io

    skimage.io.imsave(path, np.full((8, 6), 77, np.uint8), check_contrast=False)
    ds = Dataset()
    ds.add_image("png", 0, str(path))
    ds.prepare()
    image = ds.load_image(0)
    assert image.shape == (8, 6, 3) and image.dtype == np.uint8 and (image == 77).all()
    masks, ids = ds.load_mask(0)
    assert masks.shape[-1] == 0 and ids.dtype == np.int32


def _records(tmp_path):
    pixels = np.full((128, 128), 40, np.uint8)
    write_pgm(tmp_path / "a.pgm", pixels)
    write_pgm(tmp_path / "b.pgm", pixels)
    lesions = (
        Lesion("mass", "benign", center=(32.0, 64.0), radius=10.0),
        Lesion("calcification", "malignant", center=(90.0, 90.0), radius=6.0),
    )
    return [
        Record("a", "p1", "mias", str(tmp_path / "a.pgm"), lesions=lesions),
        Record("b", "p2", "mias", str(tmp_path / "b.pgm")),
    ]


def test_record_dataset_masks_and_classes(tmp_path):
    ds = RecordDataset.from_records(_records(tmp_path), size=64)
    assert ds.class_names == ["BG", "tumor"]
    image = ds.load_image(0)
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8
    assert image[0, 0, 0] == 40  # 40/255 grey back to 40
    masks, ids = ds.load_mask(0)
    assert masks.shape == (64, 64, 1) and ids.tolist() == [1]  # masses only by default
    assert masks[16, 32, 0] and not masks[40, 40, 0]  # centre (32, 64) at half size
    assert ds.load_mask(1)[0].shape == (64, 64, 0)
    by_kind = RecordDataset.from_records(_records(tmp_path), size=64, kinds=None, by_kind=True)
    assert by_kind.class_names[:3] == ["BG", "mass", "calcification"]
    assert by_kind.load_mask(0)[1].tolist() == [1, 2]
    with pytest.raises(ValueError, match="`records` is empty"):
        RecordDataset.from_records([], size=64)


def test_registry_builds_mask_rcnn(tmp_path):
    from mammoseg import models

    mrcnn = models.build_model(
        "mask_rcnn",
        backbone="resnet_tiny",
        image_min_dim=64,
        image_max_dim=64,
        top_down_pyramid_size=16,
        fpn_classif_fc_layers_size=32,
        model_dir=str(tmp_path),
    )
    assert isinstance(mrcnn, MaskRCNN) and mrcnn.mode == "inference"
    assert mrcnn.config.NAME == "tumor" and mrcnn.config.BACKBONE == "resnet_tiny"
    assert mrcnn.keras_model.classifier.fc_size == 32


def test_keras_save_and_reload_gives_same_outputs(tmp_path):
    from mammoseg.models.mask_rcnn.network import MaskRCNNNetwork, dummy_inputs

    config = tiny_config()
    model = MaskRCNNNetwork(config)
    model.build_by_calling()
    inputs = dummy_inputs(config)
    inputs["input_image"] = (
        np.random.default_rng(0).normal(0, 50, inputs["input_image"].shape).astype("float32")
    )
    expected = model.predict_on_batch(inputs)
    model.save(tmp_path / "mrcnn.keras")
    restored = keras.saving.load_model(tmp_path / "mrcnn.keras")
    assert restored.config.to_dict() == config.to_dict()
    got = restored.predict_on_batch(inputs)
    for key in ("detections", "mrcnn_mask", "rpn_rois"):
        np.testing.assert_allclose(got[key], expected[key], atol=1e-6)


@pytest.mark.slow
def test_section_vf_quick_writes_the_report(tmp_path):
    script = REPO / "experiments" / "section_vf_mask_rcnn.py"
    subprocess.run(
        [
            sys.executable,
            str(script),
            "--quick",
            "--output-dir",
            str(tmp_path),
            "--set",
            "total=3",
            "--set",
            "RPN_POSITIVE_IOU=0.5",
            "--set",
            "LEARNING_RATE=0.005",
        ],
        check=True,
        cwd=REPO,
        timeout=900,
    )
    report = (tmp_path / "report.md").read_text()
    assert "0.0786" in report and "COCO mask AP" in report and "FROC" in report
    for figure in ("fig6_precision_recall.png", "fig6_losses.png", "fig5_truth_vs_prediction.png"):
        assert (tmp_path / figure).is_file(), figure
    result = json.loads((tmp_path / "mask_rcnn" / "result.json").read_text())
    assert result["epochs"] == [1, 3]
    assert result["config"]["RPN_POSITIVE_IOU"] == 0.5 and result["augment"] is True
    assert result["config"]["LEARNING_RATE"] == 0.005  # a field the mode also sets


def test_section_vf_bad_set_key_names_the_known_keys(tmp_path):
    script = REPO / "experiments" / "section_vf_mask_rcnn.py"
    done = subprocess.run(
        [sys.executable, str(script), "--quick", "--output-dir", str(tmp_path)]
        + ["--set", "RPN_POSITIVE_IOUU=0.5"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert done.returncode != 0
    assert "--set 'RPN_POSITIVE_IOUU=0.5': expected KEY=VALUE" in done.stderr
    assert "RPN_POSITIVE_IOU," in done.stderr and "total" in done.stderr
