"""Syslog messages (RFC 5424 and RFC 3164) as structured events.  Pure: no I/O.

:func:`parse` never raises for bad input: a message that does not parse
becomes ``{"raw": ..., "parse_error": reason}``, so nothing is dropped.
Every event keeps the message's raw text.
"""

from __future__ import annotations

import re
from typing import Any

FACILITIES = (
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron",
    "authpriv", "ftp", "ntp", "audit", "alert", "clock", "local0", "local1", "local2",
    "local3", "local4", "local5", "local6", "local7",
)  # fmt: skip
SEVERITIES = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")
NIL = "-"
BOM = "\ufeff"

_PRI = re.compile(r"<(\d{1,3})>")
_RFC3164_TIME = re.compile(
    r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) ([ \d]\d) (\d\d:\d\d:\d\d) "
)
_RFC5424_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?(Z|[+-]\d\d:\d\d)$")
_TAG = re.compile(r"([^\s\[\]:]{1,48})(?:\[([^\]\s]{1,128})\])?: ?")
_SD_NAME = re.compile(r'[^\s=\]"]{1,32}')
# Fast paths; the slower code below runs only to explain a failure.
_HEADER_5424 = re.compile(
    r"([!-~]{1,40}) ([!-~]{1,255}) ([!-~]{1,48}) ([!-~]{1,128}) ([!-~]{1,32}) "
)
_FAST_5424 = re.compile(
    r"<(\d{1,3})>1 ([!-~]{1,40}) ([!-~]{1,255}) ([!-~]{1,48}) ([!-~]{1,128}) ([!-~]{1,32}) "
)
_SD_ELEMENT = re.compile(r'\[([^\s=\]"]{1,32})((?: [^\s=\]"]{1,32}="(?:[^"\\]|\\.)*")*)\]')
_SD_PARAM = re.compile(r' ([^\s=\]"]{1,32})="((?:[^"\\]|\\.)*)"')
_SD_ESCAPE = re.compile(r'\\(["\\\]])')


class SyslogError(ValueError):
    pass


def decode(raw: bytes) -> tuple[str, bool]:
    """UTF-8 text of a message; True if bytes had to be replaced."""
    try:
        return raw.decode("utf-8"), False
    except UnicodeDecodeError:
        return raw.decode("utf-8", "replace"), True


def parse(raw: bytes) -> dict[str, Any]:
    """One syslog message (without framing) -> an event."""
    text, lossy = decode(raw.rstrip(b"\r\n\x00"))
    try:
        ev = parse_text(text)
    except SyslogError as e:
        ev = {"raw": text, "parse_error": str(e)}
    else:
        ev["raw"] = text
    if lossy:
        ev["raw_invalid_utf8"] = True
    return ev


def _fast5424(text: str) -> dict[str, Any] | None:
    """The common RFC 5424 message in one pass; None sends it the careful way."""
    m = _FAST_5424.match(text)
    if m is None:
        return None
    p, ts, host, app, procid, msgid = m.groups()
    if p[0] == "0" and len(p) > 1:
        return None
    pri = int(p)
    if pri > 191 or (ts != NIL and _RFC5424_TIME.match(ts) is None):
        return None
    pos = m.end()
    sd: dict[str, dict[str, str]] = {}
    if text.startswith(NIL, pos):
        pos += 1
    else:
        while (e := _SD_ELEMENT.match(text, pos)) is not None:
            sd[e.group(1)] = {
                k: _SD_ESCAPE.sub(r"\1", v) if "\\" in v else v
                for k, v in _SD_PARAM.findall(e.group(2))
            }
            pos = e.end()
        if not sd:
            return None
    if pos < len(text) and text[pos] != " ":
        return None
    msg = text[pos + 1 :]
    return {
        "pri": pri,
        "facility": FACILITIES[pri >> 3],
        "severity": SEVERITIES[pri & 7],
        "syslog": "rfc5424",
        "timestamp": None if ts == NIL else ts,
        "hostname": None if host == NIL else host,
        "app_name": None if app == NIL else app,
        "procid": None if procid == NIL else procid,
        "msgid": None if msgid == NIL else msgid,
        "structured_data": sd,
        "message": msg[1:] if msg.startswith(BOM) else msg,
    }


def parse_text(text: str) -> dict[str, Any]:
    fast = _fast5424(text)
    if fast is not None:
        return fast
    m = _PRI.match(text)
    if m is None:
        raise SyslogError("no <PRI> at the start of the message")
    pri = int(m.group(1))
    if pri > 191 or (len(m.group(1)) > 1 and m.group(1)[0] == "0"):
        raise SyslogError(f"invalid PRI <{m.group(1)}>")
    rest = text[m.end() :]
    head = {"pri": pri, "facility": FACILITIES[pri >> 3], "severity": SEVERITIES[pri & 7]}
    if rest[:2] == "1 ":
        return {**head, **_rfc5424(rest[2:])}
    return {**head, **_rfc3164(rest)}


