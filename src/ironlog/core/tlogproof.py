"""c2sp.org/tlog-proof@v1: an offline inclusion proof with its signed checkpoint.

Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from ironlog.core.merkle import HASH_SIZE, leaf_hash, verify_inclusion
from ironlog.core.note import (
    SignedCheckpoint,
    Verifier,
    b64decode,
    b64encode,
    cosigners,
    open_checkpoint,
    parse_decimal,
    parse_note,
    text_of,
)
from ironlog.errors import FormatError, VerificationError

HEADER = "c2sp.org/tlog-proof@v1"


@dataclass(frozen=True)
class TlogProof:
    index: int
    proof: tuple[bytes, ...]
    checkpoint: str  # the signed note, verbatim
    extra: bytes | None = None

    def to_text(self) -> str:
        lines = [HEADER]
        if self.extra is not None:
            lines.append(f"extra {b64encode(self.extra)}")
        lines.append(f"index {self.index}")
        lines.extend(b64encode(h) for h in self.proof)
        return "\n".join(lines) + "\n\n" + self.checkpoint

    def verify(
        self,
        entry: bytes,
        log_key: Verifier,
        witnesses: list[Verifier] | None = None,
        quorum: int = 0,
    ) -> SignedCheckpoint:
        """Entry -> leaf hash; checkpoint signature; k-of-n cosignatures; inclusion."""
        signed = open_checkpoint(self.checkpoint, log_key)
        if quorum:
            got = cosigners(signed.note, witnesses or [])
            if len(got) < quorum:
                raise VerificationError(
                    f"checkpoint has {len(got)} valid witness cosignatures, policy needs {quorum}"
                )
        cp = signed.checkpoint
        verify_inclusion(self.index, cp.size, leaf_hash(entry), self.proof, cp.root)
        return signed


def parse_tlog_proof(data: bytes | str) -> TlogProof:
    head, sep, checkpoint = text_of(data, "tlog-proof").partition("\n\n")
    if not sep:
        raise FormatError("tlog-proof has no empty line before the checkpoint")
    lines = head.split("\n")
    if lines[0] != HEADER:
        raise FormatError(f"tlog-proof must start with {HEADER!r}")
    i = 1
    extra = None
    if i < len(lines) and lines[i].startswith("extra "):
        extra = b64decode(lines[i][6:], "extra")
        i += 1
    if i >= len(lines) or not lines[i].startswith("index "):
        raise FormatError("tlog-proof has no index line")
    index = parse_decimal(lines[i][6:], "tlog-proof index")
    hashes = []
    for line in lines[i + 1 :]:
        h = b64decode(line, "proof hash")
        if len(h) != HASH_SIZE:
            raise FormatError("proof hash must be 32 bytes")
        hashes.append(h)
    if len(hashes) > 63:
        raise FormatError("tlog-proof has more than 63 hashes")
    parse_note(checkpoint)  # well-formed note, verified later against a key
    return TlogProof(index, tuple(hashes), checkpoint, extra)
