"""Reader for CBIS-DDSM (Lee et al., 2017): the case-description CSVs and the DICOM folders.

The four official CSVs (mass/calc x training/test) have one row per abnormality. Their columns
differ slightly (``breast_density`` in the mass files, ``breast density`` in the calc files)
and the quoted ROI or crop path of every row ends with an embedded newline, so they are read
with a real CSV parser. Every ``image file path`` names one full mammogram by its first folder
(``Mass-Training_P_00001_LEFT_CC``); the mass and calc series of one breast view are separate
files, hence separate records (`read_case_descriptions`, first in this module). Abnormality
*n* of an image has its ROI mask and its cropped image in the folder ``<image folder>_<n>``.

On disk, two download layouts exist (facts.md §4): the legacy one repeats the CSV paths
(``…/<study UID>/<series UID>/000000.dcm``); newer NBIA downloads put everything under
``CBIS-DDSM/`` with descriptive series folders and files ``1-1.dcm``, ``1-2.dcm``. Either way
the ROI mask and the crop share a folder in no fixed order, and the CSV columns naming them
are not reliable: the authors told them apart by file size (≥ 2 MB → mask), here the mask is
the file whose pixels hold at most two values and whose shape matches the full image.
"""

from __future__ import annotations

import csv
import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path, PurePosixPath

import numpy as np

from mammoseg.checks import check_choice
from mammoseg.data.dicom import read_dicom_header, sample_rows
from mammoseg.data.errors import ERROR_MODES, MammosegDataError, MammosegDataWarning
from mammoseg.data.records import Lesion, Record, read_mask, read_pixels

CSV_NAMES = (
    "mass_case_description_train_set.csv",
    "mass_case_description_test_set.csv",
    "calc_case_description_train_set.csv",
    "calc_case_description_test_set.csv",
)
REQUIRED_COLUMNS = (
    "patient_id",
    "left or right breast",
    "image view",
    "abnormality id",
    "abnormality type",
    "assessment",
    "pathology",
    "subtlety",
    "image file path",
    "cropped image file path",
    "ROI mask file path",
)
DENSITY_COLUMNS = ("breast_density", "breast density")
KIND_COLUMNS = {
    "mass": ("mass shape", "mass margins"),
    "calcification": ("calc type", "calc distribution"),
}
PATHOLOGY = {"MALIGNANT": "malignant", "BENIGN": "benign", "BENIGN_WITHOUT_CALLBACK": "benign"}
_FOLDER = re.compile(r"^(Mass|Calc)-(Training|Test)_(P_\d+)_(LEFT|RIGHT)_(CC|MLO)$")


def _safe_relative(text: str, where: Path, line: int, column: str) -> str:
    """The CSV path stripped of its embedded newline; rejects paths that leave the root."""
    value = text.strip().replace("\\", "/")
    pure = PurePosixPath(value)
    if not value:
        raise MammosegDataError(f"empty {column!r}", path=where, line=line)
    if pure.is_absolute() or re.match(r"^[A-Za-z]:", value) or ".." in pure.parts:
        raise MammosegDataError(
            f"{column!r} must be a path inside the dataset folder, found {value!r}",
            path=where,
            line=line,
        )
    return value


def _integer(row: dict, column: str, where: Path, line: int) -> int:
    try:
        return int(row[column])
    except (TypeError, ValueError):
        raise MammosegDataError(
            f"{column!r} must be an integer, found {row[column]!r}", path=where, line=line
        ) from None


