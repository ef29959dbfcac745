"""What a preprocessing cache records about its inputs, and when it is stale.

The ``manifest`` (JSON text of the parameters and the records, never pickle) and the
``sources`` (size and modification time of each record's files) written by `build_cache`
and checked by it and by `read_cache`: `_stale_reason` says why a cache cannot serve a
request at all, `_changed` which images must be decoded again.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from mammoseg.data.errors import MammosegDataError
from mammoseg.data.records import Lesion, Record

CACHE_VERSION = 2


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


def _manifest(records: Sequence[Record], target, resize: str, kinds) -> dict[str, Any]:
    manifest = {
        "version": CACHE_VERSION,
        "size": list(target),
        "resize": resize,
        "kinds": None if kinds is None else sorted(kinds),
        "records": [asdict(record) for record in records],
    }
    return json.loads(json.dumps(manifest, default=_jsonable))  # as it will read back


def _read_manifest(handle) -> dict[str, Any]:
    return json.loads(handle["manifest"][...].tobytes().decode("utf-8"))


def _stale_reason(old: dict[str, Any], new: dict[str, Any]) -> str | None:
    """Why a cache of manifest ``old`` cannot serve ``new`` at all (None: it can)."""
    for key in ("version", "size", "resize", "kinds"):
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
