from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ironlog.core.entry import format_time, prepare_json, prepare_text
from ironlog.core.merkle import leaf_hash
from ironlog.core.timeparse import parse_time
from ironlog.errors import InvalidEntryError

T = 1_795_000_000_123_456


def test_canonical_bytes() -> None:
    e = prepare_json(b'{ "b": 1, "a": {"z": [1, 2.5], "y": "\xc3\xa9"}, "actor": "al" }', T, "http")
    assert (
        e.data
        == (
            '{"a":{"y":"é","z":[1,2.5]},"actor":"al","b":1,'
            f'"received_at":"{format_time(T)}","source":"http"}}'
        ).encode()
    )
    assert e.leaf == leaf_hash(e.data)
    assert e.actor == "al" and e.action is None
    assert format_time(T).endswith(".123456Z")


@pytest.mark.parametrize(
    ("raw", "msg"),
    [
        (b"not json", "not valid JSON"),
        (b"[1,2]", "not an array"),
        (b'"s"', "not a string"),
        (b"3", "not a number"),
        (b"null", "not null"),
        (b'{"a":"\xff"}', "invalid UTF-8"),
        (b'{"a":1} {}', "not valid JSON"),
        (b'{"received_at":"x"}', "reserved"),
        (json.dumps({"a": "x" * 65536}).encode(), "limit is 65535"),
    ],
)
def test_rejects(raw: bytes, msg: str) -> None:
    with pytest.raises(InvalidEntryError, match=msg):
        prepare_json(raw, T, "cli")


def test_deep_nesting_is_an_error_not_a_crash() -> None:
    with pytest.raises(InvalidEntryError):
        prepare_json(b"[" * 100000 + b"]" * 100000, T, "cli")


def test_text() -> None:
    assert b'"message":"hello"' in prepare_text("hello", T, "cli").data


def test_times() -> None:
    now = 10**15
    assert parse_time("1h", now) == now - 3_600_000_000
    assert parse_time("2d", now) == now - 2 * 86_400_000_000
    assert parse_time("1970-01-02", now) == 86_400_000_000
    assert parse_time("1970-01-01T00:00:01.5Z", now) == 1_500_000
    for bad in ("yesterday", "2026-13-01", "1970-01-01T00:00:00"):
        with pytest.raises(Exception, match="time"):
            parse_time(bad, now)


@given(st.integers(0, 253402300799999999))
def test_format_time_matches_datetime(us: int) -> None:
    import datetime as dt

    ref = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=us)
    assert format_time(us) == ref.strftime("%Y-%m-%dT%H:%M:%S.%fZ").rjust(27, "0")


_KEYS = st.sampled_from(["a", "b", "\\u0061", 'q\\":', "\\\\", ""])
_WS = st.sampled_from(["", " ", "\n", "\t ", "\r"])
_SCALARS = st.sampled_from(["1", '"x"', '"\\":"', '"\\u0022:"', '" : "', "null", "[]"])


@st.composite
def _json_texts(draw: st.DrawFn, depth: int = 0) -> str:
    """Objects written by hand: odd spacing, escaped keys, strings that look like keys,
    and sometimes the same key twice."""
    if depth > 2 or draw(st.integers(0, 3)) == 0:
        return draw(_SCALARS)
    if draw(st.booleans()):
        return "[" + ",".join(draw(st.lists(_json_texts(depth + 1), max_size=3))) + "]"
    members = []
    for _ in range(draw(st.integers(0, 4))):
        key, ws1, ws2 = draw(_KEYS), draw(_WS), draw(_WS)
        members.append(f'"{key}"{ws1}:{ws2}{draw(_json_texts(depth + 1))}')
    return "{" + ",".join(members) + "}"


def _has_duplicate(text: str) -> bool:
    found = False

    def hook(pairs: list[tuple[str, object]]) -> dict[str, object]:
        nonlocal found
        found = found or len({k for k, _ in pairs}) < len(pairs)
        return dict(pairs)

    json.loads(text, object_pairs_hook=hook)
    return found


@given(_json_texts())
def test_duplicate_keys_are_found_at_any_depth(inner: str) -> None:
    """The cheap count never lets a duplicate through, nor refuses a good event."""
    text = '{"e":' + inner + "}"
    if _has_duplicate(text):
        with pytest.raises(InvalidEntryError, match="duplicate key"):
            prepare_json(text.encode(), T, "http")
    else:
        assert json.loads(prepare_json(text.encode(), T, "http").data)["e"] == json.loads(inner)
