"""Per-request helpers: the app's state, the caller's key, the log it may use."""

from __future__ import annotations

from typing import Any

from litestar import Request

from ironlog.auth import KeyManager, Principal
from ironlog.engine import Log
from ironlog.instance import Ironlog
from ironlog.integrity import IntegrityChecker


class State:
    def __init__(self, il: Ironlog, checker: IntegrityChecker) -> None:
        self.il = il
        self.keys = KeyManager(il.control)
        self.integrity = checker


def state(request: Request[Any, Any, Any]) -> State:
    st: State = request.app.state.ironlog
    return st


def principal(request: Request[Any, Any, Any]) -> Principal:
    header = request.headers.get("authorization", "")
    key = (
        header[7:].strip() if header[:7].lower() == "bearer " else request.headers.get("x-api-key")
    )
    return state(request).keys.authenticate(key)


def resolve_log(request: Request[Any, Any, Any], tenant: str, name: str, scope: str) -> Log:
    p = principal(request)
    p.require(scope, tenant)
    if p.is_operator:
        p.require("admin", tenant)
    return state(request).il.log(tenant, name)
