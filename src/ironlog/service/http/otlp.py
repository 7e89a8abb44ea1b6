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

import zlib
from typing import Any

import anyio.to_thread
from google.protobuf import json_format
from google.protobuf.message import Message
from google.rpc.status_pb2 import Status
from litestar import Request, Response
from litestar.exceptions import HTTPException
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse

from ironlog.core.entry import now_us
from ironlog.errors import (
    InvalidRequestError,
    IronlogError,
    LogUnavailableError,
    RateLimitedError,
    http_status,
)
from ironlog.service.http.deps import limits, principal, state
from ironlog.service.ingest.otlp import JSON, PROTOBUF, OtlpError, decode_request, entries_of
from ironlog.service.routing import post

RETRY_AFTER_UNAVAILABLE = "5"
# HTTP status -> google.rpc.Code
_GRPC_CODE = {400: 3, 401: 16, 403: 7, 404: 5, 409: 6, 413: 8, 415: 3, 429: 8, 503: 14}


async def read_body(request: Request[Any, Any, Any], gzipped: bool, limit: int) -> bytes:
    """The body, decompressed while it streams in: never more than ``limit``
    decoded bytes are held, whatever the compression ratio."""
    out = bytearray()
    d = zlib.decompressobj(16 + zlib.MAX_WBITS) if gzipped else None
    async for chunk in request.stream():
        if d is None:
            out += chunk
        else:
            data = chunk
            while data and not d.eof:
                try:
                    out += d.decompress(data, limit + 1 - len(out))
                except zlib.error as e:
                    raise OtlpError(400, f"body is not valid gzip: {e}") from e
                if len(out) > limit:
                    break
                data = d.unconsumed_tail
        if len(out) > limit:
            what = "decompressed body" if gzipped else "body"
            raise OtlpError(413, f"the {what} is larger than the limit of {limit} bytes")
    if d is not None and not d.eof:
        raise OtlpError(400, "gzip body is truncated")
    return bytes(out)


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
    lg.check_appendable()
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("gzip", "identity", ""):
        raise OtlpError(415, f"content-encoding {encoding!r} is not supported (use gzip)")
    lim = limits(request)
    body = await read_body(request, encoding == "gzip", lim.max_decoded_bytes)
    # in a thread: counting a suspicious body's messages one by one takes up to ~1 s
    req = await anyio.to_thread.run_sync(decode_request, body, ctype, lim)
    del body
    entries, rejected, reason = entries_of(req, now_us(), lim)
    resp = ExportLogsServiceResponse()
    if entries:
        await lg.append_batch_async(entries)
    if rejected:
        resp.partial_success.rejected_log_records = rejected
        resp.partial_success.error_message = reason
    return _reply(resp, ctype)
