"""The Slack side of the services' messages port (:class:`bot.services.ports.Messages`).

Each message the services send is rendered here, once, by the pure builders in
:mod:`bot.slack.blocks`, and sent through the :class:`bot.slack.notifier.Notifier`, which turns
every Slack
failure (a refusal, a 429 after slack_sdk's retries, a network error) into a returned outcome
(logged in one line, without the payload): no service has to catch Slack's exceptions. Status
message edits queued with :meth:`SlackMessages.queue_status` and Home tabs go through the
paced, coalescing :class:`bot.slack.outbox.Outbox` when one is given.

Each message goes out with the bot token of the workspace it concerns: the deployment's
(``team_id``, ``enterprise_id``) for everything about a deployment, the ``team_id`` keyword
of the methods that have no deployment (:meth:`SlackMessages.dm`, ``user_tz``,
``budget_alert``, ``digest``, ``approval_reply``), :attr:`HomeData.team_id` for Home tabs
(``notifier_for``: :class:`bot.slack.clients.WorkspaceNotifiers`). In OAuth mode a message
naming no workspace, or a workspace without an installation, is not sent (``refused``:
``not_installed``, one log line); in single-workspace mode every message goes to the one
workspace.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any, Literal, Protocol

from slack_sdk.errors import SlackApiError

from bot.crypto import UNREADABLE_PASSWORD, EncryptionKeyError, looks_sealed
from bot.formats import money
from bot.services.ports import (
    ApprovalDecision,
    ApprovalRequest,
    AutoAction,
    BudgetAlert,
    Delivery,
    DigestData,
    ExpiryNotice,
    HomeData,
    IdleNotice,
    IntentNotice,
    PostedLike,
    Reminder,
)
from bot.slack.blocks import budgets as budget_blocks
from bot.slack.blocks import deploy as deploy_blocks
from bot.slack.blocks import health as health_blocks
from bot.slack.blocks import instance_keys as key_blocks
from bot.slack.blocks import intents as intent_blocks
from bot.slack.blocks import lifetimes as lifetime_blocks
from bot.slack.blocks import notify
from bot.slack.blocks.home import home_view
from bot.slack.blocks.status import status_message, visible_key
from bot.slack.notifier import NOT_INSTALLED, REFUSED, SENT, SlackResult
from bot.slack.outbox import Outbox
from catalog import OfferLike, Template
from storage import SYSTEM_ACTOR, DeploymentRecord, utcnow

logger = logging.getLogger(__name__)

_ACTION_TEXT = {
    "stop": ":double_vertical_bar: <@{actor}> stopped it: the GPU is released, the disk still "
    "bills.",
    "start": ":arrow_forward: <@{actor}> started it again; this message turns Ready when the app "
    "answers.",
    "destroy": ":wastebasket: <@{actor}> destroyed it. Total cost {cost}.",
}


class NotifierLike(Protocol):
    """The parts of :class:`bot.slack.notifier.Notifier` the messages use."""

    def post_status(
        self, channel: str, user_id: str, payload: dict[str, Any]
    ) -> PostedLike | None: ...

    def update(self, channel: str, ts: str, payload: dict[str, Any]) -> SlackResult | bool: ...

    def reply(
        self, channel: str, thread_ts: str, text: str, blocks: Any = None
    ) -> SlackResult | bool: ...

    def dm(self, user_id: str, text: str, blocks: Any = None) -> str | None: ...

    def open_dm(self, user_id: str) -> str | None: ...

    def post(self, channel: str, text: str, blocks: Any = None) -> str | None: ...


class HomeNotifierLike(NotifierLike, Protocol):
    """A notifier that can also publish the Home tab, name the workspace and read users."""

    def publish_home(self, user_id: str, view: Any) -> SlackResult | None: ...

    def team_id(self) -> str | None: ...

    def user_tz(self, user_id: str) -> str | None: ...

    def upload_dm(
        self, user_id: str, *, filename: str, content: str, title: str, comment: str
    ) -> SlackResult: ...


def _delivery(result: SlackResult | bool | None) -> Delivery:
    """The port's :class:`Delivery` for a notifier answer (a plain bool from a test stand-in:
    True sent, False refused)."""
    if isinstance(result, SlackResult):
        return {SENT: Delivery.SENT, REFUSED: Delivery.REFUSED}.get(
            result.outcome, Delivery.UNAVAILABLE
        )
    return Delivery.SENT if result or result is None else Delivery.REFUSED


def _failure(what: str, error: Exception) -> None:
    """One log line: Slack's error code when Slack answered, else the exception's type."""
    code = error.response.get("error") if isinstance(error, SlackApiError) else None
    logger.warning("%s failed: %s", what, code or type(error).__name__)


NotifierFor = Callable[[str | None, str | None], HomeNotifierLike]
"""``notifier_for(team_id, enterprise_id)``: the notifier of that workspace, never None (one
that sends nothing for a workspace without an installation:
:class:`bot.slack.clients.WorkspaceNotifiers`)."""


class PasswordOpener(Protocol):
    """What :class:`SlackMessages` needs of ``bot.crypto.SecretBox``: the plain text of a
    stored secret (``EncryptionKeyError`` when no key decrypts it)."""

    def open(self, stored: str) -> str: ...


class SlackMessages:
    """Renders and sends the services' messages (see the module docstring).

    Args:
        notifier: a :class:`bot.slack.notifier.Notifier` (tests pass a recording stand-in); used
            for every workspace when ``notifier_for`` is None.
        notifier_for: the notifier of each workspace (:data:`NotifierFor`); None: always
            ``notifier``.
        clock: aware UTC now, for the running times and costs shown.
        expiry_action: ``ON_EXPIRY`` (``stop``/``destroy``), so end times say what happens.
        outbox: the paced, coalescing outbox for queued status edits and Home tabs (None:
            they are sent at once on the caller's thread, as tests of one service do).
        passwords: opens the web password a row holds (``bot.crypto.SecretBox.open``: a
            Fernet token decrypted, plain text from before encryption at rest as it is) for
            the login DM; None: only plain text can be shown, a token is "unreadable".
    """

    def __init__(
        self,
        notifier: HomeNotifierLike,
        *,
        clock: Callable[[], datetime] = utcnow,
        expiry_action: str = "stop",
        outbox: Outbox | None = None,
        notifier_for: NotifierFor | None = None,
        passwords: PasswordOpener | None = None,
    ) -> None:
        self.notifier = notifier
        self.passwords = passwords
        self.clock = clock
        self.expiry_action = expiry_action
        self.outbox = outbox
        self.notifier_for = notifier_for

    def _notifier(self, team_id: str | None, enterprise_id: str | None = None) -> HomeNotifierLike:
        """The notifier of workspace ``team_id`` (``notifier`` for all without
        ``notifier_for``)."""
        if self.notifier_for is None:
            return self.notifier
        return self.notifier_for(team_id or None, enterprise_id or None)

    def _of(self, dep: DeploymentRecord) -> HomeNotifierLike:
        """The notifier of the workspace ``dep`` belongs to."""
        return self._notifier(dep.team_id, dep.enterprise_id)

    # -- the status message ----------------------------------------------------------------

    def post_status(self, dep: DeploymentRecord, template: Template | None) -> PostedLike | None:
        """See :meth:`bot.services.ports.Messages.post_status`."""
        try:
            payload = status_message(
                dep, template, now=self.clock(), expiry_action=self.expiry_action
            )
            return self._of(dep).post_status(dep.channel_id, dep.user_id, payload)
        except Exception as error:  # Slack down or refusing: the caller rents nothing
            _failure(f"status message of deployment {dep.id}", error)
            return None

    def _status_payload(
        self, dep: DeploymentRecord, template: Template | None, note: str | None
    ) -> dict[str, Any]:
        return status_message(
            dep, template, now=self.clock(), note=note, expiry_action=self.expiry_action
        )

    def show_status(
        self, dep: DeploymentRecord, template: Template | None, *, note: str | None = None
    ) -> Delivery:
        """See :meth:`bot.services.ports.Messages.show_status`."""
        if not dep.message_channel or not dep.message_ts:
            return Delivery.REFUSED
        payload = self._status_payload(dep, template, note)
        return _delivery(self._of(dep).update(dep.message_channel, dep.message_ts, payload))

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
        """See :meth:`bot.services.ports.Messages.queue_status`."""
        channel, ts = dep.message_channel, dep.message_ts
        if not channel or not ts:
            return Delivery.REFUSED
        if self.outbox is None:
            delivery = self.show_status(dep, template, note=note)
            if on_done is not None:
                on_done(delivery)
            return delivery

        def kwargs() -> dict[str, Any]:  # rendered when sent, from the row as it is then
            row = (latest() if latest is not None else None) or dep
            return {"channel": channel, "ts": ts, **self._status_payload(row, template, note)}

        self.outbox.submit(
            dep.team_id,
            "chat.update",
            ("status", dep.id),
            kwargs,
            version=dep.version,
            on_done=None if on_done is None else (lambda result: on_done(_delivery(result))),
            replace=replace,
        )
        return Delivery.QUEUED

    def flush(self, timeout: float) -> bool:
        """See :meth:`bot.services.ports.Messages.flush`."""
        return self.outbox.drain(timeout) if self.outbox is not None else True

    def visible_key(self, dep: DeploymentRecord, *, now: datetime) -> Hashable:
        """See :func:`bot.slack.blocks.status.visible_key`."""
        return visible_key(dep, now=now)

    # -- thread notes ----------------------------------------------------------------------

    def _reply(self, dep: DeploymentRecord, what: str, text: str, blocks: Any = None) -> bool:
        """Reply in the status message's thread only (False when ``dep`` has no message or
        the reply did not go through)."""
        if not dep.message_channel or not dep.message_ts:
            return False
        return bool(self._of(dep).reply(dep.message_channel, dep.message_ts, text, blocks))

    def _thread(self, dep: DeploymentRecord, text: str, blocks: Any = None) -> bool:
        """Reply in the status message's thread; DM the requester when there is no thread or
        the channel refuses (not when Slack is unavailable: the caller tries again later)."""
        notifier = self._of(dep)
        if dep.message_channel and dep.message_ts:
            result = notifier.reply(dep.message_channel, dep.message_ts, text, blocks)
            if result:
                return True
            if _delivery(result) is not Delivery.REFUSED:
                return False
            if isinstance(result, SlackResult) and result.error == NOT_INSTALLED:
                return False
        return notifier.dm(dep.user_id, text, blocks) is not None

    def _dm(
        self,
        user_id: str,
        what: str,
        payload: dict[str, Any],
        *,
        team_id: str | None,
        enterprise_id: str | None = None,
    ) -> bool:
        """DM ``payload`` (``{"text", "blocks"?}``) in workspace ``team_id``; a Slack failure
        is logged as ``what``."""
        try:
            notifier = self._notifier(team_id, enterprise_id)
            return notifier.dm(user_id, payload["text"], payload.get("blocks")) is not None
        except Exception as error:
            _failure(what, error)
            return False

    def _dm_owner(self, dep: DeploymentRecord, what: str, payload: dict[str, Any]) -> bool:
        """:meth:`_dm` to ``dep``'s requester, in its workspace."""
        return self._dm(
            dep.user_id, what, payload, team_id=dep.team_id, enterprise_id=dep.enterprise_id
        )

    def offer_switched(
        self, dep: DeploymentRecord, taken: OfferLike, replacement: OfferLike
    ) -> bool:
        """See :func:`bot.slack.blocks.deploy.offer_switched_note`."""
        payload = deploy_blocks.offer_switched_note(dep, taken, replacement)
        return self._reply(dep, "offer-switched note", payload["text"], payload.get("blocks"))

    def deploy_failed(
        self, dep: DeploymentRecord, reason: str, *, retry_slug: str | None = None
    ) -> bool:
        """See :func:`bot.slack.blocks.deploy.failure_note`."""
        payload = deploy_blocks.failure_note(dep, reason, retry_slug=retry_slug)
        return self._thread(dep, payload["text"], payload.get("blocks"))

    def ready(
        self, dep: DeploymentRecord, template: Template | None, *, jupyter_token: str | None
    ) -> bool:
        """See :func:`bot.slack.blocks.notify.ready_text`."""
        return self._thread(dep, notify.ready_text(dep, template, jupyter_token=jupyter_token))

    def failed(self, dep: DeploymentRecord) -> bool:
        """See :func:`bot.slack.blocks.notify.failed_text`."""
        return self._thread(dep, notify.failed_text(dep))

    def gone(self, dep: DeploymentRecord) -> bool:
        """See :func:`bot.slack.blocks.notify.gone_text`."""
        return self._thread(dep, notify.gone_text(dep))

    def stopped_outside(self, dep: DeploymentRecord) -> bool:
        """See :func:`bot.slack.blocks.notify.stopped_outside_text`."""
        return self._thread(dep, notify.stopped_outside_text(dep))

    def action_done(self, dep: DeploymentRecord, action: str, actor: str, cost: float) -> bool:
        """Who stopped/started/destroyed it, in the thread (the channel's audit trail)."""
        if action not in _ACTION_TEXT:
            return False
        text = _ACTION_TEXT[action].format(actor=actor, cost=money(cost))
        return self._reply(dep, "thread reply", text)

    # -- lifetimes, idle GPUs, reminders, the digest ---------------------------------------

    def expiry_warning(self, dep: DeploymentRecord, notice: ExpiryNotice) -> bool:
        """See :func:`bot.slack.blocks.lifetimes.expiry_warning_message` (DM) and
        :func:`~bot.slack.blocks.lifetimes.expiry_note_message` (thread)."""
        now = self.clock()
        dm = self._dm_owner(
            dep,
            f"expiry warning of deployment {dep.id}",
            lifetime_blocks.expiry_warning_message(dep, notice, now=now),
        )
        note = lifetime_blocks.expiry_note_message(dep, notice, now=now)
        threaded = self._reply(dep, "expiry note", note["text"], note.get("blocks"))
        return dm or threaded

    def idle_warning(self, dep: DeploymentRecord, notice: IdleNotice) -> bool:
        """See :func:`bot.slack.blocks.lifetimes.idle_warning_message` (DM to the owner)."""
        payload = lifetime_blocks.idle_warning_message(dep, notice, now=self.clock())
        return self._dm_owner(
            dep,
            f"idle warning of deployment {dep.id}",
            payload,
        )

    def auto_action(self, dep: DeploymentRecord, done: AutoAction) -> bool:
        """See :func:`bot.slack.blocks.lifetimes.auto_action_text` (thread and DM to the owner)."""
        text = lifetime_blocks.auto_action_text(dep, done)
        threaded = self._reply(dep, "automatic action note", text)
        dm = self._dm_owner(
            dep,
            f"automatic action DM of deployment {dep.id}",
            lifetime_blocks.auto_action_message(dep, done, now=self.clock()),
        )
        return threaded or dm

    def intent_settled(self, dep: DeploymentRecord, notice: IntentNotice) -> bool:
        """See :func:`bot.slack.blocks.intents.intent_text` (thread; the owner's DM too for the
        bot's
        own acts, or after the owner was told that it kept failing)."""
        payload = intent_blocks.intent_message(dep, notice)
        threaded = self._reply(dep, "intent note", payload["text"], payload.get("blocks"))
        if notice.actor != SYSTEM_ACTOR and dep.desired_gave_up_at is None and threaded:
            return True
        dm = self._dm_owner(dep, f"intent DM of deployment {dep.id}", payload)
        return threaded or dm

    def intent_failing(self, dep: DeploymentRecord, notice: IntentNotice) -> bool:
        """See :func:`bot.slack.blocks.intents.intent_text` (``failing``: DM to the owner and the
        thread)."""
        payload = intent_blocks.intent_message(dep, notice)
        dm = self._dm_owner(dep, f"failing act DM of deployment {dep.id}", payload)
        threaded = self._reply(dep, "failing act note", payload["text"], payload.get("blocks"))
        return dm or threaded

    def reminder(self, dep: DeploymentRecord, reminder: Reminder) -> bool:
        """See :func:`bot.slack.blocks.lifetimes.reminder_message` (DM to the owner)."""
        payload = lifetime_blocks.reminder_message(dep, reminder, now=self.clock())
        return self._dm_owner(
            dep,
            f"{reminder.kind} reminder of deployment {dep.id}",
            payload,
        )

    def note(self, dep: DeploymentRecord, text: str) -> bool:
        """A short note in the status message's thread."""
        return self._reply(dep, "thread note", text)

    def key_kept(
        self, dep: DeploymentRecord, *, user_id: str, fingerprint: str, reason: str
    ) -> bool:
        """See :func:`bot.slack.blocks.instance_keys.key_kept_text` (thread; the owner's DM when
        there is no thread)."""
        text = key_blocks.key_kept_text(
            dep, user_id=user_id, fingerprint=fingerprint, reason=reason
        )
        return self._thread(dep, text)

    def digest(self, channel: str, data: DigestData, *, team_id: str | None = None) -> bool:
        """See :func:`bot.slack.blocks.lifetimes.digest_message`; posted in workspace
        ``team_id``."""
        try:
            payload = lifetime_blocks.digest_message(data)
            notifier = self._notifier(team_id)
            return notifier.post(channel, payload["text"], payload.get("blocks")) is not None
        except Exception as error:
            _failure("digest", error)
            return False

    # -- approvals and budgets --------------------------------------------------------------

    def approval_request(
        self, request: ApprovalRequest, *, recipients: frozenset[str], channel: str | None
    ) -> list[tuple[str, str]]:
        """See :func:`bot.slack.blocks.budgets.approval_request_message`."""
        payload = budget_blocks.approval_request_message(request, now=self.clock())
        notifier = self._of(request.dep)
        landed: list[tuple[str, str]] = []
        if channel is not None:
            text = f"{' '.join(f'<@{u}>' for u in sorted(recipients))} {payload['text']}"
            try:
                ts = notifier.post(channel, text[:3000], payload.get("blocks"))
            except Exception as error:
                _failure(f"approval request of deployment {request.dep.id}", error)
                ts = None
            if ts is not None:
                return [(channel, ts)]
            logger.warning("approval channel refused: asking the approvers by DM")
        for user in sorted(recipients):
            try:
                dm = notifier.open_dm(user)
                if dm is None:
                    continue
                ts = notifier.post(dm, payload["text"], payload.get("blocks"))
            except Exception as error:
                _failure(f"approval DM of deployment {request.dep.id}", error)
                continue
            if ts is not None:
                landed.append((dm, ts))
        return landed

    def approval_decided(
        self,
        request: ApprovalRequest,
        decision: ApprovalDecision,
        messages: Sequence[tuple[str, str]],
    ) -> None:
        """See :func:`bot.slack.blocks.budgets.approval_decided_message`."""
        payload = budget_blocks.approval_decided_message(request, decision)
        notifier = self._of(request.dep)
        for channel, ts in messages:
            try:
                notifier.update(channel, ts, payload)
            except Exception as error:
                _failure(f"approval message of deployment {request.dep.id}", error)

    def approval_reply(
        self, messages: Sequence[tuple[str, str]], text: str, *, team_id: str | None = None
    ) -> None:
        """A thread reply under each approval message (in workspace ``team_id``)."""
        notifier = self._notifier(team_id)
        for channel, ts in messages:
            try:
                notifier.reply(channel, ts, text)
            except Exception as error:
                _failure("approval thread reply", error)

    def requester_decision(self, dep: DeploymentRecord, decision: ApprovalDecision) -> bool:
        """See :func:`bot.slack.blocks.budgets.requester_decision_text`."""
        return self._thread(dep, budget_blocks.requester_decision_text(dep, decision))

    def budget_alert(
        self, user_id: str, alert: BudgetAlert, *, you: bool, team_id: str | None = None
    ) -> bool:
        """See :func:`bot.slack.blocks.budgets.budget_alert_message` (a DM in workspace
        ``team_id``)."""
        payload = budget_blocks.budget_alert_message(alert, you=you)
        return self._dm(user_id, f"budget notice to {user_id}", payload, team_id=team_id)

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
        """See :func:`bot.slack.blocks.health.poller_alert_message` (a DM in workspace
        ``team_id``)."""
        payload = health_blocks.poller_alert_message(
            down=down, since=since, errors=errors, now=now, kind=kind
        )
        return self._dm(user_id, f"poller alert to {user_id}", payload, team_id=team_id)

    def user_tz(self, user_id: str, *, team_id: str | None = None) -> str | None:
        """The user's time zone (``users.info`` in workspace ``team_id``), None when unknown
        or Slack fails."""
        try:
            return self._notifier(team_id).user_tz(user_id)
        except Exception as error:
            _failure(f"users.info for {user_id}", error)
            return None

    # -- direct messages and the Home tab --------------------------------------------------

    def has_secrets(
        self, dep: DeploymentRecord, template: Template | None, *, jupyter_token: str | None
    ) -> bool:
        """See :func:`bot.slack.blocks.notify.has_ready_dm` (a login or an SSH way in to send)."""
        return notify.has_ready_dm(dep, template, jupyter_token)

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
        """See :func:`bot.slack.blocks.notify.secrets_dm` (the ready DM; secrets only ever go by
        DM),
        for ``user_id``, who has an SSH key on file when ``has_ssh_key`` (and whose keys the bot
        puts on this instance when ``keys_on_instance``). The stored password is
        decrypted here, only for the DM; one that no key decrypts is named as unreadable
        (:data:`bot.crypto.UNREADABLE_PASSWORD`), never shown."""
        unreadable = None
        if dep.web_password:
            password = self._open_password(dep.id, dep.web_password)
            if password is None:
                unreadable = UNREADABLE_PASSWORD
            dep = replace(dep, web_password=password)
        payload = notify.secrets_dm(
            dep,
            template,
            has_ssh_key=has_ssh_key,
            jupyter_token=jupyter_token,
            unreadable=unreadable,
            keys_on_instance=keys_on_instance,
        )
        if payload is None:
            return None
        return self._dm(
            user_id,
            f"login DM of deployment {dep.id}",
            payload,
            team_id=dep.team_id,
            enterprise_id=dep.enterprise_id,
        )

    def _open_password(self, deployment_id: int, stored: str) -> str | None:
        """``stored`` in plain text; None when it cannot be decrypted (logged, no secret)."""
        try:
            if self.passwords is not None:
                return self.passwords.open(stored)
            if not looks_sealed(stored):
                return stored
        except EncryptionKeyError:
            pass
        logger.error(
            "deployment %s: its stored web password does not decrypt with the configured keys",
            deployment_id,
        )
        return None

    def dm(self, user_id: str, text: str, *, team_id: str | None = None) -> bool:
        """A plain DM to ``user_id`` in workspace ``team_id``."""
        return self._dm(user_id, "DM", {"text": text}, team_id=team_id)

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
        """See :class:`bot.services.ports.FileSender`."""
        try:
            result = self._notifier(team_id).upload_dm(
                user_id, filename=filename, content=content, title=title, comment=comment
            )
        except Exception as error:
            _failure("file upload", error)
            return type(error).__name__
        return None if result else (result.error or result.outcome)

    def labelled_on_empty_database(
        self, user_id: str, instance_ids: Sequence[int], *, team_id: str | None = None
    ) -> bool:
        """See :func:`bot.slack.blocks.notify.labelled_on_empty_database_text`."""
        text = notify.labelled_on_empty_database_text(instance_ids)
        return self._dm(user_id, "labelled-instances DM", {"text": text}, team_id=team_id)

    def labelled_without_row(
        self, user_id: str, instance_ids: Sequence[int], *, team_id: str | None = None
    ) -> bool:
        """See :func:`bot.slack.blocks.notify.labelled_without_row_text`."""
        text = notify.labelled_without_row_text(instance_ids)
        return self._dm(user_id, "unrecorded-instances DM", {"text": text}, team_id=team_id)

    def _home_view(self, home: HomeData, user_id: str) -> Any:
        return home_view(
            deployments=home.deployments,
            now=home.now,
            user_month=home.user_month,
            workspace_month=home.workspace_month,
            month_label=home.month_label,
            notice=home.notice,
            unmanaged=home.unmanaged,
            expiry_action=self.expiry_action,
            user_budget=home.user_budget,
            workspace_budget=home.workspace_budget,
            viewer=user_id,
            viewer_admin=home.viewer_admin,
        )

    def publish_home(self, user_id: str, home: HomeData) -> bool:
        """See :func:`bot.slack.blocks.home.home_view`; through the outbox when there is one (one
        entry per user: the latest Home wins), so True means queued."""
        if self.outbox is not None:
            self.outbox.submit(
                home.team_id or "",
                "views.publish",
                ("home", user_id),
                lambda: {"user_id": user_id, "view": self._home_view(home, user_id)},
            )
            return True
        notifier = self._notifier(home.team_id)
        return (
            _delivery(notifier.publish_home(user_id, self._home_view(home, user_id)))
            is Delivery.SENT
        )

    def team_id(self) -> str | None:
        """The bot token's workspace (``auth.test``): single-workspace mode only (in OAuth
        mode there is no one bot token, and the answer is None)."""
        return self._notifier(None).team_id() or None
