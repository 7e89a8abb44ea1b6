"""The web console: ``/ui`` (signed in with an API key) and ``/ui/verify``
(public, verifies in the browser), served from package data.

Every page and asset is served by ironlog itself with a strict
Content-Security-Policy (no inline script or style, no CDN); the pages talk
to the ordinary HTTP API with the key the user typed, which the page keeps in
``sessionStorage``.  The only endpoint added for them is ``GET /v1/whoami``:
who the key is, so the page shows what the key may see and do.
"""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any

import msgspec
from litestar import Request, Response, Router

from ironlog.errors import NotFoundError
from ironlog.service.routing import get

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".json": "application/json",
    ".txt": "text/plain; charset=utf-8",
}
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


def static_root() -> Traversable:
    return resources.files(__name__) / "static"


def _asset(path: str) -> tuple[bytes, str]:
    """A file under static/ by its relative path; 404 for anything else
    (no ``..``, no hidden files, only known types; LICENSE files as text)."""
    parts = path.strip("/").split("/")
    if not parts or any(not p or p[0] == "." or not set(p) <= _NAME_CHARS for p in parts):
        raise NotFoundError("no such console file")
    name = parts[-1]
    ext = name[name.rfind(".") :] if "." in name else ""
    ctype = TYPES.get(ext) or (TYPES[".txt"] if name.startswith("LICENSE") else None)
    node = static_root().joinpath(*parts)
    if ctype is None or not node.is_file():
        raise NotFoundError("no such console file")
    return node.read_bytes(), ctype


def _page(name: str) -> Response[bytes]:
    body, ctype = _asset(name)
    return Response(body, media_type=ctype, headers=HEADERS)


@get(["/ui", "/ui/"], sync_to_thread=False, include_in_schema=False)
def console_page() -> Response[bytes]:
    return _page("index.html")


@get(["/ui/verify", "/ui/verify/"], sync_to_thread=False, include_in_schema=False)
def verify_page() -> Response[bytes]:
    return _page("verify.html")


@get("/ui/static/{path:path}", sync_to_thread=False, include_in_schema=False)
def console_asset(path: str) -> Response[bytes]:
    return _page(path)


class WhoAmI(msgspec.Struct):
    """The calling key: its id, tenant (null for the operator), scopes, and
    the log it is bound to (null when it is not bound to one)."""

    key_id: str
    tenant: str | None
    scopes: list[str]
    log: str | None
    operator: bool


@get("/v1/whoami", sync_to_thread=False)
def whoami(request: Request[Any, Any, Any]) -> WhoAmI:
    """Who the request's API key is (any valid key)."""
    from ironlog.service.http.deps import principal  # (service.http imports this module)

    p = principal(request)
    return WhoAmI(p.key_id, p.tenant, list(p.scopes), p.log, p.is_operator)


def console_router() -> Router:
    """The console's routes, to register with the app."""
    return Router(path="/", route_handlers=[console_page, verify_page, console_asset, whoami])
