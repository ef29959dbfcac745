"""Preprocessing cache: every image and mask decoded, normalised and resized once, into HDF5.

CBIS-DDSM is about 160 GB of 16-bit DICOMs of several thousand pixels a side; decoding and
resizing them is most of the cost of an epoch. `build_cache` does it once into one HDF5 file:

* ``images`` (N, H, W) float32 in [0, 1], ``masks`` (N, H, W) uint8 union of the chosen lesion
  kinds, ``instance_masks`` (M, H, W) uint8 one per drawable lesion (any kind), chunked one
  image per chunk;
* ``transforms`` (N, 6): original height and width, scale (row, col) and offset (row, col) of
  the resized image inside the cache frame, so predictions map back (`to_original_size`);
* ``geometry`` (M, 3): each lesion's centroid row, column and equal-area radius in original
  pixels, measured on the full-resolution mask;
* ``manifest``: JSON text (never pickle) of the parameters and the records; ``sources``
  (N, F, 2): size and modification time of each record's image and mask files.

Resizing is area averaging (a box filter: every source pixel counts by the area it covers)
applied as two sparse matrix products, which is exact anti-aliasing for any factor and far
cheaper than a Gaussian pre-filter at 4000 px. A mask is resized the same way and a target
pixel set when at least half of it is covered; a lesion smaller than a target pixel keeps its
most covered pixel, so it never vanishes (the authors' ``== 255`` threshold erased them). The
resampling lives in `mammoseg.data.resample`, the manifest and staleness checks in
`mammoseg.data.cache_manifest`, and the readers (`read_cache`, `read_transforms`,
`read_instance_masks`) in `mammoseg.data.cache_read`.

Fault tolerance: the file is written as ``<path>.part`` with all storage allocated up front,
so writing an image never touches HDF5 metadata; a ``done`` flag is set, and the file flushed,
after each image. A build killed at any point resumes where it stopped; a complete file is
renamed to ``path``. A cache whose parameters or records changed is rebuilt; images whose
source files changed are decoded again (only those).
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from mammoseg.data.cache_manifest import (
    CACHE_VERSION,
    _changed,
    _drawable,
    _manifest,
    _read_manifest,
    _source_stats,
    _stale_reason,
)

# The readers keep their address, mammoseg.data.cache.
from mammoseg.data.cache_read import (  # noqa: F401
    read_cache,
    read_instance_masks,
    read_transforms,
)
from mammoseg.data.errors import MammosegDataError
from mammoseg.data.records import LESION_KINDS, Record, Size, draw_circle, parse_size

# resample_matrix, frame and to_original_size keep their old address, mammoseg.data.cache.
from mammoseg.data.resample import (  # noqa: F401
    _inner,
    _resample,
    _resample_mask,
    frame,
    resample_matrix,
    to_original_size,
)

RESIZE_MODES = ("pad", "stretch")


# --------------------------------------------------------------------------- one image


def _is_dicom(path: str) -> bool:
    return Path(path).suffix.lower() in (".dcm", ".dicom", "")


def _read_resized(path: str, target: tuple[int, int], resize: str):
    """The image at its place in the cache frame, and its transform."""
    if _is_dicom(path):  # resize the stored values, normalise after: it is affine
        from mammoseg.data.dicom import normalise, read_dicom_stored

        pixels, meta, _ = read_dicom_stored(path)
        transform = frame(pixels.shape, target, resize)
        oy, ox, ih, iw = _inner(transform)
        inner = normalise(_resample(pixels, (ih, iw)), meta)
    else:
        from mammoseg.data.records import read_pixels

        pixels = read_pixels(path)
        transform = frame(pixels.shape, target, resize)
        oy, ox, ih, iw = _inner(transform)
        inner = np.clip(_resample(pixels, (ih, iw)), 0.0, 1.0)
    image = np.zeros(target, np.float32)
    image[oy : oy + ih, ox : ox + iw] = inner
    return image, transform


def _read_binary(path: str) -> np.ndarray:
    """A mask file as booleans: what `records.load_mask` counts as inside (value > 0)."""
    if _is_dicom(path):
        from mammoseg.data.dicom import read_dicom_stored

        stored, meta, _ = read_dicom_stored(path)
        low, high = meta["value_range"]
        return stored < high if meta["inverted"] else stored > low
    from mammoseg.data.records import read_pixels

    return read_pixels(path) > 0


def _process(record: Record, target: tuple[int, int], resize: str, kinds) -> dict[str, Any]:
    """Decode, normalise and resize one record and its lesions (runs in a worker)."""
    from mammoseg.data.cbis_ddsm import mask_geometry

    image, transform = _read_resized(record.path, target, resize)
    shape = (int(transform[0]), int(transform[1]))
    oy, ox, ih, iw = _inner(transform)
    lesions = _drawable(record)
    instances = np.zeros((len(lesions), *target), np.uint8)
    geometry = np.full((len(lesions), 3), np.nan)
    for i, lesion in enumerate(lesions):
        if lesion.mask_path is not None:
            full = _read_binary(lesion.mask_path)
            inner = _resample_mask(full, (ih, iw))
            measured = mask_geometry(full, shape)
            if measured is not None:
                geometry[i] = (*measured[0], measured[1])
        else:
            inner = draw_circle((ih, iw), lesion.center, lesion.radius, shape)
            geometry[i] = (*lesion.center, lesion.radius)
        instances[i, oy : oy + ih, ox : ox + iw] = inner
    chosen = [i for i, les in enumerate(lesions) if kinds is None or les.kind in kinds]
    union = np.zeros(target, np.uint8)
    for i in chosen:
        union |= instances[i]
    return {
        "image": image,
        "mask": union,
        "instances": instances,
        "geometry": geometry,
        "transform": transform,
    }


def _work(job: tuple) -> tuple[int, dict[str, Any]]:
    index, record, target, resize, kinds = job
    return index, _process(record, target, resize, kinds)


def _init_worker() -> None:
    """Keep freed image buffers in the worker's heap: glibc otherwise returns every large
    array to the system and the next image pays for fresh pages (about a third of the time).
    """
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 32 << 20)  # M_MMAP_THRESHOLD: arrays up to 32 MB from the heap
        libc.mallopt(-1, 1 << 30)  # M_TRIM_THRESHOLD: do not give the heap back each time
    except (OSError, AttributeError):
        pass


def _pool(workers: int) -> ProcessPoolExecutor | None:
    """A process pool (None for ``workers`` <= 1). Fork is fast and safe while no
    TensorFlow threads exist; once TensorFlow is loaded, spawn clean interpreters instead.
    """
    if workers <= 1:
        return None
    method = "fork" if sys.platform == "linux" and "tensorflow" not in sys.modules else "spawn"
    pool = ProcessPoolExecutor(workers, mp_context=get_context(method), initializer=_init_worker)
    pool.submit(int).result()  # start the workers now, before the HDF5 file is opened
    return pool


def _run(
    jobs: list[tuple], pool: ProcessPoolExecutor | None, workers: int
) -> Iterator[tuple[int, dict]]:
    """Results of ``jobs`` in completion order; at most 2 x workers images in flight."""
    if pool is None:
        for job in jobs:
            yield _work(job)
        return
    from concurrent.futures import FIRST_COMPLETED, wait

    pending, limit = set(), 2 * workers
    try:
        for job in jobs:
            pending.add(pool.submit(_work, job))
            if len(pending) >= limit:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    yield future.result()
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                yield future.result()
    finally:
        for future in pending:
            future.cancel()


# --------------------------------------------------------------------------- HDF5 file


def _allocate(handle, name: str, shape: tuple[int, ...], dtype, chunks=None) -> None:
    """A dataset whose storage is allocated now: later writes never touch HDF5 metadata."""
    import h5py

    if 0 in shape:
        handle.create_dataset(name, shape=shape, dtype=dtype)
        return
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    if chunks is not None:
        dcpl.set_chunk(chunks)
    dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
    dcpl.set_fill_time(h5py.h5d.FILL_TIME_NEVER)
    dcpl.set_obj_track_times(False)
    space = h5py.h5s.create_simple(shape)
    h5py.h5d.create(handle.id, name.encode(), h5py.h5t.py_create(np.dtype(dtype)), space, dcpl=dcpl)


def _create(part: Path, manifest: dict[str, Any], offsets: np.ndarray, stats: np.ndarray) -> None:
    import h5py

    n, m = len(manifest["records"]), int(offsets[-1])
    height, width = manifest["size"]
    with h5py.File(part, "w") as handle:
        text = json.dumps(manifest).encode("utf-8")
        handle.create_dataset("manifest", data=np.frombuffer(text, np.uint8))
        handle.create_dataset("instance_offsets", data=offsets)
        _allocate(handle, "sources", stats.shape, np.int64)
        handle["sources"][...] = stats
        _allocate(handle, "images", (n, height, width), np.float32, (1, height, width))
        _allocate(handle, "masks", (n, height, width), np.uint8, (1, height, width))
        _allocate(handle, "instance_masks", (m, height, width), np.uint8, (1, height, width))
        _allocate(handle, "geometry", (m, 3), np.float64)
        _allocate(handle, "transforms", (n, 6), np.float64)
        _allocate(handle, "done", (n,), np.uint8)
        handle["done"][...] = 0
        handle.attrs["format"] = f"mammoseg preprocessing cache v{CACHE_VERSION}"


def build_cache(
    records: Sequence[Record],
    path: str | os.PathLike,
    size: Size = 1024,
    resize: str = "pad",
    workers: int | None = None,
    kinds: Sequence[str] | None = ("mass",),
    progress: bool = True,
) -> Path:
    """Decode, normalise and resize every record and its masks once into an HDF5 cache.

    Resumable and safe: the file is built as ``<path>.part`` and renamed when complete; run
    again after an interruption and only the missing images are processed. An existing cache
    is reused as is only if its parameters, records and source files (size and modification
    time) are unchanged. Other parameters or records: it is rebuilt; changed source files:
    those images are cached again. Either way a warning says why.

    Args:
        records: the mammograms (any source).
        path: the cache file, e.g. ``cbis-1024-pad.h5``.
        size: int (square) or (height, width) of the cached images (paper: 1024).
        resize: "pad" keeps the aspect ratio and centres the image on black (the scale and
            offset are stored, see `read_transforms`); "stretch" squashes to ``size`` as the
            paper did.
        workers: processes decoding in parallel; None: one per core (at most 4) when there
            are 8 images or more to do, else 1 (in this process).
        kinds: lesion kinds OR-ed into the union ``masks`` (None: every kind; the paper's
            CBIS-DDSM masks OR-ed every abnormality). Instance masks hold every lesion.
        progress: show a tqdm progress bar.

    Returns:
        ``path`` as a Path.

    Raises:
        ValueError: bad ``size``, ``resize``, ``workers`` or ``kinds``; no records.
        MammosegDataError: a source file missing (all listed) or unreadable.

    Example:
        >>> records = load_records("cbis-ddsm", "/data/cbis")  # doctest: +SKIP
        >>> build_cache(records, "cbis-1024.h5", size=1024, resize="stretch")  # doctest: +SKIP
        >>> images, masks, records = read_cache("cbis-1024.h5")  # doctest: +SKIP
    """
    import h5py

    target = parse_size(size)
    if resize not in RESIZE_MODES:
        raise ValueError(f"`resize` must be one of {RESIZE_MODES}, received {resize!r}")
    if workers is not None and (not isinstance(workers, int) or workers < 0):
        raise ValueError(f"`workers` must be None or an integer >= 0, received {workers!r}")
    if kinds is not None:
        kinds = (kinds,) if isinstance(kinds, str) else tuple(kinds)
        if any(kind not in LESION_KINDS for kind in kinds):
            raise ValueError(f"`kinds` must be drawn from {LESION_KINDS}, received {kinds}")
    records = list(records)
    if not records:
        raise ValueError("`records` is empty: nothing to cache")
    path = Path(path)
    part = path.with_name(path.name + ".part")
    manifest = _manifest(records, target, resize, kinds)
    stats = _source_stats(records)
    if path.is_file():
        try:
            with h5py.File(path, "r") as handle:
                reason = _stale_reason(_read_manifest(handle), manifest)
                changed = _changed(handle["sources"][...], stats)
        except (OSError, KeyError, ValueError) as err:
            reason = f"unreadable ({err})"
        if reason is None and not len(changed):
            return path
        if reason is None:  # same parameters and records: redo only the changed images
            names = ", ".join(records[i].image_id for i in changed[:5])
            warnings.warn(
                f"{path}: stale cache, re-caching {len(changed)} image(s) whose source files "
                f"changed since the build: {names}",
                stacklevel=2,
            )
            os.replace(path, part)
        else:
            warnings.warn(f"{path}: stale cache, rebuilding: {reason}", stacklevel=2)
    offsets = np.cumsum([0] + [len(_drawable(r)) for r in records]).astype(np.int64)
    resume = False
    if part.is_file():
        try:
            with h5py.File(part, "r") as handle:
                resume = _stale_reason(_read_manifest(handle), manifest) is None
                resume = resume and handle["done"].shape == (len(records),)
                changed = _changed(handle["sources"][...], stats)
                done = handle["done"][...].astype(bool)
        except Exception:  # a build killed while creating the file: start again
            resume = False
    if not resume:
        part.unlink(missing_ok=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        _create(part, manifest, offsets, stats)
        changed, done = np.zeros(0, np.int64), np.zeros(len(records), bool)
    done[changed] = False
    todo = np.flatnonzero(~done)
    if workers is None:
        workers = min(os.cpu_count() or 1, 4) if len(todo) >= 8 else 1
    jobs = [(int(i), records[i], target, resize, kinds) for i in todo]
    # The pool starts before the file is opened for writing: no worker inherits it.
    # rdcc_nbytes=0: chunks go straight to the file, none waits in HDF5's chunk cache.
    pool = _pool(workers)
    bar = tqdm(
        total=len(records),
        initial=len(records) - len(todo),
        desc="caching images",
        disable=not progress,
    )
    try:
        with h5py.File(part, "r+", rdcc_nbytes=0) as handle, bar:
            if len(changed):  # unmark first: a crash in between must not trust old pixels
                handle["done"][changed] = 0
                handle.flush()
                handle["sources"][changed] = stats[changed]
                handle.flush()
            for index, result in _run(jobs, pool, workers):
                start, stop = offsets[index], offsets[index + 1]
                handle["images"][index] = result["image"]
                handle["masks"][index] = result["mask"]
                if stop > start:
                    handle["instance_masks"][start:stop] = result["instances"]
                    handle["geometry"][start:stop] = result["geometry"]
                handle["transforms"][index] = result["transform"]
                handle.flush()  # the image is on disk before it is marked done
                handle["done"][index] = 1
                handle.flush()
                bar.update()
            if not handle["done"][...].all():
                raise MammosegDataError("cache build ended with images missing", path=part)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    os.replace(part, path)
    return path
