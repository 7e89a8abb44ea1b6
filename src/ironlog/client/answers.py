"""What the HTTP API answers, as the SDK reads it: one shape per answer, and the
error an error answer names.

:func:`decode` turns a response into its shape or raises: the error its code
names (``raise_for``), or FormatError for an answer that is not JSON, lacks a
field or has one of the wrong type.  Fields the SDK does not read are ignored.
"""

from __future__ import annotations

from typing import TypeVar

import httpx
import msgspec

from ironlog.errors import FormatError, IronlogError, error_classes

_ERRORS = error_classes()
T = TypeVar("T")


class ReceiptAnswer(msgspec.Struct, kw_only=True):
    """A receipt (POST .../entries) or a fetched entry (GET .../entries/N)."""

    index: int
    entry: str
    inclusion_proof: list[str]
    leaf_hash: str | None = None
    checkpoint: str | None = None
    size: int | None = None  # the unsigned tree, when checkpoint is null
    root: str | None = None


class BatchAnswer(msgspec.Struct, kw_only=True):
    first_index: int
    count: int
    checkpoint: str | None = None
    size: int | None = None
    root: str | None = None


class Row(msgspec.Struct):
    index: int
    entry: str


class PageAnswer(msgspec.Struct, kw_only=True):
    entries: list[Row]
    next_cursor: str | None = None


class ConsistencyAnswer(msgspec.Struct, kw_only=True):
    proof: list[str]
    from_checkpoint: str | None = None
    to_checkpoint: str | None = None


class InclusionAnswer(msgspec.Struct, kw_only=True):
    inclusion_proof: list[str]
    checkpoint: str


class Described(msgspec.Struct):
    """What trust on first use reads of a log's description."""

    vkey: str


def raise_for(resp: httpx.Response) -> None:
    """Turn an error response into the ironlog error its code names."""
    if resp.status_code < 400:
        return
    code, message = "error", resp.text[:500]
    try:
        err = resp.json()["error"]
        code, message = str(err["code"]), str(err["message"])
    except (ValueError, KeyError, TypeError):
        pass
    cls = _ERRORS.get(code, IronlogError)
    exc = cls(f"HTTP {resp.status_code}: {message}")
    exc.status = resp.status_code  # type: ignore[attr-defined]
    raise exc


def decode(shape: type[T], resp: httpx.Response) -> T:
    """The answer ``resp`` as ``shape``: its error if it is one, else FormatError
    unless it is JSON of that shape."""
    raise_for(resp)
    try:
        return msgspec.json.decode(resp.content, type=shape)
    except msgspec.ValidationError as e:
        raise FormatError(f"malformed answer from the server: {e}") from e
    except msgspec.DecodeError as e:
        raise FormatError("the server answered with invalid JSON") from e


__all__ = [
    "BatchAnswer",
    "ConsistencyAnswer",
    "Described",
    "InclusionAnswer",
    "PageAnswer",
    "ReceiptAnswer",
    "Row",
    "decode",
    "raise_for",
]
