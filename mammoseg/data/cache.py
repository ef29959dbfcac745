"""Preprocessing cache: every image and mask decoded, normalised and resized once, into HDF5.

CBIS-DDSM is about 160 GB of 16-bit DICOMs of several thousand pixels a side; decoding and
resizing them is most of the cost of an epoch. `build_cache` does it once into one HDF5 file:

* ``images`` (N, H, W) uint16 (default; or uint8 or float32, ``image_dtype``): the [0, 1]
  intensities times 65535 (255), rounded; readers divide back to float32 on the fly.
  ``masks`` (N, H, W) uint8 union of the chosen lesion kinds, ``instance_masks`` (M, H, W)
  uint8 one per drawable lesion (any kind), chunked one image per chunk;
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
resampling lives in `mammoseg.data.resample`; this module holds the build, the manifest and
staleness checks, and the readers (`read_cache`, `read_transforms`, `read_instance_masks`).

Fault tolerance: the file is written as ``<path>.part`` with all storage allocated up front,
so writing an image never touches HDF5 metadata; a ``done`` flag is set, and the file flushed,
after each image. A build killed at any point resumes where it stopped; a complete file is
renamed to ``path``. A cache whose parameters or records changed is rebuilt, and an
interrupted build of other parameters is started again; images whose source files changed are
decoded again (only those). Every image, mask and instance-mask chunk carries a fletcher32
checksum: `read_cache` names the image of a damaged image or mask chunk instead of returning
its garbage pixels, and `build_cache`, reusing or resuming a file, checks every stored chunk
and caches the damaged images again, with a warning naming them.

Why uint16: area averaging puts the resized values between the source's grey levels, so no
integer type holds them exactly; uint16 keeps each within half a step of 1/65535 (7.6e-6,
1/130 of an 8-bit level, half a 16-bit level) at half the bytes of float32. At 1024² that is
2 MB an image instead of 4 MB (CBIS-DDSM's 3,103 images: 6.5 GB instead of 13 GB), which is
what makes streaming the cache cheap. ``image_dtype="uint8"`` halves it again at the cost of
rounding to 8-bit levels (lossless only in spirit, for 8-bit sources such as MIAS).

Reading one image at a time (`CacheReader`, the streaming input of
`mammoseg.data.pipeline.make_dataset`) costs one chunk read and its checksum. A cache can be
written as several shard files split by patient (`build_sharded_cache`), each a complete
cache of its own; `cache_files` lists the shards of a folder.
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from mammoseg.checks import check_positive_int
from mammoseg.data.errors import MammosegDataError
from mammoseg.data.records import LESION_KINDS, Lesion, Record, draw_circle
from mammoseg.data.resample import Size, frame, inner_box, parse_size, resample_image, resample_mask

CACHE_VERSION = 4  # 3: fletcher32 checksums on every image chunk; 4: images as uint16

# Stored image types and the factor from [0, 1] intensities to stored values.
IMAGE_DTYPES = {"uint16": 65535.0, "uint8": 255.0, "float32": 1.0}


def _drawable(record: Record) -> list[Lesion]:
    return [lesion for lesion in record.lesions if lesion.has_region]


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (Path, np.ndarray)):
        return str(value) if isinstance(value, Path) else value.tolist()
    raise TypeError(f"cannot store {type(value).__name__} in the cache manifest")


def _record_from_json(entry: dict[str, Any]) -> Record:
    lesions = tuple(
        Lesion(**dict(les, center=None if les["center"] is None else tuple(les["center"])))
        for les in entry["lesions"]
    )
    shape = None if entry["shape"] is None else tuple(entry["shape"])
    return Record(**dict(entry, lesions=lesions, shape=shape))


def _source_files(record: Record) -> list[str]:
    return [record.path] + [les.mask_path for les in _drawable(record) if les.mask_path]


def _source_stats(records: Sequence[Record], require: bool = True) -> np.ndarray:
    """(N, F, 2) int64 [size, mtime_ns] of each record's files (image, then masks); -1 pads
    and, unless ``require``, stands for a missing file."""
    files = [_source_files(record) for record in records]
    stats = np.full((len(records), max(map(len, files)), 2), -1, np.int64)
    absent = []
    for i, names in enumerate(files):
        for j, name in enumerate(names):
            try:
                stat = os.stat(name)
            except OSError:
                absent.append(str(name))
                continue
            stats[i, j] = stat.st_size, stat.st_mtime_ns
    if absent and require:
        more = f" and {len(absent) - 10} more" if len(absent) > 10 else ""
        raise MammosegDataError(
            f"{len(absent)} source file(s) not found: {', '.join(absent[:10])}{more}"
        )
    return stats


def _manifest(
    records: Sequence[Record], target, resize: str, kinds, image_dtype: str = "uint16"
) -> dict[str, Any]:
    manifest = {
        "version": CACHE_VERSION,
        "size": list(target),
        "resize": resize,
        "kinds": None if kinds is None else sorted(kinds),
        "image_dtype": image_dtype,
        "records": [asdict(record) for record in records],
    }
    return json.loads(json.dumps(manifest, default=_jsonable))  # as it will read back


def _read_manifest(handle) -> dict[str, Any]:
    return json.loads(handle["manifest"][...].tobytes().decode("utf-8"))


def _stale_reason(old: dict[str, Any], new: dict[str, Any]) -> str | None:
    """Why a cache of manifest ``old`` cannot serve ``new`` at all (None: it can)."""
    for key in ("version", "size", "resize", "kinds", "image_dtype"):
        if old.get(key) != new[key]:
            return f"{key} was {old.get(key)!r}, now {new[key]!r}"
    if old.get("records") != new["records"]:
        return "the records differ"
    return None


def _changed(stored: np.ndarray, current: np.ndarray) -> np.ndarray:
    """Indices of images whose source files changed (a missing current file counts as not)."""
    if stored.shape != current.shape:
        return np.arange(len(current))
    differs = (stored != current).any(axis=2) & (current[..., 0] >= 0)
    return np.flatnonzero(differs.any(axis=1))


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
        oy, ox, ih, iw = inner_box(transform)
        inner = normalise(resample_image(pixels, (ih, iw)), meta)
    else:
        from mammoseg.data.records import read_pixels

        pixels = read_pixels(path)
        transform = frame(pixels.shape, target, resize)
        oy, ox, ih, iw = inner_box(transform)
        inner = np.clip(resample_image(pixels, (ih, iw)), 0.0, 1.0)
    image = np.zeros(target, np.float32)
    image[oy : oy + ih, ox : ox + iw] = inner
    return image, transform


def _read_binary(path: str) -> np.ndarray:
    """A mask file as booleans: what `records.read_mask` counts as inside (value > 0).

    Raises:
        MammosegDataError: as `records.read_mask`, also for a mask that marks no pixel.
    """
    if not _is_dicom(path):
        from mammoseg.data.records import read_mask

        return read_mask(path)
    from mammoseg.data.dicom import read_dicom_stored

    stored, meta, _ = read_dicom_stored(path)
    low, high = meta["value_range"]
    inside = stored < high if meta["inverted"] else stored > low
    if not inside.any():
        raise MammosegDataError("the ROI mask is all zero: it marks no lesion pixel", path=path)
    return inside


def to_stored(image: np.ndarray, image_dtype: str) -> np.ndarray:
    """[0, 1] float intensities as the cache stores them (rounded to the nearest level).

    Example:
        >>> to_stored(np.array([0.0, 0.5, 1.0]), "uint16")
        array([    0, 32768, 65535], dtype=uint16)
    """
    scale = IMAGE_DTYPES[image_dtype]
    if scale == 1.0:
        return np.asarray(image, np.float32)
    return np.rint(np.clip(image, 0.0, 1.0) * scale).astype(image_dtype)


def from_stored(stored: np.ndarray) -> np.ndarray:
    """Stored cache images back to float32 intensities in [0, 1] (values / 65535 or / 255).

    The division is correctly rounded, so TensorFlow's ``tf.cast(x, tf.float32) / 65535.0``
    (the streaming pipeline's conversion) gives the same float32 bits.

    Example:
        >>> from_stored(np.array([0, 65535], np.uint16))
        array([0., 1.], dtype=float32)
    """
    scale = IMAGE_DTYPES[np.dtype(stored.dtype).name]
    if scale == 1.0:
        return np.asarray(stored, np.float32)
    return stored.astype(np.float32) / np.float32(scale)


def _process(
    record: Record, target: tuple[int, int], resize: str, kinds, image_dtype: str = "uint16"
) -> dict[str, Any]:
    """Decode, normalise and resize one record and its lesions (runs in a worker)."""
    from mammoseg.data.cbis_ddsm import mask_geometry

    image, transform = _read_resized(record.path, target, resize)
    shape = (int(transform[0]), int(transform[1]))
    oy, ox, ih, iw = inner_box(transform)
    lesions = _drawable(record)
    instances = np.zeros((len(lesions), *target), np.uint8)
    geometry = np.full((len(lesions), 3), np.nan)
    for i, lesion in enumerate(lesions):
        if lesion.mask_path is not None:
            full = _read_binary(lesion.mask_path)
            inner = resample_mask(full, (ih, iw))
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
        "image": to_stored(image, image_dtype),
        "mask": union,
        "instances": instances,
        "geometry": geometry,
        "transform": transform,
    }


def _work(job: tuple) -> tuple[int, dict[str, Any]]:
    index, record, *settings = job
    return index, _process(record, *settings)


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
    dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
    if chunks is not None:
        dcpl.set_chunk(chunks)
        # A checksum per chunk (one image): a damaged chunk fails to read instead of
        # returning garbage pixels. HDF5 refuses FILL_TIME_NEVER with a filter.
        dcpl.set_fletcher32()
    else:
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
        image_dtype = np.dtype(manifest["image_dtype"])
        _allocate(handle, "images", (n, height, width), image_dtype, (1, height, width))
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
    verify_stored: bool = True,
    image_dtype: str = "uint16",
) -> Path:
    """Decode, normalise and resize every record and its masks once into an HDF5 cache.

    Resumable and safe: the file is built as ``<path>.part`` and renamed when complete; run
    again after an interruption and only the missing images are processed. An existing cache
    is reused as is only if its parameters, records and source files (size and modification
    time) are unchanged and every stored image passes its checksum. Other parameters or
    records: it is rebuilt; changed source files or a damaged image: those images are cached
    again. Either way a warning says why. An interrupted build with other parameters is
    started again, never resumed.

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
        verify_stored: before reusing or resuming a file, read every stored image, mask and
            instance mask once to check its fletcher32 checksum, and cache the damaged ones
            again. False skips that read (the whole file) and trusts the stored chunks.
        image_dtype: how images are stored: "uint16" (default, within 7.6e-6 of the
            float value), "uint8" (a quarter of float32, rounded to 8-bit levels) or
            "float32" (exact, twice the bytes of uint16).

    Returns:
        ``path`` as a Path.

    Raises:
        ValueError: bad ``size``, ``resize``, ``workers``, ``kinds`` or ``image_dtype``; no
            records.
        MammosegDataError: a source file missing (all listed) or unreadable.

    Example:
        >>> records = load_records("cbis-ddsm", "/data/cbis")  # doctest: +SKIP
        >>> build_cache(records, "cbis-1024.h5", size=1024, resize="stretch")  # doctest: +SKIP
        >>> images, masks, records = read_cache("cbis-1024.h5")  # doctest: +SKIP
    """
    records, target, kinds = _check_build_arguments(records, size, resize, workers, kinds)
    if image_dtype not in IMAGE_DTYPES:
        raise ValueError(
            f"`image_dtype` must be one of {tuple(IMAGE_DTYPES)}, received {image_dtype!r}"
        )
    path = Path(path)
    part = path.with_name(path.name + ".part")
    manifest = _manifest(records, target, resize, kinds, image_dtype)
    stats = _source_stats(records)
    offsets = np.cumsum([0] + [len(_drawable(r)) for r in records]).astype(np.int64)
    plan = _plan(path, part, manifest, stats, records, offsets, verify_stored)
    if plan is None:
        return path
    if plan.fresh:
        part.unlink(missing_ok=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        _create(part, manifest, offsets, stats)
    settings = (target, resize, kinds, image_dtype)
    _write_entries(part, plan, records, stats, offsets, settings, workers, progress)
    os.replace(part, path)
    return path


# --------------------------------------------------------------------------- build phases


def _check_build_arguments(
    records: Sequence[Record],
    size: Size,
    resize: str,
    workers: int | None,
    kinds: Sequence[str] | str | None,
) -> tuple[list[Record], tuple[int, int], tuple[str, ...] | None]:
    """`build_cache`'s arguments checked: the records as a list, the target size, the kinds."""
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
    return records, target, kinds


@dataclass(frozen=True)
class _Plan:
    """What a build writes into ``<path>.part``.

    fresh: create the file anew (nothing to resume).
    done: per image, whether the file already holds it (all False when ``fresh``).
    redo: images held but to write again (changed sources, damaged chunks); they are unmarked
        in the file before anything is written.
    """

    fresh: bool
    done: np.ndarray
    redo: np.ndarray

    @property
    def todo(self) -> np.ndarray:
        done = self.done.copy()
        done[self.redo] = False
        return np.flatnonzero(~done)


def _plan(
    path: Path,
    part: Path,
    manifest: dict[str, Any],
    stats: np.ndarray,
    records: list[Record],
    offsets: np.ndarray,
    verify_stored: bool,
) -> _Plan | None:
    """Decide what is stale and what to resume; None: the complete cache at ``path`` serves.

    A complete cache with the same parameters and records is refreshed in place (moved back
    to ``part``) when source files changed or chunks are damaged; with other parameters it is
    rebuilt, unless ``part`` is an interrupted build of these parameters, which is resumed.
    """
    import h5py

    if path.is_file():
        try:
            with h5py.File(path, "r") as handle:
                reason = _stale_reason(_read_manifest(handle), manifest)
                if reason is None:
                    changed = _changed(handle["sources"][...], stats)
                    done = handle["done"][...].astype(bool)
                    damaged = _damaged_entries(handle, offsets, done, changed, verify_stored)
        except (OSError, KeyError, ValueError) as err:
            reason = f"unreadable ({err})"
        if reason is None:
            if not len(changed) and not len(damaged):
                return None
            _warn_redo(path, records, changed, damaged)
            os.replace(path, part)
            return _Plan(fresh=False, done=done, redo=np.union1d(changed, damaged))
        warnings.warn(f"{path}: stale cache, rebuilding: {reason}", stacklevel=3)
    if part.is_file():
        try:
            with h5py.File(part, "r") as handle:
                reason = _stale_reason(_read_manifest(handle), manifest)
                if reason is None and handle["done"].shape != (len(records),):
                    reason = f"`done` has shape {handle['done'].shape}"
                if reason is None:
                    changed = _changed(handle["sources"][...], stats)
                    done = handle["done"][...].astype(bool)
                    damaged = _damaged_entries(handle, offsets, done, changed, verify_stored)
        except Exception as err:  # a build killed while creating the file: start again
            reason = f"unreadable ({err})"
        if reason is None:
            _warn_redo(part, records, np.zeros(0, np.int64), damaged)
            return _Plan(fresh=False, done=done, redo=np.union1d(changed, damaged))
        warnings.warn(
            f"{part}: not resuming this interrupted build: {reason}; starting again",
            stacklevel=3,
        )
    return _Plan(fresh=True, done=np.zeros(len(records), bool), redo=np.zeros(0, np.int64))


def _damaged_entries(
    handle, offsets: np.ndarray, done: np.ndarray, changed: np.ndarray, verify_stored: bool
) -> np.ndarray:
    """Indices of stored images (done, sources unchanged) one of whose chunks (image, mask,
    instance masks) fails its fletcher32 checksum; empty unless ``verify_stored``."""
    if not verify_stored:
        return np.zeros(0, np.int64)
    stored = done.copy()
    stored[changed] = False
    images, masks, instances = handle["images"], handle["masks"], handle["instance_masks"]
    damaged = []
    for index in np.flatnonzero(stored):
        start, stop = offsets[index], offsets[index + 1]
        try:
            images[index]
            masks[index]
            if stop > start:
                instances[start:stop]
        except OSError:  # HDF5's "data error detected by fletcher32 checksum"
            damaged.append(index)
    return np.asarray(damaged, np.int64)


def _warn_redo(path: Path, records: list[Record], changed: np.ndarray, damaged: np.ndarray) -> None:
    """Say which stored images are cached again, and why."""
    if len(changed):
        names = ", ".join(records[i].image_id for i in changed[:5])
        warnings.warn(
            f"{path}: stale cache, re-caching {len(changed)} image(s) whose source files "
            f"changed since the build: {names}",
            stacklevel=4,
        )
    if len(damaged):
        names = ", ".join(f"{i} ({records[i].image_id})" for i in damaged[:10])
        more = f" and {len(damaged) - 10} more" if len(damaged) > 10 else ""
        warnings.warn(
            f"{path}: damaged cache, re-caching {len(damaged)} image(s) whose stored chunks "
            f"fail their checksum: {names}{more}",
            stacklevel=4,
        )


def _write_entries(
    part: Path,
    plan: _Plan,
    records: list[Record],
    stats: np.ndarray,
    offsets: np.ndarray,
    settings: tuple[tuple[int, int], str, tuple[str, ...] | None, str],
    workers: int | None,
    progress: bool,
) -> None:
    """Process the images ``plan`` has to do and write each, marking it done once on disk."""
    import h5py

    todo = plan.todo
    if workers is None:
        workers = min(os.cpu_count() or 1, 4) if len(todo) >= 8 else 1
    jobs = [(int(i), records[i], *settings) for i in todo]
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
            redo = plan.redo
            if len(redo):  # unmark first: a crash in between must not trust old pixels
                handle["done"][redo] = 0
                handle.flush()
                handle["sources"][redo] = stats[redo]
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


# --------------------------------------------------------------------------- reading


def _open_complete(path: Path):
    import h5py

    if not path.is_file():
        part = path.with_name(path.name + ".part")
        if part.is_file():
            raise MammosegDataError(
                "the cache is incomplete (its build was interrupted); run build_cache again "
                "with the same arguments to resume it",
                path=path,
            )
        raise MammosegDataError("cache file not found", path=path)
    try:
        handle = h5py.File(path, "r")
        manifest = _read_manifest(handle)
    except (OSError, KeyError, ValueError) as err:
        raise MammosegDataError(f"not a mammoseg cache: {err}", path=path) from err
    if manifest.get("version") != CACHE_VERSION or not handle["done"][...].all():
        handle.close()
        raise MammosegDataError("cache of another version, or incomplete; rebuild it", path=path)
    return handle, manifest


def _damaged(name: str, index: int, record: Record, path: Path, err: Exception):
    return MammosegDataError(
        f"damaged cache: {name} of image {index} ({record.image_id}) fails its "
        f"checksum ({err}); run build_cache again to re-cache it",
        path=path,
    )


def _read_checked(handle, name: str, records: Sequence[Record], path: Path) -> np.ndarray:
    """Read a whole per-image dataset; a chunk failing its fletcher32 checksum names its image."""
    try:
        return handle[name][...]
    except OSError as whole:
        for index, record in enumerate(records):
            try:
                handle[name][index]
            except OSError as err:
                raise _damaged(name, index, record, path, err) from err
        raise MammosegDataError(
            f"damaged cache: cannot read {name} ({whole})", path=path
        ) from whole


def _check_kinds(kinds: Sequence[str] | None | str) -> tuple[str, ...] | None | str:
    """``kinds`` as "built", None or a tuple of known lesion kinds."""
    if isinstance(kinds, str) and kinds == "built" or kinds is None:
        return kinds
    kinds = (kinds,) if isinstance(kinds, str) else tuple(kinds)
    unknown = [kind for kind in kinds if kind not in LESION_KINDS]
    if unknown:
        raise ValueError(
            f"`kinds` must be 'built', None or drawn from {LESION_KINDS}, received {unknown}"
        )
    return kinds


def _check_fresh(handle, records: Sequence[Record], path: Path) -> None:
    """Refuse a cache whose source files changed since the build (missing files are fine)."""
    changed = _changed(handle["sources"][...], _source_stats(records, require=False))
    if len(changed):
        raise MammosegDataError(
            f"stale cache: the source files of {len(changed)} image(s) changed since "
            f"it was built, e.g. {records[changed[0]].path}; run build_cache again "
            "to re-cache them",
            path=path,
        )


def _union_rows(
    records: Sequence[Record], offsets: np.ndarray, kinds: tuple[str, ...] | None
) -> list[np.ndarray]:
    """Per image, the instance-mask rows OR-ed into its mask for ``kinds`` (None: every kind)."""
    chosen = None if kinds is None else set(kinds)
    return [
        np.asarray(
            [
                offsets[index] + j
                for j, lesion in enumerate(_drawable(record))
                if chosen is None or lesion.kind in chosen
            ],
            np.int64,
        )
        for index, record in enumerate(records)
    ]


def _serves_built(manifest: dict[str, Any], kinds) -> bool:
    """Whether the stored union masks are the unions for ``kinds`` (no recomputing needed)."""
    if isinstance(kinds, str):
        return True  # "built"
    built = manifest.get("kinds")
    return (kinds is None and built is None) or (
        kinds is not None and built is not None and sorted(set(kinds)) == built
    )


class CachedImages:
    """A cache's images, read on access, as float32 in [0, 1] (``read_cache(lazy=True)``).

    Indexes like the HDF5 dataset it wraps (``images[3]``, ``images[2:5]``); ``shape`` and
    ``len`` are the dataset's, ``dtype`` is float32.

    Example:
        >>> images, masks, records = read_cache("cbis-1024.h5", lazy=True)  # doctest: +SKIP
        >>> images[0].dtype  # doctest: +SKIP
        dtype('float32')
    """

    dtype = np.dtype(np.float32)

    def __init__(self, dataset) -> None:
        self._dataset = dataset

    @property
    def shape(self) -> tuple[int, ...]:
        return self._dataset.shape

    def __len__(self) -> int:
        return len(self._dataset)

    def __getitem__(self, key) -> np.ndarray:
        return from_stored(self._dataset[key])


def read_cache(
    path: str | os.PathLike,
    lazy: bool = False,
    verify: bool = True,
    kinds: Sequence[str] | None | str = "built",
) -> tuple[np.ndarray, np.ndarray, list[Record]]:
    """Read a cache written by `build_cache`: the images, union masks and records.

    Loads everything into memory; `CacheReader` reads one image at a time (what
    `mammoseg.data.pipeline.make_dataset` streams from).

    Args:
        path: the cache file.
        lazy: return the images as a `CachedImages` view and the masks as the open HDF5
            dataset (both read on access) instead of loading everything.
        verify: refuse a stale cache, one whose source files still exist but changed size or
            modification time since the build. Missing sources are fine (a cache can be used
            without the raw data).
        kinds: "built" returns the union masks stored at build time; None (every kind) or a
            list of kinds recomputes the unions from the instance masks (not lazy).

    Returns:
        ``(images, masks, records)``: images float32 (N, H, W) in [0, 1] (the stored uint16
        divided by 65535), masks uint8 (N, H, W) in {0, 1}, and the records in cache order,
        each lesion measured on its full-resolution mask given its ``center`` and equal-area
        ``radius`` when it had none.

    Raises:
        MammosegDataError: no such file, an interrupted build (the message says how to
            resume), not a cache, a stale cache, an image chunk failing its checksum (the
            image named; not checked with ``lazy=True`` until the chunk is read).
        ValueError: an unknown lesion kind in ``kinds``.

    Example:
        >>> images, masks, records = read_cache("cbis-1024.h5")  # doctest: +SKIP
        >>> images.shape, masks.dtype
        ((3103, 1024, 1024), dtype('uint8'))
    """
    path = Path(path)
    kinds = _check_kinds(kinds)
    handle, manifest = _open_complete(path)
    try:
        records = [_record_from_json(entry) for entry in manifest["records"]]
        if verify:
            _check_fresh(handle, records, path)
        offsets = handle["instance_offsets"][...]
        geometry = handle["geometry"][...]
        for index, record in enumerate(records):
            measured = iter(geometry[offsets[index] : offsets[index + 1]])
            lesions = []
            for lesion in record.lesions:
                row = next(measured) if lesion.has_region else None
                if row is not None and lesion.center is None and not np.isnan(row).any():
                    lesion = replace(
                        lesion, center=(float(row[0]), float(row[1])), radius=float(row[2])
                    )
                lesions.append(lesion)
            records[index] = replace(record, lesions=tuple(lesions))
        if isinstance(kinds, str):  # "built"
            masks = handle["masks"] if lazy else _read_checked(handle, "masks", records, path)
        else:
            masks = np.zeros(handle["masks"].shape, np.uint8)
            for index, rows in enumerate(_union_rows(records, offsets, kinds)):
                for row in rows:
                    masks[index] |= handle["instance_masks"][row]
        if lazy:
            images = CachedImages(handle["images"])
        else:
            images = from_stored(_read_checked(handle, "images", records, path))
    except BaseException:
        handle.close()
        raise
    if not lazy:
        handle.close()
    return images, masks, records


class CacheReader:
    """One cache file opened for reading image by image: the streaming side of the cache.

    Each `read_into` reads one image chunk and one mask chunk (or the instance-mask chunks
    OR-ed for ``kinds``), each checked against its fletcher32 checksum, into caller-owned
    buffers: memory does not grow with the number of images. Images come back as stored
    (``image_dtype``, see `from_stored`), masks as uint8. `read_all` loads everything at once
    (the in-memory path of the pipeline). Safe to share between threads (h5py serialises
    its calls).

    Args:
        path: the cache file.
        kinds: "built" (the union masks stored at build time), None (every kind) or a list of
            kinds (unions recomputed from the instance masks, unless they are the built ones).
        verify: refuse a stale cache, as `read_cache`.

    Raises:
        MammosegDataError: as `read_cache`; a damaged chunk when it is read, naming the image.
        ValueError: an unknown lesion kind in ``kinds``.

    Example:
        >>> with CacheReader("cbis-1024.h5") as reader:  # doctest: +SKIP
        ...     image = np.empty(reader.size, reader.image_dtype)
        ...     mask = np.empty(reader.size, np.uint8)
        ...     reader.read_into(0, image, mask)
    """

    def __init__(
        self,
        path: str | os.PathLike,
        kinds: Sequence[str] | None | str = "built",
        verify: bool = True,
    ) -> None:
        self.path = Path(path)
        kinds = _check_kinds(kinds)
        self._handle, manifest = _open_complete(self.path)
        try:
            self.records = [_record_from_json(entry) for entry in manifest["records"]]
            if verify:
                _check_fresh(self._handle, self.records, self.path)
            self._images = self._handle["images"]
            self._masks = self._handle["masks"]
            self._instances = self._handle["instance_masks"]
            self._rows = None
            if not _serves_built(manifest, kinds):
                offsets = self._handle["instance_offsets"][...]
                self._rows = _union_rows(self.records, offsets, kinds)
        except BaseException:
            self._handle.close()
            raise
        self.size: tuple[int, int] = tuple(self._images.shape[1:3])
        self.image_dtype = np.dtype(self._images.dtype)

    def __len__(self) -> int:
        return len(self.records)

    @property
    def nbytes(self) -> int:
        """Bytes of the stored images and union masks (what `read_all` holds in memory)."""
        return len(self) * self.size[0] * self.size[1] * (self.image_dtype.itemsize + 1)

    def read_into(self, index: int, image: np.ndarray, mask: np.ndarray) -> None:
        """Read image ``index`` into ``image`` (H, W) of ``image_dtype`` and its mask into
        ``mask`` (H, W) uint8."""
        name = "images"
        try:
            self._images.read_direct(image, np.s_[index])
            name = "masks" if self._rows is None else "instance_masks"
            if self._rows is None:
                self._masks.read_direct(mask, np.s_[index])
            else:
                mask[...] = 0
                for row in self._rows[index]:
                    mask |= self._instances[row]
        except OSError as err:  # HDF5's "data error detected by fletcher32 checksum"
            raise _damaged(name, index, self.records[index], self.path, err) from err

    def read_all(self) -> tuple[np.ndarray, np.ndarray]:
        """Every image (as stored) and mask (uint8), (N, H, W) each."""
        images = _read_checked(self._handle, "images", self.records, self.path)
        if self._rows is None:
            return images, _read_checked(self._handle, "masks", self.records, self.path)
        masks = np.empty((len(self), *self.size), np.uint8)
        for index in range(len(self)):
            self.read_into(index, images[index], masks[index])
        return images, masks

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> CacheReader:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


# --------------------------------------------------------------------------- shards


def shard_by_patient(records: Sequence[Record], shards: int) -> list[list[Record]]:
    """Split records into ``shards`` lists, every patient's images in one, image counts balanced.

    Patients go, largest first (ties by id), to the shard with the fewest images so far; each
    shard keeps its records in their original order. Deterministic.

    Raises:
        ValueError: ``shards`` not a positive integer, or more shards than patients.

    Example:
        >>> a = Record("a1", "p1", "mias", "a1.pgm"); b = Record("b1", "p2", "mias", "b1.pgm")
        >>> [[r.image_id for r in s] for s in shard_by_patient([a, b, a], 2)]
        [['a1', 'a1'], ['b1']]
    """
    check_positive_int("shards", shards)
    by_patient: dict[str, list[int]] = {}
    for index, record in enumerate(records):
        by_patient.setdefault(record.patient_id, []).append(index)
    if shards > len(by_patient):
        raise ValueError(
            f"`shards` must be at most the number of patients ({len(by_patient)}), "
            f"received {shards}"
        )
    counts = [0] * shards
    members: list[list[int]] = [[] for _ in range(shards)]
    for patient in sorted(by_patient, key=lambda p: (-len(by_patient[p]), p)):
        lightest = counts.index(min(counts))
        members[lightest].extend(by_patient[patient])
        counts[lightest] += len(by_patient[patient])
    return [[records[i] for i in sorted(indices)] for indices in members]


def shard_name(index: int, shards: int) -> str:
    """The file name of shard ``index`` of ``shards``: ``shard-00001-of-00004.h5``.

    Example:
        >>> shard_name(1, 4)
        'shard-00001-of-00004.h5'
    """
    return f"shard-{index:05d}-of-{shards:05d}.h5"


def build_sharded_cache(
    records: Sequence[Record],
    folder: str | os.PathLike,
    shards: int,
    **options: Any,
) -> list[Path]:
    """`build_cache` into ``shards`` files of ``folder``, split by patient (`shard_by_patient`).

    Each shard is a complete cache (resumable, checksummed, refreshed when stale on its own);
    a split of the records never cuts a woman in two. With several workers
    (`mammoseg.data.pipeline.make_dataset` given an ``input_context``) each reads its own
    shards, so use at least as many shards as workers, ideally a multiple.

    Args:
        records: the mammograms.
        folder: where the shards go (created); shard files of another count are left alone.
        shards: how many files.
        **options: `build_cache`'s keyword arguments (size, resize, kinds, image_dtype, ...).

    Returns:
        The shard paths, in order.

    Raises:
        ValueError: as `build_cache` and `shard_by_patient`.

    Example:
        >>> paths = build_sharded_cache(records, "cbis-1024", shards=8, size=1024)  # doctest: +SKIP
        >>> ds = make_dataset("cbis-1024", None, batch_size=8)  # doctest: +SKIP
    """
    folder = Path(folder)
    parts = shard_by_patient(list(records), shards)
    return [
        build_cache(part, folder / shard_name(index, shards), **options)
        for index, part in enumerate(parts)
    ]


def cache_files(source: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Path]:
    """The cache files of ``source``: one file, a folder of shards (its ``*.h5`` files, sorted
    by name) or a list of files.

    Raises:
        MammosegDataError: a folder without ``.h5`` files, an empty list.

    Example:
        >>> [p.name for p in cache_files("cbis-1024")]  # doctest: +SKIP
        ['shard-00000-of-00002.h5', 'shard-00001-of-00002.h5']
    """
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_dir():
            return [path]
        files = sorted(p for p in path.glob("*.h5") if p.is_file())
        if not files:
            raise MammosegDataError("no cache files (*.h5) in this folder", path=path)
        return files
    files = [Path(p) for p in source]
    if not files:
        raise MammosegDataError("empty list of cache files")
    return files


def read_transforms(path: str | os.PathLike) -> np.ndarray:
    """Per-image transforms (N, 6) of a cache: [height, width, sy, sx, off_y, off_x].

    A cache pixel (r, c) comes from the original pixel ((r - off_y + 0.5) / sy - 0.5,
    (c - off_x + 0.5) / sx - 0.5); `to_original_size` applies the inverse to a whole map.

    Example:
        >>> read_transforms("cbis-1024.h5")[0]  # doctest: +SKIP
        array([4.664e+03, 3.064e+03, 2.195e-01, 2.195e-01, 0.000e+00, 1.784e+02])
    """
    handle, _ = _open_complete(Path(path))
    with handle:
        return handle["transforms"][...]


def read_instance_masks(path: str | os.PathLike, index: int) -> np.ndarray:
    """The instance masks (K, H, W) uint8 of image ``index`` of a cache, one per drawable
    lesion of its record in order (for instance models such as Mask R-CNN).

    Example:
        >>> read_instance_masks("cbis-1024.h5", 0).shape  # doctest: +SKIP
        (1, 1024, 1024)
    """
    handle, _ = _open_complete(Path(path))
    with handle:
        offsets = handle["instance_offsets"][...]
        if not 0 <= index < len(offsets) - 1:
            raise IndexError(f"`index` must be in [0, {len(offsets) - 1}), received {index}")
        return handle["instance_masks"][offsets[index] : offsets[index + 1]]
