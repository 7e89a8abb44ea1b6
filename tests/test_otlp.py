"""OTLP/HTTP logs: the OpenTelemetry Python SDK's exporter sending real records,
and the status codes of the OTLP specification for what goes wrong."""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Iterator

import httpx
import pytest
from google.rpc.status_pb2 import Status
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource

from ironlog.client import Client
from tests.server import Server, run_server
from tests.test_client import tenant_log


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with run_server(tmp_path_factory.mktemp("otlp") / "data") as s:
        yield s


def _otlp_key(s: Server, tenant: str, log: str | None = "app", scopes: str = "append") -> str:
    admin = tenant_log(s, tenant)
    body: dict[str, object] = {"scopes": scopes, "log": log}
    with httpx.Client(base_url=s.url, headers={"Authorization": f"Bearer {admin}"}) as c:
        r = c.post(f"/v1/tenants/{tenant}/keys", json=body)
        assert r.status_code == 201, r.text
        assert r.json()["log"] == log
        return str(r.json()["key"])


def _entries(s: Server, tenant: str) -> list[dict[str, object]]:
    key = tenant_log(s, tenant)
    with Client(s.url, key, trust_on_first_use=True) as c:
        return [e.event for e in c.query(f"{tenant}/app", page_size=500)]


@pytest.mark.parametrize("compression", [Compression.Gzip, Compression.NoCompression])
def test_sdk_exporter_sends_real_records(server: Server, compression: Compression) -> None:
    tenant = f"otel{compression.name.lower()}"
    key = _otlp_key(server, tenant)
    exporter = OTLPLogExporter(
        endpoint=f"{server.url}/v1/logs",
        headers={"Authorization": f"Bearer {key}"},
        compression=compression,
    )
    provider = LoggerProvider(resource=Resource.create({"service.name": "checkout"}))
    provider.add_log_record_processor(BatchLogRecordProcessor(exporter))
    otel = provider.get_logger("checkout.payments")
    try:
        for i in range(120):
            otel.emit(
                timestamp=time.time_ns(),
                severity_number=SeverityNumber.WARN,
                severity_text="WARN",
                body=f"payment {i}",
                attributes={"actor": "alice", "seq": i},
            )
        assert provider.force_flush(10_000)
    finally:
        provider.shutdown()
    got = _entries(server, tenant)
    assert [e["attributes"]["seq"] for e in got] == list(range(120))  # type: ignore[index]
    first = got[0]
    assert first["body"] == "payment 0" and first["severity"] == "WARN"
    assert first["severity_number"] == 13 and first["source"] == "otlp"
    assert first["actor"] == "alice"  # lifted for queries
    assert first["otel_resource"]["service.name"] == "checkout"  # type: ignore[index]
    assert str(first["time"]).endswith("Z")


def _request(n: int = 2, body: str = "hello", trace: bytes = b"") -> ExportLogsServiceRequest:
    req = ExportLogsServiceRequest()
    rl = req.resource_logs.add()
    rl.resource.attributes.add(key="host.name", value={"string_value": "web-1"})
    sl = rl.scope_logs.add()
    sl.scope.name = "tests"
    for i in range(n):
        rec = sl.log_records.add()
        rec.time_unix_nano = 1_764_000_000_000_000_000 + i
        rec.severity_text = "INFO"
        rec.body.string_value = body
        rec.attributes.add(key="i", value={"int_value": i})
        rec.attributes.add(key="tags", value={"array_value": {"values": [{"bool_value": True}]}})
        if trace:
            rec.trace_id = trace
            rec.span_id = trace[:8]
    return req


