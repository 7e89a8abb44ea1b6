"""Entries: turning an event into the exact bytes a log stores.

Pure: no I/O.  A JSON event must be an object.  The stored bytes are its
canonical form (UTF-8 JSON, keys sorted at every depth, no insignificant
whitespace) with ``received_at`` (RFC 3339 UTC, microseconds) and ``source``
added.  Those bytes are the leaf input; nothing is ever re-serialised for
hashing.  An object with a duplicate key (``{"a":1,"a":2}``, at any depth)
is refused: two parsers keeping different values is how a trail is forged.
"""

from __future__ import annotations

import functools
import json
import math
import re
import time
from dataclasses import dataclass
from typing import Any

import msgspec

from ironlog.core.merkle import leaf_hash
from ironlog.core.tiles import MAX_ENTRY_BYTES
from ironlog.errors import InvalidEntryError

RESERVED_FIELDS = ("received_at", "source")
QUERY_FIELDS = ("actor", "action", "resource", "outcome")
MAX_FIELD_CHARS = 1024

_decoder = msgspec.json.Decoder()
# A key ends with a closing quote, then a colon: ``":``, or with JSON whitespace
# between them (counted apart, so the common case is one fast bytes.count).
_KEY_END_SPACED = re.compile(rb'"[ \t\n\r]+:')
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
    return _value(obj.get(name))


def _value(v: Any) -> str | None:
    """A field's value as its query column holds it."""
    if isinstance(v, str):
        return v[:MAX_FIELD_CHARS]
    if isinstance(v, bool) or v is None:
        return None if v is None else str(v).lower()
    if isinstance(v, float) and not math.isfinite(v):
        return None  # JSON has no inf or nan: the stored bytes hold null
    if isinstance(v, int | float):
        return str(v)
    return None


def prepare_object(
    obj: Any,
    received_us: int,
    source: str,
    received_text: str | None = None,
    raw: bytes | None = None,
) -> PreparedEntry:
    """Canonicalise an already-decoded event (must be a JSON object); ``raw``
    is the JSON text it was decoded from, if any (checked for duplicate keys)."""
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
    if raw is not None:
        check_unique_keys(raw, obj, data)
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
"""(received_us, actor, action, resource, outcome) as a store holds them for an entry."""


@functools.lru_cache(maxsize=4096)  # entries received in one second share it
def _second_text(secs: int) -> str:
    return format_time(secs * 1_000_000)[:19]


def _time_text(micros: int) -> str:
    """``format_time``, memoised per second (the audit calls it per entry)."""
    secs, frac = divmod(micros, 1_000_000)
    return _second_text(secs) + "." + str(frac).zfill(6) + "Z"


class _Derived(msgspec.Struct):
    """Only what the query columns come from (the rest is skipped unread)."""

    received_at: Any = None
    actor: Any = None
    action: Any = None
    resource: Any = None
    outcome: Any = None


_derived_decoder = msgspec.json.Decoder(_Derived)


def column_mismatch(data: bytes, stored: Columns) -> tuple[str, object, object] | None:
    """The first query column (name, stored value, value the entry's bytes
    give) where ``stored`` differs from what ``prepare_object`` derived from
    ``data``; None if they all agree.  InvalidEntryError if ``data`` is not an
    entry at all.  (Called for every entry by the audit: kept cheap.)"""
    try:
        obj = _derived_decoder.decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as e:
        raise InvalidEntryError(f"stored entry is not a JSON object: {_clean(e)}") from e
    received = obj.received_at
    if not isinstance(received, str):
        raise InvalidEntryError("stored entry has no received_at")
    want = (
        received,
        _plain(obj.actor),
        _plain(obj.action),
        _plain(obj.resource),
        _plain(obj.outcome),
    )
    micros = stored[0]
    have = (_time_text(micros) if type(micros) is int else micros, *stored[1:])
    if have == want:
        return None
    for i, name in enumerate(("received_us", *QUERY_FIELDS)):
        if have[i] != want[i]:
            return name, stored[i], want[i]
    return None


def _plain(v: Any) -> str | None:
    """``_value`` with a fast path for what fields usually hold."""
    if v is None or (type(v) is str and len(v) <= MAX_FIELD_CHARS):
        return v
    return _value(v)


def _count_keys(obj: Any) -> int:
    """Keys of every object in a decoded JSON value (iterative: any depth)."""
    n = 0
    stack = [obj]
    pop, push = stack.pop, stack.append
    while stack:
        o = pop()
        if type(o) is dict:
            n += len(o)
            o = o.values()
        for v in o:
            t = type(v)
            if t is dict or t is list:
                push(v)
    return n


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> None:
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            raise InvalidEntryError(f"duplicate key {json.dumps(key)[:100]}")
        seen.add(key)


def check_unique_keys(raw: bytes, obj: Any, stored: bytes | None = None) -> None:
    """InvalidEntryError if an object of the JSON text ``raw`` (decoded as
    ``obj``, stored as ``stored`` when known) has a key twice.

    Cheap when it can be.  Every key of ``raw`` ends with ``":`` (or a quote,
    whitespace and a colon), so counting those gives an upper bound on its
    keys.  Decoding keeps one value per key, so if that bound is no more than
    the keys kept, no key was repeated.  The keys kept are counted in
    ``stored`` (the canonical bytes: one ``":`` per key, plus the two the
    server adds, plus no more in-string ones than ``raw`` has, when ``raw``
    has no ``\\u`` escape), else by walking ``obj``.  Only when the bound is
    higher (strings holding ``\\":``, or a real duplicate) is ``raw`` parsed
    again, keeping every pair."""
    if type(obj) is not dict and type(obj) is not list:
        return
    upper = raw.count(b'":') + len(_KEY_END_SPACED.findall(raw))
    if stored is not None and b"\\u" not in raw:
        kept = stored.count(b'":') - len(RESERVED_FIELDS)
    else:
        kept = _count_keys(obj)
    if upper <= kept:
        return  # the text has no more keys than were kept: none repeated
    try:
        json.loads(
            raw,
            object_pairs_hook=_refuse_duplicates,
            parse_int=len,  # values are not needed, only the keys
            parse_float=len,
            parse_constant=len,
        )
    except RecursionError as e:
        raise InvalidEntryError("JSON is nested too deeply") from e
    except ValueError as e:  # msgspec accepted it, so this cannot happen; refuse anyway
        raise InvalidEntryError(f"not valid JSON: {e}") from e


def prepare_json(
    raw: bytes | str, received_us: int, source: str, received_text: str | None = None
) -> PreparedEntry:
    """Decode one JSON text (refusing duplicate keys) and canonicalise it."""
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogatepass")
    try:
        obj = _decoder.decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError) as e:
        raise InvalidEntryError(f"not valid JSON: {_clean(e)}") from e
    except RecursionError as e:
        raise InvalidEntryError("JSON is nested too deeply") from e
    return prepare_object(obj, received_us, source, received_text, raw)


def prepare_ndjson(body: bytes, received_us: int, source: str) -> list[PreparedEntry]:
    """Every line of an NDJSON body, all or nothing (errors name the line)."""
    lines = [line for line in body.split(b"\n") if line.strip()]
    try:
        objs = _decoder.decode_lines(b"\n".join(lines))
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        objs = None  # find and name the bad line
    if objs is not None and len(objs) != len(lines):
        objs = None  # a value spread over lines: each line alone is not JSON
    when = format_time(received_us)
    out = []
    for n, line in enumerate(lines, 1):
        try:
            if objs is None:
                out.append(prepare_json(line, received_us, source))
            else:
                out.append(prepare_object(objs[n - 1], received_us, source, when, line))
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
