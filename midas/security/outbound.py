"""Requests to URLs that users give (external calendars) reach public addresses only.

A URL from a user makes the service connect where the user says. Unchecked, that reaches
what only the service can reach (server-side request forgery): its own loopback, the
private network, the cloud's metadata service. So, for such URLs:

- the scheme is http or https;
- a host written as an IP address must be public; a name is resolved, and every address
  it resolves to must be public, or the request is refused;
- the connection goes to the very addresses that were checked: the check is made by the
  connector's resolver, so no second lookup can answer differently (DNS rebinding);
- redirects are followed here, one hop at a time, each new URL checked the same way;
- hosts in ``allowed_hosts`` (``MIDAS_OUTBOUND_ALLOWED_HOSTS``) skip the address check:
  tests and local mirrors.

Public means none of loopback, private, link-local, shared (100.64.0.0/10), site-local,
multicast, reserved, unspecified, nor a cloud metadata address. An IPv4 address carried
inside IPv6 (IPv4-mapped, IPv4-compatible, 6to4, NAT64) is judged as that IPv4 address.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver
from yarl import URL

IPAddress = IPv4Address | IPv6Address
SCHEMES = frozenset({"http", "https"})
REDIRECTS = frozenset({301, 302, 303, 307, 308})
# Instance metadata services: AWS (IPv4 and IPv6), ECS tasks, Azure's host, Alibaba.
# GCP's and most others' sit at 169.254.169.254, link-local like every 169.254/16.
METADATA = frozenset(ip_address(a) for a in (
    "169.254.169.254", "169.254.170.2", "168.63.129.16", "100.100.100.200", "fd00:ec2::254"))
_IPV4_COMPATIBLE = ip_network("::/96")
_NAT64 = ip_network("64:ff9b::/96")


class OutboundRefused(Exception):
    """The URL may not be fetched: its scheme, or an address it leads to, is not allowed."""


class TooManyRedirects(Exception):
    pass


def is_public(address: IPAddress) -> bool:
    if isinstance(address, IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return is_public(embedded)
        if address.is_site_local:
            return False
    return address.is_global and not address.is_multicast and address not in METADATA


def _embedded_ipv4(address: IPv6Address) -> IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64 or (address in _IPV4_COMPATIBLE and int(address) > 1):
        return IPv4Address(int(address) & 0xFFFF_FFFF)
    return None


class OutboundGuard:
    """Checks URLs and hands out sessions whose every connection is checked."""

    def __init__(self, allowed_hosts: Iterable[str] = (),
                 resolver: AbstractResolver | None = None) -> None:
        """``resolver``: the system's (getaddrinfo, nothing to close) unless given."""
        self.allowed_hosts = frozenset(_normal_host(h) for h in allowed_hosts if h.strip())
        self._base = resolver
        self._public: PublicResolver | None = None

    @property
    def _resolver(self) -> PublicResolver:
        if self._public is None:  # made in the event loop (ThreadedResolver needs it)
            self._public = PublicResolver(self, self._base or ThreadedResolver())
        return self._public

    def is_allowed_host(self, host: str) -> bool:
        return _normal_host(host) in self.allowed_hosts

    def check_url(self, url: URL) -> None:
        """Refuse a URL by its scheme, or by its host when that is an IP address (names are
        checked when they are resolved, by the session's resolver)."""
        if url.scheme not in SCHEMES or not url.host:
            raise OutboundRefused("only http and https URLs with a host can be fetched")
        if self.is_allowed_host(url.host):
            return
        address = _literal(url.host)
        if address is not None and not is_public(address):
            raise OutboundRefused(_NOT_PUBLIC)

    async def check(self, url: URL) -> None:
        """``check_url``, then resolve a name and check every address (a name that does not
        resolve now passes: fetching it later is checked again)."""
        self.check_url(url)
        host = url.host or ""
        if self.is_allowed_host(host) or _literal(host) is not None:
            return
        try:
            await self._resolver.resolve(host, url.port or 0, socket.AF_UNSPEC)
        except OSError:
            return

    def session(self) -> aiohttp.ClientSession:
        """A session whose connections go only where ``PublicResolver`` lets them (no
        proxy from the environment either)."""
        connector = aiohttp.TCPConnector(resolver=self._resolver)
        return aiohttp.ClientSession(connector=connector, trust_env=False)

    @asynccontextmanager
    async def get(
        self, session: aiohttp.ClientSession, url: str, *, headers: Mapping[str, str],
        max_redirects: int,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """GET ``url`` with ``session`` (one of ``session()``), following at most
        ``max_redirects`` redirects, each checked before it is followed."""
        target = _parse(url)
        for _hop in range(max_redirects + 1):
            self.check_url(target)
            response = await session.get(target, headers=headers, allow_redirects=False)
            location = response.headers.get("Location")
            if response.status not in REDIRECTS or not location:
                try:
                    yield response
                finally:
                    response.release()
                return
            response.release()
            target = target.join(_parse(location))
        raise TooManyRedirects(f"more than {max_redirects} redirects")


class PublicResolver(AbstractResolver):
    """Resolves with ``base``, and refuses a name any of whose addresses is not public; the
    connector connects to exactly the addresses returned."""

    def __init__(self, guard: OutboundGuard, base: AbstractResolver) -> None:
        self._guard = guard
        self._base = base

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        results = await self._base.resolve(host, port, family)
        if not self._guard.is_allowed_host(host):
            for result in results:
                if not is_public(ip_address(result["host"])):
                    raise OutboundRefused(_NOT_PUBLIC)
        return results

    async def close(self) -> None:
        await self._base.close()


_NOT_PUBLIC = "the address is not a public one (loopback, private, link-local or metadata)"


def _normal_host(host: str) -> str:
    return host.strip().strip("[]").rstrip(".").lower()


def _literal(host: str) -> IPAddress | None:
    try:
        return ip_address(_normal_host(host))
    except ValueError:
        return None


def _parse(url: str) -> URL:
    try:
        return URL(url)
    except (ValueError, TypeError):
        raise OutboundRefused("not a valid URL") from None
