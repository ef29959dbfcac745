"""Mask R-CNN speed and peak memory: training step and `detect` per image, float32 beside bf16.

Each (mode, size, policy) runs in its own Python process, so peak memory (maximum resident set
size) belongs to that configuration alone. The model is the paper authors' (`MammoConfig`:
ResNet-50, one class), with one image per step; images are synthetic (a bright disc).

Usage:
    python benchmarks/bench_mask_rcnn.py                       # train 256², 512²; detect + 1024²
    python benchmarks/bench_mask_rcnn.py --backbone resnet_tiny --train-sizes 128 --steps 2
    python benchmarks/bench_mask_rcnn.py --json results.json

Numbers are seconds per image after ``--warmup`` untimed steps (the first one traces the graph).
On a shared machine they are noisy: compare columns of one run, not runs.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

POLICIES = ("float32", "mixed_bfloat16")


def _config(size: int, backbone: str):
    from mammoseg.models.mask_rcnn import MammoConfig

    return MammoConfig(
        IMAGES_PER_GPU=1,
        BACKBONE=backbone,
        IMAGE_RESIZE_MODE="square",
        IMAGE_MIN_DIM=size,
        IMAGE_MAX_DIM=size,
        IMAGE_MIN_SCALE=0,
        STEPS_PER_EPOCH=1,
        DETECTION_MIN_CONFIDENCE=0.5,
    )


def _disc_image(size: int):
    import numpy as np

    yy, xx = np.mgrid[:size, :size]
    disc = (yy - size / 2) ** 2 + (xx - size / 3) ** 2 <= (size / 8) ** 2
    return np.stack([np.where(disc, 200, 60).astype(np.uint8)] * 3, -1), disc


def run_one(mode: str, size: int, policy: str, backbone: str, steps: int, warmup: int) -> dict:
    """Build and time one configuration in this process; return its numbers."""
    import tempfile

    import keras
    import numpy as np

    from mammoseg.models.mask_rcnn import Dataset, MaskRCNN
    from mammoseg.models.mask_rcnn.model import MaskRCNNSequence

    keras.config.set_dtype_policy(policy)
    keras.utils.set_random_seed(0)
    config = _config(size, backbone)
    image, disc = _disc_image(size)
    model = MaskRCNN(mode, config, tempfile.mkdtemp())
    if mode == "training":

        class One(Dataset):
            def load_image(self, i):
                return image

            def load_mask(self, i):
                return disc[..., None], np.array([1], np.int32)

        data = One()
        data.add_class("bench", 1, "disc")
        data.add_image("bench", 0, None)
        data.prepare()
        batch = MaskRCNNSequence(data, config, steps=1, seed=0)[0]
        model.compile(config.LEARNING_RATE, config.LEARNING_MOMENTUM)
        step = lambda: model.keras_model.train_on_batch(batch)  # noqa: E731
    else:
        step = lambda: model.detect([image])  # noqa: E731
    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    seconds = (time.perf_counter() - start) / steps
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "mode": mode,
        "size": size,
        "policy": policy,
        "backbone": backbone,
        "seconds_per_image": seconds,
        "peak_mb": peak_mb,
        "params": int(model.keras_model.count_params()),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--train-sizes", type=int, nargs="*", default=[256, 512])
    parser.add_argument("--detect-sizes", type=int, nargs="*", default=[256, 512, 1024])
    parser.add_argument("--policies", nargs="*", default=list(POLICIES), choices=POLICIES)
    parser.add_argument("--backbone", default="resnet50")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--json", default=None, help="also save the raw numbers here")
    parser.add_argument(
        "--single", nargs=3, metavar=("MODE", "SIZE", "POLICY"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)

    if args.single:
        mode, size, policy = args.single
        print(json.dumps(run_one(mode, int(size), policy, args.backbone, args.steps, args.warmup)))
        return 0

    jobs = [("training", s, p) for s in args.train_sizes for p in args.policies]
    jobs += [("inference", s, p) for s in args.detect_sizes for p in args.policies]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    results = []
    print(f"{'mode':<10}{'size':>6}  {'policy':<16}{'s/image':>9}{'images/s':>10}{'peak MB':>9}")
    for mode, size, policy in jobs:
        cmd = [
            sys.executable,
            __file__,
            "--single",
            mode,
            str(size),
            policy,
            "--backbone",
            args.backbone,
            "--steps",
            str(args.steps),
            "--warmup",
            str(args.warmup),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
        if proc.returncode or not lines:
            tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
            print(f"{mode:<10}{size:>6}  {policy:<16} failed: {tail}")
            continue
        row = json.loads(lines[-1])
        results.append(row)
        label = "train" if mode == "training" else "detect"
        print(
            f"{label:<10}{size:>6}  {policy:<16}{row['seconds_per_image']:>9.2f}"
            f"{1 / row['seconds_per_image']:>10.2f}{row['peak_mb']:>9.0f}",
            flush=True,
        )
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
