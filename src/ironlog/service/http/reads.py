"""Reading a log: its description, entries (queries with paging cursors),
one entry with its proof, checkpoints, inclusion and consistency proofs, and
C2SP tlog-tiles under /logs/{tenant}/{log}/ (without a key for a public log)."""

from __future__ import annotations

from dataclasses import replace

from litestar import Response, Router

from ironlog.core.entry import now_us
from ironlog.core.merkle import leaf_hash
from ironlog.core.note import b64encode, checkpoint_size
from ironlog.core.numparse import parse_int
from ironlog.core.tiles import parse_tile_path, tile_width_at
from ironlog.core.timeparse import parse_time
from ironlog.engine.log import Log
from ironlog.errors import FormatError, InvalidRequestError, NotFoundError
from ironlog.service.http.access import can_read, public_or_read
from ironlog.service.http.codec import json_response
from ironlog.service.http.deps import AnyRequest, state
from ironlog.service.routing import get
from ironlog.store.base import Query

IMMUTABLE = "public, max-age=31536000, immutable"
SHORT = "no-cache, max-age=0"
OCTET_STREAM = "application/octet-stream"


@get("/v1/logs/{tenant:str}/{name:str}", sync_to_thread=True, guards=[can_read])
def log_info(request: AnyRequest, lg: Log) -> Response[bytes]:
    return json_response(state(request).il.describe_log(lg))


@get("/v1/logs/{tenant:str}/{name:str}/entries", sync_to_thread=True, guards=[can_read])
def list_entries(
    request: AnyRequest,
    lg: Log,
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


@get("/v1/logs/{tenant:str}/{name:str}/entries/{index:str}", sync_to_thread=True, guards=[can_read])
def get_entry(request: AnyRequest, lg: Log, index: str, size: int | None = None) -> Response[bytes]:
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
    guards=[can_read],
)
def get_checkpoint(lg: Log) -> Response[bytes]:
    return Response(lg.checkpoint().encode(), media_type="text/plain; charset=utf-8")


@get("/v1/logs/{tenant:str}/{name:str}/proof/inclusion", sync_to_thread=True, guards=[can_read])
def inclusion(lg: Log, index: int, size: int | None = None) -> Response[bytes]:
    proof = lg.tlog_proof(index, size)
    return json_response(
        {
            "index": index,
            "size": checkpoint_size(proof.checkpoint),
            "inclusion_proof": [b64encode(h) for h in proof.proof],
            "checkpoint": proof.checkpoint,
        }
    )


@get("/v1/logs/{tenant:str}/{name:str}/proof/consistency", sync_to_thread=True, guards=[can_read])
def consistency(lg: Log, from_size: int, to_size: int | None = None) -> Response[bytes]:
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


# --- C2SP tlog-tiles ----------------------------------------------------------------


@get("/logs/{tenant:str}/{name:str}/checkpoint", sync_to_thread=True, guards=[public_or_read])
def tiles_checkpoint(request: AnyRequest, lg: Log, tenant: str, name: str) -> Response[bytes]:
    """The latest checkpoint; for a log with witnesses, the newest one whose
    cosignatures satisfy its policy (with them), once there is one."""
    text = state(request).il.published_checkpoint(tenant, name)
    if text is None:
        raise NotFoundError("no witnessed checkpoint yet")
    return Response(
        text.encode(),
        media_type="text/plain; charset=utf-8",
        headers={"Cache-Control": SHORT},
    )


@get("/logs/{tenant:str}/{name:str}/tile/{rest:path}", sync_to_thread=True, guards=[public_or_read])
def tile(lg: Log, rest: str) -> Response[bytes]:
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


ROUTES = [log_info, list_entries, get_entry, get_checkpoint, inclusion, consistency]
tiles = Router("/", route_handlers=[tiles_checkpoint, tile])
