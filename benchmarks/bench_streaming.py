"""Streaming the preprocessing cache vs reading it into memory: peak RSS and training input speed.

Issue #19's targets at 1024² (CBIS-DDSM's size is 3,103 images): streaming peak RSS flat in N
and under 3 GB at N = 3,103; streaming throughput at least 80 % of in-memory where both run.

Synthetic cached images: ``--sources`` distinct 1024² noise PGMs with a bright disk (a lesion
circle), reused by N records, one patient each, cached (uint16 images, uint8 masks) as shards
of ``--shard-size`` images; N images are the first N / shard-size shards, so every N reads the
same files. Each configuration runs in its own process (peak RSS = its ``ru_maxrss``):
``make_dataset(shards, None, batch, augment=RotationAugment(360), shuffle=True, repeat=True)``
timed over ``--steps`` batches of one iterator after 3 warm-up batches, with ``streaming``
True or False, ``--repeats`` times alternating (best throughput, highest peak kept). A
"read" column times the same without augmentation: the cache side alone.
In memory runs only where the stored images and masks fit in half the available memory.

Run:
    python benchmarks/bench_streaming.py [--n 100 300 1000 3103] [--steps 24] [--folder /tmp/x]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SIZE = 1024


def available_bytes() -> int:
    """MemAvailable of /proc/meminfo (0 if unknown)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def build_shards(folder: Path, total: int, shard_size: int, sources: int) -> list[Path]:
    """Shards of ``shard_size`` synthetic images (the last may be smaller), built if absent."""
    from mammoseg.data.cache import build_cache, shard_name
    from mammoseg.data.pgm import write_pgm
    from mammoseg.data.records import Lesion, Record

    rng = np.random.default_rng(0)
    paths = []
    yy, xx = np.mgrid[:SIZE, :SIZE]
    for k in range(sources):
        path = folder / f"source{k:03d}.pgm"
        cy, cx = 200.0 + (37 * k) % 600, 200.0 + (71 * k) % 600
        if not path.exists():
            pixels = rng.integers(0, 160, (SIZE, SIZE), dtype=np.uint8)
            pixels[(yy - cy) ** 2 + (xx - cx) ** 2 < 60**2] = 230
            write_pgm(path, pixels)
        paths.append((path, (cy, cx)))
    records = [
        Record(
            f"img{i:05d}",
            f"p{i:05d}",
            "mias",
            str(paths[i % sources][0]),
            lesions=(Lesion("mass", center=paths[i % sources][1], radius=60.0),),
        )
        for i in range(total)
    ]
    count = -(-total // shard_size)
    shards = []
    for k in range(count):
        part = records[k * shard_size : (k + 1) * shard_size]
        shards.append(
            build_cache(
                part, folder / shard_name(k, count), size=SIZE, resize="stretch", progress=False
            )
        )
    return shards


def child(files: list[str], streaming: bool, steps: int, batch: int, augment: bool) -> dict:
    """One configuration, in this process: images/s and peak RSS."""
    from mammoseg.data.augment import RotationAugment
    from mammoseg.data.pipeline import make_dataset

    rotation = RotationAugment(rotation_range=360, fill_mode="constant") if augment else None
    start = time.perf_counter()
    dataset = make_dataset(
        files, None, batch, augment=rotation, seed=0, repeat=True, streaming=streaming
    )
    iterator = iter(dataset)
    for _ in range(3):
        next(iterator)
    ready = time.perf_counter() - start
    count, start = 0, time.perf_counter()
    for _ in range(steps):
        count += int(next(iterator)[0].shape[0])
    rate = count / (time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"images_per_s": rate, "peak_rss": peak, "first_batches_s": ready}


def run(files: list[Path], streaming: bool, args, augment: bool) -> dict:
    command = [
        sys.executable,
        __file__,
        "--child",
        json.dumps([str(f) for f in files]),
        "--streaming" if streaming else "--in-memory",
        "--steps",
        str(args.steps if augment else 3 * args.steps),
        "--batch-size",
        str(args.batch_size),
    ] + ([] if augment else ["--no-augment"])
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1800)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[100, 300, 1000, 3103])
    parser.add_argument("--steps", type=int, default=24, help="timed batches (augmented)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2, help="runs of each, best kept")
    parser.add_argument("--shard-size", type=int, default=100)
    parser.add_argument("--sources", type=int, default=50)
    parser.add_argument("--folder", type=Path, help="keep the cache here (default: temporary)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--streaming", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--in-memory", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--no-augment", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = child(
            json.loads(args.child), args.streaming, args.steps, args.batch_size, not args.no_augment
        )
        print(json.dumps(result))
        return

    folder = args.folder or Path(tempfile.mkdtemp(prefix="bench-streaming-"))
    folder.mkdir(parents=True, exist_ok=True)
    need = max(args.n) * SIZE * SIZE * 3
    free = shutil.disk_usage(folder).free
    if need > 0.8 * free:
        sys.exit(f"{need / 1e9:.1f} GB of cache needed, {free / 1e9:.1f} GB free in {folder}")
    start = time.perf_counter()
    shards = build_shards(folder, max(args.n), args.shard_size, args.sources)
    print(
        f"cache: {len(shards)} shards, {max(args.n)} images, built in "
        f"{time.perf_counter() - start:.0f} s, {need / 1e9:.1f} GB",
        flush=True,
    )

    rows = []
    load_before = os.getloadavg()[0]
    for n in sorted(args.n):
        files = shards[: -(-n // args.shard_size)]
        stored = n * SIZE * SIZE * 3
        fits = stored < 0.5 * available_bytes()
        row = {"n": n, "stored_gb": stored / 1e9}
        for augment in (True, False):
            key = "aug" if augment else "read"
            runs: dict[bool, list[dict]] = {True: [], False: []}
            for _ in range(args.repeats):  # alternating, so outside load hits both alike
                for streaming in (True, False) if fits else (True,):
                    runs[streaming].append(run(files, streaming, args, augment))
            for streaming, name in ((True, "stream"), (False, "memory")):
                results = runs[streaming]
                row[f"{name}_{key}"] = results and {
                    "images_per_s": max(r["images_per_s"] for r in results),
                    "peak_rss": max(r["peak_rss"] for r in results),
                }
        rows.append(row)
        print(json.dumps(row), flush=True)
    load_after = os.getloadavg()[0]

    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    print(
        f"\n{SIZE}² cache (uint16 images, uint8 masks), batch {args.batch_size}, "
        f"RotationAugment(360) unless 'read'; {cpu}, {os.cpu_count()} cores; "
        f"load average {load_before:.1f} before, {load_after:.1f} after"
    )
    header = (
        f"{'N':>5} | {'stored':>7} | {'stream RSS':>10} | {'memory RSS':>10} | "
        f"{'stream img/s':>12} | {'memory img/s':>12} | {'ratio':>5} | "
        f"{'read: stream':>12} | {'read: memory':>12}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        s, m = row["stream_aug"], row["memory_aug"]
        sr, mr = row["stream_read"], row["memory_read"]
        print(
            f"{row['n']:>5} | {row['stored_gb']:>5.1f}GB | {s['peak_rss'] / 1e9:>8.2f}GB | "
            + (f"{m['peak_rss'] / 1e9:>8.2f}GB | " if m else f"{'(no fit)':>10} | ")
            + f"{s['images_per_s']:>12.1f} | "
            + (f"{m['images_per_s']:>12.1f} | " if m else f"{'-':>12} | ")
            + (f"{s['images_per_s'] / m['images_per_s']:>5.2f} | " if m else f"{'-':>5} | ")
            + f"{sr['images_per_s']:>12.1f} | "
            + (f"{mr['images_per_s']:>12.1f}" if mr else f"{'-':>12}")
        )
    if args.folder is None:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
