"""OpenSSH public keys as people paste them (pure: no I/O, no Slack, no database).

:func:`parse_public_key` reads ONE key as it stands in a ``.pub`` file or a line of
``authorized_keys`` without options: ``<type> <base64> [comment]``, and returns either a
:class:`PublicKey` (normalized, with its fingerprint) or a :class:`KeyRefused` that says why in
words for the person. It never raises and never puts the pasted text in a message.

What is accepted and why (the format: RFC 4253 §6.6 for the blob, the ``AUTHORIZED_KEYS FILE
FORMAT`` section of sshd(8) for the line, https://man.openbsd.org/sshd#AUTHORIZED_KEYS_FILE_FORMAT):

* ``ssh-ed25519`` (RFC 8709), ``ecdsa-sha2-nistp256`` / ``-nistp384`` / ``-nistp521``
  (RFC 5656) and ``ssh-rsa`` of :data:`MIN_RSA_BITS` bits or more (NIST SP 800-131A Rev. 2
  disallows RSA keys under 2048 bits). Each is loaded with ``cryptography``'s
  ``load_ssh_public_key`` (https://cryptography.io/en/latest/hazmat/primitives/asymmetric/
  serialization/#cryptography.hazmat.primitives.serialization.load_ssh_public_key), which
  checks the blob, the type named inside it against the line's, and the point or modulus.
* One key per paste (blank lines around it are ignored): several keys are refused with
  "add them one at a time", so that each gets its own answer.
* Refused, each with its reason: ``ssh-dss`` (OpenSSH has disabled DSA keys by default since
  7.0 in 2015, and 9.8 no longer builds it by default: https://www.openssh.com/txt/release-9.8);
  certificates (``*-cert-v01@openssh.com``, PROTOCOL.certkeys in OpenSSH's source: a
  certificate is a key signed by a CA, and an instance needs the plain key it certifies);
  FIDO security keys (``sk-ssh-ed25519@openssh.com``, ``sk-ecdsa-sha2-nistp256@openssh.com``,
  PROTOCOL.u2f: not every ``cryptography`` release reads them, those that do drop the part
  that makes them security keys, and an instance's sshd must be 8.2 or newer to use them);
  ``authorized_keys`` options before the type (``from=…``, ``command=…``: the bot would not
  enforce them on the instance); public keys in other formats (RFC 4716's
  ``---- BEGIN SSH2 PUBLIC KEY ----`` that PuTTYgen saves, PEM's ``BEGIN PUBLIC KEY``), each
  with the command that converts it; text over :data:`MAX_INPUT_CHARS` characters.
* Anything that looks like a PRIVATE key (:func:`looks_like_private_key`: PEM armour of any
  ``… PRIVATE KEY``, OpenSSH's ``openssh-key-v1`` container even without its armour, PuTTY's
  ``PuTTY-User-Key-File-…``, a PKCS#1 / SEC 1 / PKCS#8 key body in base64, even one line of
  it) gives :attr:`Problem.PRIVATE_KEY`, checked first (before the length bound), so the
  caller can tell the person to treat that key as leaked.

The fingerprint is ``SHA256:`` and the unpadded base64 of the SHA-256 of the key blob, as
``ssh-keygen -l -E sha256`` prints it (ssh-keygen(1), https://man.openbsd.org/ssh-keygen;
SHA-256 is its default since OpenSSH 6.8: https://www.openssh.com/txt/release-6.8).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

__all__ = [
    "ACCEPTED_TYPES",
    "MAX_COMMENT_CHARS",
    "MAX_INPUT_CHARS",
    "MIN_RSA_BITS",
    "PRIVATE_KEY_TEXT",
    "KeyRefused",
    "Problem",
    "PublicKey",
    "fingerprint_of",
    "looks_like_private_key",
    "parse_public_key",
    "sanitize_comment",
    "type_label",
]

#: Longest paste read, in characters (an RSA 16384-bit ``.pub`` line is under 3 KB).
MAX_INPUT_CHARS = 16 * 1024
#: Longest comment kept (the ``ssh_keys.comment`` column), in characters.
MAX_COMMENT_CHARS = 200
#: Smallest RSA modulus accepted, in bits.
MIN_RSA_BITS = 2048

ED25519 = "ssh-ed25519"
ECDSA_TYPES = {
    "ecdsa-sha2-nistp256": 256,
    "ecdsa-sha2-nistp384": 384,
    "ecdsa-sha2-nistp521": 521,
}
RSA = "ssh-rsa"
#: The key types accepted, as the line names them.
ACCEPTED_TYPES = frozenset({ED25519, RSA, *ECDSA_TYPES})
DSA = "ssh-dss"
SSH2_ARMOUR = "---- BEGIN SSH2 PUBLIC KEY ----"
#: PEM armour of a public key (``BEGIN PUBLIC KEY``, ``BEGIN RSA PUBLIC KEY``).
_PEM_PUBLIC = re.compile(r"BEGIN (?:RSA )?PUBLIC KEY")

_LABELS = {
    ED25519: "ED25519",
    RSA: "RSA",
    "ecdsa-sha2-nistp256": "ECDSA P-256",
    "ecdsa-sha2-nistp384": "ECDSA P-384",
    "ecdsa-sha2-nistp521": "ECDSA P-521",
}

#: A token that names a key type (``ssh-…``, ``ecdsa-…``, ``sk-…``, ``*@openssh.com``).
_TYPE_LIKE = re.compile(r"^(?:ssh-|ecdsa-|sk-)[A-Za-z0-9@.+-]+$|^[A-Za-z0-9.+-]+@openssh\.com$")
#: Strict base64 (the blob): the alphabet of RFC 4648 §4 and at most two ``=`` at the end.
_BASE64 = re.compile(r"^[A-Za-z0-9+/]+={0,2}$")
#: Characters dropped anywhere before parsing: zero-width ones and the byte-order mark that
#: copying from web pages and Windows editors adds.
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"))

#: PEM armour of any private key (``RSA``, ``EC``, ``DSA``, ``OPENSSH``, ``ENCRYPTED``, PKCS#8's
#: bare ``PRIVATE KEY``, ssh.com's ``SSH2 ENCRYPTED PRIVATE KEY``), even without the dashes.
_PRIVATE_ARMOUR = re.compile(r"(?:BEGIN|END)[A-Z0-9 ]*PRIVATE KEY")
#: Other marks only private key files carry: PuTTY's ``.ppk`` header and fields (PuTTY
#: manual, appendix C) and the headers of an encrypted PEM key (RFC 1421 §4.6.1).
_PRIVATE_MARKS = re.compile(
    r"PuTTY-User-Key-File-\d|Private-Lines\s*:|Private-MAC\s*:|Proc-Type:\s*4,ENCRYPTED|DEK-Info:"
)
#: ``openssh-key-v1\0`` (OpenSSH's private key container, PROTOCOL.key) in base64: the body
#: of ``-----BEGIN OPENSSH PRIVATE KEY-----`` always starts with it.
_OPENSSH_V1_B64 = "b3BlbnNzaC1rZXktdjE"
_OPENSSH_V1 = b"openssh-key-v1\x00"

PRIVATE_KEY_TEXT = (
    "That is a PRIVATE key. It was not stored. Treat it as leaked: delete it and make a new "
    "key pair (ssh-keygen -t ed25519), then paste the .pub file's line."
)
"""What a person who pasted a private key is told (the caller shows it; nothing is kept)."""


class Problem(StrEnum):
    """Why a paste was refused (:attr:`KeyRefused.problem`); safe to log (no key material)."""

    EMPTY = "empty"
    TOO_LONG = "too_long"
    PRIVATE_KEY = "private_key"
    SEVERAL_KEYS = "several_keys"
    OPTIONS = "options"
    OTHER_FORMAT = "other_format"
    """A public key in a format other than OpenSSH's one line (RFC 4716, PEM)."""
    CERTIFICATE = "certificate"
    SECURITY_KEY = "security_key"
    DSA = "dsa"
    RSA_TOO_SHORT = "rsa_too_short"
    UNKNOWN_TYPE = "unknown_type"
    MALFORMED = "malformed"


