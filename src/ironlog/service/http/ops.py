"""Running the service: health, readiness, /metrics, and /v1/integrity (the
integrity report, and the operator's clear, quarantine, release and delete)."""

from __future__ import annotations

import anyio.to_thread
import msgspec
from litestar import Response, Router

from ironlog.engine.api_keys import Principal, actor
from ironlog.engine.instance import SYSTEM_LOG
from ironlog.errors import IronlogError
from ironlog.service.http.access import any_reader, operator
from ironlog.service.http.codec import json_response, parse_body
from ironlog.service.http.deps import AnyRequest, state
from ironlog.service.http.errors import error_response
from ironlog.service.routing import get, post

# --- health -------------------------------------------------------------------


@get("/healthz", sync_to_thread=False)
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@get("/readyz", sync_to_thread=True)
def readyz(request: AnyRequest) -> Response[bytes]:
    il = state(request).il
    try:
        il.control.get_setting("origin_prefix")
        probe = il.data_dir / ".ready-probe"
        probe.write_bytes(b"ok")
        probe.unlink()
    except (OSError, IronlogError) as e:
        return error_response(503, "not_ready", f"storage is not writable: {type(e).__name__}")
    return json_response({"status": "ready"})


# --- metrics and integrity -------------------------------------------------------


@get("/v1/integrity", sync_to_thread=True, guards=[any_reader])
def integrity_report(request: AnyRequest, caller: Principal) -> Response[bytes]:
    report = state(request).integrity.report(caller.tenant)
    if caller.log is not None:  # a key bound to a log sees that log only
        report = [r for r in report if r.get("log") == f"{caller.tenant}/{caller.log}"]
    return json_response({"logs": report})


@get("/metrics", sync_to_thread=True, guards=[operator])
def metrics(request: AnyRequest) -> Response[bytes]:
    body, ctype = state(request).metrics.render()
    return Response(body, media_type=ctype)


@post("/clear", sync_to_thread=True, guards=[operator])
def integrity_clear(
    request: AnyRequest, caller: Principal, tenant: str, name: str, force: bool = False
) -> Response[bytes]:
    st = state(request)
    st.il.log(tenant, name)  # 404 for an unknown log
    act = "integrity.force_clear" if force else "integrity.clear"
    if name == SYSTEM_LOG:  # it cannot record anything until it is cleared
        out = st.integrity.clear(f"{tenant}/{name}", force).to_json()
        st.il.record(tenant, actor(caller), act, resource=name)
        return json_response(out)
    st.il.record(tenant, actor(caller), act, resource=name)
    return json_response(st.integrity.clear(f"{tenant}/{name}", force).to_json())


class QuarantineIn(msgspec.Struct, forbid_unknown_fields=True):
    reason: str


@post("/quarantine", guards=[operator])
async def quarantine(
    request: AnyRequest, caller: Principal, tenant: str, name: str
) -> Response[bytes]:
    """Operator: take a (broken) log out of service; it refuses reads and
    writes with the reason, and the background checks skip it."""
    data = parse_body(await request.body(), QuarantineIn)
    info = await anyio.to_thread.run_sync(
        state(request).il.quarantine_log, tenant, name, data.reason, actor(caller)
    )
    return json_response({"log": info.path, "quarantined": info.quarantined})


@post("/release", sync_to_thread=True, guards=[operator])
def release_log(request: AnyRequest, caller: Principal, tenant: str, name: str) -> Response[bytes]:
    st = state(request)
    info = st.il.release_log(tenant, name, actor(caller))
    st.integrity.forget(info.path)
    return json_response({"log": info.path, "quarantined": None})


@post("/delete", sync_to_thread=True, status_code=200, guards=[operator])
def delete_log(request: AnyRequest, caller: Principal, tenant: str, name: str) -> Response[bytes]:
    """Operator: forget a quarantined log (its files are kept under deleted/)."""
    st = state(request)
    where = st.il.delete_log(tenant, name, actor(caller))
    st.integrity.forget(f"{tenant}/{name}")
    return json_response({"log": f"{tenant}/{name}", "deleted": True, "files": where})


# The operator's acts on one log.
one_log = Router(
    "/v1/integrity/{tenant:str}/{name:str}",
    route_handlers=[integrity_clear, quarantine, release_log, delete_log],
)
router = Router("/", route_handlers=[healthz, readyz, integrity_report, metrics, one_log])
