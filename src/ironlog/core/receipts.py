"""Receipts: what an append returns, enough to verify the entries offline.

One definition for both ends of the wire.  The log (:mod:`ironlog.engine`)
issues them holding its checkpoint as the signed note's text, "" until the
tree is durable and signed (the non-sync durability modes); the SDK
(:mod:`ironlog.client`) returns them once it verified them, holding the
verified :class:`SignedCheckpoint`, None until signed, and the name of the
log.  The type parameter says which: ``Receipt[str]`` (the default, the
engine's) or ``Receipt[SignedCheckpoint | None]`` (the client's).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, final

from ironlog.core.note import SignedCheckpoint
from ironlog.core.tlogproof import TlogProof
from ironlog.errors import NotFoundError

if TYPE_CHECKING:
    from typing_extensions import TypeVar

    CP = TypeVar("CP", default=str)
else:  # Python 3.11's TypeVar has no default: only the type checker needs it
    from typing import TypeVar

    CP = TypeVar("CP")


def _text(checkpoint: object) -> str:
    if isinstance(checkpoint, SignedCheckpoint):
        return checkpoint.text()
    return str(checkpoint or "")


@final
@dataclass(frozen=True)
class Receipt(Generic[CP]):
    """Entry ``entry`` (its exact stored bytes, leaf hash ``leaf_hash``) is leaf
    ``index`` of the tree (``size``, ``root``): ``inclusion_proof`` leads there.
    ``checkpoint`` is that tree signed, once it is (see the module doc)."""

    index: int
    leaf_hash: bytes
    entry: bytes
    checkpoint: CP
    inclusion_proof: tuple[bytes, ...]
    size: int
    root: bytes
    log: str = ""  # TENANT/LOG, in the client ("" in the engine, which is the log)

    @property
    def event(self) -> dict[str, Any]:
        out: dict[str, Any] = json.loads(self.entry)
        return out

    def tlog_proof(self) -> TlogProof:
        """The C2SP tlog-proof of the entry: only under a signed checkpoint."""
        text = _text(self.checkpoint)
        if not text:
            raise NotFoundError(f"entry {self.index} has no signed checkpoint yet")
        return TlogProof(self.index, self.inclusion_proof, text)


@final
@dataclass(frozen=True)
class BatchReceipt(Generic[CP]):
    """A batch: ``count`` entries from ``first_index``, in the tree (``size``,
    ``root``), under ``checkpoint`` once signed (as for :class:`Receipt`)."""

    first_index: int
    count: int
    checkpoint: CP
    size: int
    root: bytes
    log: str = ""  # TENANT/LOG, in the client ("" in the engine, which is the log)


__all__ = ["BatchReceipt", "Receipt"]
