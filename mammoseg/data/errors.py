"""The one exception family for bad data, so callers can catch every data fault at once."""

from __future__ import annotations

from os import PathLike


class MammosegDataError(ValueError):
    """A data file is missing, malformed or inconsistent.

    The message always names the file and, where there is one, the line, e.g.
    ``"Info.txt line 57: expected 3, 4, 6 or 7 fields, found 5: 'mdb058 D CIRC B 318'"``.

    Args:
        message: what is wrong.
        path: the offending file or folder, if any.
        line: 1-based line number inside ``path``, if any.

    Example:
        >>> try:
        ...     raise MammosegDataError("truncated PGM", path="mdb001.pgm")
        ... except MammosegDataError as err:
        ...     print(err)
        mdb001.pgm: truncated PGM
    """

    def __init__(
        self, message: str, path: str | PathLike | None = None, line: int | None = None
    ) -> None:
        self.path = None if path is None else str(path)
        self.line = line
        where = ""
        if self.path is not None:
            where = self.path if line is None else f"{self.path} line {line}"
            where += ": "
        super().__init__(where + message)
