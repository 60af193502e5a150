"""Stop, start and destroy deployments, and send their login, with permissions.

Every action is decided once in the database before Vast.ai is called, so a double click (or
two processes) sends one request:

* **Stop**: ``ready → stopped`` by a conditional :func:`storage.update_status` (the claim),
  then ``PUT {"state": "stopped"}``. If Vast.ai refuses, the row goes back to ``ready``.
* **Destroy**: ``provisioning|ready|stopped → destroyed`` by a conditional update, then
  ``DELETE``. If Vast.ai refuses, the row goes back to its previous status and the user is
  told the instance still bills. (A crash between the claim and the call leaves a live
  instance under a ``destroyed`` row: the poller's orphan sweep has to catch it.)
* **Start**: the row stays ``stopped`` — the status poller follows ``stopped`` deployments and
  moves them to ``ready`` once Vast.ai runs the instance and the app answers
  (:mod:`bot.services.states`), and would fail a ``provisioning`` row that is older than
  ``DEPLOY_TIMEOUT_MINUTES``. The claim is a lease ``deployment-start:<id>`` held for
  :data:`START_CLAIM_SECONDS`, given back when Vast.ai refuses (so the user can retry), when
  the poller sees the start complete (ready) and when the deployment is stopped or destroyed.

Vast.ai facts (vast-api.md §5, from vast-ai/docs ``manage_instance.yaml``, ``hello-world.mdx``,
``troubleshooting.mdx``): stop keeps billing storage; start needs the *same* GPU and waits in
"scheduling" with no time limit when someone else rented it; destroy is irreversible and a 404
means already gone.

Only the requester or a ``BOT_ADMINS`` member may act (:meth:`ManageService.can_manage`). Every
outcome is recorded in the event log with the Slack user id as actor. Network calls never run
inside a database transaction (each storage call is its own short transaction).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.exc import SQLAlchemyError

from bot import pricing
from bot.formats import mentions, money
from bot.services.accounts import VastAccounts
from bot.services.admins import AdminDirectory
from bot.services.message_sync import MessageSync
from bot.services.ports import AutoAction, Messages
from bot.vast.client import VastClient
from bot.vast.errors import (
    AuthError,
    InsufficientCredit,
    NotFound,
    RateLimited,
    Unreachable,
    VastError,
)
from catalog import Template
from storage import (
    ACTIVE_STATUSES,
    SYSTEM_ACTOR,
    DeploymentRecord,
    DeploymentStatus,
    SessionFactory,
    acquire_lease,
    add_event,
    drop_lease,
    get_deployment,
    get_lease,
    release_lease,
    restart_lifetime,
    update_status,
    utcnow,
)

logger = logging.getLogger(__name__)

STOP, START, DESTROY = "stop", "start", "destroy"
DESTROYABLE = frozenset(
    {DeploymentStatus.PROVISIONING, DeploymentStatus.READY, DeploymentStatus.STOPPED}
)
START_CLAIM_SECONDS = 300.0
"""How long a Start click blocks further Start clicks (and their Vast.ai requests)."""

CREDENTIALS = "credentials"
_VERBS = {
    STOP: "stop",
    START: "start",
    DESTROY: "destroy",
    CREDENTIALS: "get the login of",
    "keep_running": "keep running",
}


@dataclass(frozen=True)
class Outcome:
    """Result of a stop/start/destroy request.

    ``kind``: ``done`` (Vast.ai accepted), ``already`` (nothing to do: someone did it already,
    no request sent), ``refused`` (not allowed), ``invalid`` (not possible in this state),
    ``failed`` (Vast.ai refused; the row was put back), ``not_found`` (no such deployment).
    ``message`` is mrkdwn for the person who clicked. ``deployment`` is the row afterwards.
    """

    kind: str
    message: str
    deployment: DeploymentRecord | None = None

    @property
    def changed(self) -> bool:
        """True when the deployment changed (status message and Home need a redraw)."""
        return self.kind == "done" or (self.kind == "failed" and self.deployment is not None)


def _name(dep: DeploymentRecord) -> str:
    return f"*{dep.template_name}* (#{dep.id})"


def _ended_text(dep: DeploymentRecord) -> str:
    return f"*{dep.template_name}* (#{dep.id}) has already ended ({dep.status})."


START_CLAIM_PREFIX = "deployment-start:"


def start_claim_name(deployment_id: int) -> str:
    """Lease name that makes one Start click at a time win: ``deployment-start:<id>``."""
    return f"{START_CLAIM_PREFIX}{deployment_id}"


def start_failure_text(dep: DeploymentRecord, error: VastError) -> str:
    """What to tell the user when Vast.ai refuses to start ``dep``.

    Credit, key, rate-limit and network errors have their own advice; any other refusal is
    most likely the GPU being rented by someone else (vast-api.md §5, troubleshooting.mdx).
    """
    what = f"*{dep.template_name}* (#{dep.id})"
    if isinstance(error, InsufficientCredit | AuthError | RateLimited | Unreachable):
        return f":x: Vast.ai did not start {what}: {error.user_message} It is still stopped."
    detail = error.message.split(": ", 1)[-1] if error.message else ""
    return (
        f":x: Vast.ai could not start {what}: the GPU it ran on is most likely rented by "
        "someone else now, and a stopped instance can only restart on its own GPU. Its disk "
        "is kept (and still bills): try *Start* again later, or *Destroy* it and deploy again "
        f"to get another GPU.\n> Vast.ai said: {detail[:300] or 'no details'}"
    )


class ManageService:
    """Stop, start, destroy and login requests from Slack users (see the module docstring).

    Args:
        session_factory: storage's sessionmaker. accounts: the Vast.ai account of each
            deployment (:class:`bot.services.accounts.VastAccounts`).
        messages: the messages port (status message, thread notes, DMs).
        catalog_get: ``slug -> Template | None`` (for re-rendering the status message).
        admins: who may act on anyone's deployments in their workspace (``BOT_ADMINS``, and in
            OAuth mode each workspace's own admins: :class:`bot.services.admins.AdminDirectory`).
        on_change: called with the row after every change (refreshes the owner's Home tab).
        clock: aware UTC now.
        sync: marks and queues status-message edits (default: one on the same database and
            messages port), so an edit that does not go through is sent again later.
    """

    def __init__(
        self,
        *,
        session_factory: SessionFactory,
        accounts: VastAccounts,
        messages: Messages,
        catalog_get: Callable[[str], Template | None],
        admins: AdminDirectory,
        on_change: Callable[[DeploymentRecord], object] = lambda dep: None,
        clock: Callable[[], datetime] = utcnow,
        sync: MessageSync | None = None,
    ) -> None:
        self.sf = session_factory
        self.sync = sync or MessageSync(
            session_factory=session_factory,
            messages=messages,
            catalog_get=catalog_get,
            clock=clock,
        )
        self.accounts = accounts
        self.messages = messages
        self.catalog_get = catalog_get
        self.admins = admins
        self.on_change = on_change
        self.clock = clock

    def is_admin(self, team_id: str | None, user_id: str) -> bool:
        """True when ``user_id`` is a bot admin of workspace ``team_id``."""
        return self.admins.is_admin(team_id, user_id)

    def can_manage(self, dep: DeploymentRecord, user_id: str) -> bool:
        """True for the requester of ``dep`` and for the bot admins of its workspace."""
        return user_id == dep.user_id or self.is_admin(dep.team_id, user_id)

    def _vast(self, dep: DeploymentRecord) -> VastClient:
        """The client of the Vast.ai account ``dep``'s instance lives on."""
        return self.accounts.for_deployment(dep).client

    def who_can(self, dep: DeploymentRecord, action: str) -> str:
        """The refusal text: who may ``action`` this deployment."""
        verb = _VERBS.get(action, action)
        admins = self.admins.admins(dep.team_id)
        what = f"*{dep.template_name}* (#{dep.id})"
        if admins:
            return (
                f":no_entry: Only <@{dep.user_id}>, who deployed {what}, or a bot admin "
                f"({mentions(admins)}) can {verb} it. Ask one of them."
            )
        return (
            f":no_entry: Only <@{dep.user_id}>, who deployed {what}, can {verb} it. "
            "(No bot admins are configured; an operator can add some with `BOT_ADMINS`.)"
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
            return Outcome("invalid", f"Unknown action {action!r}.")
        if outcome.changed and outcome.deployment is not None:
            self._publish_change(outcome.deployment, action, actor, outcome)
        return outcome

    def _publish_change(
        self, dep: DeploymentRecord, action: str, actor: str, outcome: Outcome
    ) -> None:
        """After an action: redraw the status message, say who did what in its thread (the
        channel's audit trail), and tell ``on_change`` (the owner's Home tab)."""
        now = self.clock()
        note = None
        if action == START and outcome.kind == "done":
            note = f":arrow_forward: Starting again (requested by <@{actor}> {now:%H:%M} UTC)…"
        try:
            self.sync.changed(dep, note=note)
        except SQLAlchemyError:
            # The answer, the thread reply and Home still go out; the poller's next read of
            # this row (in transition) shows the change.
            logger.exception("deployment %s: status message not marked for an edit", dep.id)
        if outcome.kind == "done":
            self.messages.action_done(dep, action, actor, pricing.cost_so_far(dep, now))
        self.on_change(dep)

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

        The same database claim as a click decides it, so it happens once across processes;
        ``unchanged`` are the columns the rule read (e.g. ``ends_at``), so an **Extend** or
        **Keep running** pressed meanwhile wins. An ``auto_<action>`` event records
        ``reason_text``. When done: the status message is redrawn, the thread and the owner
        (DM) are told what happened and why, and the Home tab refreshed. A Vast.ai refusal
        puts the row back (the next tick tries again). A ``stopped`` row whose instance runs
        (a Start whose app never answered; ``seen_status`` is the status the rule read) gets
        its stop request sent again; a row the rule saw running that is stopped by now was
        stopped by someone else (another process): nothing is sent.
        """
        now = self.clock()
        current = get_deployment(self.sf, deployment_id)
        if action == STOP and current is not None and current.status == DeploymentStatus.STOPPED:
            if seen_status != DeploymentStatus.STOPPED:  # stopped meanwhile (another process)
                return Outcome("already", f"{_name(current)} is already stopped.", current)
            outcome = self._stop_again(current, now)
        elif action == STOP:
            outcome = self.stop_deployment(
                deployment_id, SYSTEM_ACTOR, now, automatic=True, unchanged=unchanged
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
        if outcome.kind != "done" or dep is None:
            return outcome
        add_event(self.sf, dep.id, SYSTEM_ACTOR, f"auto_{action}", reason_text[:500], now=now)
        disk_per_day = pricing.disk_per_day(dep) if action == STOP else None
        self.sync.changed(dep)
        self.messages.auto_action(
            dep,
            AutoAction(
                action=action,
                reason=why,
                disk_per_day=disk_per_day,
                total=pricing.cost_so_far(dep, now),
            ),
        )
        self.on_change(dep)
        return outcome

    def _stop_again(self, dep: DeploymentRecord, now: datetime) -> Outcome:
        """``PUT state=stopped`` for a row that already says stopped while its instance runs."""
        assert dep.instance_id is not None
        try:
            self._vast(dep).stop_instance(dep.instance_id)
        except NotFound:
            return self._instance_gone(dep, SYSTEM_ACTOR, STOP, now)
        except VastError as error:
            self._vast_failed(dep, SYSTEM_ACTOR, STOP, error)
            return Outcome("failed", f"Vast.ai did not stop it: {error.user_message}", dep)
        add_event(
            self.sf, dep.id, SYSTEM_ACTOR, STOP, f"instance {dep.instance_id} (again)", now=now
        )
        return Outcome("done", f"Stopped *{dep.template_name}* (#{dep.id}) again.", dep)

    def send_credentials(
        self,
        deployment_id: int,
        actor: str,
        *,
        team_id: str | None = None,
        now: datetime | None = None,
    ) -> Outcome:
        """DM ``actor`` the login of a ready deployment (its generated password, URLs, SSH), when
        ``actor`` is its requester or a ``BOT_ADMINS`` member; recorded in the event log. Secrets
        only ever go by DM. Never raises for Slack errors."""
        dep, refused = self.load_for(deployment_id, actor, CREDENTIALS, team_id=team_id)
        if refused is not None:
            return refused
        assert dep is not None
        template = self.catalog_get(dep.template_slug)
        sent = (
            self.messages.secrets(dep, template, user_id=actor)
            if dep.status == DeploymentStatus.READY
            else None
        )
        if sent is None:
            return Outcome(
                "invalid", "There is no login to send: the deployment is not ready.", dep
            )
        if not sent:
            return Outcome("failed", "I could not DM you the login; please try again.", dep)
        add_event(self.sf, dep.id, actor, "credentials_sent", None, now=now)
        return Outcome("done", f"I sent you the login of *{dep.template_name}* by DM.", dep)

    def load_for(
        self,
        deployment_id: int,
        actor: str,
        action: str,
        *,
        automatic: bool = False,
        team_id: str | None = None,
    ) -> tuple[DeploymentRecord | None, Outcome | None]:
        """``(deployment, None)`` when ``actor`` may ``action`` it (or the bot acts on its own:
        ``automatic``), else ``(deployment or None, the refusal or not-found Outcome)``. A
        refusal is recorded as an ``<action>_refused`` event. A deployment of another workspace
        than ``team_id`` (when given) is "not found", with nothing recorded on its row: a forged
        button must learn nothing about another workspace."""
        dep = get_deployment(self.sf, deployment_id)
        if dep is not None and team_id is not None and dep.team_id != team_id:
            logger.warning(
                "%s of deployment %s refused: asked from another workspace", action, deployment_id
            )
            dep = None
        if dep is None:
            return None, Outcome("not_found", "That deployment no longer exists in the bot.")
        if not automatic and not self.can_manage(dep, actor):
            add_event(self.sf, dep.id, actor, f"{action}_refused", "not allowed", now=self.clock())
            return dep, Outcome("refused", self.who_can(dep, action), dep)
        return dep, None

    def _vast_failed(
        self, dep: DeploymentRecord, actor: str, action: str, error: VastError
    ) -> None:
        logger.warning("%s of deployment %s failed: %s", action, dep.id, error)
        add_event(self.sf, dep.id, actor, f"{action}_failed", str(error)[:500], now=self.clock())

    def _instance_gone(
        self, dep: DeploymentRecord, actor: str, action: str, now: datetime | None
    ) -> Outcome:
        reason = (
            "The Vast.ai instance no longer exists (destroyed outside the bot, or the host removed "
            "it), so nothing bills any more. Deploy again if you still need it."
        )
        sf = self.sf
        add_event(
            sf, dep.id, actor, f"{action}_failed", "instance not found", now=now or self.clock()
        )
        current = get_deployment(sf, dep.id)
        if current is not None and not current.is_final:  # as the poller does: gone = destroyed
            update_status(
                sf,
                dep.id,
                expected_status=current.status,
                new_status=DeploymentStatus.DESTROYED,
                now=now,
                reason=reason,
            )
        return Outcome("failed", f":x: {reason}", get_deployment(sf, dep.id))

    def stop_deployment(
        self,
        deployment_id: int,
        actor: str,
        now: datetime | None = None,
        *,
        automatic: bool = False,
        unchanged: dict[str, object] | None = None,
        team_id: str | None = None,
    ) -> Outcome:
        """Stop a ``ready`` deployment (claim ``ready → stopped``, then ``PUT state=stopped``).

        Vast.ai stops GPU billing; the disk keeps billing (vast-api.md §5). ``automatic``: the
        bot acts on its own (``actor`` is ``system``), so no permission check; ``unchanged``:
        columns that must still hold what the rule saw (an extension meanwhile wins).
        """
        sf = self.sf
        dep, refusal = self.load_for(
            deployment_id, actor, STOP, automatic=automatic, team_id=team_id
        )
        if refusal is not None:
            return refusal
        assert dep is not None  # _load returns one or the other
        if dep.status == DeploymentStatus.STOPPED:
            return Outcome("already", f"*{dep.template_name}* (#{dep.id}) is already stopped.", dep)
        if dep.is_final:
            return Outcome("invalid", _ended_text(dep), dep)
        if dep.status != DeploymentStatus.READY or dep.instance_id is None:
            return Outcome(
                "invalid",
                f"*{dep.template_name}* (#{dep.id}) is {dep.status}: only a ready deployment can "
                "be stopped. Destroy it instead if you no longer need it.",
                dep,
            )
        claimed = update_status(
            sf,
            dep.id,
            expected_status=DeploymentStatus.READY,
            new_status=DeploymentStatus.STOPPED,
            actor=actor,
            now=now,
            unchanged=unchanged,
        )
        if not claimed:
            return self._lost_claim(dep.id, DeploymentStatus.STOPPED, STOP)
        drop_lease(sf, start_claim_name(dep.id))  # a Start before this one is over
        try:
            self._vast(dep).stop_instance(dep.instance_id)
        except NotFound:
            return self._instance_gone(dep, actor, STOP, now)
        except VastError as error:
            self._vast_failed(dep, actor, STOP, error)
            update_status(
                sf,
                dep.id,
                expected_status=DeploymentStatus.STOPPED,
                new_status=DeploymentStatus.READY,
                now=now,
            )
            return Outcome(
                "failed",
                f":x: Vast.ai did not stop *{dep.template_name}* (#{dep.id}): {error.user_message} "
                "It is still running and billing.",
                get_deployment(sf, dep.id),
            )
        add_event(sf, dep.id, actor, STOP, f"instance {dep.instance_id}", now=now or self.clock())
        after = get_deployment(sf, dep.id) or dep
        storage_rate = money(pricing.current_rate(after))
        return Outcome(
            "done",
            f":double_vertical_bar: Stopped *{dep.template_name}* (#{dep.id}). The GPU is released "
            f"and no longer bills; the disk still bills (~{storage_rate}/h). *Start* gets the same "
            "GPU back if nobody rented it meanwhile; *Destroy* ends all billing.",
            after,
        )

    def _lost_claim(self, deployment_id: int, target: str, action: str) -> Outcome:
        """Another click or process moved the row first: say what it is now."""
        dep = get_deployment(self.sf, deployment_id)
        if dep is None:
            return Outcome("not_found", "That deployment no longer exists in the bot.")
        if dep.status == target:
            return Outcome(
                "already", f"*{dep.template_name}* (#{dep.id}) is already {dep.status}.", dep
            )
        return Outcome(
            "invalid",
            f"*{dep.template_name}* (#{dep.id}) changed meanwhile: it is {dep.status} now, so I "
            f"did not {_VERBS[action]} it.",
            dep,
        )

    def start_deployment(
        self,
        deployment_id: int,
        actor: str,
        now: datetime | None = None,
        *,
        team_id: str | None = None,
    ) -> Outcome:
        """Start a ``stopped`` deployment again (``PUT state=running``); the row stays ``stopped``
        until the poller sees the app answer, then it becomes ``ready``.

        Claimed with the lease :func:`start_claim_name` for :data:`START_CLAIM_SECONDS`. When
        Vast.ai refuses, the lease is released and the user is told plainly — most often the GPU
        was rented by someone else while the instance was stopped.
        """
        sf = self.sf
        dep, refusal = self.load_for(deployment_id, actor, START, team_id=team_id)
        if refusal is not None:
            return refusal
        assert dep is not None  # _load returns one or the other
        if dep.status in ACTIVE_STATUSES:
            return Outcome(
                "already", f"*{dep.template_name}* (#{dep.id}) is already {dep.status}.", dep
            )
        if dep.is_final or dep.instance_id is None:
            return Outcome("invalid", _ended_text(dep), dep)
        name = start_claim_name(dep.id)
        holder = f"{actor}:{uuid.uuid4().hex}"
        if not acquire_lease(sf, name, holder, START_CLAIM_SECONDS, now=now):
            lease = get_lease(sf, name)
            who = f" by <@{lease.holder.split(':', 1)[0]}>" if lease else ""
            return Outcome(
                "already",
                f"*{dep.template_name}* (#{dep.id}) is already starting (requested{who}). "
                "The status message turns *Ready* when the app answers.",
                dep,
            )
        try:
            self._vast(dep).start_instance(dep.instance_id)
        except NotFound:
            release_lease(sf, name, holder)
            return self._instance_gone(dep, actor, START, now)
        except VastError as error:
            release_lease(sf, name, holder)
            self._vast_failed(dep, actor, START, error)
            return Outcome("failed", start_failure_text(dep, error), get_deployment(sf, dep.id))
        add_event(sf, dep.id, actor, START, f"instance {dep.instance_id}", now=now or self.clock())
        restart_lifetime(sf, dep.id, now or self.clock())  # the new run bills from now
        return Outcome(
            "done",
            f":arrow_forward: Starting *{dep.template_name}* (#{dep.id}) again on the same GPU. "
            "The status message turns *Ready* when the app answers. If the GPU was rented by "
            "someone else while it was stopped, Vast.ai keeps it waiting with no time limit: if it "
            "is not back within a few minutes, destroy it and deploy again on another GPU.",
            get_deployment(sf, dep.id),
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
        """Destroy the instance of a ``provisioning``/``ready``/``stopped`` deployment (claim
        ``→ destroyed``, then ``DELETE``; a 404 means already gone and counts as done).
        ``automatic``: the bot acts on its own (no permission check); ``reason``: the row's
        reason (default "Destroyed from Slack by <actor>")."""
        sf = self.sf
        dep, refusal = self.load_for(
            deployment_id, actor, DESTROY, automatic=automatic, team_id=team_id
        )
        if refusal is not None:
            return refusal
        assert dep is not None  # _load returns one or the other
        for _ in range(
            3
        ):  # the poller may move it (e.g. provisioning → ready) between read and claim
            if dep.status == DeploymentStatus.DESTROYED:
                return Outcome(
                    "already", f"*{dep.template_name}* (#{dep.id}) is already destroyed.", dep
                )
            if dep.is_final:
                return Outcome("invalid", _ended_text(dep), dep)
            if dep.status not in DESTROYABLE or dep.instance_id is None:
                return Outcome(
                    "invalid",
                    f"*{dep.template_name}* (#{dep.id}) is still being created on Vast.ai; try "
                    "again in a moment.",
                    dep,
                )
            previous = dep
            claimed = update_status(
                sf,
                dep.id,
                expected_status=dep.status,
                new_status=DeploymentStatus.DESTROYED,
                actor=actor,
                now=now,
                unchanged=unchanged,
                reason=reason or f"Destroyed from Slack by <@{actor}>.",
            )
            if claimed:
                drop_lease(sf, start_claim_name(dep.id))  # no Start can follow a destroy
                break
            dep = get_deployment(sf, deployment_id)
            if dep is None:
                return Outcome("not_found", "That deployment no longer exists in the bot.")
        else:
            return Outcome("invalid", "The deployment keeps changing; try again in a moment.", dep)
        instance_id = previous.instance_id
        assert instance_id is not None
        try:
            existed = self._vast(previous).destroy_instance(instance_id)
        except VastError as error:
            self._vast_failed(previous, actor, DESTROY, error)
            update_status(
                sf,
                previous.id,
                expected_status=DeploymentStatus.DESTROYED,
                new_status=previous.status,
                now=now,
                reason=previous.reason,
            )
            return Outcome(
                "failed",
                f":x: Vast.ai did not destroy *{previous.template_name}* (#{previous.id}): "
                f"{error.user_message} *It still exists and bills*: press *Destroy* again, or "
                "destroy it in the Vast.ai console.",
                get_deployment(sf, previous.id),
            )
        add_event(
            sf,
            previous.id,
            actor,
            DESTROY,
            f"instance {instance_id}" + ("" if existed else " (already gone on Vast.ai)"),
            now=now or self.clock(),
        )
        after = get_deployment(sf, previous.id) or previous
        total = money(pricing.cost_so_far(after, now or self.clock()))
        return Outcome(
            "done",
            f":wastebasket: Destroyed *{previous.template_name}* (#{previous.id}): the instance "
            f"and its disk are gone and billing has stopped. Total cost: {total}.",
            after,
        )
