"""C2SP signed notes, checkpoints and cosignatures (Ed25519).

Pure: no I/O.  Byte-compatible with Go's golang.org/x/mod/sumdb/note:
signing the same text with the same seed gives the same bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, Self

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ironlog.core.merkle import HASH_SIZE
from ironlog.errors import FormatError, VerificationError

ALG_ED25519 = 0x01
ALG_COSIGNATURE_V1 = 0x04
SIG_PREFIX = "— "  # U+2014 EM DASH, then a space
MAX_SIGNATURES = 100
COSIGNATURE_HEADER = "cosignature/v1\n"


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def b64decode(text: str, what: str = "base64") -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError) as e:
        raise FormatError(f"{what} is not valid base64") from e


def _check_name(name: str) -> None:
    if not name or any(c.isspace() or c == "+" for c in name):
        raise FormatError(f"invalid key name {name!r}: must be non-empty, no spaces or '+'")


check_key_name = _check_name  # also what a checkpoint origin must be


def key_id(name: str, alg: int, public: bytes) -> int:
    digest = hashlib.sha256(name.encode() + b"\n" + bytes([alg]) + public).digest()
    return int.from_bytes(digest[:4], "big")


def _public_bytes(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def text_of(data: bytes | str, what: str) -> str:
    """Wire bytes as text; FormatError unless valid UTF-8."""
    if isinstance(data, str):
        return data
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise FormatError(f"{what} is not valid UTF-8") from e


class _Ed25519Key:
    """A named Ed25519 key of one note algorithm (the type byte ``alg``)."""

    alg = ALG_ED25519

    def __init__(self, name: str, seed: bytes) -> None:
        _check_name(name)
        if len(seed) != 32:
            raise FormatError("an Ed25519 seed is 32 bytes")
        self.name = name
        self._key = Ed25519PrivateKey.from_private_bytes(seed)
        self._seed = seed
        self.public = _public_bytes(self._key)
        self.key_id = key_id(name, self.alg, self.public)

    def vkey(self) -> str:
        return f"{self.name}+{self.key_id:08x}+{b64encode(bytes([self.alg]) + self.public)}"

    def verifier(self) -> Verifier:
        return Verifier(self.name, self.key_id, self.public, self.alg)

    @classmethod
    def from_private_key(cls, text: str) -> Self:
        """Parse ``PRIVATE+KEY+<name>+<hex id>+<base64(alg || seed)>`` (Go's
        format for Ed25519 note keys; the same with alg 0x04 for witness keys)."""
        parts = text.strip().split("+", 4)
        if len(parts) != 5 or parts[0] != "PRIVATE" or parts[1] != "KEY":
            raise FormatError("not a note private key (PRIVATE+KEY+name+id+key)")
        _, _, name, hex_id, b64 = parts
        raw = b64decode(b64, "private key")
        if len(raw) != 33 or raw[0] != cls.alg:
            raise FormatError(f"private key is not of type 0x{cls.alg:02x}")
        key = cls(name, raw[1:])
        if not _hex8(hex_id) or int(hex_id, 16) != key.key_id:
            raise FormatError("private key ID does not match the key")
        return key

    @classmethod
    def generate(cls, name: str) -> Self:
        return cls(name, os.urandom(32))

    def private_key(self) -> str:
        return (
            f"PRIVATE+KEY+{self.name}+{self.key_id:08x}+{b64encode(bytes([self.alg]) + self._seed)}"
        )


class Signer(_Ed25519Key):
    """An Ed25519 note signer (alg 0x01)."""

    alg = ALG_ED25519

    @property
    def seed(self) -> bytes:
        return self._seed

    def for_name(self, name: str) -> Signer:
        """The same key under another name (one tenant key signs many logs)."""
        return Signer(name, self._seed)

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)

    def sign_line(self, text: bytes) -> str:
        sig = self.key_id.to_bytes(4, "big") + self.sign(text)
        return f"{SIG_PREFIX}{self.name} {b64encode(sig)}\n"


def parse_decimal(text: str, what: str) -> int:
    """A non-negative decimal without leading zeros (as C2SP formats write them)."""
    if not text.isascii() or not text.isdigit() or (len(text) > 1 and text[0] == "0"):
        raise FormatError(f"{what} must be decimal without leading zeros")
    return int(text)


def _hex8(s: str) -> bool:
    return len(s) == 8 and all(c in "0123456789abcdef" for c in s)


@dataclass(frozen=True)
class Verifier:
    """An Ed25519 note verifier, parsed from a vkey string."""

    name: str
    key_id: int
    public: bytes
    alg: int = ALG_ED25519

    @classmethod
    def from_vkey(cls, text: str) -> Verifier:
        parts = text.strip().split("+", 2)
        if len(parts) != 3:
            raise FormatError("a verifier key is name+hexid+base64key")
        name, hex_id, b64 = parts
        _check_name(name)
        raw = b64decode(b64, "verifier key")
        if len(raw) != 33 or raw[0] not in (ALG_ED25519, ALG_COSIGNATURE_V1):
            raise FormatError("verifier key is not an Ed25519 or cosignature/v1 key")
        if not _hex8(hex_id) or int(hex_id, 16) != key_id(name, raw[0], raw[1:]):
            raise FormatError("verifier key ID does not match the key")
        return cls(name, int(hex_id, 16), raw[1:], raw[0])

    def vkey(self) -> str:
        return f"{self.name}+{self.key_id:08x}+{b64encode(bytes([self.alg]) + self.public)}"

    def _public_key(self) -> Ed25519PublicKey:
        return Ed25519PublicKey.from_public_bytes(self.public)

    def verify(self, message: bytes, signature: bytes) -> bool:
        try:
            self._public_key().verify(signature, message)
        except (InvalidSignature, ValueError):
            return False
        return True


@dataclass(frozen=True)
class NoteSignature:
    name: str
    key_id: int
    blob: bytes  # everything after the 4-byte key ID

    def line(self) -> str:
        return f"{SIG_PREFIX}{self.name} {b64encode(self.key_id.to_bytes(4, 'big') + self.blob)}\n"


@dataclass(frozen=True)
class Note:
    text: str
    signatures: tuple[NoteSignature, ...] = field(default_factory=tuple)

    def to_bytes(self) -> bytes:
        return (self.text + "\n" + "".join(s.line() for s in self.signatures)).encode()

    def to_str(self) -> str:
        return self.to_bytes().decode()


def _check_text(text: str) -> None:
    if not text.endswith("\n"):
        raise FormatError("note text must end with a newline")
    for c in text:
        if (ord(c) < 0x20 and c != "\n") or ord(c) == 0x7F:
            raise FormatError("note text contains a control character")


def parse_note(data: bytes | str) -> Note:
    """Parse a signed note without verifying it; FormatError if malformed."""
    s = text_of(data, "note")
    split = s.rfind("\n\n")
    if split < 0:
        raise FormatError("note has no signature block")
    text, sigblock = s[: split + 1], s[split + 2 :]
    _check_text(text)
    if not sigblock.endswith("\n"):
        raise FormatError("note signature block must end with a newline")
    sigs: list[NoteSignature] = []
    for line in sigblock[:-1].split("\n"):
        if not line.startswith(SIG_PREFIX):
            raise FormatError(f"malformed signature line {line[:80]!r}")
        rest = line[len(SIG_PREFIX) :]
        name, sep, b64 = rest.partition(" ")
        if not sep or " " in b64:
            raise FormatError("malformed signature line")
        _check_name(name)
        raw = b64decode(b64, "signature")
        if len(raw) < 5:
            raise FormatError("signature is too short")
        sigs.append(NoteSignature(name, int.from_bytes(raw[:4], "big"), raw[4:]))
        if len(sigs) > MAX_SIGNATURES:
            raise FormatError(f"note has more than {MAX_SIGNATURES} signatures")
    if not sigs:
        raise FormatError("note has no signatures")
    return Note(text, tuple(sigs))


class NoteSigner(Protocol):
    """Anything that signs notes as a named Ed25519 key: the in-process
    :class:`Signer`, or a key in an HSM (``ironlog.engine.signing_keys``)."""

    name: str
    key_id: int
    public: bytes

    def sign(self, message: bytes) -> bytes: ...
    def sign_line(self, text: bytes) -> str: ...
    def verifier(self) -> Verifier: ...
    def vkey(self) -> str: ...


def sign_note(text: str, *signers: NoteSigner) -> str:
    _check_text(text)
    raw = text.encode()
    return text + "\n" + "".join(s.sign_line(raw) for s in signers)


def open_note(data: bytes | str, verifiers: list[Verifier]) -> tuple[Note, list[Verifier]]:
    """Parse and verify a note; returns the note and the verifiers that signed it.

    Unknown (name, key ID) pairs are ignored; a known key whose signature does
    not verify rejects the note; at least one known key must have signed."""
    note = parse_note(data)
    known = {(v.name, v.key_id): v for v in verifiers if v.alg == ALG_ED25519}
    good: list[Verifier] = []
    msg = note.text.encode()
    for sig in note.signatures:
        v = known.get((sig.name, sig.key_id))
        if v is None:
            continue
        if not v.verify(msg, sig.blob):
            raise VerificationError(f"signature by {sig.name} ({sig.key_id:08x}) is invalid")
        if v not in good:
            good.append(v)
    if not good:
        raise VerificationError("note has no signature from a trusted key")
    return note, good


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def body(self) -> str:
        ext = "".join(e + "\n" for e in self.extensions)
        return f"{self.origin}\n{self.size}\n{b64encode(self.root)}\n{ext}"

    def sign(self, *signers: NoteSigner) -> str:
        return sign_note(self.body(), *signers)


def checkpoint_size(note: str) -> int:
    """The tree size of a signed checkpoint note (its second line), without
    decoding its signatures: for a note this process signed or verified."""
    lines = note.split("\n", 2)
    if len(lines) < 3:
        raise FormatError("checkpoint needs origin, size and root lines")
    size = parse_decimal(lines[1], "checkpoint size")
    if size >= 1 << 63:
        raise FormatError("checkpoint size out of range")
    return size


def parse_checkpoint(text: str) -> Checkpoint:
    if not text.endswith("\n"):
        raise FormatError("checkpoint must end with a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise FormatError("checkpoint needs origin, size and root lines")
    origin, size_s, root_s, *ext = lines
    if not origin or any(c.isspace() or c == "+" for c in origin):
        raise FormatError("checkpoint origin must be non-empty, without spaces or '+'")
    size = parse_decimal(size_s, "checkpoint size")
    if size >= 1 << 63:
        raise FormatError("checkpoint size out of range")
    root = b64decode(root_s, "checkpoint root")
    if len(root) != HASH_SIZE:
        raise FormatError("checkpoint root must be 32 bytes")
    if any(not e for e in ext):
        raise FormatError("checkpoint extension lines must be non-empty")
    return Checkpoint(origin, size, root, tuple(ext))


@dataclass(frozen=True)
class SignedCheckpoint:
    checkpoint: Checkpoint
    note: Note
    signers: tuple[Verifier, ...]

    def text(self) -> str:
        return self.note.to_str()


def open_checkpoint(data: bytes | str, verifier: Verifier | Sequence[Verifier]) -> SignedCheckpoint:
    """Verify a signed checkpoint against the log's key (or any of its keys, old
    and new, across a rotation); its origin must be the key name."""
    keys = [verifier] if isinstance(verifier, Verifier) else list(verifier)
    note, signers = open_note(data, keys)
    cp = parse_checkpoint(note.text)
    if any(cp.origin != v.name for v in signers):
        raise VerificationError(f"checkpoint origin {cp.origin!r} is not the key name")
    return SignedCheckpoint(cp, note, tuple(signers))


# --- cosignature/v1 -----------------------------------------------------------


def cosignature_message(body: str, timestamp: int) -> bytes:
    return f"{COSIGNATURE_HEADER}time {timestamp}\n{body}".encode()


class CosignatureSigner(_Ed25519Key):
    """A witness key producing cosignature/v1 signatures (alg 0x04)."""

    alg = ALG_COSIGNATURE_V1

    def cosign(self, body: str, timestamp: int) -> NoteSignature:
        sig = self._key.sign(cosignature_message(body, timestamp))
        return NoteSignature(self.name, self.key_id, timestamp.to_bytes(8, "big") + sig)


def verify_cosignature(body: str, sig: NoteSignature, verifier: Verifier) -> int:
    """Check one cosignature/v1 signature; returns its timestamp."""
    if verifier.alg != ALG_COSIGNATURE_V1:
        raise VerificationError("not a cosignature/v1 key")
    if (sig.name, sig.key_id) != (verifier.name, verifier.key_id):
        raise VerificationError("cosignature is by another key")
    if len(sig.blob) != 72:
        raise VerificationError("cosignature/v1 signature must be 72 bytes after the key ID")
    ts = int.from_bytes(sig.blob[:8], "big")
    if not verifier.verify(cosignature_message(body, ts), sig.blob[8:]):
        raise VerificationError(f"cosignature by {sig.name} is invalid")
    return ts


def cosigners(note: Note, witnesses: list[Verifier]) -> list[Verifier]:
    """The witnesses whose valid cosignature the note carries (bad ones raise)."""
    by_id = {(w.name, w.key_id): w for w in witnesses if w.alg == ALG_COSIGNATURE_V1}
    good = []
    for sig in note.signatures:
        w = by_id.get((sig.name, sig.key_id))
        if w is not None:
            verify_cosignature(note.text, sig, w)
            if w not in good:
                good.append(w)
    return good
