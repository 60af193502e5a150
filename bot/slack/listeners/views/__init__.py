"""Modal submissions (``view_submission`` payloads), one module per feature, each a class whose
methods are the listeners; :func:`register` is the one table from ``callback_id`` to method.
The ids are the Block Kit builders' constants (:mod:`bot.slack.blocks`);
``tests/test_listener_coverage.py`` checks that every modal with a submit button has one.

A submission is acked within 3 s, and the ack carries the answer: ``response_action``
``errors`` / ``update`` / ``clear`` (https://api.slack.com/surfaces/modals#interactions).
No modal asks for ``notify_on_close``, so there are no ``view_closed`` listeners.
"""

from __future__ import annotations

from dataclasses import dataclass

from slack_bolt import App

from bot.slack.blocks import budgets as budget_blocks
from bot.slack.blocks import picker
from bot.slack.blocks import setup as setup_blocks
from bot.slack.blocks import sharing as sharing_blocks
from bot.slack.blocks import sshkeys as sshkey_blocks
from bot.slack.listeners.views.approvals import ApprovalViews
from bot.slack.listeners.views.budgets import BudgetViews
from bot.slack.listeners.views.deploy import DeployViews
from bot.slack.listeners.views.setup import SetupViews
from bot.slack.listeners.views.sharing import SharingViews
from bot.slack.listeners.views.sshkeys import SshKeyViews


@dataclass(frozen=True)
class ViewHandlers:
    """The objects whose methods answer modal submissions."""

    deploy: DeployViews
    sharing: SharingViews
    approvals: ApprovalViews
    budgets: BudgetViews
    setup: SetupViews
    ssh_keys: SshKeyViews


def register(app: App, handlers: ViewHandlers) -> None:
    """Attach every modal submission listener to ``app``."""
    h = handlers
    app.view(picker.CALLBACK_DEPLOY)(h.deploy.on_deploy_submitted)
    app.view(sharing_blocks.CALLBACK_SHARE)(h.sharing.on_share_submitted)
    app.view(budget_blocks.CALLBACK_DENY)(h.approvals.on_deny_submitted)
    app.view(budget_blocks.CALLBACK_BUDGET)(h.budgets.on_budget_submitted)
    app.view(setup_blocks.CALLBACK_SETUP)(h.setup.on_setup_submitted)
    app.view(sshkey_blocks.CALLBACK_SSH_KEYS)(h.ssh_keys.on_key_submitted)
