"""Stream framing, pure: RFC 6587 octet counting and LF (non-transparent) framing.

No sockets, no asyncio: :class:`FrameDecoder` is fed the bytes of one stream as
they arrive, split anywhere, and gives back the complete frames.  The framing
is fixed (``"lf"`` for NDJSON) or detected from the first byte, as RFC 6587
section 3.4 suggests: a digit starts an octet count (``"octet"``), ``<`` starts
a syslog message framed by LF (``"lf"``).

- octet counting: ``LEN SP MSG``; ``LEN`` is 1 to 7 digits without a leading
  zero, and a frame of more than ``max_frame`` bytes is refused as soon as its
  length is read;
- LF framing: one frame per line; the LF is not part of the frame, blank lines
  (nothing but CR) are skipped, and a line longer than ``max_frame`` bytes is
  refused (at once if no LF arrives within ``max_frame`` bytes).

The decoder never holds more than ``max_frame + 8`` bytes between calls unless it
has failed.  Failing is final: :attr:`FrameDecoder.error` says why, and
:attr:`FrameDecoder.pending` keeps the input from the refused frame on (what a
listener stores raw, with the reason); later input is ignored.  The frames are
the same however the input is split.
"""

from __future__ import annotations

from typing import Literal

Framing = Literal["octet", "lf"]
HEADER_MAX = 8  # "LEN SP": at most 7 digits and the space
NOT_SYSLOG = "not syslog: a frame starts with a digit (octet count) or '<'"
MALFORMED_LENGTH = "malformed octet-counting frame length"


def detect(first: int) -> Framing | None:
    """The framing a stream's first byte announces (None: neither)."""
    if 0x30 <= first <= 0x39:  # a digit
        return "octet"
    return "lf" if first == 0x3C else None  # '<'


class FrameDecoder:
    """An incremental decoder of one stream's frames."""

    def __init__(self, max_frame: int, framing: Framing | None = None) -> None:
        if max_frame < 1:
            raise ValueError("max_frame must be positive")
        self.max_frame = max_frame
        self.framing: Framing | None = framing
        self.error: str | None = None
        self._buf = bytearray()
        self._need = 0  # octet counting: bytes the frame begun needs (header included)

    @property
    def pending(self) -> bytes:
        """What is held: an incomplete frame or, once failed, the input from the
        refused frame on."""
        return bytes(self._buf)

    def discard(self) -> None:
        """Forget what is held (it was dealt with)."""
        self._buf.clear()

    def feed(self, data: bytes) -> list[bytes]:
        """The frames ``data`` completes, in order; after a failure, none."""
        if self.error is not None:
            return []
        self._buf += data
        if self.framing is None:
            if not self._buf:
                return []
            self.framing = detect(self._buf[0])
            if self.framing is None:
                self.error = NOT_SYSLOG
                return []
        return self._octet() if self.framing == "octet" else self._lf()

    def end(self) -> list[bytes]:
        """The input has ended.  In LF framing, a last line without its LF is a frame;
        an incomplete octet-counted frame stays in :attr:`pending`."""
        if self.error is not None or self.framing != "lf" or not self._buf:
            return []
        last = bytes(self._buf)
        self._buf.clear()
        return [last] if last.strip(b"\r") else []

    def _fail(self, reason: str, rest: bytes | bytearray | None = None) -> None:
        self.error = reason
        if rest is not None:
            self._buf[:] = rest

    def _lf(self) -> list[bytes]:
        buf, limit = self._buf, self.max_frame
        end = buf.rfind(b"\n")
        if end < 0:
            if len(buf) > limit:
                self._fail(f"a line is longer than {limit} bytes")
            return []
        lines = bytes(buf[:end]).split(b"\n")
        del buf[: end + 1]
        if any(len(line) > limit for line in lines):
            at = next(i for i, line in enumerate(lines) if len(line) > limit)
            self._fail(f"a line is longer than {limit} bytes", b"\n".join(lines[at:]) + b"\n" + buf)
            lines = lines[:at]
        elif len(buf) > limit:
            self._fail(f"a line is longer than {limit} bytes")
        return [line for line in lines if line.strip(b"\r")]

    def _octet(self) -> list[bytes]:
        if len(self._buf) < self._need:  # the frame begun is not complete yet
            return []
        buf, limit = bytes(self._buf), self.max_frame  # bytes: slices are copied once
        pos, size, frames = 0, len(buf), []
        self._need = 0
        while pos < size:
            sp = buf.find(b" ", pos, pos + HEADER_MAX)
            if sp < 0:
                if size - pos >= HEADER_MAX or not buf[pos:].isdigit():
                    self._fail(MALFORMED_LENGTH)
                break
            digits = buf[pos:sp]
            if not digits.isdigit() or digits[:1] == b"0":
                self._fail(MALFORMED_LENGTH)
                break
            n = int(digits)
            if n > limit:
                self._fail(f"a frame of {n} bytes exceeds the limit of {limit}")
                break
            if sp + 1 + n > size:
                self._need = sp + 1 + n - pos
                break
            frames.append(buf[sp + 1 : sp + 1 + n])
            pos = sp + 1 + n
        del self._buf[:pos]
        return frames
