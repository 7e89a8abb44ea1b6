"""``Client`` and ``AsyncClient``: the ironlog HTTP API from Python, verified.

Both are drivers of the one core, :mod:`ironlog.client.flows`, which writes
each operation once and verifies every answer: they send the requests its
flows yield (wrapping transport failures in UnreachableError), sleep their
pauses, and hand the responses back.

    from ironlog.client import Client
    with Client("http://127.0.0.1:8080", "ilk_...", state_file="trust.json",
                vkeys={"acme/payments": "ironlog.localhost/acme+1234abcd+AbC..."}) as c:
        r = c.append("acme/payments", {"actor": "alice", "action": "login"})
        for e in c.query("acme/payments", actor="alice"):
            ...

A log is named by a :class:`ironlog.core.names.LogRef` or its ``TENANT/LOG`` text.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from contextlib import closing
from pathlib import Path
from typing import Any, Generic, TypeVar

import httpx

from ironlog.client.answers import raise_for
from ironlog.client.flows import (
    QUERY_FILTERS,
    ClientBatch,
    ClientReceipt,
    Done,
    Entry,
    Flow,
    Flows,
    Params,
    Pause,
    Step,
    Vkeys,
    advance,
    log_ref,
    query_params,
)
from ironlog.core.names import LogRef
from ironlog.core.note import SignedCheckpoint
from ironlog.core.receipts import BatchReceipt, Receipt
from ironlog.errors import UnreachableError

BatchResult = BatchReceipt  # its name before 0.2 (the engine's and the client's are one now)
Log = LogRef | str
_R = TypeVar("_R", ClientReceipt, ClientBatch)
T = TypeVar("T")
TransportT = TypeVar("TransportT", httpx.BaseTransport, httpx.AsyncBaseTransport)


def _unreachable(request: httpx.Request, e: httpx.HTTPError) -> UnreachableError:
    return UnreachableError(f"{request.method} {request.url.path}: {type(e).__name__}: {e}")


class _Driver(Generic[TransportT]):
    """What both drivers share: their arguments, an httpx client, the flows."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        state_file: Path | str | None = None,
        vkeys: Vkeys | None = None,
        trust_on_first_use: bool = False,
        timeout: float = 30.0,
        verify: bool | str = True,
        transport: TransportT | None = None,
    ) -> None:
        http = self._open(
            base_url=base_url,
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=timeout,
            verify=verify,
            transport=transport,
        )
        self._flows = Flows(http.build_request, state_file, vkeys, trust_on_first_use)

    def _open(self, **options: Any) -> httpx.Client | httpx.AsyncClient:
        raise NotImplementedError


class Client(_Driver[httpx.BaseTransport]):
    """Synchronous, verifying client.  ``vkeys`` pins each log's verifier key
    (``tenant/log`` -> vkey); ``trust_on_first_use`` pins the key the server
    reports the first time a log is used and keeps it in ``state_file``."""

    _http: httpx.Client

    def _open(self, **options: Any) -> httpx.Client:
        self._http = httpx.Client(**options)
        return self._http

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _run(self, flow: Flow[T]) -> T:
        """Answer each step of ``flow`` until it returns its result."""
        with closing(flow):
            step = advance(flow, None)
            while not isinstance(step, Done):
                step = advance(flow, self._answer(step))
            return step.value

    def _answer(self, step: Step) -> httpx.Response | None:
        if isinstance(step, Pause):
            time.sleep(step.seconds)
            return None
        try:
            return self._http.send(step)
        except httpx.HTTPError as e:
            raise _unreachable(step, e) from e

    # -- API -----------------------------------------------------------------
    def log_info(self, log: Log) -> dict[str, Any]:
        return self._run(self._flows.log_info(log_ref(log)))

    def checkpoint(self, log: Log) -> SignedCheckpoint:
        """The log's latest checkpoint, verified and consistent with the trusted one."""
        return self._run(self._flows.checkpoint(log_ref(log)))

    def append(
        self,
        log: Log,
        event: Mapping[str, Any],
        *,
        idempotency_key: str | None = None,
        wait_signed: bool = False,
    ) -> ClientReceipt:
        """Append one event.  On a log whose durability is not ``sync`` the
        receipt has no signed checkpoint yet (``checkpoint`` None) unless
        ``wait_signed``: then it waits for it, as :meth:`signed` does."""
        return self._run(self._flows.append(log_ref(log), event, idempotency_key, wait_signed))

    def append_many(
        self,
        log: Log,
        events: Iterable[Mapping[str, Any]],
        *,
        idempotency_key: str | None = None,
    ) -> ClientBatch:
        """One all-or-nothing batch (NDJSON)."""
        return self._run(self._flows.append_many(log_ref(log), events, idempotency_key))

    def signed(self, result: _R, timeout: float = 10.0, poll: float = 0.05) -> _R:
        """``result`` (of :meth:`append` or :meth:`append_many`) under a signed
        checkpoint: waits until the log signed a tree at least as large, checks
        that it extends the receipt's tree (ForkError if not: the acknowledged
        entries were lost) and, for a receipt, the entry's inclusion in it."""
        return self._run(self._flows.signed(result, timeout, poll))

    def entry(self, log: Log, index: int, size: int | None = None) -> ClientReceipt:
        """One entry with its inclusion proof, verified."""
        return self._run(self._flows.entry(log_ref(log), index, size))

    def query(
        self, log: Log, *, from_index: int = 0, page_size: int = 100, **filters: Any
    ) -> Iterator[Entry]:
        """Every matching entry from ``from_index`` on, following cursors.
        Filters: since, until, actor, action, resource, outcome."""
        ref = log_ref(log)
        params: Params | None = query_params(from_index, page_size, filters)
        while params is not None:
            rows, params = self._run(self._flows.page(ref, params, page_size))
            yield from rows

    def consistency_proof(self, log: Log, size1: int, size2: int) -> list[bytes]:
        """The proof that the tree of ``size2`` extends that of ``size1``, verified
        against both (signed) checkpoints, which are checked against the trusted state."""
        return self._run(self._flows.consistency_proof(log_ref(log), size1, size2))

    def inclusion_proof(
        self, log: Log, index: int, size: int | None = None
    ) -> tuple[list[bytes], SignedCheckpoint]:
        """The inclusion proof of entry ``index`` and the verified checkpoint it
        leads to (check it against the entry's bytes with ``verify_entry``)."""
        return self._run(self._flows.inclusion_proof(log_ref(log), index, size))


