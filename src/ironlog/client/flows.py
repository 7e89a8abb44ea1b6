"""The SDK's one core: every operation of the HTTP API, written once, without I/O.

Each operation is a generator, a *flow*, that yields the ``httpx.Request`` it
needs next and is sent back its ``httpx.Response``, as httpx's own
``Auth.auth_flow`` does; to poll, it yields a :class:`Pause` instead (and is
sent None).  Its return value is the verified result.  ``Client`` and
``AsyncClient`` (:mod:`ironlog.client.http`) are the two drivers: they send
the requests, sleep the pauses and hand the responses back.

Nothing the server says is taken on trust: every checkpoint is checked
against the log's pinned verifier key and against the last checkpoint this
client verified (consistency proofs are fetched as needed, see
:mod:`ironlog.client.trust`), every receipt and fetched entry against its
inclusion proof.  Every answer is decoded into its shape first
(:mod:`ironlog.client.answers`): one that is not JSON, lacks a field or has a
field of the wrong type is a FormatError, one that does not verify a
VerificationError (or one of its kinds) — never a KeyError or a TypeError.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Generator, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Generic, TypeAlias, TypeVar

import httpx
import msgspec

from ironlog.client.answers import (
    BatchAnswer,
    ConsistencyAnswer,
    Described,
    InclusionAnswer,
    PageAnswer,
    ReceiptAnswer,
    decode,
    raise_for,
)
from ironlog.client.trust import (
    LogTrust,
    TrustStore,
    decode_hashes,
    verify_entry,
    verify_extends,
    verify_leaf,
)
from ironlog.core.merkle import verify_consistency
from ironlog.core.names import LogRef
from ironlog.core.note import SignedCheckpoint, b64decode
from ironlog.core.receipts import BatchReceipt, Receipt
from ironlog.errors import (
    FormatError,
    InvalidRequestError,
    LogUnavailableError,
    VerificationError,
)

QUERY_FILTERS = ("since", "until", "actor", "action", "resource", "outcome")

# What the client returns: receipts holding the verified checkpoint (None until signed).
ClientReceipt: TypeAlias = Receipt[SignedCheckpoint | None]
ClientBatch: TypeAlias = BatchReceipt[SignedCheckpoint | None]
_R = TypeVar("_R", ClientReceipt, ClientBatch)
T = TypeVar("T")


@dataclass(frozen=True)
class Pause:
    """A flow's step that asks its driver to wait ``seconds`` before going on."""

    seconds: float


Step: TypeAlias = httpx.Request | Pause
Flow: TypeAlias = Generator[Step, httpx.Response | None, T]
Params: TypeAlias = dict[str, Any]
Vkeys: TypeAlias = Mapping[str, str] | Mapping[LogRef, str]  # log -> its verifier key
RequestBuilder = Callable[..., httpx.Request]  # httpx.Client.build_request (or the async one)


@dataclass(frozen=True)
class Done(Generic[T]):
    """A flow's result (see :func:`advance`)."""

    value: T


def advance(flow: Flow[T], answer: httpx.Response | None) -> Step | Done[T]:
    """Send ``flow`` the answer to its last step: its next step, or its result."""
    try:
        return flow.send(answer)
    except StopIteration as stop:
        result: T = stop.value
        return Done(result)


@dataclass(frozen=True)
class Entry:
    """A query row: entry ``index`` and its exact stored bytes."""

    index: int
    entry: bytes

    @property
    def event(self) -> dict[str, Any]:
        out: dict[str, Any] = json.loads(self.entry)
        return out


def log_ref(log: LogRef | str) -> LogRef:
    """``log`` as a LogRef: one already, or its ``TENANT/LOG`` text."""
    if isinstance(log, LogRef):
        return log
    try:
        return LogRef.parse(log)
    except InvalidRequestError:
        raise InvalidRequestError(f"a log is named TENANT/LOG, not {log!r}") from None


def _path(log: LogRef) -> str:
    return f"/v1/logs/{log.tenant}/{log.name}"


_encoder = msgspec.json.Encoder(enc_hook=str)


def _plain(v: Any) -> Any:
    try:
        _encoder.encode(v)
    except (TypeError, ValueError, OverflowError):
        return str(v)
    return v


def ndjson(events: Iterable[Mapping[str, Any]]) -> bytes:
    """One JSON object per line; values JSON cannot hold are sent as str()."""
    buf = bytearray()
    for e in events:
        try:
            buf += _encoder.encode(e)
        except (TypeError, ValueError, OverflowError):  # odd keys or values: be lenient
            buf += _encoder.encode({str(k): _plain(v) for k, v in dict(e).items()})
        buf += b"\n"
    return bytes(buf)


def query_params(from_index: int, limit: int, filters: Mapping[str, Any]) -> Params:
    bad = sorted(set(filters) - set(QUERY_FILTERS))
    if bad:
        raise InvalidRequestError(f"unknown query filter(s): {', '.join(bad)}")
    params = {k: v for k, v in filters.items() if v is not None}
    params.update(from_index=from_index, limit=limit)
    return params