@dataclass(frozen=True, slots=True)
class PublicKey:
    """A checked public key.

    Attributes:
        key_type: ``ssh-ed25519``, ``ecdsa-sha2-nistp256`` (``384``, ``521``) or ``ssh-rsa``.
        public_key: ``"<key_type> <base64>"``, re-encoded from the loaded key (canonical
            base64, no comment): what is stored and sent to Vast.ai.
        fingerprint: ``SHA256:<43 characters of unpadded base64>``, as ``ssh-keygen -l``.
        comment: the line's comment, :func:`sanitize_comment`-ed (None when it had none). Text
            a person typed: escape it wherever it is shown.
        bits: the key's size in bits (256 for ed25519; the curve's for ECDSA; the modulus's for
            RSA).
    """

    key_type: str
    public_key: str
    fingerprint: str
    comment: str | None
    bits: int

    @property
    def label(self) -> str:
        """The type for people: ``ED25519``, ``ECDSA P-256``, ``RSA 4096``."""
        return type_label(self.key_type, self.bits)


@dataclass(frozen=True, slots=True)
class KeyRefused:
    """A paste that is not a key the bot takes: ``problem`` (for the log and for tests) and
    ``message`` (one or two sentences for the person: what is wrong and what to paste
    instead). Neither holds any of the pasted text."""

    problem: Problem
    message: str

    @property
    def private(self) -> bool:
        """True when the paste looked like a private key (tell them it is leaked)."""
        return self.problem is Problem.PRIVATE_KEY


