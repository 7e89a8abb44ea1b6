"""Starting the HTTP service: first-start set-up and uvicorn."""

from __future__ import annotations

import json
import os
import shutil
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path

from ironlog.auth import OPERATOR_SCOPE, KeyManager
from ironlog.errors import ConfigurationError
from ironlog.instance import Ironlog, init_data_dir
from ironlog.limits import ENV as LIMITS_ENV
from ironlog.limits import Limits
from ironlog.listeners import ListenSpec, check_bindable


def first_start(data: Path, host: str, port: int, tls: bool = False) -> Iterator[str]:
    """Initialise ``data`` if needed; on the very first start create the
    operator key and a demo tenant with an append/read key, shown once."""
    init_data_dir(data)
    scheme = "https" if tls else "http"
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    base = f"{scheme}://{shown_host}:{port}"
    with Ironlog(data) as il:
        keys = KeyManager(il.control)
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
    listen: list[ListenSpec] = field(default_factory=list)
    limits: Limits = field(default_factory=Limits)

    @classmethod
    def load(cls, path: Path | None) -> ServeConfig:
        """Defaults, then IRONLOG_VERIFY_INTERVAL / IRONLOG_FULL_VERIFY_INTERVAL /
        IRONLOG_RATE_LIMIT / IRONLOG_RATE_BURST, then the TOML file."""
        cfg = cls()
        for name in ("verify_interval", "full_verify_interval", "rate_limit", "rate_burst"):
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

    def add_listeners(self, specs: Iterable[str]) -> None:
        """``--listen`` values; syslog-tls ones use the server's certificate."""
        tls = {"cert": self.tls_cert, "key": self.tls_key} if self.tls_cert else {}
        for text in specs:
            extra = tls if text.startswith("syslog-tls:") else {}
            self.listen.append(ListenSpec.parse(text, **extra))

    def check_listeners(self, data: Path) -> Iterator[str]:
        """Each listener's log must exist and its address be free; say where it listens."""
        with Ironlog(data) as il:
            for spec in self.listen:
                il.log_info(*spec.tenant_log)
                check_bindable(spec)
                yield f"listening: {spec.name} -> {spec.log}"


def run(data: Path, cfg: ServeConfig) -> None:
    import uvicorn

    os.environ["IRONLOG_DATA"] = str(data.resolve())
    os.environ["IRONLOG_VERIFY_INTERVAL"] = str(cfg.verify_interval)
    os.environ["IRONLOG_FULL_VERIFY_INTERVAL"] = str(cfg.full_verify_interval)
    os.environ["IRONLOG_RATE_LIMIT"] = str(cfg.rate_limit)
    if cfg.rate_burst is not None:
        os.environ["IRONLOG_RATE_BURST"] = str(cfg.rate_burst)
    os.environ["IRONLOG_LISTEN"] = json.dumps([s.to_dict() for s in cfg.listen])
    os.environ[LIMITS_ENV] = cfg.limits.to_json()
    if cfg.workers > 1:  # one /metrics view over all workers
        metrics_dir = data / ".metrics"
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(mode=0o700)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir.resolve())
    uvicorn.run(
        "ironlog.api.app:create_app_from_env",
        factory=True,
        host=cfg.host,
        port=cfg.port,
        workers=cfg.workers,
        ssl_certfile=cfg.tls_cert,
        ssl_keyfile=cfg.tls_key,
        log_level="warning",
        access_log=False,
        server_header=False,
        http="ironlog.httpguard:GuardedHttpProtocol",
        loop="ironlog.httpguard:new_event_loop",
    )
