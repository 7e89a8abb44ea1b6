"""Who may call what: the Litestar guards of the routes, and the ``Log`` they open.

Each route names its guard on its handler (``guards=[...]``; not on a router:
Litestar 2 gives a router's guards to the OPTIONS handler it makes for a
path, which answers without a key).  A guard authenticates the caller (once
per request: ``deps.principal``), checks its scope against the tenant (and
log) in the path and raises the ironlog error that says why not, before the
request's body is read; ``deps.check_query``, the app's own guard, runs
before all of them.  ``tests/test_routes.py`` checks that every route in the
OpenAPI document but health refuses a caller without a valid key.

A handler that takes ``lg: Log`` gets it from :func:`provide_log`, which opens
only a log that the route's guard let through (``log_guard``, ``public_or_read``):
a route that forgot its guard answers 500, it never opens the log.  A handler
that takes ``caller: Principal`` gets the key its guard checked.

The async guards run on the event loop, as the write path did before them;
``public_or_read`` reads the control store, so it is sync (Litestar runs it
in a thread).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from litestar.di import Provide
from litestar.handlers import BaseRouteHandler

from ironlog.engine.api_keys import Principal
from ironlog.engine.log import Log
from ironlog.errors import PermissionDeniedError
from ironlog.service.http.deps import AnyRequest, Connection, principal, request_state, state

_LOG = "ironlog.log"  # the (tenant, log) a guard let this request use (Request.state)

Guard = Callable[[Connection, BaseRouteHandler], Awaitable[None] | None]


def _tenant(connection: Connection) -> str:
    return str(connection.path_params["tenant"])


def require_owner(p: Principal, tenant: str, log: str | None = None) -> None:
    """What only the tenant itself may do: not the operator (and a key bound
    to a log only on that log)."""
    if p.is_operator:
        raise PermissionDeniedError(
            "only the tenant's own admin key can do this, not the operator key"
        )
    p.require("admin", tenant, log)


async def operator(connection: Connection, _: BaseRouteHandler) -> None:
    """The operator key only."""
    principal(connection).require("operator")


async def tenant_admin(connection: Connection, _: BaseRouteHandler) -> None:
    """The admin scope on the path's tenant (the operator has it everywhere)."""
    principal(connection).require("admin", _tenant(connection))


async def tenant_owner(connection: Connection, _: BaseRouteHandler) -> None:
    """The tenant's own admin key, not the operator's (on the path's log, if any)."""
    require_owner(principal(connection), _tenant(connection), connection.path_params.get("name"))


async def tenant_reader(connection: Connection, _: BaseRouteHandler) -> None:
    """Listing a tenant's logs: a key with the read scope there, or the operator."""
    p = principal(connection)
    p.require("read" if not p.is_operator else "admin", _tenant(connection))


async def any_reader(connection: Connection, _: BaseRouteHandler) -> None:
    """Any key with the read scope (it sees its own tenant), or the operator (all)."""
    p = principal(connection)
    if not p.is_operator:
        p.require("read")


def _allow_log(connection: Connection, scope: str | None) -> None:
    """Let this request open the log of its path: with ``scope`` (read, append)
    there, or with no key at all (``None``: a public log's tiles)."""
    tenant, name = _tenant(connection), str(connection.path_params["name"])
    if scope is not None:
        p = principal(connection)
        p.require(scope, tenant, name)
        if p.is_operator:
            p.require("admin", tenant)
    request_state(connection)[_LOG] = (tenant, name)


def log_guard(scope: str) -> Guard:
    """``scope`` (read, append) on the log ``{tenant}/{name}`` of the path."""

    async def guard(connection: Connection, _: BaseRouteHandler) -> None:
        _allow_log(connection, scope)

    guard.__name__ = guard.__qualname__ = f"can_{scope}"
    return guard


can_read = log_guard("read")
can_append = log_guard("append")


def public_or_read(connection: Connection, _: BaseRouteHandler) -> None:
    """tlog-tiles of a public log need no key; the flag is read fresh each
    time, so every worker agrees as soon as it changes."""
    info = state(connection).il.control.get_log(_tenant(connection), connection.path_params["name"])
    _allow_log(connection, None if info is not None and info.public else "read")


async def provide_log(request: AnyRequest, tenant: str, name: str) -> Log:
    """The log of the path, opened (404 unknown, 503 quarantined), for a
    request its route's guard let through."""
    if request_state(request).get(_LOG) != (tenant, name):
        raise RuntimeError(f"{request.route_handler} opens a log without a log guard")
    return state(request).il.log(tenant, name)


async def provide_caller(request: AnyRequest) -> Principal:
    """The caller's key (the one its route's guard checked)."""
    return principal(request)


DEPENDENCIES = {"lg": Provide(provide_log), "caller": Provide(provide_caller)}