def type_label(key_type: str, bits: int | None = None) -> str:
    """``key_type`` for people: ``ED25519``, ``ECDSA P-384``, ``RSA 4096`` (RSA with ``bits``
    when given); an unknown type as given."""
    label = _LABELS.get(key_type, key_type)
    return f"{label} {bits}" if key_type == RSA and bits else label


def fingerprint_of(blob: bytes) -> str:
    """``SHA256:<base64 of SHA-256(blob), without "=" padding>``: the fingerprint
    ``ssh-keygen -l -E sha256`` prints for the key whose wire-format blob is ``blob``."""
    digest = hashlib.sha256(blob).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


def sanitize_comment(text: str) -> str | None:
    """A key's comment fit to store and show: control, format (bidi overrides, zero-width) and
    separator characters dropped or made spaces, runs of whitespace made one space, NFC, cut
    to :data:`MAX_COMMENT_CHARS` characters; None when nothing is left. Not escaped: that is
    the job of whatever shows it (mrkdwn needs :func:`bot.formats.mrkdwn_escape`)."""
    kept = []
    for char in unicodedata.normalize("NFC", text):
        category = unicodedata.category(char)
        if char.isspace() or category in ("Zl", "Zp"):
            kept.append(" ")
        elif category[0] != "C":  # Cc control, Cf format, Cs, Co, Cn
            kept.append(char)
    cleaned = " ".join("".join(kept).split())
    return cleaned[:MAX_COMMENT_CHARS].rstrip() or None


