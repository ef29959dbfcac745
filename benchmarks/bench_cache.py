"""Benchmark: full-size CBIS-style DICOMs → 1024² cache entries, beside the naive path.

The naive path is what the authors' preprocessing did (facts.md §1): pydicom, then
scikit-image's anti-aliased resize of the image and of each mask, one image after another.
`mammoseg.data.cache.build_cache` does the same work (plus writing the HDF5 file) with area
resampling as sparse products, in worker processes. Each build runs in its own subprocess so
its peak resident memory can be measured, for two image counts: the build streams, so the
peak must not grow with the number of images.

Targets (2 cores): at least 3x the naive path, at least 4 images/s, peak memory under 2 GB.

Usage:
    python benchmarks/bench_cache.py                 # 4000x3000 DICOMs, 12 and 36 images
    python benchmarks/bench_cache.py --quick         # small and fast, to check it runs
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

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mammoseg.data.dicom import write_dicom  # noqa: E402
from mammoseg.data.phantom import synthesize_mammogram  # noqa: E402
from mammoseg.data.records import Lesion, Record  # noqa: E402


def write_dicoms(
    root: Path, n_images: int, shape: tuple[int, int], n_distinct: int
) -> list[Record]:
    """``n_images`` CBIS-style records: 16-bit full mammograms and 8-bit 0/255 ROI masks.

    Only ``n_distinct`` phantoms are drawn (about 4 s each at 4000x3000); the others are
    copies under other names, which costs the reader the same.
    """
    originals = []
    for index in range(n_distinct):
        ph = synthesize_mammogram(np.random.default_rng([7, index]), shape, n_lesions=1)
        image = write_dicom(
            root / f"src{index}" / "000000.dcm", np.round(ph.image * 65535).astype(np.uint16)
        )
        mask = write_dicom(
            root / f"src{index}_1" / "000000.dcm",
            np.where(ph.lesions[0].mask, 255, 0).astype(np.uint8),
        )
        originals.append((image, mask, ph.lesions[0].kind))
    records = []
    for index in range(n_images):
        image, mask, kind = originals[index % n_distinct]
        folder = root / f"img{index:04d}"
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(image, folder / "image.dcm")
        shutil.copyfile(mask, folder / "mask.dcm")
        lesion = Lesion(kind, "malignant", mask_path=str(folder / "mask.dcm"))
        records.append(
            Record(
                f"img{index:04d}",
                f"p{index // 4}",
                "cbis-ddsm",
                str(folder / "image.dcm"),
                lesions=(lesion,),
                shape=shape,
            )
        )
    return records


def naive(records: list[Record], size: int) -> float:
    """Seconds for the naive path: pydicom + skimage resize, one image after another."""
    import pydicom
    from skimage.transform import resize

    start = time.perf_counter()
    for record in records:
        pixels = pydicom.dcmread(record.path).pixel_array.astype(np.float32)
        image = resize(pixels / max(pixels.max(), 1.0), (size, size), order=1, anti_aliasing=True)
        mask = np.zeros((size, size), np.uint8)
        for lesion in record.lesions:
            roi = pydicom.dcmread(lesion.mask_path).pixel_array > 0
            cover = resize(roi.astype(np.float32), (size, size), order=1, anti_aliasing=True)
            mask |= (cover >= 0.5).astype(np.uint8)
        del image
    return time.perf_counter() - start


def peak_rss_mb() -> float:
    """Peak resident memory of this process (VmHWM). Unlike getrusage's ru_maxrss, it is not
    inherited from the parent that started this process."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(args: argparse.Namespace) -> None:
    """Run one cache build (in a fresh process) and print its time and peak memory."""
    from mammoseg.data.cache import build_cache
    from mammoseg.data.records import Lesion, Record

    entries = json.loads(Path(args.child).read_text())
    records = [
        Record(
            **dict(e, lesions=tuple(Lesion(**les) for les in e["lesions"]), shape=tuple(e["shape"]))
        )
        for e in entries
    ]
    out = Path(args.child).with_suffix(".h5")
    start = time.perf_counter()
    build_cache(
        records, out, size=args.size, resize="stretch", workers=args.workers, progress=False
    )
    seconds = time.perf_counter() - start
    out.unlink()
    print(
        json.dumps(
            {
                "seconds": seconds,
                "main_mb": peak_rss_mb(),
                "worker_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
            }
        )
    )


def run_build(records: list[Record], workdir: Path, size: int, workers: int) -> dict:
    from dataclasses import asdict

    spec = workdir / f"build-{len(records)}-{workers}.json"
    spec.write_text(json.dumps([asdict(r) for r in records]))
    command = [
        sys.executable,
        __file__,
        "--child",
        str(spec),
        "--size",
        str(size),
        "--workers",
        str(workers),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small images, few of them")
    parser.add_argument("--counts", type=int, nargs=2, default=(12, 36), help="two image counts")
    parser.add_argument(
        "--naive-images", type=int, default=6, help="images timed on the naive path"
    )
    parser.add_argument("--shape", type=int, nargs=2, default=(4000, 3000))
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    if args.quick:
        args.counts, args.naive_images, args.shape, args.size = (4, 8), 2, (800, 600), 256

    workdir = Path(tempfile.mkdtemp(prefix="bench_cache_"))
    try:
        shape = tuple(args.shape)
        start = time.perf_counter()
        records = write_dicoms(
            workdir / "data", max(args.counts), shape, n_distinct=min(4, max(args.counts))
        )
        print(
            f"wrote {max(args.counts)} DICOMs of {shape[0]}x{shape[1]} (16 bit) + masks "
            f"in {time.perf_counter() - start:.0f} s; target {args.size}², {args.workers} workers\n"
        )
        naive(records[:1], args.size)  # warm-up: imports, page cache
        load_before = os.getloadavg()[0]
        rows = []
        for count in args.counts:
            for workers in sorted({1, args.workers}):
                stats = run_build(records[:count], workdir, args.size, workers)
                total = stats["main_mb"] + (workers * stats["worker_mb"] if workers > 1 else 0)
                name = f"build_cache, {workers} worker(s)"
                rows.append((name, count, stats["seconds"], stats["main_mb"], total))
        # The naive path is timed after the builds too, as the machine's load may change.
        seconds = naive(records[: args.naive_images], args.size)
        naive_rate = args.naive_images / seconds
        rows.insert(0, ("naive (pydicom + skimage)", args.naive_images, seconds, None, None))
        header = (
            f"{'method':<28} {'images':>6} {'seconds':>8} {'images/s':>9} {'vs naive':>9} "
            f"{'peak RSS main':>14} {'peak RSS total':>15}"
        )
        print(header)
        print("-" * len(header))
        for name, count, secs, main_mb, total_mb in rows:
            rate = count / secs
            main_text = "" if main_mb is None else f"{main_mb:.0f} MB"
            total_text = "" if total_mb is None else f"{total_mb:.0f} MB"
            print(
                f"{name:<28} {count:>6} {secs:>8.1f} {rate:>9.2f} {rate / naive_rate:>8.1f}x "
                f"{main_text:>14} {total_text:>15}"
            )
        print(
            "\npeak RSS main: VmHWM of the build process; total: main + workers x the largest"
            "\nworker's peak (an upper bound). At most 2 x workers images are in flight, whatever"
            f"\nthe number of images. Load average (1 min) before / after: {load_before:.1f} / "
            f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores."
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
