"""Repository functions for lifetimes, idle checks, reminders and shared state.

Each is one short transaction. What must happen once across processes and restarts is decided
by the database: a conditional ``UPDATE ... WHERE`` on the deployment row (the expiry and idle
warnings, an extension, **Keep running**) or the primary key of ``claims`` (a reminder of a kind
per deployment per day, the daily digest).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from storage.db import SessionFactory, read_transaction, write_transaction
from storage.events import EventKind
from storage.intents import withdraw_automatic
from storage.ledger import TeamLedger, ledger_in, lock_team
from storage.models import ACTIVE_STATUSES, BotState, Claim, Deployment, DeploymentStatus, SlackUser
from storage.repo import (
    _PLAIN,
    SYSTEM_ACTOR,
    _claim_once,
    _event,
    _release,
    _rowcount,
    begin_run,
)
from storage.types import utcnow


def _is(column: Any, value: datetime | None) -> Any:
    return column.is_(None) if value is None else column == value


@dataclass(frozen=True)
class ButtonChange:
    """What an **Extend** or **Keep running** did. ``done``: the change was made (False: the
    button was stale, nothing changed). ``withdrawn``: the desired state of the rule's pending
    act it withdrew in the same transaction (``stopped`` or ``destroyed``), or None."""

    done: bool
    withdrawn: str | None = None


def _withdrawing(
    deployment_id: int, actor: str, why: str, now: datetime, withdrawn: list[str]
) -> Callable[[Session], None]:
    """The ``after`` step of a person's button (:func:`_update_once`): withdraw the stop or
    destroy a rule recorded that is still pending (:func:`storage.intents.withdraw_automatic`;
    it was decided on the columns the click just changed, so the reconciler must not send it
    any more) and append its state to ``withdrawn``."""

    def withdraw(session: Session) -> None:
        state = withdraw_automatic(session, deployment_id, actor=actor, detail=why, now=now)
        if state is not None:
            withdrawn.append(state)

    return withdraw


def _update_once(
    sf: SessionFactory,
    deployment_id: int,
    conditions: tuple[Any, ...],
    values: dict[Any, Any],
    *,
    event: tuple[str, EventKind, str],
    now: datetime,
    before: Callable[[Session], None] | None = None,
    after: Callable[[Session], None] | None = None,
) -> bool:
    """``UPDATE deployments SET values WHERE id AND conditions``; when it matched, also bump
    ``version``/``updated_at`` and append ``event`` (actor, action, detail) in the same
    transaction. True for the one caller whose update matched. ``before`` runs first in the
    same transaction (it may raise to change nothing); ``after`` runs last in it, only when
    the update matched."""
    with write_transaction(sf) as session:
        if before is not None:
            before(session)
        result = session.execute(
            update(Deployment)
            .where(Deployment.id == deployment_id, *conditions)
            .values(
                {
                    **values,
                    Deployment.updated_at: now,
                    Deployment.version: Deployment.version + 1,
                }
            ),
            execution_options=_PLAIN,
        )
        if _rowcount(result) != 1:
            return False
        actor, action, detail = event
        _event(session, deployment_id, actor, action, detail, now)
        if after is not None:
            after(session)
        return True


# --- the expiry warning and the idle warning ---------------------------------------------


def claim_expiry_warning(sf: SessionFactory, deployment_id: int, now: datetime) -> bool:
    """Claim the right to warn the owner that the deployment's end is near; True once per
    end time (an extension clears it). Appends an ``expiry_warning`` event."""
    return _claim_once(
        sf, deployment_id, Deployment.expiry_warned_at, now, EventKind.EXPIRY_WARNING
    )


def release_expiry_warning(sf: SessionFactory, deployment_id: int, claimed_at: datetime) -> bool:
    """Undo an expiry-warning claim made at ``claimed_at`` (Slack refused it): retried later."""
    return _release(sf, deployment_id, Deployment.expiry_warned_at, claimed_at)


def claim_idle_warning(sf: SessionFactory, deployment_id: int, now: datetime) -> bool:
    """Claim the right to ask the owner about an idle GPU; True once per idle stretch.
    Appends an ``idle_warning`` event."""
    return _claim_once(sf, deployment_id, Deployment.idle_warned_at, now, EventKind.IDLE_WARNING)


def release_idle_warning(sf: SessionFactory, deployment_id: int, claimed_at: datetime) -> bool:
    """Undo an idle-warning claim made at ``claimed_at`` (Slack refused it): retried later."""
    return _release(sf, deployment_id, Deployment.idle_warned_at, claimed_at)


def set_idle_since(
    sf: SessionFactory,
    deployment_id: int,
    *,
    expected: datetime | None,
    value: datetime | None,
) -> bool:
    """Start (``value`` set) or end (``value`` None) an idle stretch, if ``idle_since`` is still
    ``expected``. Ending one also clears ``idle_warned_at`` (the GPU is busy again: a later
    stretch gets its own question). Returns False when someone else changed it first."""
    values: dict[Any, Any] = {Deployment.idle_since: value}
    if value is None:
        values[Deployment.idle_warned_at] = None
    with write_transaction(sf) as session:
        result = session.execute(
            update(Deployment)
            .where(Deployment.id == deployment_id, _is(Deployment.idle_since, expected))
            .values(values),
            execution_options=_PLAIN,
        )
        return _rowcount(result) == 1


def snooze_idle(
    sf: SessionFactory,
    deployment_id: int,
    *,
    expected_warned_at: datetime | None,
    until: datetime,
    actor: str,
    now: datetime | None = None,
) -> ButtonChange:
    """**Keep running**: no idle checks until ``until``, if the deployment is still ``ready``
    and its idle question is still the one answered (``idle_warned_at == expected_warned_at``).
    Ends the idle stretch; appends a ``keep_running`` event by ``actor``; withdraws a rule's
    pending stop or destroy (e.g. the idle stop Vast.ai refused), so the answer holds. Not
    ``done`` when stale."""
    now = now or utcnow()
    detail = f"no idle checks until {until:%Y-%m-%d %H:%M} UTC"
    withdrawn: list[str] = []
    done = _update_once(
        sf,
        deployment_id,
        (
            Deployment.status == DeploymentStatus.READY,
            _is(Deployment.idle_warned_at, expected_warned_at),
        ),
        {
            Deployment.idle_snoozed_until: until,
            Deployment.idle_since: None,
            Deployment.idle_warned_at: None,
        },
        event=(actor, EventKind.KEEP_RUNNING, detail),
        now=now,
        after=_withdrawing(deployment_id, actor, f"kept running: {detail}", now, withdrawn),
    )
    return ButtonChange(done, withdrawn[0] if done and withdrawn else None)


# --- the end time ------------------------------------------------------------------------


def extend_lifetime(
    sf: SessionFactory,
    deployment_id: int,
    *,
    expected_ends_at: datetime | None,
    new_ends_at: datetime,
    actor: str,
    now: datetime | None = None,
    admit: Callable[[TeamLedger], None] | None = None,
) -> ButtonChange:
    """Move the end of an active deployment from ``expected_ends_at`` to ``new_ends_at`` and
    clear its expiry warning (the new end gets its own). Conditional on both, so a double click
    or two people extending at once extend once. Appends an ``extend`` event by ``actor``, and
    withdraws a rule's pending stop or destroy (e.g. the expiry stop Vast.ai refused, still
    being retried), so the deployment runs to its new end; a **Stop** or **Destroy** a person
    pressed stays pending.

    With ``admit``, the deployment's workspace is locked (:func:`storage.ledger.lock_team`)
    and ``admit`` is called with its :class:`~storage.ledger.TeamLedger` (the row still at its
    old end) in the same transaction, before the update: it raises to change nothing (the
    exception propagates). So an extension and a submission of the same workspace are decided
    one after the other against the same budgets. ``admit`` must not call the network.

    Returns:
        Not ``done`` when the deployment is no longer active or its end already moved (stale
        button), or is unknown.
    """
    now = now or utcnow()
    detail = f"ends at {new_ends_at:%Y-%m-%d %H:%M} UTC"
    withdrawn: list[str] = []

    def reserve(session: Session) -> None:
        team_id = session.scalar(select(Deployment.team_id).where(Deployment.id == deployment_id))
        if admit is None or team_id is None:
            return
        lock_team(session, team_id)
        admit(ledger_in(session, team_id))

    done = _update_once(
        sf,
        deployment_id,
        (
            Deployment.status.in_(list(ACTIVE_STATUSES)),
            _is(Deployment.ends_at, expected_ends_at),
        ),
        {Deployment.ends_at: new_ends_at, Deployment.expiry_warned_at: None},
        event=(actor, EventKind.EXTEND, detail),
        now=now,
        before=reserve if admit is not None else None,
        after=_withdrawing(deployment_id, actor, f"extended: {detail}", now, withdrawn),
    )
    return ButtonChange(done, withdrawn[0] if done and withdrawn else None)


def restart_lifetime(sf: SessionFactory, deployment_id: int, now: datetime) -> bool:
    """A stopped deployment is started again: begin a new run of its ``lifetime_hours`` from
    ``now`` (no end when it has none) and forget the previous run's warnings and idle stretch.
    Appends a ``lifetime_restarted`` event. Returns False for an unknown id."""
    with write_transaction(sf) as session:
        row = session.get(Deployment, deployment_id, with_for_update=True)
        if row is None:
            return False
        begin_run(row, now)
        row.updated_at = now
        row.version += 1
        ends = f"ends at {row.ends_at:%Y-%m-%d %H:%M} UTC" if row.ends_at else "no end"
        _event(session, deployment_id, SYSTEM_ACTOR, EventKind.LIFETIME_RESTARTED, ends, now)
        return True


# --- claims ------------------------------------------------------------------------------


def claim(sf: SessionFactory, key: str, now: datetime | None = None) -> bool:
    """Insert the claim ``key`` (≤ 200 characters); True for the one caller that inserted it,
    across threads, processes and restarts. An existing claim is found by a plain read first:
    callers ask again every run, and a write transaction (``BEGIN IMMEDIATE`` on SQLite) for a
    key that is long claimed would serialise them for nothing."""
    now = now or utcnow()
    with read_transaction(sf) as session:
        if session.get(Claim, key) is not None:
            return False
    try:
        with write_transaction(sf) as session:
            if session.get(Claim, key) is not None:
                return False
            session.add(Claim(key=key, claimed_at=now))
        return True
    except IntegrityError:
        return False


def claimed_at(sf: SessionFactory, key: str) -> datetime | None:
    """When the claim ``key`` was made (aware UTC), or None when it does not exist. Rules that
    time a condition (e.g. a container exited since …) keep its start as a claim's time."""
    with read_transaction(sf) as session:
        row = session.get(Claim, key)
        return row.claimed_at if row is not None else None


