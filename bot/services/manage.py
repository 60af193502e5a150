"""Stop, start and destroy deployments, and send their login, with permissions.

What should be true is written first: every act records the desired state of the instance
(:func:`storage.claim_intent`: ``stopped``, ``running`` or ``destroyed``, with its reason, its
actor and ``desired_next_try_at`` set) in the transaction that claims it, before Vast.ai is
called, so a double click (or two processes) sends one request, and a crash or a refusal
leaves a pending intent that :class:`bot.services.intents.IntentReconciler` carries out on
the next poller passes. The status column changes only to what Vast.ai accepted, in the
transaction that confirms the intent (:func:`storage.complete_intent`); a final status is
never left.

* **Stop**: desired ``stopped`` on a ``ready`` row, then ``PUT {"state": "stopped"}``; accepted
  → ``ready → stopped``. While it is pending the status message says *Stopping…*.
* **Destroy**: desired ``destroyed`` on a ``provisioning|ready|stopped`` row, then ``DELETE``;
  accepted or 404 (already gone) → ``destroyed``.
* **Start**: desired ``running`` on a ``stopped`` row, with the lease ``deployment-start:<id>``
  in the same transaction (held :data:`START_CLAIM_SECONDS`: one Start click wins, and the
  poller reads it as a start in flight), then ``PUT {"state": "running"}``. The row stays
  ``stopped`` until the poller sees the app answer (:mod:`bot.services.states`).

When Vast.ai refuses a Stop or a Destroy, the desired state stays recorded and pending: the
person is told plainly that it still runs and bills and that the bot keeps trying (with
backoff; the owner is told if it keeps failing). A refused Start is withdrawn instead
(``start_withdrawn``): starting a GPU later, unseen, would bill by surprise, so the person is
told and may press *Start* again. A request whose answer was lost (a timeout or a gateway
error: :func:`bot.services.intents.outcome_unknown`) is no refusal: Vast.ai may have carried
it out, so it stays pending (a Start too, with its lease) and the reconciler reads the
instance on its next pass and confirms it or sends it again; the person is told the bot could
not tell and is checking, never "still stopped" or "still running". An act whose desired
state cannot be recorded (a database error) sends nothing and says so.

Vast.ai facts (docs/VAST_API.md §5, from vast-ai/docs ``manage_instance.yaml``, ``hello-world.mdx``,
``troubleshooting.mdx``): stop keeps billing storage; start needs the *same* GPU and waits in
"scheduling" with no time limit when someone else rented it; destroy is irreversible and a 404
means already gone.

The requester and the bot admins may do anything (:meth:`ManageService.can_manage`); the
teammates a deployment is shared with (:mod:`bot.services.sharing`) may Stop, Start, Extend it
and get its login, never Destroy it (:meth:`ManageService.may`). Every
outcome is recorded in the event log with the Slack user id as actor. Network calls never run
inside a database transaction (each storage call is its own short transaction).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from sqlalchemy.exc import SQLAlchemyError

import storage
from bot import pricing
from bot.formats import deployment_ref, mentions, money, mrkdwn_escape, slack_date
from bot.services.accounts import VastAccounts
from bot.services.admins import AdminDirectory
from bot.services.intents import (
    GONE_REASON,
    called_off_late,
    confirm,
    confirm_withdrawn,
    late_notice,
    outcome_unknown,
    retry_delay,
    send_act,
    settle_fields,
)
from bot.services.intents import START_CLAIM_PREFIX as START_CLAIM_PREFIX
from bot.services.intents import start_claim_name as start_claim_name
from bot.services.message_sync import MessageSync
from bot.services.ports import (
    NO_HOMES,
    AutoAction,
    HomeRefresher,
    IntentNotices,
    LifetimeNotices,
    LoginMessages,
    StatusMessages,
    Templates,
    ThreadNotes,
)
from bot.vast.client import VastClient
from bot.vast.errors import (
    AuthError,
    InsufficientCredit,
    RateLimited,
    VastError,
)
from storage import (
    ACTIVE_STATUSES,
    SYSTEM_ACTOR,
    DeploymentRecord,
    DeploymentStatus,
    SessionFactory,
    add_event,
    collaborators,
    get_deployment,
    get_lease,
    utcnow,
)

logger = logging.getLogger(__name__)

STOP, START, DESTROY = "stop", "start", "destroy"
DESTROYABLE = frozenset(
    {DeploymentStatus.PROVISIONING, DeploymentStatus.READY, DeploymentStatus.STOPPED}
)
START_CLAIM_SECONDS = 300.0
"""How long a Start click blocks further Start clicks (and their Vast.ai requests)."""
_CALLED_OFF = (
    "The Start that was still being sent or checked is called off: the bot sends it no more."
)
#: The desired state each act records.
DESIRED = {STOP: storage.STOPPED, START: storage.RUNNING, DESTROY: storage.DESTROYED}

CREDENTIALS = "credentials"
EXTEND = "extend"
COLLABORATOR_ACTIONS = frozenset({STOP, START, EXTEND, CREDENTIALS})
"""What a collaborator (someone a deployment is shared with) may do: the same lifetime,
budget and approval rules apply as to its owner. Destroy and sharing stay with the owner and
the bot admins."""
NOT_FOUND_TEXT = "That deployment no longer exists in the bot."
"""The answer to an act on a deployment the bot does not hold (also a forged button's id)."""
_VERBS = {
    STOP: "stop",
    START: "start",
    DESTROY: "destroy",
    CREDENTIALS: "get the login of",
    "keep_running": "keep running",
    "share": "share",
}


class OutcomeKind(StrEnum):
    """How a request went (a StrEnum: ``OutcomeKind.DONE == "done"``).

    ``done``: Vast.ai accepted. ``already``: nothing to do (someone did it, or the same act is
    already recorded and being sent: no request). ``pending``: recorded and sent, but Vast.ai
    refused or did not answer: the bot keeps trying. ``refused``: not allowed. ``invalid``:
    not possible in this state. ``failed``: did not happen and nothing stays recorded (a
    refused Start, a gone instance, a desired state that could not be recorded).
    ``not_found``: no such deployment. ``busy``: the work pool was full (listeners).
    """

    DONE = "done"
    ALREADY = "already"
    PENDING = "pending"
    REFUSED = "refused"
    INVALID = "invalid"
    FAILED = "failed"
    NOT_FOUND = "not_found"
    BUSY = "busy"


@dataclass(frozen=True, init=False)
class Outcome:
    """Result of a stop/start/destroy request (or a login, an extension, an approval).

    ``kind``: an :class:`OutcomeKind` (given as a member or its string; an unknown string
    raises ``ValueError``). ``message`` is mrkdwn for the person who clicked.
    ``deployment`` is the row afterwards.
    """

    kind: OutcomeKind
    message: str
    deployment: DeploymentRecord | None = None

    def __init__(
        self, kind: OutcomeKind | str, message: str, deployment: DeploymentRecord | None = None
    ) -> None:
        object.__setattr__(self, "kind", OutcomeKind(kind))
        object.__setattr__(self, "message", message)
        object.__setattr__(self, "deployment", deployment)

    @property
    def changed(self) -> bool:
        """True when the deployment changed (status message and Home need a redraw)."""
        if self.deployment is None:
            return False
        return self.kind in (OutcomeKind.DONE, OutcomeKind.PENDING, OutcomeKind.FAILED)


def _name(dep: DeploymentRecord) -> str:
    return deployment_ref(dep)


def _ended_text(dep: DeploymentRecord) -> str:
    return f"{deployment_ref(dep)} has already ended ({dep.status})."


def unrecorded_text(action: str) -> str:
    """What to say when the desired state of ``action`` could not be written (a database
    error): nothing was sent to Vast.ai."""
    verb = _VERBS.get(action, action)
    return (
        f":x: I could not record your {verb} (the bot's database did not answer), so nothing "
        f"was sent to Vast.ai and nothing changed. Please try again in a moment."
    )


def unknown_text(dep: DeploymentRecord, action: str, later: datetime) -> str:
    """What to tell the user when the answer to ``action`` on ``dep`` was lost (a timeout or
    a gateway error: :func:`bot.services.intents.outcome_unknown`): Vast.ai may have carried
    it out, so the bot reads the instance on its next pass (at ``later``, aware UTC) and the
    status message says what it found. Never "still stopped" or "still running": unknown."""
    verb = _VERBS.get(action, action)
    done = {STOP: "stopped", START: "started", DESTROY: "destroyed"}.get(action, "did it")
    bills = {
        STOP: " Until then it may still be running and billing.",
        START: " If it started, its GPU bills from now on.",
        DESTROY: " Until then it may still exist and bill.",
    }.get(action, "")
    return (
        f":grey_question: I could not tell whether Vast.ai {done} {_name(dep)}: its answer did "
        f"not come back (a timeout or a gateway error). I am checking: the bot reads the "
        f"instance {slack_date(later)} and sends your {verb} again if it did not happen, and "
        f"the status message will say.{bills} No need to press again."
    )


def start_failure_text(dep: DeploymentRecord, error: VastError) -> str:
    """What to tell the user when Vast.ai refuses to start ``dep`` (a clear refusal: an error
    whose outcome is unknown is answered by :func:`unknown_text` instead, since Vast.ai may
    have started it).

    Credit, key and rate-limit errors have their own advice; any other refusal is most likely
    the GPU being rented by someone else (docs/VAST_API.md §5, troubleshooting.mdx).
    """
    what = deployment_ref(dep)
    if outcome_unknown(error):  # never "still stopped" when it may run
        return unknown_text(dep, START, utcnow())
    if isinstance(error, InsufficientCredit | AuthError | RateLimited):
        return f":x: Vast.ai did not start {what}: {error.user_message} It is still stopped."
    detail = error.message.split(": ", 1)[-1] if error.message else ""
    return (
        f":x: Vast.ai could not start {what}: the GPU it ran on is most likely rented by "
        "someone else now, and a stopped instance can only restart on its own GPU. Its disk "
        "is kept (and still bills): try *Start* again later, or *Destroy* it and deploy again "
        f"to get another GPU.\n> Vast.ai said: {detail[:300] or 'no details'}"
    )


class ManageMessages(
    StatusMessages, ThreadNotes, LifetimeNotices, IntentNotices, LoginMessages, Protocol
):
    """What the manage service sends: status message edits (through :class:`MessageSync`), who
    acted in the thread, the bot's own acts, how an act ended, and the login DM."""


class ManageService:
    """Stop, start, destroy and login requests from Slack users (see the module docstring).

    Args:
        session_factory: storage's sessionmaker. accounts: the Vast.ai account of each
            deployment (:class:`bot.services.accounts.VastAccounts`).
        messages: the messages port (status message, thread notes, DMs).
        templates: the catalog, for re-rendering the status message
            (:class:`bot.services.ports.Templates`).
        admins: who may act on anyone's deployments in their workspace (``BOT_ADMINS``, and in
            OAuth mode each workspace's own admins: :class:`bot.services.admins.AdminDirectory`).
        homes: told of the row after every change (refreshes the owner's Home tab:
            :class:`bot.services.ports.HomeRefresher`).
        clock: aware UTC now.
        sync: marks and queues status-message edits (default: one on the same database and
            messages port), so an edit that does not go through is sent again later.
        retry_seconds: ``STATUS_POLL_SECONDS``: a request that was sent but not confirmed is
            sent again by the reconciler after :func:`bot.services.intents.retry_delay`.
    """

    def __init__(
        self,
        *,
        session_factory: SessionFactory,
        accounts: VastAccounts,
        messages: ManageMessages,
        templates: Templates,
        admins: AdminDirectory,
        homes: HomeRefresher = NO_HOMES,
        clock: Callable[[], datetime] = utcnow,
        sync: MessageSync | None = None,
        retry_seconds: float = 15.0,
    ) -> None:
        self.sf = session_factory
        self.sync = sync or MessageSync(
            session_factory=session_factory,
            messages=messages,
            catalog_get=templates.get,
            clock=clock,
        )
        self.accounts = accounts
        self.messages = messages
        self.templates = templates
        self.admins = admins
        self.homes = homes
        self.clock = clock
        self.retry_seconds = float(retry_seconds)

    def is_admin(self, team_id: str | None, user_id: str) -> bool:
        """True when ``user_id`` is a bot admin of workspace ``team_id``."""
        return self.admins.is_admin(team_id, user_id)

    def can_manage(self, dep: DeploymentRecord, user_id: str) -> bool:
        """True for the requester of ``dep`` and for the bot admins of its workspace: full
        control (Destroy, sharing it). See :meth:`may` for what collaborators may do."""
        return user_id == dep.user_id or self.is_admin(dep.team_id, user_id)

    def is_collaborator(self, dep: DeploymentRecord, user_id: str) -> bool:
        """True while ``dep`` is shared with ``user_id`` (:mod:`storage.collaborators`)."""
        return collaborators.is_collaborator(self.sf, dep.id, user_id)

    def may(self, dep: DeploymentRecord, user_id: str, action: str) -> bool:
        """True when ``user_id`` may ``action`` ``dep``: its requester and the bot admins of
        its workspace may do anything; a collaborator (someone it is shared with) only
        :data:`COLLABORATOR_ACTIONS` (Stop, Start, Extend, the login), never Destroy."""
        if self.can_manage(dep, user_id):
            return True
        return action in COLLABORATOR_ACTIONS and self.is_collaborator(dep, user_id)

    def _vast(self, dep: DeploymentRecord) -> VastClient:
        """The client of the Vast.ai account ``dep``'s instance lives on."""
        return self.accounts.for_deployment(dep).client

    def who_can(self, dep: DeploymentRecord, action: str, *, actor: str | None = None) -> str:
        """The refusal text: who may ``action`` this deployment. Said to a collaborator
        (``actor`` it is shared with), it also says what they may do themselves."""
        verb = _VERBS.get(action, action)
        admins = self.admins.admins(dep.team_id)
        what = deployment_ref(dep)
        shared = (
            " It is shared with you: you may *Stop*, *Start* and *Extend* it, and get its login."
            if actor is not None and actor != dep.user_id and self.is_collaborator(dep, actor)
            else ""
        )
        if admins:
            return (
                f":no_entry: Only <@{dep.user_id}>, who deployed {what}, or a bot admin "
                f"({mentions(admins)}) can {verb} it. Ask one of them.{shared}"
            )
        return (
            f":no_entry: Only <@{dep.user_id}>, who deployed {what}, can {verb} it. "
            f"(No bot admins are configured; an operator can add some with `BOT_ADMINS`.)"
            f"{shared}"
        )

    # --- actions ----------------------------------------------------------------------------

    def perform(
        self,
        action: str,
        deployment_id: int,
        actor: str,
        *,
        team_id: str | None = None,
        now: datetime | None = None,
    ) -> Outcome:
        """Run ``action`` (``stop``/``start``/``destroy``) on ``deployment_id`` for Slack user
        ``actor`` of workspace ``team_id`` (a deployment of another workspace is "not found":
        listeners always pass the payload's workspace), then redraw the status message, reply
        in its thread and refresh the owner's Home tab when something changed. Never raises for
        Vast.ai or Slack errors."""
        now = now or self.clock()
        if action == STOP:
            outcome = self.stop_deployment(deployment_id, actor, now, team_id=team_id)
        elif action == START:
            outcome = self.start_deployment(deployment_id, actor, now, team_id=team_id)
        elif action == DESTROY:
            outcome = self.destroy_deployment(deployment_id, actor, now, team_id=team_id)
        else:
            return Outcome(OutcomeKind.INVALID, f"Unknown action {action!r}.")
        if outcome.changed and outcome.deployment is not None:
            self._publish_change(outcome.deployment, action, actor, outcome)
        return outcome

    def _publish_change(
        self, dep: DeploymentRecord, action: str, actor: str, outcome: Outcome
    ) -> None:
        """After an action: redraw the status message, say who did what in its thread (the
        channel's audit trail), and tell ``homes`` (the owner's Home tab)."""
        now = self.clock()
        note = None
        if action == START and outcome.kind == OutcomeKind.DONE:
            note = f":arrow_forward: Starting again (requested by <@{actor}> {now:%H:%M} UTC)…"
        try:
            self.sync.changed(dep, note=note)
        except SQLAlchemyError:
            # The answer, the thread reply and Home still go out; the poller's next read of
            # this row (in transition) shows the change.
            logger.exception("deployment %s: status message not marked for an edit", dep.id)
        if outcome.kind == OutcomeKind.DONE:
            self.messages.action_done(dep, action, actor, pricing.cost_so_far(dep, now))
        self.homes.deployment_changed(dep)

    def act_automatically(
        self,
        action: str,
        deployment_id: int,
        *,
        why: str,
        reason_text: str,
        unchanged: dict[str, object] | None = None,
        seen_status: DeploymentStatus | None = None,
    ) -> Outcome:
        """Stop or destroy ``deployment_id`` on the bot's own account (``actor`` ``system``):
        its lifetime ended (``why="expiry"``) or its GPU stayed idle unanswered (``"idle"``).

        The same desired-state claim as a click decides it, so it happens once across
        processes; ``unchanged`` are the columns the rule read (e.g. ``ends_at``), so an
        **Extend** or **Keep running** pressed meanwhile wins. ``reason_text`` is the desired
        state's reason and an ``auto_<action>`` event. When done: the status message is
        redrawn, the thread and the owner (DM) are told what happened and why, and the Home
        tab refreshed. A Vast.ai refusal leaves the act pending (``pending``): the reconciler
        sends it again, and the rule's next ticks send nothing more. A ``stopped`` row whose
        instance runs (a Start whose app never answered; ``seen_status`` is the status the
        rule read) gets desired ``stopped`` and its stop request sent again; a row the rule
        saw running that is stopped by now was stopped by someone else: nothing is sent.
        """
        now = self.clock()
        try:
            current = get_deployment(self.sf, deployment_id)
        except SQLAlchemyError:
            logger.exception("automatic %s of %s: row not read", action, deployment_id)
            return Outcome(OutcomeKind.FAILED, unrecorded_text(action))
        if action == STOP and current is not None and current.status == DeploymentStatus.STOPPED:
            if seen_status != DeploymentStatus.STOPPED:  # stopped meanwhile (another process)
                return Outcome(
                    OutcomeKind.ALREADY, f"{_name(current)} is already stopped.", current
                )
            outcome = self.stop_deployment(
                deployment_id,
                SYSTEM_ACTOR,
                now,
                automatic=True,
                unchanged=unchanged,
                reason=reason_text,
                statuses=(DeploymentStatus.STOPPED,),
            )
        elif action == STOP:
            outcome = self.stop_deployment(
                deployment_id,
                SYSTEM_ACTOR,
                now,
                automatic=True,
                unchanged=unchanged,
                reason=reason_text,
            )
        elif action == DESTROY:
            outcome = self.destroy_deployment(
                deployment_id,
                SYSTEM_ACTOR,
                now,
                automatic=True,
                reason=reason_text,
                unchanged=unchanged,
            )
        else:
            raise ValueError(f"cannot {action!r} automatically")
        dep = outcome.deployment
        if outcome.kind != OutcomeKind.DONE or dep is None:
            if outcome.kind == OutcomeKind.PENDING and dep is not None:
                self._redraw(dep)
                self.homes.deployment_changed(dep)
            return outcome
        add_event(self.sf, dep.id, SYSTEM_ACTOR, f"auto_{action}", reason_text[:500], now=now)
        disk_per_day = pricing.disk_per_day(dep) if action == STOP else None
        self._redraw(dep)
        self.messages.auto_action(
            dep,
            AutoAction(
                action=action,
                reason=why,
                disk_per_day=disk_per_day,
                total=pricing.cost_so_far(dep, now),
            ),
        )
        self.homes.deployment_changed(dep)
        return outcome

    def _redraw(self, dep: DeploymentRecord) -> None:
        try:
            self.sync.changed(dep)
        except SQLAlchemyError:  # the poller's next read of this row shows the change
            logger.exception("deployment %s: status message not marked for an edit", dep.id)

    def send_credentials(
        self,
        deployment_id: int,
        actor: str,
        *,
        team_id: str | None = None,
        now: datetime | None = None,
    ) -> Outcome:
        """DM ``actor`` the ready DM of a ready deployment (SSH commands, port-forwards, its
        generated password; the offer to add an SSH key when ``actor`` has none on file:
        :func:`storage.count_ssh_keys`), when ``actor`` is its requester, a collaborator or a
        bot admin (:meth:`may`); recorded in the event log. Secrets only ever go by DM. Never
        raises for Slack errors."""
        dep, refused = self.load_for(deployment_id, actor, CREDENTIALS, team_id=team_id)
        if refused is not None:
            return refused
        assert dep is not None
        template = self.templates.get(dep.template_slug)
        sent = None
        if dep.status == DeploymentStatus.READY:
            has_key = storage.count_ssh_keys(self.sf, dep.team_id, actor) > 0
            # Keys go on the instance for its owner and teammates only (the key reconciler's
            # wanted set): an admin who is neither is told so rather than given a dead command.
            ours = actor == dep.user_id or self.is_collaborator(dep, actor)
            sent = self.messages.secrets(
                dep, template, user_id=actor, has_ssh_key=has_key, keys_on_instance=ours
            )
        if sent is None:
            return Outcome(
                "invalid", "There is no login to send: the deployment is not ready.", dep
            )
        if not sent:
            return Outcome("failed", "I could not DM you the login; please try again.", dep)
        add_event(self.sf, dep.id, actor, "credentials_sent", None, now=now)
        return Outcome(
            "done", f"I sent you the login of *{mrkdwn_escape(dep.template_name)}* by DM.", dep
        )

    def load_for(
        self,
        deployment_id: int,
        actor: str,
        action: str,
        *,
        automatic: bool = False,
        team_id: str | None = None,
    ) -> tuple[DeploymentRecord | None, Outcome | None]:
        """``(deployment, None)`` when ``actor`` may ``action`` it (:meth:`may`; or the bot acts
        on its own: ``automatic``), else ``(deployment or None, the refusal or not-found
        Outcome)``. A refusal is recorded as an ``<action>_refused`` event. A deployment of
        another workspace than ``team_id`` (when given) is "not found", with nothing recorded
        on its row: a forged button must learn nothing about another workspace."""
        dep = get_deployment(self.sf, deployment_id)
        if dep is not None and team_id is not None and dep.team_id != team_id:
            logger.warning(
                "%s of deployment %s refused: asked from another workspace", action, deployment_id
            )
            dep = None
        if dep is None:
            return None, Outcome("not_found", NOT_FOUND_TEXT)
        if not automatic and not self.may(dep, actor, action):
            add_event(self.sf, dep.id, actor, f"{action}_refused", "not allowed", now=self.clock())
            return dep, Outcome("refused", self.who_can(dep, action, actor=actor), dep)
        return dep, None

    def _vast_failed(
        self, dep: DeploymentRecord, actor: str, action: str, error: VastError, now: datetime
    ) -> None:
        logger.warning("%s of deployment %s failed: %s", action, dep.id, error)
        add_event(self.sf, dep.id, actor, f"{action}_failed", str(error)[:500], now=now)

    # --- the desired state: claim, send, confirm ------------------------------------------

    def _claim(
        self,
        dep: DeploymentRecord,
        action: str,
        actor: str,
        now: datetime,
        *,
        reason: str,
        statuses: Collection[DeploymentStatus],
        unchanged: dict[str, object] | None = None,
        lease: storage.StartLease | None = None,
    ) -> DeploymentRecord | Outcome:
        """Record the desired state of ``action`` (the claim); the row as claimed, or the
        Outcome that answers the click when it could not be claimed (nothing is sent then)."""
        try:
            claim = storage.claim_intent(
                self.sf,
                dep.id,
                DESIRED[action],
                actor=actor,
                reason=reason,
                statuses=statuses,
                now=now,
                unchanged=unchanged,
                lease=lease,
                drop_lease=None if action == START else start_claim_name(dep.id),
            )
        except SQLAlchemyError:
            logger.exception("%s of deployment %s: desired state not recorded", action, dep.id)
            return Outcome(OutcomeKind.FAILED, unrecorded_text(action), None)
        if claim.claimed and claim.deployment is not None:
            return claim.deployment
        row = claim.deployment
        if row is None:
            return Outcome(OutcomeKind.NOT_FOUND, NOT_FOUND_TEXT)
        if claim.refusal == "pending":
            return Outcome(OutcomeKind.ALREADY, _pending_text(row), row)
        if claim.refusal == "leased":
            lease_row = get_lease(self.sf, start_claim_name(dep.id))
            who = f" by <@{lease_row.holder.split(':', 1)[0]}>" if lease_row else ""
            return Outcome(
                OutcomeKind.ALREADY,
                f"{_name(row)} is already starting (requested{who}). The status message turns "
                "*Ready* when the app answers.",
                row,
            )
        target = {STOP: DeploymentStatus.STOPPED, DESTROY: DeploymentStatus.DESTROYED}.get(action)
        if row.status == target:
            return Outcome(OutcomeKind.ALREADY, f"{_name(row)} is already {row.status}.", row)
        return Outcome(
            OutcomeKind.INVALID,
            f"{_name(row)} changed meanwhile: it is {row.status} now, so I did not "
            f"{_VERBS[action]} it.",
            row,
        )

    def _send_act(
        self, claimed: DeploymentRecord, action: str, now: datetime
    ) -> tuple[bool, DeploymentRecord | None] | VastError | None:
        """Take the first try of the claimed intent and send its request. Returns ``(gone,
        row confirmed)`` when Vast.ai accepted (``gone``: the instance no longer exists; the
        row is None when someone else confirmed it first, or the confirmation could not be
        written: the reconciler confirms it then), the VastError when Vast.ai refused or did
        not answer, or None when another sender took the try (nothing sent here)."""
        assert claimed.desired_at is not None and claimed.instance_id is not None
        state = DESIRED[action]
        if not storage.begin_try(
            self.sf,
            claimed.id,
            desired_at=claimed.desired_at,
            tries=claimed.desired_tries,
            next_try_at=now + retry_delay(claimed.desired_tries + 1, self.retry_seconds),
            now=now,
        ):
            return None
        try:
            existed = send_act(self._vast(claimed), state, claimed.instance_id)
        except VastError as error:
            return error
        settlement = settle_fields(claimed, gone=not existed)
        if not existed and action != DESTROY:
            settlement = replace(settlement, event=(f"{action}_failed", "instance not found"))
        try:
            after = confirm(self.sf, claimed, now, settlement)
            if after is None and existed and called_off_late(claimed):
                # A rule's act called off while on the wire went through: record it, say so.
                after = confirm_withdrawn(self.sf, claimed, now, settlement)
                if after is not None:
                    self.messages.intent_settled(
                        after, late_notice(claimed, claimed.desired_tries + 1)
                    )
        except SQLAlchemyError:
            logger.exception("%s of deployment %s: accepted, not recorded", action, claimed.id)
            after = None
        return not existed, after

    def _refused_text(
        self, dep: DeploymentRecord, action: str, error: VastError, now: datetime
    ) -> str:
        later = now + retry_delay(1, self.retry_seconds)
        if outcome_unknown(error):
            return unknown_text(dep, action, later)
        if action == STOP:
            what = "It is still running and billing."
        else:
            what = "*It still exists and bills.*"
        return (
            f":x: Vast.ai did not {_VERBS[action]} {_name(dep)}: {error.user_message} {what} "
            f"Your {_VERBS[action]} is recorded: the bot keeps sending it (next try "
            f"{slack_date(later)}) and tells the owner if it keeps failing. To end the billing "
            "at once, destroy the instance in the Vast.ai console (cloud.vast.ai/instances)."
        )

    def stop_deployment(
        self,
        deployment_id: int,
        actor: str,
        now: datetime | None = None,
        *,
        automatic: bool = False,
        unchanged: dict[str, object] | None = None,
        team_id: str | None = None,
        reason: str | None = None,
        statuses: Collection[DeploymentStatus] = (DeploymentStatus.READY,),
    ) -> Outcome:
        """Stop a ``ready`` deployment: record desired ``stopped``, then ``PUT state=stopped``;
        accepted → ``ready → stopped`` (in the transaction that confirms it).

        Vast.ai stops GPU billing; the disk keeps billing (docs/VAST_API.md §5). ``automatic``: the
        bot acts on its own (``actor`` is ``system``), so no permission check; ``unchanged``:
        columns that must still hold what the rule saw (an extension meanwhile wins);
        ``reason``: the desired state's reason (default "Stop pressed in Slack by <actor>");
        ``statuses``: where a stop may be claimed (a rule stops a ``stopped`` row whose
        instance runs again). A refusal leaves it pending (``pending``: the bot keeps trying).
        A person's Stop on a ``stopped`` row whose Start is still in flight
        (:meth:`_start_in_flight`) stops it too: the Stop replaces the Start (and drops its
        lease), and the answer says so.
        """
        now = now or self.clock()
        try:
            dep, refusal = self.load_for(
                deployment_id, actor, STOP, automatic=automatic, team_id=team_id
            )
        except SQLAlchemyError:
            logger.exception("stop of deployment %s: row not read", deployment_id)
            return Outcome(OutcomeKind.FAILED, unrecorded_text(STOP))
        if refusal is not None:
            return refusal
        assert dep is not None  # load_for returns one or the other
        calls_off = False
        if dep.status == DeploymentStatus.STOPPED and dep.status not in statuses:
            if automatic or not self._start_in_flight(dep, now):
                return Outcome(OutcomeKind.ALREADY, f"{_name(dep)} is already stopped.", dep)
            # A Start still being sent or checked may start (bill) it: the Stop replaces it
            # (drops its lease) and is sent; PUT stopped is harmless on a stopped instance.
            calls_off, statuses = True, (*statuses, DeploymentStatus.STOPPED)
        if dep.is_final:
            return Outcome(OutcomeKind.INVALID, _ended_text(dep), dep)
        if dep.status not in statuses or dep.instance_id is None:
            return Outcome(
                OutcomeKind.INVALID,
                f"{_name(dep)} is {dep.status}: only a ready deployment can be stopped. Destroy "
                "it instead if you no longer need it.",
                dep,
            )
        claimed = self._claim(
            dep,
            STOP,
            actor,
            now,
            reason=reason or f"Stop pressed in Slack by <@{actor}>.",
            statuses=statuses,
            unchanged=unchanged,
        )
        if isinstance(claimed, Outcome):
            return claimed
        sent = self._send_act(claimed, STOP, now)
        if sent is None:
            return Outcome(OutcomeKind.ALREADY, _pending_text(claimed), claimed)
        if isinstance(sent, VastError):
            self._vast_failed(claimed, actor, STOP, sent, now)
            text = self._refused_text(claimed, STOP, sent, now)
            if calls_off:
                text += f" {_CALLED_OFF}"
            return Outcome(
                OutcomeKind.PENDING, text, get_deployment(self.sf, claimed.id) or claimed
            )
        gone, after = sent
        if gone:
            return Outcome(OutcomeKind.FAILED, f":x: {GONE_REASON}", after or claimed)
        called_off = f" {_CALLED_OFF}" if calls_off else ""
        if after is None:  # confirmed by the reconciler meanwhile (it told the thread)
            return Outcome(
                OutcomeKind.ALREADY,
                f":double_vertical_bar: Stopped {_name(claimed)}: Vast.ai accepted the stop."
                f"{called_off}",
                get_deployment(self.sf, claimed.id) or claimed,
            )
        storage_rate = money(pricing.current_rate(after))
        return Outcome(
            OutcomeKind.DONE,
            f":double_vertical_bar: Stopped {_name(after)}.{called_off} The GPU is released and "
            f"no longer bills; the disk still bills (~{storage_rate}/h). *Start* gets the same "
            "GPU back if nobody rented it meanwhile; *Destroy* ends all billing.",
            after,
        )

    def _start_in_flight(self, dep: DeploymentRecord, now: datetime) -> bool:
        """Whether a Start of the ``stopped`` row ``dep`` may still start its instance: the
        desired state ``running`` is pending (being sent or checked), or its Start lease
        (:func:`start_claim_name`) is live (accepted, the app not answering yet). Unreadable
        lease: True (a Stop sent in vain is harmless; a Start left running bills)."""
        if dep.desired_state != storage.RUNNING:
            return False
        if dep.desired_next_try_at is not None:
            return True
        try:
            held = get_lease(self.sf, start_claim_name(dep.id))
        except SQLAlchemyError:
            logger.exception("stop of deployment %s: start lease not read", dep.id)
            return True
        return held is not None and held.expires_at > now

    def start_deployment(
        self,
        deployment_id: int,
        actor: str,
        now: datetime | None = None,
        *,
        team_id: str | None = None,
    ) -> Outcome:
        """Start a ``stopped`` deployment again: record desired ``running`` with the Start lease
        (:func:`start_claim_name`, :data:`START_CLAIM_SECONDS`) in one transaction, then ``PUT
        state=running``; accepted → a new run of its lifetime begins. The row stays
        ``stopped`` until the poller sees the app answer, then it becomes ``ready``.

        When Vast.ai refuses, the desired state is withdrawn and the lease given back (the
        user may press again) and the user is told plainly — most often the GPU was rented by
        someone else while the instance was stopped. When its answer was lost
        (:func:`bot.services.intents.outcome_unknown`: it may have started and bill), the
        Start stays pending with its lease (``pending``): the reconciler reads the instance on
        its next pass and confirms it or sends it again, and the user is told so.
        """
        now = now or self.clock()
        try:
            dep, refusal = self.load_for(deployment_id, actor, START, team_id=team_id)
        except SQLAlchemyError:
            logger.exception("start of deployment %s: row not read", deployment_id)
            return Outcome(OutcomeKind.FAILED, unrecorded_text(START))
        if refusal is not None:
            return refusal
        assert dep is not None  # load_for returns one or the other
        if dep.status in ACTIVE_STATUSES:
            return Outcome(OutcomeKind.ALREADY, f"{_name(dep)} is already {dep.status}.", dep)
        if dep.is_final or dep.instance_id is None:
            return Outcome(OutcomeKind.INVALID, _ended_text(dep), dep)
        name = start_claim_name(dep.id)
        lease = storage.StartLease(
            name, f"{actor}:{uuid.uuid4().hex}", now + timedelta(seconds=START_CLAIM_SECONDS)
        )
        claimed = self._claim(
            dep,
            START,
            actor,
            now,
            reason=f"Start pressed in Slack by <@{actor}>.",
            statuses=(DeploymentStatus.STOPPED,),
            lease=lease,
        )
        if isinstance(claimed, Outcome):
            return claimed
        sent = self._send_act(claimed, START, now)
        if sent is None:
            return Outcome(OutcomeKind.ALREADY, _pending_text(claimed), claimed)
        if isinstance(sent, VastError):
            self._vast_failed(claimed, actor, START, sent, now)
            if outcome_unknown(sent):  # it may run: read it, never call it "still stopped"
                return Outcome(
                    OutcomeKind.PENDING,
                    self._refused_text(claimed, START, sent, now),
                    get_deployment(self.sf, claimed.id) or claimed,
                )
            assert claimed.desired_at is not None
            storage.withdraw_intent(
                self.sf,
                claimed.id,
                desired_at=claimed.desired_at,
                actor=actor,
                detail=f"Vast.ai refused: {sent}",
                now=now,
                drop_lease=name,
            )
            return Outcome(
                OutcomeKind.FAILED,
                start_failure_text(claimed, sent),
                get_deployment(self.sf, claimed.id) or claimed,
            )
        gone, after = sent
        if gone:
            return Outcome(OutcomeKind.FAILED, f":x: {GONE_REASON}", after or claimed)
        if after is None:
            return Outcome(
                OutcomeKind.ALREADY,
                f":arrow_forward: Starting {_name(claimed)}: Vast.ai accepted the start.",
                get_deployment(self.sf, claimed.id) or claimed,
            )
        return Outcome(
            OutcomeKind.DONE,
            f":arrow_forward: Starting {_name(after)} again on the same GPU. "
            "The status message turns *Ready* when the app answers. If the GPU was rented by "
            "someone else while it was stopped, Vast.ai keeps it waiting with no time limit: if it "
            "is not back within a few minutes, destroy it and deploy again on another GPU.",
            after,
        )

    def destroy_deployment(
        self,
        deployment_id: int,
        actor: str,
        now: datetime | None = None,
        *,
        automatic: bool = False,
        reason: str | None = None,
        unchanged: dict[str, object] | None = None,
        team_id: str | None = None,
    ) -> Outcome:
        """Destroy the instance of a ``provisioning``/``ready``/``stopped`` deployment: record
        desired ``destroyed``, then ``DELETE``; accepted (or 404: already gone) → ``destroyed``.
        ``automatic``: the bot acts on its own (no permission check); ``reason``: the row's
        reason once destroyed (default "Destroyed from Slack by <actor>"). A refusal leaves it
        pending (``pending``: the bot keeps trying; the row keeps its status meanwhile)."""
        now = now or self.clock()
        try:
            dep, refusal = self.load_for(
                deployment_id, actor, DESTROY, automatic=automatic, team_id=team_id
            )
        except SQLAlchemyError:
            logger.exception("destroy of deployment %s: row not read", deployment_id)
            return Outcome(OutcomeKind.FAILED, unrecorded_text(DESTROY))
        if refusal is not None:
            return refusal
        assert dep is not None  # load_for returns one or the other
        if dep.status == DeploymentStatus.DESTROYED:
            return Outcome(OutcomeKind.ALREADY, f"{_name(dep)} is already destroyed.", dep)
        if dep.is_final:
            return Outcome(OutcomeKind.INVALID, _ended_text(dep), dep)
        if dep.status not in DESTROYABLE or dep.instance_id is None:
            return Outcome(
                OutcomeKind.INVALID,
                f"{_name(dep)} is still being created on Vast.ai; try again in a moment.",
                dep,
            )
        claimed = self._claim(
            dep,
            DESTROY,
            actor,
            now,
            reason=reason or f"Destroyed from Slack by <@{actor}>.",
            statuses=DESTROYABLE,
            unchanged=unchanged,
        )
        if isinstance(claimed, Outcome):
            return claimed
        sent = self._send_act(claimed, DESTROY, now)
        if sent is None:
            return Outcome(OutcomeKind.ALREADY, _pending_text(claimed), claimed)
        if isinstance(sent, VastError):
            self._vast_failed(claimed, actor, DESTROY, sent, now)
            return Outcome(
                OutcomeKind.PENDING,
                self._refused_text(claimed, DESTROY, sent, now),
                get_deployment(self.sf, claimed.id) or claimed,
            )
        _gone, after = sent
        if after is None:
            return Outcome(
                OutcomeKind.ALREADY,
                f":wastebasket: Destroyed {_name(claimed)}: Vast.ai accepted it.",
                get_deployment(self.sf, claimed.id) or claimed,
            )
        total = money(pricing.cost_so_far(after, now))
        return Outcome(
            OutcomeKind.DONE,
            f":wastebasket: Destroyed {_name(after)}: the instance and its disk are gone and "
            f"billing has stopped. Total cost: {total}.",
            after,
        )


def _pending_text(dep: DeploymentRecord) -> str:
    """The answer to a click on an act that is already recorded and being sent."""
    doing = {
        storage.STOPPED: "being stopped",
        storage.DESTROYED: "being destroyed",
        storage.RUNNING: "starting",
    }.get(dep.desired_state or "", "changing")
    who = dep.desired_actor or SYSTEM_ACTOR
    by = "by the bot" if who == SYSTEM_ACTOR else f"by <@{who}>"
    return (
        f"{_name(dep)} is already {doing} (requested {by}): the bot sends it to Vast.ai and "
        "keeps trying until Vast.ai confirms it. Nothing more was sent."
    )
