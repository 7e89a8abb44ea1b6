"""Per-request helpers: the app's state, the caller's key, the log it may use."""

from __future__ import annotations

from typing import Any

from litestar import Request

from ironlog.api.metrics import Metrics
from ironlog.api.ratelimit import RateLimiter
from ironlog.auth import KeyManager, Principal
from ironlog.engine import Log
from ironlog.errors import RateLimitedError
from ironlog.instance import Ironlog
from ironlog.integrity import IntegrityChecker
from ironlog.limits import Limits
from ironlog.outbound import OutboundPolicy


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
    p.require(scope, tenant)
    if p.is_operator:
        p.require("admin", tenant)
    return state(request).il.log(tenant, name)


def limits(request: Request[Any, Any, Any]) -> Limits:
    """The per-request limits the app was created with."""
    lim = getattr(request.app.state, "limits", None)
    return lim if isinstance(lim, Limits) else Limits()
