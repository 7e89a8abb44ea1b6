"""Checkpoint signers and the key ring of a tenant.

Two kinds of signer sit behind :class:`ironlog.core.note.NoteSigner`:

- ``local``: an Ed25519 seed, sealed under the master key at rest, used
  in-process (the default);
- ``pkcs11``: an Ed25519 key inside a PKCS#11 token (an HSM; SoftHSM2 in the
  tests).  The service asks the token to sign (CKM_EDDSA) and can never read
  the private key (generated with CKA_SENSITIVE, not CKA_EXTRACTABLE).  The
  token PIN comes from ``IRONLOG_PKCS11_PIN`` and is never stored.

A :class:`KeyRing` is what a log signs and verifies with: every active key of
its tenant signs each checkpoint (so during a rotation old and new keys both
sign), and every key the tenant ever had verifies (so old checkpoints still
do).  It re-reads the keys at most once a second, so a rotation made from the
CLI reaches a running service without a restart.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ironlog.core.entry import now_us
from ironlog.core.note import (
    ALG_ED25519,
    SIG_PREFIX,
    NoteSigner,
    Signer,
    Verifier,
    b64encode,
    key_id,
)
from ironlog.engine.system_log import HOST
from ironlog.errors import (
    ConfigurationError,
    ConflictError,
    FormatError,
    IntegrityError,
    InvalidRequestError,
    NotFoundError,
)
from ironlog.store.base import ControlStore, SigningKeyRecord, TenantRecord

if TYPE_CHECKING:
    from ironlog.engine.master_key import MasterKey

PIN_ENV = "IRONLOG_PKCS11_PIN"
# Active signing keys of one tenant: each signs every checkpoint of its logs.
MAX_ACTIVE_SIGNING_KEYS = 4


def fingerprint(public: bytes) -> str:
    return hashlib.sha256(public).hexdigest()[:16]


@dataclass(frozen=True)
class Pkcs11Ref:
    module: str
    token: str
    label: str

    def dumps(self) -> bytes:
        return json.dumps(self.__dict__, sort_keys=True).encode()

    @classmethod
    def loads(cls, raw: bytes) -> Pkcs11Ref:
        try:
            d = json.loads(raw)
            return cls(str(d["module"]), str(d["token"]), str(d["label"]))
        except (ValueError, KeyError, TypeError) as e:
            raise ConfigurationError(f"bad PKCS#11 key reference: {e}") from e


_sessions: dict[tuple[str, str], Any] = {}
_sessions_lock = threading.Lock()


def _session(ref: Pkcs11Ref) -> Any:
    """One open, logged-in session per (module, token) in this process."""
    import pkcs11

    key = (ref.module, ref.token)
    with _sessions_lock:
        s = _sessions.get(key)
        if s is None:
            pin = os.environ.get(PIN_ENV)
            if not pin:
                raise ConfigurationError(f"{PIN_ENV} must hold the PKCS#11 token's user PIN")
            try:
                lib = pkcs11.lib(ref.module)
                token = lib.get_token(token_label=ref.token)
                s = token.open(user_pin=pin, rw=True)
            except (pkcs11.PKCS11Error, RuntimeError, OSError) as e:
                raise ConfigurationError(
                    f"cannot open PKCS#11 token {ref.token!r} with {ref.module}: {type(e).__name__}"
                ) from e
            _sessions[key] = s
        return s


def _ec_point_to_raw(point: bytes) -> bytes:
    """CKA_EC_POINT of an Ed25519 key: a DER OCTET STRING of 32 bytes (or raw)."""
    if len(point) == 34 and point[0] == 0x04 and point[1] == 32:
        return point[2:]
    if len(point) == 32:
        return point
    raise FormatError("unexpected CKA_EC_POINT for an Ed25519 key")


class Pkcs11Signer:
    """A note signer whose private key stays in a PKCS#11 token."""

    alg = ALG_ED25519

    def __init__(self, name: str, ref: Pkcs11Ref, public: bytes | None = None) -> None:
        self.name = name
        self.ref = ref
        self._lock = threading.Lock()
        self._key: Any = None
        self.public = public if public is not None else self._public_from_token()
        self.key_id = key_id(name, ALG_ED25519, self.public)

    def _private(self) -> Any:
        import pkcs11
        from pkcs11 import KeyType, ObjectClass

        if self._key is None:
            try:
                self._key = _session(self.ref).get_key(
                    object_class=ObjectClass.PRIVATE_KEY,
                    key_type=KeyType.EC_EDWARDS,
                    label=self.ref.label,
                )
            except (pkcs11.NoSuchKey, pkcs11.MultipleObjectsReturned) as e:
                raise ConfigurationError(
                    f"PKCS#11 token {self.ref.token!r}: no single Ed25519 key {self.ref.label!r}"
                ) from e
        return self._key

    def _public_from_token(self) -> bytes:
        from pkcs11 import Attribute, KeyType, ObjectClass

        with self._lock:
            pub = _session(self.ref).get_key(
                object_class=ObjectClass.PUBLIC_KEY,
                key_type=KeyType.EC_EDWARDS,
                label=self.ref.label,
            )
            return _ec_point_to_raw(bytes(pub[Attribute.EC_POINT]))

    def sign(self, message: bytes) -> bytes:
        from pkcs11 import Mechanism

        with self._lock:
            return bytes(self._private().sign(message, mechanism=Mechanism.EDDSA))

    def sign_line(self, text: bytes) -> str:
        sig = self.key_id.to_bytes(4, "big") + self.sign(text)
        return f"{SIG_PREFIX}{self.name} {b64encode(sig)}\n"

    def verifier(self) -> Verifier:
        return Verifier(self.name, self.key_id, self.public, ALG_ED25519)

    def vkey(self) -> str:
        return self.verifier().vkey()

    def for_name(self, name: str) -> Pkcs11Signer:
        return Pkcs11Signer(name, self.ref, self.public)


