"""Encryption at rest of the secrets workspaces give the bot (their Vast.ai API keys).

Fernet (``cryptography.fernet``: AES-128-CBC with an HMAC-SHA256, a timestamped, URL-safe
base64 token) under one key from ``ENCRYPTION_KEY``, made with
``python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"``.
A canary stored in ``bot_state`` (name :data:`CANARY_STATE`) lets the bot refuse to start with
a key other than the one the stored secrets were saved with (:meth:`SecretBox.verify`) rather
than fail later on the first workspace whose key it cannot read. No message here ever contains
the key or a plaintext.
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken

from storage import SessionFactory, get_state, list_workspaces, put_state_if_absent

#: ``bot_state`` name of the canary: a Fernet token of :data:`CANARY_TEXT`.
CANARY_STATE = "encryption_canary"
CANARY_TEXT = "gpu-template-bot encryption canary v1"
WRONG_KEY_MESSAGE = (
    "ENCRYPTION_KEY does not decrypt the secrets stored in the database: set the key they were "
    "saved with"
)
#: The refusal when no Vast.ai key is stored yet (only the first start's check value).
NEW_KEY_MESSAGE = (
    "ENCRYPTION_KEY is not the key this database was first started with; no Vast.ai key is "
    "stored yet, so nothing is lost: set the first key again, or start over with this one "
    "(README › Several workspaces › A lost or changed ENCRYPTION_KEY)"
)
GENERATE_HINT = (
    'generate one with .venv/bin/python -c "from cryptography.fernet import Fernet; '
    'print(Fernet.generate_key().decode())"'
)


class EncryptionKeyError(Exception):
    """The encryption key is malformed, or is not the key a stored secret was encrypted with.

    ``str()`` is one line fit for a terminal and never contains the key or a secret.
    """


class SecretBox:
    """Encrypts and decrypts short secrets (a Vast.ai API key) with one Fernet key.

    Args:
        key: a Fernet key, 32 random bytes in URL-safe base64 (44 characters), as
            ``Fernet.generate_key()`` makes.

    Raises:
        EncryptionKeyError: when ``key`` is not a Fernet key.
    """

    __slots__ = ("_fernet",)

    def __init__(self, key: str) -> None:
        try:
            self._fernet = Fernet(key.strip().encode("ascii"))
        except (ValueError, TypeError, UnicodeEncodeError):
            # ValueError (binascii.Error included) from Fernet; its text may echo the input.
            raise EncryptionKeyError(
                f"ENCRYPTION_KEY is not a Fernet key (32 bytes in URL-safe base64): {GENERATE_HINT}"
            ) from None

    def __repr__(self) -> str:
        return "SecretBox(key=**********)"

    def encrypt(self, text: str) -> str:
        """Encrypt ``text`` (UTF-8) into a Fernet token (ASCII text, safe to store)."""
        return self._fernet.encrypt(text.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        """Decrypt a token made by :meth:`encrypt` with the same key.

        Raises:
            EncryptionKeyError: when this key does not decrypt ``token`` (another key, or the
                token was altered or is not a Fernet token).
        """
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except (InvalidToken, UnicodeError):
            raise EncryptionKeyError(
                "ENCRYPTION_KEY does not decrypt a stored secret: set the key it was saved with"
            ) from None

    def verify(self, sf: SessionFactory) -> None:
        """Check that this key is the one the database's secrets were saved with.

        On first use (no canary in ``bot_state`` yet) writes one encrypted with this key (insert
        only: of two processes starting at once, one writes it and both check that one); then
        decrypts the stored canary.

        Raises:
            EncryptionKeyError: when the canary does not decrypt: with
                :data:`WRONG_KEY_MESSAGE` when Vast.ai keys are stored, else
                :data:`NEW_KEY_MESSAGE` (nothing would be lost by starting over).
        """
        if get_state(sf, CANARY_STATE) is None:
            put_state_if_absent(sf, CANARY_STATE, self.encrypt(CANARY_TEXT))
        stored = get_state(sf, CANARY_STATE)
        try:
            ok = stored is not None and self.decrypt(stored[0]) == CANARY_TEXT
        except EncryptionKeyError:
            ok = False
        if not ok:
            stored_keys = sum(1 for w in list_workspaces(sf) if w.has_vast_key)
            if stored_keys == 0:
                raise EncryptionKeyError(NEW_KEY_MESSAGE)
            raise EncryptionKeyError(
                f"{WRONG_KEY_MESSAGE} ({stored_keys} workspace Vast.ai key"
                f"{'s' if stored_keys != 1 else ''}; README › Several workspaces › A lost or "
                "changed ENCRYPTION_KEY)"
            )
