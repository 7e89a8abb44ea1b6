"""``Client`` and ``AsyncClient``: the ironlog HTTP API from Python, verified.

Nothing the server says is taken on trust: every checkpoint is checked
against the log's pinned verifier key and against the last checkpoint this
client verified (consistency proofs are fetched as needed, see
:mod:`ironlog.client.trust`), every receipt and fetched entry against its
inclusion proof.

    from ironlog.client import Client
    with Client("http://127.0.0.1:8080", "ilk_...", state_file="trust.json",
                vkeys={"acme/payments": "ironlog.localhost/acme+1234abcd+AbC..."}) as c:
        r = c.append("acme/payments", {"actor": "alice", "action": "login"})
        for e in c.query("acme/payments", actor="alice"):
            ...
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import httpx
import msgspec

from ironlog.client.trust import (
    LogTrust,
    ProofNeeded,
    TrustStore,
    decode_hashes,
    verify_entry,
    verify_extends,
    verify_leaf,
)
from ironlog.core.merkle import verify_consistency
from ironlog.core.note import SignedCheckpoint, b64decode
from ironlog.errors import (
    FormatError,
    InvalidRequestError,
    IronlogError,
    LogUnavailableError,
    UnreachableError,
    VerificationError,
    error_classes,
)

_ERRORS = error_classes()
QUERY_FILTERS = ("since", "until", "actor", "action", "resource", "outcome")


@dataclass(frozen=True)
class Receipt:
    """A verified receipt: ``entry`` (exact stored bytes) is leaf ``index`` of
    the tree (``size``, ``root``) and, once signed, of ``checkpoint``.

    A log whose durability is not ``sync`` signs a tree only after an fsync
    made it durable: its receipts come with ``checkpoint`` None, and
    ``Client.signed(receipt)`` fetches and checks the signed checkpoint."""

    log: str
    index: int
    entry: bytes
    leaf_hash: bytes
    inclusion_proof: tuple[bytes, ...]
    checkpoint: SignedCheckpoint | None
    size: int = 0
    root: bytes = b""

    @property
    def event(self) -> dict[str, Any]:
        out: dict[str, Any] = json.loads(self.entry)
        return out


@dataclass(frozen=True)
class BatchResult:
    """A batch: ``count`` entries from ``first_index``, in the tree (``size``,
    ``root``), under ``checkpoint`` once signed (None before: see Receipt)."""

    log: str
    first_index: int
    count: int
    checkpoint: SignedCheckpoint | None
    size: int = 0
    root: bytes = b""


_R = TypeVar("_R", Receipt, BatchResult)


@dataclass(frozen=True)
class Entry:
    index: int
    entry: bytes

    @property
    def event(self) -> dict[str, Any]:
        out: dict[str, Any] = json.loads(self.entry)
        return out


def raise_for(resp: httpx.Response) -> None:
    """Turn an error response into the ironlog error its code names."""
    if resp.status_code < 400:
        return
    code, message = "error", resp.text[:500]
    try:
        err = resp.json()["error"]
        code, message = str(err["code"]), str(err["message"])
    except (ValueError, KeyError, TypeError):
        pass
    cls = _ERRORS.get(code, IronlogError)
    exc = cls(f"HTTP {resp.status_code}: {message}")
    exc.status = resp.status_code  # type: ignore[attr-defined]
    raise exc


def _split(log: str) -> str:
    tenant, sep, name = log.partition("/")
    if not sep or not tenant or not name or "/" in name:
        raise InvalidRequestError(f"a log is named TENANT/LOG, not {log!r}")
    return f"/v1/logs/{tenant}/{name}"


def _json(resp: httpx.Response) -> dict[str, Any]:
    raise_for(resp)
    try:
        out = resp.json()
    except ValueError as e:
        raise FormatError("the server answered with invalid JSON") from e
    if not isinstance(out, dict):
        raise FormatError("the server answered with an unexpected JSON value")
    return out


_encoder = msgspec.json.Encoder(enc_hook=str)


def _plain(v: Any) -> Any:
    try:
        _encoder.encode(v)
    except (TypeError, ValueError, OverflowError):
        return str(v)
    return v


def _ndjson(events: Iterable[Mapping[str, Any]]) -> bytes:
    """One JSON object per line; values JSON cannot hold are sent as str()."""
    buf = bytearray()
    for e in events:
        try:
            buf += _encoder.encode(e)
        except (TypeError, ValueError, OverflowError):  # odd keys or values: be lenient
            buf += _encoder.encode({str(k): _plain(v) for k, v in dict(e).items()})
        buf += b"\n"
    return bytes(buf)


class _Core:
    """What both clients share: requests, trust and verification (no I/O)."""

    def __init__(
        self,
        api_key: str,
        state_file: Path | str | None,
        vkeys: Mapping[str, str] | None,
        trust_on_first_use: bool,
    ) -> None:
        self.headers = {"Authorization": f"Bearer {api_key}"}
        self.store = TrustStore(state_file)
        self.vkeys = dict(vkeys or {})
        self.tofu = trust_on_first_use
        self._trust: dict[str, LogTrust] = {}

    def trust(self, log: str) -> LogTrust:
        t = self._trust.get(log)
        if t is None:
            t = self._trust[log] = LogTrust(log, self.store, self.vkeys.get(log))
        return t

    def needs_pin(self, log: str) -> bool:
        return self.trust(log).verifier is None and self.tofu

    def pin_from_info(self, log: str, info: dict[str, Any]) -> None:
        self.trust(log).pin(str(info["vkey"]))

    def tree(self, log: str, body: dict[str, Any]) -> tuple[SignedCheckpoint | None, int, bytes]:
        """The signed checkpoint of an answer, or None and its unsigned (size, root)."""
        try:
            if body.get("checkpoint") is not None:
                cp = self.trust(log).open(str(body["checkpoint"]))
                return cp, cp.checkpoint.size, cp.checkpoint.root
            return None, int(body["size"]), b64decode(str(body["root"]), "root")
        except (KeyError, ValueError, TypeError) as e:
            raise FormatError(f"malformed answer from the server: {e!r}") from e

    def receipt(self, log: str, body: dict[str, Any]) -> tuple[Receipt, SignedCheckpoint | None]:
        cp, size, root = self.tree(log, body)
        try:
            entry = str(body["entry"]).encode()
            index = int(body["index"])
            proof = decode_hashes(body["inclusion_proof"], "inclusion proof")
            leaf = b64decode(str(body["leaf_hash"]), "leaf hash") if "leaf_hash" in body else None
        except (KeyError, ValueError, TypeError) as e:
            raise FormatError(f"malformed receipt from the server: {e!r}") from e
        verify_leaf(size, root, index, entry, proof, leaf)
        return Receipt(log, index, entry, leaf or b"", tuple(proof), cp, size, root), cp

    def batch(self, log: str, body: dict[str, Any]) -> BatchResult:
        cp, size, root = self.tree(log, body)
        try:
            first, count = int(body["first_index"]), int(body["count"])
        except (KeyError, ValueError, TypeError) as e:
            raise FormatError(f"malformed batch receipt from the server: {e!r}") from e
        if not 0 <= first < first + count <= size:
            raise VerificationError("the batch is not inside the tree it was appended to")
        return BatchResult(log, first, count, cp, size, root)

    @staticmethod
    def covers(result: Receipt | BatchResult, cp: SignedCheckpoint) -> bool:
        return cp.checkpoint.size >= result.size

    def rebase(
        self,
        result: Receipt | BatchResult,
        cp: SignedCheckpoint,
        consistency: list[bytes],
        inclusion: list[bytes],
    ) -> Receipt | BatchResult:
        """``result`` under the signed ``cp``: which must extend its tree (and,
        for a receipt, hold its entry at its index)."""
        verify_extends(result.size, result.root, cp, consistency, result.log)
        size, root = cp.checkpoint.size, cp.checkpoint.root
        if isinstance(result, BatchResult):
            return replace(result, checkpoint=cp, size=size, root=root)
        verify_entry(cp, result.index, result.entry, inclusion, result.leaf_hash or None)
        return replace(
            result, checkpoint=cp, size=size, root=root, inclusion_proof=tuple(inclusion)
        )

    @staticmethod
    def not_signed(result: Receipt | BatchResult, timeout: float) -> LogUnavailableError:
        return LogUnavailableError(
            f"log {result.log}: no signed checkpoint of {result.size} entries or more "
            f"within {timeout} s"
        )

    def consistency(
        self, log: str, body: dict[str, Any], size1: int, size2: int
    ) -> tuple[list[bytes], list[SignedCheckpoint]]:
        trust = self.trust(log)
        for key, size in (("from_checkpoint", size1), ("to_checkpoint", size2)):
            if body.get(key) is None:
                raise VerificationError(
                    f"the log signed no checkpoint of size {size}, so this proof cannot be "
                    "checked here (ask for sizes of checkpoints you hold)"
                )
        try:
            proof = decode_hashes(body["proof"], "consistency proof")
            old = trust.open(str(body["from_checkpoint"]))
            new = trust.open(str(body["to_checkpoint"]))
        except (KeyError, TypeError) as e:
            raise FormatError(f"malformed consistency proof from the server: {e!r}") from e
        if (old.checkpoint.size, new.checkpoint.size) != (size1, size2):
            raise VerificationError("the server proved other tree sizes than asked")
        verify_consistency(size1, size2, proof, old.checkpoint.root, new.checkpoint.root)
        return proof, [old, new]

    def inclusion(self, log: str, body: dict[str, Any]) -> tuple[list[bytes], SignedCheckpoint]:
        try:
            proof = decode_hashes(body["inclusion_proof"], "inclusion proof")
            cp = self.trust(log).open(str(body["checkpoint"]))
        except (KeyError, TypeError) as e:
            raise FormatError(f"malformed inclusion proof from the server: {e!r}") from e
        return proof, cp

    @staticmethod
    def proof_params(need: ProofNeeded) -> dict[str, int]:
        return {"from_size": need.size1, "to_size": need.size2}

    @staticmethod
    def query_params(from_index: int, limit: int, filters: Mapping[str, Any]) -> dict[str, Any]:
        bad = sorted(set(filters) - set(QUERY_FILTERS))
        if bad:
            raise InvalidRequestError(f"unknown query filter(s): {', '.join(bad)}")
        params = {k: v for k, v in filters.items() if v is not None}
        params.update(from_index=from_index, limit=limit)
        return params


class Client:
    """Synchronous, verifying client.  ``vkeys`` pins each log's verifier key
    (``tenant/log`` -> vkey); ``trust_on_first_use`` pins the key the server
    reports the first time a log is used and keeps it in ``state_file``."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        state_file: Path | str | None = None,
        vkeys: Mapping[str, str] | None = None,
        trust_on_first_use: bool = False,
        timeout: float = 30.0,
        verify: bool | str = True,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._core = _Core(api_key, state_file, vkeys, trust_on_first_use)
        self._http = httpx.Client(
            base_url=base_url,
            headers=self._core.headers,
            timeout=timeout,
            verify=verify,
            transport=transport,
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        try:
            return self._http.request(method, path, **kw)
        except httpx.HTTPError as e:
            raise UnreachableError(f"{method} {path}: {type(e).__name__}: {e}") from e

    def _get(self, path: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return _json(self._request("GET", path, params=params))

    def _prepare(self, log: str) -> LogTrust:
        if self._core.needs_pin(log):
            self._core.pin_from_info(log, self.log_info(log))
        trust = self._core.trust(log)
        trust.require_verifier()  # nothing is sent that could not be verified
        return trust

    def _check(self, log: str, cp: SignedCheckpoint, latest: bool = False) -> SignedCheckpoint:
        trust = self._core.trust(log)
        while True:
            need = trust.needs(cp, latest)
            proof = None
            if need is not None:
                body = self._get(f"{_split(log)}/proof/consistency", self._core.proof_params(need))
                proof = decode_hashes(body.get("proof"), "consistency proof")
            if trust.accept(cp, need, proof):
                return cp

    # -- API -----------------------------------------------------------------
    def log_info(self, log: str) -> dict[str, Any]:
        return self._get(_split(log))

    def checkpoint(self, log: str) -> SignedCheckpoint:
        """The log's latest checkpoint, verified and consistent with the trusted one."""
        trust = self._prepare(log)
        resp = self._request("GET", f"{_split(log)}/checkpoint")
        raise_for(resp)
        return self._check(log, trust.open(resp.text), latest=True)

    def append(
        self,
        log: str,
        event: Mapping[str, Any],
        *,
        idempotency_key: str | None = None,
        wait_signed: bool = False,
    ) -> Receipt:
        """Append one event.  On a log whose durability is not ``sync`` the
        receipt has no signed checkpoint yet (``checkpoint`` None) unless
        ``wait_signed``: then it waits for it, as :meth:`signed` does."""
        self._prepare(log)
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        body = _json(self._request("POST", f"{_split(log)}/entries", json=event, headers=headers))
        receipt, cp = self._core.receipt(log, body)
        if cp is None:
            return self.signed(receipt) if wait_signed else receipt
        self._check(log, cp)
        return receipt

    def append_many(
        self,
        log: str,
        events: Iterable[Mapping[str, Any]],
        *,
        idempotency_key: str | None = None,
    ) -> BatchResult:
        """One all-or-nothing batch (NDJSON)."""
        self._prepare(log)
        headers = {"Content-Type": "application/x-ndjson"}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        body = _json(
            self._request(
                "POST", f"{_split(log)}/entries", content=_ndjson(events), headers=headers
            )
        )
        result = self._core.batch(log, body)
        if result.checkpoint is not None:
            self._check(log, result.checkpoint)
        return result

    def signed(self, result: _R, timeout: float = 10.0, poll: float = 0.05) -> _R:
        """``result`` (of :meth:`append` or :meth:`append_many`) under a signed
        checkpoint: waits until the log signed a tree at least as large, checks
        that it extends the receipt's tree (ForkError if not: the acknowledged
        entries were lost) and, for a receipt, the entry's inclusion in it."""
        if result.checkpoint is not None:
            return result
        deadline = time.monotonic() + timeout
        while not self._core.covers(result, cp := self.checkpoint(result.log)):
            if time.monotonic() >= deadline:
                raise self._core.not_signed(result, timeout)
            time.sleep(poll)
        path, size = _split(result.log), cp.checkpoint.size
        consistency: list[bytes] = []
        if 0 < result.size < size:
            params = {"from_size": result.size, "to_size": size}
            body = self._get(f"{path}/proof/consistency", params)
            consistency = decode_hashes(body.get("proof"), "consistency proof")
        inclusion: list[bytes] = []
        if isinstance(result, Receipt):
            body = self._get(f"{path}/proof/inclusion", {"index": result.index, "size": size})
            inclusion = self._core.inclusion(result.log, body)[0]
        out = self._core.rebase(result, cp, consistency, inclusion)
        assert isinstance(out, type(result))
        return out

    def entry(self, log: str, index: int, size: int | None = None) -> Receipt:
        """One entry with its inclusion proof, verified."""
        self._prepare(log)
        params = {"size": size} if size is not None else None
        receipt, cp = self._core.receipt(log, self._get(f"{_split(log)}/entries/{index}", params))
        if cp is None:
            raise FormatError("the server sent an entry without its signed checkpoint")
        self._check(log, cp)
        return receipt

    def query(
        self, log: str, *, from_index: int = 0, page_size: int = 100, **filters: Any
    ) -> Iterator[Entry]:
        """Every matching entry from ``from_index`` on, following cursors.
        Filters: since, until, actor, action, resource, outcome."""
        params = self._core.query_params(from_index, page_size, filters)
        while True:
            body = self._get(f"{_split(log)}/entries", params)
            for e in body["entries"]:
                yield Entry(int(e["index"]), str(e["entry"]).encode())
            if body.get("next_cursor") is None:
                return
            params = {"cursor": str(body["next_cursor"]), "limit": page_size}

    def consistency_proof(self, log: str, size1: int, size2: int) -> list[bytes]:
        """The proof that the tree of ``size2`` extends that of ``size1``, verified
        against both (signed) checkpoints, which are checked against the trusted state."""
        self._prepare(log)
        body = self._get(f"{_split(log)}/proof/consistency", {"from_size": size1, "to_size": size2})
        proof, cps = self._core.consistency(log, body, size1, size2)
        for cp in cps:
            self._check(log, cp)
        return proof

    def inclusion_proof(
        self, log: str, index: int, size: int | None = None
    ) -> tuple[list[bytes], SignedCheckpoint]:
        """The inclusion proof of entry ``index`` and the verified checkpoint it
        leads to (check it against the entry's bytes with ``verify_entry``)."""
        self._prepare(log)
        params = {"index": index, **({"size": size} if size is not None else {})}
        body = self._get(f"{_split(log)}/proof/inclusion", params)
        proof, cp = self._core.inclusion(log, body)
        return proof, self._check(log, cp)


class AsyncClient:
    """The asyncio twin of :class:`Client` (same arguments, awaitable methods)."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        state_file: Path | str | None = None,
        vkeys: Mapping[str, str] | None = None,
        trust_on_first_use: bool = False,
        timeout: float = 30.0,
        verify: bool | str = True,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._core = _Core(api_key, state_file, vkeys, trust_on_first_use)
        self._http = httpx.AsyncClient(
            base_url=base_url,
            headers=self._core.headers,
            timeout=timeout,
            verify=verify,
            transport=transport,
        )

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        try:
            return await self._http.request(method, path, **kw)
        except httpx.HTTPError as e:
            raise UnreachableError(f"{method} {path}: {type(e).__name__}: {e}") from e

    async def _get(self, path: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return _json(await self._request("GET", path, params=params))

    async def _prepare(self, log: str) -> LogTrust:
        if self._core.needs_pin(log):
            self._core.pin_from_info(log, await self.log_info(log))
        trust = self._core.trust(log)
        trust.require_verifier()  # nothing is sent that could not be verified
        return trust

    async def _check(self, log: str, cp: SignedCheckpoint, latest: bool = False) -> None:
        trust = self._core.trust(log)
        while True:
            need = trust.needs(cp, latest)
            proof = None
            if need is not None:
                body = await self._get(
                    f"{_split(log)}/proof/consistency", self._core.proof_params(need)
                )
                proof = decode_hashes(body.get("proof"), "consistency proof")
            if trust.accept(cp, need, proof):
                return

    async def log_info(self, log: str) -> dict[str, Any]:
        return await self._get(_split(log))

    async def checkpoint(self, log: str) -> SignedCheckpoint:
        trust = await self._prepare(log)
        resp = await self._request("GET", f"{_split(log)}/checkpoint")
        raise_for(resp)
        cp = trust.open(resp.text)
        await self._check(log, cp, latest=True)
        return cp

    async def append(
        self,
        log: str,
        event: Mapping[str, Any],
        *,
        idempotency_key: str | None = None,
        wait_signed: bool = False,
    ) -> Receipt:
        await self._prepare(log)
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        resp = await self._request("POST", f"{_split(log)}/entries", json=event, headers=headers)
        receipt, cp = self._core.receipt(log, _json(resp))
        if cp is None:
            return await self.signed(receipt) if wait_signed else receipt
        await self._check(log, cp)
        return receipt

    async def append_many(
        self,
        log: str,
        events: Iterable[Mapping[str, Any]],
        *,
        idempotency_key: str | None = None,
    ) -> BatchResult:
        await self._prepare(log)
        headers = {"Content-Type": "application/x-ndjson"}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        resp = await self._request(
            "POST", f"{_split(log)}/entries", content=_ndjson(events), headers=headers
        )
        result = self._core.batch(log, _json(resp))
        if result.checkpoint is not None:
            await self._check(log, result.checkpoint)
        return result

    async def signed(self, result: _R, timeout: float = 10.0, poll: float = 0.05) -> _R:
        """See :meth:`Client.signed`."""
        if result.checkpoint is not None:
            return result
        deadline = time.monotonic() + timeout
        while not self._core.covers(result, cp := await self.checkpoint(result.log)):
            if time.monotonic() >= deadline:
                raise self._core.not_signed(result, timeout)
            await asyncio.sleep(poll)
        path, size = _split(result.log), cp.checkpoint.size
        consistency: list[bytes] = []
        if 0 < result.size < size:
            body = await self._get(
                f"{path}/proof/consistency", {"from_size": result.size, "to_size": size}
            )
            consistency = decode_hashes(body.get("proof"), "consistency proof")
        inclusion: list[bytes] = []
        if isinstance(result, Receipt):
            body = await self._get(f"{path}/proof/inclusion", {"index": result.index, "size": size})
            inclusion = self._core.inclusion(result.log, body)[0]
        out = self._core.rebase(result, cp, consistency, inclusion)
        assert isinstance(out, type(result))
        return out

    async def entry(self, log: str, index: int, size: int | None = None) -> Receipt:
        await self._prepare(log)
        params = {"size": size} if size is not None else None
        body = await self._get(f"{_split(log)}/entries/{index}", params)
        receipt, cp = self._core.receipt(log, body)
        if cp is None:
            raise FormatError("the server sent an entry without its signed checkpoint")
        await self._check(log, cp)
        return receipt

    async def query(
        self, log: str, *, from_index: int = 0, page_size: int = 100, **filters: Any
    ) -> AsyncIterator[Entry]:
        params = self._core.query_params(from_index, page_size, filters)
        while True:
            body = await self._get(f"{_split(log)}/entries", params)
            for e in body["entries"]:
                yield Entry(int(e["index"]), str(e["entry"]).encode())
            if body.get("next_cursor") is None:
                return
            params = {"cursor": str(body["next_cursor"]), "limit": page_size}

    async def consistency_proof(self, log: str, size1: int, size2: int) -> list[bytes]:
        await self._prepare(log)
        body = await self._get(
            f"{_split(log)}/proof/consistency", {"from_size": size1, "to_size": size2}
        )
        proof, cps = self._core.consistency(log, body, size1, size2)
        for cp in cps:
            await self._check(log, cp)
        return proof

    async def inclusion_proof(
        self, log: str, index: int, size: int | None = None
    ) -> tuple[list[bytes], SignedCheckpoint]:
        await self._prepare(log)
        params = {"index": index, **({"size": size} if size is not None else {})}
        body = await self._get(f"{_split(log)}/proof/inclusion", params)
        proof, cp = self._core.inclusion(log, body)
        await self._check(log, cp)
        return proof, cp
