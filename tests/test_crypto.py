"""Encryption at rest (bot.crypto): Fernet round trip, a wrong key, the canary in bot_state
(bot.rekey) that refuses another key at start-up, and keys that are not Fernet keys."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

import storage
from bot.crypto import EncryptionKeyError, SecretBox
from bot.rekey import CANARY_STATE, NEW_KEY_MESSAGE, WRONG_KEY_MESSAGE, verify_canary
from storage import SessionFactory

KEY_A = Fernet.generate_key().decode()
KEY_B = Fernet.generate_key().decode()
VAST_KEY = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789a1b2"


def _one_line_without(error: BaseException, *secrets: str) -> str:
    text = str(error)
    assert "\n" not in text
    for secret in secrets:
        assert secret not in text
        assert secret[:12] not in text
    return text


def test_round_trip_and_the_token_hides_the_text() -> None:
    box = SecretBox(KEY_A)
    token = box.encrypt(VAST_KEY)
    assert VAST_KEY not in token and token.isascii()
    assert box.encrypt(VAST_KEY) != token  # a fresh IV each time
    assert box.decrypt(token) == VAST_KEY
    assert SecretBox(KEY_A).decrypt(token) == VAST_KEY  # another box on the same key
    assert SecretBox(KEY_A).decrypt(box.encrypt("ünïcode ✓")) == "ünïcode ✓"
    assert KEY_A not in repr(box)


def test_wrong_key_or_altered_token_raises_without_key_material() -> None:
    token = SecretBox(KEY_A).encrypt(VAST_KEY)
    with pytest.raises(EncryptionKeyError) as wrong:
        SecretBox(KEY_B).decrypt(token)
    _one_line_without(wrong.value, KEY_A, KEY_B, VAST_KEY)
    assert "ENCRYPTION_KEY" in str(wrong.value)
    altered = token[:-6] + ("A" if token[-6] != "A" else "B") + token[-5:]
    for bad in (altered, "not a token", ""):
        with pytest.raises(EncryptionKeyError):
            SecretBox(KEY_A).decrypt(bad)


@pytest.mark.parametrize(
    "key",
    [
        "",
        "not-a-fernet-key",
        KEY_A[:-4],  # too short
        "x" * 44,  # right length, not base64 of 32 bytes
        "ключ" * 11,  # not ASCII
    ],
    # Fixed ids: KEY_A is random, and pytest-xdist's workers must collect the same names.
    ids=["empty", "not-a-fernet-key", "too-short", "not-base64", "not-ascii"],
)
def test_a_key_that_is_not_a_fernet_key_is_refused(key: str) -> None:
    with pytest.raises(EncryptionKeyError) as refused:
        SecretBox(key)
    text = _one_line_without(refused.value, *([key] if len(key) >= 12 else []))
    assert text.startswith("ENCRYPTION_KEY is not a Fernet key")
    assert "Fernet.generate_key()" in text


def test_verify_writes_the_canary_once_and_refuses_another_key(
    session_factory: SessionFactory,
) -> None:
    sf = session_factory
    assert storage.get_state(sf, CANARY_STATE) is None
    verify_canary(SecretBox(KEY_A), sf)
    stored = storage.get_state(sf, CANARY_STATE)
    assert stored is not None
    verify_canary(SecretBox(KEY_A), sf)  # again, and from another "process"
    assert storage.get_state(sf, CANARY_STATE) == stored  # not rewritten

    with pytest.raises(EncryptionKeyError) as refused:
        verify_canary(SecretBox(KEY_B), sf)
    assert str(refused.value) == NEW_KEY_MESSAGE  # no Vast.ai key stored yet: nothing lost
    _one_line_without(refused.value, KEY_A, KEY_B)
    storage.save_vast_key(
        sf,
        "T0A",
        ciphertext=SecretBox(KEY_A).encrypt("k" * 32),
        last4="kkkk",
        vast_user_id="1001",
        actor="U0A",
        now=storage.utcnow(),
    )
    with pytest.raises(EncryptionKeyError) as refused:
        verify_canary(SecretBox(KEY_B), sf)
    assert str(refused.value).startswith(WRONG_KEY_MESSAGE)
    assert "1 workspace Vast.ai key;" in str(refused.value)
    _one_line_without(refused.value, KEY_A, KEY_B)
    # The refused key changed nothing: the right key still passes.
    assert storage.get_state(sf, CANARY_STATE) == stored
    verify_canary(SecretBox(KEY_A), sf)
