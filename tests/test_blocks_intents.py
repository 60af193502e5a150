"""The messages of acts carried out from a desired state (pure builders, no bot)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.notices import IntentNotice
from bot.slack.blocks.intents import intent_text
from tests.test_blocks_lifetimes import make_dep

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def _failing(action: str) -> IntentNotice:
    return IntentNotice(
        action=action,
        actor="U1",
        reason=None,
        tries=5,
        outcome="failing",
        error="gateway timeout",
        next_try_at=NOW + timedelta(minutes=30),
    )


def test_a_stop_that_keeps_failing_says_the_gpu_may_still_bill() -> None:
    text = intent_text(make_dep(), _failing("stop"))
    assert "tried 5 times to stop" in text and "*The GPU may still be billing*" in text
    assert "cloud.vast.ai/instances" in text


def test_a_start_that_keeps_failing_does_not_say_the_gpu_bills() -> None:
    """A start not yet carried out leaves the instance stopped: only its disk bills."""
    text = intent_text(make_dep(), _failing("start"))
    assert "tried 5 times to start" in text and "still stopped (its disk bills)" in text
    assert "GPU may still be billing" not in text
    assert "*Destroy*" in text and "gateway timeout" in text
