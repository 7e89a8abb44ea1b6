"""The logging handler and structlog processor against a real server that stops
and comes back: every record arrives exactly once."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest
import structlog

from ironlog.client import Client, LogHandler, StructlogProcessor
from tests.server import run_server
from tests.test_client import tenant_log


def _seqs(url: str, key: str, log: str) -> list[int]:
    with Client(url, key, trust_on_first_use=True) as c:
        return [int(e.event["seq"]) for e in c.query(log, page_size=1000)]


def test_handler_survives_a_server_outage_exactly_once(tmp_path: Path) -> None:
    data, spool = tmp_path / "data", tmp_path / "h.spool"
    logger = logging.getLogger("ironlog.test.handler")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    with run_server(data) as s:
        key = tenant_log(s, "h")
        port = int(s.url.rsplit(":", 1)[1])
        handler = LogHandler(
            s.url, key, "h/app", spool_path=spool, flush_interval=0.05, batch_size=40, timeout=2
        )
        logger.addHandler(handler)
        for i in range(300):
            logger.info("record %d", i, extra={"seq": i, "actor": "svc"})
        assert handler.shipper.flush(10)
        for i in range(300, 400):  # some of these are in flight when the server stops
            logger.info("record %d", i, extra={"seq": i})
    try:
        for i in range(400, 700):
            logger.info("record %d", i, extra={"seq": i})
        try:
            raise ValueError("boom")
        except ValueError:
            logger.exception("failed", extra={"seq": 700})
        assert not handler.shipper.flush(3)  # unreachable: kept in the spool
        assert spool.stat().st_size > 0 and handler.shipper.spooled >= 300
        with run_server(data, port=port) as s2:
            for i in range(701, 800):
                logger.info("record %d", i, extra={"seq": i})
            handler.close()  # flushes, replaying the spool
            seqs = _seqs(s2.url, key, "h/app")
            assert sorted(seqs) == list(range(800))  # all of them, none twice
            assert seqs[:300] == list(range(300))  # in order while the server was up
            with Client(s2.url, key, trust_on_first_use=True) as c:
                events = {e.event["seq"]: e.event for e in c.query("h/app", page_size=1000)}
            assert events[5]["message"] == "record 5" and events[5]["actor"] == "svc"
            assert events[5]["level"] == "INFO" and events[5]["logger"] == "ironlog.test.handler"
            assert "ValueError: boom" in events[700]["exception"]
            assert spool.stat().st_size == 0
    finally:
        logger.removeHandler(handler)
        handler.close()


def test_spool_replays_in_a_new_process_without_duplicates(tmp_path: Path) -> None:
    """Records spooled while the service was down are sent by the next handler
    using that spool, under their original idempotency keys."""
    data, spool = tmp_path / "data", tmp_path / "p.spool"
    with run_server(data) as s:
        key = tenant_log(s, "p")
        port = int(s.url.rsplit(":", 1)[1])
    first = LogHandler(f"http://127.0.0.1:{port}", key, "p/app", spool_path=spool, timeout=1)
    log = logging.getLogger("ironlog.test.spool")
    log.propagate = False
    log.addHandler(first)
    for i in range(50):
        log.warning("r", extra={"seq": i})
    log.removeHandler(first)
    first.close()  # cannot reach the service: everything stays in the spool
    spooled = spool.read_text()
    assert spooled.count("\n") >= 1
    with run_server(data, port=port) as s:
        # Replay the same spool twice (as if the first answer had been lost).
        copy = tmp_path / "copy.spool"
        copy.write_text(spooled)
        for path in (spool, copy):
            h = LogHandler(s.url, key, "p/app", spool_path=path, timeout=5)
            assert h.shipper.flush(10)
            h.close()
        assert sorted(_seqs(s.url, key, "p/app")) == list(range(50))


def test_structlog_processor(tmp_path: Path) -> None:
    with run_server(tmp_path / "data") as s:
        key = tenant_log(s, "st")
        proc = StructlogProcessor(s.url, key, "st/app", spool_path=tmp_path / "s.spool")
        structlog.configure(
            processors=[
                structlog.processors.add_log_level,
                proc,
                structlog.processors.KeyValueRenderer(),
            ],
            logger_factory=structlog.ReturnLoggerFactory(),
            cache_logger_on_first_use=False,
        )
        try:
            slog = structlog.get_logger()
            out = slog.info("payment", seq=0, actor="alice", amount=12.5, source="x")
            assert "payment" in out  # passed on down the chain
            for i in range(1, 20):
                slog.warning("retry", seq=i)
            assert proc.flush(10)
        finally:
            structlog.reset_defaults()
            proc.close()
        with Client(s.url, key, trust_on_first_use=True) as c:
            evs = [e.event for e in c.query("st/app")]
        assert [e["seq"] for e in evs] == list(range(20))
        assert evs[0]["message"] == "payment" and evs[0]["level"] == "info"
        assert evs[0]["actor"] == "alice" and evs[0]["x_source"] == "x"
        assert evs[0]["source"] == "http"
        assert httpx.get(s.url + "/healthz").status_code == 200


_ROOT_LOGGER_APP = """
import logging, sys, time
from ironlog.client import LogHandler

url, key, spool = sys.argv[1:4]
logging.basicConfig(level=logging.INFO)  # httpx logs every request at INFO
handler = LogHandler(url, key, "loop/app", spool_path=spool, flush_interval=0.05, batch_size=5)
logging.getLogger().addHandler(handler)
for i in range(20):
    logging.getLogger("app").info("record %d", i, extra={"seq": i})
    time.sleep(0.02)
