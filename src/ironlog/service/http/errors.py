"""Errors become answers here, once: always ``{"error": {"code": ..., "message": ...}}``
with the status given by ``ironlog.errors.HTTP_STATUS`` (the one place errors
become statuses).  Nothing internal is ever sent: a 5xx says "internal error"."""

from __future__ import annotations

import logging

import msgspec
from litestar import Response
from litestar.exceptions import HTTPException
from litestar.types import ExceptionHandlersMap

from ironlog.errors import (
    IronlogError,
    RateLimitedError,
    ResourceExhaustedError,
    http_status,
    resource_exhausted,
)
from ironlog.service.http.deps import AnyRequest, state

log = logging.getLogger("ironlog.api")


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> Response[bytes]:
    body = msgspec.json.encode({"error": {"code": code, "message": message}})
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def _on_ironlog_error(request: AnyRequest, exc: IronlogError) -> Response[bytes]:
    status = http_status(exc)
    state(request).metrics.errors.labels(exc.code).inc()
    if isinstance(exc, (RateLimitedError, ResourceExhaustedError)):
        return error_response(status, exc.code, str(exc), {"Retry-After": str(exc.retry_after)})
    if status >= 500 and status not in (503, 507):  # 507: a tenant's bytes quota
        log.error("server error: %s", exc)
        return error_response(status, exc.code, "internal error")
    return error_response(status, exc.code, str(exc))


def _on_http_error(request: AnyRequest, exc: HTTPException) -> Response[bytes]:
    code = {
        404: "not_found",
        405: "method_not_allowed",
        413: "too_large",
        415: "unsupported_media_type",
    }.get(exc.status_code, "bad_request" if exc.status_code < 500 else "internal")
    msg = exc.detail if exc.status_code < 500 else "internal error"
    state(request).metrics.errors.labels(code).inc()
    return error_response(exc.status_code, code, msg, exc.headers)


def _on_unexpected(request: AnyRequest, exc: Exception) -> Response[bytes]:
    exhausted = resource_exhausted(exc)  # out of descriptors or memory: retry, not a 500
    if exhausted is not None:
        return _on_ironlog_error(request, exhausted)
    log.error("unexpected error: %s", type(exc).__name__)  # never the request body
    return error_response(500, "internal", "internal error")


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    IronlogError: _on_ironlog_error,
    HTTPException: _on_http_error,
    Exception: _on_unexpected,
}
