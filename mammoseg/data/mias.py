"""Reader for the mini-MIAS database (Suckling et al., 1994): `Info.txt` and `mdbNNN.pgm`.

`Info.txt` starts with the MIAS header text, then one line per abnormality (a normal image has
one NORM line)::

    mdb001 G CIRC B 535 425 197      7 fields: refnum tissue class severity x y radius
    mdb003 D NORM                    3 fields: a normal mammogram
    mdb059 F CIRC B                  4 fields: an abnormality without coordinates
    mdb216 D CALC M *NOTE 3*         6 fields: calcifications spread widely, no coordinates

MIAS counts y from the *bottom* edge, so row = height - y. Odd reference numbers are right
breasts, even ones left, and each pair (mdb001, mdb002), (mdb003, mdb004), ... is one woman. All
images are medio-lateral oblique views.

The authors' code (facts.md §1) kept only the last circle of images with several lesions and
silently dropped lines without coordinates; here every line is kept, circles of one image are
OR-ed into one mask, and a lesion without coordinates stays in `Record.lesions` with
``center=None``.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from collections import OrderedDict
from pathlib import Path

from mammoseg.checks import check_choice
from mammoseg.data.errors import ERROR_MODES, MammosegDataError, MammosegDataWarning
from mammoseg.data.pgm import read_pgm_shape
from mammoseg.data.records import Lesion, Record

CLASS_TO_KIND = {
    "CIRC": "mass",
    "SPIC": "mass",
    "MISC": "mass",
    "CALC": "calcification",
    "ARCH": "architectural_distortion",
    "ASYM": "asymmetry",
}
SEVERITY = {"B": "benign", "M": "malignant"}
TISSUES = ("F", "G", "D")
_REFNUM = re.compile(r"^mdb(\d{3})$")
# The largest radius in the full database is 197 px (facts.md §4) in a 1024-pixel image; a radius
# beyond the image itself is a typing error, not a lesion.
MAX_RADIUS = 1024.0


def patient_of(image_id: str) -> str:
    """MIAS patient of an image: mdb001 and mdb002 → "mias_p001", mdb003/mdb004 → "mias_p002"."""
    number = int(_REFNUM.match(image_id).group(1))
    return f"mias_p{(number + 1) // 2:03d}"


def _looks_like_data(fields: list[str]) -> bool:
    """A line whose tissue and class columns are MIAS codes is a data line, whatever its refnum."""
    return len(fields) >= 3 and fields[1] in TISSUES and fields[2] in (*CLASS_TO_KIND, "NORM")


def _parse_line(fields: list[str], where: Path, lineno: int, text: str):
    """One data line → (refnum, tissue, Lesion or None). Raises on anything malformed."""

    def fail(message: str) -> MammosegDataError:
        return MammosegDataError(f"{message}: {text.strip()!r}", path=where, line=lineno)

    refnum, tissue = fields[0], fields[1]
    if not _REFNUM.match(refnum):
        raise fail(f"reference number {refnum!r} is not of the form mdbNNN")
    if tissue not in TISSUES:
        raise fail(f"background tissue {tissue!r} is not one of {TISSUES}")
    klass = fields[2]
    if klass == "NORM":
        if len(fields) != 3:
            raise fail(f"a NORM line has 3 fields, found {len(fields)}")
        return refnum, tissue, None
    if klass not in CLASS_TO_KIND:
        raise fail(f"class {klass!r} is not one of {sorted(CLASS_TO_KIND) + ['NORM']}")
    if len(fields) == 3:
        raise fail(f"class {klass} needs a severity (B or M)")
    severity = fields[3]
    if severity not in SEVERITY:
        raise fail(f"severity {severity!r} is not B or M")
    kind, pathology = CLASS_TO_KIND[klass], SEVERITY[severity]
    if len(fields) == 4:
        return refnum, tissue, Lesion(kind, pathology, attributes={"mias_class": klass})
    if len(fields) == 6 and " ".join(fields[4:]).upper() == "*NOTE 3*":
        return refnum, tissue, Lesion(kind, pathology, attributes={"mias_class": klass, "note": 3})
    if len(fields) != 7:
        raise fail(f"expected 3, 4, 6 or 7 fields, found {len(fields)}")
    try:
        x, y, radius = (float(v) for v in fields[4:7])
    except ValueError as err:
        raise fail("x, y and radius must be numbers") from err
    for name, value, raw in (
        ("x", x, fields[4]),
        ("y", y, fields[5]),
        ("radius", radius, fields[6]),
    ):
        if not math.isfinite(value):
            raise fail(f"{name} must be a finite number, found {raw}")
    if radius <= 0:
        raise fail(f"radius must be positive, found {fields[6]}")
    if radius > MAX_RADIUS:
        raise fail(f"radius {fields[6]} is implausible (the largest MIAS radius is 197)")
    attributes = {"mias_class": klass, "mias_xy": (x, y)}
    # row needs the image height; filled in by read_mias once the PGM header is read.
    return (
        refnum,
        tissue,
        Lesion(kind, pathology, center=(y, x), radius=radius, attributes=attributes),
    )


def _add_line(entries: OrderedDict, normal: set, fields: list, where: Path, lineno: int, line: str):
    """Check one data line and add it to ``entries`` (refnum → tissue, lesions, first line)."""
    if len(fields) < 3:
        raise MammosegDataError(
            f"expected 3, 4, 6 or 7 fields, found {len(fields)}: {line.strip()!r}",
            path=where,
            line=lineno,
        )
    refnum, tissue, lesion = _parse_line(fields, where, lineno, line)
    if refnum in entries and entries[refnum][0] != tissue:
        known_tissue, _, first = entries[refnum]
        raise MammosegDataError(
            f"{refnum} has tissue {tissue!r} here but {known_tissue!r} on line {first}",
            path=where,
            line=lineno,
        )
    if (lesion is not None and refnum in normal) or (
        lesion is None and refnum in entries and entries[refnum][1]
    ):
        raise MammosegDataError(
            f"{refnum} is listed as NORM but also has abnormalities", path=where, line=lineno
        )
    entries.setdefault(refnum, (tissue, [], lineno))
    if lesion is not None:
        entries[refnum][1].append((lesion, lineno))
    else:
        normal.add(refnum)


def parse_info(
    info_path: str | os.PathLike, errors: str = "raise"
) -> OrderedDict[str, tuple[str, list[tuple[Lesion, int]], int]]:
    """Parse a MIAS `Info.txt` → {refnum: (tissue, [(lesion, line number)], first line number)},
    in file order.

    Lesion centres here still hold MIAS (y, x) with y from the bottom; `read_mias` converts them
    to (row, col) once it knows each image's height. A byte-order mark and CRLF, LF or CR line
    endings are read alike.

    Args:
        info_path: the `Info.txt` file.
        errors: "raise" (default) stops at the first malformed data line; "skip" leaves out
            each malformed line and every line of the image it names (an image missing one of
            its lesions would be a wrong label), with a `MammosegDataWarning` naming the file
            and line of each and one giving the count.

    Raises:
        ValueError: bad ``errors``.
        MammosegDataError: a malformed data line (file and line named), an image listed with two
            different tissues, or a file without any (good) data line.

    Example:
        >>> entries = parse_info("../shared/data/mias-dev/Info.txt")  # doctest: +SKIP
        >>> entries["mdb001"][0], entries["mdb001"][2]
        ('G', 104)
    """
    check_choice("errors", errors, ERROR_MODES)
    info_path = Path(info_path)
    try:
        raw = info_path.read_bytes()
    except OSError as err:
        raise MammosegDataError(f"cannot read: {err.strerror}", path=info_path) from err
    # An editor may add a UTF-8 byte-order mark; read as latin-1 it would hide the first refnum.
    text = raw.removeprefix(b"\xef\xbb\xbf").decode("latin-1")
    entries: OrderedDict[str, tuple[str, list[tuple[Lesion, int]], int]] = OrderedDict()
    normal: set[str] = set()
    bad_lines, dropped = 0, set()
    for lineno, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        # The header is free text; data lines start with a reference number, or look like one
        # whose reference is mistyped (`mbd001 G CIRC ...`): those are errors, not header.
        if not fields or not (fields[0].lower().startswith("mdb") or _looks_like_data(fields)):
            continue
        try:
            _add_line(entries, normal, fields, info_path, lineno, line)
        except MammosegDataError as err:
            if errors == "raise":
                raise
            bad_lines += 1
            refnum = fields[0] if _REFNUM.match(fields[0]) else None
            also = f", and image {refnum} with it" if refnum else ""
            dropped.add(refnum)
            warnings.warn(
                f"{err}; line skipped{also} (errors='skip')", MammosegDataWarning, stacklevel=2
            )
    dropped.discard(None)
    for refnum in dropped:
        entries.pop(refnum, None)
    if bad_lines:
        warnings.warn(
            f"{info_path}: skipped {bad_lines} bad line(s) and the {len(dropped)} image(s) they "
            "name (errors='skip')",
            MammosegDataWarning,
            stacklevel=2,
        )
    if not entries:
        raise MammosegDataError("no data lines (mdbNNN ...) found", path=info_path)
    return entries


def _record(refnum, tissue, lesions, image_path: Path, info_path: Path, source: str) -> Record:
    """One image's record, lesion centres turned into (row, col) with the PGM's height."""
    height, width = read_pgm_shape(image_path)
    placed = []
    for lesion, lineno in lesions:
        if lesion.center is not None:
            y, x = lesion.center
            if not (0 <= x < width and 0 < y <= height):
                raise MammosegDataError(
                    f"{refnum}: lesion centre x={x:g}, y={y:g} lies outside the "
                    f"{width}x{height} image",
                    path=info_path,
                    line=lineno,
                )
            lesion = Lesion(
                lesion.kind,
                lesion.pathology,
                center=(height - y, x),
                radius=lesion.radius,
                attributes=lesion.attributes,
            )
        placed.append(lesion)
    number = int(refnum[3:])
    return Record(
        image_id=refnum,
        patient_id=patient_of(refnum),
        source=source,
        path=str(image_path),
        tissue=tissue,
        laterality="R" if number % 2 else "L",
        view="MLO",
        lesions=tuple(placed),
        shape=(height, width),
    )


def read_mias(
    root: str | os.PathLike,
    missing: str = "raise",
    info_name: str = "Info.txt",
    source: str = "mias",
    errors: str = "raise",
) -> list[Record]:
    """Read a MIAS-layout folder (`Info.txt` + `mdbNNN.pgm`) into `Record`s.

    Works on the full database (322 images, 330 lines) and on any subset of it.

    Args:
        root: the folder holding `Info.txt` and the PGM files.
        missing: "raise" (default) when a listed image is not on disk, or "skip" to leave it out
            with a warning that lists every missing image.
        info_name: name of the description file.
        source: value of `Record.source` ("mias", or "phantom" for the built-in data).
        errors: "raise" (default) stops at the first malformed line or PGM; "skip" leaves out
            each image with a malformed line (see `parse_info`), a broken PGM header or a
            lesion centre outside the image, with a `MammosegDataWarning` naming the file
            (and line) of each, and one giving how many images were skipped.

    Returns:
        One record per image, in `Info.txt` order, lesions in line order.

    Raises:
        ValueError: bad ``missing`` or ``errors``.
        MammosegDataError: root or `Info.txt` missing, a malformed line, a listed image missing
            (unless ``missing="skip"``), a PGM whose header is broken, or a lesion centre outside
            its image (unless ``errors="skip"``); no image left.

    Example:
        >>> records = read_mias("../shared/data/mias-dev")  # doctest: +SKIP
        >>> records[0].lesions[0].center, records[0].lesions[0].radius
        ((599.0, 535.0), 197.0)
        >>> records = read_mias("my-mias", errors="skip")  # doctest: +SKIP
    """
    check_choice("missing", missing, ("raise", "skip"))
    check_choice("errors", errors, ERROR_MODES)
    root = Path(root)
    if not root.is_dir():
        raise MammosegDataError("dataset folder does not exist", path=root)
    info_path = root / info_name
    if not info_path.is_file():
        raise MammosegDataError(f"no {info_name} in the dataset folder", path=root)
    entries = parse_info(info_path, errors=errors)

    records, absent, bad = [], [], []
    for refnum, (tissue, lesions, first_line) in entries.items():
        image_path = root / f"{refnum}.pgm"
        if not image_path.is_file():
            absent.append((refnum, first_line))
            continue
        try:
            records.append(_record(refnum, tissue, lesions, image_path, info_path, source))
        except MammosegDataError as err:
            if errors == "raise":
                raise
            bad.append(refnum)
            warnings.warn(
                f"{err}; skipped image {refnum} (errors='skip')", MammosegDataWarning, stacklevel=2
            )
    if bad:
        warnings.warn(
            f"{info_path}: skipped {len(bad)} of {len(entries)} image(s) with a bad PGM or "
            f"lesion (errors='skip'): {', '.join(bad)}",
            MammosegDataWarning,
            stacklevel=2,
        )
    if absent:
        listing = ", ".join(f"{ref} (line {line})" for ref, line in absent)
        if missing == "raise":
            raise MammosegDataError(
                f"{len(absent)} listed image(s) not on disk: {listing}; "
                "pass missing='skip' to load the others",
                path=info_path,
            )
        warnings.warn(
            f"{info_path}: skipped {len(absent)} listed image(s) not on disk: {listing}",
            MammosegDataWarning,
            stacklevel=2,
        )
    if not records:
        raise MammosegDataError("empty dataset: no listed image is on disk", path=root)
    return records
