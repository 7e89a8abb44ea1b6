"""Where the service may send requests of its own (to witnesses): only to
public addresses, or to networks the operator allow-listed.

A URL is checked when a tenant sets it (``check``) and again, resolved
afresh, before every connection (``resolve``): the service then connects to
the address it checked, so a name that resolves to a public address at set
time and to an internal one later (DNS rebinding) is refused.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass

from ironlog.core.policy import split_witness_url
from ironlog.errors import ConfigurationError, InvalidRequestError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Target:
    """A checked URL: where to connect (``addresses``, all allowed, in the
    resolver's order) and what to call it (``host``)."""

    scheme: str
    host: str
    port: int
    path: str
    addresses: tuple[IPAddress, ...]

    def connect_url(self, address: IPAddress) -> str:
        """The URL with a checked address in place of the name."""
        a = f"[{address}]" if address.version == 6 else str(address)
        return f"{self.scheme}://{a}:{self.port}{self.path}"

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        h = f"[{self.host}]" if ":" in self.host else self.host
        return h if self.port == default else f"{h}:{self.port}"


def _public(ip: IPAddress) -> bool:
    if isinstance(ip, ipaddress.IPv6Address):
        # IPv6 addresses that carry an IPv4 address: judged by that one too
        # (mapped, 6to4, Teredo's client and server).
        if ip.ipv4_mapped is not None:
            return _public(ip.ipv4_mapped)
        embedded = [ip.sixtofour, *(ip.teredo or ())]
        if any(v4 is not None and not _public(v4) for v4 in embedded):
            return False
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_unspecified)


@dataclass(frozen=True)
class OutboundPolicy:
    """Public addresses, plus the operator's ``allow`` networks."""

    allow: tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(cls, items: Iterable[str]) -> OutboundPolicy:
        nets = []
        for item in items:
            try:
                nets.append(ipaddress.ip_network(item.strip(), strict=False))
            except ValueError as e:
                raise ConfigurationError(
                    f"witness_allow: {item!r} is not an address or network (CIDR)"
                ) from e
        return cls(tuple(nets))

    def allowed(self, ip: IPAddress) -> bool:
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return _public(ip) or any(ip in net for net in self.allow)

    def _addresses(self, host: str, port: int) -> list[IPAddress]:
        try:
            return [ipaddress.ip_address(host)]
        except ValueError:
            pass
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as e:
            raise InvalidRequestError(f"cannot resolve {host}") from e
        out: list[IPAddress] = []
        for info in infos:
            ip = ipaddress.ip_address(str(info[4][0]).split("%")[0])
            if ip not in out:
                out.append(ip)
        return out

    def resolve(self, url: str) -> Target:
        """Resolve ``url`` now; refuse it (InvalidRequestError) unless every
        address it has is allowed."""
        scheme, host, port, path = split_witness_url(url)
        addresses = self._addresses(host, port)
        if not addresses or not all(self.allowed(ip) for ip in addresses):
            raise InvalidRequestError(
                f"{host} resolves to an address the operator does not allow "
                "(loopback, private, link-local, multicast or reserved; the operator allows "
                "networks with serve --witness-allow CIDR or IRONLOG_WITNESS_ALLOW)"
            )
        return Target(scheme, host, port, path, tuple(addresses))

    def check(self, url: str) -> None:
        """At set time: the URL is well formed and goes to an allowed address (400 if not)."""
        self.resolve(url)
