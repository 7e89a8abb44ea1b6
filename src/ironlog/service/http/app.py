"""The ironlog HTTP API.

Every endpoint but ``/healthz`` and ``/readyz`` needs an API key
(``Authorization: Bearer ilk_...`` or ``X-API-Key``).  Errors are always
``{"error": {"code": ..., "message": ...}}`` with the status given by
``ironlog.errors.HTTP_STATUS`` — the one place errors become statuses.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio.to_thread
import msgspec
from litestar import Litestar, Request, Response, delete, get, post, put
from litestar.exceptions import HTTPException
from litestar.openapi import OpenAPIConfig

from ironlog.core.entry import now_us, prepare_json, prepare_ndjson
from ironlog.core.merkle import leaf_hash
from ironlog.core.note import b64encode
from ironlog.core.numparse import parse_int
from ironlog.core.policy import parse_policy
from ironlog.core.receipts import Receipt
from ironlog.core.timeparse import parse_time
from ironlog.engine.api_keys import Principal, actor, parse_scopes
from ironlog.engine.instance import PRIVATE_UMASK, SYSTEM_LOG, Ironlog
from ironlog.engine.log import Log
from ironlog.engine.open_logs import DEFAULT_IDLE_SECONDS, DEFAULT_MAX_OPEN_LOGS, fitting_cap
from ironlog.errors import (
    InvalidEntryError,
    InvalidRequestError,
    IronlogError,
    LogUnavailableError,
    PermissionDeniedError,
    RateLimitedError,
    ResourceExhaustedError,
    TooLargeError,
    http_status,
    resource_exhausted,
)
from ironlog.service.cosigning import Witnessing
from ironlog.service.http.codec import (
    MAX_BODY_BYTES,
    TLOG_PROOF_TYPE,
    batch_json,
    json_response,
    key_json,
    parse_body,
    receipt_json,
    signing_key_json,
)
from ironlog.service.http.deps import State, check_query, limits, principal, resolve_log, state
from ironlog.service.http.metrics import Metrics
from ironlog.service.http.otlp import otlp_logs
from ironlog.service.http.ratelimit import RateLimiter
from ironlog.service.http.reads import READ_HANDLERS
from ironlog.service.ingest.listeners import Listeners
from ironlog.service.ingest.specs import ListenSpec
from ironlog.service.integrity import IntegrityChecker
from ironlog.service.limits import BatchBudget, Limits
from ironlog.service.outbound import OutboundPolicy
from ironlog.store.base import Durability, LogInfo, Query, parse_indexes

log = logging.getLogger("ironlog.api")

NDJSON_TYPES = ("application/x-ndjson", "application/jsonl", "application/ndjson")


def _error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> Response[bytes]:
    body = msgspec.json.encode({"error": {"code": code, "message": message}})
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def _on_ironlog_error(request: Request[Any, Any, Any], exc: IronlogError) -> Response[bytes]:
    status = http_status(exc)
    state(request).metrics.errors.labels(exc.code).inc()
    if isinstance(exc, (RateLimitedError, ResourceExhaustedError)):
        return _error(status, exc.code, str(exc), {"Retry-After": str(exc.retry_after)})
    if status >= 500 and status != 503:
        log.error("server error: %s", exc)
        return _error(status, exc.code, "internal error")
    return _error(status, exc.code, str(exc))


def _on_http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    code = {
        404: "not_found",
        405: "method_not_allowed",
        413: "too_large",
        415: "unsupported_media_type",
    }.get(exc.status_code, "bad_request" if exc.status_code < 500 else "internal")
    msg = exc.detail if exc.status_code < 500 else "internal error"
    state(request).metrics.errors.labels(code).inc()
    return _error(exc.status_code, code, msg, exc.headers)


def _on_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    exhausted = resource_exhausted(exc)  # out of descriptors or memory: retry, not a 500
    if exhausted is not None:
        return _on_ironlog_error(request, exhausted)
    log.error("unexpected error: %s", type(exc).__name__)  # never the request body
    return _error(500, "internal", "internal error")


# --- health -------------------------------------------------------------------


@get("/healthz", sync_to_thread=False)
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@get("/readyz", sync_to_thread=True)
def readyz(request: Request[Any, Any, Any]) -> Response[bytes]:
    il = state(request).il
    try:
        il.control.get_setting("origin_prefix")
        probe = il.data_dir / ".ready-probe"
        probe.write_bytes(b"ok")
        probe.unlink()
    except (OSError, IronlogError) as e:
        return _error(503, "not_ready", f"storage is not writable: {type(e).__name__}")
    return json_response({"status": "ready"})


# --- tenants, logs, keys --------------------------------------------------------


class TenantIn(msgspec.Struct, forbid_unknown_fields=True):
    name: str


class LogIn(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    durability: str = "sync"
    indexes: list[str] | str = "none"  # an array; a comma-separated string also works
    public: bool = False


class PublicIn(msgspec.Struct, forbid_unknown_fields=True):
    public: bool


class KeyIn(msgspec.Struct, forbid_unknown_fields=True):
    scopes: list[str] | str  # an array; a comma-separated string also works
    name: str = ""
    expires_in: int | None = None
    log: str | None = None  # binds the key to this log (and OTLP requests write there)


class RotateIn(msgspec.Struct, forbid_unknown_fields=True):
    old_expires_in: int | None = None


class EnabledIn(msgspec.Struct, forbid_unknown_fields=True):
    enabled: bool


class LockedIn(msgspec.Struct, forbid_unknown_fields=True):
    locked: bool


def _tenant_admin(p: Principal, tenant: str, log: str | None = None) -> None:
    """What only the tenant itself may do: not the operator (and a key bound
    to a log only on that log)."""
    if p.is_operator:
        raise PermissionDeniedError(
            "only the tenant's own admin key can do this, not the operator key"
        )
    p.require("admin", tenant, log)


@post("/v1/tenants")
async def create_tenant(request: Request[Any, Any, Any]) -> Response[bytes]:
    body = await request.body()
    p = principal(request)
    p.require("operator")
    data = parse_body(body, TenantIn)
    rec = await anyio.to_thread.run_sync(
        lambda: state(request).il.create_tenant(data.name, actor(p))
    )
    return json_response({"name": rec.name, "created_us": rec.created_us}, 201)


@get("/v1/tenants", sync_to_thread=True)
def list_tenants(request: Request[Any, Any, Any]) -> Response[bytes]:
    principal(request).require("operator")
    il = state(request).il
    return json_response(
        {
            "tenants": [
                {
                    "name": t.name,
                    "disabled": t.disabled,
                    "witnessing": il.witnessing_allowed(t.name),
                    "operator_locked": il.operator_locked(t.name),
                }
                for t in il.control.list_tenants()
            ]
        }
    )


@post("/v1/tenants/{tenant:str}/disable", sync_to_thread=True)
def disable_tenant(request: Request[Any, Any, Any], tenant: str) -> Response[bytes]:
    p = principal(request)
    p.require("operator")
    state(request).il.set_tenant_disabled(tenant, True, actor(p))
    state(request).keys.forget()
    return json_response({"name": tenant, "disabled": True})


@post("/v1/tenants/{tenant:str}/enable", sync_to_thread=True)
def enable_tenant(request: Request[Any, Any, Any], tenant: str) -> Response[bytes]:
    p = principal(request)
    p.require("operator")
    state(request).il.set_tenant_disabled(tenant, False, actor(p))
    return json_response({"name": tenant, "disabled": False})


@post("/v1/tenants/{tenant:str}/witnessing")
async def set_witnessing(request: Request[Any, Any, Any], tenant: str) -> Response[bytes]:
    """The operator allows a tenant's logs to have witnesses (off by default)."""
    body = await request.body()
    p = principal(request)
    p.require("operator")
    data = parse_body(body, EnabledIn)
    il = state(request).il
    await anyio.to_thread.run_sync(
        lambda: il.set_witnessing_allowed(tenant, data.enabled, actor(p))
    )
    return json_response({"name": tenant, "witnessing": data.enabled})