def pkcs11_generate(ref: Pkcs11Ref) -> bytes:
    """A new Ed25519 key pair in the token (private part sensitive and not
    extractable); returns the raw public key."""
    from pkcs11 import Attribute, KeyType, Mechanism

    s = _session(ref)
    params = bytes.fromhex("130c656477617264733235353139")  # PrintableString "edwards25519"
    pub, _ = s.generate_keypair(
        KeyType.EC_EDWARDS,
        mechanism=Mechanism.EC_EDWARDS_KEY_PAIR_GEN,
        store=True,
        label=ref.label,
        public_template={Attribute.EC_PARAMS: params},
        private_template={Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False},
    )
    return _ec_point_to_raw(bytes(pub[Attribute.EC_POINT]))


Opener = Callable[[SigningKeyRecord, str], NoteSigner]


class KeyRing:
    """The keys one log signs and verifies with (see the module docstring)."""

    def __init__(
        self,
        name: str,
        load: Callable[[], list[SigningKeyRecord]],
        open_signer: Opener,
        refresh: float = 1.0,
    ) -> None:
        self.name = name
        self._load = load
        self._open = open_signer
        self._refresh = refresh
        self._lock = threading.Lock()
        self._at = -1e9
        self._fps: tuple[tuple[str, int | None], ...] = ()
        self._signers: list[NoteSigner] = []
        self._verifiers: list[Verifier] = []
        self._records: list[SigningKeyRecord] = []
        self.reload()

    @classmethod
    def static(cls, signer: Signer) -> KeyRing:
        """One in-process key (tests, tools)."""
        rec = SigningKeyRecord("", fingerprint(signer.public), "local", b"", signer.public, 0)
        return cls(signer.name, lambda: [rec], lambda r, name: signer.for_name(name), 1e9)

    def reload(self) -> None:
        records = self._load()
        fps = tuple((r.fingerprint, r.retired_us) for r in records)
        with self._lock:
            self._at = time.monotonic()
            if fps == self._fps:
                return
            now = time.time_ns() // 1000
            active = [r for r in records if r.retired_us is None or r.retired_us > now]
            if not active:
                raise ConfigurationError(f"{self.name}: no active signing key")
            self._signers = [self._open(r, self.name) for r in active]
            self._verifiers = [
                Verifier(self.name, key_id(self.name, ALG_ED25519, r.public_key), r.public_key)
                for r in records
            ]
            self._records = records
            self._fps = fps

    def _fresh(self) -> None:
        if time.monotonic() - self._at >= self._refresh:
            self.reload()

    def signers(self) -> list[NoteSigner]:
        self._fresh()
        return self._signers

    def verifiers(self) -> list[Verifier]:
        """Every key the tenant has had, retired ones included."""
        self._fresh()
        return self._verifiers

    def primary(self) -> Verifier:
        """The newest active key: the one to give new verifiers."""
        return self.signers()[-1].verifier()

    def published(self) -> list[dict[str, Any]]:
        """Every key with its validity, for the log's info."""
        self._fresh()
        return [
            {
                "vkey": v.vkey(),
                "fingerprint": r.fingerprint,
                "kind": r.kind,
                "valid_from_us": r.created_us,
                "retired_us": r.retired_us,
            }
            for r, v in zip(self._records, self._verifiers, strict=True)
        ]


