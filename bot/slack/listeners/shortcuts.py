"""Shortcuts: global shortcuts (the lightning menu, ``shortcut`` payloads) and message
shortcuts (a message's ⋯ menu, ``message_action`` payloads). The app has none yet.

To add a message shortcut (https://api.slack.com/interactivity/shortcuts/using#message_shortcuts):

1. Declare it in ``manifest.yml`` and ``manifest.oauth.yml`` under ``features.shortcuts``
   (``name``, ``type: message``, ``callback_id``, ``description``); the app then needs the
   ``commands`` scope, which it has.
2. Put its ``callback_id`` in a constant of the feature's Block Kit module
   (:mod:`bot.slack.blocks`, e.g. ``CALLBACK_SHARE_MESSAGE``) and build any modal it opens there.
3. Write a class here (or ``shortcuts/<feature>.py`` once there are several) constructed with the
   services it needs, with a method ``on_…(self, ack, shortcut, client)``: ack at once, open a
   modal with ``shortcut["trigger_id"]`` within 3 s, hand slow work to the work pool. A modal it
   opens is answered in :mod:`bot.slack.listeners.views`.
4. Add the object to :class:`ShortcutHandlers`, build it in
   :func:`bot.slack.listeners.build_handlers`, and add one line to :func:`register`:
   ``app.shortcut(CALLBACK_…)(handlers.….on_…)``.
5. ``tests/test_listener_coverage.py`` then checks the manifests' ``callback_id`` has this
   listener; test the method itself by calling it with a fake ``ack`` and ``client``.
"""

from __future__ import annotations

from dataclasses import dataclass

from slack_bolt import App


@dataclass(frozen=True)
class ShortcutHandlers:
    """The objects whose methods answer shortcuts (none yet)."""


def register(app: App, handlers: ShortcutHandlers) -> None:
    """Attach every shortcut listener to ``app`` (none yet: see the module's recipe)."""
