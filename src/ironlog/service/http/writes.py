"""Appending: POST /v1/logs/{tenant}/{log}/entries (JSON, NDJSON batches,
witnessed receipts, tlog-proof answers).  OTLP/HTTP is ``otlp.py``."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import anyio.to_thread
from litestar import Response
from litestar.exceptions import HTTPException

from ironlog.core.entry import now_us, prepare_json, prepare_ndjson
from ironlog.core.receipts import Receipt
from ironlog.engine.instance import Ironlog
from ironlog.engine.log import Log
from ironlog.errors import (
    InvalidEntryError,
    InvalidRequestError,
    LogUnavailableError,
    TooLargeError,
)
from ironlog.service.http.access import can_append
from ironlog.service.http.codec import TLOG_PROOF_TYPE, batch_json, json_response, receipt_json
from ironlog.service.http.deps import AnyRequest, limits, state
from ironlog.service.limits import BatchBudget
from ironlog.service.routing import post

NDJSON_TYPES = ("application/x-ndjson", "application/jsonl", "application/ndjson")


@post("/v1/logs/{tenant:str}/{name:str}/entries", guards=[can_append])
async def append_entries(
    request: AnyRequest,
    lg: Log,
    witnessed: bool = False,
    witness_timeout: float = 10.0,
) -> Response[bytes]:
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
    il: Ironlog, lg: Log, receipt: Receipt, timeout: float
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


ROUTES = [append_entries]
