"""Per-request helpers: the app's state, the caller's key, the log it may use."""

from __future__ import annotations

import functools
from typing import Any, get_args, get_origin

from litestar import Request

from ironlog.core.numparse import parse_float, parse_int
from ironlog.engine.api_keys import KeyManager, Principal
from ironlog.engine.instance import Ironlog
from ironlog.engine.log import Log
from ironlog.errors import InvalidRequestError, RateLimitedError
from ironlog.service.http.cursor import Cursors
from ironlog.service.http.metrics import Metrics
from ironlog.service.http.ratelimit import RateLimiter
from ironlog.service.integrity import IntegrityChecker
from ironlog.service.limits import Limits
from ironlog.service.outbound import OutboundPolicy

# Handler arguments that are not query parameters.
_NOT_QUERY = frozenset({"request", "state", "scope", "headers", "cookies", "query", "body", "data"})
MAX_QUERY_FLOAT = 1e9
_SPECS: dict[int, tuple[object, dict[str, type]]] = {}  # handler id -> (handler, its spec)


class State:
    def __init__(
        self, il: Ironlog, checker: IntegrityChecker, metrics: Metrics, limiter: RateLimiter
    ) -> None:
        self.il = il
        self.keys = KeyManager(il.control, record=il.record)
        self.outbound = OutboundPolicy()  # where witnesses may be (create_app sets it)
        self.integrity = checker
        self.metrics = metrics
        self.limiter = limiter

    @functools.cached_property
    def cursors(self) -> Cursors:
        """Paging cursors, under a key derived from the master key (so every
        worker reads every worker's cursors)."""
        return Cursors(self.il.master.derive("entries cursor"))


def state(request: Request[Any, Any, Any]) -> State:
    st: State = request.app.state.ironlog
    return st


def principal(request: Request[Any, Any, Any]) -> Principal:
    header = request.headers.get("authorization", "")
    key = (
        header[7:].strip() if header[:7].lower() == "bearer " else request.headers.get("x-api-key")
    )
    st = state(request)
    p = st.keys.authenticate(key)
    try:
        st.limiter.check(p.key_id)
    except RateLimitedError:
        st.metrics.rate_limited.labels(p.tenant or "-").inc()
        raise
    return p


def resolve_log(request: Request[Any, Any, Any], tenant: str, name: str, scope: str) -> Log:
    p = principal(request)
    p.require(scope, tenant, name)
    if p.is_operator:
        p.require("admin", tenant)
    return state(request).il.log(tenant, name)


def limits(request: Request[Any, Any, Any]) -> Limits:
    """The per-request limits the app was created with."""
    lim = getattr(request.app.state, "limits", None)
    return lim if isinstance(lim, Limits) else Limits()


def _query_spec(request: Request[Any, Any, Any]) -> dict[str, type]:
    """The query parameters the request's handler takes, with their types."""
    handler = request.route_handler
    cached = _SPECS.get(id(handler))
    if cached is not None and cached[0] is handler:
        return cached[1]
    spec: dict[str, type] = {}
    for name, field in handler.parsed_fn_signature.parameters.items():
        if name in _NOT_QUERY:
            continue
        kinds = get_args(field.annotation) or (field.annotation,)
        # Parameter(query="from") names it in the query; list[int] may repeat.
        key = getattr(field.kwarg_definition, "query", None) or name
        if any(get_origin(k) is list for k in kinds):
            spec[key] = list
            continue
        spec[key] = next((k for k in (bool, int, float) if k in kinds), str)
    _SPECS[id(handler)] = (handler, spec)
    return spec


async def check_query(request: Request[Any, Any, Any]) -> None:
    """Before any handler runs (and before anything is parsed or written):
    unknown or repeated query parameters are a 400, and every number is
    bounded (``ironlog.core.numparse``) before it is converted.  (Not for OPTIONS,
    which answers for the path whatever the query.)"""
    if request.method == "OPTIONS":
        return
    spec = _query_spec(request)
    path = request.path_params
    seen: set[str] = set()
    for key, value in request.query_params.multi_items():
        kind = spec.get(key) if key not in path else None
        if kind is None:
            known = ", ".join(k for k in spec if k not in path) or "none"
            raise InvalidRequestError(
                f"unknown query parameter {key[:40]!r} (this endpoint takes: {known})"
            )
        if key in seen and kind is not list:
            raise InvalidRequestError(f"query parameter {key!r} is given more than once")
        seen.add(key)
        if kind is int or kind is list:  # (the only lists taken are of integers)
            parse_int(value, key)
        elif kind is float:
            parse_float(value, key, 0, MAX_QUERY_FLOAT)
