"""Consistency proofs and C2SP tlog-tiles under /logs/{tenant}/{log}/."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get

from ironlog.core.note import b64encode
from ironlog.core.tiles import parse_tile_path, tile_width_at
from ironlog.engine.log import Log
from ironlog.errors import FormatError, NotFoundError
from ironlog.service.http.codec import json_response
from ironlog.service.http.deps import resolve_log, state

IMMUTABLE = "public, max-age=31536000, immutable"
SHORT = "no-cache, max-age=0"


def _log(request: Request[Any, Any, Any], tenant: str, name: str) -> Log:
    return resolve_log(request, tenant, name, "read")


def _tiles_log(request: Request[Any, Any, Any], tenant: str, name: str) -> Log:
    """tlog-tiles of a public log need no key; the flag is read fresh each
    time, so every worker agrees as soon as it changes."""
    il = state(request).il
    info = il.control.get_log(tenant, name)
    if info is not None and info.public:
        return il.log(tenant, name)
    return _log(request, tenant, name)


@get("/v1/logs/{tenant:str}/{name:str}/proof/consistency", sync_to_thread=True)
def consistency(
    request: Request[Any, Any, Any],
    tenant: str,
    name: str,
    from_size: int,
    to_size: int | None = None,
) -> Response[bytes]:
    lg = _log(request, tenant, name)
    if to_size is None:  # the latest signed tree: one a client can check
        to_size = (lg.latest_signed() or (0, ""))[0]
    proof = lg.consistency_proof(from_size, to_size)
    size2 = to_size
    return json_response(
        {
            "from": from_size,
            "to": size2,
            "proof": [b64encode(h) for h in proof],
            "from_checkpoint": lg.store.checkpoint(from_size),
            "to_checkpoint": lg.store.checkpoint(size2),
        }
    )


@get("/logs/{tenant:str}/{name:str}/checkpoint", sync_to_thread=True)
def tiles_checkpoint(request: Request[Any, Any, Any], tenant: str, name: str) -> Response[bytes]:
    """The latest checkpoint; for a log with witnesses, the newest one whose
    cosignatures satisfy its policy (with them), once there is one."""
    _tiles_log(request, tenant, name)
    text = state(request).il.published_checkpoint(tenant, name)
    if text is None:
        raise NotFoundError("no witnessed checkpoint yet")
    return Response(
        text.encode(),
        media_type="text/plain; charset=utf-8",
        headers={"Cache-Control": SHORT},
    )


@get("/logs/{tenant:str}/{name:str}/tile/{rest:path}", sync_to_thread=True)
def tile(request: Request[Any, Any, Any], tenant: str, name: str, rest: str) -> Response[bytes]:
    lg = _tiles_log(request, tenant, name)
    try:
        ref = parse_tile_path("tile/" + rest.lstrip("/"))
    except FormatError as e:
        raise NotFoundError(f"not a tile path: {rest[:80]!r}") from e
    # Only what a signed (durable) checkpoint covers: a full tile is served as
    # immutable, and a power cut may still drop what is beyond it.
    size = (lg.latest_signed() or (0, ""))[0]
    if tile_width_at(ref.level, ref.index, size) < ref.width:
        raise NotFoundError(f"tile {ref.path()} does not exist at tree size {size}")
    data = (
        lg.bundle(ref.index, ref.width)
        if ref.is_bundle
        else lg.tile(ref.level, ref.index, ref.width)
    )
    cache = IMMUTABLE if ref.is_full else SHORT
    return Response(data, media_type="application/octet-stream", headers={"Cache-Control": cache})


READ_HANDLERS = [consistency, tiles_checkpoint, tile]
