"""``Ironlog``: one data directory — its control store, master key, tenants and logs.

This is the library's front door; the CLI and the service are thin layers on it.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ironlog.engine import Log
from ironlog.entry import now_us
from ironlog.errors import ConfigurationError, ConflictError, InvalidRequestError, NotFoundError
from ironlog.keys import MasterKey, create_master_key, load_master_key
from ironlog.note import NoteSigner, Signer
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
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
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
    def __init__(self, data_dir: Path | str, driver: Driver | None = None) -> None:
        self.data_dir = Path(data_dir)
        if not (self.data_dir / "control.db").exists():
            raise ConfigurationError(
                f"{self.data_dir} is not an ironlog data directory: run 'ironlog init'"
            )
        self.driver = driver or SqliteDriver(self.data_dir)
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
        check_name("tenant", name)
        signer = Signer.generate(f"{self.origin_prefix}/{name}")
        record = TenantRecord(
            name=name,
            created_us=now_us(),
            disabled=False,
            key_encrypted=self.master.seal(signer.seed, b"tenant-key:" + name.encode()),
            public_key=signer.public,
        )
        self.control.create_tenant(record)
        self.control.add_signing_key(self._local_key_record(record))
        return record

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
        if not keys:
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
        check_name("tenant", tenant)
        check_name("log", name)
        if create_tenant and self.control.get_tenant(tenant) is None:
            self.create_tenant(tenant)
        info = LogInfo(
            tenant=tenant,
            name=name,
            origin=f"{self.origin_prefix}/{tenant}/{name}",
            durability=durability or Durability(),
            created_us=now_us(),
            indexes=indexes,
            public=public,
        )
        self.control.create_log(info)
        self.driver.open_log(info).close()  # create its database now
        return info

    def log_info(self, tenant: str, name: str) -> LogInfo:
        info = self.control.get_log(tenant, name)
        if info is None:
            raise NotFoundError(f"log {tenant}/{name} does not exist")
        return info

    def log(self, tenant: str, name: str) -> Log:
        key = (tenant, name)
        with self._lock:
            lg = self._logs.get(key)
            if lg is None:
                info = self.log_info(tenant, name)
                self.tenant(tenant)
                ring = KeyRing(
                    info.origin,
                    lambda t=tenant: self.signing_keys(t),  # type: ignore[misc]
                    self._open_signer,
                )
                lg = Log(info, self.driver.open_log(info), ring)
                lg.commit_observers.extend(self.commit_observers)
                self._logs[key] = lg
            return lg

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
        size = (self.log(tenant, name).latest_signed() or (0, ""))[0]
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
