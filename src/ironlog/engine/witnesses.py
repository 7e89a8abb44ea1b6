"""A log's witnesses, as the instance keeps them: the operator's switch that
lets a tenant have witnesses at all, each log's witness policy and the size
from which it applies, the cosignatures collected (their status), and the
checkpoint published for the log (the newest that satisfies its policy).

All of it lives in control.db settings; a setting that cannot be read is an
IntegrityError naming control.db, never a 500.  ``Ironlog`` has these methods
(``WitnessSettings`` is one of its bases)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ironlog.core.note import Verifier, parse_note, verify_cosignature
from ironlog.core.numparse import parse_int
from ironlog.core.policy import WitnessPolicy, parse_policy
from ironlog.engine.system_log import HOST
from ironlog.errors import (
    FormatError,
    IntegrityError,
    InvalidRequestError,
    IronlogError,
    PermissionDeniedError,
    VerificationError,
)
from ironlog.store.base import ControlStore, LogInfo

if TYPE_CHECKING:
    from ironlog.engine.log import Log
    from ironlog.store.base import TenantRecord

WITNESSING = "witnessing"  # setting prefix: the operator allowed the tenant witnesses
MAX_TENANT_WITNESSES = 32  # witnesses over all logs of one tenant


class WitnessSettings:
    """The witness settings of an instance's logs (a base of ``Ironlog``)."""

    control: ControlStore

    if TYPE_CHECKING:  # Ironlog's

        def tenant(self, name: str) -> TenantRecord: ...

        def log(self, tenant: str, name: str) -> Log: ...

        def log_info(self, tenant: str, name: str) -> LogInfo: ...

        def list_logs(self, tenant: str | None = None) -> list[LogInfo]: ...

        def record(self, tenant: str, by: str, action: str, **details: Any) -> None: ...

    # -- what the operator allows a tenant ---------------------------------------------
    def witnessing_allowed(self, tenant: str) -> bool:
        return self.control.get_setting(f"{WITNESSING}:{tenant}") == "1"

    def set_witnessing_allowed(self, tenant: str, allowed: bool, by: str = HOST) -> None:
        """The operator's switch: may the tenant's logs have witnesses (which
        makes the service send requests to URLs the tenant chooses)?"""
        self.tenant(tenant)
        self.record(tenant, by, "witnessing.enable" if allowed else "witnessing.disable")
        self.control.set_setting(f"{WITNESSING}:{tenant}", "1" if allowed else "0")

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
