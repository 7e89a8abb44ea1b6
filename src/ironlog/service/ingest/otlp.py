"""OTLP logs to entries, pure of HTTP: decoding an ``ExportLogsServiceRequest``
(protobuf or JSON) within the limits, and mapping each log record to an entry.

The bodies are counted before they are parsed: a few bytes per empty message
would otherwise become ~100 bytes of memory each (and an entry each).
:mod:`ironlog.service.http.otlp` is the route (``POST /v1/logs``) around it.
"""

from __future__ import annotations

import base64
import functools
import json
from typing import Any

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs

from ironlog.core.entry import PreparedEntry, format_time, prepare_object
from ironlog.errors import InvalidEntryError
from ironlog.service.limits import BatchBudget, Limits

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
LIFTED = ("actor", "action", "resource", "outcome")


class OtlpError(Exception):
    """A request refused with this HTTP status (answered as a ``google.rpc.Status``)."""

    def __init__(self, status: int, message: str, retry_after: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


def _varint(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    value = shift = 0
    while pos < end:
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            break
    raise OtlpError(400, "body is not an ExportLogsServiceRequest: bad varint")


@functools.cache
def _message_fields(desc: Descriptor) -> dict[int, Descriptor]:
    return {f.number: f.message_type for f in desc.fields if f.message_type is not None}


@functools.cache
def _repeated_strings(desc: Descriptor) -> frozenset[int]:
    """Repeated string/bytes fields: each element also costs memory once parsed."""
    return frozenset(
        f.number
        for f in desc.fields
        if f.message_type is None and f.is_repeated and f.type in (f.TYPE_STRING, f.TYPE_BYTES)
    )


@functools.cache
def _holds_objects(desc: Descriptor) -> bool:
    return bool(_message_fields(desc) or _repeated_strings(desc))


def _object_tags(desc: Descriptor, seen: set[Descriptor] | None = None) -> set[int]:
    """The tags (as they appear on the wire) of every field under ``desc`` that
    makes an object when parsed: messages and elements of repeated strings."""
    seen = set() if seen is None else seen
    seen.add(desc)
    tags = {number << 3 | 2 for number in _repeated_strings(desc)}
    for number, child in _message_fields(desc).items():
        tags.add(number << 3 | 2)
        if child not in seen:
            tags |= _object_tags(child, seen)
    return tags


_REQUEST = ExportLogsServiceRequest.DESCRIPTOR
_LOG_RECORD = LogRecord.DESCRIPTOR
_CONTAINERS = (ResourceLogs.DESCRIPTOR, ScopeLogs.DESCRIPTOR)
_TAG_BYTES = sorted(bytes([t]) for t in _object_tags(_REQUEST))
assert all(t < 0x80 for t in _object_tags(_REQUEST))  # one byte each
MAX_DEPTH = 100  # as protobuf's own parser


class _Counts:
    def __init__(self, limits: Limits, deep: bool) -> None:
        self.limits = limits
        self.deep = deep  # count the messages inside log records too
        self.records = 0
        self.objects = 0


def scan_protobuf(body: bytes, limits: Limits) -> None:
    """Count the log records and messages of an ExportLogsServiceRequest from its
    wire format, before it is parsed: a few bytes per empty message would
    otherwise become ~100 bytes of memory each (and an entry each).

    Records are always counted (cheap: the scan does not enter them).  Each
    message (or element of a repeated string) on the wire starts with its
    field's tag byte, so the count of those bytes bounds them; only when that
    bound is over the limit are they counted one by one."""
    _scan(body, 0, len(body), _REQUEST, 0, _Counts(limits, deep=False))
    if sum(body.count(t) for t in _TAG_BYTES) > limits.max_otlp_objects:
        _scan(body, 0, len(body), _REQUEST, 0, _Counts(limits, deep=True))


def _scan(body: bytes, pos: int, end: int, desc: Descriptor, depth: int, n: _Counts) -> None:
    if depth > MAX_DEPTH:
        raise OtlpError(400, f"body nests messages deeper than {MAX_DEPTH}")
    children = _message_fields(desc)
    limits = n.limits
    while pos < end:
        key = body[pos]
        if key < 0x80:
            pos += 1
        else:
            key, pos = _varint(body, pos, end)
        wire = key & 7
        if wire == 2:
            size = body[pos] if pos < end else 0x80
            if size < 0x80:
                pos += 1
            else:
                size, pos = _varint(body, pos, end)
            child = children.get(key >> 3)
            if child is not None and pos + size <= end:
                n.objects += 1
                if child is _LOG_RECORD:
                    n.records += 1
                    if n.records > limits.max_batch_records:
                        _check_counts(n.records, 0, limits)
                    if n.deep and size:
                        _scan(body, pos, pos + size, child, depth + 1, n)
                elif size and (n.deep or child in _CONTAINERS) and _holds_objects(child):
                    _scan(body, pos, pos + size, child, depth + 1, n)
                if n.deep and n.objects > limits.max_otlp_objects:
                    _check_counts(0, n.objects, limits)
            elif n.deep and key >> 3 in _repeated_strings(desc):
                n.objects += 1
                if n.objects > limits.max_otlp_objects:
                    _check_counts(0, n.objects, limits)
            pos += size
        elif wire == 0:
            pos = _varint(body, pos, end)[1]
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise OtlpError(400, "body is not an ExportLogsServiceRequest: bad wire type")
    if pos > end:
        raise OtlpError(400, "body is not an ExportLogsServiceRequest: truncated")


def _check_counts(records: int, objects: int, limits: Limits) -> None:
    if records > limits.max_batch_records:
        raise OtlpError(413, f"at most {limits.max_batch_records} log records per request")
    if objects > limits.max_otlp_objects:
        raise OtlpError(
            413,
            f"at most {limits.max_otlp_objects} OTLP objects per request "
            "(protobuf messages; JSON values)",
        )


_NOT_STRUCTURE = bytes(c for c in range(256) if c not in b'"{[,')
_WINDOW = 1 << 20


def json_values(body: bytes, enough: int) -> int:
    """An upper bound of the values in a JSON text, without decoding it: every
    value but a container's first follows a comma, so objects + arrays + commas
    + 1, outside strings.  Counts characters in strings too when that stays
    within ``enough``; otherwise strips the strings (in windows: bounded memory)."""
    values = body.count(b"{") + body.count(b"[") + body.count(b",") + 1
    if values <= enough:
        return values
    # Escaped backslashes, then escaped quotes, go; every quote left delimits a string.
    text = body.replace(b"\\\\", b"").replace(b'\\"', b"").translate(None, _NOT_STRUCTURE)
    text = text.replace(b'""', b"")  # strings without structure: parity is unchanged
    values, inside = 1, False
    for start in range(0, len(text), _WINDOW):
        pieces = text[start : start + _WINDOW].split(b'"')
        values += sum(map(len, pieces[1 if inside else 0 :: 2]))
        if len(pieces) % 2 == 0:  # an odd number of quotes: the next window starts flipped
            inside = not inside
    return values


def scan_json(body: bytes, limits: Limits) -> None:
    """Refuse a JSON body with more values than allowed before it is decoded."""
    _check_counts(0, json_values(body, limits.max_otlp_objects), limits)


def _hex_ids_to_base64(obj: Any) -> None:
    """OTLP/JSON writes trace and span IDs as hex; protobuf's JSON mapping wants base64."""
    for rl in obj.get("resourceLogs") or []:
        for sl in (rl or {}).get("scopeLogs") or []:
            for rec in (sl or {}).get("logRecords") or []:
                for k in ("traceId", "spanId"):
                    v = rec.get(k) if isinstance(rec, dict) else None
                    if isinstance(v, str) and v:
                        try:
                            rec[k] = base64.b64encode(bytes.fromhex(v)).decode()
                        except ValueError as e:
                            raise OtlpError(400, f"{k} must be hex") from e


def decode_request(body: bytes, ctype: str, limits: Limits) -> ExportLogsServiceRequest:
    req = ExportLogsServiceRequest()
    if ctype == PROTOBUF:
        scan_protobuf(body, limits)
        try:
            req.ParseFromString(body)
        except (DecodeError, RecursionError) as e:
            raise OtlpError(400, f"body is not an ExportLogsServiceRequest: {e}") from e
        return req
    scan_json(body, limits)
    try:
        obj = json.loads(body, object_pairs_hook=_refuse_duplicates)
        if not isinstance(obj, dict):
            raise OtlpError(400, "the JSON body must be an object")
        _hex_ids_to_base64(obj)
        json_format.ParseDict(obj, req, ignore_unknown_fields=True)
    except (ValueError, RecursionError, json_format.ParseError, AttributeError, TypeError) as e:
        raise OtlpError(400, f"body is not an OTLP/JSON logs request: {e}") from e
    records = sum(len(sl.log_records) for rl in req.resource_logs for sl in rl.scope_logs)
    _check_counts(records, 0, limits)
    return req


def any_value(v: AnyValue) -> Any:
    kind = v.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return attributes(v.kvlist_value.values)
    if kind == "bytes_value":
        return base64.b64encode(v.bytes_value).decode()
    if kind == "int_value":
        return int(v.int_value)
    return getattr(v, kind)


def attributes(kvs: Any) -> dict[str, Any]:
    """Key-value pairs as an object; a key given twice is refused, not overwritten."""
    out: dict[str, Any] = {}
    for kv in kvs:
        if isinstance(kv, KeyValue):
            if kv.key in out:
                raise InvalidEntryError(f"duplicate attribute key {json.dumps(kv.key)[:100]}")
            out[kv.key] = any_value(kv.value)
    return out


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise OtlpError(400, f"duplicate key {json.dumps(key)[:100]}")
        obj[key] = value
    return obj


def _time(nanos: int) -> str | None:
    return format_time(nanos // 1000) if nanos else None


def entries_of(
    req: ExportLogsServiceRequest, received: int, limits: Limits | None = None
) -> tuple[list[PreparedEntry], int, str]:
    """Each log record as an entry; returns (entries, rejected count, first reason).
    Raises TooLargeError once the batch would store more than the limits allow."""
    budget = BatchBudget(limits or Limits())
    out: list[PreparedEntry] = []
    rejected, reason = 0, ""
    when = format_time(received)
    for rl in req.resource_logs:
        resource = attributes(rl.resource.attributes)
        for sl in rl.scope_logs:
            scope = {"name": sl.scope.name, "version": sl.scope.version}
            for rec in sl.log_records:
                ev: dict[str, Any] = {
                    "body": any_value(rec.body),
                    "severity": rec.severity_text,
                    "severity_number": int(rec.severity_number),
                    "time": _time(rec.time_unix_nano),
                    "observed_time": _time(rec.observed_time_unix_nano),
                    "attributes": attributes(rec.attributes),
                    "otel_resource": resource,
                    "scope": scope,
                }
                if rec.trace_id:
                    ev["trace_id"] = rec.trace_id.hex()
                if rec.span_id:
                    ev["span_id"] = rec.span_id.hex()
                if rec.flags:
                    ev["flags"] = int(rec.flags)
                if rec.event_name:
                    ev["event_name"] = rec.event_name
                for k in LIFTED:  # attributes the query API can filter on
                    v = ev["attributes"].get(k)
                    if isinstance(v, str):
                        ev[k] = v
                try:
                    out.append(prepare_object(ev, received, "otlp", when))
                    budget.add(len(out[-1].data))
                except InvalidEntryError as e:
                    rejected += 1
                    reason = reason or str(e)
    return out, rejected, reason