class AsyncClient(_Driver[httpx.AsyncBaseTransport]):
    """The asyncio twin of :class:`Client` (same arguments, awaitable methods)."""

    _http: httpx.AsyncClient

    def _open(self, **options: Any) -> httpx.AsyncClient:
        self._http = httpx.AsyncClient(**options)
        return self._http

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _run(self, flow: Flow[T]) -> T:
        """See :meth:`Client._run`."""
        with closing(flow):
            step = advance(flow, None)
            while not isinstance(step, Done):
                step = advance(flow, await self._answer(step))
            return step.value

    async def _answer(self, step: Step) -> httpx.Response | None:
        if isinstance(step, Pause):
            await asyncio.sleep(step.seconds)
            return None
        try:
            return await self._http.send(step)
        except httpx.HTTPError as e:
            raise _unreachable(step, e) from e

    async def log_info(self, log: Log) -> dict[str, Any]:
        return await self._run(self._flows.log_info(log_ref(log)))

    async def checkpoint(self, log: Log) -> SignedCheckpoint:
        return await self._run(self._flows.checkpoint(log_ref(log)))

    async def append(
        self,
        log: Log,
        event: Mapping[str, Any],
        *,
        idempotency_key: str | None = None,
        wait_signed: bool = False,
    ) -> ClientReceipt:
        flow = self._flows.append(log_ref(log), event, idempotency_key, wait_signed)
        return await self._run(flow)

    async def append_many(
        self,
        log: Log,
        events: Iterable[Mapping[str, Any]],
        *,
        idempotency_key: str | None = None,
    ) -> ClientBatch:
        return await self._run(self._flows.append_many(log_ref(log), events, idempotency_key))

    async def signed(self, result: _R, timeout: float = 10.0, poll: float = 0.05) -> _R:
        """See :meth:`Client.signed`."""
        return await self._run(self._flows.signed(result, timeout, poll))

    async def entry(self, log: Log, index: int, size: int | None = None) -> ClientReceipt:
        return await self._run(self._flows.entry(log_ref(log), index, size))

    async def query(
        self, log: Log, *, from_index: int = 0, page_size: int = 100, **filters: Any
    ) -> AsyncIterator[Entry]:
        ref = log_ref(log)
        params: Params | None = query_params(from_index, page_size, filters)
        while params is not None:
            rows, params = await self._run(self._flows.page(ref, params, page_size))
            for row in rows:
                yield row

    async def consistency_proof(self, log: Log, size1: int, size2: int) -> list[bytes]:
        return await self._run(self._flows.consistency_proof(log_ref(log), size1, size2))

    async def inclusion_proof(
        self, log: Log, index: int, size: int | None = None
    ) -> tuple[list[bytes], SignedCheckpoint]:
        return await self._run(self._flows.inclusion_proof(log_ref(log), index, size))


__all__ = [
    "QUERY_FILTERS",
    "AsyncClient",
    "BatchReceipt",
    "BatchResult",
    "Client",
    "Entry",
    "Receipt",
    "raise_for",
]
