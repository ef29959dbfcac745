"""Two real worker processes on localhost train under MultiWorkerMirroredStrategy (issue #19).

Each worker reads its own shard of a sharded cache (`distributed_dataset`), per-replica
batch 2; a single process reads both shards with global batch 4. Without shuffling, step k
of the single run sees images 2k and 2k + 1 of each shard (the shards' round robin), the
same four the two workers see together, so the mean loss, its gradient and the weights after
every SGD step are the same up to float rounding (the all-reduce adds in another order).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from mammoseg.data.cache import build_sharded_cache

REPO = Path(__file__).resolve().parents[1]
STEPS = 3
PER_REPLICA = 2

TRAIN = textwrap.dedent(
    """
    import json, sys
    import keras, numpy as np, tensorflow as tf
    from mammoseg.data.pipeline import distributed_dataset, make_dataset
    from mammoseg.models import build_model
    from mammoseg.training import make_strategy

    out, shards, mode = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
    strategy = make_strategy("multi-worker" if mode == "worker" else "default")
    keras.utils.set_random_seed(0)
    global_batch = {per_replica} * strategy.num_replicas_in_sync * (1 if mode == "worker" else 2)
    options = dict(shuffle=False, drop_remainder=True, streaming=True)
    if mode == "worker":
        data = distributed_dataset(strategy, shards, global_batch, **options)
    else:
        data = make_dataset(shards, None, global_batch, **options)
    with strategy.scope():
        model = build_model("unet", input_shape=(32, 32, 1), base_filters=4, depth=2, dropout=0.0)
        model.compile(keras.optimizers.SGD(0.5), "binary_crossentropy")
    initial = [w.copy() for w in model.get_weights()]
    model.fit(data, epochs=1, steps_per_epoch={steps}, verbose=0)
    np.savez(out, replicas=strategy.num_replicas_in_sync, global_batch=global_batch,
             **{{f"initial{{i}}": w for i, w in enumerate(initial)}},
             **{{f"final{{i}}": w for i, w in enumerate(model.get_weights())}})
    """
).format(per_replica=PER_REPLICA, steps=STEPS)


def free_ports(count: int) -> list[int]:
    """Ports the OS says are free on 127.0.0.1 (bound, read, released together)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def weights(path: Path, stage: str) -> list[np.ndarray]:
    with np.load(path) as saved:
        names = sorted(
            (k for k in saved.files if k.startswith(stage)), key=lambda k: int(k[len(stage) :])
        )
        return [saved[name] for name in names]


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    from tests.data.test_streaming import synthetic_records

    folder = tmp_path_factory.mktemp("multi_worker")
    records = synthetic_records(folder, 2 * STEPS * PER_REPLICA, size=32, per_patient=1)
    return build_sharded_cache(records, folder / "shards", 2, size=32, workers=1, progress=False)


@pytest.mark.slow
def test_two_workers_match_one_process(tmp_path, shards):
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    env.pop("TF_CONFIG", None)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    files = json.dumps([str(p) for p in shards])
    processes = []
    try:
        for index in range(2):
            config = {"cluster": cluster, "task": {"type": "worker", "index": index}}
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-c", TRAIN, str(tmp_path / f"w{index}.npz"), files, "worker"],
                    env=dict(env, TF_CONFIG=json.dumps(config)),
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                )
            )
        single = subprocess.run(
            [sys.executable, "-c", TRAIN, str(tmp_path / "one.npz"), files, "single"],
            env=env,
            capture_output=True,
            timeout=120,
        )
        assert single.returncode == 0, single.stderr.decode()[-3000:]
        for index, process in enumerate(processes):
            output, _ = process.communicate(timeout=120)
            assert process.returncode == 0, f"worker {index}:\n{output.decode()[-3000:]}"
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()

    with np.load(tmp_path / "w0.npz") as w0, np.load(tmp_path / "one.npz") as one:
        assert int(w0["replicas"]) == 2 and int(w0["global_batch"]) == 4
        assert int(one["replicas"]) == 1 and int(one["global_batch"]) == 4
    start = weights(tmp_path / "one.npz", "initial")
    for name in ("w0", "w1"):
        for a, b in zip(weights(tmp_path / f"{name}.npz", "initial"), start):
            np.testing.assert_array_equal(a, b)  # same seed: the same starting point
    w0, w1 = (weights(tmp_path / f"w{i}.npz", "final") for i in range(2))
    for a, b in zip(w0, w1):
        np.testing.assert_array_equal(a, b)  # mirrored: identical on both workers
    reference = weights(tmp_path / "one.npz", "final")
    moved = max(float(np.abs(a - b).max()) for a, b in zip(reference, start))
    assert moved > 1e-3  # training did change the weights
    for a, b in zip(w0, reference):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
