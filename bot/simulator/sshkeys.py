"""How the simulator checks an SSH key sent to ``POST /api/v0/instances/{id}/ssh/``.

Vast.ai documents that a bad request answers HTTP 400 (attach_ssh.yaml) but not which keys it
refuses. The simulator refuses what ``sshd`` itself would not read as an ``authorized_keys``
line (OpenSSH sshd(8), "AUTHORIZED_KEYS FILE FORMAT": ``<keytype> <base64 key> [comment]``):
one line, a key type ``sshd`` knows, base64 that decodes to a key blob whose first field is
that same type name (RFC 4253 §6.6: a public key blob starts with the ``string`` of its
format identifier). A private key is refused before anything else.
"""

from __future__ import annotations

import base64
import binascii
import struct

__all__ = ["KEY_TYPES", "key_problem"]

KEY_TYPES = frozenset(
    {
        "ssh-ed25519",
        "ssh-rsa",
        "ssh-dss",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "sk-ssh-ed25519@openssh.com",
        "sk-ecdsa-sha2-nistp256@openssh.com",
    }
)
"""Key types of an ``authorized_keys`` line (sshd(8))."""


def key_problem(text: str) -> str | None:
    """Why ``text`` is not one OpenSSH public key line, or None when it is one.

    ``key_problem("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA… me@laptop")`` -> None;
    ``key_problem("hello")`` -> ``"expected '<type> <base64> [comment]'"``.
    """
    line = text.strip()
    if "PRIVATE KEY" in line:
        return "this is a private key"
    if "\n" in line or "\r" in line:
        return "more than one line"
    parts = line.split()
    if len(parts) < 2:
        return "expected '<type> <base64> [comment]'"
    kind, encoded = parts[0], parts[1]
    if kind not in KEY_TYPES:
        return f"unknown key type {kind[:40]!r}"
    try:
        blob = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return "the key is not base64"
    if len(blob) < 4:
        return "the key is too short"
    (length,) = struct.unpack(">I", blob[:4])
    if blob[4 : 4 + length] != kind.encode():
        return "the key data does not match its type"
    return None
