"""The one suite every store driver must pass: the same operations go to each
driver and to an in-memory reference model, and every answer must agree."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ironlog.core import merkle, tiles
from ironlog.core.entry import PreparedEntry, prepare_object
from ironlog.core.note import Checkpoint, Signer
from ironlog.errors import ConflictError, NotFoundError
from ironlog.store.base import (
    ApiKeyRecord,
    Driver,
    DuplicateRequestError,
    Durability,
    IdempotentResult,
    LogInfo,
    Query,
    SigningKeyRecord,
    TenantRecord,
    parse_indexes,
)
from ironlog.store.sqlite import SqliteDriver
from tests.pg import postgres_factory

DriverFactory = Callable[[Path], Driver]
DRIVERS: dict[str, DriverFactory] = {"sqlite": SqliteDriver}

ACTORS = ["alice", "bob", None]
OUTCOMES = ["success", "failure", None]


@pytest.fixture(params=sorted([*DRIVERS, "postgres"]))
def make_driver(request: pytest.FixtureRequest) -> DriverFactory:
    if request.param == "postgres":  # one database per directory the test names
        return postgres_factory(request.getfixturevalue("postgres"))
    return DRIVERS[request.param]


def _info(name: str = "l", durability: str = "off", indexes: str = "all") -> LogInfo:
    return LogInfo(
        "t", name, f"log.example/t/{name}", Durability.parse(durability), 1, parse_indexes(indexes)
    )


def _event(i: int) -> PreparedEntry:
    obj: dict[str, object] = {"n": i, "action": "act" + str(i % 3)}
    if ACTORS[i % 3]:
        obj["actor"] = ACTORS[i % 3]
    if OUTCOMES[i % 3]:
        obj["outcome"] = OUTCOMES[i % 3]
    return prepare_object(obj, 1_000_000 + i * 1000, "test")


class Model:
    def __init__(self) -> None:
        self.entries: list[PreparedEntry] = []

    def tiles(self) -> dict[tuple[int, int], bytes]:
        tb = tiles.TileBuilder()
        out = {}
        for ref, data in tb.add([e.leaf for e in self.entries]) + tb.partials():
            out[(ref.level, ref.index)] = data
        return out

    def query(self, q: Query) -> list[int]:
        res = []
        for i, e in enumerate(self.entries):
            if i < q.from_index:
                continue
            if q.since_us is not None and e.received_us < q.since_us:
                continue
            if q.until_us is not None and e.received_us >= q.until_us:
                continue
            if any(
                getattr(q, c) is not None and getattr(q, c) != getattr(e, c)
                for c in ("actor", "action", "resource", "outcome")
            ):
                continue
            res.append(i)
        return res[: q.limit] if q.limit is not None else res


@pytest.fixture
def tmp() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as d:
        yield Path(d)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(batches=st.lists(st.integers(1, 300), min_size=1, max_size=8), data=st.data())
def test_driver_agrees_with_model(
    make_driver: DriverFactory, batches: list[int], data: st.DataObject
) -> None:
    with tempfile.TemporaryDirectory() as d:
        driver = make_driver(Path(d))
        driver.create_log(_info())
        store = driver.open_log(_info())
        signer = Signer(_info().origin, b"\x01" * 32)
        model = Model()

        def sign(size: int, root: bytes) -> str:
            return Checkpoint(_info().origin, size, root).sign(signer)

        try:
            for count in batches:
                new = [_event(len(model.entries) + i) for i in range(count)]
                res = store.append(new, sign)
                assert res.first_index == len(model.entries) and res.count == count
                model.entries.extend(new)
                head = store.head()
                assert head.size == len(model.entries)
                assert head.root == merkle.root_from_leaves([e.leaf for e in model.entries])
                assert head.checkpoint == sign(head.size, head.root) == res.head.checkpoint
                assert store.checkpoint(head.size) == head.checkpoint
            want_tiles = model.tiles()
            assert {(lv, ix): d for lv, ix, d in store.iter_tiles()} == want_tiles
            for (lv, ix), tile in want_tiles.items():
                assert store.tile(lv, ix) == tile
            sizes = [s for s, _ in store.checkpoints()]
            expect, total = [], 0
            for c in batches:
                total += c
                expect.append(total)
            assert sizes == expect
            assert [s for s, _ in store.checkpoints(expect[-1])] == [expect[-1]]
            n = len(model.entries)
            a = data.draw(st.integers(0, n))
            b = data.draw(st.integers(a, n + 5))
            assert store.entries(a, b) == [e.data for e in model.entries[a:b]]
            scanned = [r for chunk in store.scan_entries(a, b) for r in chunk]
            assert scanned == [(i, model.entries[i].data) for i in range(a, min(b, n))]
            q = Query(
                since_us=data.draw(st.none() | st.integers(1_000_000, 1_000_000 + n * 1000)),
                until_us=data.draw(st.none() | st.integers(1_000_000, 1_000_000 + n * 1000)),
                actor=data.draw(st.sampled_from(ACTORS)),
                action=data.draw(st.sampled_from([None, "act0", "act1"])),
                outcome=data.draw(st.sampled_from(OUTCOMES)),
                from_index=data.draw(st.integers(0, n)),
                limit=data.draw(st.none() | st.integers(1, 50)),
            )
            assert [i for i, _ in store.query(q)] == model.query(q)
        finally:
            store.close()
            driver.close()


def test_failed_batch_writes_nothing(make_driver: DriverFactory, tmp: Path) -> None:
    driver = make_driver(tmp)
    driver.create_log(_info())
    store = driver.open_log(_info())
    signer = Signer(_info().origin, b"\x01" * 32)

    def sign(size: int, root: bytes) -> str:
        return Checkpoint(_info().origin, size, root).sign(signer)

    def broken(size: int, root: bytes) -> str:
        raise RuntimeError("signer down")

    store.append([_event(0)], sign)
    before = (store.head(), list(store.iter_tiles()), list(store.checkpoints()))
    with pytest.raises(RuntimeError):
        store.append([_event(1), _event(2)], broken)
    assert (store.head(), list(store.iter_tiles()), list(store.checkpoints())) == before
    assert store.entries(0, 10) == [_event(0).data]
    # and the store carries on correctly afterwards
    store.append([_event(1)], sign)
    assert store.head().root == merkle.root_from_leaves([_event(0).leaf, _event(1).leaf])
    store.close()
    driver.close()


def test_two_store_objects_share_one_log(make_driver: DriverFactory, tmp: Path) -> None:
    """A second writer (as another process would be) moves the head; the first reloads."""
    d1, d2 = make_driver(tmp), make_driver(tmp)
    d1.create_log(_info())
    s1, s2 = d1.open_log(_info()), d2.open_log(_info())
    signer = Signer(_info().origin, b"\x01" * 32)

    def sign(size: int, root: bytes) -> str:
        return Checkpoint(_info().origin, size, root).sign(signer)

    leaves = []
    for i in range(600):
        e = _event(i)
        (s1 if i % 3 else s2).append([e], sign)
        leaves.append(e.leaf)
    assert s1.head() == s2.head()
    assert s1.head().root == merkle.root_from_leaves(leaves)
    for s in (s1, s2):
        s.close()
    d1.close()
    d2.close()


def test_control_store(make_driver: DriverFactory, tmp: Path) -> None:
    driver = make_driver(tmp)
    c = driver.control()
    rec = TenantRecord("t", 1, False, b"sealed", b"pub")
    c.create_tenant(rec)
    with pytest.raises(ConflictError):
        c.create_tenant(rec)
    assert c.get_tenant("t") == rec and c.get_tenant("u") is None
    c.create_log(_info("a", "interval:50"))
    with pytest.raises(ConflictError):
        c.create_log(_info("a"))
    with pytest.raises(NotFoundError):
        c.create_log(LogInfo("nobody", "a", "o/nobody/a", Durability(), 1))
    assert c.get_log("t", "a") == _info("a", "interval:50")
    c.create_log(_info("b", "sync", "resource"))
    assert c.get_log("t", "b") == _info("b", "sync", "resource")
    c.set_log_public("t", "b", True)
    got = c.get_log("t", "b")
    assert got is not None and got.public
    with pytest.raises(NotFoundError):
        c.set_log_public("t", "zz", True)
    assert [i.name for i in c.list_logs("t")] == ["a", "b"]
    c.set_setting("k", "v")
    assert c.get_setting("k") == "v" and c.get_setting("x") is None
    driver.close()


def test_control_store_api_keys(make_driver: DriverFactory, tmp: Path) -> None:
    driver = make_driver(tmp)
    c = driver.control()
    c.create_tenant(TenantRecord("t", 1, False, b"sealed", b"pub"))
    op = ApiKeyRecord("k0", None, ("operator",), b"h0", 1)
    k1 = ApiKeyRecord("k1", "t", ("append", "read"), b"h1", 2, "ingest")
    c.create_api_key(op)
    c.create_api_key(k1)
    assert c.get_api_key("k1") == k1 and c.get_api_key("nope") is None
    assert c.list_api_keys(None) == [op] and c.list_api_keys("t") == [k1]
    c.update_api_key("k1", expires_us=99)
    c.update_api_key("k1", revoked_us=100)
    got = c.get_api_key("k1")
    assert got is not None and (got.expires_us, got.revoked_us) == (99, 100)
    with pytest.raises(NotFoundError):
        c.update_api_key("nope", revoked_us=1)
    with pytest.raises(ConflictError):
        c.create_api_key(op)
    c.set_tenant_disabled("t", True)
    t = c.get_tenant("t")
    assert t is not None and t.disabled
    with pytest.raises(NotFoundError):
        c.set_tenant_disabled("u", True)
    driver.close()


def test_idempotency_records(make_driver: DriverFactory, tmp: Path) -> None:
    driver = make_driver(tmp)
    driver.create_log(_info())
    store = driver.open_log(_info())
    signer = Signer(_info().origin, b"\x01" * 32)

    def sign(size: int, root: bytes) -> str:
        return Checkpoint(_info().origin, size, root).sign(signer)

    store.append([_event(0)], sign)
    store.append([_event(1), _event(2), _event(3)], sign, [("a", 0, 1), ("b", 1, 2)])
    assert store.idempotent("a") == IdempotentResult(1, 1, 4)
    assert store.idempotent("b") == IdempotentResult(2, 2, 4)
    assert store.idempotent("c") is None
    before = store.head()
    with pytest.raises(DuplicateRequestError) as exc:
        store.append([_event(4), _event(5)], sign, [("c", 0, 1), ("b", 1, 1)])
    assert exc.value.keys == ["b"]
    assert store.head() == before and store.idempotent("c") is None
    store.close()
    driver.close()


def test_control_store_signing_keys_cosignatures_sizes(
    make_driver: DriverFactory, tmp: Path
) -> None:
    """The rest of the control store, the same on every driver (their logic is
    store/sql.py's, their SQL dialects differ)."""
    driver = make_driver(tmp)
    c = driver.control()
    key = SigningKeyRecord("t", "fp1", "local", b"ref", b"pub", 5)
    c.create_tenant(TenantRecord("t", 1, False, b"sealed", b"pub"), key)
    c.add_signing_key(SigningKeyRecord("t", "fp0", "local", b"r0", b"p0", 3))
    assert [k.fingerprint for k in c.signing_keys("t")] == ["fp0", "fp1"]
    assert c.signing_keys("t")[1] == key
    c.retire_signing_key("t", "fp1", 9)
    assert c.signing_keys("t")[1].retired_us == 9
    with pytest.raises(NotFoundError):
        c.retire_signing_key("t", "fp1", 10)  # retired already
    with pytest.raises(NotFoundError):
        c.retire_signing_key("t", "nope", 10)
    with pytest.raises(ConflictError):  # a second tenant of that name, key and all
        c.create_tenant(TenantRecord("t", 2, False, b"s", b"p"))
    c.create_log(_info("a"))
    b = LogInfo("u", "b", "log.example/u/b", Durability(), 1)
    c.create_log(b, (TenantRecord("u", 2, False, b"s", b"p"), key_of("u")))
    assert c.get_log("u", "b") == b and c.signing_keys("u") == [key_of("u")]
    assert [t.name for t in c.list_tenants()] == ["t", "u"]
    assert [(i.tenant, i.name) for i in c.list_logs()] == [("t", "a"), ("u", "b")]
    with pytest.raises(ConflictError):  # the new tenant exists
        c.create_log(
            LogInfo("u", "c", "o/u/c", Durability(), 1),
            (TenantRecord("u", 3, False, b"s", b"p"), key_of("u")),
        )
    assert c.log_size("t", "a") == 0 and c.log_size("t", "zz") == 0
    c.record_log_size("t", "a", 7)
    c.record_log_size("t", "a", 5)  # never shrinks
    assert c.log_size("t", "a") == 7
    c.set_log_quarantined("t", "a", "tampered")
    got = c.get_log("t", "a")
    assert got is not None and got.quarantined == "tampered" and got.damaged is None
    with pytest.raises(NotFoundError):
        c.set_log_quarantined("t", "zz", "x")
    for size in range(1, 70):
        c.add_cosignatures("t", "a", size, f"cp{size}", {"w1": f"l{size}", "w2": "x"})
    c.add_cosignatures("t", "a", 69, "cp69", {"w1": "again"})  # replaces that line
    cos = c.cosignatures("t", "a")
    assert sorted(cos) == list(range(6, 70))  # the latest 64 sizes are kept
    assert cos[69] == {"w1": ("cp69", "again"), "w2": ("cp69", "x")}
    c.set_setting("witnesses:t/a", "w1")
    c.set_setting("witnesses:t/a", "w2")  # replaces
    assert c.get_setting("witnesses:t/a") == "w2"
    c.delete_log("t", "a")
    assert c.get_log("t", "a") is None and c.cosignatures("t", "a") == {}
    assert c.get_setting("witnesses:t/a") is None
    driver.close()


def key_of(tenant: str) -> SigningKeyRecord:
    return SigningKeyRecord(tenant, "fp-" + tenant, "local", b"ref", b"pub", 1)
