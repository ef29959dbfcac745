"""Argument checks shared by every builder, loss, config and reader: one message per mistake.

Each check returns the (normalised) value or raises `ValueError` naming the argument and echoing
what it received, as MONAI's ``look_up_option`` does; NumPy integers and floats count as numbers
everywhere (``np.int64(4)`` is a valid depth), booleans never do.

* `check_positive_int`: ``"`depth` must be a positive integer, received 0"``;
* `check_fraction`: a number in [0, 1) or [0, 1];
* `check_choice` and `closest_match`: an option from a list, with "did you mean …?";
* `check_input_shape`: a model's (height, width, channels).

Example:
    >>> check_positive_int("depth", np.int64(4))
    4
    >>> closest_match("unet2", ["unet", "logistic"])
    "; did you mean 'unet'?"
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Any

import numpy as np


def closest_match(value: Any, choices: Sequence[Any]) -> str:
    """``"; did you mean 'x'?"`` for the choice closest to ``value``, or ``""`` if none is close.

    Example:
        >>> closest_match("sqare", ["square", "pad"])
        "; did you mean 'square'?"
    """
    close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def check_positive_int(name: str, value: Any) -> int:
    """Return ``value`` if it is a positive integer, else raise naming the argument.

    Raises:
        ValueError: ``"`base_filters` must be a positive integer, received 0"``.

    Example:
        >>> check_positive_int("depth", 4)
        4
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"`{name}` must be a positive integer, received {value!r}")
    return int(value)


def check_fraction(name: str, value: Any, *, allow_one: bool = False) -> float:
    """Return ``value`` if it lies in [0, 1) (or [0, 1] with ``allow_one``), else raise.

    Raises:
        ValueError: names the argument and echoes the value.

    Example:
        >>> check_fraction("dropout", 0.5)
        0.5
    """
    is_number = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, bool
    )
    if not is_number or not (0 <= value and (value <= 1 if allow_one else value < 1)):
        interval = "[0, 1]" if allow_one else "[0, 1)"
        raise ValueError(f"`{name}` must be a number in {interval}, received {value!r}")
    return float(value)


def check_choice(name: str, value: Any, choices: Sequence[str]) -> str:
    """Return ``value`` if it is one of ``choices``; otherwise list them and the closest match.

    Raises:
        ValueError: ``"`upsampling` must be one of ('transpose', ...), received 'transposed';
            did you mean 'transpose'?"``

    Example:
        >>> check_choice("output", "sigmoid", OUTPUT_MODES)
        'sigmoid'
    """
    if value not in choices:
        hint = closest_match(value, choices)
        raise ValueError(f"`{name}` must be one of {tuple(choices)}, received {value!r}{hint}")
    return value


def check_input_shape(
    input_shape: Any, *, allow_none: bool = True, min_size: int = 1
) -> tuple[int | None, int | None, int]:
    """Validate an ``(height, width, channels)`` input shape.

    Args:
        input_shape: a sequence of three entries; height and width may be None when
            ``allow_none`` (fully convolutional models), channels must be a positive integer.
        allow_none: accept None for height and width.
        min_size: smallest accepted height and width.

    Returns:
        The shape as a tuple.

    Raises:
        ValueError: wrong length, or an entry that is not a valid size; the message echoes it.

    Example:
        >>> check_input_shape([64, 64, 1])
        (64, 64, 1)
    """
    if (
        not isinstance(input_shape, Sequence)
        or isinstance(input_shape, str)
        or len(input_shape) != 3
    ):
        raise ValueError(
            f"`input_shape` must be (height, width, channels), received {input_shape!r}"
        )
    height, width, channels = input_shape
    for axis, size in (("height", height), ("width", width)):
        if size is None and allow_none:
            continue
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < min_size:
            need = f"an integer >= {min_size}" + (" or None" if allow_none else "")
            raise ValueError(
                f"`input_shape` {axis} must be {need}, received {size!r} in {tuple(input_shape)}"
            )
    if isinstance(channels, bool) or not isinstance(channels, (int, np.integer)) or channels <= 0:
        raise ValueError(
            f"`input_shape` channels must be a positive integer, received {channels!r} "
            f"in {tuple(input_shape)}"
        )
    return (
        None if height is None else int(height),
        None if width is None else int(width),
        int(channels),
    )
