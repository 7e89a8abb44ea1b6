"""Numbers read from requests: bounded before they are converted.

Every number that comes from outside (a path segment, a query parameter, a
header, a cursor, a time such as ``30m``) goes through :func:`parse_int` or
:func:`parse_float`, which look at the text first: at most 19 digits (a
64-bit integer) and only ASCII, so no input reaches Python's int-conversion
limit or a SQLite integer overflow, and every bad value is a clear 4xx.
Pure: no I/O.
"""

from __future__ import annotations

import math
import re

from ironlog.errors import InvalidRequestError, IronlogError

MAX_INT = 2**63 - 1
MAX_DIGITS = 19
_INT = re.compile(r"-?[0-9]{1,19}")
_FLOAT = re.compile(r"-?[0-9]{1,15}(?:\.[0-9]{1,9})?")


def parse_int(
    text: str,
    what: str,
    lo: int = 0,
    hi: int = MAX_INT,
    error: type[IronlogError] = InvalidRequestError,
) -> int:
    """``text`` as an integer in ``[lo, hi]`` (decimal ASCII digits, optional
    minus sign, no spaces), else ``error`` naming ``what``."""
    if len(text) > MAX_DIGITS + 1 or not _INT.fullmatch(text):
        raise error(f"{what} must be an integer from {lo} to {hi}")
    value = int(text)
    if not lo <= value <= hi:
        raise error(f"{what} must be an integer from {lo} to {hi}")
    return value


def parse_float(
    text: str,
    what: str,
    lo: float,
    hi: float,
    error: type[IronlogError] = InvalidRequestError,
) -> float:
    """``text`` as a finite decimal number in ``[lo, hi]`` (no exponent, no
    ``nan``/``inf``), else ``error`` naming ``what``."""
    if len(text) > 32 or not _FLOAT.fullmatch(text):
        raise error(f"{what} must be a number from {lo:g} to {hi:g}")
    value = float(text)
    if not (math.isfinite(value) and lo <= value <= hi):
        raise error(f"{what} must be a number from {lo:g} to {hi:g}")
    return value