def _b64decode(token: str) -> bytes | None:
    """``token`` decoded as strict base64 (padding added when missing), or None."""
    if not _BASE64.fullmatch(token):
        return None
    try:
        return base64.b64decode(token + "=" * (-len(token) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None


def _der_private_start(head: bytes) -> bool:
    """True when ``head`` (the first bytes of a DER text) starts as an unencrypted private key
    does: a SEQUENCE whose first element is ``INTEGER 0`` or ``INTEGER 1`` (PKCS#1
    RSAPrivateKey, RFC 8017 A.1.2; SEC 1 ECPrivateKey, RFC 5915 §3; PKCS#8 PrivateKeyInfo and
    OneAsymmetricKey, RFC 5958 §2). Public keys (SubjectPublicKeyInfo) start with a SEQUENCE
    inside, and an SSH key blob with a 4-byte length."""
    if len(head) < 5 or head[0] != 0x30:
        return False
    size = head[1]
    at = 2 if size < 0x80 else 2 + (size & 0x7F)
    return head[at : at + 3] in (b"\x02\x01\x00", b"\x02\x01\x01")


def _der_private_key(der: bytes) -> bool:
    """True when ``der`` loads as a private key (PKCS#1, SEC 1, PKCS#8) or is an encrypted
    PKCS#8 key (loading it asks for a password). RSA keys are not checked for consistency
    (``unsafe_skip_rsa_key_validation``): only "is it a private key" is asked, quickly."""
    if len(der) < 32 or der[0] != 0x30:  # every such key is an ASN.1 SEQUENCE
        return False
    try:
        serialization.load_der_private_key(der, password=None, unsafe_skip_rsa_key_validation=True)
    except TypeError:  # "Password was not given but private key is encrypted"
        return True
    except (ValueError, UnsupportedAlgorithm):
        return False
    return True


def _private_blob(blob: bytes) -> bool:
    """True when decoded base64 is (the start of) a private key."""
    return _OPENSSH_V1 in blob or _der_private_start(blob[:16]) or _der_private_key(blob)


def looks_like_private_key(text: str) -> bool:
    """True when ``text`` holds anything that looks like a private key: PEM armour of a private
    key (with or without its dashes), a PuTTY ``.ppk`` file or an encrypted PEM key's headers,
    OpenSSH's ``openssh-key-v1`` container in base64 (its armour lines cut off), a base64 word
    or body that starts as a DER private key or that ``cryptography`` loads as one (one line
    of a PEM body is enough). The armour checks read all of ``text`` (regular expressions,
    linear); the base64 checks its first :data:`MAX_INPUT_CHARS` × 4 characters."""
    if _PRIVATE_ARMOUR.search(text) or _PRIVATE_MARKS.search(text):
        return True
    head = text[: MAX_INPUT_CHARS * 4].translate(_INVISIBLE)
    squeezed = "".join(head.split())
    if _OPENSSH_V1_B64 in squeezed:
        return True
    for token in head.split():
        if len(token) < 16 or not _BASE64.fullmatch(token):
            continue
        start = _b64decode(token[:16])
        if start is not None and _der_private_start(start):
            return True
        blob = _b64decode(token)
        if blob is not None and _private_blob(blob):
            return True
    # A PEM body pasted without its armour: the lines joined are one base64 text.
    lines = [line.strip() for line in head.splitlines() if line.strip()]
    if len(lines) > 1 and all(_BASE64.fullmatch(line) for line in lines):
        blob = _b64decode(squeezed)
        if blob is not None and _private_blob(blob):
            return True
    return False


PASTE_HINT = (
    "Paste the one line of your public key file (the output of cat ~/.ssh/id_ed25519.pub): "
    "it starts with ssh-ed25519, ecdsa-sha2-… or ssh-rsa."
)
"""The end of most refusals: what to paste instead (plain text, no mrkdwn)."""


def _type_problem(key_type: str) -> KeyRefused | None:
    """The refusal for a key type the bot does not take (None: an accepted type)."""
    if key_type in ACCEPTED_TYPES:
        return None
    if key_type.endswith("-cert-v01@openssh.com"):
        return KeyRefused(
            Problem.CERTIFICATE,
            "That is an SSH certificate (a key signed by a certificate authority), not a "
            "public key. Paste the key it certifies instead: the .pub file without -cert "
            "in its name.",
        )
    if key_type.startswith("sk-"):
        return KeyRefused(
            Problem.SECURITY_KEY,
            "Security-key (FIDO, sk-…) SSH keys are not supported: the bot cannot check "
            "them, and instances may run an SSH server too old for them. Make a plain key "
            "with ssh-keygen -t ed25519 and paste its .pub line.",
        )
    if key_type == DSA:
        return KeyRefused(
            Problem.DSA,
            "DSA keys (ssh-dss) are too weak and current OpenSSH servers refuse them. Make "
            "a new key with ssh-keygen -t ed25519 and paste its .pub line.",
        )
    return KeyRefused(
        Problem.UNKNOWN_TYPE,
        "That key type is not one the bot takes. Use ssh-ed25519 (best), "
        "ecdsa-sha2-nistp256/384/521 or ssh-rsa of 2048 bits or more. " + PASTE_HINT,
    )


def _bits(key: object, key_type: str) -> int | None:
    """The size of a loaded key in bits, None when it is not of ``key_type``'s class."""
    if key_type == ED25519 and isinstance(key, ed25519.Ed25519PublicKey):
        return 256
    if key_type == RSA and isinstance(key, rsa.RSAPublicKey):
        return int(key.key_size)
    if key_type in ECDSA_TYPES and isinstance(key, ec.EllipticCurvePublicKey):
        return int(key.curve.key_size)
    return None


def parse_public_key(text: str) -> PublicKey | KeyRefused:
    """Check ``text`` (what a person pasted) as ONE OpenSSH public key; see the module
    docstring for what is taken and refused, in this order: empty, private key, too long,
    another format, several keys, options, type, base64 and key (``cryptography``), RSA size.

    Returns a :class:`PublicKey` or a :class:`KeyRefused`; never raises, and neither result
    holds the text unless it was a public key (then only its normalized form and comment)."""
    if not isinstance(text, str):
        return KeyRefused(Problem.MALFORMED, "That is not a public key. " + PASTE_HINT)
    text = text.translate(_INVISIBLE)
    if not text.strip():
        return KeyRefused(Problem.EMPTY, "Paste a public key. " + PASTE_HINT)
    if looks_like_private_key(text):
        return KeyRefused(Problem.PRIVATE_KEY, PRIVATE_KEY_TEXT)
    if len(text) > MAX_INPUT_CHARS:
        return KeyRefused(
            Problem.TOO_LONG,
            f"That is too long for a public key (over {MAX_INPUT_CHARS // 1024} KB). " + PASTE_HINT,
        )
    if SSH2_ARMOUR.lower() in text.lower():
        return KeyRefused(
            Problem.OTHER_FORMAT,
            "That is a public key in the SSH2 format PuTTYgen saves. Paste the one line from "
            "PuTTYgen's box “Public key for pasting into OpenSSH authorized_keys file”, or "
            "convert the file with ssh-keygen -i -f <file>.",
        )
    if _PEM_PUBLIC.search(text):
        return KeyRefused(
            Problem.OTHER_FORMAT,
            "That is a public key in PEM format. Convert it to OpenSSH's one line with "
            "ssh-keygen -i -m PKCS8 -f <file> (-m PEM for “BEGIN RSA PUBLIC KEY”) and paste "
            "that line.",
        )
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) > 1:
        keys = sum(1 for line in lines if _TYPE_LIKE.match(line.split()[0]))
        if keys > 1:
            return KeyRefused(
                Problem.SEVERAL_KEYS,
                f"That is {keys} keys. Add them one at a time: paste one line, press Add, "
                "then the next.",
            )
        return KeyRefused(
            Problem.MALFORMED,
            "A public key is one line, and this has line breaks in it. " + PASTE_HINT,
        )
    fields = lines[0].split(None, 2)
    if not _TYPE_LIKE.match(fields[0]):
        if any(_TYPE_LIKE.match(field) for field in lines[0].split()[1:]):
            return KeyRefused(
                Problem.OPTIONS,
                "Remove what comes before the key type (authorized_keys options such as "
                "from=… or command=…): the bot cannot apply them on an instance. " + PASTE_HINT,
            )
        return KeyRefused(Problem.MALFORMED, "That is not an OpenSSH public key. " + PASTE_HINT)
    key_type = fields[0]
    problem = _type_problem(key_type)
    if problem is not None:
        return problem
    if len(fields) < 2:
        return KeyRefused(
            Problem.MALFORMED, "The key itself is missing after its type. " + PASTE_HINT
        )
    blob = _b64decode(fields[1])
    if blob is None:
        return KeyRefused(
            Problem.MALFORMED,
            "The key is not valid base64: part of it may be cut off. " + PASTE_HINT,
        )
    try:
        key = serialization.load_ssh_public_key(f"{key_type} {fields[1]}".encode("ascii"))
    except (ValueError, UnsupportedAlgorithm, TypeError):
        return KeyRefused(
            Problem.MALFORMED,
            "That key does not read as a valid key of its type: it may be cut off or "
            "changed. " + PASTE_HINT,
        )
    bits = _bits(key, key_type)
    if bits is None:
        return KeyRefused(
            Problem.MALFORMED,
            "The key inside is of another type than the line says. " + PASTE_HINT,
        )
    if key_type == RSA and bits < MIN_RSA_BITS:
        return KeyRefused(
            Problem.RSA_TOO_SHORT,
            f"That RSA key has {bits} bits; the bot takes RSA keys of {MIN_RSA_BITS} bits or "
            "more. Make a new key with ssh-keygen -t ed25519 and paste its .pub line.",
        )
    normalized = key.public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    ).decode("ascii")
    new_type, _, body = normalized.partition(" ")
    if new_type != key_type:  # never seen: cryptography writes the type it read
        return KeyRefused(
            Problem.MALFORMED,
            "The key inside is of another type than the line says. " + PASTE_HINT,
        )
    return PublicKey(
        key_type=key_type,
        public_key=normalized,
        fingerprint=fingerprint_of(base64.b64decode(body)),
        comment=sanitize_comment(fields[2]) if len(fields) > 2 else None,
        bits=bits,
    )
