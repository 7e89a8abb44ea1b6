"""The per-request cost of the routes' guards: Litestar 2 gives every guard a
fresh copy of the route handler at every request (~40 µs each, two guards a
route), ironlog's route decorators (``service/routing.py``) give it the
handler itself.  In process (Litestar's TestClient over ``create_app``), as
the copies cannot be seen from outside; ``benchmarks/bench_http_cpu.py``
measures the time."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import litestar.handlers.base
import pytest
from litestar import Litestar
from litestar.routes import HTTPRoute
from litestar.testing import TestClient

from ironlog.engine.api_keys import KeyManager
from ironlog.engine.instance import Ironlog
from ironlog.service.config import ServeConfig
from ironlog.service.http.app import create_app
from ironlog.service.routing import Handler

# Litestar 2.25 warns, when the app is built, of what Litestar 3 will refuse
# (inferred dependencies such as ``lg``, inferred query parameters,
# ``Parameter(query=...)``); the real server builds the app in its worker,
# where a warning is not an error.
pytestmark = [
    pytest.mark.filterwarnings("ignore::litestar.exceptions.LitestarDeprecationWarning"),
    pytest.mark.filterwarnings("ignore:Deprecated 'query' parameter:DeprecationWarning"),
]


@pytest.fixture
def app(il: Ironlog) -> Litestar:
    il.create_log("demo", "events", create_tenant=True)
    return create_app(il, ServeConfig(verify_interval=0))


@pytest.fixture
def copies(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[object]]:
    """The route handlers Litestar copies from now on (for its guards)."""
    made: list[object] = []
    real = litestar.handlers.base.copy

    def counting(x: Any) -> Any:
        made.append(x)
        return real(x)

    monkeypatch.setattr(litestar.handlers.base, "copy", counting)
    yield made


def test_requests_copy_no_route_handler(app: Litestar, il: Ironlog, copies: list[object]) -> None:
    key, _ = KeyManager(il.control).create("demo", ("read", "append"))
    auth = {"Authorization": f"Bearer {key}"}
    base = "/v1/logs/demo/events"
    with TestClient(app) as client:
        copies.clear()  # (startup)
        for i in range(3):
            r = client.post(f"{base}/entries", json={"i": i}, headers=auth)
            assert r.status_code == 201, r.text
        assert client.get(base, headers=auth).json()["size"] == 3
        r = client.get(f"{base}/entries", params={"limit": 2}, headers=auth)
        assert [e["index"] for e in r.json()["entries"]] == [0, 1], r.text
        r = client.get(f"{base}/proof/inclusion", params={"index": 1}, headers=auth)
        assert r.status_code == 200 and r.json()["index"] == 1, r.text
        # The guards still refuse, in the same order: the query first, then the key.
        r = client.get(base, params={"nope": 1}, headers=auth)
        assert r.status_code == 400 and "unknown query parameter" in r.text, r.text
        r = client.get(base, headers={"Authorization": "Bearer ilk_not_a_key"})
        assert r.status_code == 401, r.text
        assert client.get("/healthz").status_code == 200
    assert copies == []


def test_every_route_is_made_by_ironlogs_decorators(app: Litestar) -> None:
    """A route made with Litestar's own ``get``/``post`` would copy its
    handler twice per request again: every one but Litestar's (OPTIONS, the
    OpenAPI document) is a ``routing.Handler``."""
    ours = 0
    for route in app.routes:
        if not isinstance(route, HTTPRoute) or route.path.startswith("/schema"):
            continue
        for handler in route.route_handlers:
            if handler.http_methods == {"OPTIONS"}:
                continue
            assert isinstance(handler, Handler), (route.path, handler)
            ours += 1
    assert ours >= 40, ours
