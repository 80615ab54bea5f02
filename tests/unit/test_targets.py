"""SSRF checks on webhook target URLs; no test touches the network."""

from __future__ import annotations

import socket
import threading
from ipaddress import IPv4Address, IPv6Address, ip_address

import pytest

from hookpost import targets
from hookpost.targets import (
    TargetRefused,
    check_address,
    is_public_address,
    parse_ip_literal,
    validate_target_url,
)


@pytest.fixture(autouse=True)
def lookups(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Every name fails to resolve unless a test says otherwise; calls are recorded."""
    calls: list[tuple[str, int]] = []

    def fail(host: str, port: int, *args: object, **kwargs: object) -> list:
        calls.append((host, port))
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", fail)
    return calls


def resolving_to(monkeypatch: pytest.MonkeyPatch, *addresses: str) -> list[tuple]:
    """Make getaddrinfo answer every name with these addresses."""
    calls: list[tuple[str, int]] = []

    def answer(host: str, port: int, *args: object, **kwargs: object) -> list:
        calls.append((host, port))
        return [
            (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, port, 0, 0))
            if ":" in address
            else (socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))
            for address in addresses
        ]

    monkeypatch.setattr(socket, "getaddrinfo", answer)
    return calls


REFUSED = [
    # IPv4 loopback in every spelling libc or a browser accepts
    "http://127.0.0.1/",
    "http://127.0.0.1./",
    "http://2130706433/",
    "http://127.1/",
    "http://127.0.1/",
    "http://0x7f.0.0.1/",
    "http://0x7f000001/",
    "http://0X7F.1/",
    "http://0177.0.0.1/",
    "http://0177.0x0.1/",
    "http://0x7f.0.0.0x1/",
    "http://%31%32%37.0.0.1/",
    "http://\uff11\uff12\uff17.\uff10.\uff10.\uff11/",
    "https://user:pw@127.0.0.1:8443/x",
    # IPv6 loopback and its IPv4 wrappers
    "http://[::1]/",
    "http://[0:0:0:0:0:0:0:1]:8080/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:7f00:1]/",
    "http://[::127.0.0.1]/",
    "http://[64:ff9b::127.0.0.1]/",
    "http://[64:ff9b::a00:1]/",
    "http://[64:ff9b:1::a00:1]/",
    "http://[64:ff9b:1::808:808]/",
    "http://[2002:7f00:1::1]/",
    "http://[2002:c0a8:101::]/",
    "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/",
    "http://[::ffff:0:7f00:1]/",
    # link-local, including zone ids, and cloud metadata
    "http://[fe80::1]/",
    "http://[fe80::1%25eth0]/",
    "http://[FE80::abcd%25en0]:80/",
    "http://169.254.169.254/latest/meta-data/",
    "http://2852039166/latest/meta-data/",
    "http://0xa9fea9fe/",
    "http://[::ffff:169.254.169.254]/",
    "http://[fd00:ec2::254]/latest/meta-data/",
    # private, shared, unspecified, multicast, broadcast, reserved, benchmarking, documentation
    "http://10.0.0.1/",
    "http://012.0.0.1/",
    "http://172.16.0.1/",
    "http://172.31.255.254/",
    "http://192.168.1.1/",
    "http://192.168.0x1.1/",
    "http://100.64.0.1/",
    "http://0.0.0.0/",
    "http://0/",
    "http://[::]/",
    "http://224.0.0.1/",
    "http://239.255.255.250/",
    "http://255.255.255.255/",
    "http://4294967295/",
    "http://240.0.0.1/",
    "http://198.18.0.1/",
    "http://192.0.2.1/",
    "http://198.51.100.7/",
    "http://203.0.113.9/",
    "http://192.0.0.8/",
    "http://[fc00::1]/",
    "http://[fd12:3456:789a::1]/",
    "http://[fec0::1]/",
    "http://[ff02::1]/",
    "http://[ff0e::1]/",
    "http://[2001:db8::1]/",
    "http://[100::1]/",
    # localhost names are refused without resolving
    "http://localhost/",
    "http://localhost:8080/hook",
    "http://LOCALHOST./",
    "http://localhost../",
    "http://api.localhost/",
    "http://a.b.LocalHost./",
    "http://\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54/",
    # numeric hosts that are not valid addresses: browsers reject them, libc might not
    "http://256.1.1.1/",
    "http://08.0.0.1/",
    "http://4294967296/",
    "http://example.0x10/",
    "http://example.123/",
]


@pytest.mark.parametrize("url", REFUSED)
def test_refuses_non_public_targets(url: str, lookups: list[tuple[str, int]]) -> None:
    with pytest.raises(TargetRefused):
        validate_target_url(url, allow_private=False)
    assert lookups == []


@pytest.mark.parametrize(
    "url",
    [
        "http://93.184.216.34/",
        "https://8.8.8.8/hook",
        "http://134744072/",
        "http://8.8.8.8./",
        "https://[2606:4700::1111]/",
        "https://[2606:4700:4700::1111]:8443/x?y=1",
        "http://[::ffff:8.8.8.8]/",
        "http://[64:ff9b::808:808]/",
        "http://[2002:808:808::1]/",
        "https://example.com/hook",
        "HTTPS://Example.COM./hook",
        "https://example.com:8443/hook?a=1#frag",
        "https://b\u00fccher.example/hook",
        "https://under_score.example.com/",
        "https://localhost.example.com/",
    ],
)
def test_accepts_public_and_unresolvable_targets(url: str) -> None:
    assert validate_target_url(url, allow_private=False) == url


def test_returns_the_url_stripped() -> None:
    url = "  https://example.com/hook\n"
    assert validate_target_url(url, allow_private=False) == "https://example.com/hook"


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/file",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "gopher://127.0.0.1:6379/_FLUSHALL",
        "data:text/plain,hi",
        "example.com/hook",
        "//example.com/hook",
        "httpx://example.com/",
    ],
)
@pytest.mark.parametrize("allow_private", [False, True])
def test_refuses_other_schemes(url: str, allow_private: bool) -> None:
    with pytest.raises(TargetRefused, match="scheme"):
        validate_target_url(url, allow_private=allow_private)


NO_HOST = ["http://", "https:///path", "http://:8080/", "http://user@/", "https://?q=1"]


@pytest.mark.parametrize("url", NO_HOST)
@pytest.mark.parametrize("allow_private", [False, True])
def test_requires_a_host(url: str, allow_private: bool) -> None:
    with pytest.raises(TargetRefused, match="host"):
        validate_target_url(url, allow_private=allow_private)


@pytest.mark.parametrize(
    "url",
    [
        "",
        "   ",
        "https://example.com:0/",
        "https://example.com:65536/",
        "https://example.com:http/",
        "https://[::1/",
        "https://[not-an-ip]/",
        "https://exa mple.com/",
        "https://example.com/a\nb",
        "https://example.com/\x00",
        "https://evil.example\\@127.0.0.1/",
        "https://exa%2fmple.com/",
        "https://a..b/",
    ],
)
def test_refuses_malformed_urls(url: str) -> None:
    with pytest.raises(TargetRefused):
        validate_target_url(url, allow_private=False)


def test_length_limit() -> None:
    base = "https://example.com/"
    longest = base + "a" * (2048 - len(base))
    assert validate_target_url(longest, allow_private=False) == longest
    with pytest.raises(TargetRefused, match="2048"):
        validate_target_url(longest + "a", allow_private=False)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9000/x",
        "http://localhost:9000/x",
        "http://[::1]:9000/x",
        "http://10.0.0.7/hook",
        "http://169.254.169.254/",
    ],
)
def test_allow_private_only_checks_syntax(url: str, lookups: list[tuple]) -> None:
    assert validate_target_url(url, allow_private=True) == url
    assert lookups == []


@pytest.mark.parametrize(
    "addresses",
    [
        ("10.0.0.5",),
        ("127.0.0.1",),
        ("169.254.169.254",),
        ("::1",),
        ("fe80::1%eth0",),
        ("::ffff:192.168.0.1",),
        ("93.184.216.34", "10.0.0.5"),
        ("2606:4700::1111", "fd00:ec2::254"),
    ],
)
def test_refuses_a_name_resolving_to_any_private_address(
    monkeypatch: pytest.MonkeyPatch, addresses: tuple[str, ...]
) -> None:
    resolving_to(monkeypatch, *addresses)
    with pytest.raises(TargetRefused, match=r"internal\.example\.com resolves"):
        validate_target_url("https://internal.example.com/hook", allow_private=False)


def test_accepts_a_name_resolving_to_public(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = resolving_to(monkeypatch, "93.184.216.34", "2606:2800:220:1:248:1893::1")
    url = "https://Example.COM./hook"
    assert validate_target_url(url, allow_private=False) == url
    assert calls == [("example.com", 443)]


def test_resolves_with_the_url_port(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = resolving_to(monkeypatch, "8.8.8.8")
    validate_target_url("http://example.com/", allow_private=False)
    validate_target_url("http://example.com:8080/", allow_private=False)
    assert calls == [("example.com", 80), ("example.com", 8080)]


def test_resolve_false_skips_the_lookup(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = resolving_to(monkeypatch, "10.0.0.5")
    url = "https://internal.example.com/hook"
    assert validate_target_url(url, allow_private=False, resolve=False) == url
    assert calls == []
    with pytest.raises(TargetRefused):
        validate_target_url("http://127.1/", allow_private=False, resolve=False)
    with pytest.raises(TargetRefused):
        validate_target_url("http://localhost/", allow_private=False, resolve=False)


def test_unresolvable_name_is_accepted(lookups: list[tuple[str, int]]) -> None:
    url = "https://example.com/hook"
    assert validate_target_url(url, allow_private=False) == url
    assert lookups == [("example.com", 443)]


def test_slow_lookup_times_out_and_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()

    def hang(*args: object, **kwargs: object) -> list:
        release.wait(5)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.1", 443))]

    monkeypatch.setattr(socket, "getaddrinfo", hang)
    monkeypatch.setattr(targets, "RESOLVE_TIMEOUT", 0.05)
    try:
        url = "https://slow.example.com/hook"
        assert validate_target_url(url, allow_private=False) == url
    finally:
        release.set()


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("127.0.1", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("0x7F.0.0x0.01", "127.0.0.1"),
        ("0x.0x.0x.0x", "0.0.0.0"),
        ("127.0.0.1.", "127.0.0.1"),
        ("%31%32%37.1", "127.0.0.1"),
        ("2852039166", "169.254.169.254"),
        ("[::1]", "::1"),
        ("::ffff:127.0.0.1", "::ffff:7f00:1"),
        ("fe80::1%25eth0", "fe80::1"),
        ("[fe80::1%eth0]", "fe80::1"),
        ("example.com", None),
        ("localhost", None),
        ("1.2.3.4 x", None),
        ("1.2.3.4.5", None),
        ("256.0.0.1", None),
        ("08.0.0.1", None),
        ("4294967296", None),
        ("0x7g.0.0.1", None),
        ("[not::an::ip]", None),
        ("", None),
    ],
)
def test_parse_ip_literal(host: str, expected: str | None) -> None:
    parsed = parse_ip_literal(host)
    assert parsed == (None if expected is None else ip_address(expected))


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("93.184.216.34", True),
        ("2606:4700::1111", True),
        ("::ffff:8.8.8.8", True),
        ("64:ff9b::8.8.8.8", True),
        ("2002:808:808::", True),
        ("::8.8.8.8", True),
        ("127.0.0.1", False),
        ("100.127.255.255", False),
        ("192.88.99.1", False),
        ("224.0.0.251", False),
        ("::", False),
        ("::1", False),
        ("::ffff:10.1.2.3", False),
        ("64:ff9b::192.168.1.1", False),
        ("2002:a00:1::", False),
        ("2001::1", False),
        ("fd00:ec2::254", False),
        ("ff05::2", False),
    ],
)
def test_is_public_address(address: str, public: bool) -> None:
    assert is_public_address(ip_address(address)) is public


PUBLIC = ["8.8.8.8", "2606:4700::1111", IPv4Address("1.1.1.1"), IPv6Address("2a00::1")]


@pytest.mark.parametrize("address", PUBLIC)
def test_check_address_accepts_public(address: str | IPv4Address | IPv6Address) -> None:
    check_address(address)


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.0.0.1",
        "169.254.169.254",
        "::1",
        "fe80::1%eth0",
        "::ffff:10.0.0.1",
        "0.0.0.0",
        IPv4Address("192.168.1.1"),
        IPv6Address("fd00:ec2::254"),
        "not-an-address",
    ],
)
def test_check_address_refuses(address: str | IPv4Address | IPv6Address) -> None:
    with pytest.raises(TargetRefused):
        check_address(address)


def test_refusal_is_a_value_error_with_a_readable_reason() -> None:
    with pytest.raises(ValueError, match=r"169\.254\.169\.254 is not a public address"):
        validate_target_url("http://2852039166/", allow_private=False)
