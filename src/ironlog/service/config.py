"""What `ironlog serve` is configured with: one ``ServeConfig``.

Precedence: the defaults, then the environment variables an operator may set
(``OPERATOR_ENV``), then the TOML file (``--config``), then command-line
options (``cli/service.py``).  ``ENV`` maps every ``IRONLOG_*`` variable of a
setting in one place: ``ServeConfig.to_env`` writes them once for the uvicorn
workers (separate processes) and ``ServeConfig.from_env`` reads them back in
each worker, so what a worker serves with is exactly what ``serve`` checked.
"""

from __future__ import annotations

import functools
import json
import os
import ssl
import tomllib
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ironlog.engine.datadir import database_url
from ironlog.engine.instance import SYSTEM_LOG, Ironlog
from ironlog.engine.open_logs import DEFAULT_IDLE_SECONDS, DEFAULT_MAX_OPEN_LOGS
from ironlog.errors import ConfigurationError
from ironlog.service.ingest.listeners import check_bindable
from ironlog.service.ingest.specs import ListenSpec
from ironlog.service.limits import Limits
from ironlog.service.outbound import OutboundPolicy

DATA_ENV = "IRONLOG_DATA"  # the data directory (also `ironlog --data`)


def _number(name: str, text: str) -> float:
    try:
        return float(text)
    except ValueError as e:
        raise ConfigurationError(f"{name} must be a number") from e


def _networks(_: str, text: str) -> list[str]:
    items = [x.strip() for x in text.split(",") if x.strip()]
    OutboundPolicy.parse(items)  # a bad network is an error now, naming it
    return list(dict.fromkeys(items))


def _integer(name: str, text: str) -> int:
    try:
        return int(text)
    except ValueError as e:
        raise ConfigurationError(f"{name} must be an integer") from e


def _listeners(name: str, text: str) -> list[ListenSpec]:
    try:
        raw = json.loads(text)
    except ValueError as e:
        raise ConfigurationError(f"{name} is not valid JSON") from e
    if not isinstance(raw, list) or not all(isinstance(x, dict) for x in raw):
        raise ConfigurationError(f"{name} must be a JSON array of objects")
    return [ListenSpec.from_dict(x) for x in raw]


def _limits(name: str, text: str) -> Limits:
    try:
        raw = json.loads(text)
    except ValueError as e:
        raise ConfigurationError(f"{name} is not valid JSON") from e
    if not isinstance(raw, dict):
        raise ConfigurationError(f"{name} must be a JSON object")
    return Limits.from_dict(raw, name)


@dataclass(frozen=True)
class EnvVar:
    """An environment variable that gives the setting ``setting``."""

    setting: str
    name: str
    read: Callable[[str, str], Any]  # (variable name, its non-empty text) -> value
    write: Callable[[Any], str]  # value -> text ("" for none)


ENV: dict[str, EnvVar] = {
    v.setting: v
    for v in (
        EnvVar("verify_interval", "IRONLOG_VERIFY_INTERVAL", _number, str),
        EnvVar("full_verify_interval", "IRONLOG_FULL_VERIFY_INTERVAL", _number, str),
        EnvVar("rate_limit", "IRONLOG_RATE_LIMIT", _number, str),
        EnvVar("rate_burst", "IRONLOG_RATE_BURST", _number, lambda v: "" if v is None else str(v)),
        EnvVar("witness_allow", "IRONLOG_WITNESS_ALLOW", _networks, ",".join),
        EnvVar("max_open_logs", "IRONLOG_MAX_OPEN_LOGS", _integer, str),
        EnvVar("log_idle_seconds", "IRONLOG_LOG_IDLE_SECONDS", _number, str),
        EnvVar(
            "listen",
            "IRONLOG_LISTEN",
            _listeners,
            lambda v: json.dumps([s.to_dict() for s in v]),
        ),
        EnvVar("limits", "IRONLOG_LIMITS", _limits, Limits.to_json),
        # Read by `ironlog --database` too; `serve` writes the one it resolved.
        EnvVar("database", "IRONLOG_DATABASE_URL", lambda _, t: t, lambda v: v or ""),
    )
}
# What an operator may set in the environment (docs/api.md, deploy/ironlog.toml);
# the others only carry a checked configuration to the workers.
OPERATOR_ENV = (
    "verify_interval",
    "full_verify_interval",
    "rate_limit",
    "rate_burst",
    "witness_allow",
    "max_open_logs",
    "log_idle_seconds",
)


