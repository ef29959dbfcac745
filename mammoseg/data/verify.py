"""Is this the standard mini-MIAS? SHA-256 checks of a copy, and a safe download of the archive.

The standard mini-MIAS distribution (Suckling et al. 1994) is 322 PGMs ``mdb001.pgm`` …
``mdb322.pgm`` (1024×1024, 8 bit, 200 µm pixels, each carrying the "CREATOR: GIMP PNM Filter"
comment of that archive) and an ``Info.txt`` of 10,295 bytes with CRLF line endings. Their
SHA-256 sums ship with the package (``mias-sha256.txt``, in ``sha256sum`` format), so a user can
tell whether their copy is that one before comparing results with published figures: a
re-encoded PGM, an edited ``Info.txt`` or a partial copy all show up by name.

Example:
    >>> from mammoseg.data import verify_mias
    >>> report = verify_mias("../shared/data/mias-dev")  # doctest: +SKIP
    >>> len(report.ok), len(report.missing), report.mismatched
    (110, 212, ('Info.txt',))
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tarfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path, PurePosixPath

from mammoseg.data.errors import MammosegDataError

SUMS_FILE = "mias-sha256.txt"
# Where the University of Essex's PEIPA archive has long served the mini-MIAS images; pass
# ``url`` (``--url``) for a mirror or a local copy.
MIAS_ARCHIVE_URL = "http://peipa.essex.ac.uk/pix/mias/all-mias.tar.gz"
# The whole archive unpacks to about 330 MB: far beyond that, an archive is not mini-MIAS (or
# is a decompression bomb), and extracting stops before the disk fills.
MAX_EXTRACTED_BYTES = 2 * 1024**3
_CHUNK = 1 << 20
_SUM_LINE = re.compile(r"^([0-9a-fA-F]{64}) [ *](.+)$")


@dataclass(frozen=True)
class MiasVerification:
    """What `verify_mias` found, file by file (names relative to ``root``, sorted).

    Attributes:
        root: the folder checked.
        ok: files whose SHA-256 matches the standard archive's.
        missing: files of the standard archive absent from ``root``.
        mismatched: files present with another content (re-encoded, edited, truncated).
        unexpected: ``mdb*.pgm`` files in ``root`` that the standard archive does not have.

    Example:
        >>> report = MiasVerification(Path("."), ("mdb001.pgm",), (), (), ())
        >>> report.complete
        True
    """

    root: Path
    ok: tuple[str, ...]
    missing: tuple[str, ...]
    mismatched: tuple[str, ...]
    unexpected: tuple[str, ...] = ()

    @property
    def complete(self) -> bool:
        """Every file of the standard archive is present with its standard content."""
        return not self.missing and not self.mismatched

    def summary(self) -> str:
        """One paragraph for a person: the counts, then the files that are not right by name.

        Example:
            >>> MiasVerification(Path("m"), ("a",), ("b",), (), ()).summary().splitlines()[0]
            'm: 1 ok, 1 missing, 0 mismatched of 2 files of the standard mini-MIAS'
        """
        total = len(self.ok) + len(self.missing) + len(self.mismatched)
        lines = [
            f"{self.root}: {len(self.ok)} ok, {len(self.missing)} missing, "
            f"{len(self.mismatched)} mismatched of {total} files of the standard mini-MIAS"
        ]
        if self.mismatched:
            lines.append("  mismatched (not the standard content): " + _listing(self.mismatched))
        if self.missing:
            lines.append("  missing: " + _listing(self.missing))
        if self.unexpected:
            lines.append("  not in the standard archive: " + _listing(self.unexpected))
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """The report as plain JSON-ready values."""
        return {
            "root": str(self.root),
            "complete": self.complete,
            "ok": list(self.ok),
            "missing": list(self.missing),
            "mismatched": list(self.mismatched),
            "unexpected": list(self.unexpected),
        }


def _listing(names: tuple[str, ...], limit: int = 12) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def read_sums(path: str | os.PathLike) -> dict[str, str]:
    """Read a ``sha256sum``-format file: ``<64 hex digits>  <file name>`` per line.

    Blank lines and lines starting with ``#`` are skipped; a ``*`` before the name (binary
    mode) is accepted.

    Returns:
        {file name: lower-case hex digest}.

    Raises:
        MammosegDataError: the file is missing, or a line is not of that form or repeats a
            name (the message gives the file and line).

    Example:
        >>> read_sums("mammoseg/data/mias-sha256.txt")["mdb001.pgm"][:8]  # doctest: +SKIP
        'a64715c0'
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise MammosegDataError(f"cannot read the checksum file: {err}", path=path) from err
    return _parse_sums(text, path)


def _parse_sums(text: str, where: str | os.PathLike) -> dict[str, str]:
    sums: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.rstrip("\r")
        if not line.strip() or line.startswith("#"):
            continue
        found = _SUM_LINE.match(line)
        if found is None:
            raise MammosegDataError(
                f"expected '<64 hex digits>  <file name>', found {line[:80]!r}",
                path=where,
                line=number,
            )
        digest, name = found.group(1).lower(), found.group(2)
        if name in sums:
            raise MammosegDataError(f"{name!r} is listed twice", path=where, line=number)
        sums[name] = digest
    if not sums:
        raise MammosegDataError("no checksum lines", path=where)
    return sums