def _parse_row(row: dict, density_column: str, where: Path, line: int):
    """One CSV row → (image folder, image path, fields of the Record, Lesion)."""

    def fail(message: str) -> MammosegDataError:
        return MammosegDataError(message, path=where, line=line)

    image_path = _safe_relative(row["image file path"], where, line, "image file path")
    folder = image_path.split("/")[0]
    match = _FOLDER.match(folder)
    side, view = row["left or right breast"].strip(), row["image view"].strip()
    patient, kind = row["patient_id"].strip(), row["abnormality type"].strip()
    if side not in ("LEFT", "RIGHT"):
        raise fail(f"'left or right breast' must be LEFT or RIGHT, found {side!r}")
    if view not in ("CC", "MLO"):
        raise fail(f"'image view' must be CC or MLO, found {view!r}")
    if kind not in KIND_COLUMNS:
        raise fail(f"'abnormality type' must be one of {sorted(KIND_COLUMNS)}, found {kind!r}")
    if not match or match.group(3, 4, 5) != (patient, side, view):
        raise fail(
            f"image folder {folder!r} does not agree with patient {patient!r}, {side} {view}"
        )
    if (match.group(1) == "Mass") != (kind == "mass"):
        raise fail(f"a {kind} listed under the image folder {folder!r}")
    label = row["pathology"].strip()
    if label not in PATHOLOGY:
        raise fail(f"'pathology' must be one of {sorted(PATHOLOGY)}, found {label!r}")
    roi = _safe_relative(row["ROI mask file path"], where, line, "ROI mask file path")
    crop = _safe_relative(row["cropped image file path"], where, line, "cropped image file path")
    attributes = {
        "abnormality_id": _integer(row, "abnormality id", where, line),
        "assessment": _integer(row, "assessment", where, line),
        "subtlety": _integer(row, "subtlety", where, line),
        "pathology_label": label,
        "roi_csv_path": roi,
        "crop_csv_path": crop,
        "csv": where.name,
        "line": line,
    }
    for column in KIND_COLUMNS[kind]:
        attributes[column.replace(" ", "_")] = (row.get(column) or "").strip() or None
    lesion = Lesion(kind, PATHOLOGY[label], mask_path=roi, attributes=attributes)
    fields = {
        "patient_id": patient,
        "tissue": (row[density_column] or "").strip() or None,
        "laterality": side[0],
        "view": view,
    }
    return folder, image_path, fields, lesion


def _undecodable(values) -> str | None:
    """The first byte that was not UTF-8 (read as a lone surrogate), as ``0xff``, or None."""
    for value in values:
        if isinstance(value, str):
            bad = next((c for c in value if "\udc80" <= c <= "\udcff"), None)
            if bad is not None:
                return f"0x{ord(bad) - 0xDC00:02x}"
    return None


def _image_folder(row: dict) -> str | None:
    """The image folder a (possibly malformed) row belongs to, if its image path names one."""
    value = (row.get("image file path") or "").strip().replace("\\", "/")
    folder = value.split("/")[0]
    return folder if _FOLDER.match(folder) else None


def _add_row(images: dict, row: dict, header: list, density: str, where: Path, line: int) -> None:
    """Check one CSV row and add its abnormality to ``images`` (folder → entry)."""
    byte = _undecodable([*row.values(), *row.get(None, [])])
    if byte is not None:
        raise MammosegDataError(f"not UTF-8 text: byte {byte}", path=where, line=line)
    cells = len(header) + len(row.get(None, [])) - list(row.values()).count(None)
    if cells != len(header):
        raise MammosegDataError(
            f"row has {cells} cells, the header has {len(header)}", path=where, line=line
        )
    folder, image_path, fields, lesion = _parse_row(row, density, where, line)
    entry = images.setdefault(folder, {"path": image_path, "lesions": {}, **fields})
    if any(entry[k] != v for k, v in fields.items()) or entry["path"] != image_path:
        raise MammosegDataError(
            f"rows of image {folder!r} disagree (path, patient, density, side or view)",
            path=where,
            line=line,
        )
    number = lesion.attributes["abnormality_id"]
    if number in entry["lesions"]:
        raise MammosegDataError(
            f"abnormality {number} of image {folder!r} is listed twice", path=where, line=line
        )
    entry["lesions"][number] = lesion


def _open_csv(where: Path, handle) -> tuple[csv.DictReader, list[str], str]:
    """(reader, header, density column) of one CSV; raises when the header is unusable."""
    reader = csv.DictReader(handle)
    header = reader.fieldnames or []
    byte = _undecodable(header)
    if byte is not None:
        raise MammosegDataError(f"not UTF-8 text: byte {byte}", path=where, line=1)
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    density = next((c for c in DENSITY_COLUMNS if c in header), None)
    if missing or density is None:
        missing += [] if density else [" or ".join(repr(c) for c in DENSITY_COLUMNS)]
        raise MammosegDataError(f"missing column(s) {missing}", path=where, line=1)
    return reader, header, density


