"""Input-pipeline throughput: `make_dataset` with rotation at 256², 512² and 1024².

Targets on 2 CPU cores (issue: foundation): >= 200 images/s at 256² and >= 20 at 1024², so the
input side never holds a training step back. The baseline in the same run is the authors' way
of feeding images: a NumPy `flow` (one batch at a time, no parallel map, no prefetch), which is
what a zipped pair of `ImageDataGenerator`s amounted to.

Run:
    python benchmarks/bench_pipeline.py [--sizes 256 512 1024] [--images 64] [--epochs 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np

from mammoseg.data import RotationAugment
from mammoseg.data.mias import read_mias
from mammoseg.data.phantom import generate
from mammoseg.data.pipeline import dataset_from_arrays, decode_records

TARGETS = {256: 200.0, 1024: 20.0}


def time_dataset(dataset, epochs: int) -> float:
    """Images per second over ``epochs`` passes (the first batch excluded as warm-up)."""
    iterator = iter(dataset)
    next(iterator)
    count, start = 0, time.perf_counter()
    for _ in range(epochs):
        for images, _ in dataset:
            count += int(images.shape[0])
    return count / (time.perf_counter() - start)


def time_flow(images, masks, augment, batch_size: int, epochs: int) -> float:
    flow = augment.flow(images, masks, batch_size=batch_size, seed=0)
    next(flow)
    steps = epochs * int(np.ceil(len(images) / batch_size))
    start = time.perf_counter()
    count = sum(next(flow)[0].shape[0] for _ in range(steps))
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024])
    parser.add_argument("--images", type=int, default=64, help="MIAS-layout images to generate")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()

    augment = RotationAugment(rotation_range=360, fill_mode="constant")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        generate(tmp, args.images, seed=0, size=1024, progress=False)
        records = read_mias(tmp, source="phantom")
        for size in args.sizes:
            arrays = decode_records(records, size, progress=False)
            dataset = dataset_from_arrays(*arrays, args.batch_size, augment=augment, seed=0)
            ours = time_dataset(dataset, args.epochs)
            baseline = time_flow(*arrays, augment, args.batch_size, args.epochs)
            target = TARGETS.get(size)
            verdict = "-" if target is None else ("met" if ours >= target else "MISSED")
            rows.append((size, baseline, ours, target, verdict))

    print(f"\nmake_dataset with rotation_range=360, batch {args.batch_size}, 2-core CPU")
    print(
        f"{'size':>6} | {'NumPy flow (img/s)':>18} | {'make_dataset (img/s)':>20} | "
        f"{'speed-up':>8} | {'target':>7} | verdict"
    )
    print("-" * 80)
    for size, baseline, ours, target, verdict in rows:
        target_text = "-" if target is None else f">= {target:.0f}"
        print(
            f"{size:>5}² | {baseline:>18.1f} | {ours:>20.1f} | {ours / baseline:>7.1f}x | "
            f"{target_text:>7} | {verdict}"
        )


if __name__ == "__main__":
    main()