class Flows:
    """The operations, as flows, and what they share: trust and verification."""

    def __init__(
        self,
        build: RequestBuilder,
        state_file: Path | str | None,
        vkeys: Vkeys | None,
        trust_on_first_use: bool,
    ) -> None:
        self.build = build
        self.store = TrustStore(state_file)
        self.vkeys = {str(k): v for k, v in (vkeys or {}).items()}
        self.tofu = trust_on_first_use
        self._trust: dict[str, LogTrust] = {}

    def trust(self, log: LogRef) -> LogTrust:
        t = self._trust.get(log.path)
        if t is None:
            t = self._trust[log.path] = LogTrust(log.path, self.store, self.vkeys.get(log.path))
        return t

    # -- steps ---------------------------------------------------------------------------
    def exchange(self, request: httpx.Request) -> Flow[httpx.Response]:
        response = yield request
        if response is None:
            raise TypeError("a driver answers each request with its response")
        return response

    def fetch(self, shape: type[T], url: str, params: Params | None = None) -> Flow[T]:
        return decode(shape, (yield from self.exchange(self.build("GET", url, params=params))))

    def prepare(self, log: LogRef) -> Flow[LogTrust]:
        """The log's trust, its key pinned first on first use: nothing is sent
        whose answer could not be verified."""
        trust = self.trust(log)
        if trust.verifier is None and self.tofu:
            trust.pin((yield from self.fetch(Described, _path(log))).vkey)
        trust.require_verifier()
        return trust

    def check(
        self, log: LogRef, cp: SignedCheckpoint, latest: bool = False
    ) -> Flow[SignedCheckpoint]:
        """``cp``, once consistent with the trusted state (which it may advance)."""
        trust = self.trust(log)
        while True:
            need = trust.needs(cp, latest)
            proof = None
            if need is not None:
                proof = yield from self.consistency(log, need.size1, need.size2)
            if trust.accept(cp, need, proof):
                return cp

    def consistency(self, log: LogRef, size1: int, size2: int) -> Flow[list[bytes]]:
        """The consistency proof from ``size1`` to ``size2``, decoded (not yet verified)."""
        answer = yield from self.consistency_answer(log, size1, size2)
        return decode_hashes(answer.proof, "consistency proof")

    def consistency_answer(self, log: LogRef, size1: int, size2: int) -> Flow[ConsistencyAnswer]:
        params = {"from_size": size1, "to_size": size2}
        return (yield from self.fetch(ConsistencyAnswer, f"{_path(log)}/proof/consistency", params))

    # -- the API -------------------------------------------------------------------------
    def log_info(self, log: LogRef) -> Flow[dict[str, Any]]:
        return (yield from self.fetch(dict[str, Any], _path(log)))

    def checkpoint(self, log: LogRef) -> Flow[SignedCheckpoint]:
        trust = yield from self.prepare(log)
        resp = yield from self.exchange(self.build("GET", f"{_path(log)}/checkpoint"))
        raise_for(resp)
        return (yield from self.check(log, trust.open(resp.content), latest=True))

    def append(
        self,
        log: LogRef,
        event: Mapping[str, Any],
        idempotency_key: str | None,
        wait_signed: bool,
    ) -> Flow[ClientReceipt]:
        yield from self.prepare(log)
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        request = self.build("POST", f"{_path(log)}/entries", json=event, headers=headers)
        receipt = self.receipt(log, decode(ReceiptAnswer, (yield from self.exchange(request))))
        if receipt.checkpoint is None:
            return (yield from self.signed(receipt)) if wait_signed else receipt
        yield from self.check(log, receipt.checkpoint)
        return receipt

    def append_many(
        self, log: LogRef, events: Iterable[Mapping[str, Any]], idempotency_key: str | None
    ) -> Flow[ClientBatch]:
        yield from self.prepare(log)
        headers = {"Content-Type": "application/x-ndjson"}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        url = f"{_path(log)}/entries"
        request = self.build("POST", url, content=ndjson(events), headers=headers)
        answer = decode(BatchAnswer, (yield from self.exchange(request)))
        cp, size, root = self.tree(log, answer)
        first, count = answer.first_index, answer.count
        if not 0 <= first < first + count <= size:
            raise VerificationError("the batch is not inside the tree it was appended to")
        if cp is not None:
            yield from self.check(log, cp)
        return BatchReceipt(first, count, cp, size, root, log.path)

    def signed(self, result: _R, timeout: float = 10.0, poll: float = 0.05) -> Flow[_R]:
        """``result`` under a signed checkpoint (see ``Client.signed``)."""
        if result.checkpoint is not None:
            return result
        log = log_ref(result.log)
        deadline = time.monotonic() + timeout
        while (cp := (yield from self.checkpoint(log))).checkpoint.size < result.size:
            if time.monotonic() >= deadline:
                raise LogUnavailableError(
                    f"log {log}: no signed checkpoint of {result.size} entries or more "
                    f"within {timeout} s"
                )
            yield Pause(poll)
        size, root = cp.checkpoint.size, cp.checkpoint.root
        consistency: list[bytes] = []
        if 0 < result.size < size:
            consistency = yield from self.consistency(log, result.size, size)
        verify_extends(result.size, result.root, cp, consistency, log.path)
        if isinstance(result, Receipt):
            params = {"index": result.index, "size": size}
            got = yield from self.fetch(InclusionAnswer, f"{_path(log)}/proof/inclusion", params)
            inclusion = self.inclusion(log, got)[0]
            verify_entry(cp, result.index, result.entry, inclusion, result.leaf_hash or None)
            return replace(
                result, checkpoint=cp, size=size, root=root, inclusion_proof=tuple(inclusion)
            )
        return replace(result, checkpoint=cp, size=size, root=root)

    def entry(self, log: LogRef, index: int, size: int | None) -> Flow[ClientReceipt]:
        yield from self.prepare(log)
        params = {"size": size} if size is not None else None
        answer = yield from self.fetch(ReceiptAnswer, f"{_path(log)}/entries/{index}", params)
        receipt = self.receipt(log, answer)
        if receipt.checkpoint is None:
            raise FormatError("the server sent an entry without its signed checkpoint")
        yield from self.check(log, receipt.checkpoint)
        return receipt

    def page(
        self, log: LogRef, params: Params, page_size: int
    ) -> Flow[tuple[list[Entry], Params | None]]:
        """One page of a query, and the parameters of the next page (None: the last)."""
        answer = yield from self.fetch(PageAnswer, f"{_path(log)}/entries", params)
        rows = [Entry(row.index, row.entry.encode()) for row in answer.entries]
        if answer.next_cursor is None:
            return rows, None
        return rows, {"cursor": answer.next_cursor, "limit": page_size}

    def consistency_proof(self, log: LogRef, size1: int, size2: int) -> Flow[list[bytes]]:
        yield from self.prepare(log)
        answer = yield from self.consistency_answer(log, size1, size2)
        trust = self.trust(log)
        for key, size in (("from_checkpoint", size1), ("to_checkpoint", size2)):
            if getattr(answer, key) is None:
                raise VerificationError(
                    f"the log signed no checkpoint of size {size}, so this proof cannot be "
                    "checked here (ask for sizes of checkpoints you hold)"
                )
        proof = decode_hashes(answer.proof, "consistency proof")
        old = trust.open(str(answer.from_checkpoint))
        new = trust.open(str(answer.to_checkpoint))
        if (old.checkpoint.size, new.checkpoint.size) != (size1, size2):
            raise VerificationError("the server proved other tree sizes than asked")
        verify_consistency(size1, size2, proof, old.checkpoint.root, new.checkpoint.root)
        for cp in (old, new):
            yield from self.check(log, cp)
        return proof

    def inclusion_proof(
        self, log: LogRef, index: int, size: int | None
    ) -> Flow[tuple[list[bytes], SignedCheckpoint]]:
        yield from self.prepare(log)
        params = {"index": index, **({"size": size} if size is not None else {})}
        answer = yield from self.fetch(InclusionAnswer, f"{_path(log)}/proof/inclusion", params)
        proof, cp = self.inclusion(log, answer)
        return proof, (yield from self.check(log, cp))

    # -- verification --------------------------------------------------------------------
    def tree(
        self, log: LogRef, answer: ReceiptAnswer | BatchAnswer
    ) -> tuple[SignedCheckpoint | None, int, bytes]:
        """The signed checkpoint of an answer, or None and its unsigned (size, root)."""
        if answer.checkpoint is not None:
            cp = self.trust(log).open(answer.checkpoint)
            return cp, cp.checkpoint.size, cp.checkpoint.root
        if answer.size is None or answer.root is None:
            raise FormatError("malformed answer from the server: no checkpoint, size or root")
        return None, answer.size, b64decode(answer.root, "root")

    def receipt(self, log: LogRef, answer: ReceiptAnswer) -> ClientReceipt:
        cp, size, root = self.tree(log, answer)
        entry = answer.entry.encode()
        proof = decode_hashes(answer.inclusion_proof, "inclusion proof")
        leaf = b64decode(answer.leaf_hash, "leaf hash") if answer.leaf_hash is not None else None
        verify_leaf(size, root, answer.index, entry, proof, leaf)
        return Receipt(answer.index, leaf or b"", entry, cp, tuple(proof), size, root, log.path)

    def inclusion(
        self, log: LogRef, answer: InclusionAnswer
    ) -> tuple[list[bytes], SignedCheckpoint]:
        proof = decode_hashes(answer.inclusion_proof, "inclusion proof")
        return proof, self.trust(log).open(answer.checkpoint)
