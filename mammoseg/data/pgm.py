"""Binary PGM (P5) reading and writing, the format of the MIAS images."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from mammoseg.data.errors import MammosegDataError

_TOKEN = re.compile(rb"\s*(?:#[^\n]*\n\s*)*(\S+)")


def _header(data: bytes, path: Path) -> tuple[int, int, int, int]:
    """Parse a P5 header → (width, height, maxval, offset of the first pixel byte)."""
    values = []
    pos = 0
    for _ in range(4):
        match = _TOKEN.match(data, pos)
        if match is None:
            raise MammosegDataError("truncated PGM header", path=path)
        values.append(match.group(1))
        pos = match.end()
    if values[0] != b"P5":
        raise MammosegDataError(
            f"not a binary PGM: magic number {values[0][:8]!r}, expected b'P5'", path=path
        )
    try:
        width, height, maxval = (int(v) for v in values[1:])
    except ValueError as err:
        raise MammosegDataError(f"malformed PGM header {values!r}", path=path) from err
    if width <= 0 or height <= 0 or not 0 < maxval < 65536:
        raise MammosegDataError(
            f"invalid PGM header: width={width}, height={height}, maxval={maxval}", path=path
        )
    return width, height, maxval, pos + 1  # one whitespace byte ends the header


def read_pgm_shape(path: str | os.PathLike) -> tuple[int, int]:
    """Return (height, width) from a PGM header without reading the pixels."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            head = handle.read(1024)
    except OSError as err:
        raise MammosegDataError(f"cannot read image: {err.strerror}", path=path) from err
    width, height, _, _ = _header(head, path)
    return height, width


def read_pgm(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Read a binary PGM file.

    Args:
        path: the ``.pgm`` file.

    Returns:
        (pixels as uint8 or uint16 array of shape (height, width), maxval).

    Raises:
        MammosegDataError: the file is missing, not P5, truncated, or holds more pixel
            bytes than its header declares.

    Example:
        >>> pixels, maxval = read_pgm("mias/mdb001.pgm")  # doctest: +SKIP
        >>> pixels.shape, maxval
        ((1024, 1024), 255)
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise MammosegDataError(f"cannot read image: {err.strerror}", path=path) from err
    width, height, maxval, offset = _header(data, path)
    dtype = np.dtype(np.uint8) if maxval < 256 else np.dtype(">u2")
    expected = width * height * dtype.itemsize
    found = len(data) - offset
    if found < expected:
        raise MammosegDataError(
            f"truncated PGM: header says {width}x{height} ({expected} pixel bytes), "
            f"file holds {found}",
            path=path,
        )
    if found > expected:
        raise MammosegDataError(
            f"wrongly sized PGM: header says {width}x{height} ({expected} pixel bytes), "
            f"file holds {found}",
            path=path,
        )
    pixels = np.frombuffer(data, dtype=dtype, count=width * height, offset=offset)
    pixels = pixels.reshape(height, width)
    largest = int(pixels.max()) if pixels.size else 0
    if largest > maxval:
        # Netpbm stores 16-bit samples big-endian; little-endian samples typically read as
        # values far above a 12-bit maxval, so say which byte order would fit.
        hint = ""
        if dtype.itemsize == 2 and int(pixels.byteswap().max()) <= maxval:
            hint = " (the samples fit maxval if read little-endian: 16-bit PGM is big-endian)"
        raise MammosegDataError(
            f"sample value {largest} exceeds the header's maxval {maxval}{hint}", path=path
        )
    return (pixels.astype(np.uint16) if dtype.itemsize == 2 else pixels.copy()), maxval


def write_pgm(path: str | os.PathLike, pixels: np.ndarray, maxval: int | None = None) -> None:
    """Write a uint8 or uint16 array as binary PGM, atomically (temporary name, then rename)."""
    pixels = np.asarray(pixels)
    if pixels.ndim != 2 or pixels.dtype not in (np.uint8, np.uint16):
        raise ValueError(
            f"`pixels` must be a 2-D uint8 or uint16 array, received {pixels.dtype} {pixels.shape}"
        )
    if maxval is None:
        maxval = 255 if pixels.dtype == np.uint8 else 65535
    limit = 255 if pixels.dtype == np.uint8 else 65535
    if not 0 < maxval <= limit or (pixels.dtype == np.uint16 and maxval < 256):
        raise ValueError(
            f"`maxval` {maxval} does not fit {pixels.dtype} pixels "
            "(uint8: 1-255, uint16: 256-65535)"
        )
    if pixels.size and int(pixels.max()) > maxval:
        raise ValueError(f"pixel value {int(pixels.max())} exceeds `maxval` {maxval}")
    height, width = pixels.shape
    body = pixels.astype(">u2").tobytes() if pixels.dtype == np.uint16 else pixels.tobytes()
    path = Path(path)
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(b"P5\n%d %d\n%d\n" % (width, height, maxval) + body)
    os.replace(tmp, path)
