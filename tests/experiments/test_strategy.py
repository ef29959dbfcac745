"""`--strategy mirrored` on two logical CPU devices: the global batch is split across the
replicas and training gives the same weights as one device, within tolerance."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import numpy as np, tensorflow as tf, keras
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])
    from mammoseg.models import build_model
    from mammoseg.training import fit_segmenter, make_strategy
    from mammoseg.losses import DiceLoss
    rng = np.random.default_rng(0)
    images = rng.random((8, 32, 32, 1)).astype("float32")
    masks = (images > 0.7).astype("float32")

    def train(strategy, folder):
        keras.utils.set_random_seed(1)
        data = tf.data.Dataset.from_tensor_slices((images, masks)).batch(4)
        model, history = fit_segmenter(
            lambda: build_model("unet", input_shape=(32, 32, 1), base_filters=4, depth=2,
                                dropout=0.0),
            lambda m: m.compile(keras.optimizers.SGD(0.1), loss=DiceLoss()),
            data, None, epochs=2, run_dir=folder, strategy=strategy, verbose=0)
        return [w.numpy() for w in model.weights], history["loss"]

    mirrored = make_strategy("mirrored")
    assert mirrored.num_replicas_in_sync == 2, mirrored.num_replicas_in_sync
    one, loss_one = train(make_strategy("default"), "{tmp}/one")
    two, loss_two = train(mirrored, "{tmp}/two")
    diff = max(float(np.abs(a - b).max()) for a, b in zip(one, two))
    moved = max(float(np.abs(a).max()) for a in one)
    print("REPLICAS", mirrored.num_replicas_in_sync, "MAXDIFF", diff, "LOSS", loss_one, loss_two)
    assert diff < 1e-4, diff
    assert np.allclose(loss_one, loss_two, atol=1e-4), (loss_one, loss_two)
    """
)


@pytest.mark.slow
def test_mirrored_on_two_logical_cpus_matches_one_device(tmp_path):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT.replace("{tmp}", str(tmp_path))],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    assert "REPLICAS 2" in done.stdout
