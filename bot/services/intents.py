"""Desired states carried out: the reconciler stage that makes Vast.ai match what was recorded.

Every Stop, Start and Destroy (a click, or a lifetime or idle rule) first records the desired
state of the instance in the database (:func:`storage.claim_intent`, in the transaction that
claims the act), then sends the request (:mod:`bot.services.manage`). What a crash, a lost
answer or a refusal leaves undone stays recorded and pending (``desired_next_try_at`` set).
Once per poller tick, on the lease holder, :meth:`IntentReconciler.run` takes the pending
intents that are due (a bounded batch), reads their instances by id from their account's
client, and compares with Vast.ai's data (docs/VAST_API.md §4: ``intended_status`` is what the user
asked for; a destroyed instance is gone from the list, and ``GET /instances/{id}/`` answers
``{"instances": null}``):

* reached (``stopped``: ``intended_status`` is ``stopped``; ``running``: it is ``running``;
  ``destroyed``: the instance is gone) → confirmed (:func:`storage.complete_intent`: done, and
  the status change in the same transaction), the thread told;
* not reached → the request is sent again: a try is taken first (:func:`storage.begin_try`:
  ``desired_tries + 1``, next try after :func:`retry_delay`), so two senders never send one try
  twice and a sender that dies is replaced when the try falls due; each try is a
  ``<act>_retry`` event with its outcome;
* a Start Vast.ai refuses is withdrawn (``start_withdrawn``): starting a GPU later, unseen,
  would bill by surprise. A Start whose answer was lost (:func:`outcome_unknown`: Vast.ai may
  have carried it out) is not a refusal: it stays pending, and the next pass reads the
  instance and confirms it, or sends it again. A Stop or Destroy is never given up: after
  :data:`TELL_AFTER_TRIES` tries the owner is told once (DM and thread: the GPU may still
  bill, the Vast.ai console link) and the bot keeps trying at the capped interval.

A kill -9 anywhere leaves a pending intent that is due at once (claimed, not yet sent) or one
retry interval after its last try was taken: the next one or two passes carry it out.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy.exc import SQLAlchemyError

import storage
from bot import logs
from bot.notices import IntentNotice
from bot.services.accounts import VastAccounts
from bot.services.message_sync import MessageSync
from bot.services.ports import NO_HOMES, HomeRefresher, IntentNotices, StatusMessages, Templates
from bot.vast.client import LIST_PAGE_SIZE, VastClient
from bot.vast.errors import (
    AuthError,
    InsufficientCredit,
    NotFound,
    OfferUnavailable,
    RateLimited,
    UnexpectedResponse,
    Unreachable,
    VastError,
)
from bot.vast.models import INSTANCE_COLUMNS, Instance
from storage import DeploymentRecord, DeploymentStatus, SessionFactory

__all__ = [
    "CONSOLE_URL",
    "GONE_REASON",
    "RETRY_CAP",
    "START_CLAIM_PREFIX",
    "TELL_AFTER_TRIES",
    "IntentReconciler",
    "ReconcileReport",
    "pending_state",
    "reached",
    "retry_delay",
    "outcome_unknown",
    "send_act",
    "Settlement",
    "confirm",
    "settle_fields",
    "start_claim_name",
]

logger = logging.getLogger(__name__)

#: The event of an automatic act the reconciler confirmed (a rule's stop or destroy).
_AUTO_EVENTS = {"stop": storage.EventKind.AUTO_STOP, "destroy": storage.EventKind.AUTO_DESTROY}

#: The longest wait between two tries of one act.
RETRY_CAP = timedelta(minutes=30)
#: After this many tries that did not go through, the owner is told (once per intent).
TELL_AFTER_TRIES = 5
#: Intents one pass handles at most (the longest due first).
DEFAULT_BATCH = 50
#: Where the owner can stop or destroy an instance by hand.
CONSOLE_URL = "https://cloud.vast.ai/instances/"
GONE_REASON = (
    "The Vast.ai instance no longer exists (destroyed outside the bot, or the host removed "
    "it), so nothing bills any more. Deploy again if you still need it."
)
_NOT_FINAL = frozenset(storage.LIVE_STATUSES)
START_CLAIM_PREFIX = "deployment-start:"


def start_claim_name(deployment_id: int) -> str:
    """Lease name that makes one Start click at a time win: ``deployment-start:<id>`` (taken in
    the transaction that records the desired state ``running``; the poller reads a live one as
    a Start in flight and gives it back once the start is over)."""
    return f"{START_CLAIM_PREFIX}{deployment_id}"


def retry_delay(tries: int, interval_seconds: float) -> timedelta:
    """How long after its ``tries``-th request (1 = the first) an act is sent again:
    ``interval_seconds × 2^(tries − 1)``, at most :data:`RETRY_CAP` (so 15 s, 30 s, 1 min, …
    with the default 15 s poll interval). A sender that dies after taking its first try is
    replaced one interval later: within two poller passes."""
    exponent = min(max(tries, 1) - 1, 20)
    return min(timedelta(seconds=interval_seconds * 2**exponent), RETRY_CAP)


def pending_state(dep: DeploymentRecord) -> str | None:
    """The desired state of ``dep`` while it is not confirmed (``running``, ``stopped`` or
    ``destroyed``), else None."""
    return dep.desired_state if dep.desired_next_try_at is not None else None


def reached(state: str, instance: Instance | None) -> bool:
    """Whether Vast.ai's data shows ``state`` reached (docs/VAST_API.md §4): ``stopped`` when
    ``intended_status`` is ``stopped`` (or the instance is gone: nothing bills), ``running`` when
    it is ``running``, ``destroyed`` when the instance is gone (``instance`` None)."""
    if instance is None:
        return state in (storage.STOPPED, storage.DESTROYED)
    if state == storage.STOPPED:
        return instance.intended_status == "stopped"
    if state == storage.RUNNING:
        return instance.intended_status == "running"
    return False


def outcome_unknown(error: VastError) -> bool:
    """Whether Vast.ai may have carried out a request that ended in ``error`` (so what it did
    must be read, not assumed): no answer came back (:class:`Unreachable`: a timeout, a dropped
    connection, a 502/503/504 from its gateway; the client also retries those, so one of the
    tries may have gone through), an answer the bot could not read (:class:`UnexpectedResponse`
    other than a 4xx), or another 5xx. A clear refusal (a 4xx: key, credit, rate limit, not
    found; or nothing sent at all) is False."""
    if isinstance(error, Unreachable):
        return True
    if isinstance(
        error, AuthError | InsufficientCredit | RateLimited | NotFound | OfferUnavailable
    ):
        return False
    status = error.status_code
    if isinstance(error, UnexpectedResponse):
        return status is None or not 400 <= status < 500
    return status is not None and status >= 500


def send_act(client: VastClient, state: str, instance_id: int) -> bool:
    """Send the request that reaches ``state`` (``PUT state=stopped``, ``PUT state=running``,
    ``DELETE``; docs/VAST_API.md §5). Returns False when the instance is gone (a 404: nothing to
    stop, start or destroy any more), True when Vast.ai accepted it.

    Raises:
        VastError: Vast.ai refused, or could not be reached.
        ValueError: not a desired state.
    """
    if state == storage.DESTROYED:
        return client.destroy_instance(instance_id)
    try:
        if state == storage.STOPPED:
            client.stop_instance(instance_id)
        elif state == storage.RUNNING:
            client.start_instance(instance_id)
        else:
            raise ValueError(f"unknown desired state {state!r}")
    except NotFound:
        return False
    return True


@dataclass(frozen=True)
class Settlement:
    """What confirming a pending act writes (:func:`storage.complete_intent`): the status it
    moves to (``new_status``, only from ``from_statuses``) with its ``reason``, a new run of
    the lifetime (``new_run``, a start), and the ``event`` (``(action, detail)``)."""

    new_status: DeploymentStatus | None = None
    from_statuses: frozenset[DeploymentStatus] = frozenset()
    reason: str | None = None
    new_run: bool = False
    event: tuple[str, str | None] | None = None


def settle_fields(dep: DeploymentRecord, *, gone: bool) -> Settlement:
    """The :class:`Settlement` of ``dep``'s pending act once it is confirmed (``gone``: its
    instance no longer exists): ``ready → stopped`` for a stop; ``→ destroyed`` for a destroy or
    a gone instance, with the reason people read; a new run for a start; the ``<act>``
    event."""
    state = dep.desired_state or storage.STOPPED
    act = storage.act_of(state)
    where = f"instance {dep.instance_id}"
    if gone:
        reason = dep.desired_reason if state == storage.DESTROYED else GONE_REASON
        return Settlement(
            DeploymentStatus.DESTROYED, _NOT_FINAL, reason, event=(act, f"{where} (already gone)")
        )
    if state == storage.STOPPED:
        return Settlement(
            DeploymentStatus.STOPPED, frozenset({DeploymentStatus.READY}), event=(act, where)
        )
    if state == storage.DESTROYED:
        return Settlement(
            DeploymentStatus.DESTROYED, _NOT_FINAL, dep.desired_reason, event=(act, where)
        )
    return Settlement(new_run=True, event=(act, where))


def confirm(
    sf: SessionFactory,
    dep: DeploymentRecord,
    now: datetime,
    settlement: Settlement,
    *,
    quiet_if_final: bool = False,
) -> DeploymentRecord | None:
    """Confirm ``dep``'s pending intent with ``settlement`` (:func:`storage.complete_intent`);
    the row afterwards, or None when someone else confirmed it first (or it was replaced), or
    with ``quiet_if_final`` when the row is already final (the intent is closed)."""
    assert dep.desired_at is not None
    return storage.complete_intent(
        sf,
        dep.id,
        desired_at=dep.desired_at,
        now=now,
        new_status=settlement.new_status,
        from_statuses=settlement.from_statuses,
        reason=settlement.reason,
        new_run=settlement.new_run,
        event=settlement.event,
        quiet_if_final=quiet_if_final,
    )


def confirm_withdrawn(
    sf: SessionFactory, dep: DeploymentRecord, now: datetime, settlement: Settlement
) -> DeploymentRecord | None:
    """Vast.ai accepted ``dep``'s request, but its intent was withdrawn while the request was
    on the wire (an **Extend** or **Keep running** called off a rule's act already sent):
    record it anyway with ``settlement`` (:func:`storage.complete_withdrawn`). The row
    afterwards, or None when the intent was not withdrawn (nothing changed)."""
    assert dep.desired_at is not None and dep.desired_state is not None
    return storage.complete_withdrawn(
        sf,
        dep.id,
        desired_at=dep.desired_at,
        state=dep.desired_state,
        now=now,
        new_status=settlement.new_status,
        from_statuses=settlement.from_statuses,
        reason=settlement.reason,
        new_run=settlement.new_run,
        event=settlement.event,
    )


def called_off_late(dep: DeploymentRecord) -> bool:
    """Whether ``dep``'s intent is one a click may call off while its request is on the wire
    (a rule's stop or destroy: :func:`storage.intents.withdraw_automatic`)."""
    return dep.desired_actor == storage.SYSTEM_ACTOR and dep.desired_state in (
        storage.STOPPED,
        storage.DESTROYED,
    )


def late_notice(dep: DeploymentRecord, tries: int) -> IntentNotice:
    """The note about ``dep``'s act that Vast.ai carried out although a click had called it
    off while its request (try number ``tries``) was on the wire."""
    return IntentNotice(
        action=storage.act_of(dep.desired_state or storage.STOPPED),
        actor=dep.desired_actor or storage.SYSTEM_ACTOR,
        reason=dep.desired_reason,
        tries=tries,
        outcome="late",
        console_url=CONSOLE_URL,
    )


@dataclass
class ReconcileReport:
    """What one pass did: ``due`` intents taken, ``confirmed`` (reached, or accepted now),
    ``sent`` requests, ``refused`` of them, ``told`` owners told that an act keeps failing,
    ``slack_calls`` messages sent."""

    due: int = 0
    confirmed: int = 0
    sent: int = 0
    refused: int = 0
    told: int = 0
    slack_calls: int = 0


class ReconcilerMessages(StatusMessages, IntentNotices, Protocol):
    """What the reconciler sends: status message edits (through :class:`MessageSync`) and how an
    act ended or that it keeps failing."""


class IntentReconciler:
    """Carries out pending desired states (see the module docstring).

    Args:
        session_factory: storage's sessionmaker. accounts: the Vast.ai account of each row.
        messages: the messages port (thread notes, the owner's DM).
        templates: the catalog, for redrawing status messages
            (:class:`bot.services.ports.Templates`).
        interval_seconds: ``STATUS_POLL_SECONDS``: the base of :func:`retry_delay`.
        homes: told of the row after a change (the owner's Home tab:
            :class:`bot.services.ports.HomeRefresher`).
        clock: aware UTC now (a pass may be given its tick's ``now`` instead).
        sync: marks and queues status-message edits (default: one on the same database and
            messages port).
        batch: intents per pass at most. tell_after: tries before the owner is told.
    """

    def __init__(
        self,
        *,
        session_factory: SessionFactory,
        accounts: VastAccounts,
        messages: ReconcilerMessages,
        templates: Templates,
        interval_seconds: float,
        homes: HomeRefresher = NO_HOMES,
        clock: Callable[[], datetime] = storage.utcnow,
        sync: MessageSync | None = None,
        batch: int = DEFAULT_BATCH,
        tell_after: int = TELL_AFTER_TRIES,
    ) -> None:
        self.sf = session_factory
        self.accounts = accounts
        self.messages = messages
        self.templates = templates
        self.interval_seconds = float(interval_seconds)
        self.homes = homes
        self.clock = clock
        self.sync = sync or MessageSync(
            session_factory=session_factory,
            messages=messages,
            catalog_get=templates.get,
            clock=clock,
        )
        self.batch = batch
        self.tell_after = tell_after

    def run(self, now: datetime | None = None) -> ReconcileReport:
        """One pass at ``now`` (default: the clock): every due intent, up to ``batch``. Vast.ai
        and Slack trouble is recorded and retried later; one row's trouble never stops the
        others. Raises only when the work list cannot be read (a database error)."""
        now = now or self.clock()
        report = ReconcileReport()
        due = storage.list_due_intents(self.sf, now, limit=self.batch)
        report.due = len(due)
        by_client: dict[int, tuple[VastClient, list[DeploymentRecord]]] = {}
        for dep in due:
            try:
                client = self.accounts.for_deployment(dep).client
            except VastError as error:  # no key for its account: a try that failed
                try:
                    self._unreachable(dep, error, now, report)
                except Exception:  # one deployment's trouble must not stop the others
                    logger.exception("intents: deployment %d not reconciled", dep.id)
                continue
            except Exception:
                logger.exception("intents: deployment %d: account not resolved", dep.id)
                continue
            by_client.setdefault(id(client), (client, []))[1].append(dep)
        for client, deps in by_client.values():
            seen = self._read(client, deps)
            for dep in deps:
                with logs.bound(deployment_id=dep.id, team_id=dep.team_id):
                    try:
                        self._one(dep, client, seen, now, report)
                    except Exception:  # one deployment's trouble must not stop the others
                        logger.exception("intents: deployment %d not reconciled", dep.id)
        return report

    def _unreachable(
        self, dep: DeploymentRecord, error: VastError, now: datetime, report: ReconcileReport
    ) -> None:
        """The account of ``dep`` is out of reach (no key for it): a try that failed, with its
        backoff, so the owner is told in time and the bot keeps trying."""
        tries = self._take_try(dep, now)
        if tries is None:
            return
        act = storage.act_of(dep.desired_state or storage.STOPPED)
        detail = f"try {tries}: not sent: {error}"[:500]
        storage.add_event(self.sf, dep.id, storage.SYSTEM_ACTOR, f"{act}_retry", detail, now=now)
        self._failed_try(dep, error, now, report, tries=tries)

    def _take_try(self, dep: DeploymentRecord, now: datetime) -> int | None:
        """Take the next try of ``dep``'s intent (:func:`storage.begin_try`); its number, or
        None when it was confirmed, replaced or taken by another sender meanwhile."""
        if dep.desired_at is None:
            return None
        tries = dep.desired_tries + 1
        taken = storage.begin_try(
            self.sf,
            dep.id,
            desired_at=dep.desired_at,
            tries=dep.desired_tries,
            next_try_at=now + retry_delay(tries, self.interval_seconds),
            now=now,
        )
        return tries if taken else None

    def _read(
        self, client: VastClient, deps: Sequence[DeploymentRecord]
    ) -> dict[int, Instance | None]:
        """``{instance id: Instance, or None when gone}`` for the instances of ``deps`` that
        could be read: the list by ids (25 a request), then a GET by id for each one the list
        did not hold (reads lag; a destroyed id answers ``{"instances": null}``). An instance
        that could not be read is left out (unknown: its act is sent again blind, which is
        safe: stop, start and destroy are idempotent)."""
        ids = sorted({d.instance_id for d in deps if d.instance_id is not None})
        seen: dict[int, Instance | None] = {}
        for start in range(0, len(ids), LIST_PAGE_SIZE):
            chunk = ids[start : start + LIST_PAGE_SIZE]
            try:
                page = client.list_instances_page(
                    select_filters={"id": {"in": chunk}}, select_cols=INSTANCE_COLUMNS
                )
            except VastError as error:
                logger.warning("intents: reading instances %s failed: %s", chunk, error)
                return seen
            wanted = set(chunk)
            seen.update((i.id, i) for i in page.instances if i.id in wanted)
        for instance_id in ids:
            if instance_id in seen:
                continue
            try:
                seen[instance_id] = client.get_instance(instance_id)
            except VastError as error:
                logger.warning("intents: reading instance %d failed: %s", instance_id, error)
        return seen

    def _one(
        self,
        dep: DeploymentRecord,
        client: VastClient,
        seen: dict[int, Instance | None],
        now: datetime,
        report: ReconcileReport,
    ) -> None:
        state, desired_at, instance_id = dep.desired_state, dep.desired_at, dep.instance_id
        if state not in storage.DESIRED_STATES or desired_at is None or instance_id is None:
            # Nothing this stage can act on (claims always hold an instance): close it.
            storage.complete_intent(self.sf, dep.id, desired_at=desired_at or now, now=now)
            return
        if instance_id in seen:
            instance = seen[instance_id]
            if instance is None or reached(state, instance):
                self._settle(dep, now, gone=instance is None, report=report)
                return
        tries = self._take_try(dep, now)
        if tries is None:
            return  # confirmed, replaced or taken meanwhile by another sender
        act = storage.act_of(state)
        report.sent += 1
        try:
            existed = send_act(client, state, instance_id)
        except VastError as error:
            storage.add_event(
                self.sf, dep.id, storage.SYSTEM_ACTOR, f"{act}_retry",
                f"try {tries}: refused: {error}"[:500], now=now,
            )  # fmt: skip
            self._failed_try(dep, error, now, report, tries=tries)
            return
        outcome = "accepted" if existed else "instance already gone"
        storage.add_event(
            self.sf,
            dep.id,
            storage.SYSTEM_ACTOR,
            f"{act}_retry",
            f"try {tries}: {outcome}",
            now=now,
        )
        self._settle(dep, now, gone=not existed, report=report, tries=tries)

    def _settle(
        self,
        dep: DeploymentRecord,
        now: datetime,
        *,
        gone: bool,
        report: ReconcileReport,
        tries: int | None = None,
    ) -> None:
        """Confirm ``dep``'s intent (its state is reached, or Vast.ai accepted it now), redraw
        the status message and say so in the thread (and the owner's DM for the bot's own acts,
        or when the owner was told it kept failing)."""
        assert dep.desired_at is not None and dep.desired_state is not None
        settlement = settle_fields(dep, gone=gone)
        # A Stop or Start whose instance vanished on a row already final (the poller saw it
        # gone and told the thread): close it without a second notice.
        quiet = gone and dep.desired_state != storage.DESTROYED
        after = confirm(self.sf, dep, now, settlement, quiet_if_final=quiet)
        late = False
        if after is None and tries is not None and not gone and called_off_late(dep):
            # Accepted although called off while on the wire: record it, say so.
            after = confirm_withdrawn(self.sf, dep, now, settlement)
            late = after is not None
        if after is None:
            return  # someone else confirmed it, or made the row final (and said so)
        report.confirmed += 1
        own = not gone or dep.desired_state == storage.DESTROYED  # its own act, not a vanishing
        if after.desired_actor == storage.SYSTEM_ACTOR and own:
            act = storage.act_of(dep.desired_state)
            if act in _AUTO_EVENTS:  # the bot never starts on its own
                storage.add_event(
                    self.sf, dep.id, storage.SYSTEM_ACTOR, _AUTO_EVENTS[act],
                    (dep.desired_reason or "")[:500], now=now,
                )  # fmt: skip
        self._show(after)
        if late:
            report.slack_calls += 1
            self.messages.intent_settled(after, late_notice(dep, tries or dep.desired_tries))
            self.homes.deployment_changed(after)
            return
        notice = IntentNotice(
            action=storage.act_of(dep.desired_state),
            actor=dep.desired_actor or storage.SYSTEM_ACTOR,
            reason=dep.desired_reason,
            tries=tries if tries is not None else dep.desired_tries,
            outcome="done" if own else "gone",
            console_url=CONSOLE_URL,
        )
        report.slack_calls += 1
        self.messages.intent_settled(after, notice)
        self.homes.deployment_changed(after)

    def _failed_try(
        self,
        dep: DeploymentRecord,
        error: VastError,
        now: datetime,
        report: ReconcileReport,
        *,
        tries: int | None = None,
    ) -> None:
        """A try that did not go through: a Start Vast.ai refused is withdrawn (and the thread
        told); a Stop or Destroy, or a Start whose outcome is unknown (:func:`outcome_unknown`:
        it may have started, so the next pass reads it), stays pending, and past
        :data:`TELL_AFTER_TRIES` the owner is told once."""
        report.refused += 1
        assert dep.desired_at is not None
        tries = tries if tries is not None else dep.desired_tries
        notice = IntentNotice(
            action=storage.act_of(dep.desired_state or storage.STOPPED),
            actor=dep.desired_actor or storage.SYSTEM_ACTOR,
            reason=dep.desired_reason,
            tries=tries,
            outcome="failing",
            error=error.user_message,
            next_try_at=now + retry_delay(max(tries, 1), self.interval_seconds),
            console_url=CONSOLE_URL,
        )
        if dep.desired_state == storage.RUNNING and not outcome_unknown(error):
            if storage.withdraw_intent(
                self.sf,
                dep.id,
                desired_at=dep.desired_at,
                actor=storage.SYSTEM_ACTOR,
                detail=f"Vast.ai refused: {error}",
                now=now,
                drop_lease=start_claim_name(dep.id),
            ):
                after = storage.get_deployment(self.sf, dep.id) or dep
                self._show(after)
                report.slack_calls += 1
                self.messages.intent_settled(after, replace(notice, outcome="withdrawn"))
                self.homes.deployment_changed(after)
            return
        if tries < self.tell_after or dep.desired_gave_up_at is not None:
            return
        if not storage.claim_owner_told(self.sf, dep.id, desired_at=dep.desired_at, now=now):
            return
        act = storage.act_of(dep.desired_state or storage.STOPPED)
        storage.add_event(
            self.sf, dep.id, storage.SYSTEM_ACTOR, f"{act}_keeps_failing",
            f"owner told after {tries} tries", now=now,
        )  # fmt: skip
        report.told += 1
        report.slack_calls += 1
        after = storage.get_deployment(self.sf, dep.id) or dep
        self._show(after)
        if not self.messages.intent_failing(after, notice):
            storage.release_owner_told(self.sf, dep.id, claimed_at=now)

    def _show(self, dep: DeploymentRecord) -> None:
        try:
            self.sync.changed(dep)
        except SQLAlchemyError:  # the next change, or the poller's next read, shows it
            logger.exception("deployment %s: status message not marked for an edit", dep.id)
