"""Expired OAuth states are deleted (storage/oauth_states.py, bot/services/housekeeping.py).

Anyone may ``GET /slack/install`` (the "Add to Slack" page, no Slack signature), and each GET
writes one ``slack_oauth_states`` row; slack_sdk deletes a row only when the OAuth redirect
uses it. The poller's pass now deletes the expired ones, in bounded batches.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import insert

from storage.models import slack_oauth_states
from storage.oauth_states import count_oauth_states, delete_expired_oauth_states
from storage.types import utcnow
from tests.fixtures.oauth import OAuthBot


def test_expired_oauth_states_are_deleted_in_bounded_batches(session_factory: Any) -> None:
    now = utcnow()
    naive = now.replace(tzinfo=None)
    with session_factory.begin() as session:
        session.execute(
            insert(slack_oauth_states),
            [
                {"state": f"old-{n}", "expire_at": naive - timedelta(seconds=1 + n)}
                for n in range(50)
            ]
            + [{"state": f"live-{n}", "expire_at": naive + timedelta(minutes=5)} for n in range(7)],
        )
    assert count_oauth_states(session_factory) == 57
    assert delete_expired_oauth_states(session_factory, now=now, batch_rows=10, max_batches=2) == 20
    assert count_oauth_states(session_factory, expired_at=now) == 30
    assert delete_expired_oauth_states(session_factory, now=now, batch_rows=10, max_batches=9) == 30
    assert count_oauth_states(session_factory) == 7  # the live ones stay


def test_install_page_states_are_deleted_after_they_expire(oauth_bot: OAuthBot) -> None:
    """Anyone may GET /slack/install, and each GET writes a state: after the states' expiry the
    poller's pass deletes them (before, they stayed for ever)."""
    sf = oauth_bot.services.session_factory
    requests = 300
    with httpx.Client(base_url=oauth_bot.harness.server.url, timeout=10) as browser:
        for _ in range(requests):
            assert browser.get("/slack/install").status_code == 200
    assert count_oauth_states(sf) == requests
    oauth_bot.services.poller.tick()  # not expired yet: nothing deleted
    assert count_oauth_states(sf) == requests
    oauth_bot.clock.advance(minutes=11)  # states live 10 minutes
    oauth_bot.services.poller.tick()
    assert count_oauth_states(sf) == 0


def test_housekeeping_runs_on_the_lease_holder_at_most_once_per_period(
    session_factory: Any,
) -> None:
    from bot.services.housekeeping import Housekeeping
    from bot.services.poller import TickReport
    from tests.fixtures.slack import MovableClock

    clock = MovableClock()

    def expired_rows(count: int) -> None:
        naive = clock().replace(tzinfo=None)
        with session_factory.begin() as session:
            session.execute(
                insert(slack_oauth_states),
                [
                    {"state": f"s{n}", "expire_at": naive - timedelta(seconds=1)}
                    for n in range(count)
                ],
            )

    keeper = Housekeeping(session_factory=session_factory, clock=clock)
    expired_rows(5)
    keeper.after_pass(TickReport(ran=False), True)  # a standby: the holder cleans
    keeper.after_pass(TickReport(), False)  # a pass that raised
    assert count_oauth_states(session_factory) == 5
    keeper.after_pass(TickReport(), True)
    assert count_oauth_states(session_factory) == 0
    expired_rows(3)
    clock.advance(seconds=30)
    keeper.after_pass(TickReport(), True)  # within the period: not yet
    assert count_oauth_states(session_factory) == 3
    clock.advance(seconds=31)
    keeper.after_pass(TickReport(), True)
    assert count_oauth_states(session_factory) == 0 and keeper.deleted == 8
