"""`import mammoseg`: enough to load saved models, and the NumPy metrics need no TensorFlow."""

from __future__ import annotations

import os
import subprocess
import sys

import keras
import pytest

import mammoseg
from mammoseg import losses
from mammoseg.metrics import AuthorsMeanIoU, DiceMetric


def _python(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "not registered with Keras" not in done.stderr
    return done.stdout.strip()


def test_numpy_metrics_and_readers_import_without_tensorflow():
    out = _python(
        "import sys\n"
        "from mammoseg.metrics import dice_score, froc\n"
        "from mammoseg.data import load_records\n"
        "print(dice_score([[1, 0]], [[1, 1]]), 'tensorflow' in sys.modules)"
    )
    assert out == "0.6666666666666666 False"


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "model.keras"
    inputs = keras.Input((4, 4, 1))
    model = keras.Model(inputs, keras.layers.Conv2D(1, 1, activation="sigmoid")(inputs))
    model.compile("adam", losses.DiceLoss(), metrics=[DiceMetric(), AuthorsMeanIoU()])
    model.save(path)
    return path


@pytest.mark.parametrize(
    "imports",
    ["import mammoseg, keras", "import keras, mammoseg", "import mammoseg; import tensorflow"],
)
def test_import_mammoseg_is_enough_to_load_a_saved_model(saved_model, imports):
    out = _python(
        f"{imports}\nimport keras\n"
        f"model = keras.saving.load_model({str(saved_model)!r})\n"
        "import numpy as np\n"
        "x = np.ones((1, 4, 4, 1), 'float32')\n"
        "scores = model.evaluate(x, x, verbose=0, return_dict=True)\n"
        "print(type(model.loss).__name__, sorted(scores))"
    )
    assert out == "DiceLoss ['authors_mean_iou', 'dice', 'loss']"


def test_without_mammoseg_the_classes_are_unknown(saved_model):
    # What the registration saves the user from (and why the test above can fail).
    done = subprocess.run(
        [sys.executable, "-c", f"import keras; keras.saving.load_model({str(saved_model)!r})"],
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        timeout=300,
    )
    assert done.returncode != 0 and "DiceLoss" in done.stderr


def test_version_is_a_string():
    assert isinstance(mammoseg.__version__, str) and mammoseg.__version__.count(".") == 2


def test_the_lazy_keras_metric_names_are_keras_metrics_all():
    # mammoseg.metrics lists them without importing keras_metrics (no TensorFlow): the two
    # lists must not drift apart.
    from mammoseg import metrics
    from mammoseg.metrics import keras_metrics

    assert sorted(metrics._KERAS_METRICS) == sorted(keras_metrics.__all__)
    assert all(
        getattr(metrics, name) is getattr(keras_metrics, name) for name in metrics._KERAS_METRICS
    )
