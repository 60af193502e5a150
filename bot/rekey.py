"""Secrets at rest across versions and keys: the boxes built from the settings, the start-up
pass that encrypts what an older version left in plain text, and ``python -m bot rotate-key``.

Which box encrypts what:

* the **vault** (``ENCRYPTION_KEY``; None when unset): workspaces' Vast.ai keys, slack_sdk's
  Slack tokens, refresh tokens and webhook URLs (OAuth mode), and the canary;
* the **password box** (:func:`bot.crypto.password_box`): deployments' web passwords, with
  ``ENCRYPTION_KEY`` when set, else a key derived from ``SLACK_SIGNING_SECRET`` (or
  ``SLACK_BOT_TOKEN``).

Rotation (docs/SECURITY.md): put the new key first in ``ENCRYPTION_KEY`` (``new,old``),
restart every process, run ``python -m bot rotate-key``, then remove the old key. Every row is
rewritten by itself, in batches (:func:`storage.reseal_column`): a run killed at any point
leaves each value under the old key or the new one, both of which decrypt while both are
listed, and running again finishes the work (values already under the first key are skipped).
The canary is rewritten last, and only when every vault secret is under the first key: a
canary under the new key means nothing needs the old one any more.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from pydantic import SecretStr
from sqlalchemy.exc import SQLAlchemyError

import storage
from bot.config import ConfigError, Settings, load_settings
from bot.crypto import (
    EncryptionKeyError,
    SecretBox,
    password_box,
)
from storage import SecretColumn, SessionFactory
from storage.secrets import BATCH_SIZE

logger = logging.getLogger(__name__)

#: Every Fernet token starts so (see :func:`bot.crypto.looks_sealed`): the start-up pass reads
#: only the other values.
SEALED_PREFIX = "gAAAAA"

#: ``bot_state`` name of the canary: a Fernet token of :data:`CANARY_TEXT`.
CANARY_STATE = "encryption_canary"
CANARY_TEXT = "gpu-template-bot encryption canary v1"
WRONG_KEY_MESSAGE = (
    "ENCRYPTION_KEY does not decrypt the secrets stored in the database: set the key they were "
    "saved with"
)
#: The refusal when no Vast.ai key nor Slack token is stored yet (only the first start's check
#: value).
NEW_KEY_MESSAGE = (
    "ENCRYPTION_KEY is not the key this database was first started with; no Vast.ai key nor "
    "Slack token is stored yet, so nothing is lost: set the first key again, or start over "
    "with this one (docs/SLACK_APP.md › A lost or changed ENCRYPTION_KEY)"
)


def verify_canary(vault: SecretBox, sf: SessionFactory) -> bool:
    """Check that one of the keys of ``vault`` (``ENCRYPTION_KEY``) is the one the database's
    secrets were saved with.

    On first use (no canary in ``bot_state`` yet) writes one encrypted with the first key
    (insert only: of two processes starting at once, one writes it and both check that
    one); then decrypts the stored canary with any key.

    Returns:
        True when the canary is encrypted with the first key, False when with another
        (``python -m bot rotate-key`` has not finished since the first key was added).

    Raises:
        EncryptionKeyError: when no key decrypts the canary: with
            :data:`WRONG_KEY_MESSAGE` when Vast.ai keys or Slack tokens are stored
            (counted), else :data:`NEW_KEY_MESSAGE` (nothing would be lost by starting
            over).
    """
    if storage.get_state(sf, CANARY_STATE) is None:
        storage.put_state_if_absent(sf, CANARY_STATE, vault.encrypt(CANARY_TEXT))
    stored = storage.get_state(sf, CANARY_STATE)
    try:
        ok = stored is not None and vault.decrypt(stored[0]) == CANARY_TEXT
    except EncryptionKeyError:
        ok = False
    if not ok:
        stored_keys = storage.count_stored(sf, storage.VAST_KEYS)
        installs = storage.count_stored(sf, storage.SLACK_BOT_TOKENS)
        if stored_keys == 0 and installs == 0:
            raise EncryptionKeyError(NEW_KEY_MESSAGE)
        what = [f"{stored_keys} workspace Vast.ai key{'s' if stored_keys != 1 else ''}"]
        if installs:
            what.append(f"{installs} Slack bot token{'s' if installs != 1 else ''}")
        raise EncryptionKeyError(
            f"{WRONG_KEY_MESSAGE} ({', '.join(what)}; docs/SLACK_APP.md › A lost or "
            "changed ENCRYPTION_KEY)"
        )
    assert stored is not None
    return vault.is_current(stored[0])


def vault_box(settings: Settings) -> SecretBox | None:
    """The box of ``ENCRYPTION_KEY`` (all its keys), or None when it is unset."""
    key = settings.encryption_key
    return SecretBox(key.get_secret_value()) if key is not None else None


def passwords_box(settings: Settings) -> SecretBox:
    """The box of the web passwords (:func:`bot.crypto.password_box` on the settings)."""

    def value(secret: SecretStr | None) -> str | None:
        return secret.get_secret_value() if secret is not None else None

    return password_box(
        value(settings.encryption_key),
        signing_secret=value(settings.slack_signing_secret),
        bot_token=value(settings.slack_bot_token),
    )


def _columns(
    vault: SecretBox | None, passwords: SecretBox
) -> list[tuple[SecretColumn, SecretBox, bool]]:
    """``(column, its box, whether the canary depends on it)``: vault columns first."""
    columns: list[tuple[SecretColumn, SecretBox, bool]] = []
    if vault is not None:
        columns.append((storage.VAST_KEYS, vault, True))
        columns += [(column, vault, True) for column in storage.SLACK_SECRETS]
    columns.append((storage.WEB_PASSWORDS, passwords, False))
    return columns


def seal_plaintext(sf: SessionFactory, vault: SecretBox | None, passwords: SecretBox) -> int:
    """Encrypt every secret an older version stored in plain text (web passwords; Slack
    tokens when ``ENCRYPTION_KEY`` is set), in batches; values already encrypted are not even
    read. Run at every start-up, safe from several processes at once (compare-and-set per
    row). Returns how many values were encrypted (logged when any)."""
    done: dict[str, int] = {}
    for column, box, _ in _columns(vault, passwords):
        report = storage.reseal_column(sf, column, box.reseal, skip_prefix=SEALED_PREFIX)
        if report.changed:
            done[column.what] = done.get(column.what, 0) + report.changed
    if done:
        logger.info(
            "encrypted at rest what an earlier version stored in plain text: %s",
            ", ".join(f"{count} {what}" for what, count in done.items()),
        )
    return sum(done.values())


@dataclass
class Tally:
    """Per kind of secret: ``rotated`` (rewritten under the first key), ``current`` (already
    were), ``unreadable`` (no key decrypts them: left as they are), ``raced`` (changed by the
    bot meanwhile: it writes under the first key)."""

    rotated: int = 0
    current: int = 0
    unreadable: int = 0
    raced: int = 0


@dataclass
class RotationReport:
    """What :func:`rotate_all` did, per kind of secret (``what``), and to the canary."""

    tallies: dict[str, Tally] = field(default_factory=dict)
    canary: str = "none"
    """``"rotated"``, ``"current"``, ``"kept"`` (a vault secret is unreadable: the canary stays
    under the old key so that it is still required) or ``"none"`` (no ``ENCRYPTION_KEY``)."""

    @property
    def vault_unreadable(self) -> int:
        return sum(
            t.unreadable for what, t in self.tallies.items() if what != storage.WEB_PASSWORDS.what
        )

    def lines(self) -> list[str]:
        """The report for a terminal, one line per kind, then the canary's and the verdict."""
        out = []
        for what, t in self.tallies.items():
            line = f"{what}: {t.rotated} re-encrypted, {t.current} already under the first key"
            if t.raced:
                line += f", {t.raced} changed meanwhile by the bot"
            if t.unreadable:
                line += f", {t.unreadable} that no configured key decrypts (left as they are)"
            out.append(line)
        out.append(
            {
                "rotated": "canary: re-encrypted with the first key",
                "current": "canary: already under the first key",
                "kept": "canary: left under its key, which is therefore still required",
                "none": "canary: none (ENCRYPTION_KEY is unset)",
            }[self.canary]
        )
        return out


