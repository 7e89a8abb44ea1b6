"""Per-request helpers: the app's state, the caller's key (authenticated once
per request), the limits, and the query check every route runs first."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, get_args, get_origin

import msgspec
from litestar import Request
from litestar.connection import ASGIConnection
from litestar.datastructures import URL
from litestar.exceptions import ValidationException
from litestar.handlers import BaseRouteHandler

from ironlog.core.numparse import parse_float, parse_int
from ironlog.engine.api_keys import KeyManager, Principal
from ironlog.engine.instance import Ironlog
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
_SPECS: dict[int, tuple[object, _QuerySpec]] = {}  # handler id -> (handler, its spec)
_PRINCIPAL = "ironlog.principal"  # where a request keeps its caller (Request.state)

Connection = ASGIConnection[Any, Any, Any, Any]
AnyRequest = Request[Any, Any, Any]  # what the handlers take


class State:
    """What the handlers share (``app.state.ironlog``), made by ``create_app``."""

    def __init__(
        self,
        il: Ironlog,
        checker: IntegrityChecker,
        metrics: Metrics,
        limiter: RateLimiter,
        outbound: OutboundPolicy,
        limits: Limits,
    ) -> None:
        self.il = il
        self.keys = KeyManager(il.control, record=il.record)
        self.outbound = outbound  # where witnesses may be
        self.integrity = checker
        self.metrics = metrics
        self.limiter = limiter
        self.limits = limits

    @functools.cached_property
    def cursors(self) -> Cursors:
        """Paging cursors, under a key derived from the master key (so every
        worker reads every worker's cursors)."""
        return Cursors(self.il.master.derive("entries cursor"))


def state(connection: Connection) -> State:
    st: State = connection.app.state.ironlog
    return st


def request_state(connection: Connection) -> dict[str, Any]:
    """This request's own state (``scope["state"]``, which ``Request.state``
    wraps in a new object at every access)."""
    return connection.scope.setdefault("state", {})


def principal(connection: Connection) -> Principal:
    """The caller's key, checked (and counted by the rate limiter) once per
    request: the route's guard asks first, the handler gets the same one."""
    known = request_state(connection).get(_PRINCIPAL)
    if isinstance(known, Principal):
        return known
    header = connection.headers.get("authorization", "")
    key = (
        header[7:].strip()
        if header[:7].lower() == "bearer "
        else connection.headers.get("x-api-key")
    )
    st = state(connection)
    p = st.keys.authenticate(key)
    try:
        st.limiter.check(p.key_id)
    except RateLimitedError:
        st.metrics.rate_limited.labels(p.tenant or "-").inc()
        raise
    request_state(connection)[_PRINCIPAL] = p
    return p


def limits(connection: Connection) -> Limits:
    """The per-request limits the app was created with."""
    return state(connection).limits


@dataclass(frozen=True)
class _QuerySpec:
    kinds: dict[str, type]  # every parameter the handler takes but its dependencies
    required: tuple[str, ...]  # those without a default


def _query_spec(connection: Connection) -> _QuerySpec:
    """The query parameters the request's handler takes, with their types."""
    handler = connection.route_handler
    cached = _SPECS.get(id(handler))
    if cached is not None and cached[0] is handler:
        return cached[1]
    kinds: dict[str, type] = {}
    required: list[str] = []
    provided = handler.resolve_dependencies()  # e.g. the Log: not query parameters
    for name, field in handler.parsed_fn_signature.parameters.items():
        if name in _NOT_QUERY or name in provided:
            continue
        kinds_of = get_args(field.annotation) or (field.annotation,)
        # Parameter(query="from") names it in the query; list[int] may repeat.
        key = getattr(field.kwarg_definition, "query", None) or name
        if any(get_origin(k) is list for k in kinds_of):
            kinds[key] = list
        else:
            kinds[key] = next((k for k in (bool, int, float) if k in kinds_of), str)
        if not field.has_default and not field.is_optional:
            required.append(key)
    spec = _QuerySpec(kinds, tuple(required))
    _SPECS[id(handler)] = (handler, spec)
    return spec


def _invalid(connection: Connection, what: str) -> ValidationException:
    """Litestar's own answer to a query its handler cannot take (as when it
    parses the handler's arguments, which the guards now come before)."""
    where = URL.from_components(path=connection.url.path, query=connection.url.query)
    return ValidationException(what.format(method=connection.scope.get("method"), where=where))


async def check_query(connection: Connection, _: BaseRouteHandler) -> None:
    """The first guard of every route, so before the caller is authenticated
    and before anything is parsed or written: unknown, repeated or missing
    query parameters are a 400, every number is bounded (``ironlog.core.numparse``)
    before it is converted, and every flag must be one.  (Not for OPTIONS, which
    answers for the path whatever the query.)"""
    if connection.scope.get("method") == "OPTIONS":
        return
    spec = _query_spec(connection)
    path = connection.path_params
    seen: set[str] = set()
    flags: list[str] = []
    for key, value in connection.query_params.multi_items():
        kind = spec.kinds.get(key) if key not in path else None
        if kind is None:
            known = ", ".join(k for k in spec.kinds if k not in path) or "none"
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
        elif kind is bool:
            flags.append(value)
    for key in spec.required:
        if key not in path and key not in seen:
            raise _invalid(
                connection, f"Missing required query parameter {key!r} for path {{where}}"
            )
    for value in flags:
        try:
            msgspec.convert(value, bool, strict=False)  # as Litestar converts it
        except msgspec.ValidationError:
            raise _invalid(connection, "Validation failed for {method} {where}") from None
