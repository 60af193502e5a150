"""OAuth mode's installation store with the Slack secrets encrypted at rest.

:class:`SealedInstallationStore` wraps slack_sdk's ``SQLAlchemyInstallationStore`` and keeps
its contract (``slack_sdk.oauth.installation_store.InstallationStore``: ``save``, ``save_bot``,
``find_bot``, ``find_installation``, ``delete_bot``, ``delete_installation``, ``delete_all``;
https://docs.slack.dev/tools/python-slack-sdk/oauth): what Bolt's OAuth flow, its authorize
(with token rotation) and :class:`bot.slack.clients.WorkspaceClients` save and find are plain
``Installation``/``Bot`` objects, while the rows hold Fernet tokens (:class:`bot.crypto.
SecretBox`) of the bot and user tokens, their refresh tokens and the incoming-webhook URL. A
value stored in plain text before (an install made by an older version) is read as it is, until
start-up encrypts it (:mod:`bot.rekey`). A value no key decrypts is given as None (as if
absent: the workspace must install the app again) and logged without any secret.
"""

from __future__ import annotations

import logging
from logging import Logger

from slack_sdk.oauth.installation_store import Bot, Installation, InstallationStore

from bot.crypto import EncryptionKeyError, SecretBox

logger = logging.getLogger(__name__)

#: The secret attributes of slack_sdk's ``Installation`` and ``Bot``.
INSTALLATION_SECRETS = (
    "bot_token",
    "bot_refresh_token",
    "user_token",
    "user_refresh_token",
    "incoming_webhook_url",
)
BOT_SECRETS = ("bot_token", "bot_refresh_token")


class SealedInstallationStore(InstallationStore):
    """``inner`` (slack_sdk's SQLAlchemy store on the bot's database) with the secrets of each
    installation and bot encrypted with ``box`` on save and decrypted on find (see the module
    docstring). The objects given to ``save``/``save_bot`` are not changed."""

    def __init__(self, inner: InstallationStore, box: SecretBox) -> None:
        self.inner = inner
        self._box = box

    @property
    def logger(self) -> Logger:
        return self.inner.logger

    def _seal(self, value: str | None) -> str | None:
        return self._box.encrypt(value) if value else value

    def _open(self, value: str | None, what: str, owner: str | None) -> str | None:
        if not value:
            return value
        try:
            return self._box.open(value)
        except EncryptionKeyError:
            logger.error(
                "workspace %s: the stored Slack %s does not decrypt with ENCRYPTION_KEY: "
                "treated as absent (install the app again there, or add the key it was saved "
                "with)",
                owner,
                what.replace("_", " "),
            )
            return None

    def save(self, installation: Installation) -> None:
        """Save a copy of ``installation`` with its secrets encrypted (slack_sdk's store also
        saves its bot: ``to_bot()`` of the copy, so encrypted too)."""
        sealed = Installation(**installation.to_dict_for_copying())
        for name in INSTALLATION_SECRETS:
            setattr(sealed, name, self._seal(getattr(installation, name)))
        self.inner.save(sealed)

    def save_bot(self, bot: Bot) -> None:
        """Save a copy of ``bot`` with its tokens encrypted (token rotation saves here)."""
        sealed = Bot(**bot.to_dict_for_copying())
        for name in BOT_SECRETS:
            setattr(sealed, name, self._seal(getattr(bot, name)))
        self.inner.save_bot(sealed)

    def find_bot(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        is_enterprise_install: bool | None = False,
    ) -> Bot | None:
        """slack_sdk's ``find_bot``, tokens decrypted."""
        bot = self.inner.find_bot(
            enterprise_id=enterprise_id,
            team_id=team_id,
            is_enterprise_install=is_enterprise_install,
        )
        if bot is not None:
            for name in BOT_SECRETS:
                setattr(bot, name, self._open(getattr(bot, name), name, team_id or enterprise_id))
        return bot

    def find_installation(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        user_id: str | None = None,
        is_enterprise_install: bool | None = False,
    ) -> Installation | None:
        """slack_sdk's ``find_installation``, secrets decrypted (its "latest bot token" merge
        compares stored values: two encryptions of one token differ, so it may copy the latest
        bot's fields over equal ones, which changes nothing)."""
        installation = self.inner.find_installation(
            enterprise_id=enterprise_id,
            team_id=team_id,
            user_id=user_id,
            is_enterprise_install=is_enterprise_install,
        )
        if installation is not None:
            owner = team_id or enterprise_id
            for name in INSTALLATION_SECRETS:
                setattr(installation, name, self._open(getattr(installation, name), name, owner))
        return installation

    def delete_bot(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        self.inner.delete_bot(enterprise_id=enterprise_id, team_id=team_id)

    def delete_installation(
        self, *, enterprise_id: str | None, team_id: str | None, user_id: str | None = None
    ) -> None:
        self.inner.delete_installation(
            enterprise_id=enterprise_id, team_id=team_id, user_id=user_id
        )

    def delete_all(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        self.inner.delete_all(enterprise_id=enterprise_id, team_id=team_id)
