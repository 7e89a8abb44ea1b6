"""Paging cursors of ``GET /v1/logs/{t}/{l}/entries``: opaque and unforgeable.

A cursor carries the whole query (log, filters with their times resolved,
next index), encoded compactly and authenticated with an HMAC under a key
derived from the master key (so every worker accepts every worker's
cursors).  A request with a cursor gives no filters of its own: the cursor's
are used, so paging never silently drops or widens them.  Anything that is
not a cursor this service issued is ``invalid_cursor`` (400).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re

import msgspec

from ironlog.errors import InvalidCursorError
from ironlog.store.base import Query

MAC_BYTES = 16
MAX_CURSOR_CHARS = 4096
_B64URL = re.compile(r"[A-Za-z0-9_-]+")


class CursorState(msgspec.Struct, array_like=True, forbid_unknown_fields=True):
    """What a cursor says (version 1)."""

    version: int
    log: str  # tenant/name
    next_index: int
    since_us: int | None
    until_us: int | None
    actor: str | None
    action: str | None
    resource: str | None
    outcome: str | None

    def query(self) -> Query:
        """The query of the next page (without its limit)."""
        return Query(
            since_us=self.since_us,
            until_us=self.until_us,
            actor=self.actor,
            action=self.action,
            resource=self.resource,
            outcome=self.outcome,
            from_index=self.next_index,
        )


class Cursors:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()[:MAC_BYTES]

    def issue(self, log: str, q: Query, next_index: int) -> str:
        state = CursorState(
            1, log, next_index, q.since_us, q.until_us, q.actor, q.action, q.resource, q.outcome
        )
        payload = msgspec.json.encode(state)
        return base64.urlsafe_b64encode(payload + self._mac(payload)).rstrip(b"=").decode()

    def open(self, token: str, log: str) -> CursorState:
        """The query a cursor carries; InvalidCursorError for anything else,
        or for a cursor of another log."""
        if len(token) > MAX_CURSOR_CHARS or not _B64URL.fullmatch(token):
            raise InvalidCursorError("not a cursor this service issued")
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError) as e:
            raise InvalidCursorError("not a cursor this service issued") from e
        payload, mac = raw[:-MAC_BYTES], raw[-MAC_BYTES:]
        if len(raw) <= MAC_BYTES or not hmac.compare_digest(mac, self._mac(payload)):
            raise InvalidCursorError("not a cursor this service issued")
        try:
            state = msgspec.json.decode(payload, type=CursorState)
        except msgspec.DecodeError as e:  # authentic but unreadable: an old version
            raise InvalidCursorError("this cursor's version is not supported") from e
        if state.version != 1 or state.next_index < 0:
            raise InvalidCursorError("this cursor's version is not supported")
        if state.log != log:
            raise InvalidCursorError("this cursor belongs to another log")
        return state