class TenantSigningKeys:
    """A tenant's signing keys as the instance manages them (a base of
    ``Ironlog``): listed, added (rotation), retired, and opened with a
    self-test against their record in control.db."""

    control: ControlStore
    read_only: bool

    if TYPE_CHECKING:  # Ironlog's

        @property
        def master(self) -> MasterKey: ...

        @property
        def origin_prefix(self) -> str: ...

        def tenant(self, name: str) -> TenantRecord: ...

        def record(self, tenant: str, by: str, action: str, **details: Any) -> None: ...

    @staticmethod
    def _local_key_record(rec: TenantRecord) -> SigningKeyRecord:
        return SigningKeyRecord(
            rec.name,
            fingerprint(rec.public_key),
            "local",
            rec.key_encrypted,
            rec.public_key,
            rec.created_us,
        )

    # -- signing keys ----------------------------------------------------------------
    def signing_keys(self, tenant: str) -> list[SigningKeyRecord]:
        """The tenant's signing keys, oldest first (data directories from before
        key rotation get their one key recorded here on first use)."""
        keys = self.control.signing_keys(tenant)
        if not keys and not self.read_only:
            with contextlib.suppress(ConflictError):  # another process did it
                self.control.add_signing_key(self._local_key_record(self.tenant(tenant)))
            keys = self.control.signing_keys(tenant)
        return keys

    def rotate_signing_key(
        self, tenant: str, pkcs11: Pkcs11Ref | None = None, by: str = HOST
    ) -> SigningKeyRecord:
        """Add a new active key: from now on old and new keys both sign every
        checkpoint, until the old one is retired."""
        active = [k for k in self.signing_keys(tenant) if k.retired_us is None]
        if len(active) >= MAX_ACTIVE_SIGNING_KEYS:
            raise InvalidRequestError(
                f"tenant {tenant!r} has {len(active)} active signing keys, the most it may have "
                "(each signs every checkpoint): retire one first"
            )
        if pkcs11 is not None:
            public = pkcs11_generate(pkcs11)
            rec = SigningKeyRecord(
                tenant, fingerprint(public), "pkcs11", pkcs11.dumps(), public, now_us()
            )
        else:
            signer = Signer.generate(f"{self.origin_prefix}/{tenant}")
            sealed = self.master.seal(signer.seed, b"tenant-key:" + tenant.encode())
            rec = SigningKeyRecord(
                tenant, fingerprint(signer.public), "local", sealed, signer.public, now_us()
            )
        self._open_signer(rec, f"{self.origin_prefix}/{tenant}")  # proves it can sign
        self.record(
            tenant, by, "signing_key.add", resource=rec.fingerprint, kind=rec.kind,
            public_key=rec.public_key.hex(),
        )  # fmt: skip
        self.control.add_signing_key(rec)
        return rec

    def retire_signing_key(self, tenant: str, fp: str, by: str = HOST) -> None:
        """Stop signing with ``fp``; it still verifies the checkpoints it signed."""
        active = [k for k in self.signing_keys(tenant) if k.retired_us is None]
        if [k.fingerprint for k in active] == [fp]:
            raise InvalidRequestError("cannot retire the only active signing key: rotate first")
        if fp not in [k.fingerprint for k in active]:
            raise NotFoundError(f"tenant {tenant!r} has no active signing key {fp}")
        self.record(tenant, by, "signing_key.retire", resource=fp)
        self.control.retire_signing_key(tenant, fp, now_us())

    def _open_signer(self, rec: SigningKeyRecord, name: str) -> NoteSigner:
        """The signer of ``rec``; IntegrityError (its logs are refused with the
        reason, never a 500) if its control.db record is unusable or altered."""
        signer: NoteSigner
        where = f"tenant {rec.tenant!r} signing key {rec.fingerprint}"
        try:
            if rec.kind == "local":
                seed = self.master.open(rec.ref, b"tenant-key:" + rec.tenant.encode())
                signer = Signer(name, seed)
            elif rec.kind == "pkcs11":
                signer = Pkcs11Signer(name, Pkcs11Ref.loads(rec.ref), rec.public_key)
            else:
                raise IntegrityError(f"{where}: unknown kind {rec.kind!r} in control.db")
        except (ConfigurationError, FormatError, ValueError) as e:
            raise IntegrityError(f"{where} cannot be used: {e}") from e
        probe = b"ironlog signing-key self-test\n"
        if signer.public != rec.public_key or not signer.verifier().verify(
            probe, signer.sign(probe)
        ):
            raise IntegrityError(f"{where} does not match its record in control.db")
        return signer
