"""The master key and sealing of secrets at rest (AES-256-GCM).

The master key comes from ``IRONLOG_MASTER_KEY`` (base64 of 32 bytes), from
the file named by ``IRONLOG_MASTER_KEY_FILE``, or from ``<data>/master.key``
(created 0600 by ``ironlog init``).  It is never logged or printed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ironlog.atomic import fsync_dir
from ironlog.errors import ConfigurationError

MASTER_KEY_FILE = "master.key"
_VERSION = b"\x01"


class MasterKey:
    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ConfigurationError("the master key must be 32 bytes")
        self._aead = AESGCM(key)
        self._key = key

    def derive(self, label: str) -> bytes:
        """A 32-byte key for one purpose (HMAC-SHA256 of ``label`` under the master
        key), the same in every process that has the master key."""
        return hmac.new(self._key, b"ironlog derive: " + label.encode(), hashlib.sha256).digest()

    def __repr__(self) -> str:  # never show the key
        return "MasterKey(<hidden>)"

    def seal(self, plaintext: bytes, context: bytes) -> bytes:
        nonce = os.urandom(12)
        return _VERSION + nonce + self._aead.encrypt(nonce, plaintext, context)

    def open(self, sealed: bytes, context: bytes) -> bytes:
        if len(sealed) < 29 or sealed[:1] != _VERSION:
            raise ConfigurationError("sealed secret is malformed")
        try:
            return self._aead.decrypt(sealed[1:13], sealed[13:], context)
        except InvalidTag as e:
            raise ConfigurationError(
                "cannot decrypt a stored secret: wrong master key, or the secret was altered"
            ) from e


def _decode(text: str, where: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as e:
        raise ConfigurationError(f"{where} is not base64") from e
    if len(key) != 32:
        raise ConfigurationError(f"{where} must hold 32 bytes of key, base64-encoded")
    return key


def load_master_key(data_dir: Path) -> MasterKey:
    env = os.environ.get("IRONLOG_MASTER_KEY")
    if env:
        return MasterKey(_decode(env, "IRONLOG_MASTER_KEY"))
    path = Path(os.environ.get("IRONLOG_MASTER_KEY_FILE") or data_dir / MASTER_KEY_FILE)
    try:
        text = path.read_text()
    except FileNotFoundError as e:
        raise ConfigurationError(
            f"no master key at {path}: run 'ironlog init' or set IRONLOG_MASTER_KEY"
        ) from e
    except OSError as e:
        raise ConfigurationError(f"cannot read master key {path}: {e.strerror}") from e
    return MasterKey(_decode(text, str(path)))


def create_master_key(data_dir: Path) -> bool:
    """Write a new ``master.key`` (0600) unless one exists; True if created."""
    path = data_dir / MASTER_KEY_FILE
    if path.exists() or os.environ.get("IRONLOG_MASTER_KEY"):
        return False
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(base64.b64encode(os.urandom(32)).decode() + "\n")
        f.flush()
        os.fsync(f.fileno())
    fsync_dir(data_dir)
    return True
