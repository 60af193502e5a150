"""Encryption at rest of the secrets the bot keeps: workspaces' Vast.ai API keys, Slack tokens
(OAuth mode), and each deployment's generated web password.

Fernet (``cryptography.fernet``: AES-128-CBC with an HMAC-SHA256, a timestamped, URL-safe
base64 token; https://cryptography.io/en/latest/fernet/) under the keys of ``ENCRYPTION_KEY``:
one key, or several separated by commas, each made with
``python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"``.
Several keys make a ``MultiFernet``: the first encrypts, every one decrypts, so a new key can
be put first, the bot restarted, ``python -m bot rotate-key`` run (everything re-encrypted
with the first key), then the old key removed.

This module only encrypts and decrypts: it imports nothing of storage. The canary that lets the
bot refuse to start with keys none of which the stored secrets were saved with lives with the
rest of the secrets at rest (:func:`bot.rekey.verify_canary`).

Web passwords are encrypted in every mode: with ``ENCRYPTION_KEY`` when it is set, else with a
key derived (HKDF-SHA256, RFC 5869) from ``SLACK_SIGNING_SECRET`` (or, in Socket Mode without
one, ``SLACK_BOT_TOKEN``): secrets that live outside the database (:func:`password_box`).

A stored value is a Fernet token or, written before encryption existed, the plain text: the
two never look alike (:func:`looks_sealed`), so readers take either (:meth:`SecretBox.open`)
while start-up encrypts what is left in plain text. No message here ever contains a key or a
plaintext.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

GENERATE_HINT = (
    'generate one with .venv/bin/python -c "from cryptography.fernet import Fernet; '
    'print(Fernet.generate_key().decode())"'
)
#: What a user reads instead of a web password no configured key decrypts.
UNREADABLE_PASSWORD = (
    "I cannot read this deployment's password: the bot's encryption key changed after it was "
    "made. Destroy the deployment and deploy again, or ask your admin to add the old key back "
    "(docs/SECURITY.md)."
)

#: Every Fernet token starts with the version byte 0x80 and a 64-bit timestamp whose top bytes
#: are zero until 2106: base64 ``gAAAAA``; the shortest token (one AES block) is 100 characters.
#: Fernet spec: https://github.com/fernet/spec/blob/master/Spec.md
_TOKEN_PREFIX = "gAAAAA"
_TOKEN_MIN_LENGTH = 100
_TOKEN_CHARS = re.compile(r"[A-Za-z0-9_=-]+")

#: HKDF salt and purposes of the derived web-password keys (RFC 5869 §3.1: a fixed,
#: application-specific salt and ``info`` keep these keys apart from any other use).
_HKDF_SALT = b"gpu-template-bot secrets at rest v1"
_PASSWORDS_INFO = b"web passwords"


class EncryptionKeyError(Exception):
    """The encryption key is malformed, or is not the key a stored secret was encrypted with.

    ``str()`` is one line fit for a terminal and never contains the key or a secret.
    """


def parse_keys(value: str) -> list[str]:
    """The keys of an ``ENCRYPTION_KEY`` value: comma-separated, spaces around each ignored,
    empty items dropped (``"k1, k2,"`` → ``["k1", "k2"]``). Not checked here: see
    :class:`SecretBox`."""
    return [part.strip() for part in value.split(",") if part.strip()]


def looks_sealed(value: str) -> bool:
    """True when ``value`` has the shape of a Fernet token (prefix, length, alphabet), i.e. was
    stored encrypted. Nothing the bot stores in plain text has that shape: generated passwords
    are 32 characters, Slack tokens start with ``xox``, webhook URLs with ``https://``, Vast.ai
    keys are hexadecimal."""
    return (
        value.startswith(_TOKEN_PREFIX)
        and len(value) >= _TOKEN_MIN_LENGTH
        and _TOKEN_CHARS.fullmatch(value) is not None
    )


def derived_key(secret: str, purpose: bytes = _PASSWORDS_INFO) -> str:
    """A Fernet key derived from ``secret`` (e.g. the signing secret) with HKDF-SHA256 (RFC 5869)
    for ``purpose``: 32 bytes in URL-safe base64. The same inputs always give the same key; the
    key reveals nothing of ``secret``."""
    raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=_HKDF_SALT, info=purpose).derive(
        secret.encode("utf-8")
    )
    return base64.urlsafe_b64encode(raw).decode("ascii")


def _fernet(key: str, position: int, count: int) -> Fernet:
    try:
        return Fernet(key.encode("ascii"))
    except (ValueError, TypeError, UnicodeEncodeError):
        # ValueError (binascii.Error included) from Fernet; its text may echo the input.
        if count == 1:
            raise EncryptionKeyError(
                f"ENCRYPTION_KEY is not a Fernet key (32 bytes in URL-safe base64): {GENERATE_HINT}"
            ) from None
        raise EncryptionKeyError(
            f"ENCRYPTION_KEY is not a Fernet key (32 bytes in URL-safe base64) at position "
            f"{position} of its {count} comma-separated keys: {GENERATE_HINT}"
        ) from None


class SecretBox:
    """Encrypts and decrypts short secrets (a Vast.ai API key, a Slack token, a password) with
    one or more Fernet keys: the first encrypts, each decrypts (``MultiFernet``).

    Args:
        key: a Fernet key (32 random bytes in URL-safe base64, 44 characters, as
            ``Fernet.generate_key()`` makes), several separated by commas, or a sequence of
            them. Repeated keys count once.

    Raises:
        EncryptionKeyError: when there is no key or one of them is not a Fernet key (the
            message names its position, never the key).
    """

    __slots__ = ("_count", "_first", "_multi")

    def __init__(self, key: str | Sequence[str]) -> None:
        keys = parse_keys(key) if isinstance(key, str) else [k.strip() for k in key if k.strip()]
        keys = list(dict.fromkeys(keys))
        if not keys:
            raise EncryptionKeyError(
                f"ENCRYPTION_KEY is not a Fernet key (32 bytes in URL-safe base64): {GENERATE_HINT}"
            )
        fernets = [_fernet(k, i, len(keys)) for i, k in enumerate(keys, start=1)]
        self._first = fernets[0]
        self._multi = MultiFernet(fernets)
        self._count = len(fernets)

    def __repr__(self) -> str:
        return f"SecretBox(keys={self._count}, key=**********)"

    @property
    def key_count(self) -> int:
        """How many distinct keys decrypt (the first of them encrypts)."""
        return self._count

    def encrypt(self, text: str) -> str:
        """Encrypt ``text`` (UTF-8) with the first key into a Fernet token (ASCII, at least
        100 characters, safe to store)."""
        return self._multi.encrypt(text.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        """Decrypt a token made by :meth:`encrypt` with any of the keys.

        Raises:
            EncryptionKeyError: when no key decrypts ``token`` (another key, or the token was
                altered or is not a Fernet token).
        """
        try:
            return self._multi.decrypt(token.encode("ascii")).decode("utf-8")
        except (InvalidToken, UnicodeError):
            raise EncryptionKeyError(
                "ENCRYPTION_KEY does not decrypt a stored secret: set the key it was saved with"
            ) from None

    def open(self, stored: str) -> str:
        """The secret in ``stored``: decrypted when it is a Fernet token (:func:`looks_sealed`),
        else ``stored`` itself (plain text written before encryption at rest).

        Raises:
            EncryptionKeyError: a token that no key decrypts.
        """
        return self.decrypt(stored) if looks_sealed(stored) else stored

    def is_current(self, token: str) -> bool:
        """True when ``token`` decrypts with the first key (nothing to rotate)."""
        try:
            self._first.decrypt(token.encode("ascii"))
        except (InvalidToken, UnicodeError):
            return False
        return True

    def reseal(self, stored: str) -> str | None:
        """What ``stored`` should become so that the first key decrypts it: plain text
        encrypted, a token of another key re-encrypted (``MultiFernet.rotate``); None when it
        already is a token of the first key.

        Raises:
            EncryptionKeyError: a token that no key decrypts.
        """
        if not looks_sealed(stored):
            return self.encrypt(stored)
        if self.is_current(stored):
            return None
        try:
            return self._multi.rotate(stored.encode("ascii")).decode("ascii")
        except (InvalidToken, UnicodeError):
            raise EncryptionKeyError(
                "ENCRYPTION_KEY does not decrypt a stored secret: set the key it was saved with"
            ) from None


def password_box(
    encryption_key: str | None, *, signing_secret: str | None, bot_token: str | None
) -> SecretBox:
    """The box for deployments' web passwords: the keys of ``ENCRYPTION_KEY`` (when set) first,
    then keys derived (:func:`derived_key`) from ``SLACK_SIGNING_SECRET`` and from
    ``SLACK_BOT_TOKEN`` (those set). So the first of them encrypts: ``ENCRYPTION_KEY``'s
    first key, else the signing secret's, else (Socket Mode without a signing secret) the bot
    token's; the others still decrypt what was written before ``ENCRYPTION_KEY`` was set or
    Socket Mode was left.

    Raises:
        EncryptionKeyError: a malformed ``ENCRYPTION_KEY``, or none of the three is set.
    """
    keys = parse_keys(encryption_key) if encryption_key else []
    keys += [derived_key(secret) for secret in (signing_secret, bot_token) if secret]
    if not keys:
        raise EncryptionKeyError(
            "No key to encrypt web passwords with: set ENCRYPTION_KEY (or SLACK_SIGNING_SECRET)"
        )
    return SecretBox(keys)
