"""Reader for CBIS-DDSM (Lee et al., 2017): the case-description CSVs and the DICOM folders.

The four official CSVs (mass/calc x training/test) have one row per abnormality. Their columns
differ slightly (``breast_density`` in the mass files, ``breast density`` in the calc files)
and the quoted ROI or crop path of every row ends with an embedded newline, so they are read
with a real CSV parser. Every ``image file path`` names one full mammogram by its first folder
(``Mass-Training_P_00001_LEFT_CC``); the mass and calc series of one breast view are separate
files, hence separate records; the CSV parsing (`read_case_descriptions`) lives in
`mammoseg.data.cbis_csv` and is re-exported here. Abnormality *n* of an image has its ROI mask
and its cropped image in the folder ``<image folder>_<n>``.

On disk, two download layouts exist (facts.md §4): the legacy one repeats the CSV paths
(``…/<study UID>/<series UID>/000000.dcm``); newer NBIA downloads put everything under
``CBIS-DDSM/`` with descriptive series folders and files ``1-1.dcm``, ``1-2.dcm``. Either way
the ROI mask and the crop share a folder in no fixed order, and the CSV columns naming them
are not reliable: the authors told them apart by file size (≥ 2 MB → mask), here the mask is
the file whose pixels hold at most two values and whose shape matches the full image.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

# The CSV reader keeps its old address, mammoseg.data.cbis_ddsm.
from mammoseg.data.cbis_csv import (  # noqa: F401
    _FOLDER,
    CSV_NAMES,
    DENSITY_COLUMNS,
    KIND_COLUMNS,
    PATHOLOGY,
    REQUIRED_COLUMNS,
    _integer,
    _parse_row,
    _safe_relative,
    find_case_descriptions,
    read_case_descriptions,
)
from mammoseg.data.dicom import read_dicom_header, sample_rows
from mammoseg.data.errors import MammosegDataError
from mammoseg.data.records import Lesion, Record

ASPECT_TOLERANCE = 0.01  # a mask of another size is resized when its aspect agrees within 1 %


def mask_geometry(
    mask: np.ndarray, image_shape: tuple[int, int] | None = None
) -> tuple[tuple[float, float], float] | None:
    """Centroid (row, col) and equal-area radius of a binary mask, in ``image_shape`` pixels.

    Args:
        mask: the mask (any non-zero pixel is inside).
        image_shape: (height, width) to express the result in (None: the mask's own).

    Returns:
        ``((row, col), radius)``, or None for an empty mask.

    Example:
        >>> mask_geometry(np.pad(np.ones((2, 2)), 1))
        ((1.5, 1.5), 1.1283791670955126)
    """
    inside = np.asarray(mask)
    inside = inside if inside.dtype == bool else inside > 0
    any_rows = np.flatnonzero(inside.any(axis=1))
    if any_rows.size == 0:
        return None
    r0, r1 = any_rows[0], any_rows[-1] + 1  # look only at the lesion's rows: masks are large
    rows, cols = np.nonzero(inside[r0:r1])
    rows = rows + r0
    sy = sx = 1.0
    if image_shape is not None:
        sy, sx = image_shape[0] / inside.shape[0], image_shape[1] / inside.shape[1]
    center = (float((rows.mean() + 0.5) * sy - 0.5), float((cols.mean() + 0.5) * sx - 0.5))
    return center, float(np.sqrt(rows.size * sy * sx / np.pi))


class _Disk:
    """Finds the files of a CSV path in the legacy or the NBIA download layout."""

    def __init__(self, root: Path) -> None:
        self.bases = [b for b in (root, root / "CBIS-DDSM") if b.is_dir()]
        self.folders: dict[str, Path] = {}
        for base in self.bases:
            with os.scandir(base) as entries:
                for entry in entries:
                    if entry.is_dir() and entry.name not in self.folders:
                        self.folders[entry.name] = Path(entry.path)

    def files(self, csv_path: str) -> list[Path]:
        """The exact file if it exists, else every DICOM under the path's first folder."""
        for base in self.bases:
            if (base / csv_path).is_file():
                return [base / csv_path]
        return self.folder_files(csv_path.split("/")[0])

    def folder_files(self, name: str) -> list[Path]:
        folder = self.folders.get(name)
        return [] if folder is None else sorted(p for p in folder.rglob("*.dcm") if p.is_file())


def _aspect_agrees(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return abs((a[0] / a[1]) / (b[0] / b[1]) - 1.0) <= ASPECT_TOLERANCE


def _find_mask(lesion: Lesion, image_shape, disk: _Disk):
    """(mask path or None, crop path or None, problem or None) of one abnormality."""
    names = {lesion.attributes["roi_csv_path"].split("/")[0]}
    names.add(lesion.attributes["crop_csv_path"].split("/")[0])
    candidates = sorted({p for name in names for p in disk.folder_files(name)})
    if not candidates:
        return None, None, "missing"
    masks, crops = [], []
    for path in candidates:
        shape = read_dicom_header(path)["shape"]
        binary = len(np.unique(sample_rows(path))) <= 2
        (masks if binary else crops).append((path, shape))
    crop = crops[0][0] if crops else None
    if not masks:
        return (
            None,
            crop,
            "no file holding two values (a mask) among " + ", ".join(p.name for p in candidates),
        )
    masks.sort(key=lambda m: (m[1] != image_shape, not _aspect_agrees(m[1], image_shape)))
    path, shape = masks[0]
    if not _aspect_agrees(shape, image_shape):
        return None, crop, f"mask {shape[0]}x{shape[1]} vs image {image_shape[0]}x{image_shape[1]}"
    return path, crop, None


def load_cbis_records(
    root: str | os.PathLike,
    csv: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    missing: str = "raise",
    measure_masks: bool = False,
) -> list[Record]:
    """Load a CBIS-DDSM download: CSV rows resolved to the DICOM files on disk.

    Args:
        root: the download folder: the image folders themselves, or a folder holding
            ``CBIS-DDSM/`` (the NBIA layout).
        csv: the case-description CSVs, or a folder holding them; None: the CSVs in ``root``.
        missing: "raise" (default) lists every missing image and mask folder in one error;
            "skip" drops images whose file is missing and keeps abnormalities whose mask is
            missing without a mask, with one warning listing them.
        measure_masks: decode every mask to fill each lesion's ``center`` and equal-area
            ``radius`` (reads every mask; `mammoseg.data.cache.build_cache` does it anyway).

    Returns:
        Records sorted by image id, with absolute ``path``, ``shape`` from the DICOM header and
        each lesion's ``mask_path`` the file recognised as the ROI mask by its content (the crop
        goes to ``attributes["crop_path"]``). A mask whose size differs from its image but
        whose aspect ratio agrees within 1 % is kept (``attributes["mask_shape"]``; it is
        resized when read); any other is dropped (``mask_path=None``) with a warning.

    Raises:
        ValueError: bad ``missing``.
        MammosegDataError: no CSV, malformed CSVs, files missing (all listed at once), an
            image folder holding several images.

    Example:
        >>> records = load_cbis_records("/data/cbis", csv="/data/cbis-csv")  # doctest: +SKIP
    """
    if missing not in ("raise", "skip"):
        raise ValueError(f"`missing` must be 'raise' or 'skip', received {missing!r}")
    root = Path(root)
    if not root.is_dir():
        raise MammosegDataError("dataset folder does not exist", path=root)
    if csv is None or (isinstance(csv, (str, os.PathLike)) and Path(csv).is_dir()):
        found = find_case_descriptions(root if csv is None else csv)
        if not found:
            raise MammosegDataError(
                "no case-description CSVs (*case_description*.csv) found; pass csv=[...]",
                path=root if csv is None else csv,
            )
        csv = found
    disk = _Disk(root)
    records, absent, skipped = [], [], []
    for record in read_case_descriptions(csv):
        files = disk.files(record.path)
        if len(files) > 1:
            listing = ", ".join(str(p.relative_to(root)) for p in files)
            raise MammosegDataError(f"several images for {record.image_id}: {listing}", path=root)
        if not files:
            first = record.lesions[0].attributes
            absent.append(f"{record.image_id} ({first['csv']} line {first['line']})")
            continue
        shape = read_dicom_header(files[0])["shape"]
        lesions = []
        for lesion in record.lesions:
            mask, crop, problem = _find_mask(lesion, shape, disk)
            attributes = dict(lesion.attributes, crop_path=None if crop is None else str(crop))
            where = f"{record.image_id}_{attributes['abnormality_id']}"
            if problem == "missing":
                absent.append(f"{where} ({attributes['csv']} line {attributes['line']})")
            elif problem is not None:
                skipped.append(f"{where}: {problem}")
                attributes["mask_skipped"] = problem
            elif (mask_shape := read_dicom_header(mask)["shape"]) != shape:
                attributes["mask_shape"] = mask_shape
            center = radius = None
            if mask is not None and measure_masks:
                from mammoseg.data.records import read_pixels

                center, radius = mask_geometry(read_pixels(mask), shape) or (None, None)
            lesions.append(
                replace(
                    lesion,
                    mask_path=None if mask is None else str(mask),
                    center=center,
                    radius=radius,
                    attributes=attributes,
                )
            )
        records.append(replace(record, path=str(files[0]), shape=shape, lesions=tuple(lesions)))
    if absent:
        listing = ", ".join(absent[:20]) + (
            f" and {len(absent) - 20} more" if len(absent) > 20 else ""
        )
        if missing == "raise":
            raise MammosegDataError(
                f"{len(absent)} image or ROI folder(s) listed in the CSVs are not on disk: "
                f"{listing}; pass missing='skip' to load the others",
                path=root,
            )
        warnings.warn(f"{root}: skipped {len(absent)} missing file(s): {listing}", stacklevel=2)
    if skipped:
        warnings.warn(
            f"{root}: {len(skipped)} ROI mask(s) left out (aspect ratio differs from the image "
            f"by more than {ASPECT_TOLERANCE:.0%}, or no mask found): " + "; ".join(skipped),
            stacklevel=2,
        )
    if not records:
        raise MammosegDataError("empty dataset: no listed image is on disk", path=root)
    return records
