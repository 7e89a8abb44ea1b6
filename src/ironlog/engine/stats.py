"""Counts per time bucket and usage per day: aggregates derived from a log.

Derived data only: each log has a small SQLite file of its own under
``DATA/derived/stats/TENANT/LOG.db`` (apart from the log's database, its
store and its append path) holding, per minute of ``received_at``:

- ``minutes``: entries and bytes (the stored entry bytes);
- ``groups``: entries per value of each of ``action``, ``outcome``, ``actor``
  and ``source`` (one dimension at a time, which is what a query groups by).

It is brought up to date incrementally from the log (the entries after the
last aggregated index) when it is read (:meth:`LogStats.catch_up`), in one
write transaction, so several processes can share it.  It can be deleted at
any time and is rebuilt from the log; nothing about integrity is ever
decided from it.  It is rebuilt by itself when it does not belong to the log
(another log of the same name, a log that shrank).

Cardinality is bounded: a value is cut to ``VALUE_CHARS`` characters, and a
minute keeps at most ``MAX_VALUES_PER_MINUTE`` distinct values per dimension
(the first ones seen); entries with more values are counted under "other".
A query reports the ``top`` values over its range and folds the rest into
"other" too.  Coarser buckets (5m, 1h, 1d, UTC-aligned) add up minute rows
(whole hours are also kept per hour, capped at ``MAX_VALUES_PER_HOUR``: the
ranking of a wide range and buckets of an hour or more read those).

(Over 400 lines: the file's schema, its writing and its reading belong
together; what uses it, quotas and usage, is in :mod:`ironlog.engine.quotas`.)
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from ironlog.atomic import make_dirs
from ironlog.errors import InvalidRequestError, LogUnavailableError
from ironlog.store.base import LogInfo, LogStore, StoredRow

DIMENSIONS = ("action", "outcome", "actor", "source")
BUCKETS = {"1m": 1, "5m": 5, "1h": 60, "1d": 1440}  # in minutes
MINUTE_US = 60_000_000
DAY_MINUTES = 1440
MAX_VALUES_PER_MINUTE = 64  # distinct values kept per minute and dimension
MAX_VALUES_PER_HOUR = 256  # ... per hour (the hourly rows answer wide ranges fast)
VALUE_CHARS = 128
MAX_BUCKETS = 10_080  # a week of minutes
MAX_RANGE_MINUTES = 400 * DAY_MINUTES
MAX_TOP = 100
OTHER = "other"  # what a query calls the values outside its top N
NONE = "(none)"  # the value of an entry without the field
_OVERFLOW = "\x00"  # stored: values past a minute's cap (never a real value: cut below)
_SCHEMA_VERSION = "3"
# A catch-up is CPU-bound Python; a writer thread in the same process waits
# for the GIL after every fsync, up to the switch interval (5 ms) while a
# catch-up runs.  Giving the GIL up every _SLICE entries (about 0.5 ms of work)
# keeps a console polling the stats from slowing the appends down.
_SLICE = 128

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS minutes (
    minute INTEGER PRIMARY KEY, entries INTEGER NOT NULL, bytes INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS hours (
    hour INTEGER PRIMARY KEY, entries INTEGER NOT NULL, bytes INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS groups (
    dim INTEGER NOT NULL, minute INTEGER NOT NULL, value TEXT NOT NULL,
    entries INTEGER NOT NULL, PRIMARY KEY (dim, minute, value)
) WITHOUT ROWID;
-- A bucket's counts for the top values: a range of minutes per value.
CREATE INDEX IF NOT EXISTS groups_by_value ON groups (dim, value, minute, entries);
CREATE TABLE IF NOT EXISTS hour_groups (
    dim INTEGER NOT NULL, hour INTEGER NOT NULL, value TEXT NOT NULL,
    entries INTEGER NOT NULL, PRIMARY KEY (dim, hour, value)
) WITHOUT ROWID;
"""
_TABLES = ("minutes", "hours", "groups", "hour_groups")


class _Source(msgspec.Struct):
    source: Any = None


_source_decoder = msgspec.json.Decoder(_Source)


def _value(v: object) -> str:
    if v is None or v == "":
        return ""
    text = v if isinstance(v, str) else str(v)
    return text.replace("\x00", "")[:VALUE_CHARS]


def _source(data: bytes) -> str:
    try:
        return _value(_source_decoder.decode(data).source)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return ""


@dataclass(frozen=True)
class Bucket:
    start_minute: int
    total: int
    counts: dict[str, int]


