"""What to listen on: ``--listen KIND:HOST:PORT=TENANT/LOG`` or a ``[[listen]]`` table.

Kinds: ``syslog-udp`` (RFC 5426), ``syslog-tcp`` (RFC 6587: octet counting or
LF framing, detected from a connection's first byte), ``syslog-tls``
(RFC 5425, optional client certificates) and ``ndjson-tcp`` (one JSON
object per line).  The target log is a :class:`~ironlog.core.names.LogRef`.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass, fields
from typing import Any

from ironlog.core.names import LogRef
from ironlog.errors import ConfigurationError, IronlogError

KINDS = ("syslog-udp", "syslog-tcp", "syslog-tls", "ndjson-tcp")


@dataclass(frozen=True)
class ListenSpec:
    kind: str
    host: str
    port: int
    log: LogRef
    cert: str | None = None  # syslog-tls: server certificate and key (PEM)
    key: str | None = None
    client_ca: str | None = None  # syslog-tls: require client certificates signed by this CA
    max_message: int = 16384  # bytes per message
    max_connections: int = 1000
    max_connections_per_peer: int = 100  # from one IP address
    idle_timeout: float = 300.0  # seconds without data before a connection is closed
    pressure_idle_timeout: float = 10.0  # ... once 90% of max_connections are open
    high_water: int = 50_000  # entries in flight before TCP reading pauses / UDP drops
    low_water: int = 10_000

    @property
    def name(self) -> str:
        return f"{self.kind}:{self.host}:{self.port}"

    @property
    def tenant_log(self) -> LogRef:
        """The target log (a ``(tenant, name)`` pair)."""
        return self.log

    @classmethod
    def parse(cls, text: str, **extra: Any) -> ListenSpec:
        """``KIND:HOST:PORT=TENANT/LOG`` (an IPv6 host in brackets)."""
        left, sep, target = text.rpartition("=")
        kind, _, hostport = left.partition(":")
        host, _, port = hostport.rpartition(":")
        if not sep or not host or not port:
            raise ConfigurationError(f"--listen {text!r}: expected KIND:HOST:PORT=TENANT/LOG")
        return cls.from_dict(
            {"kind": kind, "host": host.strip("[]"), "port": port, "log": target, **extra}
        )

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ListenSpec:
        """From a ``[[listen]]`` table (or :meth:`to_dict`): every setting checked,
        ConfigurationError naming the one that is wrong."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ConfigurationError(f"listener: unknown settings {', '.join(unknown)}")
        try:
            port = int(raw.get("port", -1))
        except (TypeError, ValueError) as e:
            raise ConfigurationError(f"listener port {raw.get('port')!r} is not a number") from e
        where = f"listener {raw.get('kind')}:{raw.get('host')}:{port}"
        target = raw.get("log")
        try:
            log = target if isinstance(target, LogRef) else LogRef.parse(str(target))
        except IronlogError:
            raise ConfigurationError(f"{where}: the target must be TENANT/LOG") from None
        values = {**raw, "port": port, "log": log}
        hints = typing.get_type_hints(cls)
        for f in fields(cls):  # the integers are checked by validate()
            hint = hints[f.name]
            if f.name in values and hint is not int and not _fits(values[f.name], hint):
                raise ConfigurationError(f"{where}: {f.name} must be {_type_name(hint)}")
        spec = cls(**values)
        spec.validate()
        return spec

    def validate(self) -> None:
        where = f"listener {self.kind}:{self.host}:{self.port}"
        if self.kind not in KINDS:
            raise ConfigurationError(f"{where}: kind must be one of {', '.join(KINDS)}")
        if not 0 <= self.port <= 65535:
            raise ConfigurationError(f"{where}: port must be 0..65535")
        if not isinstance(self.log, LogRef):
            raise ConfigurationError(f"{where}: the target must be TENANT/LOG")
        if self.kind == "syslog-tls" and not (self.cert and self.key):
            raise ConfigurationError(f"{where}: syslog-tls needs cert and key (or --tls-cert/-key)")
        for k in (
            "max_message",
            "max_connections",
            "max_connections_per_peer",
            "high_water",
            "low_water",
        ):
            if not isinstance(getattr(self, k), int) or getattr(self, k) < 1:
                raise ConfigurationError(f"{where}: {k} must be a positive integer")
        if not self.low_water < self.high_water:
            raise ConfigurationError(f"{where}: low_water must be below high_water")
        for k in ("idle_timeout", "pressure_idle_timeout"):
            if not float(getattr(self, k)) > 0:
                raise ConfigurationError(f"{where}: {k} must be positive")

    def to_dict(self) -> dict[str, Any]:
        """Plain values (the target as ``TENANT/LOG``): what :meth:`from_dict` reads."""
        return {f.name: getattr(self, f.name) for f in fields(self)} | {"log": str(self.log)}


def _fits(value: Any, hint: Any) -> bool:
    """``value`` is of the declared type (an int is a float, a bool is not)."""
    if isinstance(hint, types.UnionType):
        return any(_fits(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, hint)


def _type_name(hint: Any) -> str:
    names = {str: "a string", float: "a number"}
    args = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    return " or ".join(names.get(h, "absent") for h in args)  # LogRef: checked before