def rotate_all(
    sf: SessionFactory,
    vault: SecretBox | None,
    passwords: SecretBox,
    *,
    batch_size: int = BATCH_SIZE,
    progress: Callable[[str], None] = lambda line: None,
) -> RotationReport:
    """Re-encrypt every stored secret with the first key of its box (plain text encrypted,
    tokens of another key rotated, tokens of the first key left), then the canary (see the
    module docstring). Safe to kill and to run again; safe while the bot runs.

    Raises:
        EncryptionKeyError: no key of ``ENCRYPTION_KEY`` decrypts the canary (nothing done).
    """
    report = RotationReport()
    if vault is not None:
        verify_canary(vault, sf)
    for column, box, _ in _columns(vault, passwords):
        tally = report.tallies.setdefault(column.what, Tally())
        unreadable = 0

        def reseal(value: str, box: SecretBox = box) -> str | None:
            nonlocal unreadable
            try:
                return box.reseal(value)
            except EncryptionKeyError:
                unreadable += 1
                return None

        result = storage.reseal_column(sf, column, reseal, batch_size=batch_size)
        tally.rotated += result.changed
        tally.raced += result.raced
        tally.unreadable += unreadable
        tally.current += result.seen - result.changed - result.raced - unreadable
        progress(f"{column.table}.{column.column}: {result.changed} of {result.seen} rewritten")
    if vault is not None:
        report.canary = _rotate_canary(sf, vault) if report.vault_unreadable == 0 else "kept"
    return report


