"""The route decorators of the API (``get``, ``post``, ``put``, ``delete``):
Litestar's, but their guards are given the route handler itself.

Litestar 2 hands every guard a fresh ``copy()`` of the route handler at every
request (``BaseRouteHandler.authorize_connection``), about 40 µs each, and
every route here has two guards (``deps.check_query``, the app's, then its
own): most of what the HTTP layer cost per request.  The guards only read
the handler (``check_query`` reads its signature through
``connection.route_handler``), so they get the one Litestar registered.
Everything else is Litestar's ``HTTPRouteHandler``, unchanged.
"""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.enums import HttpMethod
from litestar.handlers import HTTPRouteHandler


class Handler(HTTPRouteHandler):
    """A route handler whose guards run on it, not on a copy per guard."""

    __slots__ = ()

    async def authorize_connection(self, connection: ASGIConnection[Any, Any, Any, Any]) -> None:
        for guard in self.resolve_guards():
            await guard(connection, self)  # type: ignore[misc]  # (made async by resolve_guards)


def get(path: str | list[str] | None = None, **kwargs: Any) -> Handler:
    return Handler(path, http_method=HttpMethod.GET, **kwargs)


def post(path: str | list[str] | None = None, **kwargs: Any) -> Handler:
    return Handler(path, http_method=HttpMethod.POST, **kwargs)


def put(path: str | list[str] | None = None, **kwargs: Any) -> Handler:
    return Handler(path, http_method=HttpMethod.PUT, **kwargs)


def delete(path: str | list[str] | None = None, **kwargs: Any) -> Handler:
    return Handler(path, http_method=HttpMethod.DELETE, **kwargs)
