"""Idempotency keys: a request repeating a key with the same events appends
nothing and gets the first request's answer; a key repeated with other events
is refused (ConflictError), since that is a key reused, not a retry.  The
writer (engine/writer.py) applies this in a batch and against stored keys."""

from __future__ import annotations

import json
from collections.abc import Sequence

from ironlog.core.entry import PreparedEntry
from ironlog.errors import ConflictError, InvalidRequestError


def check_key(key: str | None) -> None:
    if key is not None and not 1 <= len(key) <= 255:
        raise InvalidRequestError("an idempotency key is 1 to 255 characters")


def _event(data: bytes) -> object:
    """An entry's event as the client sent it: without the time the server added."""
    obj = json.loads(data)
    if isinstance(obj, dict):
        obj.pop("received_at", None)
    return obj


def same_events(stored: Sequence[bytes], again: Sequence[PreparedEntry]) -> bool:
    """Do ``again`` (a repeated request's entries) carry the events of ``stored``?"""
    if len(stored) != len(again):
        return False
    try:
        return all(_event(a) == _event(b.data) for a, b in zip(stored, again, strict=True))
    except ValueError:
        return False


def reused_key(key: str) -> ConflictError:
    return ConflictError(
        f"idempotency key {key[:64]!r} was used for a request with other events: "
        "nothing was appended (a retry must repeat the same events)"
    )
