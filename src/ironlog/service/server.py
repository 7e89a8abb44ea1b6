"""Starting the HTTP service: first-start set-up and uvicorn."""

from __future__ import annotations

import json
import os
import resource
import shutil
import socket
import ssl
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path

from ironlog.engine.api_keys import OPERATOR_SCOPE, KeyManager
from ironlog.engine.instance import SYSTEM_LOG, Ironlog, init_data_dir
from ironlog.engine.open_logs import DEFAULT_IDLE_SECONDS, DEFAULT_MAX_OPEN_LOGS
from ironlog.errors import ConfigurationError
from ironlog.service.ingest.listeners import check_bindable
from ironlog.service.ingest.specs import ListenSpec
from ironlog.service.limits import ENV as LIMITS_ENV
from ironlog.service.limits import Limits
from ironlog.service.outbound import ENV as WITNESS_ALLOW_ENV
from ironlog.service.outbound import OutboundPolicy


def raise_nofile_limit() -> str:
    """Raise the soft descriptor limit to the hard one (every log a worker
    holds open costs a few descriptors; systemd's default soft limit is
    1024) and say what it is: a line for the start-up banner."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (OSError, ValueError) as e:
            return f"file descriptors: limit {soft} (could not raise it to {hard}: {e})"
        return f"file descriptors: limit raised from {soft} to {hard}"
    return f"file descriptors: limit {soft}"


def first_start(data: Path, host: str, port: int, tls: bool = False) -> Iterator[str]:
    """Initialise ``data`` if needed; on the very first start create the
    operator key and a demo tenant with an append/read key, shown once."""
    init_data_dir(data)
    scheme = "https" if tls else "http"
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    base = f"{scheme}://{shown_host}:{port}"
    with Ironlog(data) as il:
        keys = KeyManager(il.control, record=il.record)
        yield f"ironlog serving {data.resolve()} on {base}"
        yield f"API docs: {base}/schema (OpenAPI: {base}/schema/openapi.json)"
        if keys.list(None):
            yield "operator key: already issued (shown only on first start)"
            return
        op, _ = keys.create(None, (OPERATOR_SCOPE,), "operator")
        if il.control.get_tenant("demo") is None:
            il.create_log("demo", "events", create_tenant=True)
        demo, _ = keys.create("demo", ("append", "read"), "demo")
        yield ""
        yield "First start: these keys are shown once. Store them now."
        yield f"  operator key (manages tenants): {op}"
        yield f"  demo tenant key (append, read): {demo}"
        yield ""
        yield "Append an event:"
        yield (
            f"  curl -s {base}/v1/logs/demo/events/entries -H 'Authorization: Bearer {demo}' "
            "-H 'Content-Type: application/json' "
            """-d '{"actor":"alice","action":"login","outcome":"success"}'"""
        )
        yield ""


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

    @classmethod
    def load(cls, path: Path | None) -> ServeConfig:
        """Defaults, then IRONLOG_VERIFY_INTERVAL / IRONLOG_FULL_VERIFY_INTERVAL /
        IRONLOG_RATE_LIMIT / IRONLOG_RATE_BURST / IRONLOG_WITNESS_ALLOW (comma-separated),
        then the TOML file."""
        cfg = cls()
        env_allow = os.environ.get(WITNESS_ALLOW_ENV, "")
        cfg.add_witness_allow(x for x in env_allow.split(",") if x.strip())
        env_cap = os.environ.get("IRONLOG_MAX_OPEN_LOGS")
        if env_cap:
            try:
                cfg.max_open_logs = int(env_cap)
            except ValueError as e:
                raise ConfigurationError("IRONLOG_MAX_OPEN_LOGS must be an integer") from e
        names = ("verify_interval", "full_verify_interval", "rate_limit", "rate_burst")
        for name in (*names, "log_idle_seconds"):
            env = os.environ.get(f"IRONLOG_{name.upper()}")
            if env:
                try:
                    setattr(cfg, name, float(env))
                except ValueError as e:
                    raise ConfigurationError(f"IRONLOG_{name.upper()} must be a number") from e
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
        if (data / "control.db").exists():
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


def bind_http(cfg: ServeConfig) -> socket.socket:
    """Bind the HTTP address before anything is created or printed, so a taken
    port fails cleanly; uvicorn (and its workers) serve on this socket.  With
    port 0, ``cfg.port`` becomes the port the system chose."""
    family = socket.AF_INET6 if ":" in cfg.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((cfg.host, cfg.port))
    except OSError as e:
        sock.close()
        raise ConfigurationError(
            f"cannot listen on {cfg.host}:{cfg.port}: {e.strerror} "
            "(another process? choose another with --port)"
        ) from e
    except (OverflowError, TypeError, UnicodeError) as e:  # e.g. a malformed --host
        sock.close()
        raise ConfigurationError(f"cannot listen on {cfg.host}:{cfg.port}: {e}") from e
    sock.set_inheritable(True)
    cfg.port = int(sock.getsockname()[1])
    return sock


def run(data: Path, cfg: ServeConfig, sock: socket.socket) -> None:
    """Serve on ``sock`` (from :func:`bind_http`) until stopped."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    os.environ["IRONLOG_DATA"] = str(data.resolve())
    os.environ["IRONLOG_VERIFY_INTERVAL"] = str(cfg.verify_interval)
    os.environ["IRONLOG_FULL_VERIFY_INTERVAL"] = str(cfg.full_verify_interval)
    os.environ["IRONLOG_RATE_LIMIT"] = str(cfg.rate_limit)
    os.environ["IRONLOG_MAX_OPEN_LOGS"] = str(cfg.max_open_logs)
    os.environ["IRONLOG_LOG_IDLE_SECONDS"] = str(cfg.log_idle_seconds)
    if cfg.rate_burst is not None:
        os.environ["IRONLOG_RATE_BURST"] = str(cfg.rate_burst)
    os.environ["IRONLOG_LISTEN"] = json.dumps([s.to_dict() for s in cfg.listen])
    os.environ[WITNESS_ALLOW_ENV] = ",".join(cfg.witness_allow)
    os.environ[LIMITS_ENV] = cfg.limits.to_json()
    if cfg.workers > 1:  # one /metrics view over all workers
        metrics_dir = data / ".metrics"
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(mode=0o700)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir.resolve())
    config = uvicorn.Config(
        "ironlog.service.http.app:create_app_from_env",
        factory=True,
        host=cfg.host,
        port=cfg.port,
        workers=cfg.workers,
        ssl_certfile=cfg.tls_cert,
        ssl_keyfile=cfg.tls_key,
        log_level="warning",
        access_log=False,
        server_header=False,
        http="ironlog.service.http.guard:GuardedHttpProtocol",
        loop="ironlog.service.http.guard:new_event_loop",
    )
    server = uvicorn.Server(config)
    try:
        if cfg.workers > 1:
            Multiprocess(config, sockets=[sock]).run()
        else:
            server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    if cfg.workers == 1 and not server.started:
        raise SystemExit(3)  # uvicorn has logged why
