"""The ironlog HTTP API: the factory.

Every endpoint but ``/healthz`` and ``/readyz`` (and the tiles of a public
log) needs an API key (``Authorization: Bearer ilk_...`` or ``X-API-Key``).
Errors are always ``{"error": {"code": ..., "message": ...}}`` with the status
given by ``ironlog.errors.HTTP_STATUS`` (``errors.py``).

The routes are one Router per concern, listed in ``ROUTERS`` (a new one is
one line there); who may call each route is its guard (``access.py``).
"""

from __future__ import annotations

import os

from litestar import Litestar, Router
from litestar.openapi import OpenAPIConfig
from litestar.types import ControllerRouterHandler

from ironlog.engine.instance import PRIVATE_UMASK, Ironlog
from ironlog.engine.open_logs import fitting_cap
from ironlog.service.config import ServeConfig, worker_config
from ironlog.service.console import console_router
from ironlog.service.cosigning import Witnessing
from ironlog.service.http import admin, ops, reads, writes
from ironlog.service.http.access import DEPENDENCIES
from ironlog.service.http.codec import MAX_BODY_BYTES
from ironlog.service.http.deps import State, check_query
from ironlog.service.http.errors import EXCEPTION_HANDLERS
from ironlog.service.http.evidence import EVIDENCE_HANDLERS
from ironlog.service.http.insights import INSIGHTS_HANDLERS, Insights
from ironlog.service.http.metrics import Metrics
from ironlog.service.http.otlp import otlp_logs
from ironlog.service.http.ratelimit import RateLimiter
from ironlog.service.ingest.listeners import Listeners
from ironlog.service.integrity import IntegrityChecker

ROUTERS: list[ControllerRouterHandler] = [
    ops.router,  # health, readiness, metrics, integrity
    admin.router,  # tenants, logs, API keys, signing keys, witnesses
    # A log: appending and reading.  One router, as Litestar 2 cannot share a
    # path (GET and POST .../entries) between two routers: each makes its own
    # OPTIONS handler for it, and registering the second fails.
    Router("/", route_handlers=[*writes.ROUTES, *reads.ROUTES]),
    reads.tiles,  # C2SP tlog-tiles
    otlp_logs,  # OTLP/HTTP logs
    *INSIGHTS_HANDLERS,  # stats, usage, quotas
    *EVIDENCE_HANDLERS,  # evidence bundles
    console_router(),  # the web console (/ui) and /v1/whoami
]


def create_app(il: Ironlog, config: ServeConfig | None = None) -> Litestar:
    """The API over ``il``, configured by ``config`` (defaults if none)."""
    cfg = config or ServeConfig()
    checker = IntegrityChecker(il, cfg.verify_interval, cfg.full_verify_interval)
    meters = Metrics()
    meters.attach(il)  # commits, open logs
    insights = Insights(il, meters.registry)  # stats, quotas, per-tenant counters

    running = Listeners(cfg.limits)
    outbound = cfg.outbound()
    witnessing = Witnessing(il, outbound=outbound)

    async def startup() -> None:
        if cfg.verify_interval > 0:
            checker.start()
        witnessing.start()
        await running.start(list(cfg.listen), il.log, meters)

    async def shutdown() -> None:
        await running.stop()
        witnessing.stop()
        checker.stop()
        insights.close()
        il.close()

    app = Litestar(
        route_handlers=ROUTERS,
        guards=[check_query],  # before any other guard: unknown query parameters are a 400
        dependencies=DEPENDENCIES,
        on_startup=[startup],
        on_shutdown=[shutdown],
        exception_handlers=EXCEPTION_HANDLERS,
        request_max_body_size=MAX_BODY_BYTES,
        openapi_config=OpenAPIConfig(title="ironlog", version="0.1.0"),
        debug=False,
    )
    limiter = RateLimiter(cfg.rate_limit, cfg.rate_burst)
    app.state.ironlog = State(il, checker, meters, limiter, outbound, cfg.limits)
    app.state.insights = insights
    return app


def create_app_from_env() -> Litestar:
    """Factory for uvicorn workers: what ``serve`` handed over (``worker_config``)."""
    os.umask(PRIVATE_UMASK)  # files 0600 (metrics, locks, probes), directories 0700
    data, cfg = worker_config()
    il = Ironlog(
        data,
        max_open_logs=fitting_cap(cfg.max_open_logs),
        log_idle_seconds=cfg.log_idle_seconds,
    )
    return create_app(il, cfg)
