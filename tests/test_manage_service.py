"""The manage service's Stop and Destroy against the in-memory fakes (tests/fakes/ports.py)
and a real database, without a server: the desired state is written before Vast.ai is
called, the status changes only once Vast.ai accepted, and a refused act stays pending (the
reconciler sends it again) with the person told it still bills."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import pytest

import storage
from bot.services.accounts import VastAccounts
from bot.services.admins import StaticAdmins
from bot.services.manage import DESTROY, STOP, ManageService, OutcomeKind
from bot.services.ports import NO_TEMPLATES
from bot.vast.errors import Unreachable, VastError
from storage import DeploymentRecord, SessionFactory
from tests.factories import ALICE, TEAM_ID, new_deployment
from tests.fakes.ports import FakeAccounts, FakeVast, ManualClock, RecordingMessages

INSTANCE = 4242
BOB = "U0BOB0002"


@dataclass
class World:
    sf: SessionFactory
    vast: FakeVast
    messages: RecordingMessages
    manage: ManageService
    dep: DeploymentRecord
    seen: list[tuple[str, str, str | None]]
    """What the row held as each Vast.ai call began: ``(call, status, desired_state)``."""

    def row(self) -> DeploymentRecord:
        found = storage.get_deployment(self.sf, self.dep.id)
        assert found is not None
        return found

    def events(self) -> list[str]:
        return [e.action for e in storage.list_events(self.sf, self.dep.id)]


@pytest.fixture
def world(session_factory: SessionFactory) -> World:
    clock = ManualClock()
    dep = new_deployment(
        session_factory, status="ready", instance_id=INSTANCE, now=clock(), message=True
    )
    vast, messages = FakeVast(), RecordingMessages()
    vast.add_instance(INSTANCE, status="running")
    seen: list[tuple[str, str, str | None]] = []

    def look(call: str, _ident: int | None) -> None:
        row = storage.get_deployment(session_factory, dep.id)
        assert row is not None
        seen.append((call, row.status, row.desired_state))

    vast.on_call = look
    manage = ManageService(
        session_factory=session_factory,
        # the fake has the one method the manage service calls (for_deployment)
        accounts=cast(VastAccounts, FakeAccounts(vast)),
        messages=messages,
        templates=NO_TEMPLATES,
        admins=StaticAdmins(frozenset()),
        clock=clock,
    )
    return World(session_factory, vast, messages, manage, dep, seen)


def test_a_stop_is_recorded_first_then_sent_and_the_status_follows_vast(world: World) -> None:
    outcome = world.manage.perform(STOP, world.dep.id, ALICE, team_id=TEAM_ID)
    assert outcome.kind == OutcomeKind.DONE
    assert world.seen == [("stop_instance", "ready", "stopped")]  # desired state first
    assert world.vast.status(INSTANCE) == "stopped"
    row = world.row()
    assert row.status == "stopped" and row.desired_next_try_at is None  # confirmed
    assert row.desired_done_at is not None
    assert [c["action"] for c in world.messages.calls("action_done")] == [STOP]
    assert "queue_status" in world.messages.names()  # the status message is redrawn


def test_a_refused_stop_stays_pending_and_the_row_stays_ready(world: World) -> None:
    world.vast.fail["stop_instance"] = [VastError("400 bad request", status_code=400)]
    outcome = world.manage.perform(STOP, world.dep.id, ALICE, team_id=TEAM_ID)
    assert outcome.kind == OutcomeKind.PENDING
    assert "still running and billing" in outcome.message
    row = world.row()
    assert (row.status, row.desired_state, row.desired_tries) == ("ready", "stopped", 1)
    assert row.desired_next_try_at is not None and row.desired_done_at is None  # pending
    assert world.vast.status(INSTANCE) == "running" and "stop_failed" in world.events()
    assert world.messages.calls("action_done") == []  # nobody is told it stopped

    again = world.manage.perform(STOP, world.dep.id, BOB, team_id=TEAM_ID)
    assert again.kind == OutcomeKind.REFUSED  # not Bob's: nothing sent
    twice = world.manage.perform(STOP, world.dep.id, ALICE, team_id=TEAM_ID)
    assert twice.kind == OutcomeKind.ALREADY  # already recorded: no second request
    assert world.vast.count("stop_instance") == 1


def test_a_stop_whose_answer_was_lost_is_pending_not_refused(world: World) -> None:
    world.vast.fail_after["stop_instance"] = [Unreachable("read timed out")]
    outcome = world.manage.perform(STOP, world.dep.id, ALICE, team_id=TEAM_ID)
    assert outcome.kind == OutcomeKind.PENDING and "could not tell" in outcome.message
    assert world.vast.status(INSTANCE) == "stopped"  # it did stop ...
    assert world.row().status == "ready"  # ... but the bot does not claim so before it reads


def test_a_destroy_is_recorded_first_and_ends_the_row_once_vast_accepted(world: World) -> None:
    outcome = world.manage.perform(DESTROY, world.dep.id, ALICE, team_id=TEAM_ID)
    assert outcome.kind == OutcomeKind.DONE
    assert world.seen == [("destroy_instance", "ready", "destroyed")]
    assert world.vast.get_instance(INSTANCE) is None
    assert world.row().status == "destroyed"


def test_a_refused_destroy_stays_pending_and_says_it_still_bills(world: World) -> None:
    world.vast.fail["destroy_instance"] = [VastError("400 refused", status_code=400)]
    outcome = world.manage.perform(DESTROY, world.dep.id, ALICE, team_id=TEAM_ID)
    assert outcome.kind == OutcomeKind.PENDING and "still exists and bills" in outcome.message
    row = world.row()
    assert (row.status, row.desired_state) == ("ready", "destroyed")
    assert row.desired_next_try_at is not None  # the reconciler sends it again
    assert world.vast.status(INSTANCE) == "running"


def test_a_destroy_of_an_instance_already_gone_ends_the_row(world: World) -> None:
    del world.vast.instances[INSTANCE]
    outcome = world.manage.perform(DESTROY, world.dep.id, ALICE, team_id=TEAM_ID)
    assert outcome.kind == OutcomeKind.DONE and world.row().status == "destroyed"
