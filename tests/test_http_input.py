"""What the HTTP API does with hostile or malformed input (issue 9, items 5, 8, 12, 18, 19)."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ironlog.client import Client
from tests.conftest import BIN
from tests.server import Server, _free_port, run_server

T = "hin"  # the tenant these tests use
free_port = _free_port


def cli(
    data: Path, *args: str, stdin: bytes = b"", ok: bool = True
) -> subprocess.CompletedProcess[str]:
    p = subprocess.run(
        [str(BIN / "ironlog"), "--data", str(data), *args],
        input=stdin.decode(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (p.returncode == 0) == ok, (args, p.stdout, p.stderr)
    assert "Traceback" not in p.stderr
    return p


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with run_server(tmp_path_factory.mktemp("hin") / "data") as s:
        yield s


@pytest.fixture(scope="module")
def admin(server: Server) -> str:
    """An admin key of tenant ``hin``, which has logs ``a`` and ``b`` (public)."""
    with server.client(server.operator) as op:
        assert op.post("/v1/tenants", json={"name": T}).status_code == 201
        r = op.post(f"/v1/tenants/{T}/keys", json={"scopes": "admin", "name": "adm"})
        key = str(r.json()["key"])
    with server.client(key) as c:
        assert c.post(f"/v1/tenants/{T}/logs", json={"name": "a"}).status_code == 201
        r = c.post(f"/v1/tenants/{T}/logs", json={"name": "b", "public": True})
        assert r.status_code == 201
        for log in ("a", "b"):
            for i in range(3):
                assert c.post(f"/v1/logs/{T}/{log}/entries", json={"n": i}).status_code == 201
    return key


def _err(r: httpx.Response, status: int, code: str | None = None) -> str:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    if code:
        assert body["error"]["code"] == code, body
    return str(body["error"]["message"])


def _size(c: httpx.Client, log: str) -> int:
    r = c.get(f"/v1/logs/{T}/{log}")
    assert r.status_code == 200, r.text
    return int(r.json()["size"])


# --- item 8: every parameter is validated before anything is appended ---------------

BAD_APPEND_PARAMS: list[dict[str, Any]] = [
    {"witnessed": "true", "witness_timeout": "0"},
    {"witnessed": "true", "witness_timeout": "61"},
    {"witnessed": "true", "witness_timeout": "-1"},
    {"witnessed": "true", "witness_timeout": "nan"},
    {"witnessed": "true", "witness_timeout": "inf"},
    {"witnessed": "true", "witness_timeout": "1e999"},
    {"witnessed": "true", "witness_timeout": "9" * 5000},
    {"witnessed": "maybe"},
    {"witness_timeout": "5"},  # without witnessed=true it would be ignored
    {"witnessed": ["true", "false"]},
    {"bogus": "1"},
]


def test_bad_append_parameters_append_nothing(server: Server, admin: str) -> None:
    """For every write endpoint, each bad parameter is a 4xx and the log is unchanged."""
    with server.client(admin) as c:
        before = _size(c, "a")
        url = f"/v1/logs/{T}/a/entries"
        for params in BAD_APPEND_PARAMS:
            r = c.post(url, params=params, json={"x": 1})
            assert 400 <= r.status_code < 500, (params, r.text)
            r = c.post(
                url,
                params=params,
                content=b'{"x":1}\n{"x":2}\n',
                headers={"Content-Type": "application/x-ndjson"},
            )
            assert 400 <= r.status_code < 500, (params, r.text)
            r = c.post(
                "/v1/logs",
                params=params,
                json={"resourceLogs": []},
                headers={"X-Ironlog-Log": "a"},
            )
            assert 400 <= r.status_code < 500, (params, r.text)
        bad_headers: list[dict[str, str]] = [
            {"Idempotency-Key": "k" * 256},
            {"Content-Type": "text/plain"},
        ]
        for headers in bad_headers:
            headers = {"Content-Type": "application/json", **headers}
            r = c.post(url, content=b'{"x":1}', headers=headers)
            assert 400 <= r.status_code < 500, (headers, r.text)
        # NDJSON batches do not wait for witnesses: refused, not ignored
        r = c.post(
            url,
            params={"witnessed": "true"},
            content=b'{"x":1}\n',
            headers={"Content-Type": "application/x-ndjson"},
        )
        _err(r, 400, "invalid_request")
        assert _size(c, "a") == before
        # the corrected retry stores the entry once
        r = c.post(url, params={"witnessed": "true", "witness_timeout": "0.1"}, json={"x": 1})
        assert r.status_code == 201, r.text
        assert _size(c, "a") == before + 1


def test_bad_rotation_parameter_issues_no_key(server: Server, admin: str) -> None:
    with server.client(admin) as c:
        keys = c.get(f"/v1/tenants/{T}/keys").json()["keys"]
        key_id = next(k["id"] for k in keys if k["name"] == "adm")
        for bad in (-1, 10**12):
            r = c.post(f"/v1/tenants/{T}/keys/{key_id}/rotate", json={"old_expires_in": bad})
            _err(r, 400, "invalid_request")
        assert len(c.get(f"/v1/tenants/{T}/keys").json()["keys"]) == len(keys)


# --- item 12: numbers are bounded before conversion; no path makes a 5xx -------------

HUGE = "9" * 5000


def test_huge_numbers_anywhere_are_4xx(server: Server, admin: str) -> None:
    deep = "/".join(["x999"] * 1500)
    with server.client(admin) as c, server.client() as anon:
        for client, path, params in [
            (anon, f"/logs/{T}/b/tile/0/{deep}/999", {}),
            (anon, f"/logs/{T}/b/tile/{HUGE}/000", {}),
            (anon, f"/logs/{T}/b/tile/0/000.p/{HUGE}", {}),
            (anon, f"/logs/{T}/b/tile/entries/{deep}/999.p/{HUGE}", {}),
            (c, f"/v1/logs/{T}/a/entries/{HUGE}", {}),
            (c, f"/v1/logs/{T}/a/entries/0", {"size": HUGE}),
            (c, f"/v1/logs/{T}/a/entries", {"from_index": HUGE}),
            (c, f"/v1/logs/{T}/a/entries", {"limit": HUGE}),
            (c, f"/v1/logs/{T}/a/entries", {"since": HUGE + "d"}),
            (c, f"/v1/logs/{T}/a/entries", {"until": HUGE + "s"}),
            (c, f"/v1/logs/{T}/a/proof/inclusion", {"index": HUGE}),
            (c, f"/v1/logs/{T}/a/proof/consistency", {"from_size": "1", "to_size": HUGE}),
        ]:
            r = client.get(path, params=params)
            assert 400 <= r.status_code < 500, (path[:80], params.keys(), r.text[:200])
            assert len(r.content) < 2000  # the error does not echo the input back
        r = c.post(f"/v1/tenants/{T}/logs", json={"name": "dur", "durability": "interval:" + HUGE})
        _err(r, 400, "invalid_request")
        r = c.post(f"/v1/tenants/{T}/logs", json={"name": "dur", "durability": "interval:²"})
        _err(r, 400, "invalid_request")


_NUMBER = st.one_of(
    st.integers(4000, 6000).map(lambda n: "9" * n),  # past Python's int-conversion limit
    st.from_regex(r"\A[0-9]{1,40}\Z"),
    st.sampled_from(["0", "000", "001", "255", "256", "63", "64", "-1", "+1", "0x10", "1e9", "²"]),
)
_SEGMENT = st.one_of(
    _NUMBER,
    _NUMBER.map(lambda n: "x" + n),
    _NUMBER.map(lambda n: n + ".p"),
    st.sampled_from(["entries", "x999", ".p", ""]),
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=12),
)


@st.composite
def _tile_paths(draw: st.DrawFn) -> str:
    """Mostly well-formed tile paths with odd numbers in them, sometimes anything."""
    if draw(st.integers(0, 3)) == 0:
        return "/".join(quote(s, safe="") for s in draw(st.lists(_SEGMENT, max_size=9)))
    level = draw(st.one_of(_NUMBER, st.just("entries")))
    n = draw(st.sampled_from([0, 1, 2, 6, 7, 1500]))  # 1,500 groups: 4,503 digits
    index = [f"x{draw(st.integers(0, 999)):03d}"] * n
    index.append(draw(st.one_of(st.integers(0, 999).map("{:03d}".format), _SEGMENT)))
    width = draw(st.one_of(st.none(), _NUMBER))
    tail = "" if width is None else f".p/{width}"
    return f"{level}/{'/'.join(quote(s, safe='') for s in index)}{tail}"


@pytest.fixture(scope="module")
def clients(server: Server, admin: str) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    with server.client(admin) as c, server.client() as anon:
        yield c, anon


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    kind=st.sampled_from(["tile", "tile", "entry", "inclusion", "consistency", "list"]),
    tile=_tile_paths(),
    a=_SEGMENT,
    b=_SEGMENT,
)
def test_fuzzed_paths_never_5xx(
    clients: tuple[httpx.Client, httpx.Client], kind: str, tile: str, a: str, b: str
) -> None:
    """Random segments in tile, entry and proof URLs of a public log."""
    c, anon = clients
    base = f"/v1/logs/{T}/b"
    if kind == "tile":
        r = anon.get(f"/logs/{T}/b/tile/{tile}")
    elif kind == "entry":
        r = c.get(f"{base}/entries/{quote(a, safe='')}", params={"size": b})
    elif kind == "inclusion":
        r = c.get(f"{base}/proof/inclusion", params={"index": a, "size": b})
    elif kind == "consistency":
        r = c.get(f"{base}/proof/consistency", params={"from_size": a, "to_size": b})
    else:
        r = c.get(f"{base}/entries", params={"from_index": a, "since": b + "d"})
    assert r.status_code < 500, (kind, tile[:100], a[:100], b[:100], r.status_code, r.text[:300])


# --- item 19: a key given twice in one object is refused, wherever JSON enters -------

DUPLICATES = [
    b'{"a":1,"a":2}',
    b'{"actor":"alice","actor":"mallory"}',
    b'{"x":{"a" :1,"a":2}}',  # nested, with a space before the colon
    b'{"x":[{"b":1},{"c":[{"a":1,"a":2}]}]}',  # deep in an array
    b'{"\\u0061":1,"a":2}',  # the same key, escaped
    b'{"s":"\\":","a":1,"a":"\\u0022:"}',  # strings that look like keys
    b'{"a":1,\n"a"\t:\r2}',
]
NOT_DUPLICATES = [
    b'{"a":"\\":","b":"x\\" : y","c":{"a":1}}',
    b'{"a" : {"a" : [{"a":1}]}, "b":"\\u0022:"}',
]


def _one_line(raw: bytes) -> bytes:
    return raw.replace(b"\n", b" ").replace(b"\r", b" ")


def test_duplicate_keys_are_refused_over_http(server: Server, admin: str) -> None:
    with server.client(admin) as c:
        url = f"/v1/logs/{T}/a/entries"
        before = _size(c, "a")
        for raw in DUPLICATES:
            r = c.post(url, content=raw, headers={"Content-Type": "application/json"})
            assert "duplicate key" in _err(r, 400, "invalid_entry"), raw
            body = b'{"ok":1}\n' + _one_line(raw) + b"\n"
            r = c.post(url, content=body, headers={"Content-Type": "application/x-ndjson"})
            msg = _err(r, 400, "invalid_entry")
            assert "line 2" in msg and "duplicate key" in msg, msg
        assert 'duplicate key "a"' in _err(
            c.post(url, content=DUPLICATES[0], headers={"Content-Type": "application/json"}), 400
        )
        # an object spread over two NDJSON lines names the line (it was a 500)
        r = c.post(url, content=DUPLICATES[-1], headers={"Content-Type": "application/x-ndjson"})
        assert "line 1" in _err(r, 400, "invalid_entry")
        assert _size(c, "a") == before
        for raw in NOT_DUPLICATES:
            r = c.post(url, content=raw, headers={"Content-Type": "application/json"})
            assert r.status_code == 201, r.text


def test_each_ndjson_line_is_exactly_one_event(server: Server, admin: str) -> None:
    """Two values on one line used to shift the batch: the last line was lost."""
    with server.client(admin) as c:
        before = _size(c, "a")
        url = f"/v1/logs/{T}/a/entries"
        for body in (b'{"a":1} {"b":2}\n{"c":3}\n', b'{"a":1,\n"b":2}\n', b'{"a":1}{"b":2}\n'):
            r = c.post(url, content=body, headers={"Content-Type": "application/x-ndjson"})
            assert "line 1" in _err(r, 400, "invalid_entry"), body
        assert _size(c, "a") == before


def test_duplicate_keys_are_refused_over_otlp(server: Server, admin: str) -> None:
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    with server.client(admin) as c:
        before = _size(c, "a")
        hdr = {"X-Ironlog-Log": "a", "Content-Type": "application/json"}
        rec = '{"body":{"stringValue":"x"},"body":{"stringValue":"y"}}'
        raw = '{"resourceLogs":[{"scopeLogs":[{"logRecords":[' + rec + "]}]}]}"
        r = c.post("/v1/logs", content=raw.encode(), headers=hdr)
        assert r.status_code == 400 and "duplicate key" in r.text, r.text
        attrs = '{"key":"actor","value":{"stringValue":"alice"}}'
        attrs += ',{"key":"actor","value":{"stringValue":"mallory"}}'
        raw = '{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"attributes":[' + attrs + "]}]}]}]}"
        r = c.post("/v1/logs", content=raw.encode(), headers=hdr)
        assert r.status_code == 400 and "duplicate attribute key" in r.text, r.text
        req = ExportLogsServiceRequest()
        lr = req.resource_logs.add().scope_logs.add().log_records.add()
        lr.attributes.add(key="actor", value={"string_value": "alice"})
        lr.attributes.add(key="actor", value={"string_value": "mallory"})
        hdr["Content-Type"] = "application/x-protobuf"
        r = c.post("/v1/logs", content=req.SerializeToString(), headers=hdr)
        assert r.status_code == 400, r.text
        assert _size(c, "a") == before


def test_duplicate_keys_are_refused_by_cli_and_ndjson_listener(tmp_path: Path) -> None:
    data = tmp_path / "data"
    cli(data, "init")
    cli(data, "log", "create", "dup/nd")
    for raw in DUPLICATES:
        p = cli(data, "append", "dup/nd", stdin=_one_line(raw) + b"\n", ok=False)
        assert "duplicate key" in p.stderr, p.stderr
    port = free_port()
    with run_server(data, "--listen", f"ndjson-tcp:127.0.0.1:{port}=dup/nd") as s:
        for raw in (b'{"n":1}', b'{"n":2,"n" :3}', b'{"n":4}'):
            with socket.create_connection(("127.0.0.1", port)) as sock:
                sock.sendall(raw + b"\n")
                sock.shutdown(socket.SHUT_WR)
                sock.settimeout(10)
                while sock.recv(100):
                    pass
        deadline = time.monotonic() + 10
        with s.client(s.operator) as op:
            while time.monotonic() < deadline:
                text = op.get("/metrics").text
                if "ironlog_listener_messages_total" in text and "connection_closed" in text:
                    break
                time.sleep(0.1)
    assert "duplicate key" in s.output
    out = cli(data, "query", "dup/nd", "--format", "ndjson").stdout
    assert [json.loads(line)["entry"]["n"] for line in out.splitlines()] == [1, 4]


# --- item 5: a key bound to a log uses that log only; data files are private ----------


def test_a_key_bound_to_a_log_uses_no_other(server: Server, admin: str) -> None:
    with server.client(admin) as c:
        scopes = "append,read,admin"
        r = c.post(f"/v1/tenants/{T}/keys", json={"scopes": scopes, "log": "a", "name": "bound"})
        assert r.status_code == 201, r.text
        bound = str(r.json()["key"])
        size_b = _size(c, "b")
        assert c.post(f"/v1/tenants/{T}/logs", json={"name": "priv"}).status_code == 201
        assert c.post(f"/v1/logs/{T}/priv/entries", json={"x": 1}).status_code == 201
    other = f"/v1/logs/{T}/b"
    ndjson = {"Content-Type": "application/x-ndjson"}
    with server.client(bound) as c:
        # its own log works everywhere
        assert c.post(f"/v1/logs/{T}/a/entries", json={"ok": 1}).status_code == 201
        assert c.get(f"/v1/logs/{T}/a/entries").status_code == 200
        assert c.get(f"/logs/{T}/a/tile/0/000.p/1").status_code == 200
        assert [x["name"] for x in c.get(f"/v1/tenants/{T}/logs").json()["logs"]] == ["a"]
        assert [x["log"] for x in c.get("/v1/integrity").json()["logs"]] == [f"{T}/a"]
        # every endpoint and door that selects another log refuses
        refused = [
            c.get(other),
            c.post(f"{other}/entries", json={"x": 1}),
            c.post(f"{other}/entries", content=b'{"x":1}\n', headers=ndjson),
            c.get(f"{other}/entries"),
            c.get(f"{other}/entries/0"),
            c.get(f"{other}/checkpoint"),
            c.get(f"{other}/proof/inclusion", params={"index": 0}),
            c.get(f"{other}/proof/consistency", params={"from_size": 1}),
            c.get(f"/v1/logs/{T}/nosuch"),
            c.get(f"/logs/{T}/priv/checkpoint"),  # tlog-tiles of a private log
            c.get(f"/logs/{T}/priv/tile/0/000.p/1"),
            c.get(f"/logs/{T}/priv/tile/entries/000.p/1"),
            c.post(f"/v1/tenants/{T}/logs/b/public", json={"public": False}),
            c.put(f"/v1/tenants/{T}/logs/b/witnesses", json={"witnesses": []}),
            # nor may it manage the tenant (a new unbound key would escape the binding)
            c.post(f"/v1/tenants/{T}/keys", json={"scopes": "append"}),
            c.get(f"/v1/tenants/{T}/keys"),
            c.post(f"/v1/tenants/{T}/logs", json={"name": "c"}),
            c.get(f"/v1/tenants/{T}/signing-keys"),
        ]
        for r in refused:
            assert _err(r, 403, "forbidden") == "this key is bound to log 'a'", r.request.url
        for log in ("b", f"{T}/b"):
            hdr = {"X-Ironlog-Log": log, "Content-Type": "application/json"}
            r = c.post("/v1/logs", json={"resourceLogs": [_otlp_record()]}, headers=hdr)
            assert r.status_code == 403, r.text
        hdr = {"Content-Type": "application/json"}  # no header: the key's own log
        r = c.post("/v1/logs", json={"resourceLogs": [_otlp_record()]}, headers=hdr)
        assert r.status_code == 200, r.text
    with server.client(admin) as c:
        assert _size(c, "b") == size_b
        assert c.get(f"/v1/logs/{T}/b").json()["public"] is True


def _otlp_record() -> dict[str, Any]:
    return {"scopeLogs": [{"logRecords": [{"body": {"stringValue": "otlp"}}]}]}


def test_every_file_in_the_data_directory_is_private(tmp_path: Path) -> None:
    """After a run that appended, served metrics (two workers), verified and
    witnessed: files 0600, directories 0700, even with a permissive umask."""
    from ironlog.tools.witness_server import keygen

    data = tmp_path / "data"
    cli(data, "init")
    cli(data, "log", "create", "fm/w")
    cli(data, "tenant", "witnessing", "fm", "--enable")
    wkey = keygen("witness.test/fm", tmp_path / "w.key")
    os.environ["IRONLOG_WITNESS_ALLOW"] = "127.0.0.0/8"  # for the CLI and the server
    try:
        cli(
            data,
            "log",
            "witnesses",
            "fm/w",
            "--witness",
            f"{wkey.vkey()}=http://127.0.0.1:{free_port()}",
        )
    finally:
        del os.environ["IRONLOG_WITNESS_ALLOW"]
    served = run_server(data, "--workers", "2", "--witness-allow", "127.0.0.0/8")
    with served as s, s.client(s.operator) as op:
        r = op.post("/v1/tenants/fm/keys", json={"scopes": "append,read"})
        key = r.json()["key"]
        with s.client(key) as c:
            for i in range(20):
                assert c.post("/v1/logs/fm/w/entries", json={"i": i}).status_code == 201
            assert c.get("/v1/logs/fm/w/entries").status_code == 200
        assert "ironlog_appended_entries_total" in op.get("/metrics").text
        assert op.get("/readyz").status_code == 200
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            report = op.get("/v1/integrity").json()["logs"]
            status = op.get("/v1/tenants/fm/logs").json()["logs"][0].get("witness_status")
            if all(x["verified_size"] == 20 for x in report if x["log"] == "fm/w") and status:
                break
            time.sleep(0.2)
        assert (data / ".metrics").is_dir()
        modes = _modes(data)  # while running: -wal and -shm files exist
    modes.update(_modes(data))
    assert any(p.endswith("-wal") for p in modes) and any(".metrics/" in p for p in modes)
    wrong = {p: oct(m) for p, m in modes.items() if m != (0o700 if p.endswith("/") else 0o600)}
    assert not wrong, wrong


def _modes(root: Path) -> dict[str, int]:
    out = {}
    for p in [root, *root.rglob("*")]:
        try:
            st = p.lstat()
        except FileNotFoundError:  # a file the running server just removed
            continue
        name = str(p.relative_to(root)) + ("/" if stat.S_ISDIR(st.st_mode) else "")
        out[name] = st.st_mode & 0o777
    return out


# --- item 18: API shapes, opaque cursors, unknown parameters --------------------------


def test_list_fields_take_arrays_and_strings(server: Server, admin: str) -> None:
    with server.client(admin) as c:
        for scopes in (["append", "read"], "append,read"):
            r = c.post(f"/v1/tenants/{T}/keys", json={"scopes": scopes})
            assert r.status_code == 201 and r.json()["scopes"] == ["append", "read"], r.text
        _err(c.post(f"/v1/tenants/{T}/keys", json={"scopes": ["append", "root"]}), 400)
        _err(c.post(f"/v1/tenants/{T}/keys", json={"scopes": []}), 400)
        _err(c.post(f"/v1/tenants/{T}/keys", json={"scopes": [1]}), 400)
        for name, indexes in (("ix1", ["actor", "outcome"]), ("ix2", "actor,outcome")):
            r = c.post(f"/v1/tenants/{T}/logs", json={"name": name, "indexes": indexes})
            assert r.status_code == 201 and r.json()["indexes"] == ["actor", "outcome"], r.text
        r = c.post(f"/v1/tenants/{T}/logs", json={"name": "ix3", "indexes": ["actor", "nope"]})
        _err(r, 400, "invalid_request")


def test_cursors_carry_the_query_and_cannot_be_forged(server: Server, admin: str) -> None:
    with server.client(admin) as c:
        assert c.post(f"/v1/tenants/{T}/logs", json={"name": "pages"}).status_code == 201
        url = f"/v1/logs/{T}/pages/entries"
        body = b"".join(
            b'{"actor":"%s","n":%d}\n' % (b"ab"[i % 2 : i % 2 + 1], i) for i in range(30)
        )
        r = c.post(url, content=body, headers={"Content-Type": "application/x-ndjson"})
        assert r.status_code == 201, r.text
        seen: list[int] = []
        params: dict[str, Any] = {"actor": "a", "limit": 4}
        while True:
            page = c.get(url, params=params).json()
            seen += [json.loads(e["entry"])["n"] for e in page["entries"]]
            if page["next_cursor"] is None:
                break
            assert isinstance(page["next_cursor"], str)
            params = {"cursor": page["next_cursor"], "limit": 4}
        assert seen == list(range(0, 30, 2))  # the filter held on every page
    with Client(server.url, admin, trust_on_first_use=True) as sdk:
        got = [e.event["n"] for e in sdk.query(f"{T}/pages", page_size=4, actor="b")]
        assert got == list(range(1, 30, 2))
    with server.client(admin) as c:
        first = c.get(url, params={"actor": "a", "limit": 4}).json()["next_cursor"]
        # filters next to a cursor are refused, not ignored
        r = c.get(url, params={"cursor": first, "actor": "b"})
        assert "cursor" in _err(r, 400, "invalid_request")
        r = c.get(url, params={"cursor": first, "from_index": 0})
        _err(r, 400, "invalid_request")
        # anything not issued by the service, or issued for another log, is invalid_cursor
        tampered = first[:-3] + ("AAA" if first[-3:] != "AAA" else "BBB")
        other = c.get(f"/v1/logs/{T}/a/entries", params={"limit": 1}).json()["next_cursor"]
        for bad in ("0", "12", tampered, "!!", "x" * 5000, other, first + "=", ""):
            r = c.get(url, params={"cursor": bad})
            _err(r, 400, "invalid_cursor")


def test_unknown_query_parameters_are_refused_everywhere(server: Server, admin: str) -> None:
    log = f"/v1/logs/{T}/a"
    with server.client(admin) as c, server.client(server.operator) as op:
        gets = [
            f"{log}",
            f"{log}/entries",
            f"{log}/entries/0",
            f"{log}/checkpoint",
            f"{log}/proof/inclusion?index=0",
            f"{log}/proof/consistency?from_size=1",
            f"/logs/{T}/a/checkpoint",
            f"/logs/{T}/a/tile/0/000.p/1",
            f"/v1/tenants/{T}/logs",
            f"/v1/tenants/{T}/keys",
            f"/v1/tenants/{T}/signing-keys",
            "/v1/integrity",
        ]
        for path in gets:
            sep = "&" if "?" in path else "?"
            assert c.get(path).status_code == 200, path
            assert c.options(path + sep + "x=1").status_code == 204, path  # OPTIONS takes any
            r = c.get(path + sep + "actr=alice")
            assert "unknown query parameter 'actr'" in _err(r, 400, "invalid_request"), path
        for path in ("/v1/tenants", "/metrics"):
            assert op.get(path).status_code == 200
            _err(op.get(path, params={"x": "1"}), 400, "invalid_request")
        before = _size(c, "a")
        r = c.post(f"/v1/tenants/{T}/logs", params={"dry_run": "1"}, json={"name": "unk"})
        _err(r, 400, "invalid_request")
        r = op.post(f"/v1/integrity/{T}/a/clear", params={"forse": "true"})
        _err(r, 400, "invalid_request")
        assert _size(c, "a") == before
        names = [x["name"] for x in c.get(f"/v1/tenants/{T}/logs").json()["logs"]]
        assert "unk" not in names
