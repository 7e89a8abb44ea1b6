"""Managing tenants and their logs: tenants (operator), witnessing and the
operator lock, logs (create, public, witnesses, list), API keys and
checkpoint-signing keys.  Each route's guard says who may call it
(``access.py``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import anyio.to_thread
import msgspec
from litestar import Response, Router

from ironlog.core.policy import parse_policy
from ironlog.engine.api_keys import Principal, actor, parse_scopes
from ironlog.engine.instance import Ironlog
from ironlog.engine.log import Log
from ironlog.errors import InvalidRequestError, IronlogError
from ironlog.service.http.access import (
    operator,
    require_owner,
    tenant_admin,
    tenant_owner,
    tenant_reader,
)
from ironlog.service.http.codec import json_response, key_json, parse_body, signing_key_json
from ironlog.service.http.deps import AnyRequest, state
from ironlog.service.routing import delete, get, post, put
from ironlog.store.base import Durability, LogInfo, parse_indexes


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


# --- tenants (the operator) -----------------------------------------------------


@post("/", guards=[operator])
async def create_tenant(request: AnyRequest, caller: Principal) -> Response[bytes]:
    data = parse_body(await request.body(), TenantIn)
    rec = await anyio.to_thread.run_sync(
        lambda: state(request).il.create_tenant(data.name, actor(caller))
    )
    return json_response({"name": rec.name, "created_us": rec.created_us}, 201)


@get("/", sync_to_thread=True, guards=[operator])
def list_tenants(request: AnyRequest) -> Response[bytes]:
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


@post("/{tenant:str}/disable", sync_to_thread=True, guards=[operator])
def disable_tenant(request: AnyRequest, caller: Principal, tenant: str) -> Response[bytes]:
    state(request).il.set_tenant_disabled(tenant, True, actor(caller))
    state(request).keys.forget()
    return json_response({"name": tenant, "disabled": True})


@post("/{tenant:str}/enable", sync_to_thread=True, guards=[operator])
def enable_tenant(request: AnyRequest, caller: Principal, tenant: str) -> Response[bytes]:
    state(request).il.set_tenant_disabled(tenant, False, actor(caller))
    return json_response({"name": tenant, "disabled": False})


async def _set_flag(
    setter: Callable[[str, bool, str], object], tenant: str, value: bool, caller: Principal
) -> None:
    """Set one of a tenant's flags (in a thread: it writes the control store
    and the tenant's system log)."""
    await anyio.to_thread.run_sync(setter, tenant, value, actor(caller))


@post("/{tenant:str}/witnessing", guards=[operator])
async def set_witnessing(request: AnyRequest, caller: Principal, tenant: str) -> Response[bytes]:
    """The operator allows a tenant's logs to have witnesses (off by default)."""
    on = parse_body(await request.body(), EnabledIn).enabled
    await _set_flag(state(request).il.set_witnessing_allowed, tenant, on, caller)
    return json_response({"name": tenant, "witnessing": on})


@post("/{tenant:str}/operator-lock", guards=[tenant_owner])
async def set_operator_lock(request: AnyRequest, caller: Principal, tenant: str) -> Response[bytes]:
    """The tenant's admin locks the operator out of creating its keys (or lifts that)."""
    locked = parse_body(await request.body(), LockedIn).locked
    await _set_flag(state(request).il.set_operator_locked, tenant, locked, caller)
    return json_response({"name": tenant, "operator_locked": locked})


# --- logs -------------------------------------------------------------------------


@post("/{tenant:str}/logs", guards=[tenant_admin])
async def create_log(request: AnyRequest, caller: Principal, tenant: str) -> Response[bytes]:
    data = parse_body(await request.body(), LogIn)
    if data.public:  # what is public, the tenant decides
        require_owner(caller, tenant)
    il = state(request).il
    durability, indexes = Durability.parse(data.durability), parse_indexes(data.indexes)
    await anyio.to_thread.run_sync(
        lambda: il.create_log(
            tenant, data.name, durability, indexes=indexes, public=data.public, by=actor(caller)
        )
    )
    return json_response(il.describe_log(il.log(tenant, data.name), witnesses=False), 201)


@post("/{tenant:str}/logs/{name:str}/public", guards=[tenant_owner])
async def set_public(
    request: AnyRequest, caller: Principal, tenant: str, name: str
) -> Response[bytes]:
    data = parse_body(await request.body(), PublicIn)
    il = state(request).il
    await anyio.to_thread.run_sync(
        lambda: il.set_log_public(tenant, name, data.public, actor(caller))
    )
    return json_response({"log": f"{tenant}/{name}", "public": data.public})


