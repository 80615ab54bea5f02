"""Property tests of target classification: every spelling of every non-public address is
refused; public unicast addresses pass in every spelling."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network, IPv6Address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hookpost.targets import TargetRefused, is_public_address, validate_target_url

NON_PUBLIC_V4 = [
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
    "172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.168.0.0/16", "198.18.0.0/15",
    "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
]  # fmt: skip


def v4_in(network: str) -> st.SearchStrategy[IPv4Address]:
    net = IPv4Network(network)
    first = int(net.network_address)
    return st.integers(first, first + net.num_addresses - 1).map(IPv4Address)


non_public_v4 = st.sampled_from(NON_PUBLIC_V4).flatmap(v4_in)
public_v4 = (
    st.integers(0, 2**32 - 1)
    .map(IPv4Address)
    .filter(
        lambda a: (
            a.is_global
            and not a.is_multicast
            and not any(a in IPv4Network(n) for n in NON_PUBLIC_V4)
        )
    )
)


def spellings(address: IPv4Address) -> list[str]:
    """URL hosts that libc, browsers or a NAT64 gateway take to mean this IPv4 address."""
    value = int(address)
    a, b, c, d = address.packed
    return [
        str(address),
        str(value),  # decimal
        hex(value),  # hex
        ".".join(f"0{o:o}" for o in address.packed),  # octal
        f"{a}.{(b << 16) | (c << 8) | d}",  # short: a.bcd
        f"{a}.{b}.{(c << 8) | d}",  # short: a.b.cd
        f"0x{a:x}.{b}.{c}.{d}",  # mixed
        f"[::ffff:{address}]",  # IPv4-mapped
        f"[::ffff:{value >> 16:x}:{value & 0xFFFF:x}]",
        f"[64:ff9b::{address}]",  # NAT64 well-known prefix
        f"[2002:{value >> 16:x}:{value & 0xFFFF:x}::1]",  # 6to4
    ]


@settings(max_examples=300, derandomize=True)
@given(address=non_public_v4)
def test_every_spelling_of_a_non_public_ipv4_address_is_refused(address):
    for host in spellings(address):
        with pytest.raises(TargetRefused):
            validate_target_url(f"http://{host}/hook", allow_private=False, resolve=False)


@settings(max_examples=300, derandomize=True)
@given(address=public_v4)
def test_public_ipv4_addresses_pass_in_every_spelling(address):
    assert is_public_address(address)
    for host in spellings(address):
        assert validate_target_url(f"https://{host}/hook", allow_private=False, resolve=False)


@settings(max_examples=200, derandomize=True)
@given(
    address=st.sampled_from(["fc00::/7", "fd00:ec2::/32", "fe80::/10", "ff00::/8", "2001:db8::/32"])
    .map(lambda n: IPv6Address(n.split("/")[0]))
    .flatmap(lambda base: st.integers(0, 2**64 - 1).map(lambda low: IPv6Address(int(base) | low)))
)
def test_non_public_ipv6_addresses_are_refused(address):
    with pytest.raises(TargetRefused):
        validate_target_url(f"http://[{address}]/hook", allow_private=False, resolve=False)


@settings(max_examples=100, derandomize=True)
@given(address=non_public_v4)
def test_allowing_private_targets_accepts_them(address):
    url = f"http://{address}:8080/hook"
    assert validate_target_url(url, allow_private=True, resolve=False) == url
