"""Network addresses from Vast.ai, checked once, and the URLs built from them (pure).

Vast.ai's instance JSON is untrusted input: ``public_ipaddr`` is meant to be an IP address
(with a trailing newline, vast-api.md §4), ``HostPort`` a port number sent as a string,
``ssh_host``/``ssh_port`` the SSH proxy. A value that is anything else (an IPv6 address is
fine; a host name, ``"127.0.0.1:9/x?y="``, a 64-character DNS label, a port of 0 or 70000)
is treated as absent, so the instance is simply "not reachable yet": nothing here raises.

Every URL the bot builds to reach an instance goes through :func:`http_url`, which brackets
IPv6 addresses (``http://[2001:db8::1]:8080/``, RFC 3986 §3.2.2).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

__all__ = ["MAX_PORT", "host_or_none", "http_url", "ip_or_none", "port_or_none"]

#: The highest TCP port number.
MAX_PORT = 65535
# RFC 1123 host name: labels of 1-63 letters, digits and hyphens, not starting or ending with
# a hyphen; 253 characters at most in all.
_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
_MAX_HOST = 253


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
    an IPv6 address in brackets; None when either is not usable. ``path`` must start with
    ``/`` (else one is added)."""
    name = host_or_none(host)
    number = port_or_none(port)
    if name is None or number is None:
        return None
    if ":" in name:  # IPv6
        name = f"[{name}]"
    if not path.startswith("/"):
        path = "/" + path
    return f"{scheme}://{name}:{number}{path}"
