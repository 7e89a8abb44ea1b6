"""OpenTelemetry logs over OTLP/HTTP: ``POST /v1/logs``.

Protobuf (``application/x-protobuf``) or JSON (``application/json``), plain or
gzip.  Authenticated by API key (``Authorization: Bearer`` or ``X-API-Key``,
as exporters send it through ``OTEL_EXPORTER_OTLP_HEADERS``); records go to
the key's log (``ironlog key create T --scopes append --log L``) or to the
log named by an ``X-Ironlog-Log`` header.  One request is one all-or-nothing
batch of the records that can be stored; the others are reported as a
partial success.  Errors are ``google.rpc.Status`` in the request's encoding,
with the status codes of the OTLP specification (400, 401, 403, 404, 413,
415, 429 and 503 with Retry-After).
"""

from __future__ import annotations

import base64
import json
import zlib
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from google.rpc.status_pb2 import Status
from litestar import Request, Response, post
from litestar.exceptions import HTTPException
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from ironlog.api.codec import MAX_BODY_BYTES
from ironlog.api.deps import principal, state
from ironlog.entry import PreparedEntry, format_time, now_us, prepare_object
from ironlog.errors import (
    InvalidEntryError,
    InvalidRequestError,
    IronlogError,
    LogUnavailableError,
    RateLimitedError,
    http_status,
)

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
RETRY_AFTER_UNAVAILABLE = "5"
# HTTP status -> google.rpc.Code
_GRPC_CODE = {400: 3, 401: 16, 403: 7, 404: 5, 409: 6, 413: 8, 415: 3, 429: 8, 503: 14}
LIFTED = ("actor", "action", "resource", "outcome")


class OtlpError(Exception):
    def __init__(self, status: int, message: str, retry_after: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


def _gunzip(body: bytes) -> bytes:
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = d.decompress(body, MAX_BODY_BYTES + 1)
    except zlib.error as e:
        raise OtlpError(400, f"body is not valid gzip: {e}") from e
    if len(out) > MAX_BODY_BYTES or d.unconsumed_tail:
        raise OtlpError(413, f"decompressed body is larger than {MAX_BODY_BYTES} bytes")
    if not d.eof:
        raise OtlpError(400, "gzip body is truncated")
    return out


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


def decode_request(body: bytes, ctype: str) -> ExportLogsServiceRequest:
    req = ExportLogsServiceRequest()
    if ctype == PROTOBUF:
        try:
            req.ParseFromString(body)
        except (DecodeError, RecursionError) as e:
            raise OtlpError(400, f"body is not an ExportLogsServiceRequest: {e}") from e
        return req
    try:
        obj = json.loads(body, object_pairs_hook=_refuse_duplicates)
        if not isinstance(obj, dict):
            raise OtlpError(400, "the JSON body must be an object")
        _hex_ids_to_base64(obj)
        json_format.ParseDict(obj, req, ignore_unknown_fields=True)
    except (ValueError, RecursionError, json_format.ParseError, AttributeError, TypeError) as e:
        raise OtlpError(400, f"body is not an OTLP/JSON logs request: {e}") from e
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
    req: ExportLogsServiceRequest, received: int
) -> tuple[list[PreparedEntry], int, str]:
    """Each log record as an entry; returns (entries, rejected count, first reason)."""
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
                except InvalidEntryError as e:
                    rejected += 1
                    reason = reason or str(e)
    return out, rejected, reason


def _reply(message: Message, ctype: str, status: int = 200, **headers: str) -> Response[bytes]:
    if ctype == PROTOBUF:
        body = message.SerializeToString()
    else:
        body = json_format.MessageToJson(message, indent=None).encode()
    return Response(body, status_code=status, media_type=ctype, headers=headers or None)


def _status(ctype: str, status: int, message: str, retry_after: str | None) -> Response[bytes]:
    headers = {"Retry-After": retry_after} if retry_after else {}
    return _reply(Status(code=_GRPC_CODE.get(status, 2), message=message), ctype, status, **headers)


@post("/v1/logs", include_in_schema=True, summary="OTLP/HTTP logs export")
async def otlp_logs(request: Request[Any, Any, Any]) -> Response[bytes]:
    raw_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    ctype = raw_type if raw_type in (PROTOBUF, JSON) else JSON
    try:
        if raw_type not in (PROTOBUF, JSON):
            raise OtlpError(415, f"send {PROTOBUF} or {JSON}")
        return await _export(request, ctype)
    except OtlpError as e:
        return _status(ctype, e.status, str(e), e.retry_after)
    except RateLimitedError as e:
        state(request).metrics.errors.labels(e.code).inc()
        return _status(ctype, 429, str(e), str(e.retry_after))
    except IronlogError as e:
        state(request).metrics.errors.labels(e.code).inc()
        status = http_status(e)
        if status >= 500 and status != 503:
            return _status(ctype, 500, "internal error", None)
        retry = RETRY_AFTER_UNAVAILABLE if isinstance(e, LogUnavailableError) else None
        return _status(ctype, status, str(e), retry)
    except HTTPException as e:  # the body-size limit, among others
        return _status(ctype, e.status_code, str(e.detail), None)


async def _export(request: Request[Any, Any, Any], ctype: str) -> Response[bytes]:
    p = principal(request)
    if p.is_operator:
        raise OtlpError(403, "the operator key cannot append; use a tenant key")
    p.require("append", p.tenant)
    name = request.headers.get("x-ironlog-log") or p.log
    if not name:
        raise InvalidRequestError(
            "this key has no log for OTLP: create it with --log, or send X-Ironlog-Log"
        )
    tenant, _, log_name = name.rpartition("/")
    if tenant and tenant != p.tenant:
        raise OtlpError(404, "no such resource")
    p.require("append", p.tenant, log_name)  # a key bound to a log writes there only
    lg = state(request).il.log(str(p.tenant), log_name)
    lg.check_writable()
    body = await request.body()
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding == "gzip":
        body = _gunzip(body)
    elif encoding not in ("identity", ""):
        raise OtlpError(415, f"content-encoding {encoding!r} is not supported (use gzip)")
    req = decode_request(body, ctype)
    entries, rejected, reason = entries_of(req, now_us())
    resp = ExportLogsServiceResponse()
    if entries:
        await lg.append_batch_async(entries)
    if rejected:
        resp.partial_success.rejected_log_records = rejected
        resp.partial_success.error_message = reason
    return _reply(resp, ctype)
