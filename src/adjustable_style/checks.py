"""Checking what a user gives, at the public boundary: one error type and the number checks every module shares.

:class:`InputError` marks a problem with the user's input (a file, a value, a setting). Its message is one line
that says what was wrong and what to do; the command line prints it and exits with status 1. Any other exception
is a bug and keeps its traceback. It subclasses ``ValueError``, so Python callers may catch either.

Example:
    >>> check_int("steps", 3, low=1)
    3
    >>> check_number("strength", 0.5, 0.0, 1.0)
    0.5
"""

from __future__ import annotations

import math


class InputError(ValueError):
    """Something the user gave cannot be used; the message says what and what to do instead."""


def check_int(name: str, value: object, low: int | None = None, high: int | None = None) -> int:
    """``value`` as an int in [low, high] (either bound optional); bools are refused.

    Raises:
        InputError: naming ``name``, the allowed range and what arrived.
    """
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or (low is not None and value < low)
        or (high is not None and value > high)
    ):
        if low is not None and high is not None:
            want = f"an int in [{low}, {high}]"
        elif low is not None:
            want = f"an int >= {low}"
        elif high is not None:
            want = f"an int <= {high}"
        else:
            want = "an int"
        raise InputError(f"{name} must be {want}, got {value!r}")
    return value


def check_number(name: str, value: object, low: float, high: float, why: str = "") -> float:
    """``value`` as a float in [low, high]; NaN and non-numbers are refused. ``why`` explains the range in the
    message, e.g. ``" (the range the model was trained on)"``.

    Raises:
        InputError: naming ``name``, the range and what arrived.
    """
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number in [{low:g}, {high:g}], got {value!r}") from None
    if math.isnan(v):
        raise InputError(f"{name} must be a number in [{low:g}, {high:g}], got nan")
    if not low <= v <= high:
        raise InputError(f"{name} must be in [{low:g}, {high:g}]{why}, got {v:g}")
    return v
