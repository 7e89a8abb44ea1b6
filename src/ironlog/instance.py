"""``Ironlog``: one data directory — its control store, master key, tenants and logs.

This is the library's front door; the CLI and the service are thin layers on it.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ironlog.atomic import make_dirs
from ironlog.engine import Log
from ironlog.entry import now_us
from ironlog.errors import (
    ConfigurationError,
    ConflictError,
    FormatError,
    InvalidRequestError,
    IronlogError,
    LogQuarantinedError,
    NotFoundError,
)
from ironlog.keys import MasterKey, create_master_key, load_master_key
from ironlog.note import NoteSigner, Signer, check_key_name
from ironlog.policy import WitnessPolicy, parse_policy
from ironlog.signers import KeyRing, Pkcs11Ref, Pkcs11Signer, fingerprint, pkcs11_generate
from ironlog.store.base import (
    DEFAULT_INDEXES,
    Driver,
    Durability,
    LogInfo,
    SigningKeyRecord,
    TenantRecord,
    check_name,
)
from ironlog.store.sqlite import SqliteDriver

DEFAULT_ORIGIN_PREFIX = "ironlog.localhost"


def init_data_dir(data_dir: Path, origin_prefix: str = DEFAULT_ORIGIN_PREFIX) -> bool:
    """Create the data directory (0700), its master key and control database.

    Idempotent; returns True if a new master key was written."""
    try:
        make_dirs(data_dir)
        os.chmod(data_dir, 0o700)
    except OSError as e:
        raise ConfigurationError(f"cannot create data directory {data_dir}: {e.strerror}") from e
    created = create_master_key(data_dir)
    driver = SqliteDriver(data_dir)
    try:
        control = driver.control()
        if control.get_setting("origin_prefix") is None:
            control.set_setting("origin_prefix", origin_prefix.strip("/"))
    finally:
        driver.close()
    return created


class Ironlog:
    """``read_only``: open the data directory without ever writing to it (an
    auditor's read-only copy, a full disk): reads, queries and audits work,
    appends and changes are refused."""

    def __init__(
        self, data_dir: Path | str, driver: Driver | None = None, *, read_only: bool = False
    ) -> None:
        self.data_dir = Path(data_dir)
        self.read_only = read_only
        if not (self.data_dir / "control.db").exists():
            raise ConfigurationError(
                f"{self.data_dir} is not an ironlog data directory: run 'ironlog init'"
            )
        self.driver = driver or SqliteDriver(self.data_dir, read_only)
        self.control = self.driver.control()
        self._master: MasterKey | None = None
        self._logs: dict[tuple[str, str], Log] = {}
        self._lock = threading.Lock()
        # Added to every log opened from here (metrics, for instance).
        self.commit_observers: list[Callable[[LogInfo, int, int, float], None]] = []

    @property
    def master(self) -> MasterKey:
        if self._master is None:
            self._master = load_master_key(self.data_dir)
        return self._master

    @property
    def origin_prefix(self) -> str:
        return self.control.get_setting("origin_prefix") or DEFAULT_ORIGIN_PREFIX

    # -- tenants ---------------------------------------------------------------
    def create_tenant(self, name: str) -> TenantRecord:
        record = self._new_tenant(name)
        self.control.create_tenant(record, self._local_key_record(record))
        return record

    def _new_tenant(self, name: str) -> TenantRecord:
        check_name("tenant", name)
        signer = Signer.generate(f"{self.origin_prefix}/{name}")
        return TenantRecord(
            name=name,
            created_us=now_us(),
            disabled=False,
            key_encrypted=self.master.seal(signer.seed, b"tenant-key:" + name.encode()),
            public_key=signer.public,
        )

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

    def rotate_signing_key(self, tenant: str, pkcs11: Pkcs11Ref | None = None) -> SigningKeyRecord:
        """Add a new active key: from now on old and new keys both sign every
        checkpoint, until the old one is retired."""
        self.signing_keys(tenant)
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
        self.control.add_signing_key(rec)
        return rec

    def retire_signing_key(self, tenant: str, fp: str) -> None:
        """Stop signing with ``fp``; it still verifies the checkpoints it signed."""
        active = [k for k in self.signing_keys(tenant) if k.retired_us is None]
        if [k.fingerprint for k in active] == [fp]:
            raise InvalidRequestError("cannot retire the only active signing key: rotate first")
        self.control.retire_signing_key(tenant, fp, now_us())

    def _open_signer(self, rec: SigningKeyRecord, name: str) -> NoteSigner:
        signer: NoteSigner
        if rec.kind == "local":
            seed = self.master.open(rec.ref, b"tenant-key:" + rec.tenant.encode())
            signer = Signer(name, seed)
        elif rec.kind == "pkcs11":
            signer = Pkcs11Signer(name, Pkcs11Ref.loads(rec.ref), rec.public_key)
        else:
            raise ConfigurationError(f"unknown signing key kind {rec.kind!r}")
        probe = b"ironlog signing-key self-test\n"
        if signer.public != rec.public_key or not signer.verifier().verify(
            probe, signer.sign(probe)
        ):
            raise ConfigurationError(
                f"tenant {rec.tenant!r} signing key {rec.fingerprint} does not match its record"
            )
        return signer

    def tenant(self, name: str) -> TenantRecord:
        rec = self.control.get_tenant(name)
        if rec is None:
            raise NotFoundError(f"tenant {name!r} does not exist")
        return rec

    # -- logs ------------------------------------------------------------------
    def create_log(
        self,
        tenant: str,
        name: str,
        durability: Durability | None = None,
        *,
        create_tenant: bool = False,
        indexes: tuple[str, ...] = DEFAULT_INDEXES,
        public: bool = False,
    ) -> LogInfo:
        """Create a log (and its tenant with ``create_tenant``), all or nothing:
        everything is validated first, and a failure leaves no record and no file."""
        check_name("tenant", tenant)
        check_name("log", name)
        info = LogInfo(
            tenant=tenant,
            name=name,
            origin=f"{self.origin_prefix}/{tenant}/{name}",
            durability=durability or Durability(),
            created_us=now_us(),
            indexes=indexes,
            public=public,
        )
        try:
            check_key_name(info.origin)
        except FormatError as e:
            raise InvalidRequestError(f"log {info.path}: invalid origin: {e}") from e
        if self.control.get_log(tenant, name) is not None:
            raise ConflictError(f"log {info.path!r} already exists")
        new_tenant = None
        if self.control.get_tenant(tenant) is None:
            if not create_tenant:
                raise NotFoundError(f"tenant {tenant!r} does not exist")
            rec = self._new_tenant(tenant)
            new_tenant = (rec, self._local_key_record(rec))
        created = self.driver.create_log(info)  # the database first, durably...
        try:
            self.control.create_log(info, new_tenant)  # ...then its record
        except BaseException:
            # Unless a concurrent creation of the same log won the race (its
            # record now owns the file), the file goes again.
            if created and self.control.get_log(tenant, name) is None:
                self.driver.drop_log(info)
            raise
        return info

    def log_info(self, tenant: str, name: str) -> LogInfo:
        info = self.control.get_log(tenant, name)
        if info is None:
            raise NotFoundError(f"log {tenant}/{name} does not exist")
        return info

    QUARANTINE_RECHECK_SECONDS = 1.0

    def log(self, tenant: str, name: str) -> Log:
        """The log, opened once per process.  LogQuarantinedError if an
        operator took it out of service (noticed within a second when another
        process did it); IntegrityError if its database file is gone."""
        key = (tenant, name)
        with self._lock:
            lg = self._logs.get(key)
            if lg is not None and time.monotonic() - lg.opened_at < self.QUARANTINE_RECHECK_SECONDS:
                return lg
            try:
                info = self.log_info(tenant, name)
            except NotFoundError:
                if lg is not None:  # deleted meanwhile (by another process)
                    del self._logs[key]
                    lg.close()
                raise
            if info.quarantined is not None:
                if lg is not None:
                    del self._logs[key]
                    lg.close()
                raise LogQuarantinedError(
                    f"log {info.path} is quarantined by the operator: {info.quarantined}"
                )
            if lg is not None:
                lg.opened_at = time.monotonic()
                return lg
            self.tenant(tenant)
            ring = KeyRing(
                info.origin,
                lambda t=tenant: self.signing_keys(t),  # type: ignore[misc]
                self._open_signer,
            )
            record = None
            if not self.read_only:

                def record(size: int, t: str = tenant, n: str = name) -> None:
                    self.control.record_log_size(t, n, size)

            lg = Log(
                info,
                self.driver.open_log(info),
                ring,
                known_size=self.control.log_size(tenant, name),
                record_size=record,
            )
            lg.commit_observers.extend(self.commit_observers)
            self._logs[key] = lg
            return lg

    def each_log(
        self, tenant: str | None = None, *, quarantined: bool = False
    ) -> Iterator[tuple[LogInfo, Log | IronlogError]]:
        """Every log (of ``tenant``), opened; one that cannot be opened comes
        with its error instead, so that one broken log never stops a loop over
        the others.  Quarantined logs are skipped unless ``quarantined``."""
        for info in self.list_logs(tenant):
            if info.quarantined is not None and not quarantined:
                continue
            try:
                yield info, self.log(info.tenant, info.name)
            except IronlogError as e:
                yield info, e

    # -- operator actions on broken logs -----------------------------------------------
    def quarantine_log(self, tenant: str, name: str, reason: str) -> LogInfo:
        """Take a log out of service: it refuses reads and writes with ``reason``
        and every loop over logs (integrity, verify --all, witnessing) skips it."""
        reason = " ".join(reason.split())[:500] or "no reason given"
        self.log_info(tenant, name)
        self.control.set_log_quarantined(tenant, name, reason)
        with self._lock:
            lg = self._logs.pop((tenant, name), None)
        if lg is not None:
            lg.close()
        return self.log_info(tenant, name)

    def release_log(self, tenant: str, name: str) -> LogInfo:
        """Put a quarantined log back in service (it is checked again on open)."""
        self.log_info(tenant, name)
        self.control.set_log_quarantined(tenant, name, None)
        return self.log_info(tenant, name)

    def delete_log(self, tenant: str, name: str) -> str:
        """Forget a quarantined log; its files are moved under ``deleted/``
        (kept as evidence), whose path is returned."""
        info = self.log_info(tenant, name)
        if info.quarantined is None:
            raise InvalidRequestError(f"log {info.path} must be quarantined before it is deleted")
        with self._lock:
            lg = self._logs.pop((tenant, name), None)
        if lg is not None:
            lg.close()
        where = self.driver.retire_log(info)
        self.control.delete_log(tenant, name)
        return where

    def log_by_path(self, path: str) -> Log:
        tenant, sep, name = path.partition("/")
        if not sep or not tenant or not name or "/" in name:
            raise NotFoundError(f"{path!r} is not TENANT/LOG")
        return self.log(tenant, name)

    # -- witnesses -----------------------------------------------------------------
    def set_witnesses(self, tenant: str, name: str, policy: WitnessPolicy) -> None:
        self.log_info(tenant, name)
        # The tree size when the policy took effect: the published checkpoint
        # never goes below it (see published_checkpoint).
        size = self.log(tenant, name).head().size
        self.control.set_setting(f"witnesses_from:{tenant}/{name}", str(size))
        self.control.set_setting(f"witnesses:{tenant}/{name}", policy.dumps())

    def published_checkpoint(self, tenant: str, name: str) -> str | None:
        """What the tlog-tiles checkpoint endpoint serves.  Without witnesses:
        the latest checkpoint.  With them: the newest one that satisfies the
        policy, with its cosignatures — but never one older than the checkpoint
        the log had when its witnesses were set, so the published size never
        steps back (None while a log that was empty then has none yet)."""
        lg = self.log(tenant, name)
        policy = self.witness_policy(tenant, name)
        if policy is None or not policy.witnesses:
            return lg.checkpoint()
        floor = int(self.control.get_setting(f"witnesses_from:{tenant}/{name}") or 0)
        witnessed = self.witnessed_checkpoint(tenant, name, floor, policy)
        if witnessed is not None:
            return witnessed[1]
        return lg.store.checkpoint(floor) if floor else None

    def witness_policy(self, tenant: str, name: str) -> WitnessPolicy | None:
        raw = self.control.get_setting(f"witnesses:{tenant}/{name}")
        return parse_policy(json.loads(raw)) if raw else None

    def witness_status(self, tenant: str, name: str) -> dict[str, Any]:
        raw = self.control.get_setting(f"witness_status:{tenant}/{name}")
        out: dict[str, Any] = json.loads(raw) if raw else {}
        return out

    def witnessed_checkpoint(
        self, tenant: str, name: str, min_size: int = 0, policy: WitnessPolicy | None = None
    ) -> tuple[int, str] | None:
        """The newest checkpoint (at least ``min_size``) whose cosignatures
        satisfy the log's witness policy (read here unless given), with them appended."""
        policy = policy or self.witness_policy(tenant, name)
        if policy is None or not policy.witnesses:
            return None
        cosigned = self.control.cosignatures(tenant, name)
        store = self.log(tenant, name).store
        for size in sorted(cosigned, reverse=True):
            if size < min_size:
                break
            text = store.checkpoint(size)
            # Only cosignatures of the checkpoint the log holds now count: after
            # a rollback or fork, old cosignatures are of another tree.
            lines = {w: line for w, (cp, line) in cosigned[size].items() if cp == text}
            if text is not None and policy.satisfied(set(lines)):
                return size, text + "".join(lines[w] for w in sorted(lines))
        return None

    def list_logs(self, tenant: str | None = None) -> list[LogInfo]:
        return self.control.list_logs(tenant)

    def close(self) -> None:
        with self._lock:
            logs = list(self._logs.values())
            self._logs.clear()
        for lg in logs:
            lg.close()
        self.driver.close()

    def __enter__(self) -> Ironlog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
