"""API keys: issue, authenticate, rotate, revoke.

A key is ``ilk_<id>_<secret>``: the id is public (it names the key in lists
and logs), the secret is 256 random bits shown once and stored only as its
SHA-256 (a slow hash adds nothing for secrets of that entropy).  Keys belong
to one tenant and carry scopes (``append``, ``read``, ``admin``), or belong to
the operator (tenant None, scope ``operator``), who manages tenants.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ironlog.core.entry import now_us
from ironlog.engine.system_log import HOST
from ironlog.errors import (
    AuthenticationError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
)
from ironlog.store.base import ApiKeyRecord, ControlStore

OPERATOR_LOCK = "operator_locked"  # setting prefix: the tenant locked the operator out of its keys
TENANT_SCOPES = ("append", "read", "admin")
OPERATOR_SCOPE = "operator"
PREFIX = "ilk_"
MAX_LIFETIME_S = 10 * 365 * 86400
Recorder = Callable[..., None]
"""``record(tenant, by, action, **details)``: ``Ironlog.record``."""


def actor(p: Principal) -> str:
    """How a request's key is named in a tenant's system log."""
    return f"operator:{p.key_id}" if p.is_operator else f"tenant:{p.key_id}"


def parse_scopes(text: str | Sequence[str]) -> tuple[str, ...]:
    """``"append,read"`` or ``["append", "read"]`` -> the scopes."""
    items = text.split(",") if isinstance(text, str) else list(text)
    scopes = tuple(dict.fromkeys(s.strip() for s in items if s.strip()))
    bad = [s for s in scopes if s not in TENANT_SCOPES]
    if bad or not scopes:
        shown = text if isinstance(text, str) else ",".join(items)
        raise InvalidRequestError(
            f"invalid scopes {shown[:200]!r}: use a list of {', '.join(TENANT_SCOPES)}"
        )
    return scopes


def _hash(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


@dataclass(frozen=True)
class Principal:
    """Who a request acts as."""

    key_id: str
    tenant: str | None
    scopes: tuple[str, ...]
    log: str | None = None

    @property
    def is_operator(self) -> bool:
        return self.tenant is None

    def require(self, scope: str, tenant: str | None = None, log: str | None = None) -> None:
        """Allow ``scope`` on ``tenant``'s resources (on its log ``log``, when
        the request selects one).  Another tenant's resources are reported as
        not found, so a key cannot learn what exists elsewhere.  A key bound
        to a log (``self.log``) may use that log only: every other log, and
        managing the tenant (logs, keys, signing keys), is refused."""
        if self.is_operator:
            if scope in ("operator", "admin"):
                return
            raise PermissionDeniedError(
                "the operator key manages tenants; it cannot read or append"
            )
        if tenant is not None and tenant != self.tenant:
            raise NotFoundError("no such resource")
        if scope == OPERATOR_SCOPE:
            raise PermissionDeniedError("this needs the operator key")
        if self.log is not None and (log != self.log if log is not None else scope == "admin"):
            raise PermissionDeniedError(f"this key is bound to log {self.log!r}")
        if scope not in self.scopes and "admin" not in self.scopes:
            raise PermissionDeniedError(f"this key lacks the {scope!r} scope")


class KeyManager:
    """Issues and checks keys.  Successful checks are remembered for
    ``cache_seconds`` (default 1 s), so revoking a key, expiring it or
    disabling its tenant takes effect within that time in other processes
    (at once in this one)."""

    def __init__(
        self, control: ControlStore, cache_seconds: float = 1.0, record: Recorder | None = None
    ) -> None:
        self.control = control
        self.cache_seconds = cache_seconds
        self.record = record  # where acts on a tenant's keys are written (its system log)
        self._cache: dict[bytes, tuple[Principal, float, int | None]] = {}

    def create(
        self,
        tenant: str | None,
        scopes: tuple[str, ...],
        name: str = "",
        expires_in_s: int | None = None,
        log: str | None = None,
        by: str = HOST,
        action: str = "key.create",
        **details: Any,
    ) -> tuple[str, ApiKeyRecord]:
        """A new key; returns the secret (shown once) and the stored record.
        ``log`` (a log of the tenant) is where OTLP requests with it write.
        ``by`` (see ``actor``) is recorded in the tenant's system log; anyone
        but the tenant itself is refused while the tenant locked the operator out."""
        if tenant is not None:
            rec = self.control.get_tenant(tenant)
            if rec is None:
                raise NotFoundError(f"tenant {tenant!r} does not exist")
            self._check_lock(tenant, by)
        if log is not None and (tenant is None or self.control.get_log(tenant, log) is None):
            raise NotFoundError(f"log {tenant}/{log} does not exist")
        if len(name) > 200:
            raise InvalidRequestError("key name is longer than 200 characters")
        now = now_us()
        expires = None
        if expires_in_s is not None:
            if not 1 <= expires_in_s <= MAX_LIFETIME_S:
                raise InvalidRequestError("expires_in must be between 1 second and 10 years")
            expires = now + expires_in_s * 1_000_000
        key_id = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        record = ApiKeyRecord(key_id, tenant, scopes, _hash(secret), now, name, expires, None, log)
        if tenant is not None and self.record is not None:
            self.record(
                tenant, by, action, resource=key_id, scopes=",".join(scopes), name=name,
                expires_us=expires, log=log, **details,
            )  # fmt: skip
        self.control.create_api_key(record)
        return f"{PREFIX}{key_id}_{secret}", record

    def authenticate(self, presented: str | None) -> Principal:
        if not presented:
            raise AuthenticationError("an API key is required (Authorization: Bearer <key>)")
        digest = hashlib.sha256(presented.encode()).digest()
        hit = self._cache.get(digest)
        if hit is not None:
            principal, until, expires_us = hit
            if time.monotonic() < until and (expires_us is None or now_us() < expires_us):
                return principal
            self._cache.pop(digest, None)
        principal, expires_us = self._authenticate(presented)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[digest] = (principal, time.monotonic() + self.cache_seconds, expires_us)
        return principal

    def _authenticate(self, presented: str) -> tuple[Principal, int | None]:
        if not presented.startswith(PREFIX) or presented.count("_") < 2:
            raise AuthenticationError("malformed API key")
        key_id, _, secret = presented[len(PREFIX) :].partition("_")
        rec = self.control.get_api_key(key_id) if len(key_id) == 16 else None
        # Compare even when the id is unknown, so timing does not tell ids apart.
        expected = rec.secret_hash if rec is not None else b"\0" * 32
        if not hmac.compare_digest(_hash(secret), expected) or rec is None:
            raise AuthenticationError("unknown API key")
        now = now_us()
        if rec.revoked_us is not None and rec.revoked_us <= now:
            raise AuthenticationError("API key has been revoked")
        if rec.expires_us is not None and rec.expires_us <= now:
            raise AuthenticationError("API key has expired")
        if rec.tenant is not None:
            tenant = self.control.get_tenant(rec.tenant)
            if tenant is None or tenant.disabled:
                raise AuthenticationError("the key's tenant is disabled")
        return Principal(rec.key_id, rec.tenant, rec.scopes, rec.log), rec.expires_us

    def get(self, key_id: str, tenant: str | None) -> ApiKeyRecord:
        rec = self.control.get_api_key(key_id)
        if rec is None or rec.tenant != tenant:
            raise NotFoundError(f"API key {key_id!r} does not exist")
        return rec

    def rotate(
        self,
        key_id: str,
        tenant: str | None,
        old_expires_in_s: int | None = None,
        by: str = HOST,
    ) -> tuple[str, ApiKeyRecord]:
        """A new key with the same tenant and scopes.  The old one stays valid
        until it is revoked, or until ``old_expires_in_s`` if given."""
        old = self.get(key_id, tenant)
        if old.revoked_us is not None:
            raise InvalidRequestError(f"API key {key_id!r} is revoked")
        if old_expires_in_s is not None and not 0 <= old_expires_in_s <= MAX_LIFETIME_S:
            raise InvalidRequestError("old_expires_in must be between 0 and 10 years")
        secret, new = self.create(
            tenant, old.scopes, old.name, log=old.log, by=by, action="key.rotate",
            replaces=key_id, old_expires_in=old_expires_in_s,
        )  # fmt: skip
        if old_expires_in_s is not None:
            self.control.update_api_key(key_id, expires_us=now_us() + old_expires_in_s * 1_000_000)
            self.forget()
        return secret, new

    def revoke(self, key_id: str, tenant: str | None, by: str = HOST) -> None:
        self.get(key_id, tenant)
        if tenant is not None and self.record is not None:
            self.record(tenant, by, "key.revoke", resource=key_id)
        self.control.update_api_key(key_id, revoked_us=now_us())
        self.forget()

    def _check_lock(self, tenant: str, by: str) -> None:
        if self.control.get_setting(f"{OPERATOR_LOCK}:{tenant}") == "1" and not by.startswith(
            "tenant:"
        ):
            raise PermissionDeniedError(
                f"tenant {tenant!r} has locked the operator out of creating its API keys; "
                "its admin can unlock it (ironlog tenant operator-lock --unlock)"
            )

    def forget(self) -> None:
        """Drop remembered checks (after a revocation or a tenant change)."""
        self._cache.clear()

    def list(self, tenant: str | None) -> list[ApiKeyRecord]:
        return self.control.list_api_keys(tenant)
