"""Times on the command line and in queries: relative (``30m``, ``1h``, ``2d``,
``1w``, also written ``-1h``) meaning that long ago, or absolute (RFC 3339, or ``YYYY-MM-DD`` at
00:00 UTC).  Pure."""

from __future__ import annotations

import datetime as dt
import re

from ironlog.core.numparse import parse_int
from ironlog.errors import InvalidRequestError

_REL = re.compile(r"^-?(\d+)([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
MAX_AGE_S = 10_000 * 365 * 86400  # relative times reach back at most 10,000 years
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def parse_time(text: str, now_us: int) -> int:
    """Microseconds since the epoch."""
    t = text.strip()
    m = _REL.fullmatch(t)
    if m:
        ago = parse_int(m.group(1), f"time {text[:40]!r}", 0, MAX_AGE_S // _UNITS[m.group(2)])
        return now_us - ago * _UNITS[m.group(2)] * 1_000_000
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", t):
            when = dt.datetime.strptime(t, "%Y-%m-%d").replace(tzinfo=dt.UTC)
        else:
            when = dt.datetime.fromisoformat(t.replace("Z", "+00:00").replace("z", "+00:00"))
            if when.tzinfo is None:
                raise InvalidRequestError(f"time {text[:40]!r} needs a time zone (e.g. Z)")
    except ValueError as e:
        raise InvalidRequestError(
            f"cannot read time {text[:40]!r}: use 30m, 1h, 2d, 1w, YYYY-MM-DD or RFC 3339"
        ) from e
    return (when - _EPOCH) // dt.timedelta(microseconds=1)