def test_json_encoding_partial_success_and_errors(server: Server) -> None:
    key = _otlp_key(server, "ojson")
    auth = {"Authorization": f"Bearer {key}"}
    trace = bytes(range(16))
    payload = {
        "resourceLogs": [
            {
                "resource": {"attributes": [{"key": "k", "value": {"stringValue": "v"}}]},
                "scopeLogs": [
                    {
                        "logRecords": [
                            {
                                "timeUnixNano": "1764000000000000000",
                                "severityNumber": 9,
                                "body": {"kvlistValue": {"values": []}},
                                "traceId": trace.hex(),
                                "spanId": trace[:8].hex(),
                            },
                            {"body": {"stringValue": "x" * 70_000}},  # too big to store
                        ]
                    }
                ],
            }
        ]
    }
    with httpx.Client(base_url=server.url, headers=auth) as c:
        r = c.post("/v1/logs", json=payload)
        assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
        partial = r.json()["partialSuccess"]
        assert partial["rejectedLogRecords"] == "1" and "limit" in partial["errorMessage"]
        # protobuf + gzip, answered in protobuf
        pb = gzip.compress(_request(3, trace=trace).SerializeToString())
        r = c.post(
            "/v1/logs",
            content=pb,
            headers={"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"},
        )
        assert r.status_code == 200, r.content
        resp = ExportLogsServiceResponse()
        resp.ParseFromString(r.content)
        assert not resp.HasField("partial_success")
        # malformed bodies: 400 with a google.rpc.Status in the same encoding
        r = c.post(
            "/v1/logs",
            content=b"\xff\x00garbage",
            headers={"Content-Type": "application/x-protobuf"},
        )
        assert r.status_code == 400
        st = Status()
        st.ParseFromString(r.content)
        assert st.code == 3 and st.message
        r = c.post("/v1/logs", content=b"{nope", headers={"Content-Type": "application/json"})
        assert r.status_code == 400 and json.loads(r.content)["message"]
        r = c.post(
            "/v1/logs",
            json={"resourceLogs": [{"scopeLogs": [{"logRecords": [{"traceId": "zz"}]}]}]},
        )
        assert r.status_code == 400
        r = c.post(
            "/v1/logs",
            content=b"not gzip",
            headers={"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"},
        )
        assert r.status_code == 400
        bomb = gzip.compress(b"\0" * (17 << 20))
        r = c.post(
            "/v1/logs",
            content=bomb,
            headers={"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"},
        )
        assert r.status_code == 413
        r = c.post("/v1/logs", content=b"x", headers={"Content-Type": "text/plain"})
        assert r.status_code == 415
    got = _entries(server, "ojson")
    assert len(got) == 4  # 1 JSON record + 3 protobuf records, nothing from the failures
    assert got[0]["trace_id"] == trace.hex() and got[0]["span_id"] == trace[:8].hex()
    assert got[0]["body"] == {} and got[0]["severity_number"] == 9
    assert got[1]["attributes"] == {"i": 0, "tags": [True]}
    assert got[1]["otel_resource"] == {"host.name": "web-1"}


def test_auth_and_routing(server: Server) -> None:
    pb = _request(1).SerializeToString()
    hdr = {"Content-Type": "application/x-protobuf"}
    r = httpx.post(f"{server.url}/v1/logs", content=pb, headers=hdr)
    assert r.status_code == 401
    # A key without a log: 400 unless X-Ironlog-Log names one.
    nolog = _otlp_key(server, "orouting", None)
    auth = {**hdr, "Authorization": f"Bearer {nolog}"}
    assert httpx.post(f"{server.url}/v1/logs", content=pb, headers=auth).status_code == 400
    r = httpx.post(f"{server.url}/v1/logs", content=pb, headers={**auth, "X-Ironlog-Log": "app"})
    assert r.status_code == 200
    r = httpx.post(
        f"{server.url}/v1/logs", content=pb, headers={**auth, "X-Ironlog-Log": "ojson/app"}
    )
    assert r.status_code == 404  # another tenant's log does not exist for this key
    read_only = _otlp_key(server, "oro", "app", scopes="read")
    r = httpx.post(
        f"{server.url}/v1/logs", content=pb, headers={**hdr, "Authorization": f"Bearer {read_only}"}
    )
    assert r.status_code == 403
    r = httpx.post(
        f"{server.url}/v1/logs", content=pb, headers={**hdr, "X-API-Key": server.operator}
    )
    assert r.status_code == 403
    assert len(_entries(server, "orouting")) == 1


def test_rate_limit_and_unavailable_log(tmp_path: object) -> None:
    from pathlib import Path

    tmp = Path(str(tmp_path))
    cfg = tmp / "c.toml"
    cfg.write_text("rate_limit = 1.0\nrate_burst = 2.0\n")
    with run_server(tmp / "data", "--config", str(cfg)) as s:
        key = _otlp_key(s, "orl")
        hdr = {"Content-Type": "application/x-protobuf", "Authorization": f"Bearer {key}"}
        pb = _request(1).SerializeToString()
        codes = [httpx.post(f"{s.url}/v1/logs", content=pb, headers=hdr) for _ in range(6)]
        limited = [r for r in codes if r.status_code == 429]
        assert limited and int(limited[0].headers["retry-after"]) >= 1
        st = Status()
        st.ParseFromString(limited[0].content)
        assert st.code == 8
    # A log that failed its integrity check refuses writes: 503 with Retry-After.
    import sqlite3
    import time

    db = tmp / "data" / "logs" / "orl" / "app.db"
    con = sqlite3.connect(db)
    con.execute("UPDATE entries SET data = CAST('{\"x\":1}' AS BLOB) WHERE idx = 0")
    con.commit()
    con.close()
    with run_server(tmp / "data") as s:
        deadline = time.monotonic() + 20
        while True:
            r = httpx.post(f"{s.url}/v1/logs", content=pb, headers=hdr)
            if r.status_code == 503 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert r.status_code == 503 and r.headers["retry-after"]