@post("/v1/tenants/{tenant:str}/operator-lock")
async def set_operator_lock(request: Request[Any, Any, Any], tenant: str) -> Response[bytes]:
    """The tenant's admin locks the operator out of creating its keys (or lifts that)."""
    body = await request.body()
    p = principal(request)
    _tenant_admin(p, tenant)
    data = parse_body(body, LockedIn)
    il = state(request).il
    await anyio.to_thread.run_sync(lambda: il.set_operator_locked(tenant, data.locked, actor(p)))
    return json_response({"name": tenant, "operator_locked": data.locked})


def _log_json(il: Ironlog, lg: Log) -> dict[str, Any]:
    return il.describe_log(lg, witnesses=False)


def _log_info_json(il: Ironlog, lg: Log) -> dict[str, Any]:
    return il.describe_log(lg)


@post("/v1/tenants/{tenant:str}/logs")
async def create_log(request: Request[Any, Any, Any], tenant: str) -> Response[bytes]:
    body = await request.body()
    p = principal(request)
    p.require("admin", tenant)
    data = parse_body(body, LogIn)
    if data.public:  # what is public, the tenant decides
        _tenant_admin(p, tenant)
    il = state(request).il
    durability, indexes = Durability.parse(data.durability), parse_indexes(data.indexes)
    await anyio.to_thread.run_sync(
        lambda: il.create_log(
            tenant, data.name, durability, indexes=indexes, public=data.public, by=actor(p)
        )
    )
    return json_response(_log_json(il, il.log(tenant, data.name)), 201)


