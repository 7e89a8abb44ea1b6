"""``Ironlog``: one data directory — its control store, master key, tenants and logs.

This is the library's front door; the CLI and the service are thin layers on it.
Here: the registry of tenants and logs (created, opened once per process,
quarantined, deleted).  ``Ironlog`` also has the methods of its bases: the
system logs (``SystemLog``, engine/system_log.py), a tenant's signing keys
(``TenantSigningKeys``, engine/signing_keys.py) and the logs' witness
settings (``WitnessSettings``, engine/witnesses.py).  Creating a data
directory: engine/datadir.py (``init_data_dir``, also importable from here).

Over 400 lines: one class, the registry, whose opening of a log (the LRU of
open logs, the head check on reopen, the driver choice) belongs together.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ironlog.core.entry import now_us
from ironlog.core.names import LogRef
from ironlog.core.note import Signer, check_key_name
from ironlog.engine.api_keys import OPERATOR_LOCK
from ironlog.engine.datadir import (
    DEFAULT_ORIGIN_PREFIX,
    PRIVATE_UMASK,
    database_url,
    init_data_dir,
    open_driver,
)
from ironlog.engine.log import Log
from ironlog.engine.master_key import MasterKey, load_master_key
from ironlog.engine.open_logs import DEFAULT_IDLE_SECONDS, DEFAULT_MAX_OPEN_LOGS, OpenLogs
from ironlog.engine.signing_keys import KeyRing, TenantSigningKeys
from ironlog.engine.system_log import HOST, SYSTEM_LOG, SystemLog
from ironlog.engine.witnesses import WitnessSettings
from ironlog.errors import (
    ConfigurationError,
    ConflictError,
    FormatError,
    IntegrityError,
    InvalidRequestError,
    IronlogError,
    LogQuarantinedError,
    NotFoundError,
)
from ironlog.store.base import (
    DEFAULT_INDEXES,
    Driver,
    Durability,
    LogInfo,
    TenantRecord,
    check_name,
)

__all__ = [  # what other modules import from here
    "DEFAULT_ORIGIN_PREFIX",
    "MAX_TENANT_LOGS",
    "PRIVATE_UMASK",
    "SYSTEM_LOG",
    "Ironlog",
    "init_data_dir",
]

# Logs of one tenant (its system log included).
MAX_TENANT_LOGS = 1000


class Ironlog(SystemLog, TenantSigningKeys, WitnessSettings):
    """``read_only``: open the data directory without ever writing to it (an
    auditor's read-only copy, a full disk): reads, queries and audits work,
    appends and changes are refused."""

    def __init__(
        self,
        data_dir: Path | str,
        driver: Driver | None = None,
        *,
        read_only: bool = False,
        database: str | None = None,
        max_open_logs: int = DEFAULT_MAX_OPEN_LOGS,
        log_idle_seconds: float = DEFAULT_IDLE_SECONDS,
    ) -> None:
        """``database``: a postgresql:// URL (default: env IRONLOG_DATABASE_URL;
        neither: the embedded store in ``data_dir``, which holds the master key
        in both cases).  ``max_open_logs``: how many logs hold files and a
        writer thread at once (the least recently used are released, and any
        idle for ``log_idle_seconds``; engine/open_logs.py)."""
        self.data_dir = Path(data_dir)
        self.read_only = read_only
        url = database_url(database) if driver is None else None
        marker = "master.key" if url is not None else "control.db"
        if driver is None and not (self.data_dir / marker).exists():
            how = "ironlog init" + (" --database URL" if url is not None else "")
            raise ConfigurationError(
                f"{self.data_dir} is not an ironlog data directory: run '{how}'"
            )
        self.driver = driver or open_driver(self.data_dir, url, read_only=read_only)
        self.control = self.driver.control()
        self._master: MasterKey | None = None
        self._logs: dict[tuple[str, str], Log] = {}
        self._lock = threading.Lock()
        self.open_logs = OpenLogs(max_open_logs, log_idle_seconds)
        # reopen_observers(seconds): a released log reopened (its head checked again)
        self.reopen_observers: list[Callable[[float], None]] = []
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

    # -- what a tenant allows the operator; tenants and logs switched on and off ----------
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
        process did it); IntegrityError if its database file is gone.  One the
        LRU of open logs released is reopened here (outside the registry's
        lock: one slow reopen never holds up the others)."""
        lg, new = self._log(tenant, name)
        return lg if new else self._in_use(lg)

    def released(self, tenant: str, name: str) -> bool:
        """Whether the log was opened in this process and released since
        (it holds no descriptors now)."""
        lg = self._logs.get((tenant, name))
        return lg is not None and lg.released

    def _log(self, tenant: str, name: str) -> tuple[Log, bool]:
        key = (tenant, name)
        with self._lock:
            lg = self._logs.get(key)
            if lg is not None and time.monotonic() - lg.opened_at < self.QUARANTINE_RECHECK_SECONDS:
                return lg, False
            try:
                info = self.log_info(tenant, name)
            except NotFoundError:
                if lg is not None:  # deleted meanwhile (by another process)
                    del self._logs[key]
                    self._close_log(lg)
                raise
            if info.quarantined is not None:
                if lg is not None:
                    del self._logs[key]
                    self._close_log(lg)
                raise LogQuarantinedError(
                    f"log {info.path} is quarantined by the operator: {info.quarantined}"
                )
            if info.damaged is not None:  # never opened with what its row may not mean
                if lg is not None:
                    del self._logs[key]
                    self._close_log(lg)
                raise IntegrityError(f"log {info.path} is refused: {info.damaged}")
            if lg is not None:
                lg.opened_at = time.monotonic()
                return lg, False
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

            store = self.driver.open_log(info)
            try:
                lg = Log(
                    info,
                    store,
                    ring,
                    known_size=self.control.log_size(tenant, name),
                    record_size=record,
                )
            except BaseException:  # out of descriptors, say: nothing stays open
                store.close()
                raise
            lg.service_only = name == SYSTEM_LOG
            lg.commit_observers.extend(self.commit_observers)
            lg.append_checks.extend(self.append_checks)
            lg.on_open = self.open_logs.touch
            self._logs[key] = lg
            self.open_logs.touch(lg)
            return lg, True

    def _in_use(self, lg: Log) -> Log:
        """``lg`` asked for: most recently used, and checked again if the LRU
        of open logs released it since."""
        lg.touch()
        if lg.released:
            started = time.perf_counter()
            lg.reopened()  # reads the head: reopens the store (and re-registers)
            for observer in self.reopen_observers:
                observer(time.perf_counter() - started)
        else:
            self.open_logs.touch(lg)
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
            self._close_log(lg)
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
            self._close_log(lg)
        where = self.driver.retire_log(info)
        self.control.delete_log(tenant, name)
        return where

    def log_by_path(self, path: str) -> Log:
        try:
            ref = LogRef.parse(path)
        except InvalidRequestError as e:
            raise NotFoundError(str(e)) from None
        return self.log(ref.tenant, ref.name)

    def describe_log(self, lg: Log, witnesses: bool = True) -> dict[str, Any]:
        """What ``GET /v1/logs/{t}/{l}`` answers and ``ironlog log info`` prints:
        origin, keys, size, signed size, durability, indexes, public, health
        (and the witnesses with their status)."""
        info, head = lg.info, lg.head()
        fresh = self.control.get_log(info.tenant, info.name)  # `public` may have changed since
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
            "public": bool((fresh or info).public),
            "healthy": lg.unhealthy is None,
            "unhealthy_reason": lg.unhealthy,
        }
        policy = self.witness_policy(info.tenant, info.name) if witnesses else None
        if policy is not None:
            out["witnesses"] = policy.to_json()
            out["witness_status"] = self.witness_status(info.tenant, info.name)
        return out

    def list_logs(self, tenant: str | None = None) -> list[LogInfo]:
        return self.control.list_logs(tenant)

    def _close_log(self, lg: Log) -> None:
        self.open_logs.discard(lg)
        lg.close()

    def close(self) -> None:
        self.open_logs.stop()
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
