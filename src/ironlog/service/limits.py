"""Per-request and per-peer limits of the HTTP API (``[limits]`` in the serve config).

Pure: no I/O.  ``ironlog serve`` hands them to its workers as JSON in the
``IRONLOG_LIMITS`` environment variable (``service/config.py``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

from ironlog.core.entry import PreparedEntry
from ironlog.errors import ConfigurationError, TooLargeError


@dataclass(frozen=True)
class Limits:
    # what one request (or one listener batch) may make the server hold and store
    max_batch_records: int = 10_000  # events per NDJSON body / OTLP request / listener batch
    max_decoded_bytes: int = 16 << 20  # body bytes after decompression (OTLP gzip)
    max_batch_bytes: int = 32 << 20  # bytes one request stores (entries as stored)
    max_otlp_objects: int = 1_000_000  # protobuf messages / JSON values per OTLP request
    # HTTP connections (per worker process)
    http_header_timeout: float = 10.0  # seconds to send a request's line and headers
    http_body_timeout: float = 60.0  # seconds to send a request's body, once headers are in
    http_max_header_bytes: int = 64 << 10  # a request's line and headers
    http_max_connections_per_peer: int = 128  # open connections from one IP address

    @classmethod
    def from_dict(cls, raw: dict[str, Any], where: str = "limits") -> Limits:
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(raw) - set(known))
        if unknown:
            raise ConfigurationError(f"{where}: unknown settings {', '.join(unknown)}")
        values: dict[str, Any] = {}
        for key, value in raw.items():
            kind = type(getattr(cls(), key))
            if kind is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if not isinstance(value, kind) or isinstance(value, bool) or not value > 0:
                raise ConfigurationError(f"{where}: {key} must be a positive {kind.__name__}")
            values[key] = value
        return cls(**values)

    def to_json(self) -> str:
        return json.dumps(asdict(self))


class BatchBudget:
    """Counts what one batch will store; raises TooLargeError past a limit."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.records = 0
        self.stored = 0

    def add(self, stored_bytes: int) -> None:
        self.records += 1
        self.stored += stored_bytes
        if self.records > self.limits.max_batch_records:
            raise TooLargeError(f"at most {self.limits.max_batch_records} events per batch")
        if self.stored > self.limits.max_batch_bytes:
            raise TooLargeError(
                f"the batch would store more than {self.limits.max_batch_bytes} bytes "
                "(the limit per request)"
            )


def split_batch(entries: Sequence[PreparedEntry], limits: Limits) -> Iterator[list[PreparedEntry]]:
    """Entries in batches within max_batch_records and max_batch_bytes (for doors,
    such as syslog, that cannot refuse a sender's batch)."""
    batch: list[PreparedEntry] = []
    stored = 0
    for e in entries:
        if batch and (
            len(batch) >= limits.max_batch_records or stored + len(e.data) > limits.max_batch_bytes
        ):
            yield batch
            batch, stored = [], 0
        batch.append(e)
        stored += len(e.data)
    if batch:
        yield batch
