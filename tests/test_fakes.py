"""The shared in-memory fakes (tests/fakes/ports.py) keep up with the ports they stand for: a
method added to :class:`bot.services.ports.Messages` without the fake fails here (and under
mypy), and the Vast.ai fake answers as the client does."""

from __future__ import annotations

import inspect
from datetime import UTC, datetime

import pytest

from bot.services import ports
from bot.services.ports import Delivery, FileSender, Messages
from bot.vast.errors import NotFound, OfferUnavailable, Unreachable, VastError
from bot.vast.models import Offer
from tests.fakes.ports import QUESTIONS, FakeVast, ManualClock, RecordingMessages

# mypy checks these: the fake is each port, as the services see it.
_messages: Messages = RecordingMessages()
_files: FileSender = RecordingMessages()


def _public_methods(protocol: type) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(member)
        for klass in protocol.__mro__
        if klass.__module__ == ports.__name__
        for name, member in vars(klass).items()
        if not name.startswith("_") and inspect.isfunction(member)
    }


@pytest.mark.parametrize("protocol", [Messages, FileSender])
def test_the_recording_fake_has_every_method_of_the_ports_with_their_parameters(
    protocol: type,
) -> None:
    wanted = _public_methods(protocol)
    assert len(wanted) > (30 if protocol is Messages else 0)
    for name, signature in wanted.items():
        mine = getattr(RecordingMessages, name, None)
        assert mine is not None and inspect.isfunction(mine), f"RecordingMessages lacks {name}"
        assert list(inspect.signature(mine).parameters) == list(signature.parameters), name


def test_the_questions_are_port_methods() -> None:
    assert set(_public_methods(Messages)) >= QUESTIONS


def test_messages_are_recorded_and_answer_the_outcome_set() -> None:
    messages = RecordingMessages()
    assert messages.dm("U1", "hello", team_id="T1") is True
    assert messages.user_tz("U1") is None  # a question: not a message
    messages.outcomes["dm"] = False
    assert messages.dm("U2", "again") is False
    assert messages.sent == [
        ("dm", {"user_id": "U1", "text": "hello", "team_id": "T1"}),
        ("dm", {"user_id": "U2", "text": "again", "team_id": None}),
    ]
    assert messages.dms == [("U1", "hello"), ("U2", "again")]
    assert messages.asked == [("user_tz", {"user_id": "U1", "team_id": None})]
    messages.refuse_all()
    assert messages.upload_dm("U1", filename="a", content="", title="", comment="") is not None
    assert messages.approval_request(None, recipients=frozenset({"U1"}), channel=None) == []  # type: ignore[arg-type]


def test_a_queued_status_edit_is_reported_done_at_once() -> None:
    messages, done = RecordingMessages(), list[Delivery]()
    dep = object()
    assert messages.queue_status(dep, None, on_done=done.append) == Delivery.QUEUED  # type: ignore[arg-type]
    assert done == [Delivery.SENT] and messages.names() == ["queue_status"]


def test_the_vast_fake_answers_as_the_client_and_fails_when_told() -> None:
    vast = FakeVast(offers=[Offer(id=7, gpu_name="RTX 4090", num_gpus=1, dph_total=0.4)])
    assert [o.id for o in vast.search_offers({"limit": 10})] == [7]
    ident = vast.create_instance(7, image="img", env={}, disk_gb=16, label="gpubot:1")
    assert vast.status(ident) == "loading" and vast.get_instance(ident) is not None
    vast.stop_instance(ident)
    assert vast.status(ident) == "stopped"
    vast.fail["start_instance"] = [VastError("400 refused", status_code=400)]
    with pytest.raises(VastError):
        vast.start_instance(ident)
    assert vast.status(ident) == "stopped"  # refused before it did anything
    vast.fail_after["start_instance"] = [Unreachable("timed out")]
    with pytest.raises(Unreachable):
        vast.start_instance(ident)
    assert vast.status(ident) == "running"  # done, its answer lost
    assert [i.id for i in vast.list_instances(label_prefix="gpubot:")] == [ident]
    assert vast.destroy_instance(ident) is True and vast.destroy_instance(ident) is False
    assert vast.get_instance(ident) is None
    with pytest.raises(NotFound):
        vast.stop_instance(ident)
    vast.taken.add(7)
    with pytest.raises(OfferUnavailable):
        vast.create_instance(7, image="img", env={}, disk_gb=16, label="gpubot:2")
    assert vast.count("start_instance") == 2


def test_the_manual_clock_is_aware_utc_and_moves_only_when_told() -> None:
    clock = ManualClock(datetime(2026, 1, 1, tzinfo=UTC))
    assert clock() == clock() and clock().tzinfo is UTC
    assert clock.advance(90) == datetime(2026, 1, 1, 0, 1, 30, tzinfo=UTC)
    assert clock.advance(minutes=1) == datetime(2026, 1, 1, 0, 2, 30, tzinfo=UTC)
    with pytest.raises(ValueError):
        ManualClock(datetime(2026, 1, 1))
