"""What the services need from Slack, as one port (``Messages``), so that they import neither
slack_sdk nor the Block Kit builders.

:class:`bot.slack.messages.SlackMessages` implements it: each message has one renderer there, and
every Slack failure (a refusal, a 429 after retries, a network error) comes back as ``False``
(or ``None``), never as an exception, so a service decides what a failure means.

Every message goes to one workspace, with that workspace's bot token: the deployment's for
the methods given a deployment, :attr:`HomeData.team_id` for Home tabs, and the keyword
``team_id`` of the others. ``team_id=None`` means "the one workspace" in single-workspace
mode and "send nothing" in OAuth mode (a message naming no workspace never reaches another
one); a workspace that uninstalled the app gets nothing (``refused``).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Literal, Protocol

from bot.notices import (
    ApprovalDecision,
    ApprovalRequest,
    AuditEntry,
    AutoAction,
    BudgetAlert,
    BudgetCheck,
    BudgetLine,
    DigestData,
    DigestLine,
    ExpiryNotice,
    IdleNotice,
    IntentNotice,
    Reminder,
    UnmanagedInstance,
)
from catalog import OfferLike, Template
from storage import DeploymentRecord

__all__ = [
    "ApprovalDecision",
    "ApprovalRequest",
    "AuditEntry",
    "AutoAction",
    "BudgetAlert",
    "BudgetCheck",
    "BudgetLine",
    "Delivery",
    "DigestData",
    "DigestLine",
    "ExpiryNotice",
    "HomeData",
    "IdleNotice",
    "IntentNotice",
    "Messages",
    "PostedLike",
    "Reminder",
    "UnmanagedInstance",
]


class Delivery(StrEnum):
    """How a message edit went: Slack took it (``sent``), refused it for good (``refused``:
    e.g. the message was deleted), or could not be reached or rate-limited us after retries
    (``unavailable``: worth trying again later); ``queued``: handed to the outbox, which
    reports the outcome later."""

    SENT = "sent"
    REFUSED = "refused"
    UNAVAILABLE = "unavailable"
    QUEUED = "queued"


class PostedLike(Protocol):
    """Where the status message landed (:class:`bot.slack.notifier.Posted`)."""

    @property
    def channel(self) -> str: ...
    @property
    def ts(self) -> str: ...
    @property
    def fallback_reason(self) -> str | None: ...


@dataclass(frozen=True)
class HomeData:
    """What a user's App Home shows: their live ``deployments`` (newest first), this month's
    spend in $ (``user_month`` theirs, ``workspace_month`` everyone's), the month's name
    (``"December 2026"``), an optional ``notice`` (mrkdwn) on top, and for admins the
    ``unmanaged`` instances on the Vast.ai account (empty for everyone else), and the
    viewer's and the workspace's budgets (None: not known), and the workspace (``team_id``:
    the Home is published with its bot token, through its outbox queue; None: the one
    workspace in single-workspace mode, not published in OAuth mode)."""

    deployments: Sequence[DeploymentRecord]
    now: datetime
    user_month: float
    workspace_month: float
    month_label: str
    notice: str | None = None
    unmanaged: Sequence[UnmanagedInstance] = ()
    user_budget: BudgetLine | None = None
    workspace_budget: BudgetLine | None = None
    team_id: str | None = None
    viewer_admin: bool = False
    """The viewer is a bot admin of ``team_id`` (full control of what is shared with them)."""


class Messages(Protocol):
    """Every message the services send (implemented by :class:`bot.slack.messages.SlackMessages`).

    Methods return True when Slack accepted the message, False when it did not (logged by the
    implementation); none raises for a Slack or network failure (the notifier turns each into
    an outcome: sent, refused with Slack's error, unavailable).
    """

    def post_status(self, dep: DeploymentRecord, template: Template | None) -> PostedLike | None:
        """Post the status message of ``dep`` in its channel (or, when the bot cannot post
        there, in the requester's DM, saying why); None when Slack refused both."""
        ...

    def show_status(
        self, dep: DeploymentRecord, template: Template | None, *, note: str | None = None
    ) -> Delivery:
        """``chat.update`` the status message of ``dep`` to its current state (``note``: an
        extra context line). ``refused`` when ``dep`` has no message."""
        ...

    def queue_status(
        self,
        dep: DeploymentRecord,
        template: Template | None,
        *,
        note: str | None = None,
        on_done: Callable[[Delivery], object] | None = None,
        latest: Callable[[], DeploymentRecord | None] | None = None,
        replace: bool = True,
    ) -> Delivery:
        """Queue the ``chat.update`` of ``dep``'s status message in the paced, coalescing
        outbox (one entry per message: the latest wins) and return at once (``queued``;
        ``refused`` when ``dep`` has no message). ``latest`` re-reads the row when the edit
        is sent (so it shows the database's state then). ``on_done`` gets the final
        delivery, on the outbox's thread. ``replace=False`` (the reconciler): an edit of this
        message already queued or being sent is left as it is, its note included."""
        ...

    def flush(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for queued edits and Home tabs to go out; True when
        none is left (tests, benchmarks and the poller's hand-driven ``tick``)."""
        ...

    def visible_key(self, dep: DeploymentRecord, *, now: datetime) -> Hashable:
        """What the status message of ``dep`` shows that can change over time: equal keys
        mean an edit would show nothing new."""
        ...

    def offer_switched(
        self, dep: DeploymentRecord, taken: OfferLike, replacement: OfferLike
    ) -> bool:
        """Thread reply: the chosen offer was taken and ``replacement`` is tried instead."""
        ...

    def deploy_failed(
        self, dep: DeploymentRecord, reason: str, *, retry_slug: str | None = None
    ) -> bool:
        """Tell the requester ``dep`` could not be deployed (thread, else DM), with a **Pick
        another GPU** button for template ``retry_slug``."""
        ...

    def ready(
        self, dep: DeploymentRecord, template: Template | None, *, jupyter_token: str | None
    ) -> bool:
        """The ready notification in the thread (DM when there is no thread), no secret in it."""
        ...

    def failed(self, dep: DeploymentRecord) -> bool:
        """Thread note: the deployment failed (its ``reason``)."""
        ...

    def gone(self, dep: DeploymentRecord) -> bool:
        """Thread note: the instance disappeared on Vast.ai."""
        ...

    def stopped_outside(self, dep: DeploymentRecord) -> bool:
        """Thread note: the instance was stopped outside the bot."""
        ...

    def action_done(self, dep: DeploymentRecord, action: str, actor: str, cost: float) -> bool:
        """Thread note: ``actor`` stopped/started/destroyed ``dep`` (``cost`` in $ so far)."""
        ...

    def has_secrets(
        self, dep: DeploymentRecord, template: Template | None, *, jupyter_token: str | None
    ) -> bool:
        """True when :meth:`secrets` would have a DM to send: a login or an SSH way in (no
        Slack call)."""
        ...

    def secrets(
        self,
        dep: DeploymentRecord,
        template: Template | None,
        *,
        user_id: str,
        has_ssh_key: bool,
        jupyter_token: str | None = None,
        keys_on_instance: bool = True,
    ) -> bool | None:
        """DM ``user_id`` the ready DM of ``dep`` (how to get in, the login); ``has_ssh_key``:
        whether ``user_id`` has an SSH key on file (when not, the DM offers to add one);
        ``keys_on_instance`` False: the bot does not put ``user_id``'s keys on this instance (an
        admin who is neither owner nor teammate), and the DM says so. None when there is
        nothing to send."""
        ...

    def expiry_warning(self, dep: DeploymentRecord, notice: ExpiryNotice) -> bool:
        """DM the owner that ``dep`` ends soon, with **Extend**, **Stop now** and **Destroy**,
        and a short note with the same buttons in the status message's thread. True when at
        least one of them arrived."""
        ...

    def idle_warning(self, dep: DeploymentRecord, notice: IdleNotice) -> bool:
        """DM the owner that the GPU of ``dep`` is idle, with **Keep running**, **Stop** and
        **Destroy**."""
        ...

    def auto_action(self, dep: DeploymentRecord, done: AutoAction) -> bool:
        """Tell the thread and the owner (DM) what the bot did on its own, and why."""
        ...

    def intent_settled(self, dep: DeploymentRecord, notice: IntentNotice) -> bool:
        """Thread note (DM to the owner when the act was the bot's own, or the owner was told
        it kept failing): an act the reconciler carried out ended (done, gone, withdrawn)."""
        ...

    def intent_failing(self, dep: DeploymentRecord, notice: IntentNotice) -> bool:
        """DM the owner and note in the thread that an act keeps failing, that the GPU may
        still bill, when the bot tries next and how to end it in the Vast.ai console. True
        when at least one of them arrived."""
        ...

    def reminder(self, dep: DeploymentRecord, reminder: Reminder) -> bool:
        """DM the owner a non-urgent reminder (stopped and paying; running for long), with
        **Start**/**Destroy** or **Stop**/**Destroy**."""
        ...

    def note(self, dep: DeploymentRecord, text: str) -> bool:
        """A short mrkdwn note in the status message's thread (nothing when it has none)."""
        ...

    def key_kept(
        self, dep: DeploymentRecord, *, user_id: str, fingerprint: str, reason: str
    ) -> bool:
        """Tell the owner, in the status message's thread (their DM when there is none), that
        the SSH key ``fingerprint`` of ``user_id`` could not be removed from the instance
        (``reason``, plain text) and stays there until the instance is destroyed."""
        ...

    def digest(self, channel: str, data: DigestData, *, team_id: str | None = None) -> bool:
        """Post the daily digest in ``channel`` of workspace ``team_id``."""
        ...

    def approval_request(
        self, request: ApprovalRequest, *, recipients: frozenset[str], channel: str | None
    ) -> list[tuple[str, str]]:
        """Ask for approval with **Approve** / **Deny**: one message in ``channel`` (the
        ``recipients`` mentioned), or without a channel one DM to each recipient. Returns
        where the messages landed (``(channel, ts)``; empty when none arrived). Sent in the
        workspace of ``request.dep``."""
        ...

    def approval_decided(
        self,
        request: ApprovalRequest,
        decision: ApprovalDecision,
        messages: Sequence[tuple[str, str]],
    ) -> None:
        """Replace each approval message (``(channel, ts)``) by the decided one: no buttons,
        who decided and when (in the workspace of ``request.dep``)."""
        ...

    def approval_reply(
        self, messages: Sequence[tuple[str, str]], text: str, *, team_id: str | None = None
    ) -> None:
        """A short reply in the thread of each approval message (in workspace ``team_id``,
        the request's)."""
        ...

    def requester_decision(self, dep: DeploymentRecord, decision: ApprovalDecision) -> bool:
        """Tell the requester how their request was decided (thread of the status message,
        mentioning them; DM when there is none)."""
        ...

    def budget_alert(
        self, user_id: str, alert: BudgetAlert, *, you: bool, team_id: str | None = None
    ) -> bool:
        """DM ``user_id`` (of workspace ``team_id``) that a budget reached 80 % / 100 %
        (``you``: their own budget; else the workspace's)."""
        ...

    def poller_alert(
        self,
        user_id: str,
        *,
        down: bool,
        since: datetime,
        errors: bool,
        now: datetime,
        team_id: str | None = None,
        kind: Literal["poller", "rows"] = "poller",
    ) -> bool:
        """DM bot admin ``user_id`` (of workspace ``team_id``) that the status poller has been
        failing since ``since`` (``down``; ``errors``: its passes end in errors, else none
        completes), or that it recovered (a clean pass at ``since``). ``kind="rows"``: that
        poller passes have hit errors on deployments since ``since`` (``down``), or that they
        no longer do (the last clean pass at ``since``)."""
        ...

    def user_tz(self, user_id: str, *, team_id: str | None = None) -> str | None:
        """The IANA time zone of ``user_id`` (``users.info`` ``user.tz`` in workspace
        ``team_id``); None when Slack does not say or cannot be reached."""
        ...

    def dm(self, user_id: str, text: str, *, team_id: str | None = None) -> bool:
        """A plain DM to ``user_id`` in workspace ``team_id``."""
        ...

    def labelled_on_empty_database(
        self, user_id: str, instance_ids: Sequence[int], *, team_id: str | None = None
    ) -> bool:
        """DM bot admin ``user_id`` (workspace ``team_id``) that the bot started on a database
        without deployments while Vast.ai holds ``instance_ids`` labelled by the bot."""
        ...

    def labelled_without_row(
        self, user_id: str, instance_ids: Sequence[int], *, team_id: str | None = None
    ) -> bool:
        """DM bot admin ``user_id`` (workspace ``team_id``) that Vast.ai holds ``instance_ids``
        labelled by this installation for deployments its database does not hold."""
        ...

    def publish_home(self, user_id: str, home: HomeData) -> bool:
        """``views.publish`` the App Home of ``user_id`` in workspace ``home.team_id``
        (through the outbox: True when queued)."""
        ...

    def team_id(self) -> str | None:
        """The workspace id of the bot token (``auth.test``), None when Slack cannot say:
        single-workspace mode only (None in OAuth mode, where there is no one token)."""
        ...


class FileSender(Protocol):
    """Uploads a file to a person's DM (implemented by
    :class:`bot.slack.messages.SlackMessages`)."""

    def upload_dm(
        self,
        user_id: str,
        *,
        filename: str,
        content: str,
        title: str,
        comment: str,
        team_id: str | None = None,
    ) -> str | None:
        """Upload ``content`` (UTF-8 text) as ``filename`` into the DM of ``user_id`` in
        workspace ``team_id``, with ``comment`` as its message. None when Slack took it, else
        Slack's error code (e.g. ``missing_scope``) or why it could not be reached. Never
        raises."""
        ...
