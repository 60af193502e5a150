"""Slash commands. The app has one, ``/templates`` (the manifests' ``features.slash_commands``):
:class:`bot.slack.listeners.commands.templates.TemplatesCommand` routes its text to a
sub-command, one module per feature (``manage``, ``budgets``, ``setup``, ``sshkeys``), each a
class built with the services it uses, whose methods a test can call with fakes.
:func:`register` is the table from command to method.

A command is acked within 3 s (https://api.slack.com/interactivity/slash-commands#responding_basic_receipt);
a slow answer acks first and follows through the ``response_url``.
"""

from __future__ import annotations

from dataclasses import dataclass

from slack_bolt import App

from bot.slack.listeners.commands.templates import TemplatesCommand


@dataclass(frozen=True)
class CommandHandlers:
    """The objects whose methods answer slash commands."""

    templates: TemplatesCommand


def register(app: App, handlers: CommandHandlers) -> None:
    """Attach every slash command listener to ``app``."""
    app.command("/templates")(handlers.templates.on_templates)