@dataclass(frozen=True)
class StatsResult:
    from_minute: int
    to_minute: int  # exclusive
    bucket: str
    group_by: str | None
    groups: list[str]
    buckets: list[Bucket]


@dataclass
class _Pending:
    """Aggregates of one catch-up, before they are written."""

    minutes: dict[int, list[int]] = field(default_factory=dict)  # minute -> [entries, bytes]
    # minute -> per dimension: value -> entries, and the values known for the
    # minute (stored before, or seen now) to apply the cap
    counts: dict[int, tuple[list[dict[str, int]], list[set[str]]]] = field(default_factory=dict)

    def groups(self) -> dict[tuple[int, int, str], int]:
        return {
            (dim, minute, value): n
            for minute, (per_dim, _) in self.counts.items()
            for dim, c in enumerate(per_dim)
            for value, n in c.items()
        }


def check_range(from_us: int, to_us: int, bucket: str) -> tuple[int, int, int]:
    """(first minute, end minute exclusive, bucket minutes) for a query, or a 400."""
    if bucket not in BUCKETS:
        raise InvalidRequestError(f"bucket must be one of {', '.join(BUCKETS)}")
    if from_us >= to_us:
        raise InvalidRequestError("from must be before to")
    first = from_us // MINUTE_US
    end = -(-to_us // MINUTE_US)
    if end - first > MAX_RANGE_MINUTES:
        raise InvalidRequestError(f"the range is at most {MAX_RANGE_MINUTES // DAY_MINUTES} days")
    size = BUCKETS[bucket]
    count = -(-end // size) - first // size
    if count > MAX_BUCKETS:
        raise InvalidRequestError(
            f"{count} buckets of {bucket}: at most {MAX_BUCKETS}; choose a larger bucket "
            "or a shorter range"
        )
    return first, end, size


class LogStats:
    """The aggregates of one log (one per log and process; thread-safe)."""

    def __init__(self, path: Path, store: LogStore, info: LogInfo) -> None:
        self.path = path
        self.store = store
        self.info = info
        self._lock = threading.Lock()
        try:
            make_dirs(path.parent)
            self._db = sqlite3.connect(
                path, isolation_level=None, check_same_thread=False, timeout=30
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=OFF")  # derived: rebuilt if lost
            self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as e:
            raise LogUnavailableError(f"statistics of {info.path} cannot be opened: {e}") from e
        self._identity = f"{_SCHEMA_VERSION} {info.origin} {info.created_us}"

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def _meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def aggregated(self) -> int:
        """How many entries of the log the aggregates hold."""
        if self._meta("identity") != self._identity:
            return 0
        return int(self._meta("next_index") or 0)

    def catch_up(self, size: int | None = None) -> int:
        """Aggregate the entries up to ``size`` (the committed head) not yet
        counted; returns how many were added."""
        try:
            with self._lock:
                target = self.store.head().size if size is None else size
                if self.aggregated() >= target:
                    return 0
                with self._write() as db:
                    start = self.aggregated()
                    if self._meta("identity") != self._identity or start > target:
                        for table in _TABLES:  # not this log's: rebuild
                            db.execute(f"DELETE FROM {table}")
                        start = 0
                    if start >= target:
                        return 0
                    pending = _Pending()
                    for rows in self.store.scan_rows(start, target):
                        for i in range(0, len(rows), _SLICE):
                            self._add(pending, rows[i : i + _SLICE])
                            time.sleep(0)  # let the writer have the GIL (see _SLICE)
                    self._flush(db, pending)
                    db.executemany(
                        "INSERT OR REPLACE INTO meta VALUES (?, ?)",
                        [("identity", self._identity), ("next_index", str(target))],
                    )
                    return target - start
        except sqlite3.Error as e:
            raise LogUnavailableError(f"statistics of {self.info.path}: {e}") from e

    def _add(self, p: _Pending, rows: Sequence[StoredRow]) -> None:
        """Count ``rows`` (the hot loop of a catch-up: kept plain)."""
        minutes, counts = p.minutes, p.counts
        cap = MAX_VALUES_PER_MINUTE
        last = None
        per_dim: list[dict[str, int]] = []
        known: list[set[str]] = []
        m: list[int] = []
        for _index, data, received_us, actor, action, _resource, outcome in rows:
            minute = received_us // MINUTE_US
            if minute != last:  # entries come in time order, mostly
                last = minute
                got = counts.get(minute)
                if got is None:
                    got = counts[minute] = (
                        [{} for _ in DIMENSIONS],
                        [self._stored_values("groups", "minute", d, minute) for d in range(4)],
                    )
                    minutes[minute] = [0, 0]
                per_dim, known = got
                m = minutes[minute]
            m[0] += 1
            m[1] += len(data)
            values = (action, outcome, actor, _source(data))
            for raw, k, c in zip(values, known, per_dim, strict=True):
                value = raw if raw is not None and len(raw) <= VALUE_CHARS else _value(raw)
                if value not in k:
                    if len(k) >= cap:
                        value = _OVERFLOW
                    else:
                        k.add(value)
                c[value] = c.get(value, 0) + 1

    def _stored_values(self, table: str, column: str, dim: int, when: int) -> set[str]:
        rows = self._db.execute(
            f"SELECT value FROM {table} WHERE dim = ? AND {column} = ? AND value != ?",
            (dim, when, _OVERFLOW),
        )
        return {r[0] for r in rows}

    def _flush(self, db: sqlite3.Connection, p: _Pending) -> None:
        hours: dict[int, list[int]] = {}
        for minute, (e, b) in p.minutes.items():
            h = hours.setdefault(minute // 60, [0, 0])
            h[0] += e
            h[1] += b
        hour_groups: dict[tuple[int, int, str], int] = {}
        hour_seen: dict[tuple[int, int], set[str]] = {}
        groups = p.groups()
        for (dim, minute, value), n in sorted(groups.items(), key=lambda kv: kv[0][1]):
            hour = minute // 60
            if value != _OVERFLOW:
                known = hour_seen.get((dim, hour))
                if known is None:
                    known = hour_seen[(dim, hour)] = self._stored_values(
                        "hour_groups", "hour", dim, hour
                    )
                if value not in known:
                    if len(known) >= MAX_VALUES_PER_HOUR:
                        value = _OVERFLOW
                    else:
                        known.add(value)
            gk = (dim, hour, value)
            hour_groups[gk] = hour_groups.get(gk, 0) + n
        for table, column, rows in (("minutes", "minute", p.minutes), ("hours", "hour", hours)):
            db.executemany(
                f"INSERT INTO {table} VALUES (?, ?, ?) ON CONFLICT ({column}) DO UPDATE SET "
                "entries = entries + excluded.entries, bytes = bytes + excluded.bytes",
                [(k, e, b) for k, (e, b) in rows.items()],
            )
        for table, column, grouped in (
            ("groups", "minute", groups),
            ("hour_groups", "hour", hour_groups),
        ):
            db.executemany(
                f"INSERT INTO {table} VALUES (?, ?, ?, ?) ON CONFLICT (dim, {column}, value) "
                "DO UPDATE SET entries = entries + excluded.entries",
                [(d, k, v, n) for (d, k, v), n in grouped.items()],
            )

    # -- reading -----------------------------------------------------------------
    def _parts(self, first: int, end: int) -> list[tuple[str, str, int, int, int]]:
        """[first, end) minutes as (totals table, groups table, from, to, minutes
        per row): whole hours from the hourly tables, the edges from the others."""
        h1, h2 = -(-first // 60), end // 60
        if h1 >= h2:
            return [("minutes", "groups", first, end, 1)]
        parts = [("hours", "hour_groups", h1, h2, 60)]
        if first < h1 * 60:
            parts.append(("minutes", "groups", first, h1 * 60, 1))
        if h2 * 60 < end:
            parts.append(("minutes", "groups", h2 * 60, end, 1))
        return parts

    def query(
        self,
        from_us: int,
        to_us: int,
        bucket: str = "1m",
        group_by: str | None = None,
        top: int = 10,
    ) -> StatsResult:
        """Counts per bucket over [from, to) (widened to whole minutes), per
        value of ``group_by`` (its ``top`` values, the rest as "other")."""
        first, end, size = check_range(from_us, to_us, bucket)
        if group_by is not None and group_by not in DIMENSIONS:
            raise InvalidRequestError(f"group_by must be one of {', '.join(DIMENSIONS)}")
        if not 1 <= top <= MAX_TOP:
            raise InvalidRequestError(f"top must be between 1 and {MAX_TOP}")
        self.catch_up()
        db = self._db
        # Below an hour, buckets need minute rows; from an hour, hourly ones do.
        parts = self._parts(first, end) if size >= 60 else [("minutes", "groups", first, end, 1)]
        totals: dict[int, int] = {}
        for table, _, a, b, per in parts:
            col = "hour" if per == 60 else "minute"
            for k, n in db.execute(
                f"SELECT {col}, entries FROM {table} WHERE {col} >= ? AND {col} < ?", (a, b)
            ):
                start = k * per // size * size
                totals[start] = totals.get(start, 0) + n
        counts: dict[int, dict[str, int]] = {start: {} for start in totals}
        groups: list[str] = []
        if group_by is not None:
            dim = DIMENSIONS.index(group_by)
            ranked: dict[str, int] = {}
            for _, table, a, b, per in self._parts(first, end):
                col = "hour" if per == 60 else "minute"
                # Summed here: a GROUP BY makes SQLite walk every minute by value.
                for value, n in db.execute(
                    f"SELECT value, entries FROM {table} WHERE dim = ? AND {col} >= ? "
                    f"AND {col} < ?",
                    (dim, a, b),
                ):
                    ranked[value] = ranked.get(value, 0) + n
            ranked.pop(_OVERFLOW, None)
            ranked.pop(OTHER, None)  # a value named "other" is counted as other
            chosen = sorted(ranked, key=lambda v: (-ranked[v], v))[:top]
            names = {v: v or NONE for v in chosen}
            groups = [names[v] for v in chosen]
            marks = ",".join("?" * len(chosen))
            for _, table, a, b, per in parts if chosen else ():
                col = "hour" if per == 60 else "minute"
                for k, value, n in db.execute(
                    f"SELECT {col}, value, entries FROM {table} WHERE dim = ? AND {col} >= ? "
                    f"AND {col} < ? AND value IN ({marks})",
                    (dim, a, b, *chosen),
                ):
                    c = counts[k * per // size * size]
                    name = names[value]
                    c[name] = c.get(name, 0) + n
            has_other = False
            for start, c in counts.items():
                rest = totals[start] - sum(c.values())
                if rest > 0:
                    c[OTHER] = rest
                    has_other = True
            if has_other:
                groups.append(OTHER)
        return StatsResult(
            first,
            end,
            bucket,
            group_by,
            groups,
            [Bucket(start, totals[start], counts[start]) for start in sorted(totals)],
        )

    def days(self, first_day: int, end_day: int) -> list[tuple[int, int, int]]:
        """(day, entries, bytes) for the days in [first, end) that have entries."""
        self.catch_up()
        rows = self._db.execute(
            "SELECT hour / 24, SUM(entries), SUM(bytes) FROM hours "
            "WHERE hour >= ? AND hour < ? GROUP BY 1 ORDER BY 1",
            (first_day * 24, end_day * 24),
        )
        return [(int(d), int(e), int(b)) for d, e, b in rows]

    def totals(self, today: int, catch_up: bool = True) -> tuple[int, int]:
        """(entries received on day ``today``, bytes of all entries)."""
        if catch_up:
            self.catch_up()
        e = self._db.execute(
            "SELECT COALESCE(SUM(entries), 0) FROM hours WHERE hour >= ? AND hour < ?",
            (today * 24, (today + 1) * 24),
        ).fetchone()[0]
        b = self._db.execute("SELECT COALESCE(SUM(bytes), 0) FROM hours").fetchone()[0]
        return int(e), int(b)


class StatsBook:
    """Every log's :class:`LogStats` in this process, opened when first asked."""

    def __init__(self, data_dir: Path) -> None:
        self.root = data_dir / "derived" / "stats"
        self._open: dict[tuple[str, str], LogStats] = {}
        self._lock = threading.Lock()

    def of(self, store: LogStore, info: LogInfo) -> LogStats:
        key = (info.tenant, info.name)
        with self._lock:
            st = self._open.get(key)
            if st is not None and st.store is store:
                return st
            if st is not None:  # the log was reopened: its store is another object
                st.close()
            st = LogStats(self.root / info.tenant / f"{info.name}.db", store, info)
            self._open[key] = st
            return st

    def close(self) -> None:
        with self._lock:
            for st in self._open.values():
                st.close()
            self._open.clear()


def merge_days(
    per_log: Sequence[tuple[str, list[tuple[int, int, int]]]],
) -> list[tuple[int, dict[str, tuple[int, int]]]]:
    """Per-log day rows -> (day, {log: (entries, bytes)}) by day."""
    out: dict[int, dict[str, tuple[int, int]]] = {}
    for name, rows in per_log:
        for day, entries, nbytes in rows:
            out.setdefault(day, {})[name] = (entries, nbytes)
    return sorted(out.items())