@dataclass
class ServeConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    tls_cert: str | None = None
    tls_key: str | None = None
    rate_limit: float = 0.0  # requests/s per key; 0 = no limit
    rate_burst: float | None = None
    verify_interval: float = 10.0
    full_verify_interval: float = 3600.0
    # Logs a worker keeps open (files, a writer thread); idle ones close after log_idle_seconds.
    max_open_logs: int = DEFAULT_MAX_OPEN_LOGS
    log_idle_seconds: float = DEFAULT_IDLE_SECONDS
    listen: list[ListenSpec] = field(default_factory=list)
    # Networks (CIDR) witnesses may be in besides public addresses, e.g. "127.0.0.0/8".
    witness_allow: list[str] = field(default_factory=list)
    limits: Limits = field(default_factory=Limits)
    # A postgresql:// URL (--database and IRONLOG_DATABASE_URL win); None: the data
    # directory.  The workers (and their Ironlog) find it in IRONLOG_DATABASE_URL.
    database: str | None = None

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, settings: Collection[str] = tuple(ENV)
    ) -> ServeConfig:
        """The defaults, with ``settings`` taken from their variables (``ENV``)
        where these are set and not empty."""
        env = os.environ if environ is None else environ
        cfg = cls()
        for setting in settings:
            var = ENV[setting]
            text = env.get(var.name, "")
            if text:
                setattr(cfg, setting, var.read(var.name, text))
        return cfg

    def to_env(self, data: Path) -> dict[str, str]:
        """Every variable of ``ENV`` (and the data directory) for ``from_env``."""
        out = {DATA_ENV: str(data.resolve())}
        out.update({v.name: v.write(getattr(self, s)) for s, v in ENV.items()})
        return out

    @classmethod
    def load(cls, path: Path | None) -> ServeConfig:
        """Defaults, then IRONLOG_VERIFY_INTERVAL / IRONLOG_FULL_VERIFY_INTERVAL /
        IRONLOG_RATE_LIMIT / IRONLOG_RATE_BURST / IRONLOG_WITNESS_ALLOW (comma-separated),
        then the TOML file."""
        cfg = cls.from_env(settings=OPERATOR_ENV)
        if path is None:
            return cfg
        try:
            raw = tomllib.loads(path.read_text())
        except OSError as e:
            raise ConfigurationError(f"cannot read config {path}: {e.strerror}") from e
        except tomllib.TOMLDecodeError as e:
            raise ConfigurationError(f"config {path} is not valid TOML: {e}") from e
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(raw) - set(known))
        if unknown:
            raise ConfigurationError(f"config {path}: unknown settings {', '.join(unknown)}")
        listen = raw.pop("listen", [])
        if not isinstance(listen, list) or not all(isinstance(x, dict) for x in listen):
            raise ConfigurationError(f"config {path}: listen must be [[listen]] tables")
        cfg.listen = [ListenSpec.from_dict(dict(x)) for x in listen]
        allow = raw.pop("witness_allow", [])
        if not isinstance(allow, list) or not all(isinstance(x, str) for x in allow):
            raise ConfigurationError(f"config {path}: witness_allow must be a list of CIDR strings")
        cfg.add_witness_allow(allow)
        limits = raw.pop("limits", {})
        if not isinstance(limits, dict):
            raise ConfigurationError(f"config {path}: limits must be a [limits] table")
        cfg.limits = Limits.from_dict(limits, f"config {path}: [limits]")
        for key, value in raw.items():
            default = getattr(cls(), key)
            kind = type(default) if default is not None else (float if key == "rate_burst" else str)
            if kind is float and isinstance(value, int):
                value = float(value)
            if not isinstance(value, kind) or isinstance(value, bool):
                raise ConfigurationError(f"config {path}: {key} must be {kind.__name__}")
            setattr(cfg, key, value)
        return cfg

    def check(self) -> None:
        """Every setting in range and the TLS files loadable (ConfigurationError
        naming the setting if not): run before anything is bound or created."""
        for name, low, high in (("port", 0, 65535), ("workers", 1, 64)):
            value = getattr(self, name)
            if not low <= value <= high:
                raise ConfigurationError(f"{name} must be between {low} and {high}, not {value}")
        if self.max_open_logs < 1:
            raise ConfigurationError(f"max_open_logs must be >= 1, not {self.max_open_logs}")
        positive = ["verify_interval", "full_verify_interval", "log_idle_seconds"]
        if self.rate_burst is not None:
            positive.append("rate_burst")
        for name in positive:
            if not getattr(self, name) > 0:
                raise ConfigurationError(f"{name} must be > 0, not {getattr(self, name)}")
        if not self.rate_limit >= 0:
            raise ConfigurationError(f"rate_limit must be >= 0, not {self.rate_limit}")
        if self.tls_cert and self.tls_key:
            try:
                ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(self.tls_cert, self.tls_key)
            except (OSError, ssl.SSLError) as e:
                why = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
                raise ConfigurationError(
                    f"cannot load the TLS certificate {self.tls_cert} and key {self.tls_key}: {why}"
                ) from e

    def outbound(self) -> OutboundPolicy:
        """Where the service may send requests of its own (to witnesses)."""
        return OutboundPolicy.parse(self.witness_allow)

    def add_witness_allow(self, networks: Iterable[str]) -> None:
        """Allow witnesses in these networks too (checked now: a bad one is an error)."""
        items = [x.strip() for x in networks]
        OutboundPolicy.parse(items)
        self.witness_allow.extend(x for x in items if x not in self.witness_allow)

    def add_listeners(self, specs: Iterable[str]) -> None:
        """``--listen`` values; syslog-tls ones use the server's certificate."""
        tls = {"cert": self.tls_cert, "key": self.tls_key} if self.tls_cert else {}
        for text in specs:
            extra = tls if text.startswith("syslog-tls:") else {}
            self.listen.append(ListenSpec.parse(text, **extra))

    def check_listeners(self, data: Path) -> Iterator[str]:
        """Each listener's log must exist and its address be free; say where it
        listens.  Runs before the first start creates anything, so on a data
        directory not yet initialised only the demo log (created then) can be named."""
        for spec in self.listen:
            if spec.tenant_log[1] == SYSTEM_LOG:
                raise ConfigurationError(f"{spec.log} is written by the service only")
            check_bindable(spec)
        if not self.listen:
            return
        if (data / "control.db").exists() or (
            database_url() is not None and (data / "master.key").exists()
        ):
            with Ironlog(data) as il:
                for spec in self.listen:
                    il.log_info(*spec.tenant_log)
        else:
            for spec in self.listen:
                if spec.tenant_log != ("demo", "events"):
                    raise ConfigurationError(
                        f"{spec.name}: log {spec.log} does not exist; create it first "
                        "(ironlog init; ironlog log create ...)"
                    )
        for spec in self.listen:
            yield f"listening: {spec.name} -> {spec.log}"


@functools.cache
def worker_config() -> tuple[Path, ServeConfig]:
    """In a uvicorn worker: the data directory and the configuration that
    ``serve`` handed over (``ServeConfig.to_env``), read once per process."""
    return Path(os.environ.get(DATA_ENV, "data")), ServeConfig.from_env()