@post("/v1/tenants/{tenant:str}/logs/{name:str}/public")
async def set_public(request: Request[Any, Any, Any], tenant: str, name: str) -> Response[bytes]:
    body = await request.body()
    p = principal(request)
    _tenant_admin(p, tenant, name)
    data = parse_body(body, PublicIn)
    il = state(request).il
    await anyio.to_thread.run_sync(lambda: il.set_log_public(tenant, name, data.public, actor(p)))
    return json_response({"log": f"{tenant}/{name}", "public": data.public})


@get("/v1/tenants/{tenant:str}/logs", sync_to_thread=True)
def list_logs(request: Request[Any, Any, Any], tenant: str) -> Response[bytes]:
    p = principal(request)
    p.require("read" if not p.is_operator else "admin", tenant)
    il = state(request).il
    il.tenant(tenant)
    rows = il.each_log(tenant, quarantined=True)
    bound = p.log  # a key bound to a log sees that log only
    listed = [_listed(il, info, lg) for info, lg in rows if bound is None or info.name == bound]
    return json_response({"logs": listed})


def _listed(il: Ironlog, info: LogInfo, lg: Log | IronlogError) -> dict[str, Any]:
    """A listing row; a log that cannot be opened is listed with the reason."""
    if isinstance(lg, IronlogError):
        return {
            "tenant": info.tenant,
            "name": info.name,
            "origin": info.origin,
            "durability": str(info.durability),
            "indexes": list(info.indexes),
            "public": info.public,
            "healthy": False,
            "unhealthy_reason": str(lg),
            "quarantined": info.quarantined,
        }
    out = _log_info_json(il, lg)
    out["quarantined"] = None
    return out


@post("/v1/tenants/{tenant:str}/keys")
async def create_key(request: Request[Any, Any, Any], tenant: str) -> Response[bytes]:
    body = await request.body()
    p = principal(request)
    p.require("admin", tenant)
    data = parse_body(body, KeyIn)
    scopes = parse_scopes(data.scopes)
    secret, rec = await anyio.to_thread.run_sync(
        lambda: state(request).keys.create(
            tenant, scopes, data.name, data.expires_in, data.log, by=actor(p)
        )
    )
    return json_response({"key": secret, **key_json(rec)}, 201)


@get("/v1/tenants/{tenant:str}/signing-keys", sync_to_thread=True)
def list_signing_keys(request: Request[Any, Any, Any], tenant: str) -> Response[bytes]:
    principal(request).require("admin", tenant)
    return json_response(
        {"keys": [signing_key_json(k) for k in state(request).il.signing_keys(tenant)]}
    )


@post("/v1/tenants/{tenant:str}/signing-keys/rotate", sync_to_thread=True)
def rotate_signing_key(request: Request[Any, Any, Any], tenant: str) -> Response[bytes]:
    """A new in-process key; old and new both sign until the old one is retired.
    (Keys in a PKCS#11 token are added by the operator with the CLI.)"""
    p = principal(request)
    p.require("admin", tenant)
    rec = state(request).il.rotate_signing_key(tenant, by=actor(p))
    return json_response(signing_key_json(rec), 201)


