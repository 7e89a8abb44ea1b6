"""RFC 6587 framing (service/ingest/framing.py), pure: property tests over frames
encoded either way and split anywhere.  The listeners that use it are played
with real clients in test_syslog.py."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ironlog.service.ingest.framing import (
    HEADER_MAX,
    MALFORMED_LENGTH,
    NOT_SYSLOG,
    FrameDecoder,
    Framing,
)

MAX = 64


def octet(frames: list[bytes]) -> bytes:
    return b"".join(b"%d %s" % (len(f), f) for f in frames)


def lf(frames: list[bytes]) -> bytes:
    return b"".join(f + b"\n" for f in frames)


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


def decode(
    chunks: list[bytes], framing: Framing | None = None, max_frame: int = MAX
) -> tuple[list[bytes], FrameDecoder]:
    dec = FrameDecoder(max_frame, framing)
    out: list[bytes] = []
    for chunk in chunks:
        out += dec.feed(chunk)
        if dec.error is None:  # bounded while it has not failed
            assert len(dec.pending) <= max_frame + HEADER_MAX
    out += dec.end()
    return out, dec


# Octet-counted frames hold any bytes; LF-framed ones no LF and not only CRs.
any_frame = st.binary(min_size=1, max_size=MAX)
line = st.binary(min_size=1, max_size=MAX).filter(lambda f: b"\n" not in f and f.strip(b"\r"))
syslog_line = line.map(lambda f: (b"<" + f)[:MAX])
cuts = st.lists(st.integers(0, 10_000), max_size=12)


@settings(max_examples=300, deadline=None)
@given(st.lists(any_frame, max_size=8), cuts)
def test_octet_counted_frames_split_anywhere_decode_alike(
    frames: list[bytes], at: list[int]
) -> None:
    got, dec = decode(split(octet(frames), at))
    assert got == frames
    assert dec.error is None and dec.pending == b""
    assert not frames or dec.framing == "octet"


@settings(max_examples=300, deadline=None)
@given(st.lists(syslog_line, min_size=1, max_size=8), cuts, st.booleans())
def test_lf_framed_lines_split_anywhere_decode_alike(
    frames: list[bytes], at: list[int], last_lf: bool
) -> None:
    data = lf(frames) if last_lf else lf(frames)[:-1]  # a last line without its LF counts
    got, dec = decode(split(data, at))
    assert got == frames
    assert dec.error is None and dec.pending == b"" and dec.framing == "lf"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(line, st.sampled_from([b"", b"\r", b"\r\r"])), max_size=10), cuts)
def test_ndjson_lines_start_with_anything_and_blank_lines_are_skipped(
    lines: list[bytes], at: list[int]
) -> None:
    got, dec = decode(split(lf(lines), at), framing="lf")
    assert got == [f for f in lines if f.strip(b"\r")]
    assert dec.error is None and dec.pending == b""


@settings(max_examples=300, deadline=None)
@given(
    st.lists(any_frame, max_size=4),
    st.integers(MAX + 1, 10 * MAX),
    st.lists(any_frame, max_size=4),
    cuts,
    st.booleans(),
)
def test_an_oversized_frame_is_reported_never_buffered(
    before: list[bytes], size: int, after: list[bytes], at: list[int], use_lf: bool
) -> None:
    """The frames before it are decoded, the rest is refused, and the decoder
    never holds more than max_frame + 8 bytes before it has failed (the
    oversized line is refused once max_frame bytes came without an LF)."""
    if use_lf:
        before = [(b"<" + f).replace(b"\n", b"n")[:MAX] for f in before]
        after = [f.replace(b"\n", b"n") for f in after]
        data = lf([*before, b"<" + b"x" * size, *after])
    else:
        data = octet([*before, b"y" * size, *after])
    got, dec = decode(split(data, at))
    assert got == before
    assert dec.error is not None
    assert f"{MAX}" in dec.error and ("longer than" in dec.error or "exceeds" in dec.error)
    # What is kept for the record starts at the refused frame, and nothing more is taken.
    refused = data[len(lf(before) if use_lf else octet(before)) :]
    assert dec.pending and refused.startswith(dec.pending)
    assert dec.feed(b"<13>more\n") == [] and dec.end() == []


junk = st.binary(max_size=300).map(
    lambda b: bytes(b"0123 <\n\rx"[c % 9] for c in b)  # bytes that matter to the framing
)


@settings(max_examples=500, deadline=None)
@given(junk, cuts, st.sampled_from([None, "lf", "octet"]))
def test_any_input_split_anywhere_gives_the_same_frames_and_error(
    data: bytes, at: list[int], framing: Framing | None
) -> None:
    whole, a = decode([data], framing, 16)
    pieces, b = decode(split(data, at), framing, 16)
    assert pieces == whole and b.error == a.error and b.framing == a.framing


def test_errors_say_why() -> None:
    cases: list[tuple[bytes, str]] = [
        (b"GET / HTTP/1.0\r\n", NOT_SYSLOG),
        (b"05 hello", MALFORMED_LENGTH),
        (b"12345678", MALFORMED_LENGTH),  # no space within 8 bytes
        (b"12x4 hi", MALFORMED_LENGTH),
        (b"3 abc\n4 defg", MALFORMED_LENGTH),  # an LF between octet-counted frames
        (b"5000 <13>1 -", "a frame of 5000 bytes exceeds the limit of 100"),
        (b"<13>" + b"y" * 200, "a line is longer than 100 bytes"),
    ]
    for data, reason in cases:
        dec = FrameDecoder(100)
        dec.feed(data)
        assert dec.error == reason, data
    dec = FrameDecoder(100)
    assert dec.feed(b"3 abc\n4 defg") == [b"abc"]
    assert dec.pending == b"\n4 defg"  # the refused input, for the record
    dec = FrameDecoder(100)
    assert dec.feed(b"9 <13>abc") == [] and dec.end() == []
    assert dec.pending == b"9 <13>abc" and dec.error is None  # closed mid-frame
