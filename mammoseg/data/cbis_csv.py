"""CBIS-DDSM case-description CSVs: one `Record` per full mammogram, paths as the CSVs give them.

The four official CSVs (mass/calc x training/test) have one row per abnormality. Their columns
differ slightly (``breast_density`` in the mass files, ``breast density`` in the calc files)
and the quoted ROI or crop path of every row ends with an embedded newline, so they are read
with a real CSV parser. Every ``image file path`` names one full mammogram by its first folder
(``Mass-Training_P_00001_LEFT_CC``); the mass and calc series of one breast view are separate
files, hence separate records. `mammoseg.data.cbis_ddsm.load_cbis_records` finds the files on
disk; every name here is re-exported by `mammoseg.data.cbis_ddsm`, its public address.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from mammoseg.data.errors import MammosegDataError
from mammoseg.data.records import Lesion, Record

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


def read_case_descriptions(csv_paths: Sequence[str | os.PathLike]) -> list[Record]:
    """Parse CBIS-DDSM case-description CSVs into one `Record` per full-mammogram file.

    Paths stay as the CSVs give them (relative, not yet found on disk); `load_cbis_records`
    resolves them.

    Args:
        csv_paths: the CSV files (any of the four official ones, or files with their columns).

    Returns:
        Records sorted by image id (the image's first folder, e.g.
        ``Mass-Training_P_00001_LEFT_CC``); ``patient_id`` is the CBIS patient (``P_00001``),
        ``tissue`` the BI-RADS breast density ("1"-"4"), lesions ordered by abnormality id
        with ``mask_path`` the CSV's ROI path and ``attributes`` holding the abnormality id,
        assessment, subtlety, the original pathology label (``BENIGN_WITHOUT_CALLBACK`` becomes
        "benign"), mass shape and margins or calc type and distribution, and the CSV and line.

    Raises:
        MammosegDataError: a missing file or column, a malformed value, a path leaving the
            dataset folder (absolute or with ``..``), a repeated abnormality, or rows of one
            image that disagree; the message names the CSV and line.

    Example:
        >>> records = read_case_descriptions(sorted(Path("cbis-ddsm-csv").glob("*.csv")))
        ... # doctest: +SKIP
        >>> len(records), sum(len(r.lesions) for r in records)
        (3103, 3568)
    """
    if isinstance(csv_paths, (str, os.PathLike)):
        csv_paths = [csv_paths]
    images: dict[str, dict] = {}
    for csv_path in csv_paths:
        where = Path(csv_path)
        if not where.is_file():
            raise MammosegDataError("case-description CSV not found", path=where)
        with open(where, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            header = reader.fieldnames or []
            missing = [c for c in REQUIRED_COLUMNS if c not in header]
            density = next((c for c in DENSITY_COLUMNS if c in header), None)
            if missing or density is None:
                missing += [] if density else [" or ".join(repr(c) for c in DENSITY_COLUMNS)]
                raise MammosegDataError(f"missing column(s) {missing}", path=where, line=1)
            while True:
                line = reader.line_num + 1
                try:
                    row = next(reader)
                except StopIteration:
                    break
                except csv.Error as err:
                    raise MammosegDataError(f"malformed CSV: {err}", path=where, line=line) from err
                if not any((v or "").strip() for v in row.values()):
                    continue
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
                        f"abnormality {number} of image {folder!r} is listed twice",
                        path=where,
                        line=line,
                    )
                entry["lesions"][number] = lesion
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
    ]


def find_case_descriptions(folder: str | os.PathLike) -> list[Path]:
    """The case-description CSVs in ``folder`` (``*case_description*.csv``), sorted."""
    return sorted(Path(folder).glob("*case_description*.csv"))
