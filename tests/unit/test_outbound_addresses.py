"""Which addresses a user-given URL may reach, and which URLs are refused before any
lookup (midas.security.outbound)."""

from __future__ import annotations

from ipaddress import ip_address

import pytest
from yarl import URL

from midas.security.outbound import OutboundGuard, OutboundRefused, is_public

NOT_PUBLIC = [
    "127.0.0.1", "127.255.255.254", "0.0.0.0", "10.0.0.1", "172.16.0.1", "172.31.255.255",
    "192.168.1.1", "169.254.169.254", "169.254.0.1", "100.64.0.1", "100.100.100.200",
    "168.63.129.16", "224.0.0.1", "239.255.255.250", "255.255.255.255", "240.0.0.1",
    "::1", "::", "fe80::1", "fc00::1", "fd00:ec2::254", "fec0::1", "ff02::1",
    "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254", "::127.0.0.1",
    "2002:7f00:1::", "2002:a9fe:a9fe::", "64:ff9b::a9fe:a9fe", "64:ff9b::7f00:1",
]
PUBLIC = ["8.8.8.8", "1.1.1.1", "93.184.215.14", "172.32.0.1", "100.128.0.1",
          "2001:4860:4860::8888", "::ffff:8.8.8.8", "2002:808:808::", "64:ff9b::808:808"]


@pytest.mark.parametrize("address", NOT_PUBLIC)
def test_loopback_private_link_local_and_metadata_are_not_public(address: str) -> None:
    assert not is_public(ip_address(address))


@pytest.mark.parametrize("address", PUBLIC)
def test_global_unicast_addresses_are_public(address: str) -> None:
    assert is_public(ip_address(address))


@pytest.mark.parametrize("url", [
    "http://127.0.0.1/cal.ics", "http://[::1]:8080/", "http://[::ffff:127.0.0.1]/",
    "https://169.254.169.254/latest/meta-data/", "http://10.1.2.3/", "http://0.0.0.0/",
    "http://[fd00:ec2::254]/", "ftp://example.com/cal.ics", "file:///etc/passwd",
    "http:///nohost",
])
def test_urls_refused_before_any_lookup(url: str) -> None:
    with pytest.raises(OutboundRefused):
        OutboundGuard().check_url(URL(url))


def test_names_pass_the_literal_check_and_are_judged_once_resolved() -> None:
    OutboundGuard().check_url(URL("https://calendar.example.com/owner.ics"))


def test_allowed_hosts_are_exempt_by_exact_host() -> None:
    guard = OutboundGuard(["127.0.0.1", "Mirror.Local."])
    guard.check_url(URL("http://127.0.0.1:8080/cal.ics"))
    guard.check_url(URL("http://mirror.local/cal.ics"))
    for other in ("http://127.0.0.2/", "http://[::ffff:127.0.0.1]/", "ftp://127.0.0.1/"):
        with pytest.raises(OutboundRefused):
            guard.check_url(URL(other))