def read_case_descriptions(
    csv_paths: Sequence[str | os.PathLike], errors: str = "raise"
) -> list[Record]:
    """Parse CBIS-DDSM case-description CSVs into one `Record` per full-mammogram file.

    Paths stay as the CSVs give them (relative, not yet found on disk); `load_cbis_records`
    resolves them.

    Args:
        csv_paths: the CSV files (any of the four official ones, or files with their columns).
        errors: "raise" (default) stops at the first bad row; "skip" leaves out every bad row
            and the whole image it belongs to (an image missing one of its abnormalities would
            be a wrong label), with a `MammosegDataWarning` naming the CSV and line of each and
            one giving the count. A missing CSV or an unusable header raises either way.

    Returns:
        Records sorted by image id (the image's first folder, e.g.
        ``Mass-Training_P_00001_LEFT_CC``); ``patient_id`` is the CBIS patient (``P_00001``),
        ``tissue`` the BI-RADS breast density ("1"-"4"), lesions ordered by abnormality id
        with ``mask_path`` the CSV's ROI path and ``attributes`` holding the abnormality id,
        assessment, subtlety, the original pathology label (``BENIGN_WITHOUT_CALLBACK`` becomes
        "benign"), mass shape and margins or calc type and distribution, and the CSV and line.

    Raises:
        ValueError: bad ``errors``.
        MammosegDataError: a missing file or column, a row with too few or too many cells,
            bytes that are not UTF-8, a malformed value, a path leaving the dataset folder
            (absolute or with ``..``), a repeated abnormality, or rows of one image that
            disagree; the message names the CSV and line.

    Example:
        >>> records = read_case_descriptions(sorted(Path("cbis-ddsm-csv").glob("*.csv")))
        ... # doctest: +SKIP
        >>> len(records), sum(len(r.lesions) for r in records)
        (3103, 3568)
    """
    check_choice("errors", errors, ERROR_MODES)
    if isinstance(csv_paths, (str, os.PathLike)):
        csv_paths = [csv_paths]
    images: dict[str, dict] = {}
    bad_rows, dropped = 0, set()
    for csv_path in csv_paths:
        where = Path(csv_path)
        if not where.is_file():
            raise MammosegDataError("case-description CSV not found", path=where)
        # Undecodable bytes become lone surrogates, so the row holding them is named and the
        # rest of the file stays readable.
        with open(where, newline="", encoding="utf-8-sig", errors="surrogateescape") as handle:
            reader, header, density = _open_csv(where, handle)
            while True:
                line = reader.line_num + 1
                try:
                    row = next(reader)
                except StopIteration:
                    break
                except csv.Error as err:
                    problem = MammosegDataError(f"malformed CSV: {err}", path=where, line=line)
                    row = {}
                else:
                    if not any((v or "").strip() for v in row.values() if isinstance(v, str)):
                        continue
                    try:
                        _add_row(images, row, header, density, where, line)
                        continue
                    except MammosegDataError as err:
                        problem = err
                if errors == "raise":
                    raise problem
                bad_rows += 1
                folder = _image_folder(row)
                dropped.add(folder)
                also = f", and image {folder!r} with it" if folder else ""
                warnings.warn(
                    f"{problem}; row skipped{also} (errors='skip')",
                    MammosegDataWarning,
                    stacklevel=2,
                )
    dropped.discard(None)
    if bad_rows:
        warnings.warn(
            f"skipped {bad_rows} bad CSV row(s) and the {len(dropped)} image(s) they belong to "
            "(errors='skip')",
            MammosegDataWarning,
            stacklevel=2,
        )
    return [
        Record(
            image_id=folder,
            patient_id=entry["patient_id"],
            source="cbis-ddsm",
            path=entry["path"],
            tissue=entry["tissue"],
            laterality=entry["laterality"],
            view=entry["view"],
            lesions=tuple(entry["lesions"][k] for k in sorted(entry["lesions"])),
        )
        for folder, entry in sorted(images.items())
        if folder not in dropped
    ]


def find_case_descriptions(folder: str | os.PathLike) -> list[Path]:
    """The case-description CSVs in ``folder`` (``*case_description*.csv``), sorted."""
    return sorted(Path(folder).glob("*case_description*.csv"))


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


def _check_not_blank(path: Path) -> None:
    """Raise if the ROI mask at ``path`` marks no pixel, or every pixel, as lesion."""
    if read_mask(path).all():
        raise MammosegDataError(
            "the ROI mask marks every pixel as lesion (one value, not zero)", path=path
        )


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
        values = np.unique(sample_rows(path))
        (masks if len(values) <= 2 else crops).append((path, shape, len(values)))
    crop = crops[0][0] if crops else None
    if not masks:
        return (
            None,
            crop,
            "no file holding two values (a mask) among " + ", ".join(p.name for p in candidates),
        )
    if len(masks) > 1:
        raise MammosegDataError(
            "two candidate ROI masks (files holding at most two values): "
            + ", ".join(str(m[0]) for m in masks),
            path=masks[0][0].parent,
        )
    path, shape, n_values = masks[0]
    if n_values == 1:  # the sampled rows may have missed a small lesion: look at every pixel
        _check_not_blank(path)
    if not _aspect_agrees(shape, image_shape):
        return None, crop, f"mask {shape[0]}x{shape[1]} vs image {image_shape[0]}x{image_shape[1]}"
    return path, crop, None