def standard_sums() -> dict[str, str]:
    """The SHA-256 sums of the standard mini-MIAS archive (322 PGMs and Info.txt).

    Example:
        >>> len(standard_sums())
        323
    """
    text = resources.files("mammoseg.data").joinpath(SUMS_FILE).read_text()
    return _parse_sums(text, f"mammoseg/data/{SUMS_FILE}")


def sha256_of(path: str | os.PathLike) -> str:
    """The SHA-256 hex digest of a file, read in 1 MiB chunks.

    Example:
        >>> sha256_of("mdb001.pgm")[:8]  # doctest: +SKIP
        'a64715c0'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _resolve_sums(sums: str | os.PathLike | Mapping[str, str] | None) -> dict[str, str]:
    if sums is None:
        return standard_sums()
    if isinstance(sums, Mapping):
        return {str(k): str(v).lower() for k, v in sums.items()}
    return read_sums(sums)


def verify_mias(
    root: str | os.PathLike,
    sums: str | os.PathLike | Mapping[str, str] | None = None,
) -> MiasVerification:
    """Check a mini-MIAS copy file by file against the standard archive's SHA-256 sums.

    Args:
        root: the folder holding ``Info.txt`` and ``mdbNNN.pgm``.
        sums: the sums to check against: None (the standard archive's, shipped with
            mammoseg), a ``sha256sum``-format file, or a {name: hex digest} mapping.

    Returns:
        A `MiasVerification`: which files are ok, missing or mismatched (``.complete`` when
        all are ok; ``.summary()`` for a person).

    Raises:
        MammosegDataError: ``root`` is not a folder, or the sums file is malformed.

    Example:
        >>> report = verify_mias("../shared/data/mias-dev")  # doctest: +SKIP
        >>> report.complete, len(report.ok)
        (False, 110)
    """
    root = Path(root)
    if not root.is_dir():
        raise MammosegDataError("not a folder: expected the folder holding Info.txt", path=root)
    expected = _resolve_sums(sums)
    ok, missing, mismatched = [], [], []
    for name in sorted(expected):
        path = root / name
        if not path.is_file():
            missing.append(name)
        elif sha256_of(path) == expected[name]:
            ok.append(name)
        else:
            mismatched.append(name)
    unexpected = sorted(p.name for p in root.glob("mdb*.pgm") if p.name not in expected)
    return MiasVerification(root, tuple(ok), tuple(missing), tuple(mismatched), tuple(unexpected))


# ---------------------------------------------------------------- download


def _safe_member_path(dest: Path, name: str, archive: str) -> Path | None:
    """Where an archive member goes under ``dest``; None for a folder entry; raises for a name
    that would leave ``dest`` (absolute, ``..``, a drive)."""
    posix = PurePosixPath(name.replace("\\", "/"))
    if posix.is_absolute() or ".." in posix.parts or re.match(r"^[A-Za-z]:", name):
        raise MammosegDataError(
            f"unsafe archive member {name!r}: its path leaves the target folder; "
            "nothing was extracted",
            path=archive,
        )
    parts = [p for p in posix.parts if p not in ("", ".")]
    if not parts:
        return None
    return dest.joinpath(*parts)


def _archive_members(path: Path, origin: str) -> tuple[object, list[tuple[str, int, Callable]]]:
    """(the open archive, [(member name, size, opener or None for a folder)]), every member
    checked to be a plain file or folder before anything is written."""
    if zipfile.is_zipfile(path):
        archive = zipfile.ZipFile(path)
        members = []
        for info in archive.infolist():
            mode = (info.external_attr >> 16) & 0o170000
            if mode == 0o120000:  # a symbolic link stored in a zip
                archive.close()
                raise MammosegDataError(
                    f"unsafe archive member {info.filename!r}: a symbolic link; nothing was "
                    "extracted",
                    path=origin,
                )
            opener = None if info.is_dir() else (lambda i=info: archive.open(i))
            members.append((info.filename, info.file_size, opener))
        return archive, members
    try:
        archive = tarfile.open(path, "r:*")
    except tarfile.TarError as err:
        raise MammosegDataError(
            f"not a tar.gz or zip archive ({err}); check --url", path=origin
        ) from err
    members = []
    for info in archive.getmembers():
        if not (info.isfile() or info.isdir()):
            archive.close()
            raise MammosegDataError(
                f"unsafe archive member {info.name!r}: a link or special file; nothing was "
                "extracted",
                path=origin,
            )
        opener = None if info.isdir() else (lambda i=info: archive.extractfile(i))
        members.append((info.name, info.size, opener))
    return archive, members


def extract_archive(
    archive: str | os.PathLike,
    dest: str | os.PathLike,
    *,
    max_bytes: int = MAX_EXTRACTED_BYTES,
    origin: str | None = None,
) -> list[Path]:
    """Extract a tar(.gz/.bz2/.xz) or zip archive into ``dest``, refusing anything unsafe.

    Every member is checked before the first byte is written: a path that is absolute or
    climbs out with ``..``, a link, a device or FIFO, or more than ``max_bytes`` in total
    refuses the whole archive.

    Args:
        archive: the archive file.
        dest: the folder to extract into (created).
        max_bytes: the largest total size of the extracted files.
        origin: what to name in errors (e.g. the URL it came from); default the file.

    Returns:
        The files written.

    Raises:
        MammosegDataError: not an archive, or an unsafe member (named in the message).

    Example:
        >>> extract_archive("all-mias.tar.gz", "mias")[:1]  # doctest: +SKIP
        [PosixPath('mias/mdb001.pgm')]
    """
    archive, dest = Path(archive), Path(dest)
    origin = origin or str(archive)
    opened, members = _archive_members(archive, origin)
    with opened:
        return _extract_members(members, dest, max_bytes=max_bytes, origin=origin)


def _extract_members(members, dest: Path, *, max_bytes: int, origin: str) -> list[Path]:
    planned = [
        (_safe_member_path(dest, name, origin), size, opener) for name, size, opener in members
    ]
    total = sum(size for _, size, opener in planned if opener is not None)
    if total > max_bytes:
        raise MammosegDataError(
            f"the archive would extract to {total:,} bytes, over the limit of {max_bytes:,}; "
            "nothing was extracted",
            path=origin,
        )
    written = []
    for target, _, opener in planned:
        if target is None:
            continue
        if opener is None:
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".part")
        with opener() as source, open(tmp, "wb") as sink:
            shutil.copyfileobj(source, sink, _CHUNK)
        os.replace(tmp, target)
        written.append(target)
    return written


def _fetch(url: str, target: Path, *, timeout: float, progress: bool) -> None:
    try:
        response = urllib.request.urlopen(url, timeout=timeout)
    except (urllib.error.URLError, OSError, ValueError) as err:
        raise MammosegDataError(f"cannot download: {err}", path=url) from err
    with response:
        length = response.headers.get("Content-Length")
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(
                total=int(length) if length and length.isdigit() else None,
                unit="B",
                unit_scale=True,
                desc="download",
            )
        try:
            with open(target, "wb") as sink:
                for chunk in iter(lambda: response.read(_CHUNK), b""):
                    sink.write(chunk)
                    if bar is not None:
                        bar.update(len(chunk))
        except (OSError, urllib.error.URLError) as err:
            raise MammosegDataError(f"download interrupted: {err}", path=url) from err
        finally:
            if bar is not None:
                bar.close()


def _data_root(dest: Path) -> Path:
    """The folder of the extracted files: ``dest``, or its one subfolder when the archive
    wrapped everything in a folder."""
    if (dest / "Info.txt").is_file() or any(dest.glob("mdb*.pgm")):
        return dest
    folders = [p for p in dest.iterdir() if p.is_dir()]
    return folders[0] if len(folders) == 1 else dest


def download_mias(
    to: str | os.PathLike,
    url: str = MIAS_ARCHIVE_URL,
    *,
    sums: str | os.PathLike | Mapping[str, str] | None = None,
    timeout: float = 60.0,
    progress: bool = False,
) -> MiasVerification:
    """Download a mini-MIAS archive (tar.gz or zip), extract it safely into ``to``, verify it.

    Args:
        to: an empty or absent folder for the files.
        url: the archive's address (``http://``, ``https://`` or ``file://``).
        sums: what to verify against (see `verify_mias`; None: the standard archive's).
        timeout: seconds without an answer from the server before giving up.
        progress: show a download progress bar.

    Returns:
        The `MiasVerification` of the extracted files.

    Raises:
        ValueError: ``to`` is a file or a non-empty folder (nothing is overwritten).
        MammosegDataError: the download fails, the archive is not one, or it holds an unsafe
            member (named; nothing is extracted then).

    Example:
        >>> report = download_mias("data/mias")  # doctest: +SKIP
        >>> report.complete
        True
    """
    to = Path(to)
    if to.exists() and not to.is_dir():
        raise ValueError(f"`to` {to} exists and is not a folder")
    if to.is_dir() and any(to.iterdir()):
        raise ValueError(f"`to` {to} is not empty: choose an empty or new folder")
    expected = _resolve_sums(sums)  # a bad sums file fails before the download
    to.mkdir(parents=True, exist_ok=True)
    archive = to / ".mias-archive.part"
    try:
        _fetch(url, archive, timeout=timeout, progress=progress)
        extract_archive(archive, to, origin=url)
    finally:
        archive.unlink(missing_ok=True)
    return verify_mias(_data_root(to), expected)


__all__ = [
    "MAX_EXTRACTED_BYTES",
    "MIAS_ARCHIVE_URL",
    "SUMS_FILE",
    "MiasVerification",
    "download_mias",
    "extract_archive",
    "read_sums",
    "sha256_of",
    "standard_sums",
    "verify_mias",
]