@post("/v1/tenants/{tenant:str}/signing-keys/{fp:str}/retire", sync_to_thread=True)
def retire_signing_key(request: Request[Any, Any, Any], tenant: str, fp: str) -> Response[bytes]:
    p = principal(request)
    p.require("admin", tenant)
    state(request).il.retire_signing_key(tenant, fp, by=actor(p))
    return json_response({"retired": fp})


@get("/v1/tenants/{tenant:str}/keys", sync_to_thread=True)
def list_keys(request: Request[Any, Any, Any], tenant: str) -> Response[bytes]:
    principal(request).require("admin", tenant)
    st = state(request)
    st.il.tenant(tenant)
    return json_response({"keys": [key_json(k) for k in st.keys.list(tenant)]})


@post("/v1/tenants/{tenant:str}/keys/{key_id:str}/rotate")
async def rotate_key(request: Request[Any, Any, Any], tenant: str, key_id: str) -> Response[bytes]:
    body = await request.body()
    p = principal(request)
    p.require("admin", tenant)
    data = parse_body(body or b"{}", RotateIn)
    secret, rec = await anyio.to_thread.run_sync(
        lambda: state(request).keys.rotate(key_id, tenant, data.old_expires_in, by=actor(p))
    )
    return json_response({"key": secret, "replaces": key_id, **key_json(rec)}, 201)


@delete("/v1/tenants/{tenant:str}/keys/{key_id:str}", sync_to_thread=True, status_code=200)
def revoke_key(request: Request[Any, Any, Any], tenant: str, key_id: str) -> Response[bytes]:
    p = principal(request)
    p.require("admin", tenant)
    st = state(request)
    st.keys.revoke(key_id, tenant, by=actor(p))
    return json_response({"revoked": key_id})


# --- logs: writing ----------------------------------------------------------------


@get("/v1/logs/{tenant:str}/{name:str}", sync_to_thread=True)
def log_info(request: Request[Any, Any, Any], tenant: str, name: str) -> Response[bytes]:
    lg = resolve_log(request, tenant, name, "read")
    return json_response(_log_info_json(state(request).il, lg))


@put("/v1/tenants/{tenant:str}/logs/{name:str}/witnesses")
async def set_witnesses(request: Request[Any, Any, Any], tenant: str, name: str) -> Response[bytes]:
    """Witnesses (url, cosignature/v1 vkey) and policy (k of n, nested groups).
    Only the tenant's admin, for a tenant the operator allowed witnesses; each
    URL must go to an address the operator allows (checked again at every send)."""
    body = await request.body()
    p = principal(request)
    _tenant_admin(p, tenant, name)
    try:
        raw = json.loads(body)
    except ValueError as e:
        raise InvalidRequestError("request body is not valid JSON") from e
    policy = parse_policy(raw)
    st = state(request)
    await anyio.to_thread.run_sync(
        lambda: st.il.set_witnesses(tenant, name, policy, by=actor(p), check_url=st.outbound.check)
    )
    return json_response(policy.to_json())