def _resolve_record(record: Record, disk: _Disk, root: Path, measure_masks: bool):
    """One CSV record found on disk → (record or None, absent items, left-out masks).

    Raises MammosegDataError for a bad file of this image (header, mask, several images).
    """
    files = disk.files(record.path)
    if len(files) > 1:
        listing = ", ".join(str(p.relative_to(root)) for p in files)
        raise MammosegDataError(f"several images for {record.image_id}: {listing}", path=root)
    if not files:
        first = record.lesions[0].attributes
        return None, [f"{record.image_id} ({first['csv']} line {first['line']})"], []
    shape = read_dicom_header(files[0])["shape"]
    lesions, absent, skipped = [], [], []
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
    resolved = replace(record, path=str(files[0]), shape=shape, lesions=tuple(lesions))
    return resolved, absent, skipped


def _listing(items: list[str], limit: int = 20) -> str:
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def load_cbis_records(
    root: str | os.PathLike,
    csv: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    missing: str = "raise",
    measure_masks: bool = False,
    errors: str = "raise",
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
        errors: "raise" (default) stops at the first bad CSV row or file; "skip" leaves out
            each image with a bad CSV row or a bad file (a DICOM that cannot be read, an
            all-zero ROI mask, two candidate masks, several images) with a
            `MammosegDataWarning` naming the file (and line) and loads the rest; a last
            warning gives how many images were skipped. Missing files follow ``missing``.

    Returns:
        Records sorted by image id, with absolute ``path``, ``shape`` from the DICOM header and
        each lesion's ``mask_path`` the file recognised as the ROI mask by its content (the crop
        goes to ``attributes["crop_path"]``). A mask whose size differs from its image but
        whose aspect ratio agrees within 1 % is kept (``attributes["mask_shape"]``; it is
        resized when read); any other is dropped (``mask_path=None``) with a warning.

    Raises:
        ValueError: bad ``missing`` or ``errors``.
        MammosegDataError: no CSV, malformed CSVs, files missing (all listed at once), an
            image folder holding several images, a DICOM that cannot be read, an ROI mask that
            is all zero (or marks every pixel), two candidate masks in one ROI folder; with
            ``errors="skip"``, only when no image is left.

    Example:
        >>> records = load_cbis_records("/data/cbis", csv="/data/cbis-csv")  # doctest: +SKIP
        >>> records = load_cbis_records("/data/cbis", errors="skip")  # doctest: +SKIP
    """
    check_choice("missing", missing, ("raise", "skip"))
    check_choice("errors", errors, ERROR_MODES)
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
    records, absent, skipped, bad = [], [], [], []
    listed = read_case_descriptions(csv, errors=errors)
    for record in listed:
        try:
            resolved, record_absent, record_skipped = _resolve_record(
                record, disk, root, measure_masks
            )
        except MammosegDataError as err:
            if errors == "raise":
                raise
            bad.append(record.image_id)
            warnings.warn(
                f"{err}; skipped image {record.image_id} (errors='skip')",
                MammosegDataWarning,
                stacklevel=2,
            )
            continue
        absent += record_absent
        skipped += record_skipped
        if resolved is not None:
            records.append(resolved)
    if absent:
        if missing == "raise":
            raise MammosegDataError(
                f"{len(absent)} image or ROI folder(s) listed in the CSVs are not on disk: "
                f"{_listing(absent)}; pass missing='skip' to load the others",
                path=root,
            )
        warnings.warn(
            f"{root}: skipped {len(absent)} missing file(s): {_listing(absent)}",
            MammosegDataWarning,
            stacklevel=2,
        )
    if skipped:
        warnings.warn(
            f"{root}: {len(skipped)} ROI mask(s) left out (aspect ratio differs from the image "
            f"by more than {ASPECT_TOLERANCE:.0%}, or no mask found): " + "; ".join(skipped),
            MammosegDataWarning,
            stacklevel=2,
        )
    if bad:
        warnings.warn(
            f"{root}: skipped {len(bad)} of {len(listed)} image(s) with a bad file "
            f"(errors='skip'): {_listing(bad)}",
            MammosegDataWarning,
            stacklevel=2,
        )
    if not records:
        raise MammosegDataError("empty dataset: no listed image is on disk", path=root)
    return records
