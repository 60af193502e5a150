"""Events API listeners (Bolt acks events itself unless a listener takes ``ack``).

* ``app_home_opened`` (:class:`HomeEvents`): publish the user's Home view. Slack sends the event
  every time the user opens the app (docs/SLACK_API.md §9); only the ``home`` tab is drawn (the
  Messages tab needs nothing).
* OAuth mode, the app leaving a workspace (:class:`InstallEvents`): ``app_uninstalled`` and
  ``tokens_revoked``. Bolt's own token revocation listeners delete the tokens from the
  installation store (:class:`slack_bolt.listener.builtins.TokenRevocationListeners`; for a
  revoked bot token also the installation rows that hold it, which Bolt's built-in leaves);
  then the install service records it and the bot stops posting there. Bolt skips
  authorization for these two events (the tokens may already be gone).

A new event: a method on a class here (or a new class), its name in the manifests'
``settings.event_subscriptions.bot_events``, and one line in :func:`register`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from slack_bolt import Ack, App, BoltContext
from slack_bolt.listener.builtins import TokenRevocationListeners
from slack_sdk.oauth.installation_store import InstallationStore

from bot.services.home import HomeService
from bot.services.installs import InstallService
from bot.services.membership import MembershipService
from bot.slack.listeners.membership import LOOK

logger = logging.getLogger(__name__)


class HomeEvents:
    """The App Home tab."""

    def __init__(self, home: HomeService, membership: MembershipService) -> None:
        self.home = home
        self.membership = membership

    def on_app_home_opened(self, event: dict[str, Any], body: dict[str, Any]) -> None:
        """Publish the Home tab of the person who opened it (a member of the workspace)."""
        if event.get("tab") != "home" or not event.get("user"):
            return
        team = str(body.get("team_id") or "") or None
        user = str(event["user"])
        # The Home shows the workspace's spend: only for a person who belongs to it (a person
        # of another workspace in a Slack Connect channel can open it too).
        if self.membership.refusal(team, user, None, LOOK) is not None:
            logger.info("App Home of %s not published to %s: not a member", team, user)
            return
        if team:
            self.home.remember_team(team)
        self.home.refresh(user, team_id=team)


class InstallEvents:
    """OAuth mode: the app uninstalled from a workspace, or its tokens revoked."""

    def __init__(self, installs: InstallService, store: InstallationStore) -> None:
        self.installs = installs
        self.store = store
        self.builtins = TokenRevocationListeners(store)

    def on_app_uninstalled(self, ack: Ack, context: BoltContext) -> None:
        """Delete the workspace's tokens (Bolt's built-in), then record the uninstall."""
        ack()
        self.builtins.handle_app_uninstalled_events(context)
        self.installs.uninstalled(context.team_id, context.enterprise_id)

    def on_tokens_revoked(self, ack: Ack, event: dict[str, Any], context: BoltContext) -> None:
        """Delete the revoked tokens; a revoked bot token is an uninstall."""
        ack()
        self.builtins.handle_tokens_revoked_events(event, context)
        if (event.get("tokens") or {}).get("bot"):
            # Bolt's built-in deletes only the ``slack_bots`` rows, but slack_sdk's store keeps
            # the bot token in the installation rows too, and ``find_installation`` (Bolt's
            # authorize, WorkspaceClients) would keep handing out the revoked token. The app
            # asks for no user scopes, so every installation row of the workspace holds that
            # token: drop them all, as for ``app_uninstalled``.
            self.store.delete_all(enterprise_id=context.enterprise_id, team_id=context.team_id)
            self.installs.uninstalled(context.team_id, context.enterprise_id)


@dataclass(frozen=True)
class EventHandlers:
    """The event listeners' objects (``install``: None outside OAuth mode)."""

    home: HomeEvents
    install: InstallEvents | None = None


def register(app: App, handlers: EventHandlers) -> None:
    """Attach the event listeners to ``app``."""
    app.event("app_home_opened")(handlers.home.on_app_home_opened)
    if handlers.install is not None:
        app.event("app_uninstalled")(handlers.install.on_app_uninstalled)
        app.event("tokens_revoked")(handlers.install.on_tokens_revoked)
