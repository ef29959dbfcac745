"""Tests for mammoseg.checks: each check's valid values and the message of each mistake."""

import numpy as np
import pytest

from mammoseg.checks import (
    check_choice,
    check_fraction,
    check_input_shape,
    check_positive_int,
    closest_match,
)


@pytest.mark.parametrize("value", [1, 4, np.int64(4), np.int32(2)])
def test_check_positive_int_accepts_python_and_numpy_integers(value):
    result = check_positive_int("depth", value)
    assert result == int(value)
    assert type(result) is int


@pytest.mark.parametrize(
    "value, message",
    [
        (0, "`depth` must be a positive integer, received 0"),
        (-3, "`depth` must be a positive integer, received -3"),
        (True, "`depth` must be a positive integer, received True"),
        (2.0, "`depth` must be a positive integer, received 2.0"),
        ("4", "`depth` must be a positive integer, received '4'"),
        (None, "`depth` must be a positive integer, received None"),
    ],
)
def test_check_positive_int_rejects(value, message):
    with pytest.raises(ValueError) as info:
        check_positive_int("depth", value)
    assert str(info.value) == message


@pytest.mark.parametrize(
    "value, allow_one, expected",
    [(0, False, 0.0), (0.5, False, 0.5), (np.float32(0.25), False, 0.25), (1, True, 1.0)],
)
def test_check_fraction_accepts(value, allow_one, expected):
    assert check_fraction("dropout", value, allow_one=allow_one) == expected


@pytest.mark.parametrize(
    "value, allow_one, message",
    [
        (1.0, False, "`dropout` must be a number in [0, 1), received 1.0"),
        (-0.1, False, "`dropout` must be a number in [0, 1), received -0.1"),
        (1.5, True, "`dropout` must be a number in [0, 1], received 1.5"),
        (True, True, "`dropout` must be a number in [0, 1], received True"),
        ("0.5", False, "`dropout` must be a number in [0, 1), received '0.5'"),
    ],
)
def test_check_fraction_rejects(value, allow_one, message):
    with pytest.raises(ValueError) as info:
        check_fraction("dropout", value, allow_one=allow_one)
    assert str(info.value) == message


def test_check_choice_returns_a_valid_choice():
    assert check_choice("output", "sigmoid", ("sigmoid", "softmax")) == "sigmoid"


@pytest.mark.parametrize(
    "value, message",
    [
        (
            "transposed",
            "`upsampling` must be one of ('transpose', 'bilinear'), received 'transposed'; "
            "did you mean 'transpose'?",
        ),
        ("xyz", "`upsampling` must be one of ('transpose', 'bilinear'), received 'xyz'"),
    ],
)
def test_check_choice_rejects_with_the_closest_match(value, message):
    with pytest.raises(ValueError) as info:
        check_choice("upsampling", value, ["transpose", "bilinear"])
    assert str(info.value) == message


@pytest.mark.parametrize(
    "value, expected",
    [
        ("unet2", "; did you mean 'unet'?"),
        ("sqare", "; did you mean 'square'?"),
        ("zzzzzz", ""),
    ],
)
def test_closest_match(value, expected):
    assert closest_match(value, ["unet", "logistic", "square"]) == expected


@pytest.mark.parametrize(
    "shape, kwargs, expected",
    [
        ([64, 64, 1], {}, (64, 64, 1)),
        ((None, None, 3), {}, (None, None, 3)),
        ((np.int64(32), np.int64(32), np.int64(1)), {}, (32, 32, 1)),
        ((16, 16, 1), {"min_size": 16}, (16, 16, 1)),
    ],
)
def test_check_input_shape_accepts(shape, kwargs, expected):
    assert check_input_shape(shape, **kwargs) == expected


@pytest.mark.parametrize(
    "shape, kwargs, message",
    [
        ((64, 64), {}, "`input_shape` must be (height, width, channels), received (64, 64)"),
        ("abc", {}, "`input_shape` must be (height, width, channels), received 'abc'"),
        (
            (0, 64, 1),
            {},
            "`input_shape` height must be an integer >= 1 or None, received 0 in (0, 64, 1)",
        ),
        (
            (64, None, 1),
            {"allow_none": False},
            "`input_shape` width must be an integer >= 1, received None in (64, None, 1)",
        ),
        (
            (8, 8, 1),
            {"min_size": 16},
            "`input_shape` height must be an integer >= 16 or None, received 8 in (8, 8, 1)",
        ),
        (
            (64, 64, True),
            {},
            "`input_shape` channels must be a positive integer, received True in (64, 64, True)",
        ),
        (
            (64, 64, 0),
            {},
            "`input_shape` channels must be a positive integer, received 0 in (64, 64, 0)",
        ),
    ],
)
def test_check_input_shape_rejects(shape, kwargs, message):
    with pytest.raises(ValueError) as info:
        check_input_shape(shape, **kwargs)
    assert str(info.value) == message