@get("/{tenant:str}/logs", sync_to_thread=True, guards=[tenant_reader])
def list_logs(request: AnyRequest, caller: Principal, tenant: str) -> Response[bytes]:
    il = state(request).il
    il.tenant(tenant)
    rows = il.each_log(tenant, quarantined=True)
    bound = caller.log  # a key bound to a log sees that log only
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
    out = il.describe_log(lg)
    out["quarantined"] = None
    return out


@put("/{tenant:str}/logs/{name:str}/witnesses", guards=[tenant_owner])
async def set_witnesses(
    request: AnyRequest, caller: Principal, tenant: str, name: str
) -> Response[bytes]:
    """Witnesses (url, cosignature/v1 vkey) and policy (k of n, nested groups).
    Only the tenant's admin, for a tenant the operator allowed witnesses; each
    URL must go to an address the operator allows (checked again at every send)."""
    body = await request.body()
    try:
        raw = json.loads(body)
    except ValueError as e:
        raise InvalidRequestError("request body is not valid JSON") from e
    policy = parse_policy(raw)
    st = state(request)
    await anyio.to_thread.run_sync(
        lambda: st.il.set_witnesses(
            tenant, name, policy, by=actor(caller), check_url=st.outbound.check
        )
    )
    return json_response(policy.to_json())


# --- API keys and signing keys ------------------------------------------------------


@post("/{tenant:str}/keys", guards=[tenant_admin])
async def create_key(request: AnyRequest, caller: Principal, tenant: str) -> Response[bytes]:
    data = parse_body(await request.body(), KeyIn)
    scopes = parse_scopes(data.scopes)
    secret, rec = await anyio.to_thread.run_sync(
        lambda: state(request).keys.create(
            tenant, scopes, data.name, data.expires_in, data.log, by=actor(caller)
        )
    )
    return json_response({"key": secret, **key_json(rec)}, 201)


@get("/{tenant:str}/keys", sync_to_thread=True, guards=[tenant_admin])
def list_keys(request: AnyRequest, tenant: str) -> Response[bytes]:
    st = state(request)
    st.il.tenant(tenant)
    return json_response({"keys": [key_json(k) for k in st.keys.list(tenant)]})


@post("/{tenant:str}/keys/{key_id:str}/rotate", guards=[tenant_admin])
async def rotate_key(
    request: AnyRequest, caller: Principal, tenant: str, key_id: str
) -> Response[bytes]:
    data = parse_body(await request.body() or b"{}", RotateIn)
    secret, rec = await anyio.to_thread.run_sync(
        lambda: state(request).keys.rotate(key_id, tenant, data.old_expires_in, by=actor(caller))
    )
    return json_response({"key": secret, "replaces": key_id, **key_json(rec)}, 201)


@delete(
    "/{tenant:str}/keys/{key_id:str}", sync_to_thread=True, status_code=200, guards=[tenant_admin]
)
def revoke_key(request: AnyRequest, caller: Principal, tenant: str, key_id: str) -> Response[bytes]:
    state(request).keys.revoke(key_id, tenant, by=actor(caller))
    return json_response({"revoked": key_id})


@get("/{tenant:str}/signing-keys", sync_to_thread=True, guards=[tenant_admin])
def list_signing_keys(request: AnyRequest, tenant: str) -> Response[bytes]:
    return json_response(
        {"keys": [signing_key_json(k) for k in state(request).il.signing_keys(tenant)]}
    )


@post("/{tenant:str}/signing-keys/rotate", sync_to_thread=True, guards=[tenant_admin])
def rotate_signing_key(request: AnyRequest, caller: Principal, tenant: str) -> Response[bytes]:
    """A new in-process key; old and new both sign until the old one is retired.
    (Keys in a PKCS#11 token are added by the operator with the CLI.)"""
    rec = state(request).il.rotate_signing_key(tenant, by=actor(caller))
    return json_response(signing_key_json(rec), 201)


@post("/{tenant:str}/signing-keys/{fp:str}/retire", sync_to_thread=True, guards=[tenant_admin])
def retire_signing_key(
    request: AnyRequest, caller: Principal, tenant: str, fp: str
) -> Response[bytes]:
    state(request).il.retire_signing_key(tenant, fp, by=actor(caller))
    return json_response({"retired": fp})


router = Router(
    "/v1/tenants",
    route_handlers=[
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
    ],
)
