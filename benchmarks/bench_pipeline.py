"""Input-pipeline throughput: `make_dataset` with rotation at 256², 512² and 1024².

Targets on 2 CPU cores (issue: foundation): >= 200 images/s at 256² and >= 20 at 1024², so the
input side never holds a training step back. The baseline in the same run is the authors' way
of feeding images: a NumPy `flow` (one batch at a time, no parallel map, no prefetch), which is
what a zipped pair of `ImageDataGenerator`s amounted to.

Two ways to count make_dataset (issue #19 asked why it delivered 0.6x the NumPy loop at 256²):

* steady: one iterator over the repeated dataset, as the flow is measured (one endless
  generator); the warm-up batches come from that same iterator.
* per epoch: a fresh iterator every epoch, as Keras' ``fit`` does. Each start pays for the
  first batch with nothing overlapped (shuffle, gather, rotate: about 100 ms at 256² against
  270 ms for a whole 8-batch epoch of 64 images), which is what the old figure measured, plus
  an earlier warm-up iterator left prefetching in the background during the timing.

Each is repeated (``--repeats``, alternating with the baseline, so load from other processes
hits both alike) and the best and median printed; the machine's load average is printed too.

Run:
    python benchmarks/bench_pipeline.py [--sizes 256 512 1024] [--images 64] [--epochs 3]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np

from mammoseg.data import RotationAugment
from mammoseg.data.mias import read_mias
from mammoseg.data.phantom import generate
from mammoseg.data.pipeline import dataset_from_arrays, decode_records

TARGETS = {256: 200.0, 1024: 20.0}


def time_epochs(dataset, epochs: int) -> float:
    """Images per second over ``epochs`` passes, a fresh iterator each (as Keras' fit)."""
    count, start = 0, time.perf_counter()
    for _ in range(epochs):
        for images, _ in dataset:
            count += int(images.shape[0])
    return count / (time.perf_counter() - start)


def time_steady(dataset, steps: int) -> float:
    """Images per second over ``steps`` batches of one iterator, after 2 warm-up batches."""
    iterator = iter(dataset.repeat())
    for _ in range(2):
        next(iterator)
    count, start = 0, time.perf_counter()
    for _ in range(steps):
        count += int(next(iterator)[0].shape[0])
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
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    augment = RotationAugment(rotation_range=360, fill_mode="constant")
    rows = []
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        generate(tmp, args.images, seed=0, size=1024, progress=False)
        records = read_mias(tmp, source="phantom")
        for size in args.sizes:
            arrays = decode_records(records, size, progress=False)
            dataset = dataset_from_arrays(*arrays, args.batch_size, augment=augment, seed=0)
            steps = args.epochs * int(np.ceil(args.images / args.batch_size))
            flow, steady, epochs = [], [], []
            for _ in range(args.repeats):
                flow.append(time_flow(*arrays, augment, args.batch_size, args.epochs))
                steady.append(time_steady(dataset, steps))
                epochs.append(time_epochs(dataset, args.epochs))
            rows.append((size, flow, steady, epochs, TARGETS.get(size)))

    print(
        f"\nmake_dataset with rotation_range=360, batch {args.batch_size}, {args.images} images, "
        f"{os.cpu_count()} cores; load average {load_before:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after; best (median) of {args.repeats}, images/s"
    )
    print(
        f"{'size':>6} | {'NumPy flow':>12} | {'steady':>12} | {'per epoch':>12} | "
        f"{'steady/flow':>11} | {'target':>7} | verdict (steady)"
    )
    print("-" * 92)
    for size, flow, steady, epochs, target in rows:
        cells = [f"{max(v):6.0f} ({np.median(v):3.0f})" for v in (flow, steady, epochs)]
        target_text = "-" if target is None else f">= {target:.0f}"
        verdict = "-" if target is None else ("met" if max(steady) >= target else "MISSED")
        print(
            f"{size:>5}² | {cells[0]:>12} | {cells[1]:>12} | {cells[2]:>12} | "
            f"{max(steady) / max(flow):>10.1f}x | {target_text:>7} | {verdict}"
        )


if __name__ == "__main__":
    main()
