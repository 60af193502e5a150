"""OAuth mode: the app leaving a workspace (``app_uninstalled``, ``tokens_revoked``).

Bolt's own token revocation listeners delete the tokens from the installation store
(:class:`slack_bolt.listener.builtins.TokenRevocationListeners`; for a revoked bot token also
the installation rows that hold it, which Bolt's built-in leaves); then the install service
records it and the bot stops posting there. Bolt skips authorization for these two events
(the tokens may already be gone).
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App, BoltContext
from slack_bolt.listener.builtins import TokenRevocationListeners

from bot.services.context import Services

logger = logging.getLogger(__name__)


def register(app: App, services: Services) -> None:
    """Attach the uninstall listeners (only when ``app`` has an installation store)."""
    store = app.installation_store
    if store is None or services.installs is None:
        return
    installs = services.installs
    builtins = TokenRevocationListeners(store)

    @app.use
    def record_org_workspaces(context: BoltContext, next: Any) -> None:
        """An org-wide (Enterprise Grid) install has no workspace at install time: record
        each workspace of the org on its first authorized request."""
        if context.is_enterprise_install and context.team_id and context.enterprise_id:
            installs.served_by_org(context.team_id, context.enterprise_id)
        next()

    @app.event("app_uninstalled")
    def app_uninstalled(ack: Ack, context: BoltContext) -> None:
        ack()
        builtins.handle_app_uninstalled_events(context)
        installs.uninstalled(context.team_id, context.enterprise_id)

    @app.event("tokens_revoked")
    def tokens_revoked(ack: Ack, event: dict[str, Any], context: BoltContext) -> None:
        ack()
        builtins.handle_tokens_revoked_events(event, context)
        if (event.get("tokens") or {}).get("bot"):
            # Bolt's built-in deletes only the ``slack_bots`` rows, but slack_sdk's store keeps
            # the bot token in the installation rows too, and ``find_installation`` (Bolt's
            # authorize, WorkspaceClients) would keep handing out the revoked token. The app
            # asks for no user scopes, so every installation row of the workspace holds that
            # token: drop them all, as for ``app_uninstalled``.
            store.delete_all(enterprise_id=context.enterprise_id, team_id=context.team_id)
            installs.uninstalled(context.team_id, context.enterprise_id)
