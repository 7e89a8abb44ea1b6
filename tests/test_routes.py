"""The routes as a whole, against a real ``ironlog serve``: every operation
the OpenAPI document lists refuses a caller without a valid key (its guard),
but health and the tiles of a public log; OPTIONS needs no key anywhere; and
a worker serves with exactly the configuration ``serve`` checked."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

from ironlog.service.config import DATA_ENV, ENV, OPERATOR_ENV, ServeConfig
from tests.conftest import ROOT
from tests.server import run_server

OPEN = {("/healthz", "get"), ("/readyz", "get")}  # answer without a key
VALUES = {"tenant": "demo", "name": "events", "key_id": "k", "fp": "f", "index": "0"}


def _real(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: VALUES.get(m.group(1), "0/000"), path)


def test_every_route_but_health_needs_a_valid_key(tmp_path: Path) -> None:
    with run_server(tmp_path / "data") as s, s.client() as anon:
        doc = anon.get("/schema/openapi.json").json()
        ops = [(p, m, op) for p, methods in doc["paths"].items() for m, op in methods.items()]
        assert len(ops) >= 35, ops
        for path, method, op in ops:
            # with the required query parameters: their absence is a 400 before the key
            required = [
                x["name"] for x in op.get("parameters", []) if x["in"] == "query" and x["required"]
            ]
            url = _real(path) + "".join(f"{'&' if i else '?'}{q}=0" for i, q in enumerate(required))
            for key in ({}, {"Authorization": "Bearer ilk_not_a_key"}, {"X-API-Key": "x"}):
                headers = {**key, "Content-Type": "application/json"}
                r = anon.request(method, url, headers=headers)
                if (path, method) in OPEN:
                    assert r.status_code == 200, (path, method, r.text)
                    continue
                assert r.status_code == 401, (path, method, headers, r.text)
                if path != "/v1/logs":  # OTLP answers with an OTLP Status instead
                    assert r.json()["error"]["code"] == "unauthenticated", r.text
            # OPTIONS answers for the path without a key (CORS preflights send none).
            r = anon.options(url)
            assert r.status_code == 204 and "OPTIONS" in r.headers["allow"], (path, r)
        # The tiles of a public log need no key; of another log they do.
        with s.client(s.demo) as demo:
            assert demo.post("/v1/logs/demo/events/entries", json={"a": 1}).status_code == 201
        assert anon.get("/logs/demo/events/checkpoint").status_code == 401
        with s.client(s.operator) as op:
            r = op.post("/v1/tenants/demo/keys", json={"scopes": "admin"})
            assert r.status_code == 201, r.text
        with s.client(r.json()["key"]) as admin:
            r = admin.post("/v1/tenants/demo/logs/events/public", json={"public": True})
            assert r.status_code == 200, r.text
        r = anon.get("/logs/demo/events/checkpoint")
        assert r.status_code == 200 and r.text.split("\n")[1] == "1", r.text
        assert anon.get("/logs/demo/events/tile/0/000.p/1").status_code == 200
        assert anon.get("/v1/logs/demo/events/checkpoint").status_code == 401  # the API: a key


def test_a_worker_gets_every_setting_serve_checked(tmp_path: Path) -> None:
    """``to_env`` and ``from_env`` carry every setting a worker uses, unchanged
    (the example config with everything switched on)."""
    text = (ROOT / "deploy" / "ironlog.toml").read_text()
    full = tmp_path / "full.toml"
    full.write_text(re.sub(r"^#(?=\w+ = |\[\[)", "", text, flags=re.M))
    cfg = ServeConfig.load(full)
    cfg.add_witness_allow(["10.0.0.0/8"])
    assert cfg.listen and cfg.rate_burst and cfg.tls_cert
    env = cfg.to_env(tmp_path / "data")
    assert set(env) == {DATA_ENV} | {v.name for v in ENV.values()}
    assert env[DATA_ENV] == str((tmp_path / "data").resolve())
    back = ServeConfig.from_env(env)
    for name in ENV:
        assert getattr(back, name) == getattr(cfg, name), name
    # What a worker does not read from the environment is what uvicorn's parent uses.
    assert {f.name for f in fields(ServeConfig)} - set(ENV) == {
        "host",
        "port",
        "workers",
        "tls_cert",
        "tls_key",
    }
    # No burst is carried as none.
    assert ServeConfig.from_env(ServeConfig().to_env(tmp_path)).rate_burst is None


def test_the_documented_environment_is_what_serve_reads() -> None:
    """docs/api.md and deploy/ironlog.toml name the variables ``serve`` reads."""
    wanted = {ENV[s].name for s in OPERATOR_ENV}
    api = (ROOT / "docs" / "api.md").read_text()
    documented = re.search(r"then the\s+environment \(([^)]*)\)", api)
    assert documented, "docs/api.md lists the environment variables of serve"
    assert set(re.findall(r"IRONLOG_\w+", documented.group(1))) == wanted
    example = (ROOT / "deploy" / "ironlog.toml").read_text().split("\n\n")[0]
    assert set(re.findall(r"IRONLOG_\w+", example)) == wanted | {DATA_ENV}
