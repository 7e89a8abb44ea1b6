"""Prometheus metrics of the service.

With several worker processes, ``PROMETHEUS_MULTIPROC_DIR`` (set by
``ironlog serve``) makes every worker write its figures to files there and
``/metrics`` aggregates them, so one scrape sees the whole service."""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from ironlog.engine.instance import Ironlog
from ironlog.service.ingest.sink import ListenerStats
from ironlog.store.base import LogInfo

BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics(ListenerStats):
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.appends = Counter(
            "ironlog_appended_entries", "Entries appended", ["tenant", "log"], registry=r
        )
        self.bytes = Counter(
            "ironlog_appended_bytes", "Bytes of entries appended", ["tenant", "log"], registry=r
        )
        self.batch = Histogram(
            "ironlog_batch_entries",
            "Entries per committed batch",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.commit = Histogram(
            "ironlog_commit_seconds",
            "Time to commit one batch (durable in sync mode)",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.errors = Counter(
            "ironlog_errors", "Requests answered with an error, by code", ["code"], registry=r
        )
        self.rate_limited = Counter(
            "ironlog_rate_limited", "Requests refused by a rate limit", ["tenant"], registry=r
        )
        self.listener_messages = Counter(
            "ironlog_listener_messages",
            "Messages received by a syslog/TCP/UDP listener and handed to its log",
            ["listener"],
            registry=r,
        )
        self.listener_parse_errors = Counter(
            "ironlog_listener_parse_errors",
            "Messages stored raw because they did not parse",
            ["listener"],
            registry=r,
        )
        self.listener_dropped = Counter(
            "ironlog_listener_dropped",
            "Messages not stored, by reason (UDP queue_full/oversized, commit_failed, "
            "connection_closed counts connections closed for bad input)",
            ["listener", "reason"],
            registry=r,
        )
        self.listener_paused = Counter(
            "ironlog_listener_paused",
            "Times a listener stopped reading its TCP connections (back-pressure)",
            ["listener"],
            registry=r,
        )
        self.listener_connections = Counter(
            "ironlog_listener_connections",
            "Listener connections opened, closed and rejected (limit reached)",
            ["listener", "event"],
            registry=r,
        )

        # The LRU of open logs (engine/open_logs.py); gauges summed over live workers.
        self.open_logs = Gauge(
            "ironlog_open_logs",
            "Log stores open (files and a writer thread each), capped by --max-open-logs",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.writer_queue = Gauge(
            "ironlog_writer_queue_depth",
            "Appends queued for the writers of the open logs",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.log_evictions = Counter(
            "ironlog_log_evictions",
            "Open logs closed, by reason (cap: least recently used; idle: idle timeout)",
            ["reason"],
            registry=r,
        )
        self.log_reopen = Histogram(
            "ironlog_log_reopen_seconds",
            "Time to reopen a closed log (its head check included)",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self._il: Ironlog | None = None

    def attach(self, il: Ironlog) -> None:
        """Observe ``il``: commits, and its open logs."""
        self._il = il
        il.commit_observers.append(self.observe_commit)
        il.open_logs.release_observers.append(self.observe_release)
        il.open_logs.tick_observers.append(self.observe_open_logs)
        il.reopen_observers.append(self.log_reopen.observe)

    def observe_release(self, reason: str) -> None:
        self.log_evictions.labels(reason).inc()

    def observe_open_logs(self, n: int, queued: int) -> None:
        self.open_logs.set(n)
        self.writer_queue.set(queued)

    def observe_commit(self, info: LogInfo, entries: int, nbytes: int, seconds: float) -> None:
        self.appends.labels(info.tenant, info.name).inc(entries)
        self.bytes.labels(info.tenant, info.name).inc(nbytes)
        self.batch.observe(entries)
        self.commit.observe(seconds)

    # ListenerStats
    def messages(self, name: str, n: int) -> None:
        self.listener_messages.labels(name).inc(n)

    def parse_errors(self, name: str, n: int) -> None:
        self.listener_parse_errors.labels(name).inc(n)

    def dropped(self, name: str, reason: str, n: int) -> None:
        self.listener_dropped.labels(name, reason).inc(n)

    def connection(self, name: str, event: str) -> None:
        self.listener_connections.labels(name, event).inc()

    def paused(self, name: str) -> None:
        self.listener_paused.labels(name).inc()

    def render(self) -> tuple[bytes, str]:
        if self._il is not None:  # this worker's figures, fresh
            self.observe_open_logs(*self._il.open_logs.stats())
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
