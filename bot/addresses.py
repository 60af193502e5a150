"""Network addresses from Vast.ai, checked once, and the URLs built from them (pure).

Vast.ai's instance JSON is untrusted input: ``public_ipaddr`` is meant to be an IP address
(with a trailing newline, docs/VAST_API.md §4), ``HostPort`` a port number sent as a string,
``ssh_host``/``ssh_port`` the SSH proxy. A value that is anything else (an IPv6 address is
fine; a host name, ``"127.0.0.1:9/x?y="``, a 64-character DNS label, a port of 0 or 70000)
is treated as absent, so the instance is simply "not reachable yet": nothing here raises.

Every URL the bot builds to reach an instance goes through :func:`http_url`, which brackets
IPv6 addresses (``http://[2001:db8::1]:8080/``, RFC 3986 §3.2.2).

A real Vast.ai instance has a public address. :func:`not_public` says why an address is not
one (loopback, private, link-local such as the cloud metadata address 169.254.169.254,
multicast, ...), looking through the IPv6 forms that carry an IPv4 address (IPv4-mapped
``::ffff:127.0.0.1``, NAT64 ``64:ff9b::/96``, 6to4 ``2002::/16``); :func:`reachable_ip`
applies it unless the bot talks to a local simulator (``allow_private``). The special-purpose
ranges are IANA's registries (iana.org/assignments/iana-ipv4-special-registry and
iana-ipv6-special-registry), as Python's :mod:`ipaddress` implements them.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any
from urllib.parse import quote, urlsplit

__all__ = [
    "MAX_PORT",
    "NOT_AN_ADDRESS",
    "address_problem",
    "host_or_none",
    "http_url",
    "ip_or_none",
    "not_public",
    "port_or_none",
    "reachable_ip",
]

#: The highest TCP port number.
MAX_PORT = 65535
# RFC 1123 host name: labels of 1-63 letters, digits and hyphens, not starting or ending with
# a hyphen; 253 characters at most in all.
_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
_MAX_HOST = 253
# Characters a URL path, query and fragment may hold as they are (RFC 3986 §3.3-3.5), besides
# letters, digits and ``_.-~``; ``%`` keeps an escape the template already wrote.
_PATH_SAFE = "/?#@!$&'()*+,;=:%"

#: Why an instance whose ``public_ipaddr`` is not an IP address cannot be reached.
NOT_AN_ADDRESS = "the address Vast.ai gave is not an IP address"
# RFC 6598 shared address space (carrier-grade NAT; some clouds serve their metadata there,
# e.g. 100.100.100.200): Python 3.11 counts it as neither private nor global.
_SHARED = ipaddress.ip_network("100.64.0.0/10")
# RFC 6052 NAT64 well-known prefix: the last 32 bits are the IPv4 address reached.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_PRIVATE_NETWORKS = tuple(
    ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")
)


def ip_or_none(value: Any) -> str | None:
    """``value`` as a normalised IPv4 or IPv6 address (``"2001:db8::1"``, no brackets), or
    None when it is not one (a host name, an address with a port, path or zone id, empty,
    not a string). Surrounding whitespace (Vast.ai's trailing newline) is ignored."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text or "%" in text:  # a zone id (fe80::1%eth0) names a local interface
        return None
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def host_or_none(value: Any) -> str | None:
    """``value`` as an IP address (:func:`ip_or_none`) or an RFC 1123 host name
    (``"ssh4.vast.ai"``), or None for anything else."""
    address = ip_or_none(value)
    if address is not None:
        return address
    if not isinstance(value, str):
        return None
    text = value.strip().rstrip(".")
    if not text or len(text) > _MAX_HOST:
        return None
    if all(_LABEL.fullmatch(label) for label in text.split(".")):
        return text
    return None


def port_or_none(value: Any) -> int | None:
    """A TCP port 1..65535 from an int or a string of digits (``"41188"``), else None
    (booleans, floats, out of range, garbage)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        port = value
    elif isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        port = int(value.strip())
    else:
        return None
    return port if 1 <= port <= MAX_PORT else None


def http_url(host: Any, port: Any, path: str = "/", *, scheme: str = "http") -> str | None:
    """``{scheme}://{host}:{port}{path}`` for a valid IP address or host name and port, with
    an IPv6 address in brackets; None when either is not usable or ``scheme`` is not
    ``http``/``https``. ``path`` must start with ``/`` (else one is added); characters that
    may not appear in a URL (spaces, ``\\``, control characters, non-ASCII) are
    percent-encoded (RFC 3986 §2.1), so the URL reaches ``host:port`` whatever the path
    holds (checked: a URL whose parsed host or port differ is never returned)."""
    name = host_or_none(host)
    number = port_or_none(port)
    if name is None or number is None or scheme not in ("http", "https"):
        return None
    authority = f"[{name}]" if ":" in name else name  # IPv6 in brackets
    if not path.startswith("/"):
        path = "/" + path
    url = f"{scheme}://{authority}:{number}{quote(path, safe=_PATH_SAFE)}"
    parts = urlsplit(url)
    try:
        same = parts.hostname == name.lower() and parts.port == number
    except ValueError:  # a port urllib cannot read
        same = False
    return url if same else None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (IPv4-mapped, NAT64, 6to4), else None."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def not_public(value: Any) -> str | None:
    """Why ``value`` (an IP address, as :func:`ip_or_none` accepts it) is not a public
    address, in a word or two (``"loopback"``, ``"private"``, ``"link-local"``,
    ``"multicast"``, ``"unspecified"``, ``"reserved"``, ``"shared (carrier-grade NAT)"``,
    ``"site-local"``, ``"not globally routable"``: documentation, benchmarking and the other
    special-purpose ranges); ``"not an IP address"`` when it is none; None when it is public.
    An IPv6 form of an IPv4 address (``::ffff:10.0.0.1``, ``64:ff9b::a00:1``,
    ``2002:a00:1::``) is judged by its IPv4 address, prefixed ``"IPv4-mapped "``."""
    text = ip_or_none(value)
    if text is None:
        return "not an IP address"
    address: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(text)
    prefix = ""
    if isinstance(address, ipaddress.IPv6Address):
        inner = _embedded_ipv4(address)
        if inner is not None:
            address, prefix = inner, "IPv4-mapped "
    kind: str | None = None
    if address.is_unspecified:
        kind = "unspecified"
    elif address.is_loopback:
        kind = "loopback"
    elif address.is_link_local:
        kind = "link-local"
    elif address.is_multicast:
        kind = "multicast"
    elif isinstance(address, ipaddress.IPv4Address) and address in _SHARED:
        kind = "shared (carrier-grade NAT)"
    elif isinstance(address, ipaddress.IPv6Address) and address.is_site_local:
        kind = "site-local"
    elif address.is_reserved:
        kind = "reserved"
    elif address.is_private and _rfc1918_or_ula(address):
        kind = "private"
    elif not address.is_global:
        kind = "not globally routable"
    return prefix + kind if kind is not None else None


def _rfc1918_or_ula(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """10/8, 172.16/12, 192.168/16 (RFC 1918) or fc00::/7 (RFC 4193 unique local)."""
    return any(address in network for network in _PRIVATE_NETWORKS)


def address_problem(value: Any) -> str | None:
    """Why the raw ``public_ipaddr`` ``value`` cannot be used at all (:data:`NOT_AN_ADDRESS`),
    or None when it is an IP address or simply absent (null, empty: not assigned yet)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return None if ip_or_none(value) is not None else NOT_AN_ADDRESS


def reachable_ip(value: Any, *, allow_private: bool = False) -> tuple[str | None, str | None]:
    """``(address, None)`` when ``value`` is an IP address the bot may connect to: a public one,
    or any one with ``allow_private`` (the bot talks to a local simulator). Else ``(None,
    why)``: ``why`` is None when there is no address (null, empty), else a phrase for a log line
    and a message, e.g. ``"the address 127.0.0.1 is not public (loopback)"``."""
    address = ip_or_none(value)
    if address is None:
        return None, address_problem(value)
    if allow_private:
        return address, None
    kind = not_public(address)
    if kind is not None:
        return None, f"the address {address} is not public ({kind})"
    return address, None
