"""The deployment files in deploy/: the example config covers every option and
the server starts with it; the systemd unit is hardened and passes
``systemd-analyze verify``."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from dataclasses import fields
from pathlib import Path

from ironlog.service.config import ServeConfig
from ironlog.service.ingest.specs import ListenSpec
from tests.conftest import BIN, ROOT
from tests.server import run_server

CONFIG = ROOT / "deploy" / "ironlog.toml"
UNIT = ROOT / "deploy" / "ironlog.service"


def _uncommented(text: str) -> str:
    """The example with every commented-out setting switched on."""
    return re.sub(r"^#(?=\w+ = |\[\[)", "", text, flags=re.M)


def test_example_config_shows_every_option(tmp_path: Path) -> None:
    text = CONFIG.read_text()
    every = tomllib.loads(_uncommented(text))
    missing = {f.name for f in fields(ServeConfig)} - set(every)
    assert not missing, f"deploy/ironlog.toml lacks {missing}"
    assert len(every["listen"]) == 1
    missing = {f.name for f in fields(ListenSpec)} - set(every["listen"][0])
    assert not missing, f"deploy/ironlog.toml [[listen]] lacks {missing}"
    # Valid as shipped and with everything switched on; the shown values are the defaults.
    shipped = ServeConfig.load(CONFIG)
    defaults = ServeConfig()
    for f in fields(ServeConfig):
        if f.name in tomllib.loads(text):
            assert getattr(shipped, f.name) == getattr(defaults, f.name), f.name
    full = tmp_path / "full.toml"
    full.write_text(_uncommented(text))
    cfg = ServeConfig.load(full)
    spec = cfg.listen[0]
    base = ListenSpec(spec.kind, spec.host, spec.port, spec.log)
    for name in ("max_message", "max_connections", "idle_timeout", "high_water", "low_water"):
        assert getattr(spec, name) == getattr(base, name), name


def test_server_starts_with_the_example_config(tmp_path: Path) -> None:
    with run_server(tmp_path / "data", "--config", str(CONFIG)) as s, s.client(s.demo) as c:
        r = c.post("/v1/logs/demo/events/entries", json={"actor": "alice"})
        assert r.status_code == 201, r.text


def test_systemd_unit_is_hardened_and_verifies(tmp_path: Path) -> None:
    text = UNIT.read_text()
    settings = {
        m.group(1): m.group(2) for m in re.finditer(r"^(\w+)=(.*)$", text, re.M)
    }  # the last value of each
    for key, want in {
        "DynamicUser": "yes",
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "UMask": "0077",
        "StateDirectory": "ironlog",
        "SystemCallFilter": "@system-service",
        "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
        "CapabilityBoundingSet": "",
    }.items():
        assert settings.get(key) == want, key
    assert int(settings["LimitNOFILE"]) >= 4096
    assert "--data ${STATE_DIRECTORY} serve --config /etc/ironlog/ironlog.toml" in text
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing: make sysdeps installs the systemd package"
    unit = tmp_path / "ironlog.service"
    unit.write_text(text.replace("/opt/ironlog/bin/ironlog", str(BIN / "ironlog")))
    p = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and not p.stderr.strip() and not p.stdout.strip(), p.stderr + p.stdout


def test_bad_settings_are_refused_before_anything_is_created(tmp_path: Path) -> None:
    """A setting out of range, or TLS files that cannot be loaded, stop `serve`
    with a message naming them: before the data directory is initialised and the
    first-start keys printed, never as a traceback, never a server running with
    a negative interval or no workers."""
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    cases = [
        ("workers = 0\n", {}, "workers must be between 1 and 64"),
        ("port = 99999\n", {}, "port must be between 0 and 65535"),
        ("rate_limit = -1.0\n", {}, "rate_limit must be >= 0"),
        ("rate_burst = 0.0\n", {}, "rate_burst must be > 0"),
        ("verify_interval = 0.0\n", {}, "verify_interval must be > 0"),
        ("full_verify_interval = -5.0\n", {}, "full_verify_interval must be > 0"),
        ("", {"IRONLOG_VERIFY_INTERVAL": "-1"}, "verify_interval must be > 0"),
        (
            'tls_cert = "/nonexistent/tls.crt"\ntls_key = "/nonexistent/tls.key"\n',
            {},
            "cannot load the TLS certificate /nonexistent/tls.crt",
        ),
        (
            f'tls_cert = "{garbage}"\ntls_key = "{garbage}"\n',
            {},
            f"cannot load the TLS certificate {garbage}",
        ),
    ]
    bad = tmp_path / "bad.toml"
    for text, env, want in cases:
        data = tmp_path / "data"
        bad.write_text("port = 0\n" + text if "port" not in text else text)
        p = subprocess.run(
            [str(BIN / "ironlog"), "--data", str(data), "serve", "--config", str(bad)],
            capture_output=True,
            text=True,
            timeout=30,
            env={**os.environ, **env},
        )
        assert p.returncode == 1, (text, env, p.stdout, p.stderr)
        assert want in p.stderr and "Traceback" not in p.stderr, (text, p.stderr)
        assert "operator key" not in p.stdout and not data.exists(), text
