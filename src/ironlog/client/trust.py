"""What a client trusts: a pinned verifier key and the last verified checkpoint per log.

Needs only the pure core (merkle, note, tlogproof) and the standard library,
so ``pip install ironlog`` without extras can verify receipts and proofs.

Every checkpoint a client sees goes through :meth:`LogTrust.check`:

- its signature must verify against the pinned key of the log;
- against the trusted checkpoint (size m, root t), a checkpoint of size n
  with root r must be: the same tree when n == m; a consistent extension
  when n > m (consistency proof m -> n), which then becomes the trusted one;
  a consistent prefix when n < m (proof n -> m) — unless it is presented as
  the log's *latest* checkpoint, which is then a rollback.

Sans-I/O: the caller fetches the consistency proof :meth:`LogTrust.needs`
asks for (sync or async) and hands it to :meth:`LogTrust.accept`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ironlog.atomic import replace_atomically
from ironlog.core.merkle import leaf_hash, verify_consistency, verify_inclusion
from ironlog.core.note import SignedCheckpoint, Verifier, b64decode, b64encode, open_checkpoint
from ironlog.errors import (
    ConfigurationError,
    ForkError,
    FormatError,
    RollbackError,
    VerificationError,
)

STATE_VERSION = 1


def describe(cp: SignedCheckpoint) -> str:
    c = cp.checkpoint
    return f"size {c.size} root {b64encode(c.root)}"


class TrustStore:
    """Per log: pinned vkey and last verified checkpoint, optionally kept in a
    JSON file (written atomically: temp file + rename)."""

    def __init__(self, path: Path | str | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self._lock = threading.Lock()
        self._logs: dict[str, dict[str, str]] = {}
        if self.path is not None and self.path.exists():
            try:
                raw = json.loads(self.path.read_text())
                logs = raw["logs"]
                if raw.get("version") != STATE_VERSION or not isinstance(logs, dict):
                    raise ValueError("unknown layout")
                self._logs = {str(k): dict(v) for k, v in logs.items()}
            except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
                raise ConfigurationError(
                    f"trusted state file {self.path} is unreadable: {e}"
                ) from e

    def get(self, log: str) -> dict[str, str]:
        with self._lock:
            return dict(self._logs.get(log, {}))

    def update(self, log: str, **values: str) -> None:
        with self._lock:
            self._logs.setdefault(log, {}).update(values)
            self._save()

    def _save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # No fsync: losing the last update to a power cut only means trusting an
        # older checkpoint, which still catches any rollback below it.
        with replace_atomically(self.path, fsync=False) as f:
            json.dump({"version": STATE_VERSION, "logs": self._logs}, f, indent=1, sort_keys=True)


@dataclass(frozen=True)
class ProofNeeded:
    """A consistency proof from ``size1`` to ``size2`` must be fetched."""

    size1: int
    size2: int


class LogTrust:
    """The trust a client holds in one log (``tenant/log``)."""

    def __init__(self, log: str, store: TrustStore, vkey: str | None = None) -> None:
        self.log = log
        self.store = store
        pinned = store.get(log).get("vkey")
        if vkey is not None and pinned is not None and vkey.strip() != pinned:
            raise VerificationError(
                f"log {log}: verifier key {vkey.strip()!r} differs from the one pinned "
                f"in {store.path}: {pinned!r}"
            )
        self.verifier: Verifier | None = None
        self._lock = threading.Lock()
        chosen = vkey or pinned
        if chosen is not None:
            self.pin(chosen)

    def pin(self, vkey: str) -> None:
        self.verifier = Verifier.from_vkey(vkey)
        if self.store.get(self.log).get("vkey") != self.verifier.vkey():
            self.store.update(self.log, vkey=self.verifier.vkey())

    def trusted(self) -> SignedCheckpoint | None:
        text = self.store.get(self.log).get("checkpoint")
        return open_checkpoint(text, self._verifier()) if text else None

    def require_verifier(self) -> Verifier:
        """The pinned verifier, or VerificationError saying how to give one:
        checked before a request whose answer must be verified is sent."""
        return self._verifier()

    def _verifier(self) -> Verifier:
        if self.verifier is None:
            raise VerificationError(
                f"no verifier key is pinned for log {self.log}: pass it (vkeys=...) "
                "or opt in to trust on first use"
            )
        return self.verifier

    def open(self, checkpoint: bytes | str) -> SignedCheckpoint:
        """Verify the signature (FormatError/VerificationError otherwise)."""
        return open_checkpoint(checkpoint, self._verifier())

    def needs(self, cp: SignedCheckpoint, latest: bool = False) -> ProofNeeded | None:
        """The consistency proof that checking ``cp`` needs, if any; raises for
        a rollback (a *latest* checkpoint smaller than the trusted one) or a
        fork (same size, different root)."""
        old = self.trusted()
        if old is None:
            return None
        n, m = cp.checkpoint.size, old.checkpoint.size
        if n == m:
            if cp.checkpoint.root != old.checkpoint.root:
                raise ForkError(
                    f"log {self.log} forked: checkpoint {describe(cp)} differs from the "
                    f"trusted checkpoint {describe(old)}"
                )
            return None
        if n < m and latest:
            raise RollbackError(
                f"log {self.log} rolled back: its latest checkpoint is {describe(cp)}, "
                f"older than the trusted checkpoint {describe(old)}"
            )
        if min(n, m) == 0:
            return None  # the empty tree is a prefix of every tree
        return ProofNeeded(min(n, m), max(n, m))

    def accept(
        self,
        cp: SignedCheckpoint,
        need: ProofNeeded | None = None,
        proof: Sequence[bytes] | None = None,
    ) -> bool:
        """Check ``cp`` against the trusted checkpoint with ``proof`` (the one
        :meth:`needs` asked for as ``need``) and advance the trusted state if
        ``cp`` is newer.  False if the trusted state moved meanwhile (another
        thread or task): call :meth:`needs` again."""
        with self._lock:
            if self.needs(cp) != need:
                return False
            old = self.trusted()
            if old is not None and need is not None:
                if proof is None:
                    raise VerificationError("a consistency proof is needed")
                small, big = (old, cp) if old.checkpoint.size < cp.checkpoint.size else (cp, old)
                try:
                    verify_consistency(
                        small.checkpoint.size,
                        big.checkpoint.size,
                        proof,
                        small.checkpoint.root,
                        big.checkpoint.root,
                    )
                except VerificationError as e:
                    raise ForkError(
                        f"log {self.log} forked: checkpoint {describe(cp)} is not consistent "
                        f"with the trusted checkpoint {describe(old)} ({e})"
                    ) from e
            if old is None or cp.checkpoint.size > old.checkpoint.size:
                self.store.update(self.log, checkpoint=cp.text())
            return True


def verify_entry(
    cp: SignedCheckpoint,
    index: int,
    entry: bytes,
    proof: Sequence[bytes],
    leaf: bytes | None = None,
) -> None:
    """``entry`` is leaf ``index`` of the tree ``cp`` commits to."""
    verify_leaf(cp.checkpoint.size, cp.checkpoint.root, index, entry, proof, leaf)


def verify_leaf(
    size: int,
    root: bytes,
    index: int,
    entry: bytes,
    proof: Sequence[bytes],
    leaf: bytes | None = None,
) -> None:
    """``entry`` is leaf ``index`` of the tree (``size``, ``root``), signed or not."""
    h = leaf_hash(entry)
    if leaf is not None and leaf != h:
        raise VerificationError(f"leaf hash of entry {index} does not match its bytes")
    if index >= size:
        raise VerificationError(f"entry {index} is beyond the checkpoint's tree size {size}")
    verify_inclusion(index, size, h, proof, root)


def verify_extends(
    size: int, root: bytes, cp: SignedCheckpoint, proof: Sequence[bytes], log: str
) -> None:
    """The signed ``cp`` extends the (unsigned) tree (``size``, ``root``) of a
    receipt: otherwise what the receipt acknowledged was lost (ForkError)."""
    n, r = cp.checkpoint.size, cp.checkpoint.root
    try:
        if n < size:
            raise VerificationError(f"the signed tree has {n} entries, fewer than {size}")
        if n == size:
            if r != root:
                raise VerificationError("same size, different root")
        else:
            verify_consistency(size, n, proof, root, r)
    except VerificationError as e:
        raise ForkError(
            f"log {log}: the signed checkpoint {describe(cp)} does not extend the tree of "
            f"size {size} the receipt was given (the acknowledged entries were lost): {e}"
        ) from e


def decode_hashes(values: object, what: str) -> list[bytes]:
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise FormatError(f"{what} must be a list of base64 hashes")
    return [b64decode(v, what) for v in values]
