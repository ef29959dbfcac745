"""Reading a preprocessing cache written by `build_cache`: images, masks, records, transforms.

`read_cache` returns the images, union masks and records (each lesion measured on its
full-resolution mask); `read_transforms` the per-image placement in the cache frame;
`read_instance_masks` one image's instance masks. All refuse an incomplete build (saying how
to resume it), a file of another cache version, and, by default, a stale cache.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from mammoseg.data.cache_manifest import (
    CACHE_VERSION,
    _changed,
    _drawable,
    _read_manifest,
    _record_from_json,
    _source_stats,
)
from mammoseg.data.errors import MammosegDataError
from mammoseg.data.records import Record


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


def read_cache(
    path: str | os.PathLike,
    lazy: bool = False,
    verify: bool = True,
    kinds: Sequence[str] | None | str = "built",
) -> tuple[np.ndarray, np.ndarray, list[Record]]:
    """Read a cache written by `build_cache`: the images, union masks and records.

    Args:
        path: the cache file.
        lazy: return the open HDF5 datasets (indexable like arrays, read on access) instead of
            loading everything; use it for caches larger than memory.
        verify: refuse a stale cache, one whose source files still exist but changed size or
            modification time since the build. Missing sources are fine (a cache can be used
            without the raw data).
        kinds: "built" returns the union masks stored at build time; None (every kind) or a
            list of kinds recomputes the unions from the instance masks (not lazy).

    Returns:
        ``(images, masks, records)``: images float32 (N, H, W) in [0, 1], masks uint8
        (N, H, W) in {0, 1}, and the records in cache order, each lesion measured on its
        full-resolution mask given its ``center`` and equal-area ``radius`` when it had none.

    Raises:
        MammosegDataError: no such file, an interrupted build (the message says how to
            resume), not a cache, a stale cache.

    Example:
        >>> images, masks, records = read_cache("cbis-1024.h5")  # doctest: +SKIP
        >>> images.shape, masks.dtype
        ((3103, 1024, 1024), dtype('uint8'))
    """
    path = Path(path)
    handle, manifest = _open_complete(path)
    try:
        records = [_record_from_json(entry) for entry in manifest["records"]]
        if verify:
            changed = _changed(handle["sources"][...], _source_stats(records, require=False))
            if len(changed):
                raise MammosegDataError(
                    f"stale cache: the source files of {len(changed)} image(s) changed since "
                    f"it was built, e.g. {records[changed[0]].path}; run build_cache again "
                    "to re-cache them",
                    path=path,
                )
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
        if isinstance(kinds, str) and kinds == "built":
            masks = handle["masks"] if lazy else handle["masks"][...]
        else:
            kinds = None if kinds is None else set(kinds)
            masks = np.zeros(handle["masks"].shape, np.uint8)
            for index, record in enumerate(records):
                for j, lesion in enumerate(_drawable(record)):
                    if kinds is None or lesion.kind in kinds:
                        masks[index] |= handle["instance_masks"][offsets[index] + j]
        images = handle["images"] if lazy else handle["images"][...]
    except BaseException:
        handle.close()
        raise
    if not lazy:
        handle.close()
    return images, masks, records


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
