"""Entries: turning an event into the exact bytes a log stores.

Pure: no I/O.  A JSON event must be an object.  The stored bytes are its
canonical form (UTF-8 JSON, keys sorted at every depth, no insignificant
whitespace) with ``received_at`` (RFC 3339 UTC, microseconds) and ``source``
added.  Those bytes are the leaf input; nothing is ever re-serialised for
hashing.  Duplicate keys in an object keep the last value (as most JSON
parsers do); the stored bytes show what was kept.
"""

from __future__ import annotations

import calendar
import time
from dataclasses import dataclass
from typing import Any

import msgspec

from ironlog.errors import InvalidEntryError
from ironlog.merkle import leaf_hash
from ironlog.tiles import MAX_ENTRY_BYTES

RESERVED_FIELDS = ("received_at", "source")
QUERY_FIELDS = ("actor", "action", "resource", "outcome")
MAX_FIELD_CHARS = 1024

_decoder = msgspec.json.Decoder()
_encoder = msgspec.json.Encoder(order="sorted")


@dataclass(frozen=True, slots=True)
class PreparedEntry:
    """An entry ready to append: its bytes, leaf hash and indexed fields."""

    data: bytes
    leaf: bytes
    received_us: int
    actor: str | None = None
    action: str | None = None
    resource: str | None = None
    outcome: str | None = None


def format_time(micros: int) -> str:
    """Microseconds since the epoch -> ``2026-11-24T19:25:00.123456Z``."""
    secs, frac = divmod(micros, 1_000_000)
    t = time.gmtime(secs)
    return (
        f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T"
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}.{frac:06d}Z"
    )


def now_us() -> int:
    return time.time_ns() // 1000


def _field(obj: dict[str, Any], name: str) -> str | None:
    v = obj.get(name)
    if isinstance(v, str):
        return v[:MAX_FIELD_CHARS]
    if isinstance(v, bool) or v is None:
        return None if v is None else str(v).lower()
    if isinstance(v, int | float):
        return str(v)
    return None


def prepare_object(
    obj: Any, received_us: int, source: str, received_text: str | None = None
) -> PreparedEntry:
    """Canonicalise an already-decoded event (must be a JSON object)."""
    if not isinstance(obj, dict):
        raise InvalidEntryError(f"an event must be a JSON object, not {_json_type(obj)}")
    for key in RESERVED_FIELDS:
        if key in obj:
            raise InvalidEntryError(f"field {key!r} is reserved: the server sets it")
    full = dict(obj)
    full["received_at"] = received_text or format_time(received_us)
    full["source"] = source
    try:
        data = _encoder.encode(full)
    except (TypeError, ValueError, OverflowError) as e:
        raise InvalidEntryError(f"event cannot be encoded as JSON: {e}") from e
    if len(data) > MAX_ENTRY_BYTES:
        raise InvalidEntryError(
            f"entry is {len(data)} bytes once stored; the limit is {MAX_ENTRY_BYTES}"
        )
    return PreparedEntry(
        data,
        leaf_hash(data),
        received_us,
        _field(obj, "actor"),
        _field(obj, "action"),
        _field(obj, "resource"),
        _field(obj, "outcome"),
    )


Columns = tuple[int, str | None, str | None, str | None, str | None]
"""(received_us, actor, action, resource, outcome): what a store derives from an entry."""


def parse_time(text: str) -> int:
    """``format_time``'s output back to microseconds (InvalidEntryError otherwise)."""
    try:
        if len(text) != 27 or text[10] != "T" or text[19] != "." or text[26] != "Z":
            raise ValueError(text)
        t = time.strptime(text[:19], "%Y-%m-%dT%H:%M:%S")
        return calendar.timegm(t) * 1_000_000 + int(text[20:26])
    except ValueError as e:
        raise InvalidEntryError(f"received_at {text!r} is not a UTC time to the µs") from e


def derive_columns(data: bytes) -> Columns:
    """The query columns of stored entry bytes, exactly as ``prepare_object`` set them."""
    try:
        obj = _decoder.decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as e:
        raise InvalidEntryError(f"stored entry is not valid JSON: {_clean(e)}") from e
    if not isinstance(obj, dict) or not isinstance(obj.get("received_at"), str):
        raise InvalidEntryError("stored entry is not an object with received_at")
    return (
        parse_time(obj["received_at"]),
        _field(obj, "actor"),
        _field(obj, "action"),
        _field(obj, "resource"),
        _field(obj, "outcome"),
    )


def prepare_json(raw: bytes | str, received_us: int, source: str) -> PreparedEntry:
    """Decode one JSON text and canonicalise it."""
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogatepass")
    try:
        obj = _decoder.decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError) as e:
        raise InvalidEntryError(f"not valid JSON: {_clean(e)}") from e
    except RecursionError as e:
        raise InvalidEntryError("JSON is nested too deeply") from e
    return prepare_object(obj, received_us, source)


def prepare_ndjson(body: bytes, received_us: int, source: str) -> list[PreparedEntry]:
    """Every line of an NDJSON body, all or nothing (errors name the line)."""
    lines = [line for line in body.split(b"\n") if line.strip()]
    try:
        objs = _decoder.decode_lines(b"\n".join(lines))
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        objs = None  # find and name the bad line
    when = format_time(received_us)
    out = []
    for n, line in enumerate(lines, 1):
        try:
            if objs is None:
                out.append(prepare_json(line, received_us, source))
            else:
                out.append(prepare_object(objs[n - 1], received_us, source, when))
        except InvalidEntryError as e:
            raise InvalidEntryError(f"line {n}: {e}") from e
    return out


def prepare_text(line: str, received_us: int, source: str) -> PreparedEntry:
    """A plain text line, stored as ``{"message": line}``."""
    return prepare_object({"message": line}, received_us, source)


def _clean(e: Exception) -> str:
    if isinstance(e, UnicodeDecodeError):
        return "invalid UTF-8"
    return str(e).removeprefix("JSON is malformed: ")


def _json_type(obj: Any) -> str:
    if isinstance(obj, list):
        return "an array"
    if isinstance(obj, str):
        return "a string"
    if isinstance(obj, bool):
        return "a boolean"
    if isinstance(obj, int | float):
        return "a number"
    if obj is None:
        return "null"
    return type(obj).__name__