def release_claim(sf: SessionFactory, key: str) -> bool:
    """Delete the claim ``key`` (the work it guarded failed and should be tried again)."""
    with write_transaction(sf) as session:
        result = session.execute(delete(Claim).where(Claim.key == key), execution_options=_PLAIN)
        return _rowcount(result) == 1


# --- cached Slack users and shared state -------------------------------------------------


def get_user_tz(sf: SessionFactory, user_id: str) -> tuple[str | None, datetime] | None:
    """``(tz, fetched_at)`` cached for ``user_id``, or None when never fetched."""
    with read_transaction(sf) as session:
        row = session.get(SlackUser, user_id)
        return (row.tz, row.fetched_at) if row is not None else None


def _upsert(sf: SessionFactory, model: type[Any], key: str, values: dict[str, Any]) -> None:
    """Insert the row whose primary key is ``key`` with ``values``, or update it: a concurrent
    insert by another process (a unique-key conflict) turns into an update."""
    pk = model.__mapper__.primary_key[0]
    try:
        with write_transaction(sf) as session:
            row = session.get(model, key)
            if row is None:
                session.add(model(**{pk.name: key}, **values))
            else:
                for name, value in values.items():
                    setattr(row, name, value)
    except IntegrityError:
        with write_transaction(sf) as session:
            session.execute(update(model).where(pk == key).values(values), execution_options=_PLAIN)


def save_user_tz(sf: SessionFactory, user_id: str, tz: str | None, now: datetime) -> None:
    """Cache ``user_id``'s IANA time zone (None: Slack did not say) as fetched at ``now``."""
    _upsert(sf, SlackUser, user_id, {"tz": tz, "fetched_at": now})


def get_state(sf: SessionFactory, name: str) -> tuple[str, datetime] | None:
    """``(value, updated_at)`` of the shared document ``name``, or None."""
    with read_transaction(sf) as session:
        row = session.get(BotState, name)
        return (row.value, row.updated_at) if row is not None else None


def put_state(sf: SessionFactory, name: str, value: str, now: datetime) -> None:
    """Write the shared document ``name``."""
    _upsert(sf, BotState, name, {"value": value, "updated_at": now})
