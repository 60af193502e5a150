"""Block actions (``block_actions`` payloads: buttons, selects), one module per feature, each a
class whose methods are the listeners; :func:`register` is the one table from ``action_id`` to
method. The ids are the Block Kit builders' constants (:mod:`bot.slack.blocks`);
``tests/test_listener_coverage.py`` checks that every one of them has a listener here.

A block action is acked within 3 s (https://api.slack.com/interactivity/handling#acknowledgment_response):
every method calls ``ack()`` first and hands slow work to the work pool.
"""

from __future__ import annotations

from dataclasses import dataclass

from slack_bolt import App

from bot.slack.blocks import budgets as budget_blocks
from bot.slack.blocks import lifetimes as lifetime_blocks
from bot.slack.blocks import manage as manage_blocks
from bot.slack.blocks import picker, status
from bot.slack.blocks import sharing as sharing_blocks
from bot.slack.blocks import sshkeys as sshkey_blocks
from bot.slack.blocks import templates as template_blocks
from bot.slack.listeners.actions.approvals import ApprovalActions
from bot.slack.listeners.actions.budgets import AuditActions
from bot.slack.listeners.actions.deploy import DeployActions
from bot.slack.listeners.actions.manage import ManageActions
from bot.slack.listeners.actions.sharing import SharingActions
from bot.slack.listeners.actions.sshkeys import SshKeyActions
from bot.slack.listeners.actions.templates import TemplateActions


@dataclass(frozen=True)
class ActionHandlers:
    """The objects whose methods answer block actions."""

    templates: TemplateActions
    deploy: DeployActions
    manage: ManageActions
    sharing: SharingActions
    approvals: ApprovalActions
    audit: AuditActions
    ssh_keys: SshKeyActions


def register(app: App, handlers: ActionHandlers) -> None:
    """Attach every block action listener to ``app``."""
    h = handlers
    # The catalog listing (/templates).
    app.action(template_blocks.ACTION_PAGE_NEXT)(h.templates.on_page)
    app.action(template_blocks.ACTION_PAGE_PREV)(h.templates.on_page)
    app.action(template_blocks.ACTION_DETAILS)(h.templates.on_details)
    # Deploy and the GPU offer picker.
    app.action(template_blocks.ACTION_DEPLOY)(h.deploy.on_deploy_clicked)
    app.action(picker.ACTION_REFRESH)(h.deploy.on_refresh)
    app.action(picker.ACTION_OFFER)(h.deploy.on_offer_chosen)
    app.action(picker.ACTION_LIFETIME)(h.deploy.on_offer_chosen)
    app.action(picker.ACTION_GPU_FILTER)(h.deploy.on_input_changed)
    app.action(picker.ACTION_MAX_PRICE)(h.deploy.on_input_changed)  # a select, no-offers view
    app.action(picker.ACTION_CHANNEL)(h.deploy.on_input_changed)
    # Deployments: status messages, listings, the Home tab, expiry and idle warnings.
    for action_id in (
        status.ACTION_STOP,
        status.ACTION_START,
        status.ACTION_DESTROY,
        status.ACTION_CREDENTIALS,
    ):
        app.action(action_id)(h.manage.on_deployment_action)
    app.action(lifetime_blocks.ACTION_EXTEND_PATTERN)(h.manage.on_extend)
    app.action(lifetime_blocks.ACTION_KEEP_RUNNING)(h.manage.on_keep_running)
    app.action(manage_blocks.ACTION_LIST_PAGE_PREV)(h.manage.on_listing_page)
    app.action(manage_blocks.ACTION_LIST_PAGE_NEXT)(h.manage.on_listing_page)
    app.action(sharing_blocks.ACTION_SHARE)(h.sharing.on_share_clicked)
    # Approvals, and the audit log's pages.
    app.action(budget_blocks.ACTION_APPROVE)(h.approvals.on_approve)
    app.action(budget_blocks.ACTION_DENY)(h.approvals.on_deny)
    app.action(budget_blocks.ACTION_AUDIT_PREV)(h.audit.on_audit_page)
    app.action(budget_blocks.ACTION_AUDIT_NEXT)(h.audit.on_audit_page)
    # SSH keys.
    app.action(sshkey_blocks.ACTION_OPEN)(h.ssh_keys.on_open)
    app.action(sshkey_blocks.ACTION_REMOVE)(h.ssh_keys.on_remove)