assert handler.shipper.flush(10)
time.sleep(0.5)  # a few more delivery cycles: any self-caused record would be sent now
"""


def test_root_logger_handler_ships_nothing_of_its_own_delivery(tmp_path: Path) -> None:
    """On the root logger with basicConfig(INFO), the handler must not ship
    httpx's "HTTP Request: POST ..." records (each batch would make more)."""
    import subprocess
    import sys

    data = tmp_path / "data"
    with run_server(data) as s:
        key = tenant_log(s, "loop")
        p = subprocess.run(
            [sys.executable, "-c", _ROOT_LOGGER_APP, s.url, key, str(tmp_path / "l.spool")],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert p.returncode == 0, p.stderr
        assert "HTTP Request: POST" in p.stderr  # basicConfig still shows them on stderr
        with Client(s.url, key, trust_on_first_use=True) as c:
            events = [e.event for e in c.query("loop/app", page_size=1000)]
        assert [e.get("seq") for e in events] == list(range(20)), [
            e["message"] for e in events if "seq" not in e
        ][:3]


def test_outage_is_reported_once_and_recovery_too(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """An unreachable service is said once on stderr (not once per batch), and
    so is its return; the spool is 0600 in a 0700 directory the handler made."""
    data = tmp_path / "data"
    spool = tmp_path / "state" / "ironlog" / "o.spool"
    with run_server(data) as s:
        key = tenant_log(s, "o")
        port = int(s.url.rsplit(":", 1)[1])
    logger = logging.getLogger("ironlog.test.outage")
    logger.propagate = False
    handler = LogHandler(
        f"http://127.0.0.1:{port}", key, "o/app", spool_path=spool, flush_interval=0.05, timeout=1
    )
    logger.addHandler(handler)
    try:
        for round_ in range(3):
            for i in range(10):
                logger.warning("r", extra={"seq": round_ * 10 + i})
            assert not handler.shipper.flush(1)  # each flush tries again, and fails
        assert not handler.shipper.flush(1)
        err = capfd.readouterr().err
        assert err.count("cannot deliver to") == 1, err
        assert str(spool) in err and key not in err
        assert (spool.stat().st_mode & 0o777) == 0o600
        for d in (spool.parent, spool.parent.parent):
            assert (d.stat().st_mode & 0o777) == 0o700, d
        with run_server(data, port=port) as s2:
            assert handler.shipper.flush(10)
            err = capfd.readouterr().err
            assert err.count("again; spooled records follow") == 1, err
            assert "cannot deliver" not in err
            assert sorted(_seqs(s2.url, key, "o/app")) == list(range(30))
    finally:
        logger.removeHandler(handler)
        handler.close()


_CLOSED_APP = """
import logging, sys, time
from ironlog.client import LogHandler

url, key, spool = sys.argv[1:4]
handler = LogHandler(url, key, "closed/app", spool_path=spool, flush_interval=0.05)
logging.getLogger().addHandler(handler)
logging.getLogger("app").warning("before", extra={"seq": 0})
handler.close()  # explicitly, as a program does at the end of its work
logging.getLogger("app").warning("after", extra={"seq": 1})  # still on the root logger
handler.close()  # twice is harmless
start = time.monotonic()
logging.shutdown()  # what the interpreter does at exit: flush() and close() again
print(f"shutdown {time.monotonic() - start:.1f}s")
"""


def test_a_closed_handler_neither_hangs_the_exit_nor_loses_records(tmp_path: Path) -> None:
    """After close(), logging.shutdown() at exit flushes the handler again: it
    must return at once (it waited for the stopped shipper thread, 10 s per
    call), and a record logged after close() is kept in the spool, not dropped."""
    import subprocess
    import sys
    import time

    data, spool = tmp_path / "data", tmp_path / "c.spool"
    with run_server(data) as s:
        key = tenant_log(s, "closed")
        start = time.monotonic()
        p = subprocess.run(
            [sys.executable, "-c", _CLOSED_APP, s.url, key, str(spool)],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        took = time.monotonic() - start
        assert p.returncode == 0 and "shutdown 0.0s" in p.stdout, (p.stdout, p.stderr)
        assert took < 8, took
        assert _seqs(s.url, key, "closed/app") == [0]
        h = LogHandler(s.url, key, "closed/app", spool_path=spool)  # the next run sends it
        assert h.shipper.flush(10)
        h.close()
        assert _seqs(s.url, key, "closed/app") == [0, 1]


def test_a_log_that_is_not_tenant_slash_log_is_refused_at_once(tmp_path: Path) -> None:
    """LogHandler(url, key, "demo-events") raised nothing and then failed every
    delivery (spooling each record); now the constructor says what is wrong."""
    from ironlog.errors import InvalidRequestError

    for bad in ("demo-events", "demo/", "/events", "demo/events/x"):
        with pytest.raises(InvalidRequestError, match="a log is named TENANT/LOG"):
            LogHandler("http://127.0.0.1:1", "ilk_x", bad, spool_path=tmp_path / "s")
        with pytest.raises(InvalidRequestError, match="a log is named TENANT/LOG"):
            StructlogProcessor("http://127.0.0.1:1", "ilk_x", bad, spool_path=tmp_path / "s")
    assert not (tmp_path / "s").exists()