@post("/v1/logs/{tenant:str}/{name:str}/entries")
async def append_entries(
    request: Request[Any, Any, Any],
    tenant: str,
    name: str,
    witnessed: bool = False,
    witness_timeout: float = 10.0,
) -> Response[bytes]:
    lg = resolve_log(request, tenant, name, "append")
    body = await request.body()
    received = now_us()
    idem = request.headers.get("idempotency-key")
    ctype = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    # Every parameter is checked before anything is appended.
    if idem is not None and not 1 <= len(idem) <= 255:
        raise InvalidRequestError("an idempotency key is 1 to 255 characters")
    if "witness_timeout" in request.query_params and not witnessed:
        raise InvalidRequestError("witness_timeout needs witnessed=true")
    if witnessed and ctype in NDJSON_TYPES:
        raise InvalidRequestError("witnessed=true is for single JSON appends, not NDJSON batches")
    if witnessed and not 0 < witness_timeout <= 60:
        raise InvalidRequestError("witness_timeout must be in (0, 60] seconds")
    if ctype in NDJSON_TYPES:
        lim = limits(request)
        if body.count(b"\n") > lim.max_batch_records + 1:
            raise TooLargeError(f"at most {lim.max_batch_records} events per batch")
        try:
            entries = prepare_ndjson(body, received, "http")
        except InvalidEntryError as e:
            raise InvalidEntryError(f"{e}; nothing was appended") from e
        if not entries:
            raise InvalidEntryError("the NDJSON body has no events")
        budget = BatchBudget(lim)
        for entry in entries:
            budget.add(len(entry.data))
        batch = await lg.append_batch_async(entries, idem)
        return json_response(batch_json(batch), 201)
    if ctype not in ("application/json", "text/json"):
        raise HTTPException(status_code=415, detail="send application/json or application/x-ndjson")
    receipt = await lg.append_async(prepare_json(body, received, "http"), idem)
    extra: dict[str, Any] = {}
    if witnessed:
        receipt, ok = await _witnessed(state(request).il, lg, receipt, witness_timeout)
        extra["witnessed"] = ok
    if TLOG_PROOF_TYPE in request.headers.get("accept", ""):
        signed = await anyio.to_thread.run_sync(lg.signed_receipt, receipt)
        if signed is None:
            raise LogUnavailableError(
                f"entry {receipt.index} was appended but is not signed yet: "
                "fetch its proof later (GET .../proof/inclusion)"
            )
        receipt = signed
        return Response(
            receipt.tlog_proof().to_text().encode(), status_code=201, media_type=TLOG_PROOF_TYPE
        )
    return json_response({**receipt_json(receipt), **extra}, 201)


async def _witnessed(
    il: Ironlog, lg: Any, receipt: Receipt, timeout: float
) -> tuple[Receipt, bool]:
    """Wait for a checkpoint covering the entry that satisfies the witness
    policy; the receipt is then re-based on it.  On timeout, the receipt as is."""
    deadline = time.monotonic() + timeout
    info = lg.info
    while True:
        got = await anyio.to_thread.run_sync(
            il.witnessed_checkpoint, info.tenant, info.name, receipt.index + 1
        )
        if got is not None:
            size, checkpoint = got
            return await anyio.to_thread.run_sync(lg.rebase, receipt, size, checkpoint), True
        if time.monotonic() >= deadline:
            return receipt, False
        await asyncio.sleep(0.05)


# --- logs: reading ----------------------------------------------------------------