def _rotate_canary(sf: SessionFactory, vault: SecretBox) -> str:
    stored = storage.get_state(sf, CANARY_STATE)
    if stored is None:  # verify_canary() wrote one under the first key
        return "current"
    new = vault.reseal(stored[0])
    if new is None:
        return "current"
    if not storage.swap_state(sf, CANARY_STATE, stored[0], new):
        # Another run rewrote it meanwhile: under the first key, since that is the only way.
        return "current"
    return "rotated"


def main_rotate_key(batch_size: int = BATCH_SIZE) -> int:
    """``python -m bot rotate-key``: the same settings as the bot (environment, ``.env``),
    the database migrated as at start-up, then :func:`rotate_all`. Prints the report. Exit
    status 0 when every secret that any key decrypts is under the first key (the other keys
    may then be removed), 1 when some vault secret no key decrypts (the canary was kept), 2
    when it cannot start (configuration, keys, database)."""
    try:
        settings = load_settings()
        vault = vault_box(settings)
        passwords = passwords_box(settings)
        engine = storage.make_engine(settings.database_url)
        try:
            storage.migrate(engine)
            sf = storage.make_session_factory(engine)
            report = rotate_all(sf, vault, passwords, batch_size=batch_size, progress=print)
        finally:
            engine.dispose()
    except (ConfigError, EncryptionKeyError) as exc:
        print(f"Cannot rotate: {exc}")
        return 2
    except SQLAlchemyError as exc:
        print(
            f"Cannot rotate: {storage.describe_unusable(settings.database_url, exc)} Nothing "
            "was lost: every value is under the old key or the new one; run it again."
        )
        return 2
    for line in report.lines():
        print(line)
    if report.vault_unreadable:
        print(
            "Some secrets decrypt with no key in ENCRYPTION_KEY: add the key they were saved "
            "with and run rotate-key again (or remove those workspaces' Vast.ai keys in "
            "/templates setup). Keep the old keys until then."
        )
        return 1
    if vault is not None:
        print(
            "Every secret is now encrypted with the first key of ENCRYPTION_KEY: the other "
            "keys can be removed (then restart)."
        )
    else:
        print("Every web password is now encrypted with the key derived from the current secret.")
    return 0
