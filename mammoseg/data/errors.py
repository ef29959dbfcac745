"""The one exception family for bad data, so callers can catch every data fault at once."""

from __future__ import annotations

from os import PathLike

# What a loader does with a bad file or line: "raise" stops at the first, "skip" leaves the item
# out with a `MammosegDataWarning` naming it and loads the rest.
ERROR_MODES = ("raise", "skip")


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


class MammosegDataWarning(UserWarning):
    """A data file was left out or changed because the caller asked for that (``errors="skip"``).

    The message names the file and, where there is one, the line, as `MammosegDataError` does.
    A subclass of `UserWarning`, so ``warnings.simplefilter("error", MammosegDataWarning)`` turns
    every skip into an exception and everything else keeps working.

    Example:
        >>> import warnings
        >>> warnings.warn("Info.txt line 9: skipped", MammosegDataWarning)  # doctest: +SKIP
    """