@get("/v1/logs/{tenant:str}/{name:str}/entries", sync_to_thread=True)
def list_entries(
    request: Request[Any, Any, Any],
    tenant: str,
    name: str,
    from_index: int = 0,
    limit: int = 100,
    since: str | None = None,
    until: str | None = None,
    actor: str | None = None,
    action: str | None = None,
    resource: str | None = None,
    outcome: str | None = None,
    cursor: str | None = None,
) -> Response[bytes]:
    """Entries in index order; ``next_cursor`` (opaque) gives the next page of
    the same query: send it as ``cursor``, with ``limit`` if you like, and no
    other parameter (the cursor carries them)."""
    lg = resolve_log(request, tenant, name, "read")
    if not 1 <= limit <= 1000:
        raise InvalidRequestError("limit must be between 1 and 1000")
    path = f"{tenant}/{name}"
    if cursor is not None:
        given = sorted(set(request.query_params) - {"cursor", "limit"})
        if given:
            raise InvalidRequestError(
                f"a cursor carries its query: send cursor (and limit) without {', '.join(given)}"
            )
        q = state(request).cursors.open(cursor, path).query()
    else:
        now = now_us()
        q = Query(
            since_us=parse_time(since, now) if since else None,
            until_us=parse_time(until, now) if until else None,
            actor=actor,
            action=action,
            resource=resource,
            outcome=outcome,
            from_index=from_index,
        )
    rows = list(lg.query(replace(q, limit=limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = state(request).cursors.issue(path, q, rows[-1][0] + 1) if more else None
    out = {
        "entries": [{"index": i, "entry": d.decode()} for i, d in rows],
        "next_cursor": next_cursor,
    }
    return json_response(out)


OCTET_STREAM = "application/octet-stream"


@get("/v1/logs/{tenant:str}/{name:str}/entries/{index:str}", sync_to_thread=True)
def get_entry(
    request: Request[Any, Any, Any], tenant: str, name: str, index: str, size: int | None = None
) -> Response[bytes]:
    lg = resolve_log(request, tenant, name, "read")
    i = parse_int(index, "index")
    data = lg.entry(i)
    if OCTET_STREAM in request.headers.get("accept", ""):
        # The exact stored bytes, for offline verification (nothing re-encoded).
        return Response(data, media_type=OCTET_STREAM)
    proof = lg.tlog_proof(i, size)
    return json_response(
        {
            "index": i,
            "entry": data.decode(),
            "leaf_hash": b64encode(leaf_hash(data)),
            "checkpoint": proof.checkpoint,
            "inclusion_proof": [b64encode(h) for h in proof.proof],
        }
    )


@get(
    "/v1/logs/{tenant:str}/{name:str}/checkpoint",
    sync_to_thread=True,
    media_type="text/plain; charset=utf-8",
)
def get_checkpoint(request: Request[Any, Any, Any], tenant: str, name: str) -> Response[bytes]:
    lg = resolve_log(request, tenant, name, "read")
    return Response(lg.checkpoint().encode(), media_type="text/plain; charset=utf-8")


@get("/v1/logs/{tenant:str}/{name:str}/proof/inclusion", sync_to_thread=True)
def inclusion(
    request: Request[Any, Any, Any], tenant: str, name: str, index: int, size: int | None = None
) -> Response[bytes]:
    lg = resolve_log(request, tenant, name, "read")
    proof = lg.tlog_proof(index, size)
    return json_response(
        {
            "index": index,
            "size": int(proof.checkpoint.split("\n")[1]),
            "inclusion_proof": [b64encode(h) for h in proof.proof],
            "checkpoint": proof.checkpoint,
        }
    )


@get("/v1/integrity", sync_to_thread=True)
def integrity_report(request: Request[Any, Any, Any]) -> Response[bytes]:
    p = principal(request)
    if not p.is_operator:
        p.require("read")
    report = state(request).integrity.report(p.tenant)
    if p.log is not None:  # a key bound to a log sees that log only
        report = [r for r in report if r.get("log") == f"{p.tenant}/{p.log}"]
    return json_response({"logs": report})


@get("/metrics", sync_to_thread=True)
def metrics(request: Request[Any, Any, Any]) -> Response[bytes]:
    principal(request).require("operator")
    body, ctype = state(request).metrics.render()
    return Response(body, media_type=ctype)


@post("/v1/integrity/{tenant:str}/{name:str}/clear", sync_to_thread=True)
def integrity_clear(
    request: Request[Any, Any, Any], tenant: str, name: str, force: bool = False
) -> Response[bytes]:
    p = principal(request)
    p.require("operator")
    st = state(request)
    st.il.log(tenant, name)  # 404 for an unknown log
    act = "integrity.force_clear" if force else "integrity.clear"
    if name == SYSTEM_LOG:  # it cannot record anything until it is cleared
        out = st.integrity.clear(f"{tenant}/{name}", force).to_json()
        st.il.record(tenant, actor(p), act, resource=name)
        return json_response(out)
    st.il.record(tenant, actor(p), act, resource=name)
    return json_response(st.integrity.clear(f"{tenant}/{name}", force).to_json())


class QuarantineIn(msgspec.Struct, forbid_unknown_fields=True):
    reason: str


@post("/v1/integrity/{tenant:str}/{name:str}/quarantine")
async def quarantine(request: Request[Any, Any, Any], tenant: str, name: str) -> Response[bytes]:
    """Operator: take a (broken) log out of service; it refuses reads and
    writes with the reason, and the background checks skip it."""
    body = await request.body()
    p = principal(request)
    p.require("operator")
    data = parse_body(body, QuarantineIn)
    info = await anyio.to_thread.run_sync(
        state(request).il.quarantine_log, tenant, name, data.reason, actor(p)
    )
    return json_response({"log": info.path, "quarantined": info.quarantined})


@post("/v1/integrity/{tenant:str}/{name:str}/release", sync_to_thread=True)
def release_log(request: Request[Any, Any, Any], tenant: str, name: str) -> Response[bytes]:
    p = principal(request)
    p.require("operator")
    st = state(request)
    info = st.il.release_log(tenant, name, actor(p))
    st.integrity.forget(info.path)
    return json_response({"log": info.path, "quarantined": None})


@post("/v1/integrity/{tenant:str}/{name:str}/delete", sync_to_thread=True, status_code=200)
def delete_log(request: Request[Any, Any, Any], tenant: str, name: str) -> Response[bytes]:
    """Operator: forget a quarantined log (its files are kept under deleted/)."""
    p = principal(request)
    p.require("operator")
    st = state(request)
    where = st.il.delete_log(tenant, name, actor(p))
    st.integrity.forget(f"{tenant}/{name}")
    return json_response({"log": f"{tenant}/{name}", "deleted": True, "files": where})


def create_app(
    il: Ironlog,
    verify_interval: float = 10.0,
    full_verify_interval: float = 3600.0,
    rate_limit: float = 0.0,
    rate_burst: float | None = None,
    listen: Sequence[ListenSpec] = (),
    outbound: OutboundPolicy | None = None,
    limits: Limits | None = None,
) -> Litestar:
    checker = IntegrityChecker(il, verify_interval, full_verify_interval)
    meters = Metrics()
    meters.attach(il)  # commits, open logs

    limits = limits or Limits()
    running = Listeners(limits)
    outbound = outbound or OutboundPolicy()
    witnessing = Witnessing(il, outbound=outbound)

    async def startup() -> None:
        if verify_interval > 0:
            checker.start()
        witnessing.start()
        await running.start(list(listen), il.log, meters)

    async def shutdown() -> None:
        await running.stop()
        witnessing.stop()
        checker.stop()
        il.close()

    app = Litestar(
        route_handlers=[
            healthz,
            readyz,
            create_tenant,
            list_tenants,
            disable_tenant,
            enable_tenant,
            set_witnessing,
            set_operator_lock,
            create_log,
            set_public,
            set_witnesses,
            list_logs,
            create_key,
            list_keys,
            list_signing_keys,
            rotate_signing_key,
            retire_signing_key,
            rotate_key,
            revoke_key,
            log_info,
            append_entries,
            list_entries,
            get_entry,
            get_checkpoint,
            inclusion,
            integrity_report,
            integrity_clear,
            quarantine,
            release_log,
            delete_log,
            metrics,
            otlp_logs,
            *READ_HANDLERS,
        ],
        before_request=check_query,
        on_startup=[startup],
        on_shutdown=[shutdown],
        exception_handlers={
            IronlogError: _on_ironlog_error,
            HTTPException: _on_http_error,
            Exception: _on_unexpected,
        },
        request_max_body_size=MAX_BODY_BYTES,
        openapi_config=OpenAPIConfig(title="ironlog", version="0.1.0"),
        debug=False,
    )
    app.state.ironlog = State(il, checker, meters, RateLimiter(rate_limit, rate_burst))
    app.state.ironlog.outbound = outbound
    app.state.limits = limits
    return app


def create_app_from_env() -> Litestar:
    """Factory for uvicorn workers: the data directory comes from IRONLOG_DATA."""
    os.umask(PRIVATE_UMASK)  # files 0600 (metrics, locks, probes), directories 0700
    return create_app(
        Ironlog(
            Path(os.environ.get("IRONLOG_DATA", "data")),
            max_open_logs=fitting_cap(
                int(os.environ.get("IRONLOG_MAX_OPEN_LOGS", DEFAULT_MAX_OPEN_LOGS))
            ),
            log_idle_seconds=float(
                os.environ.get("IRONLOG_LOG_IDLE_SECONDS", DEFAULT_IDLE_SECONDS)
            ),
        ),
        verify_interval=float(os.environ.get("IRONLOG_VERIFY_INTERVAL", "10")),
        full_verify_interval=float(os.environ.get("IRONLOG_FULL_VERIFY_INTERVAL", "3600")),
        rate_limit=float(os.environ.get("IRONLOG_RATE_LIMIT", "0")),
        rate_burst=float(os.environ["IRONLOG_RATE_BURST"])
        if os.environ.get("IRONLOG_RATE_BURST")
        else None,
        listen=[
            ListenSpec.from_dict(x) for x in json.loads(os.environ.get("IRONLOG_LISTEN", "[]"))
        ],
        outbound=OutboundPolicy.from_env(),
        limits=Limits.from_env(),
    )