def _field(rest: str, name: str, limit: int) -> tuple[str | None, str]:
    value, sep, tail = rest.partition(" ")
    if not sep and name != "msgid":
        raise SyslogError(f"message ends before {name}")
    if not value or len(value) > limit or any(ord(c) < 33 or ord(c) > 126 for c in value):
        raise SyslogError(f"invalid {name}")
    return (None if value == NIL else value), tail


def _rfc5424(full: str) -> dict[str, Any]:
    m = _HEADER_5424.match(full)
    if m is None:
        return _rfc5424_slow(full)
    ts, host, app, procid, msgid = (None if v == NIL else v for v in m.groups())
    if ts is not None and not _RFC5424_TIME.match(ts):
        raise SyslogError("invalid RFC 5424 timestamp")
    rest = full[m.end() :]
    if rest.startswith(NIL):
        sd: dict[str, dict[str, str]] = {}
        rest = rest[1:]
    else:
        sd = {}
        pos = 0
        while True:
            e = _SD_ELEMENT.match(rest, pos)
            if e is None:
                break
            sd[e.group(1)] = {
                k: _SD_ESCAPE.sub(r"\1", v) if "\\" in v else v
                for k, v in _SD_PARAM.findall(e.group(2))
            }
            pos = e.end()
        if pos == 0 or (pos < len(rest) and rest[pos] != " "):
            return _rfc5424_slow(full)
        rest = rest[pos:]
    return _event5424((ts, host, app, procid, msgid), sd, rest)


def _event5424(
    head: tuple[str | None, ...], sd: dict[str, dict[str, str]], rest: str
) -> dict[str, Any]:
    if rest.startswith(" "):
        rest = rest[1:]
    elif rest:
        raise SyslogError("no space after structured data")
    ts, host, app, procid, msgid = head
    return {
        "syslog": "rfc5424",
        "timestamp": ts,
        "hostname": host,
        "app_name": app,
        "procid": procid,
        "msgid": msgid,
        "structured_data": sd,
        "message": rest.removeprefix(BOM),
    }


def _rfc5424_slow(rest: str) -> dict[str, Any]:
    ts, rest = _field(rest, "timestamp", 40)
    if ts is not None and not _RFC5424_TIME.match(ts):
        raise SyslogError("invalid RFC 5424 timestamp")
    host, rest = _field(rest, "hostname", 255)
    app, rest = _field(rest, "app_name", 48)
    procid, rest = _field(rest, "procid", 128)
    msgid, rest = _field(rest, "msgid", 32)
    sd, rest = _structured_data(rest)
    return _event5424((ts, host, app, procid, msgid), sd, rest)


def _structured_data(s: str) -> tuple[dict[str, dict[str, str]], str]:
    if s.startswith(NIL):
        return {}, s[1:]
    out: dict[str, dict[str, str]] = {}
    i = 0
    if not s.startswith("["):
        raise SyslogError("structured data must be '-' or start with '['")
    while i < len(s) and s[i] == "[":
        m = _SD_NAME.match(s, i + 1)
        if m is None:
            raise SyslogError("invalid SD-ID")
        params: dict[str, str] = {}
        out[m.group(0)] = params
        i = m.end()
        while i < len(s) and s[i] == " ":
            m = _SD_NAME.match(s, i + 1)
            if m is None or s[m.end() : m.end() + 2] != '="':
                raise SyslogError("invalid SD-PARAM")
            name = m.group(0)
            i = m.end() + 2
            value: list[str] = []
            while True:
                if i >= len(s):
                    raise SyslogError("unterminated SD-PARAM value")
                c = s[i]
                if c == "\\" and i + 1 < len(s) and s[i + 1] in '"\\]':
                    value.append(s[i + 1])
                    i += 2
                elif c == '"':
                    i += 1
                    break
                else:
                    value.append(c)
                    i += 1
            params[name] = "".join(value)
        if i >= len(s) or s[i] != "]":
            raise SyslogError("unterminated SD-ELEMENT")
        i += 1
    return out, s[i:]


def _rfc3164(rest: str) -> dict[str, Any]:
    ev: dict[str, Any] = {"syslog": "rfc3164", "timestamp": None, "hostname": None}
    m = _RFC3164_TIME.match(rest)
    if m is not None:
        ev["timestamp"] = f"{m.group(1)} {m.group(2)} {m.group(3)}"
        rest = rest[m.end() :]
        host, sep, tail = rest.partition(" ")
        # The hostname is optional; a "tag:" in its place is the tag.
        if sep and host and not _TAG.fullmatch(host + " ") and not host.endswith(":"):
            ev["hostname"] = host
            rest = tail
    t = _TAG.match(rest)
    if t is not None:
        ev["app_name"] = t.group(1)
        ev["procid"] = t.group(2)
        rest = rest[t.end() :]
    else:
        ev["app_name"] = ev["procid"] = None
    ev["message"] = rest
    return ev
