"""A sample written for matterport/Mask_RCNN (balloon/nucleus style) runs with its imports changed.

`MATTERPORT_SAMPLE` is matterport code: a Config subclass, a `utils.Dataset` subclass drawing
discs, training the heads for one epoch, an inference model loading ``find_last()``, `detect`,
`visualize.display_instances` and `utils.compute_ap`. Its configuration is tiny (64² images, the
tiny backbone) and an imgaug-style flip stands in for ``imgaug.augmenters.Fliplr`` (imgaug is
not installed here). The test changes its three ``mrcnn`` imports, and nothing else, then runs it.
"""

import difflib

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib import patches  # noqa: E402

MATTERPORT_SAMPLE = '''
import os

import numpy as np

from mrcnn.config import Config
from mrcnn import model as modellib, utils
from mrcnn import visualize

ROOT_DIR = os.path.abspath(".")
MODEL_DIR = os.path.join(ROOT_DIR, "logs")


class DiscConfig(Config):
    NAME = "disc"
    IMAGES_PER_GPU = 2
    NUM_CLASSES = 1 + 1  # background + disc
    STEPS_PER_EPOCH = 1
    VALIDATION_STEPS = 1
    BACKBONE = "resnet_tiny"
    IMAGE_MIN_DIM = 64
    IMAGE_MAX_DIM = 64
    RPN_ANCHOR_SCALES = (8, 16, 32, 64, 128)
    TOP_DOWN_PYRAMID_SIZE = 32
    FPN_CLASSIF_FC_LAYERS_SIZE = 64
    TRAIN_ROIS_PER_IMAGE = 32
    PRE_NMS_LIMIT = 1000
    POST_NMS_ROIS_TRAINING = 200
    POST_NMS_ROIS_INFERENCE = 100
    MINI_MASK_SHAPE = (28, 28)
    MAX_GT_INSTANCES = 4
    MEAN_PIXEL = np.array([100.0, 100.0, 100.0])
    DETECTION_MIN_CONFIDENCE = 0


class DiscDataset(utils.Dataset):

    def load_discs(self, count, seed):
        """One bright disc per 64x64 image."""
        self.add_class("disc", 1, "disc")
        rng = np.random.RandomState(seed)
        for i in range(count):
            r = rng.randint(8, 14)
            cy, cx = rng.randint(r, 64 - r, 2)
            self.add_image("disc", image_id=i, path=None, width=64, height=64, disc=(cy, cx, r))

    def disc_mask(self, image_id):
        info = self.image_info[image_id]
        cy, cx, r = info["disc"]
        yy, xx = np.mgrid[:info["height"], :info["width"]]
        return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r

    def load_image(self, image_id):
        image = np.full((64, 64, 3), 40, dtype=np.uint8)
        image[self.disc_mask(image_id)] = 210
        return image

    def load_mask(self, image_id):
        info = self.image_info[image_id]
        if info["source"] != "disc":
            return super(self.__class__, self).load_mask(image_id)
        mask = self.disc_mask(image_id)[..., None]
        return mask.astype(bool), np.ones([mask.shape[-1]], dtype=np.int32)

    def image_reference(self, image_id):
        info = self.image_info[image_id]
        if info["source"] == "disc":
            return "disc {}".format(info["id"])
        return super(self.__class__, self).image_reference(image_id)


class Fliplr:
    """Stands in for imgaug.augmenters.Fliplr(1.0)."""

    def to_deterministic(self):
        return self

    def augment_image(self, image, hooks=None):
        return image[:, ::-1]


config = DiscConfig()
dataset_train = DiscDataset()
dataset_train.load_discs(6, seed=0)
dataset_train.prepare()
dataset_val = DiscDataset()
dataset_val.load_discs(2, seed=1)
dataset_val.prepare()

model = modellib.MaskRCNN(mode="training", config=config, model_dir=MODEL_DIR)
model.train(dataset_train, dataset_val,
            learning_rate=config.LEARNING_RATE,
            epochs=1,
            layers="heads",
            augmentation=Fliplr())


class InferenceConfig(DiscConfig):
    GPU_COUNT = 1
    IMAGES_PER_GPU = 1


inference_config = InferenceConfig()
model = modellib.MaskRCNN(mode="inference", config=inference_config, model_dir=MODEL_DIR)
model_path = model.find_last()
model.load_weights(model_path, by_name=True)

image_id = dataset_val.image_ids[0]
image, image_meta, gt_class_id, gt_bbox, gt_mask = modellib.load_image_gt(
    dataset_val, inference_config, image_id, use_mini_mask=False)
results = model.detect([image], verbose=1)
r = results[0]
visualize.display_instances(image, r["rois"], r["masks"], r["class_ids"],
                            dataset_val.class_names, r["scores"], figsize=(4, 4))
AP, precisions, recalls, overlaps = utils.compute_ap(
    gt_bbox, gt_class_id, gt_mask, r["rois"], r["class_ids"], r["scores"], r["masks"])
'''

PORT = {
    "from mrcnn.config import Config": "from mammoseg.models.mask_rcnn.config import Config",
    "from mrcnn import model as modellib, utils": (
        "from mammoseg.models.mask_rcnn import model as modellib, utils"
    ),
    "from mrcnn import visualize": "from mammoseg.models.mask_rcnn import visualize",
}


def port(source: str) -> str:
    for old, new in PORT.items():
        source = source.replace(old, new)
    return source


def test_porting_changes_import_lines_only():
    ported = port(MATTERPORT_SAMPLE)
    changed = [
        line[2:]
        for line in difflib.ndiff(MATTERPORT_SAMPLE.splitlines(), ported.splitlines())
        if line[:2] in ("- ", "+ ")
    ]
    assert len(changed) == 6
    assert all(line.startswith("from ") for line in changed)


@pytest.mark.slow
def test_matterport_sample_trains_one_epoch_and_detects(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    plt.close("all")
    namespace = {"__name__": "matterport_sample"}
    exec(compile(port(MATTERPORT_SAMPLE), "matterport_sample.py", "exec"), namespace)

    # training wrote matterport's checkpoint and inference loaded it
    assert namespace["model_path"].endswith("mask_rcnn_disc_0001.h5")
    assert (tmp_path / "logs").is_dir() and namespace["model"].epoch == 1
    # the truth as matterport's load_image_gt gives it: full-size masks, the disc's box
    cy, cx, r = namespace["dataset_val"].image_info[0]["disc"]
    assert namespace["gt_bbox"].tolist() == [[cy - r, cx - r, cy + r + 1, cx + r + 1]]
    assert namespace["gt_mask"].shape == (64, 64, 1)
    # detect's results, drawn by display_instances, scored by compute_ap
    result = namespace["r"]
    n = len(result["scores"])
    assert result["rois"].shape == (n, 4) and result["masks"].shape == (64, 64, n)
    assert set(result["class_ids"]) <= {1}
    assert 0.0 <= namespace["AP"] <= 1.0
    assert "Processing 1 images" in capsys.readouterr().out
    ax = plt.gcf().axes[0]
    assert np.asarray(ax.images[0].get_array()).shape == (64, 64, 3)
    assert sum(isinstance(p, patches.Rectangle) for p in ax.patches) == n
    assert [t.get_text().split()[0] for t in ax.texts] == ["disc"] * n
    plt.close("all")
