"""SSRF protection: decide whether a webhook target URL may be delivered to."""

from __future__ import annotations

import re
import socket
from concurrent.futures import ThreadPoolExecutor
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from urllib.parse import unquote, urlsplit

MAX_URL_LENGTH = 2048
RESOLVE_TIMEOUT = 2.0

# Listed explicitly rather than trusting only `is_global`, whose tables change between Python
# patch releases (and which calls multicast "global"). 169.254.169.254 is the cloud metadata
# address; fd00:ec2::254, its IPv6 twin, falls in fc00::/7.
# fmt: off
_BLOCKED_V4 = tuple(IPv4Network(n) for n in (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
    "172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16",
    "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
))
# Teredo (2001::/32) stores its IPv4 client obfuscated and local-use NAT64 (64:ff9b:1::/48) has
# a variable prefix length, so neither can be unwrapped reliably: they are refused outright.
_BLOCKED_V6 = tuple(IPv6Network(n) for n in (
    "::ffff:0:0:0/96", "64:ff9b:1::/48", "100::/64", "2001::/32", "2001:2::/48",
    "2001:db8::/32", "3fff::/20", "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8",
))
# fmt: on
_NAT64 = IPv6Network("64:ff9b::/96")
# Only strings of this shape reach inet_aton, which ignores trailing garbage ("1.2.3.4 x").
_NUMERIC_HOST = re.compile(r"(?:0x[0-9a-f]*|[0-9]+)(?:\.(?:0x[0-9a-f]*|[0-9]+)){0,3}")
_HOST_NAME = re.compile(r"[a-z0-9_-]+(?:\.[a-z0-9_-]+)*")
# Shared and small, so lookups that hang past their timeout tie up at most four threads.
_resolver = ThreadPoolExecutor(max_workers=4, thread_name_prefix="hookpost-resolve")


class TargetRefused(ValueError):
    """A target URL that Hookpost will not deliver to; str(exc) is a user-facing reason."""


def is_public_address(address: IPv4Address | IPv6Address) -> bool:
    """True when the address is globally routable unicast (unwrapping mapped/NAT64/6to4/compat)."""
    if isinstance(address, IPv6Address):
        if any(address in net for net in _BLOCKED_V6):
            return False
        # Judge the IPv4 address traffic really reaches: mapped, 6to4, NAT64 well-known prefix
        # and IPv4-compatible ::/96 (holding :: and ::1, judged as 0.0.0.0 and 0.0.0.1). `or` is
        # safe: even IPv4Address("0.0.0.0") is truthy.
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and (address in _NAT64 or int(address) >> 32 == 0):
            embedded = IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return is_public_address(embedded)
    elif any(address in net for net in _BLOCKED_V4):
        return False
    return address.is_global and not address.is_multicast


def _canonical_name(host: str) -> str:
    """The host as resolvers see it: percent-decoded, IDNA-mapped (fullwidth digits), lower."""
    name = unquote(host, errors="strict")
    if not name.isascii():
        name = name.encode("idna").decode("ascii")
    return name.lower().rstrip(".")


def parse_ip_literal(host: str) -> IPv4Address | IPv6Address | None:
    """The address a URL host denotes when it is an IP literal in any form browsers/libc accept."""
    host = host.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if ":" in host:
        try:  # a zone id ("%25eth0" in URLs, "%eth0" from getaddrinfo) never makes it public
            return IPv6Address(host.split("%", 1)[0])
        except ValueError:
            return None
    try:
        host = _canonical_name(host)
        return IPv4Address(host)
    except ValueError:  # UnicodeError too: undecodable hosts are no literal
        pass
    if not _NUMERIC_HOST.fullmatch(host):
        return None
    try:  # browsers read a bare "0x" part as zero; inet_aton refuses it
        return IPv4Address(socket.inet_aton(re.sub(r"0x(?=\.|$)", "0x0", host)))
    except OSError:
        return None


def check_address(address: str | IPv4Address | IPv6Address) -> None:
    """Raise TargetRefused unless the address is public (used at send time on each one)."""
    ip = parse_ip_literal(address) if isinstance(address, str) else address
    if ip is None:
        raise TargetRefused(f"{address!r} is not an IP address")
    if not is_public_address(ip):
        raise TargetRefused(f"target address {ip} is not a public address")


def _resolve(name: str, port: int) -> list[str]:
    """The addresses name resolves to; OSError (gaierror, or TimeoutError) when it cannot."""
    future = _resolver.submit(socket.getaddrinfo, name, port, type=socket.SOCK_STREAM)
    try:
        infos = future.result(timeout=RESOLVE_TIMEOUT)
    finally:
        future.cancel()  # a no-op once it ran; drops it if still queued behind hung lookups
    families = (socket.AF_INET, socket.AF_INET6)
    return [info[4][0] for info in infos if info[0] in families]


def validate_target_url(url: str, *, allow_private: bool, resolve: bool = True) -> str:
    """Check a subscription URL at creation/update time and return it stripped.

    allow_private leaves only the syntax checks. A name that does not resolve (or not within
    RESOLVE_TIMEOUT) is accepted, because check_address runs again on each address at send time.
    """
    url = url.strip()
    if not url or len(url) > MAX_URL_LENGTH:
        raise TargetRefused(f"URL must be 1 to {MAX_URL_LENGTH} characters long")
    # Parsers disagree about these (WHATWG reads "\" as "/"), so the host checked here could
    # differ from the one the HTTP client connects to.
    if any(c.isspace() or not c.isprintable() or c == "\\" for c in url):
        raise TargetRefused("URL must not contain spaces, control characters or '\\'")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise TargetRefused("URL is malformed (bad host or port)") from None
    if parts.scheme not in ("http", "https"):
        raise TargetRefused("URL scheme must be http or https")
    if not parts.hostname:
        raise TargetRefused("URL must include a host")
    if port == 0:
        raise TargetRefused("URL port must be between 1 and 65535")
    if allow_private:
        return url
    literal = parse_ip_literal(parts.hostname)
    if literal is not None:
        if not is_public_address(literal):
            raise TargetRefused(f"target host {literal} is not a public address")
        return url
    try:
        name = _canonical_name(parts.hostname)
    except UnicodeError:  # bad percent-encoding or IDNA
        name = ""
    if not _HOST_NAME.fullmatch(name):
        raise TargetRefused("URL host is not a valid host name")
    # Browsers take a numeric last label as IPv4 and reject the URL when that fails.
    if _NUMERIC_HOST.fullmatch(name.rsplit(".", 1)[-1]):
        raise TargetRefused("URL host is not a valid IP address")
    if name == "localhost" or name.endswith(".localhost"):
        raise TargetRefused(f"target host {name} is a localhost name")
    if not resolve:
        return url
    try:
        addresses = _resolve(name, port or (443 if parts.scheme == "https" else 80))
    except OSError:  # gaierror or TimeoutError: accepted, send time checks again
        return url
    for raw in addresses:
        ip = parse_ip_literal(raw)
        if ip is None or not is_public_address(ip):
            raise TargetRefused(f"target host {name} resolves to non-public {raw}")
    return url
