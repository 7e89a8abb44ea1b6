"""``Ironlog``: one data directory — its control store, master key, tenants and logs.

This is the library's front door; the CLI and the service are thin layers on it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ironlog.atomic import make_dirs
from ironlog.core.entry import now_us, prepare_object
from ironlog.core.names import LogRef
from ironlog.core.note import (
    NoteSigner,
    Signer,
    Verifier,
    check_key_name,
    parse_note,
    verify_cosignature,
)
from ironlog.core.numparse import parse_int
from ironlog.core.policy import WitnessPolicy, parse_policy
from ironlog.engine.log import Log
from ironlog.engine.master_key import MasterKey, create_master_key, load_master_key
from ironlog.engine.signing_keys import (
    KeyRing,
    Pkcs11Ref,
    Pkcs11Signer,
    fingerprint,
    pkcs11_generate,
)
from ironlog.errors import (
    ConfigurationError,
    ConflictError,
    FormatError,
    IntegrityError,
    InvalidRequestError,
    IronlogError,
    LogQuarantinedError,
    NotFoundError,
    PermissionDeniedError,
    VerificationError,
)
from ironlog.store.base import (
    DEFAULT_INDEXES,
    Driver,
    Durability,
    LogInfo,
    Query,
    SigningKeyRecord,
    TenantRecord,
    check_name,
)
from ironlog.store.sqlite import SqliteDriver

log = logging.getLogger("ironlog.instance")

DEFAULT_ORIGIN_PREFIX = "ironlog.localhost"
HOST = "host"  # who acts through the ironlog CLI on the service's machine (the operator)
OPERATOR_LOCK = "operator_locked"  # setting prefix: the tenant locked the operator out of its keys
WITNESSING = "witnessing"  # setting prefix: the operator allowed the tenant witnesses
SYSTEM_LOG = "_system"  # each tenant's log of administrative acts (no user name starts with _)
MAX_TENANT_WITNESSES = 32  # witnesses over all logs of one tenant
# Logs of one tenant (its system log included): each holds files and open
# descriptors for the life of the process, which all tenants share.
MAX_TENANT_LOGS = 1000
# Active signing keys of one tenant: each signs every checkpoint of its logs.
MAX_ACTIVE_SIGNING_KEYS = 4


_DATA_DIR_MARKERS = ("control.db", "master.key")


def _refuse_foreign_dir(data_dir: Path) -> None:
    """A directory holding other things is not ours to take over (and chmod)."""
    try:
        if not data_dir.is_dir() or any((data_dir / m).exists() for m in _DATA_DIR_MARKERS):
            return
        with os.scandir(data_dir) as it:
            if next(it, None) is None:
                return
    except OSError as e:
        raise ConfigurationError(f"cannot read data directory {data_dir}: {e.strerror}") from e
    raise ConfigurationError(
        f"{data_dir} is not empty and is not an ironlog data directory (no control.db or "
        "master.key): give an empty or new directory"
    )


PRIVATE_UMASK = 0o077  # set by the command and the service: files 0600, directories 0700


def init_data_dir(data_dir: Path, origin_prefix: str = DEFAULT_ORIGIN_PREFIX) -> bool:
    """Create the data directory (0700), its master key and control database.

    Idempotent; returns True if a new master key was written.  Refuses a
    non-empty directory that is not an ironlog data directory (changing
    nothing, not even its mode)."""
    _refuse_foreign_dir(data_dir)
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
        self.driver = driver or SqliteDriver(self.data_dir, read_only=read_only)
        self.control = self.driver.control()
        self._master: MasterKey | None = None
        self._logs: dict[tuple[str, str], Log] = {}
        self._lock = threading.Lock()
        # Added to every log opened from here (metrics, for instance).
        self.commit_observers: list[Callable[[LogInfo, int, int, float], None]] = []
        self.append_checks: list[Callable[[LogInfo, int, int], None]] = []  # quotas

    @property
    def master(self) -> MasterKey:
        if self._master is None:
            self._master = load_master_key(self.data_dir)
        return self._master

    @property
    def origin_prefix(self) -> str:
        return self.control.get_setting("origin_prefix") or DEFAULT_ORIGIN_PREFIX

    # -- tenants ---------------------------------------------------------------
    def create_tenant(self, name: str, by: str = HOST) -> TenantRecord:
        """A tenant with its first signing key (one transaction), and the first
        entry of its system log."""
        record = self._new_tenant(name)
        self.control.create_tenant(record, self._local_key_record(record))
        self.record(name, by, "tenant.create")
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

    # -- the system log: every administrative act on a tenant ----------------------
    def system_log(self, tenant: str) -> Log:
        """The tenant's system log (created with the tenant, or now for tenants
        from before it existed).  Readable like any log; only the service appends."""
        if self.control.get_log(tenant, SYSTEM_LOG) is None:
            self.tenant(tenant)
            info = LogInfo(
                tenant=tenant,
                name=SYSTEM_LOG,
                origin=f"{self.origin_prefix}/{tenant}/{SYSTEM_LOG}",
                durability=Durability(),
                created_us=now_us(),
                indexes=("actor", "action"),
            )
            try:
                self.driver.create_log(info)  # the database first, durably
                self.control.create_log(info)
            except ConflictError:  # another process made it meanwhile
                if self.control.get_log(tenant, SYSTEM_LOG) is None:
                    raise
        return self.log(tenant, SYSTEM_LOG)

    def record(self, tenant: str, by: str, action: str, **details: Any) -> None:
        """Append an administrative act on ``tenant`` to its system log, durably,
        before the act is made: an act whose record cannot be written is refused.
        ``by``: ``operator:KEY_ID``, ``tenant:KEY_ID`` or ``host`` (the CLI)."""
        event = {"actor": by, "action": action, **details}
        self.system_log(tenant).append_service(prepare_object(event, now_us(), "system"))

    # -- what the operator allows a tenant, and what a tenant allows the operator --------
    def witnessing_allowed(self, tenant: str) -> bool:
        return self.control.get_setting(f"{WITNESSING}:{tenant}") == "1"

    def set_witnessing_allowed(self, tenant: str, allowed: bool, by: str = HOST) -> None:
        """The operator's switch: may the tenant's logs have witnesses (which
        makes the service send requests to URLs the tenant chooses)?"""
        self.tenant(tenant)
        self.record(tenant, by, "witnessing.enable" if allowed else "witnessing.disable")
        self.control.set_setting(f"{WITNESSING}:{tenant}", "1" if allowed else "0")

    def operator_locked(self, tenant: str) -> bool:
        return self.control.get_setting(f"{OPERATOR_LOCK}:{tenant}") == "1"

    def set_operator_locked(self, tenant: str, locked: bool, by: str = HOST) -> None:
        """While locked, the operator cannot create or rotate API keys of the tenant."""
        self.tenant(tenant)
        self.record(tenant, by, "operator.lock" if locked else "operator.unlock")
        self.control.set_setting(f"{OPERATOR_LOCK}:{tenant}", "1" if locked else "0")

    def set_tenant_disabled(self, tenant: str, disabled: bool, by: str = HOST) -> None:
        self.tenant(tenant)
        self.record(tenant, by, "tenant.disable" if disabled else "tenant.enable")
        self.control.set_tenant_disabled(tenant, disabled)

    def set_log_public(self, tenant: str, name: str, public: bool, by: str = HOST) -> None:
        self.log_info(tenant, name)
        self.record(tenant, by, "log.public", resource=name, public=public)
        self.control.set_log_public(tenant, name, public)

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
        by: str = HOST,
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
        if self.control.get_tenant(tenant) is not None and self._was_deleted(tenant, name):
            raise ConflictError(
                f"log {info.path} was deleted: a new log of that name would sign another "
                f"tree under the same origin and key ({info.origin}), which witnesses and "
                "monitors see as a fork; choose another name"
            )
        details: dict[str, Any] = {
            "resource": name,
            "durability": str(info.durability),
            "indexes": ",".join(indexes),
            "public": public,
        }
        existing = self.control.list_logs(tenant)
        if len(existing) >= MAX_TENANT_LOGS:
            raise InvalidRequestError(
                f"a tenant may have at most {MAX_TENANT_LOGS} logs (its system log included)"
            )
        new_tenant = None
        if self.control.get_tenant(tenant) is None:
            if not create_tenant:
                raise NotFoundError(f"tenant {tenant!r} does not exist")
            rec = self._new_tenant(tenant)
            new_tenant = (rec, self._local_key_record(rec))
        else:
            self.record(tenant, by, "log.create", **details)  # before the act
        created = self.driver.create_log(info)  # the database first, durably...
        try:
            self.control.create_log(info, new_tenant)  # ...then its record
        except BaseException:
            # Unless a concurrent creation of the same log won the race (its
            # record now owns the file), the file goes again.
            if created and self.control.get_log(tenant, name) is None:
                self.driver.drop_log(info)
            raise
        if new_tenant is not None:  # its system log can only follow the tenant
            self.record(tenant, by, "tenant.create")
            self.record(tenant, by, "log.create", **details)
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
            if info.damaged is not None:  # never opened with what its row may not mean
                if lg is not None:
                    del self._logs[key]
                    lg.close()
                raise IntegrityError(f"log {info.path} is refused: {info.damaged}")
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
            lg.service_only = name == SYSTEM_LOG
            lg.commit_observers.extend(self.commit_observers)
            lg.append_checks.extend(self.append_checks)
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
    def _was_deleted(self, tenant: str, name: str) -> bool:
        """Whether the tenant's system log records the deletion of log ``name``."""
        if name == SYSTEM_LOG or self.control.get_log(tenant, SYSTEM_LOG) is None:
            return False
        q = Query(action="log.delete", resource=name, limit=1)
        return any(True for _ in self.log(tenant, SYSTEM_LOG).query(q))

    def _record_log_act(self, tenant: str, name: str, by: str, action: str, **details: Any) -> None:
        """Record an act on a log in the tenant's system log.  On the system log
        itself, as far as it can still record (a broken one cannot, and must
        still be quarantinable): an act on a healthy one is never unseen."""
        if name != SYSTEM_LOG:
            self.record(tenant, by, action, resource=name, **details)
            return
        try:
            self.record(tenant, by, action, resource=name, **details)
        except IronlogError as e:
            log.warning("%s of %s/%s not recorded in it: %s", action, tenant, name, e)

    def quarantine_log(self, tenant: str, name: str, reason: str, by: str = HOST) -> LogInfo:
        """Take a log out of service: it refuses reads and writes with ``reason``
        and every loop over logs (integrity, verify --all, witnessing) skips it."""
        reason = " ".join(reason.split())[:500] or "no reason given"
        self.log_info(tenant, name)
        self._record_log_act(tenant, name, by, "log.quarantine", reason=reason)
        self.control.set_log_quarantined(tenant, name, reason)
        with self._lock:
            lg = self._logs.pop((tenant, name), None)
        if lg is not None:
            lg.close()
        return self.log_info(tenant, name)

    def release_log(self, tenant: str, name: str, by: str = HOST) -> LogInfo:
        """Put a quarantined log back in service (it is checked again on open)."""
        if self.log_info(tenant, name).quarantined is None:
            raise InvalidRequestError(f"log {tenant}/{name} is not quarantined")
        if name == SYSTEM_LOG:  # it records nothing until it is back in service
            self.control.set_log_quarantined(tenant, name, None)
            self._record_log_act(tenant, name, by, "log.release")
            return self.log_info(tenant, name)
        self._record_log_act(tenant, name, by, "log.release")
        self.control.set_log_quarantined(tenant, name, None)
        return self.log_info(tenant, name)

    def delete_log(self, tenant: str, name: str, by: str = HOST) -> str:
        """Forget a quarantined log; its files are moved under ``deleted/``
        (kept as evidence), whose path is returned."""
        info = self.log_info(tenant, name)
        if info.quarantined is None:
            raise InvalidRequestError(f"log {info.path} must be quarantined before it is deleted")
        if name == SYSTEM_LOG:
            raise InvalidRequestError("a tenant's system log cannot be deleted")
        self._record_log_act(tenant, name, by, "log.delete")
        with self._lock:
            lg = self._logs.pop((tenant, name), None)
        if lg is not None:
            lg.close()
        where = self.driver.retire_log(info)
        self.control.delete_log(tenant, name)
        return where

    def log_by_path(self, path: str) -> Log:
        try:
            ref = LogRef.parse(path)
        except InvalidRequestError as e:
            raise NotFoundError(str(e)) from None
        return self.log(ref.tenant, ref.name)

    # -- witnesses -----------------------------------------------------------------
    def set_witnesses(
        self,
        tenant: str,
        name: str,
        policy: WitnessPolicy,
        by: str = HOST,
        check_url: Callable[[str], None] | None = None,
    ) -> None:
        """Set a log's witnesses: only for tenants the operator allowed to have
        them, at most MAX_TENANT_WITNESSES over all the tenant's logs, and
        each URL passing ``check_url`` (where the service may connect)."""
        self.log_info(tenant, name)
        if policy.witnesses and not self.witnessing_allowed(tenant):
            raise PermissionDeniedError(
                f"tenant {tenant!r} may not have witnesses: the operator enables it "
                f"(ironlog tenant witnessing {tenant} --enable)"
            )
        others = sum(
            self._witness_count(tenant, i.name) for i in self.list_logs(tenant) if i.name != name
        )
        if others + len(policy.witnesses) > MAX_TENANT_WITNESSES:
            raise InvalidRequestError(
                f"a tenant may have at most {MAX_TENANT_WITNESSES} witnesses over all its logs "
                f"({others} on its other logs)"
            )
        for w in policy.witnesses:
            if check_url is not None:
                check_url(w.url)
        self.record(tenant, by, "witnesses.set", resource=name, witnesses=policy.to_json())
        # The tree size when the policy took effect: the published checkpoint
        # never goes below it (see published_checkpoint).
        size = (self.log(tenant, name).latest_signed() or (0, ""))[0]
        self.control.set_setting(f"witnesses_from:{tenant}/{name}", str(size))
        self.control.set_setting(f"witnesses:{tenant}/{name}", policy.dumps())

    def _witness_count(self, tenant: str, name: str) -> int:
        try:
            policy = self.witness_policy(tenant, name)
        except (IronlogError, ValueError):  # unreadable settings: the witnessing loop says so
            return 0
        return len(policy.witnesses) if policy is not None else 0

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
        floor = self._witnesses_from(tenant, name)
        witnessed = self.witnessed_checkpoint(tenant, name, floor, policy)
        if witnessed is not None:
            return witnessed[1]
        return lg.store.checkpoint(floor) if floor else None

    def witness_policy(self, tenant: str, name: str) -> WitnessPolicy | None:
        raw = self.control.get_setting(f"witnesses:{tenant}/{name}")
        if not raw:
            return None
        try:
            return parse_policy(json.loads(raw))
        except (ValueError, IronlogError) as e:
            raise _bad_setting(tenant, name, "witness policy") from e

    def _witnesses_from(self, tenant: str, name: str) -> int:
        raw = self.control.get_setting(f"witnesses_from:{tenant}/{name}") or "0"
        try:
            return parse_int(raw, "witnesses_from", error=IntegrityError)
        except IntegrityError as e:
            raise _bad_setting(tenant, name, "witnessed-size floor") from e

    def check_log_settings(self, tenant: str, name: str) -> None:
        """IntegrityError naming control.db if the log's witness settings there
        cannot be read (edited by someone with the files)."""
        self.witness_policy(tenant, name)
        self._witnesses_from(tenant, name)
        self.witness_status(tenant, name)

    def describe_log(self, lg: Log, witnesses: bool = True) -> dict[str, Any]:
        """What ``GET /v1/logs/{t}/{l}`` answers and ``ironlog log info`` prints:
        origin, keys, size, signed size, durability, indexes, public, health
        (and the witnesses with their status)."""
        info, head = lg.info, lg.head()
        out: dict[str, Any] = {
            "tenant": info.tenant,
            "name": info.name,
            "origin": info.origin,
            "vkey": lg.verifier.vkey(),
            "vkeys": lg.keys.published(),
            "size": head.size,
            "signed_size": (lg.latest_signed() or (0, ""))[0],
            "durability": str(info.durability),
            "indexes": list(info.indexes),
            "public": bool(info.public),
            "healthy": lg.unhealthy is None,
            "unhealthy_reason": lg.unhealthy,
        }
        policy = self.witness_policy(info.tenant, info.name) if witnesses else None
        if policy is not None:
            out["witnesses"] = policy.to_json()
            out["witness_status"] = self.witness_status(info.tenant, info.name)
        return out

    def witness_status(self, tenant: str, name: str) -> dict[str, Any]:
        raw = self.control.get_setting(f"witness_status:{tenant}/{name}")
        try:
            out: object = json.loads(raw) if raw else {}
        except ValueError:
            out = None
        if not isinstance(out, dict):
            raise _bad_setting(tenant, name, "witness status")
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
            # And only those that verify with the witness's key: a row added to
            # control.db by someone with the files is not taken on its word.
            keys = {w.name: w.verifier for w in policy.witnesses}
            lines = {
                w: line
                for w, (cp, line) in cosigned[size].items()
                if cp == text and w in keys and _cosigns(text, line, keys[w])
            }
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


def _bad_setting(tenant: str, name: str, what: str) -> IntegrityError:
    return IntegrityError(
        f"control.db: the {what} of log {tenant}/{name} cannot be read (edited outside "
        "ironlog?); its tenant's admin can set the witnesses again"
    )


def _cosigns(checkpoint: str, line: str, witness: Verifier) -> bool:
    """Is ``line`` a valid cosignature/v1 of the signed note ``checkpoint`` by ``witness``?"""
    try:
        note = parse_note(checkpoint + line)
        sigs = [s for s in note.signatures if (s.name, s.key_id) == (witness.name, witness.key_id)]
        return any(verify_cosignature(note.text, sig, witness) >= 0 for sig in sigs)
    except (FormatError, VerificationError):
        return False
